//! A backup in snapshot mode: the source's files that pass the filter, archived as one snapshot
//! of the restic repository under the destination's container/share + prefix. A run too big for
//! one invocation is archived in slices merged at its end ([`super::snapshot_parts`]).

use std::sync::Arc;

use rustic_core::ReadBackend;
use tokio::runtime::Handle;

use super::snapshot_parts::Slices;
use super::{storages, Run};
use crate::config::Secret;
use crate::error::{Error, Result};
use crate::message::{BackupJob, DestinationRef};
use crate::result::{FileError, JobResult};
use crate::snapshot;
use crate::snapshot::backend::ObjectBackend;
use crate::snapshot::lock::RepoLock;
use crate::snapshot::password::repository_password;
use crate::snapshot::source::SnapshotSource;
use crate::snapshot::tree::SourceTree;
use crate::storage::{ListItem, Source, SourceFile};
use crate::transfer::Filter;

/// The seed's default for `maxConnections`: parallel uploads into the repository.
const DEFAULT_CONNECTIONS: u32 = 5;

pub(super) async fn run(job: &BackupJob, ctx: &Run<'_>, result: &mut JobResult) -> Result<()> {
    let filter = Filter::new(&job.include, &job.exclude)?;
    let source = storages::source(ctx.profiles, &job.source)?;
    let (backend, password) = repository(ctx.profiles, &job.destination, "destination")?;
    result.source = Some(format!("{}{}", source.describe(), job.source.path));
    result.destination = Some(backend.location());
    let slices = Slices::new(
        job,
        backend.destination(),
        backend.clone(),
        password.clone(),
    );
    if slices.already_merged(result).await? {
        return Ok(());
    }
    let files = match &job.part {
        Some(part) => slices.part_files(part, result).await?,
        None => collect(source.as_ref(), &job.source.path, &filter, result).await?,
    };
    if job.part.is_none() {
        if files.is_empty() {
            return Ok(()); // reported as `no_files`; an empty snapshot helps nobody
        }
        if ctx.fan_out && slices.too_big(&files) {
            return slices.plan(files, result).await;
        }
    }
    // With a deadline (on a platform) or in a part, what this invocation archives is a slice.
    // Inside its margin it still archives one file (every invocation moves the run on); only
    // past the deadline itself does it hand everything back.
    let partial = job.part.is_some() || ctx.deadline.is_some();
    if partial && ctx.deadline.is_some_and(|d| d.has_passed()) {
        return slices.hand_back(files, Vec::new(), result).await;
    }
    let read_size = job.options.chunk_size.bytes() as usize;
    let tree = SourceTree::new(
        source,
        &job.source.path,
        files,
        Handle::current(),
        read_size,
    )
    .until(ctx.deadline.filter(|_| partial));
    let spec = slices.spec(partial, ctx.memory.total());
    let mut archived = blocking(move || snapshot::backup(backend, &password, tree, &spec)).await?;
    for (path, e) in archived.failed.drain(..) {
        tracing::warn!(%path, code = e.code(), error = %e, "left out of the snapshot");
        result.files.failed += 1;
        result.errors.push(FileError::new(Some(path), &e));
    }
    let report = &archived.report;
    result.files.copied = report.files_new + report.files_changed;
    result.files.skipped = report.files_unmodified;
    result.bytes.copied = report.data_added_packed;
    tracing::info!(snapshot = %report.id, partial, initialised = report.initialised, "snapshot saved");
    if !partial {
        result.snapshot = Some(archived.report);
        return Ok(());
    }
    slices.after(archived, ctx, result).await
}

/// The snapshot `id` of the repository at `place`, opened as a [`Source`] for a restore, and
/// the shared lock held while it is read (give it to [`release`]).
pub(super) async fn open_snapshot(
    profiles: &crate::config::Profiles,
    place: &DestinationRef,
    id: &str,
) -> Result<(Arc<dyn Source>, RepoLock)> {
    let (backend, password) = repository(profiles, place, "source")?;
    let id = id.to_string();
    let (source, lock) = blocking(move || SnapshotSource::open(backend, &password, &id)).await?;
    Ok((Arc::new(source), lock))
}

/// Remove a repository lock (a storage call: off the runtime's threads).
pub(super) async fn release(lock: RepoLock) {
    let _ = blocking(move || {
        lock.release();
        Ok(())
    })
    .await;
}

/// The restic repository at `place` (a container or share + prefix, the message's `role`
/// field): `rustic_core`'s backend over that storage, and the storage's repository password.
pub fn repository(
    profiles: &crate::config::Profiles,
    place: &DestinationRef,
    role: &str,
) -> Result<(Arc<ObjectBackend>, Secret)> {
    let password = repository_password(profiles, &place.storage)?;
    let dest = storages::destination(profiles, place)?;
    let read = storages::mirror(profiles, place, role)?;
    let parallel = dest
        .capability()
        .max_parallel_requests
        .unwrap_or(DEFAULT_CONNECTIONS);
    let backend = ObjectBackend::new(dest, read, Handle::current(), parallel as usize);
    Ok((Arc::new(backend), password))
}

/// Run a (blocking) repository call on a blocking thread, never on the runtime's.
pub(super) async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| Error::Internal(format!("repository task failed: {e}")))?
}

/// The files under `root` that pass `filter`; what cannot be listed is counted in `result`.
async fn collect(
    source: &dyn Source,
    root: &str,
    filter: &Filter,
    result: &mut JobResult,
) -> Result<Vec<SourceFile>> {
    let mut items = source.list(root).await?;
    let mut files = Vec::new();
    while let Some(item) = items.recv().await {
        match item {
            ListItem::File(f) if filter.matches(&f.path) => files.push(f),
            ListItem::File(_) => result.files.excluded += 1,
            ListItem::Symlink(_) => result.files.symlinks_skipped += 1,
            ListItem::Error(path, e) => {
                result.files.failed += 1;
                result.errors.push(FileError::new(Some(path), &e));
            }
        }
    }
    result.files.found = files.len() as u64;
    Ok(files)
}
