//! One snapshot per run, however many invocations made it. A run too big for one invocation
//! is archived in slices — parts in parallel, and what an invocation did before its deadline —
//! each saved as a snapshot tagged [`PARTIAL_TAG`]; when the last slice is in, their trees are
//! merged into the run's snapshot (`rustic_core`'s merge: directories united, file nodes and
//! their content reused, nothing read or uploaded again) and the slices are deleted.
//!
//! Why slices are real snapshots: a slice's trees and data must be referenced by a snapshot
//! from the moment it is written, or a `prune` in between would delete them. Blocking.

use std::cmp::Ordering;
use std::sync::Arc;

use rustic_core::repofile::{Node, SnapshotFile};
use rustic_core::{Open, Repository, RusticResult};

use super::backend::ObjectBackend;
use super::lock::LockKind;
use super::{
    failure, locked, no_repository, open_existing, snapshot_options, SnapshotSpec, PARTIAL_TAG,
};
use crate::config::Secret;
use crate::error::Result;

/// The newest whole (not partial) snapshot of `root` from `host`: the parent a run compares its
/// files with.
pub fn last_whole<S: Open>(
    repo: &Repository<S>,
    host: &str,
    root: &str,
) -> RusticResult<Option<String>> {
    let whole = repo.get_matching_snapshots(|s| {
        s.hostname == host
            && s.paths.iter().map(String::as_str).eq([root])
            && !s.tags.contains(PARTIAL_TAG)
    })?;
    Ok(whole
        .into_iter()
        .max_by(|a, b| a.time.cmp(&b.time))
        .map(|s| s.id.to_hex().as_str().to_string()))
}

/// Merge the slices `ids` into one snapshot labelled as `spec` says (not partial), then delete
/// every slice of run `run` (a duplicate delivery's too). Returns the run's snapshot id.
pub fn merge(
    backend: Arc<ObjectBackend>,
    password: &Secret,
    ids: &[String],
    run: &str,
    spec: &SnapshotSpec,
) -> Result<String> {
    let repo = open_existing(&backend, password)?.ok_or_else(|| no_repository(&backend))?;
    let failed = |e: Box<rustic_core::RusticError>| failure(&backend, &e);
    let options = snapshot_options(spec)?;
    locked(&backend, &repo.key(), LockKind::Shared, || {
        let repo = repo.to_indexed_ids().map_err(failed)?;
        let slices = repo.get_snapshots(ids).map_err(failed)?;
        let snap = SnapshotFile::from_options(&options).map_err(failed)?;
        let merged = repo
            .merge_snapshots(&slices, &newer_wins, snap)
            .map_err(failed)?;
        let run_slices = repo
            .get_matching_snapshots(|s| s.label == run && s.tags.contains(PARTIAL_TAG))
            .map_err(failed)?;
        let mut slice_ids: Vec<_> = slices.iter().chain(&run_slices).map(|s| s.id).collect();
        slice_ids.sort_unstable();
        slice_ids.dedup();
        repo.delete_snapshots(&slice_ids).map_err(failed)?;
        Ok(merged.id.to_hex().as_str().to_string())
    })
}

/// Slices hold different files; should one path be in two (a duplicate delivery), the newer
/// version wins.
fn newer_wins(a: &Node, b: &Node) -> Ordering {
    a.meta.mtime.cmp(&b.meta.mtime)
}
