//! The verify job: is the mirror restorable? Every file in it is read to the end (inside the
//! job's memory budget) and its MD5 compared with the one stored at backup; with
//! `against_source`, the source is listed too and compared with what the mirror holds.
//! Nothing is written anywhere.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::task::JoinSet;

use super::{concluded, started, storages, Run};
use crate::error::{Error, Result};
use crate::message::{CompareMode, VerifyJob};
use crate::result::{FileError, JobResult, VerifyCounts};
use crate::storage::{ListItem, Source, SourceFile};
use crate::transfer::reader::{read_md5, ReadDigest};
use crate::transfer::{ChunkSlots, Filter, FILES_IN_FLIGHT};

/// What the mirror holds for a path, as read: its size, recorded mtime and the MD5 of its bytes.
struct Held {
    size: u64,
    mtime: i64,
    md5: [u8; 16],
}

pub async fn run(job: &VerifyJob, ctx: &Run<'_>) -> JobResult {
    let mut result = started("verify", &job.job_id, None);
    result.verify = Some(VerifyCounts::default());
    let outcome = execute(job, ctx, &mut result).await;
    tracing::info!(job_id = %job.job_id, counts = ?result.verify, "verify counts");
    concluded(result, outcome)
}

async fn execute(job: &VerifyJob, ctx: &Run<'_>, result: &mut JobResult) -> Result<()> {
    let filter = Filter::new(&job.include, &job.exclude)?;
    let mirror = storages::mirror(ctx.profiles, &job.destination, "destination")?;
    result.destination = Some(mirror.describe());
    let source = match (&job.source, job.against_source) {
        (Some(r), true) => Some((storages::source(ctx.profiles, r)?, r.path.as_str())),
        _ => None,
    };
    if let Some((source, root)) = &source {
        result.source = Some(format!("{}{root}", source.describe()));
    }
    let chunk = job.options.chunk_size.bytes() as usize;
    let budget = ChunkSlots::new(job.options.upload_concurrency, chunk, ctx.memory.clone());
    let held = check_mirror(mirror, &filter, chunk, budget.clone(), result).await?;
    if let Some((source, root)) = source {
        let compare = Compare {
            source: &source,
            root,
            chunk,
            budget: &budget,
            by_hash: job.options.compare == CompareMode::Hash,
        };
        compare.run(&filter, held, result).await?;
    }
    Ok(())
}

fn counts(result: &mut JobResult) -> &mut VerifyCounts {
    result.verify.get_or_insert_with(VerifyCounts::default)
}

/// Read every file of the mirror that passes `filter`, a few at a time; returns what was read.
async fn check_mirror(
    mirror: Arc<dyn Source>,
    filter: &Filter,
    chunk: usize,
    budget: ChunkSlots,
    result: &mut JobResult,
) -> Result<HashMap<String, Held>> {
    let mut items = mirror.list("").await?;
    let mut held = HashMap::new();
    let mut tasks: JoinSet<(SourceFile, Result<ReadDigest>)> = JoinSet::new();
    while let Some(item) = items.recv().await {
        let file = match item {
            ListItem::File(f) if filter.matches(&f.path) => f,
            ListItem::File(_) => {
                result.files.excluded += 1;
                continue;
            }
            ListItem::Symlink(_) => continue,
            ListItem::Error(path, e) => {
                result.files.failed += 1;
                result.errors.push(FileError::new(Some(path), &e));
                continue;
            }
        };
        result.files.found += 1;
        if tasks.len() >= FILES_IN_FLIGHT {
            if let Some(done) = tasks.join_next().await {
                record(done, &mut held, result);
            }
        }
        let (mirror, budget) = (mirror.clone(), budget.clone());
        tasks.spawn(async move {
            let read = read_md5(&mirror, "", &file.path, chunk, &budget).await;
            (file, read)
        });
    }
    while let Some(done) = tasks.join_next().await {
        record(done, &mut held, result);
    }
    Ok(held)
}

/// Count one file read from the mirror.
fn record(
    done: std::result::Result<(SourceFile, Result<ReadDigest>), tokio::task::JoinError>,
    held: &mut HashMap<String, Held>,
    result: &mut JobResult,
) {
    let (file, read) = match done {
        Ok(done) => done,
        Err(e) => {
            result.files.failed += 1;
            let e = Error::Internal(format!("verify task failed: {e}"));
            result.errors.push(FileError::new(None, &e));
            return;
        }
    };
    let read = match read {
        Ok(read) => read,
        Err(e) => {
            result.files.failed += 1;
            result.errors.push(FileError::new(Some(file.path), &e));
            return;
        }
    };
    result.bytes.skipped += read.len;
    let c = counts(result);
    c.checked += 1;
    match file.md5.or(read.stored) {
        None => c.unverifiable += 1,
        Some(stored) if stored == read.md5 && read.len == file.size => c.intact += 1,
        Some(stored) => {
            c.corrupt += 1;
            result.files.failed += 1;
            let e = Error::Corrupt {
                path: file.path.clone(),
                stored: hex::encode(stored),
                read: hex::encode(read.md5),
            };
            result
                .errors
                .push(FileError::new(Some(file.path.clone()), &e));
            held.insert(file.path, Held::from(&read, file.mtime));
            return;
        }
    }
    // Intact (or nothing to compare with): counted like a backup's unchanged file.
    result.files.skipped += 1;
    held.insert(file.path, Held::from(&read, file.mtime));
}

impl Held {
    fn from(read: &ReadDigest, mtime: i64) -> Self {
        Held {
            size: read.len,
            mtime,
            md5: read.md5,
        }
    }
}

/// The source side of `against_source`.
struct Compare<'a> {
    source: &'a Arc<dyn Source>,
    root: &'a str,
    chunk: usize,
    budget: &'a ChunkSlots,
    by_hash: bool,
}

impl Compare<'_> {
    async fn run(
        &self,
        filter: &Filter,
        mut held: HashMap<String, Held>,
        result: &mut JobResult,
    ) -> Result<()> {
        let mut items = self.source.list(self.root).await?;
        while let Some(item) = items.recv().await {
            let ListItem::File(file) = item else { continue };
            if !filter.matches(&file.path) {
                continue;
            }
            match held.remove(&file.path) {
                None => {
                    counts(result).missing += 1;
                    result.files.found += 1;
                    result.files.failed += 1;
                    let e = Error::MissingFromMirror {
                        path: file.path.clone(),
                    };
                    result.errors.push(FileError::new(Some(file.path), &e));
                }
                Some(h) => {
                    if self.changed(&file, &h).await? {
                        tracing::info!(path = %file.path, "changed at the source since the backup");
                        counts(result).changed += 1;
                    }
                }
            }
        }
        counts(result).extra += held.len() as u64;
        Ok(())
    }

    async fn changed(&self, file: &SourceFile, held: &Held) -> Result<bool> {
        if file.size != held.size || (!self.by_hash && file.mtime != held.mtime) {
            return Ok(true);
        }
        if !self.by_hash {
            return Ok(false);
        }
        let md5 = match self.source.remote_md5(self.root, &file.path).await? {
            Some(md5) => md5,
            None => {
                read_md5(self.source, self.root, &file.path, self.chunk, self.budget)
                    .await?
                    .md5
            }
        };
        Ok(md5 != held.md5)
    }
}
