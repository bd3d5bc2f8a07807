//! Big jobs on a queue (backups and restores alike). A job is planned once (list the source, keep what changed, split it
//! into parts bounded by `part_max_files` and `part_max_bytes`), its parts go back on the queue
//! for any instance to take, and the part that finds every other part done writes the summary.
//! Nothing lives in the functions: the run's state is in the job's state store (a backup's
//! destination; a restore's mirror), under `.backup-worker/runs/<run_id>/`:
//!   plan.json                 what was planned
//!   part-<i>[.rest-<d>].files.json  part file lists too big for a queue message
//!   parts/<i>.json            a finished part's counts (written again on a duplicate delivery)
//!   partial/<i>-<d>.json      counts of a part's slice done before a hand-back (`d`: a digest
//!                             of the part message, so a duplicate delivery rewrites it)
//!   summary.json              totals, once every part has finished

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::backup::Prepared;
use super::Run;
use crate::error::{Error, Result};
use crate::message::{BackupJob, JobMessage, PartFile, PartSpec, RestoreJob};
use crate::result::{ByteCounts, FileCounts, FileError, JobResult, PartReport, RunReport};
use crate::storage::{Destination, ListItem, RemoteFile, SourceFile};
use crate::transfer::{self, Decision, Existing, Input, MergedListing};

/// A part list longer than this (as JSON) is stored beside the data and referred to, so
/// messages fit any queue (SQS 256 KiB; Azure Queue 64 KiB after base64).
const INLINE_LIMIT: usize = 32 * 1024;
/// Errors kept in a summary; the parts' own results have all of them.
const SUMMARY_ERRORS: usize = 100;

/// The counts one part (or a handed-back slice of it) contributes to the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct PartCounts {
    files: FileCounts,
    bytes: ByteCounts,
    errors: Vec<FileError>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Summary {
    job_id: String,
    run_id: String,
    parts: u32,
    complete: bool,
    files: FileCounts,
    bytes: ByteCounts,
    errors: Vec<FileError>,
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

fn to_source(f: PartFile) -> SourceFile {
    SourceFile {
        path: f.path,
        size: f.size,
        mtime: f.mtime,
        md5: None,
    }
}

fn to_part(f: &SourceFile) -> PartFile {
    PartFile {
        path: f.path.clone(),
        size: f.size,
        mtime: f.mtime,
    }
}

pub(super) fn json(value: &impl Serialize) -> Result<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| Error::Internal(format!("cannot serialise state: {e}")))
}

/// List the source, keep what changed, and either copy it here (it fits one part) or split it.
pub async fn plan(
    job: &dyn Parted,
    p: &Prepared,
    ctx: &Run<'_>,
    result: &mut JobResult,
) -> Result<()> {
    let (todo, decided) = changed_files(job, p, result).await?;
    let bytes: u64 = todo.iter().map(|f| f.size).sum();
    let options = &p.options;
    if todo.len() <= options.part_max_files as usize && bytes <= options.part_max_bytes.bytes() {
        return copy_here(job, p, ctx, (todo, decided), result).await;
    }
    let slices = split(
        &todo,
        options.part_max_files as usize,
        options.part_max_bytes.bytes(),
    );
    let run_id = new_run_id(job);
    let count = slices.len() as u32;
    record_plan(p, job, &run_id, count, (todo.len(), bytes), result).await?;
    for (index, slice) in slices.iter().enumerate() {
        let spec = part_spec(p.state.as_ref(), &run_id, index as u32, count, slice, "").await?;
        result.follow_up.push(part_message(job, spec)?);
    }
    result.files.found += todo.len() as u64;
    result.run = Some(RunReport {
        run_id: run_id.clone(),
        parts: count,
        complete: false,
        summary: None,
    });
    tracing::info!(job_id = %job.job_id(), %run_id, parts = count, files = todo.len(), bytes, "job planned");
    Ok(())
}

