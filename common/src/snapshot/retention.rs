//! Retention: `forget` (which snapshots a policy keeps, the others removed) and `prune` (the
//! data no snapshot references any more, deleted at once), as restic does them, on
//! `rustic_core`. Blocking, like the rest of [`super`].

use std::str::FromStr;
use std::sync::Arc;

use rustic_core::jiff::{Span, Zoned};
use rustic_core::{
    ForgetGroups, Grouped, KeepOptions, OpenStatus, PruneOptions, Repository,
    SnapshotGroupCriterion,
};
use serde::{Deserialize, Serialize};

use super::backend::ObjectBackend;
use super::lock::LockKind;
use super::{failure, locked, no_repository, open_existing};
use crate::config::Secret;
use crate::error::Result;

/// What a forget did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ForgetReport {
    /// Snapshots the policy keeps.
    pub kept: u64,
    /// The ids of the snapshots removed (full length, as `restic snapshots` shows them).
    pub removed: Vec<String>,
}

/// What a prune did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PruneReport {
    /// Packs deleted whole (nothing in them was used).
    pub packs_deleted: u64,
    /// Packs whose used blobs were copied into new packs before they were deleted.
    pub packs_repacked: u64,
    /// Bytes of unused blobs the repository no longer holds.
    pub bytes_freed: u64,
    /// Pack files no index knew of (an interrupted upload's), deleted.
    pub unreferenced_packs_deleted: u64,
}

/// A restic duration (`30d`, `1y6m`, `12h`) as `keep_within` takes it.
pub fn parse_within(text: &str) -> std::result::Result<Span, String> {
    Span::from_str(text).map_err(|e| format!("is not a duration like `30d` or `1y6m`: {e}"))
}

/// How snapshots are grouped before a policy applies: `host`, `paths`, `tags`, comma-separated.
pub fn parse_group_by(text: &str) -> std::result::Result<SnapshotGroupCriterion, String> {
    let words = text.split(',').map(str::trim);
    if let Some(bad) = words
        .clone()
        .find(|w| !matches!(*w, "host" | "paths" | "tags"))
    {
        return Err(format!(
            "`{bad}` is not a grouping: use `host`, `paths` and `tags`, comma-separated"
        ));
    }
    let words: Vec<&str> = words.collect();
    SnapshotGroupCriterion::from_str(&words.join(",")).map_err(|e| e.to_string())
}

/// Remove the snapshots `keep` does not keep, group by group.
pub fn forget(
    backend: Arc<ObjectBackend>,
    password: &Secret,
    keep: &KeepOptions,
    group_by: SnapshotGroupCriterion,
) -> Result<ForgetReport> {
    let repo = open_existing(&backend, password)?.ok_or_else(|| no_repository(&backend))?;
    locked(&backend, &repo.key(), LockKind::Exclusive, || {
        forget_under_lock(&backend, &repo, keep, group_by)
    })
}

fn forget_under_lock(
    backend: &Arc<ObjectBackend>,
    repo: &Repository<OpenStatus>,
    keep: &KeepOptions,
    group_by: SnapshotGroupCriterion,
) -> Result<ForgetReport> {
    let failed = |e: Box<rustic_core::RusticError>| failure(backend, &e);
    let snapshots = repo.get_all_snapshots().map_err(failed)?;
    let groups = Grouped::from_items(snapshots, group_by);
    let decided = ForgetGroups::from_grouped_snapshots_with_retention(groups, keep, &Zoned::now())
        .map_err(failed)?;
    let mut report = ForgetReport::default();
    for group in &decided.0 {
        for snap in &group.items {
            if snap.keep {
                report.kept += 1;
            } else {
                report
                    .removed
                    .push(snap.snapshot.id.to_hex().as_str().to_string());
            }
        }
    }
    let ids = decided.into_forget_ids();
    if !ids.is_empty() {
        repo.delete_snapshots(&ids).map_err(failed)?;
    }
    Ok(report)
}

/// Delete what no snapshot references: unused packs at once (a function has no later run to
/// come back to, unlike restic's two-phase delete), partly used ones repacked as restic would.
pub fn prune(backend: Arc<ObjectBackend>, password: &Secret) -> Result<PruneReport> {
    let repo = open_existing(&backend, password)?.ok_or_else(|| no_repository(&backend))?;
    locked(&backend, &repo.key(), LockKind::Exclusive, || {
        prune_under_lock(&backend, &repo)
    })
}

fn prune_under_lock(
    backend: &Arc<ObjectBackend>,
    repo: &Repository<OpenStatus>,
) -> Result<PruneReport> {
    let failed = |e: Box<rustic_core::RusticError>| failure(backend, &e);
    let options = PruneOptions::default().instant_delete(true);
    let plan = repo.prune_plan(&options).map_err(failed)?;
    let stats = &plan.stats;
    let report = PruneReport {
        // Unused now, and any an earlier two-phase prune (restic's, rustic's) marked.
        packs_deleted: stats.packs.unused + stats.packs_to_delete.remove,
        packs_repacked: stats.packs.repack,
        bytes_freed: stats.size_sum().remove + stats.size_sum().repackrm,
        unreferenced_packs_deleted: stats.packs_unref,
    };
    repo.prune(&options, plan).map_err(failed)?;
    Ok(report)
}
