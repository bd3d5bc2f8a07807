//! How a backup stores what it copies: a mirror (files as files), or snapshots in a restic
//! repository.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::BackupJob;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BackupMode {
    /// Every file as a file (blob) under the prefix, readable by any tool; incremental by
    /// size and mtime.
    #[default]
    Mirror,
    /// One encrypted, deduplicated snapshot per run in a restic repository under the prefix
    /// (password: the storage's `RESTIC_PASSWORD`); stock `restic` reads it.
    Snapshot,
}

/// The fields that only mean something in snapshot mode, refused in a mirror backup (a user who
/// wrote them expected a snapshot); and what snapshot mode cannot do yet.
pub(super) fn validate(job: &BackupJob) -> Result<()> {
    match job.mode {
        BackupMode::Mirror => {
            if job.init {
                return Err(Error::invalid_field(
                    "init",
                    "applies to `mode: snapshot` only",
                ));
            }
            if !job.tags.is_empty() {
                return Err(Error::invalid_field(
                    "tags",
                    "apply to `mode: snapshot` only",
                ));
            }
            if job.part.as_ref().is_some_and(|p| !p.snapshots.is_empty()) {
                return Err(Error::invalid_field(
                    "part.snapshots",
                    "apply to `mode: snapshot` only",
                ));
            }
        }
        BackupMode::Snapshot => {
            for (i, tag) in job.tags.iter().enumerate() {
                if tag.is_empty() || tag.contains(',') || tag.chars().any(char::is_control) {
                    return Err(Error::invalid_field(
                        format!("tags[{i}]"),
                        "must be non-empty, without commas or control characters",
                    ));
                }
            }
        }
    }
    Ok(())
}
