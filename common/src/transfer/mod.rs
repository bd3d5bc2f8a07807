//! The transfer engine: moves files from a [`Source`] to a [`Destination`] in chunks, inside one
//! memory budget. It knows neither SFTP nor Azure, only the two traits.
//!
//! Memory: the job owns `upload_concurrency` chunk slots. A chunk is read only after it got a
//! slot and gives it back when the destination acknowledged it, so at most
//! `chunk_size × upload_concurrency` bytes of file data are in memory, whatever the file sizes.
//! Chunk buffers go back to the job when their last reader drops them and serve the next
//! reads (`buffers`), so the allocator never holds freed chunks beside the live ones.

pub mod budget;
mod buffers;
mod decide;
pub mod digest;
pub mod filter;
mod held;
pub mod names;
pub mod progress;
pub mod reader;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::message::TransferOptions;
use crate::result::{FileError, JobResult};
use crate::storage::checksum::ChunkChecksum;
use crate::storage::{Destination, FileMeta, RemoteFile, Upload};
use crate::storage::{ListItem, Source, SourceFile};
pub use budget::{ChunkSlots, MemoryBudget};
pub use decide::{decide, Decision};
use digest::FileMd5;
pub use filter::Filter;
use held::Held;
pub use held::{Existing, MergedListing};
pub use names::NameGuard;
pub use progress::Progress;
use reader::ResumingReader;

/// Files of several chunks read at the same time. Each open SFTP file keeps its own read-ahead,
/// so this bounds that memory too; chunk slots bound the rest.
pub const FILES_IN_FLIGHT: usize = 4;

/// Permits of the job's file pool: `upload_concurrency` of them (at least [`FILES_IN_FLIGHT`]).
/// A file of one chunk takes one, a bigger file a quarter of the pool: up to `upload_concurrency`
/// small files go at once (their latency, not their bytes, is what bounds them) while big files
/// stay at four; every file's chunks still share the one budget of chunk slots.
fn file_pool(options: &TransferOptions) -> (usize, u32) {
    let pool = (options.upload_concurrency as usize).max(FILES_IN_FLIGHT);
    (pool, (pool / FILES_IN_FLIGHT) as u32)
}

/// How many times a file is tried when its error is retryable (network, 5xx, changed source).
const FILE_ATTEMPTS: usize = 2;

enum Outcome {
    Copied {
        bytes: u64,
        resumed: u64,
    },
    Unchanged(u64),
    /// Stopped before the deadline; the file goes back on the queue.
    HandedBack,
}

/// What to copy: everything found by walking the root, or a list made earlier (a part).
pub enum Input {
    Walk,
    Files(Vec<SourceFile>),
}

/// Where the copy stops taking new files, so that the rest can be handed to another instance.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: Instant,
    /// Time kept in hand for the files already started and for handing the rest back.
    pub margin: Duration,
}

impl Deadline {
    /// Whether it is time to stop taking new work.
    pub fn is_near(&self) -> bool {
        Instant::now() + self.margin >= self.at
    }

    /// Whether the deadline itself is past (not only its margin).
    pub fn has_passed(&self) -> bool {
        Instant::now() >= self.at
    }
}

/// Where a copy reads and writes, and how: everything the engine needs besides the files.
pub struct CopyPlan<'a> {
    pub source: Arc<dyn Source>,
    pub dest: Arc<dyn Destination>,
    /// The source directory that file paths are relative to.
    pub root: &'a str,
    pub filter: &'a Filter,
    pub options: &'a TransferOptions,
    pub progress: Arc<Progress>,
    /// When set, files not started before it comes near are handed back.
    pub deadline: Option<Deadline>,
    /// The process's memory for file data, shared with every other job it runs.
    pub memory: Arc<MemoryBudget>,
}