/// The source's files that pass the filter and differ from what the destination holds, with
/// what it held for them (so the copy needs no second look). Files skipped, excluded or
/// failed are counted in `result`; the files returned are counted by whoever copies them.
async fn changed_files(
    job: &dyn Parted,
    p: &Prepared,
    result: &mut JobResult,
) -> Result<(Vec<SourceFile>, HashMap<String, RemoteFile>)> {
    let mut held = MergedListing::new(p.dest.clone(), p.dest.list().await?);
    let mut items = p.source.list(job.root()).await?;
    let mut todo: Vec<SourceFile> = Vec::new();
    let mut decided = HashMap::new();
    let mut names = transfer::NameGuard::new(p.dest.as_ref());
    let failed = |result: &mut JobResult, path: String, e: &Error| {
        result.files.found += 1;
        result.files.failed += 1;
        result.errors.push(FileError::new(Some(path), e));
    };
    while let Some(item) = items.recv().await {
        let f = match item {
            ListItem::Symlink(_) => {
                result.files.symlinks_skipped += 1;
                continue;
            }
            ListItem::Error(path, e) => {
                result.files.failed += 1;
                result.errors.push(FileError::new(Some(path), &e));
                continue;
            }
            ListItem::File(f) if !p.filter.matches(&f.path) => {
                result.files.excluded += 1;
                continue;
            }
            ListItem::File(f) => f,
        };
        if let Err(e) = names.admit(p.dest.as_ref(), &f.path) {
            failed(result, f.path, &e);
            continue;
        }
        let remote = match held.lookup(&f.path).await {
            Ok(remote) => remote,
            Err(e) => {
                failed(result, f.path, &e);
                continue;
            }
        };
        if transfer::decide(&f, remote.as_ref(), &p.options) == Decision::Skip {
            result.files.found += 1;
            result.files.skipped += 1;
            result.bytes.skipped += f.size;
            continue;
        }
        if let Some(remote) = remote {
            decided.insert(f.path.clone(), remote);
        }
        todo.push(f);
    }
    held.finish().await; // its walk meets the dead temporaries the copy removes
    Ok((todo, decided))
}

/// One part's worth: copy it here (the engine counts these files). Out of time, the rest
/// becomes a run of one part; what was done here counts in it.
async fn copy_here(
    job: &dyn Parted,
    p: &Prepared,
    ctx: &Run<'_>,
    (todo, decided): (Vec<SourceFile>, HashMap<String, RemoteFile>),
    result: &mut JobResult,
) -> Result<()> {
    let plan = p.copy_plan(job.root(), ctx, ctx.deadline);
    let left = transfer::copy(plan, Input::Files(todo), Existing::Listed(decided), result).await?;
    if left.is_empty() {
        return Ok(());
    }
    let run_id = new_run_id(job);
    let rest: u64 = left.iter().map(|f| f.size).sum();
    record_plan(p, job, &run_id, 1, (left.len(), rest), result).await?;
    result.run = Some(RunReport {
        run_id: run_id.clone(),
        parts: 1,
        complete: false,
        summary: None,
    });
    let spec = part_spec(p.state.as_ref(), &run_id, 0, 1, &left, "").await?;
    result.follow_up.push(part_message(job, spec)?);
    Ok(())
}

/// What the planner decided, and its own counts (files skipped as unchanged, excluded, links,
/// failures while listing): the summary adds them to the parts'.
#[derive(Debug, Serialize, Deserialize)]
struct PlanRecord {
    job_id: String,
    run_id: String,
    parts: u32,
    /// Files and bytes given to the parts.
    files: usize,
    bytes: u64,
    planned_at_unix_ms: u64,
    counts: PartCounts,
}

async fn record_plan(
    p: &Prepared,
    job: &dyn Parted,
    run_id: &str,
    parts: u32,
    (files, bytes): (usize, u64),
    result: &JobResult,
) -> Result<()> {
    let record = PlanRecord {
        job_id: job.job_id().to_string(),
        run_id: run_id.to_string(),
        parts,
        files,
        bytes,
        planned_at_unix_ms: now_ms() as u64,
        counts: PartCounts {
            files: result.files.clone(),
            bytes: result.bytes.clone(),
            errors: result.errors.clone(),
        },
    };
    p.state
        .put_state(&format!("runs/{run_id}/plan.json"), json(&record)?)
        .await
}

/// A short, stable name for `value`: a duplicate delivery of one message writes the same
/// markers and hands back the same rest, so nothing is counted twice.
pub(super) fn digest(value: &impl Serialize) -> Result<String> {
    let bytes = json(value)?;
    Ok(md5_simd::digest(&bytes)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect())
}

