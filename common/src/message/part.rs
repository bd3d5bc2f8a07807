//! A part of a planned job: the slice of its files one instance copies (or archives), as the
//! worker writes it into the messages it fans out.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{paths, validate_job_id};
use crate::error::{Error, Result};

/// One part of a planned job: a slice of its files, copied by whichever instance takes it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PartSpec {
    /// Identifies one run of the job; its state lives under `.backup-worker/runs/<run_id>/`.
    pub run_id: String,
    pub index: u32,
    pub count: u32,
    /// The files, when they fit in the message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PartFile>,
    /// Otherwise the state object holding them (`runs/<run_id>/part-<i>.files.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// Snapshot mode: the partial snapshots this part saved before it was handed back at a
    /// deadline (their ids); merged with the rest when the run completes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<String>,
}

/// A file as the planner listed it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PartFile {
    pub path: String,
    pub size: u64,
    pub mtime: i64,
}

impl PartSpec {
    pub(super) fn validate(&self) -> Result<()> {
        validate_job_id(&self.run_id).map_err(|_| {
            Error::invalid_field(
                "part.run_id",
                "must be 1 to 128 characters of letters, digits, `-`, `_` or `.`",
            )
        })?;
        if self.index >= self.count {
            return Err(Error::invalid_field(
                "part.index",
                format!(
                    "is {}: it must be below part.count ({})",
                    self.index, self.count
                ),
            ));
        }
        if self.files.is_empty() == self.manifest.is_none() {
            return Err(Error::invalid_field(
                "part.files",
                "or `part.manifest` is required, and not both",
            ));
        }
        for (i, f) in self.files.iter().enumerate() {
            paths::check_relative(&format!("part.files[{i}].path"), &f.path)?;
        }
        if let Some(manifest) = &self.manifest {
            paths::check_relative("part.manifest", manifest)?;
        }
        for (i, id) in self.snapshots.iter().enumerate() {
            if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::invalid_field(
                    format!("part.snapshots[{i}]"),
                    "must be a snapshot id (64 hex digits)",
                ));
            }
        }
        Ok(())
    }
}