/// Copy the files of `input` that pass the plan's filter and differ from what the destination
/// holds (`existing`, or a fresh listing). Per-file problems go into `result`; an `Err` means the
/// job itself could not run. Returns the files not started because the deadline came near.
pub async fn copy(
    plan: CopyPlan<'_>,
    input: Input,
    existing: Existing,
    result: &mut JobResult,
) -> Result<Vec<SourceFile>> {
    let CopyPlan {
        source,
        dest,
        root,
        filter,
        options,
        progress,
        deadline,
        memory,
    } = plan;
    let mut held = Held::new(existing, &dest).await?;
    let mut items = match input {
        Input::Walk => source.list(root).await?,
        Input::Files(files) => {
            let (tx, rx) = tokio::sync::mpsc::channel(1024);
            tokio::spawn(async move {
                for f in files {
                    if tx.send(ListItem::File(f)).await.is_err() {
                        return;
                    }
                }
            });
            rx
        }
    };
    let mut left_over = Vec::new();
    let chunk_checksum = dest.capability().chunk_checksum;
    let chunk_size = options.chunk_size.bytes() as usize;
    let copier = Arc::new(FileCopier {
        source,
        dest,
        root: root.to_string(),
        chunk_size,
        max_stream_size: options.max_stream_size.bytes(),
        budget: ChunkSlots::new(options.upload_concurrency, chunk_size, memory),
        progress: progress.clone(),
        deadline,
        chunk_checksum,
    });
    let mut names = NameGuard::new(copier.dest.as_ref());
    let (pool, big_file_weight) = file_pool(options);
    let file_slots = Arc::new(Semaphore::new(pool));
    let mut tasks: JoinSet<(SourceFile, Result<Outcome>)> = JoinSet::new();

    while let Some(item) = items.recv().await {
        let file = match item {
            ListItem::File(f) if !left_over.is_empty() => {
                left_over.push(f);
                continue;
            }
            ListItem::File(f) if deadline.is_some_and(|d| d.is_near()) => {
                tracing::info!(path = %f.path, "deadline near: handing the remaining files back");
                left_over.push(f);
                continue;
            }
            ListItem::File(f) => f,
            ListItem::Symlink(path) => {
                tracing::info!(%path, "symbolic link not followed");
                result.files.symlinks_skipped += 1;
                continue;
            }
            ListItem::Error(path, e) => {
                tracing::warn!(%path, code = e.code(), error = %e, "cannot list");
                result.files.failed += 1;
                result.errors.push(FileError::new(Some(path), &e));
                continue;
            }
        };
        if !filter.matches(&file.path) {
            result.files.excluded += 1;
            continue;
        }
        result.files.found += 1;
        if let Err(e) = names.admit(copier.dest.as_ref(), &file.path) {
            tracing::warn!(path = %file.path, code = e.code(), error = %e, "cannot store this name");
            result.files.failed += 1;
            result.errors.push(FileError::new(Some(file.path), &e));
            continue;
        }
        let remote = match held.lookup(&file.path).await {
            Ok(remote) => remote,
            Err(e) => {
                result.files.failed += 1;
                result.errors.push(FileError::new(Some(file.path), &e));
                continue;
            }
        };
        let decision = decide(&file, remote.as_ref(), options);
        if decision == Decision::Skip {
            result.files.skipped += 1;
            result.bytes.skipped += file.size;
            continue;
        }
        progress.file_queued(file.size);
        let weight = if file.size <= copier.chunk_size as u64 {
            1
        } else {
            big_file_weight
        };
        let slot = file_slots
            .clone()
            .acquire_many_owned(weight)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let copier = copier.clone();
        tasks.spawn(async move {
            let _slot = slot;
            let outcome = copier
                .copy_with_retry(&file, remote.as_ref(), decision)
                .await;
            (file, outcome)
        });
        while let Some(done) = tasks.try_join_next() {
            left_over.extend(record(done, result, &progress));
        }
    }
    while let Some(done) = tasks.join_next().await {
        left_over.extend(record(done, result, &progress));
    }
    // Temporaries of interrupted runs that nobody has touched for long; only once the listing
    // was read whole (a hand-back leaves them to the invocation that finishes).
    if left_over.is_empty() && held.finish().await {
        match copier.dest.clean_up_incomplete().await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed temporaries of interrupted runs"),
            // The copy is done; a dead temporary stays for the next run to remove.
            Err(e) => tracing::warn!(code = e.code(), error = %e, "cannot remove a dead temporary"),
        }
    }
    Ok(left_over)
}