pub(super) fn new_run_id(job: &dyn Parted) -> String {
    let id: String = job.job_id().chars().take(100).collect();
    format!("{id}-{}", now_ms())
}

/// Greedy split: consecutive files (the listing keeps directories together) up to the limits.
pub(super) fn split(
    files: &[SourceFile],
    max_files: usize,
    max_bytes: u64,
) -> Vec<Vec<SourceFile>> {
    let mut parts: Vec<Vec<SourceFile>> = Vec::new();
    let mut bytes = 0;
    for f in files {
        let full = parts
            .last()
            .is_none_or(|p| p.len() >= max_files || (bytes + f.size > max_bytes && !p.is_empty()));
        if full {
            parts.push(Vec::new());
            bytes = 0;
        }
        bytes += f.size;
        if let Some(p) = parts.last_mut() {
            p.push(f.clone());
        }
    }
    parts
}

/// A part's spec: its files inline, or stored beside the data when the list is long.
pub(super) async fn part_spec(
    state: &dyn Destination,
    run_id: &str,
    index: u32,
    count: u32,
    files: &[SourceFile],
    tag: &str,
) -> Result<PartSpec> {
    let list: Vec<PartFile> = files.iter().map(to_part).collect();
    let inline = json(&list)?;
    let mut spec = PartSpec {
        run_id: run_id.to_string(),
        index,
        count,
        files: Vec::new(),
        manifest: None,
        snapshots: Vec::new(),
    };
    if inline.len() <= INLINE_LIMIT {
        spec.files = list;
    } else {
        let name = format!("runs/{run_id}/part-{index}{tag}.files.json");
        state.put_state(&name, inline).await?;
        spec.manifest = Some(name);
    }
    Ok(spec)
}

pub(super) fn part_message(job: &dyn Parted, spec: PartSpec) -> Result<String> {
    serde_json::to_string(&job.with_part(spec))
        .map_err(|e| Error::Internal(format!("cannot serialise a part message: {e}")))
}

/// A job that runs in parts on a queue: a backup, or a restore.
pub(super) trait Parted: Sync {
    fn job_id(&self) -> &str;
    /// The source directory the files' paths are relative to.
    fn root(&self) -> &str;
    /// This job's message for one of its parts.
    fn with_part(&self, spec: PartSpec) -> JobMessage;
}

impl Parted for BackupJob {
    fn job_id(&self) -> &str {
        &self.job_id
    }

    fn root(&self) -> &str {
        &self.source.path
    }

    fn with_part(&self, spec: PartSpec) -> JobMessage {
        JobMessage::Backup(BackupJob {
            part: Some(spec),
            ..self.clone()
        })
    }
}

impl Parted for RestoreJob {
    fn job_id(&self) -> &str {
        &self.job_id
    }

    /// A mirror's paths are relative to its prefix.
    fn root(&self) -> &str {
        ""
    }

    fn with_part(&self, spec: PartSpec) -> JobMessage {
        JobMessage::Restore(RestoreJob {
            part: Some(spec),
            ..self.clone()
        })
    }
}

/// A part's files: in its message, or in the list stored beside the data.
pub(super) async fn part_files(
    state: &dyn Destination,
    part: &PartSpec,
) -> Result<Vec<SourceFile>> {
    let files: Vec<PartFile> = match &part.manifest {
        None => part.files.clone(),
        Some(name) => {
            let data = state.get_state(name).await?.ok_or_else(|| {
                Error::Internal(format!("the part list {name} is missing beside the data"))
            })?;
            serde_json::from_slice(&data)
                .map_err(|e| Error::Internal(format!("the part list {name} is unreadable: {e}")))?
        }
    };
    Ok(files.into_iter().map(to_source).collect())
}

