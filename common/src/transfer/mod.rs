//! The transfer engine: moves files from a [`Source`] to a [`Destination`] in chunks, inside one
//! memory budget. It knows neither SFTP nor Azure, only the two traits.
//!
//! Memory: the job owns `upload_concurrency` chunk slots. A chunk is read only after it got a
//! slot and gives it back when the destination acknowledged it, so at most
//! `chunk_size × upload_concurrency` bytes of file data are in memory, whatever the file sizes.
//! Chunk buffers go back to the job when their last reader drops them and serve the next
//! reads (`buffers`), so the allocator never holds freed chunks beside the live ones.

mod admit;
pub mod budget;
mod buffers;
mod chunked;
mod decide;
pub mod digest;
mod file;
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
use crate::storage::{Destination, ListItem, Source, SourceFile};
use admit::{Admission, Admitted};
pub use budget::{ChunkSlots, MemoryBudget};
pub use decide::{decide, Decision};
use file::{FileCopier, Outcome};
pub use filter::Filter;
use held::Held;
pub use held::{Existing, MergedListing};
pub use names::NameGuard;
pub use progress::Progress;

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
    let copier = Arc::new(FileCopier::new(&plan));
    let CopyPlan {
        source,
        dest,
        root,
        filter,
        options,
        progress,
        deadline,
        ..
    } = plan;
    // Both listings start together (a listing-bound rerun waits for the slower, not the sum);
    // the destination's error comes first, so a missing container is what the job reports.
    let (held, items) = tokio::join!(Held::new(existing, &dest), async {
        match input {
            Input::Walk => source.list(root).await,
            Input::Files(files) => Ok(feed(files)),
        }
    });
    let held = held?;
    let mut items = items?;
    let mut admission = Admission {
        filter,
        options,
        deadline,
        names: NameGuard::new(dest.as_ref()),
        held,
        dest: dest.clone(),
    };
    let (pool, big_file_weight) = file_pool(options);
    let file_slots = Arc::new(Semaphore::new(pool));
    let mut tasks: JoinSet<(SourceFile, Result<Outcome>)> = JoinSet::new();
    let mut left_over = Vec::new();
    while let Some(item) = items.recv().await {
        let (file, remote, decision) =
            match admission.admit(item, !left_over.is_empty(), result).await {
                Admitted::Copy {
                    file,
                    remote,
                    decision,
                } => (file, remote, decision),
                Admitted::HandBack(file) => {
                    left_over.push(file);
                    continue;
                }
                Admitted::Counted => continue,
            };
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
    if left_over.is_empty() && admission.finish().await {
        clean_up_incomplete(dest.as_ref()).await;
    }
    Ok(left_over)
}

/// A list made earlier, as a listing.
fn feed(files: Vec<SourceFile>) -> tokio::sync::mpsc::Receiver<ListItem> {
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

async fn clean_up_incomplete(dest: &dyn Destination) {
    match dest.clean_up_incomplete().await {
        Ok(0) => {}
        Ok(removed) => tracing::info!(removed, "removed temporaries of interrupted runs"),
        // The copy is done; a dead temporary stays for the next run to remove.
        Err(e) => tracing::warn!(code = e.code(), error = %e, "cannot remove a dead temporary"),
    }
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