/// Count a finished file; a file handed back before the deadline is returned.
fn record(
    done: std::result::Result<(SourceFile, Result<Outcome>), tokio::task::JoinError>,
    result: &mut JobResult,
    progress: &Progress,
) -> Option<SourceFile> {
    progress.file_finished();
    match done {
        Ok((_, Ok(Outcome::Copied { bytes, resumed }))) => {
            result.files.copied += 1;
            result.bytes.copied += bytes;
            result.bytes.resumed += resumed;
        }
        Ok((file, Ok(Outcome::HandedBack))) => {
            // Counted by the invocation that finishes it.
            result.files.found = result.files.found.saturating_sub(1);
            return Some(file);
        }
        Ok((_, Ok(Outcome::Unchanged(n)))) => {
            result.files.skipped += 1;
            result.bytes.skipped += n;
        }
        Ok((file, Err(e))) => {
            tracing::warn!(path = %file.path, code = e.code(), error = %e, "file failed");
            result.files.failed += 1;
            result.errors.push(FileError::new(Some(file.path), &e));
        }
        Err(join) => {
            result.files.failed += 1;
            result.errors.push(FileError::new(
                None,
                &Error::Internal(format!("copy task failed: {join}")),
            ));
        }
    }
    None
}

/// Wait for every chunk in flight; the first failure is the answer.
async fn drain(in_flight: &mut JoinSet<Result<()>>) -> Result<()> {
    while let Some(done) = in_flight.join_next().await {
        done.map_err(|e| Error::Internal(e.to_string()))??;
    }
    Ok(())
}

/// Bytes that come with a stored MD5 (a mirror being restored) must match it before they are
/// committed: a damaged or tampered copy never replaces a good file.
fn check_stored_md5(file: &SourceFile, reader: &ResumingReader, read: [u8; 16]) -> Result<()> {
    match file.md5.or(reader.stored_md5()) {
        Some(stored) if stored != read => Err(Error::HashMismatch {
            path: file.path.clone(),
            stored: hex::encode(stored),
            read: hex::encode(read),
        }),
        _ => Ok(()),
    }
}

struct FileCopier {
    source: Arc<dyn Source>,
    dest: Arc<dyn Destination>,
    root: String,
    chunk_size: usize,
    max_stream_size: u64,
    /// One slot = one chunk in memory (the job's share of the process budget).
    budget: ChunkSlots,
    progress: Arc<Progress>,
    deadline: Option<Deadline>,
    chunk_checksum: ChunkChecksum,
}

