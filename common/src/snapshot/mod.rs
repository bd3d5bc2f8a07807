//! Snapshot mode: a backup as a restic repository (format 2, compressed, encrypted with the
//! storage's `RESTIC_PASSWORD`) that stock `restic` reads, checks and restores. Built on
//! `rustic_core` with its backend over our object layer ([`backend`]) and SFTP files streamed
//! into its archiver ([`tree`]); the repository lives under the job's container/share + prefix.
//!
//! Everything here is blocking (as `rustic_core` is): call it inside `spawn_blocking`.

pub mod backend;
pub mod lock;
pub mod merge;
pub mod password;
pub mod retention;
pub mod source;
pub mod tree;

use std::sync::Arc;

use rustic_core::repofile::{MasterKey, SnapshotFile};
use rustic_core::{
    BackupOptions, ConfigOptions, Credentials, KeyOptions, OpenStatus, ParentOptions, ReadBackend,
    Repository, RepositoryBackends, RepositoryOptions, RusticError, SnapshotGroupCriterion,
    SnapshotOptions, WriteBackend,
};
use serde::{Deserialize, Serialize};

use crate::config::Secret;
use crate::error::{Error, Result};
use backend::ObjectBackend;
use lock::{LockKind, RepoLock};
use tree::SourceTree;

/// What a snapshot run adds to the job's result.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotReport {
    /// The snapshot's id, as `restic snapshots` shows it (full length).
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    /// Bytes of every file archived (new, changed and unmodified).
    pub bytes_processed: u64,
    /// Bytes of new file and tree data, before compression.
    pub data_added: u64,
    /// What the new data took in the repository, compressed and encrypted.
    pub data_added_packed: u64,
    /// Whether this run created the repository.
    pub initialised: bool,
}

/// How a snapshot run is labelled and whether it may create the repository.
pub struct SnapshotSpec {
    pub host: String,
    pub tags: Vec<String>,
    /// One of several snapshots a run merges into one at its end (tagged [`PARTIAL_TAG`]), and
    /// the run's id (its label, so the merge finds every slice of the run, even a duplicate's).
    pub partial: Option<String>,
    /// Create the repository when there is none (else that is an error).
    pub init: bool,
    /// The memory this process may use for file data: a repository created here gets pack
    /// sizes that fit it (a pack is held in memory while it fills).
    pub memory: u64,
}

/// The tag of a snapshot that is one slice of a run in progress (a part, or what one
/// invocation archived before its deadline): merged into the run's snapshot and removed when
/// the run completes. Never a parent: unchanged files are judged against the last whole one.
pub const PARTIAL_TAG: &str = "backup-worker-partial";

/// What a snapshot run did, the files it could not read (left out, with why), and the files it
/// left for the next invocation.
pub struct Archived {
    pub report: SnapshotReport,
    pub failed: Vec<(String, Error)>,
    pub left_over: Vec<crate::storage::SourceFile>,
}

impl SnapshotReport {
    /// Add another slice's counts (the report of a run archived in slices).
    pub fn add(&mut self, other: &SnapshotReport) {
        self.files_new += other.files_new;
        self.files_changed += other.files_changed;
        self.files_unmodified += other.files_unmodified;
        self.bytes_processed += other.bytes_processed;
        self.data_added += other.data_added;
        self.data_added_packed += other.data_added_packed;
        self.initialised |= other.initialised;
    }
}

/// Pack sizes for a repository created under `memory`: a data pack of 1/16 of it (4 – 32 MiB,
/// rustic's default being 32 MiB), and never grown past twice that (rustic would grow packs with
/// the repository up to 4 GiB, which no function's memory holds).
fn pack_options(memory: u64) -> ConfigOptions {
    let target = (memory / 16).clamp(4 << 20, 32 << 20);
    ConfigOptions::default()
        .set_datapack_size(bytesize::ByteSize::b(target))
        .set_datapack_size_limit(bytesize::ByteSize::b(2 * target))
        .set_treepack_size_limit(bytesize::ByteSize::b(2 * target))
}

/// Open the repository behind `backend` (creating it if `spec.init` allows and there is none)
/// and archive `tree` as one snapshot (of the files the tree's deadline allowed).
pub fn backup(
    backend: Arc<ObjectBackend>,
    password: &Secret,
    tree: SourceTree,
    spec: &SnapshotSpec,
) -> Result<Archived> {
    let failed = |e: Box<RusticError>| failure(&backend, &e);
    let (repo, exists) = locate(&backend)?;
    let credentials = Credentials::password(password.expose());
    let repo = match (exists, spec.init) {
        (true, _) => repo.open(&credentials).map_err(failed)?,
        (false, true) => repo
            .init(
                &credentials,
                &KeyOptions::default(),
                &pack_options(spec.memory),
            )
            .map_err(failed)?,
        (false, false) => return Err(no_repository(&backend)),
    };
    let initialised = !exists;
    locked(&backend, &repo.key(), LockKind::Shared, || {
        archive(&backend, repo, tree, spec, initialised)
    })
}

/// Run `work` under a lock of `kind` on the repository (see [`lock`]), released after it.
/// `key`: the opened repository's master key (locks are encrypted like everything else).
pub(crate) fn locked<T>(
    backend: &Arc<ObjectBackend>,
    key: &MasterKey,
    kind: LockKind,
    work: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let lock = RepoLock::acquire(backend, key, kind)?;
    let outcome = work();
    lock.release();
    outcome
}