/// Copy one part; hand back what the deadline leaves; when the part is done, record it, and
/// if it was the last one, write the run's summary.
pub async fn run_part(
    job: &dyn Parted,
    part: &PartSpec,
    p: &Prepared,
    ctx: &Run<'_>,
    result: &mut JobResult,
) -> Result<()> {
    result.part = Some(PartReport {
        run_id: part.run_id.clone(),
        index: part.index,
        count: part.count,
    });
    let files = part_files(p.state.as_ref(), part).await?;
    let plan = p.copy_plan(job.root(), ctx, ctx.deadline);
    let files = Input::Files(files);
    let left = transfer::copy(plan, files, Existing::PerFile, result).await?;
    let run = &part.run_id;
    let counts = PartCounts {
        files: result.files.clone(),
        bytes: result.bytes.clone(),
        errors: result.errors.clone(),
    };
    if !left.is_empty() {
        let rest: Vec<PartFile> = left.iter().map(to_part).collect();
        let tag = format!(".rest-{}", digest(&rest)?);
        p.state
            .put_state(
                &format!("runs/{run}/partial/{}-{}.json", part.index, digest(part)?),
                json(&counts)?,
            )
            .await?;
        let spec = part_spec(p.state.as_ref(), run, part.index, part.count, &left, &tag).await?;
        result.follow_up.push(part_message(job, spec)?);
        tracing::info!(run_id = %run, part = part.index, left = left.len(), "part handed back before the deadline");
        return Ok(());
    }
    p.state
        .put_state(
            &format!("runs/{run}/parts/{}.json", part.index),
            json(&counts)?,
        )
        .await?;
    let done = p.state.list_state(&format!("runs/{run}/parts")).await?;
    let complete = done.len() as u32 >= part.count;
    let mut report = RunReport {
        run_id: run.clone(),
        parts: part.count,
        complete,
        summary: None,
    };
    if complete {
        let name = format!("runs/{run}/summary.json");
        let summary = summarise(job, part, p, &done).await?;
        // Two last parts finishing at once (or a duplicate delivery) write it once.
        if p.state.create_state(&name, json(&summary)?).await? {
            tracing::info!(run_id = %run, parts = part.count, copied = summary.files.copied, failed = summary.files.failed, "job complete");
        }
        report.summary = Some(format!(".backup-worker/{name}"));
    }
    result.run = Some(report);
    Ok(())
}

async fn summarise(
    job: &dyn Parted,
    part: &PartSpec,
    p: &Prepared,
    done: &[String],
) -> Result<Summary> {
    let run = &part.run_id;
    let mut total = Summary {
        job_id: job.job_id().to_string(),
        run_id: run.clone(),
        parts: part.count,
        complete: true,
        files: FileCounts::default(),
        bytes: ByteCounts::default(),
        errors: Vec::new(),
    };
    if let Some(data) = p.state.get_state(&format!("runs/{run}/plan.json")).await? {
        let plan: PlanRecord = serde_json::from_slice(&data)
            .map_err(|e| Error::Internal(format!("runs/{run}/plan.json is unreadable: {e}")))?;
        add(&mut total, plan.counts);
    }
    let partial = p.state.list_state(&format!("runs/{run}/partial")).await?;
    let names = done
        .iter()
        .map(|n| format!("runs/{run}/parts/{n}"))
        .chain(partial.iter().map(|n| format!("runs/{run}/partial/{n}")));
    for name in names {
        let Some(data) = p.state.get_state(&name).await? else {
            continue;
        };
        let c: PartCounts = serde_json::from_slice(&data)
            .map_err(|e| Error::Internal(format!("{name} is unreadable: {e}")))?;
        add(&mut total, c);
    }
    total.errors.truncate(SUMMARY_ERRORS);
    Ok(total)
}

fn add(total: &mut Summary, c: PartCounts) {
    let (f, b) = (&mut total.files, &mut total.bytes);
    f.found += c.files.found;
    f.copied += c.files.copied;
    f.skipped += c.files.skipped;
    f.failed += c.files.failed;
    f.excluded += c.files.excluded;
    f.symlinks_skipped += c.files.symlinks_skipped;
    b.copied += c.bytes.copied;
    b.skipped += c.bytes.skipped;
    b.resumed += c.bytes.resumed;
    total.errors.extend(c.errors);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(sizes: &[u64]) -> Vec<SourceFile> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, s)| SourceFile {
                path: format!("f{i}"),
                size: *s,
                mtime: 0,
                md5: None,
            })
            .collect()
    }

    #[test]
    fn split_respects_both_limits() {
        let parts = split(&files(&[1, 1, 1, 1, 1]), 2, 100);
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        let parts = split(&files(&[60, 60, 10, 200]), 10, 100);
        assert_eq!(
            parts.iter().map(Vec::len).collect::<Vec<_>>(),
            [1, 2, 1],
            "a file bigger than the limit gets a part of its own"
        );
        assert!(split(&[], 10, 10).is_empty());
    }
}