impl FileCopier {
    async fn copy_with_retry(
        &self,
        file: &SourceFile,
        remote: Option<&RemoteFile>,
        decision: Decision,
    ) -> Result<Outcome> {
        let mut attempt = 1;
        loop {
            match self.copy(file, remote, decision).await {
                Err(e) if e.is_retryable() && attempt < FILE_ATTEMPTS => {
                    tracing::info!(path = %file.path, code = e.code(), attempt, "retrying file");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn copy(
        &self,
        file: &SourceFile,
        remote: Option<&RemoteFile>,
        decision: Decision,
    ) -> Result<Outcome> {
        if file.size > self.max_stream_size {
            return Err(Error::TooLarge {
                path: file.path.clone(),
                limit: self.max_stream_size,
            });
        }
        if decision == Decision::CompareHashes {
            if let Some(r) = remote {
                let stored = match r.md5 {
                    Some(md5) => Some(md5),
                    None => self.dest.stored_md5(&file.path).await?,
                };
                if let Some(stored) = stored {
                    if self.hash_source(file).await? == stored {
                        return Ok(Outcome::Unchanged(file.size));
                    }
                }
            }
        }
        if file.size <= self.chunk_size as u64 {
            let mut reader = self.open(file).await?;
            self.copy_small(file, &mut reader).await
        } else {
            self.copy_chunked(file).await
        }
    }

    async fn open(&self, file: &SourceFile) -> Result<ResumingReader> {
        Ok(
            ResumingReader::open(self.source.clone(), &self.root, &file.path)
                .await?
                .recycling(self.budget.buffers()),
        )
    }

    /// Open `file` and read its first chunk (`want` bytes) inside a slot.
    async fn open_and_read(
        &self,
        file: &SourceFile,
        want: usize,
    ) -> Result<(ResumingReader, Arc<budget::ChunkSlot>, bytes::Bytes)> {
        let slot = Arc::new(self.take_slot(want as u64).await?);
        let mut reader = self.open(file).await?;
        let chunk = reader.read_chunk(want).await?;
        Ok((reader, slot, chunk))
    }

    async fn take_slot(&self, bytes: u64) -> Result<budget::ChunkSlot> {
        self.budget.take(bytes).await
    }

    /// A file that fits in one chunk: one read, one request.
    async fn copy_small(&self, file: &SourceFile, reader: &mut ResumingReader) -> Result<Outcome> {
        let _slot = self.take_slot(file.size).await?;
        let data = reader.read_chunk(file.size as usize).await?;
        self.expect_end(file, reader, data.len() as u64).await?;
        let meta = FileMeta {
            size: file.size,
            mtime: file.mtime,
            md5: digest::md5_of(data.clone()).await?,
        };
        check_stored_md5(file, reader, meta.md5)?;
        self.dest.put_small(&file.path, data, &meta).await?;
        self.progress.bytes_acknowledged(file.size);
        Ok(Outcome::Copied {
            bytes: file.size,
            resumed: 0,
        })
    }

    /// A file of several chunks: chunks go up concurrently, the file appears at commit. Chunks
    /// an interrupted earlier attempt already stored are read (for the file's MD5) but not sent
    /// again; near the deadline the file is handed back, its staged chunks kept for the next try.
    ///
    /// Opening and the first read go beside the upload's start, the end-of-file check beside
    /// the last uploads: far away, round trips waited for in a row are a file's slowest steps.
    async fn copy_chunked(&self, file: &SourceFile) -> Result<Outcome> {
        let first_want = self.chunk_size.min(file.size as usize);
        let starting = async {
            let upload = self
                .dest
                .start_upload(&file.path, file.size, file.mtime, self.chunk_size as u64)
                .await?;
            let resumable = upload.resumable_chunks().await;
            Ok::<_, Error>((upload, resumable))
        };
        let (first, started) = tokio::join!(self.open_and_read(file, first_want), starting);
        let (upload, resumable) = started?;
        let (first, resumable) = match (first, resumable) {
            (Ok(first), Ok(resumable)) => (first, resumable),
            (Err(e), _) | (_, Err(e)) => {
                self.stop(upload.as_ref(), e.is_transient()).await;
                return Err(e);
            }
        };
        let (mut reader, first_slot, first_chunk) = first;
        let reader = &mut reader;
        let mut first = Some((first_slot, first_chunk));
        let mut in_flight: JoinSet<Result<()>> = JoinSet::new();
        let mut whole = FileMd5::new();
        let mut index: u64 = 0;
        let mut read: u64 = 0;
        let mut resumed: u64 = 0;
        let outcome: Result<bool> = async {
            while read < file.size {
                if self.deadline_near() {
                    drain(&mut in_flight).await?;
                    return Ok(false);
                }
                let want = (file.size - read).min(self.chunk_size as u64) as usize;
                let (slot, chunk) = match first.take() {
                    Some(read) => read,
                    None => {
                        let slot = Arc::new(self.take_slot(want as u64).await?);
                        (slot, reader.read_chunk(want).await?)
                    }
                };
                if chunk.len() < want {
                    return Err(self.changed(file, read + chunk.len() as u64));
                }
                let offset = read;
                let len = chunk.len() as u64;
                read += len;
                // The file's MD5 goes on beside the upload; the chunk's own request carries
                // its CRC-64 (see `storage::checksum`).
                whole.update(chunk.clone(), slot.clone()).await?;
                let sum = self.chunk_checksum.of(&chunk).await?;
                // A staged chunk is reused only if it holds exactly these bytes.
                if resumable.contains(&index)
                    && upload.reuse_chunk(index, offset, &chunk, sum).await?
                {
                    drop(slot);
                    resumed += len;
                    self.progress.bytes_acknowledged(len);
                    index += 1;
                    continue;
                }
                let (upload, progress, i) = (upload.clone(), self.progress.clone(), index);
                in_flight.spawn(async move {
                    let r = upload.put_chunk(i, offset, chunk, sum).await;
                    drop(slot);
                    if r.is_ok() {
                        progress.bytes_acknowledged(len);
                    }
                    r
                });
                index += 1;
                // Fail fast: stop reading as soon as one chunk failed.
                while let Some(done) = in_flight.try_join_next() {
                    done.map_err(|e| Error::Internal(e.to_string()))??;
                }
            }
            // The end-of-file check, the MD5's last chunk and what the destination records
            // ahead of its commit go beside the last uploads: far away, each is a round trip.
            let finishing = async {
                self.expect_end(file, reader, read).await?;
                let md5 = whole.finish().await?;
                check_stored_md5(file, reader, md5)?;
                let (size, mtime) = (file.size, file.mtime);
                let meta = FileMeta { size, mtime, md5 };
                upload.read_whole(&meta).await?;
                Ok(meta)
            };
            let (meta, ()) = tokio::try_join!(finishing, drain(&mut in_flight))?;
            upload.commit(index, &meta).await?;
            Ok(true)
        }
        .await;
        match outcome {
            Ok(true) => Ok(Outcome::Copied {
                bytes: file.size,
                resumed,
            }),
            Ok(false) => {
                tracing::info!(path = %file.path, staged = read, "deadline near: file handed back mid-way");
                self.stop(upload.as_ref(), true).await;
                Ok(Outcome::HandedBack)
            }
            Err(e) => {
                in_flight.abort_all();
                // What is staged stays for the retry when the failure may pass.
                self.stop(upload.as_ref(), e.is_transient()).await;
                Err(e)
            }
        }
    }

    /// End an upload without publishing it: keep its staged chunks for a later attempt when
    /// `keep` and the destination can resume, else remove them.
    async fn stop(&self, upload: &dyn Upload, keep: bool) {
        if keep && self.dest.capability().resumable_staging {
            upload.release().await;
        } else {
            upload.abort().await;
        }
    }

    fn deadline_near(&self) -> bool {
        self.deadline.is_some_and(|d| d.is_near())
    }

    /// After reading the listed size, the file must be at its end: a file that grew while it
    /// was copied is not committed (it will be copied whole next run).
    async fn expect_end(
        &self,
        file: &SourceFile,
        reader: &mut ResumingReader,
        read: u64,
    ) -> Result<()> {
        if read != file.size {
            return Err(self.changed(file, read));
        }
        // Both at once: on a far link each is a round trip.
        let (more, now) = tokio::join!(
            reader.read_chunk(1),
            self.source.stat(&self.root, &file.path)
        );
        let more = more?;
        if !more.is_empty() {
            return Err(self.changed(file, read + more.len() as u64));
        }
        // Rewritten in place (same size) while it was read: its mtime tells.
        match now? {
            Some((size, mtime)) if size == file.size && mtime == file.mtime => Ok(()),
            Some((size, _)) => Err(self.changed(file, size)),
            None => Err(self.changed(file, 0)),
        }
    }

    fn changed(&self, file: &SourceFile, actual: u64) -> Error {
        Error::SourceChanged {
            path: file.path.clone(),
            expected: file.size,
            actual,
        }
    }

    /// MD5 of the source file: computed by the source where it lives if it can, else read
    /// chunk by chunk inside the budget.
    async fn hash_source(&self, file: &SourceFile) -> Result<[u8; 16]> {
        if let Some(md5) = self.source.remote_md5(&self.root, &file.path).await? {
            return Ok(md5);
        }
        let read = reader::read_md5(
            &self.source,
            &self.root,
            &file.path,
            self.chunk_size,
            &self.budget,
        )
        .await?;
        Ok(read.md5)
    }
}