/// Archive `tree` as one snapshot of the opened repository.
fn archive(
    backend: &Arc<ObjectBackend>,
    repo: Repository<OpenStatus>,
    tree: SourceTree,
    spec: &SnapshotSpec,
    initialised: bool,
) -> Result<Archived> {
    let failed = |e: Box<RusticError>| failure(backend, &e);
    // A fresh index each run: a long-lived handle does not see what an earlier backup added.
    let repo = repo.to_indexed_ids().map_err(failed)?;
    let snap = SnapshotFile::from_options(&snapshot_options(spec)?).map_err(failed)?;
    let root = tree.root();
    let parent = merge::last_whole(&repo, &spec.host, &root.to_string_lossy()).map_err(failed)?;
    // The parent is the last whole snapshot, never a slice of a run in progress.
    let parent = ParentOptions::default()
        .group_by(SnapshotGroupCriterion::new().hostname(true).paths(true))
        .force(parent.is_none())
        .parents(parent.into_iter().collect::<Vec<_>>());
    let options = BackupOptions::default().parent_opts(parent);
    let snap = repo
        .archive(&options, &tree, snap, &[root])
        .map_err(failed)?;
    let summary = snap.summary.clone().unwrap_or_default();
    let report = SnapshotReport {
        id: snap.id.to_hex().as_str().to_string(),
        parent: snap.parent.map(|p| p.to_hex().as_str().to_string()),
        files_new: summary.files_new,
        files_changed: summary.files_changed,
        files_unmodified: summary.files_unmodified,
        bytes_processed: summary.total_bytes_processed,
        data_added: summary.data_added,
        data_added_packed: summary.data_added_packed,
        initialised,
    };
    Ok(Archived {
        report,
        failed: tree.failures(),
        left_over: tree.left_over(),
    })
}

/// The snapshot a run writes: its host and tags (and [`PARTIAL_TAG`] for a slice).
fn snapshot_options(spec: &SnapshotSpec) -> Result<SnapshotOptions> {
    let mut options = SnapshotOptions::default().host(spec.host.clone());
    if let Some(run) = &spec.partial {
        options = options.label(run.clone());
    }
    let partial = spec.partial.as_ref().map(|_| PARTIAL_TAG);
    for tag in spec.tags.iter().map(String::as_str).chain(partial) {
        options = options.add_tags(tag).map_err(|e| Error::Snapshot {
            detail: e.display_log(),
        })?;
    }
    Ok(options)
}

/// Whether `password` opens the repository behind `backend`: `Ok(false)` when there is no
/// repository yet (a backup with `init: true` creates it). Test Connection's `repository` step.
pub fn check_repository(backend: Arc<ObjectBackend>, password: &Secret) -> Result<bool> {
    Ok(open_existing(&backend, password)?.is_some())
}

/// What `restic check` would say of the repository behind `backend`: its findings at error
/// level (empty: healthy). Warnings are logged.
pub fn check(
    backend: Arc<ObjectBackend>,
    password: &Secret,
    read_data: bool,
) -> Result<Vec<String>> {
    let repo = open_existing(&backend, password)?.ok_or_else(|| no_repository(&backend))?;
    let options = rustic_core::CheckOptions::default().read_data(read_data);
    let results = locked(&backend, &repo.key(), LockKind::Shared, || {
        repo.check(options).map_err(|e| failure(&backend, &e))
    })?;
    let mut errors = Vec::new();
    for (level, finding) in results.0 {
        if format!("{level:?}") == "Error" {
            errors.push(finding.to_string());
        } else {
            tracing::warn!(finding = %finding, "repository check: warning");
        }
    }
    Ok(errors)
}

/// The repository behind `backend`, not yet opened, and whether there is one (a config).
fn locate(backend: &Arc<ObjectBackend>) -> Result<(Repository<()>, bool)> {
    let failed = |e: Box<RusticError>| failure(backend, &e);
    // No local cache: a function instance has no disk worth keeping between runs.
    let options = RepositoryOptions::default().no_cache(true);
    let be: Arc<dyn WriteBackend> = backend.clone();
    let repo = Repository::new(&options, &RepositoryBackends::new(be, None)).map_err(failed)?;
    let exists = repo.config_id().map_err(failed)?.is_some();
    Ok((repo, exists))
}

/// The repository behind `backend` opened with `password`; `None` when there is none there.
pub(crate) fn open_existing(
    backend: &Arc<ObjectBackend>,
    password: &Secret,
) -> Result<Option<Repository<OpenStatus>>> {
    match locate(backend)? {
        (repo, true) => repo
            .open(&Credentials::password(password.expose()))
            .map(Some)
            .map_err(|e| failure(backend, &e)),
        (_, false) => Ok(None),
    }
}

pub(crate) fn no_repository(backend: &ObjectBackend) -> Error {
    Error::NoRepository {
        location: backend.location(),
    }
}

/// Our error behind a failed repository call when there is one (its code says what is wrong
/// with the storage), else `rustic_core`'s own words.
pub(crate) fn failure(backend: &ObjectBackend, e: &RusticError) -> Error {
    if let Some(ours) = backend.take_error() {
        return ours;
    }
    if e.is_incorrect_password() {
        return Error::WrongPassword {
            location: backend.location(),
        };
    }
    Error::Snapshot {
        detail: e.display_log(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytesize::ByteSize;

    #[test]
    fn packs_fit_the_memory_budget() {
        let small = pack_options(64 << 20);
        assert_eq!(small.set_datapack_size, Some(ByteSize::mib(4)));
        assert_eq!(small.set_datapack_size_limit, Some(ByteSize::mib(8)));
        let large = pack_options(8 << 30);
        assert_eq!(large.set_datapack_size, Some(ByteSize::mib(32)));
        assert_eq!(large.set_treepack_size_limit, Some(ByteSize::mib(64)));
    }
}
