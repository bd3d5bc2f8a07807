//! A restore: a mirror a backup made, read back onto a target.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    paths, validate_globs, validate_job_id, validate_storage_name, DestinationRef, PartSpec,
    TransferOptions,
};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RestoreJob {
    /// Identifies the restore in logs and results.
    pub job_id: String,
    /// The mirror to restore from: what a backup job named as its `destination`.
    pub source: DestinationRef,
    /// Restore this snapshot (`latest`, or an id or its first characters) of the restic
    /// repository at `source` (a backup made with `mode: snapshot`) instead of a mirror.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Where the files are written back.
    pub target: TargetRef,
    /// Files or folders (relative to `source.prefix`) to restore; empty means everything.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Globs of paths (relative to `source.prefix`) to restore; empty means everything.
    #[serde(default)]
    pub include: Vec<String>,
    /// Globs of paths to leave out; they win over `include` and `paths`.
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub options: TransferOptions,
    /// Set on the part messages a planned restore fans out into (written by the worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<PartSpec>,
}

/// Where a restore writes: an SFTP storage and a directory, or an Azure storage, a container
/// or share, and a prefix.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TargetRef {
    /// Storage profile name, resolved from the environment.
    pub storage: String,
    /// SFTP: the directory to restore into (absolute, or relative to the login's home);
    /// created when missing.
    #[serde(default)]
    pub path: Option<String>,
    /// Azure Blob: the container; defaults to the profile's `CONTAINER` option.
    #[serde(default)]
    pub container: Option<String>,
    /// Azure Files: the share; defaults to the profile's `SHARE_NAME` option.
    #[serde(default)]
    pub share: Option<String>,
    /// Azure: the prefix to restore under.
    #[serde(default)]
    pub prefix: String,
}

impl RestoreJob {
    pub fn validate(&self) -> Result<()> {
        validate_job_id(&self.job_id)?;
        self.source.validate("source")?;
        self.target.validate()?;
        for (i, path) in self.paths.iter().enumerate() {
            paths::check_relative(&format!("paths[{i}]"), path)?;
        }
        validate_globs(&self.include, &self.exclude)?;
        self.options.validate()?;
        if let Some(part) = &self.part {
            part.validate()?;
        }
        if let Some(id) = &self.snapshot {
            let hex = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
            if id != "latest" && !hex {
                return Err(Error::invalid_field(
                    "snapshot",
                    "must be `latest` or a snapshot id (hexadecimal, as `restic snapshots` shows)",
                ));
            }
            if self.part.is_some() {
                return Err(Error::invalid_field(
                    "part",
                    "is not supported with `snapshot`: a snapshot is restored by one run",
                ));
            }
        }
        Ok(())
    }
}

impl TargetRef {
    pub(super) fn validate(&self) -> Result<()> {
        validate_storage_name("target.storage", &self.storage)?;
        if let Some(path) = &self.path {
            if path.trim().is_empty() {
                return Err(Error::invalid_field(
                    "target.path",
                    "must not be empty (use \".\" for the login's home)",
                ));
            }
            paths::check_text("target.path", path, paths::MAX_PATH_CHARS)?;
        }
        self.as_destination().validate("target")
    }

    /// The Azure form of this target (for Blob and Files storages).
    pub fn as_destination(&self) -> DestinationRef {
        DestinationRef {
            storage: self.storage.clone(),
            container: self.container.clone(),
            share: self.share.clone(),
            prefix: self.prefix.clone(),
        }
    }
}
