//! Job messages: what a queue message or a CLI file asks the worker to do.
//!
//! A message names storages by profile name and never carries a secret: unknown fields are
//! rejected, so a credential pasted into a message fails loudly instead of travelling on.
//! The JSON Schema in `events/schema/job-message.schema.json` is generated from these types.

mod check;
pub mod json;
mod mode;
mod part;
pub mod paths;
mod restore;
mod retention;
mod size;
mod verify;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use check::CheckJob;
pub use mode::BackupMode;
pub use part::{PartFile, PartSpec};
pub use restore::{RestoreJob, TargetRef};
pub use retention::{ForgetJob, PruneJob};
pub use size::{ByteSize, GIB, KIB, MIB};
pub use verify::VerifyJob;

/// A message on the job queue, or given to the local runner.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobMessage {
    /// Copy files from a source storage into a destination storage.
    Backup(BackupJob),
    /// Copy files from a mirror a backup made back onto a storage (SFTP, or any other).
    Restore(RestoreJob),
    /// Re-read a mirror and check every file against its stored MD5 (and, optionally, the
    /// listing against the source). Writes nothing.
    Verify(VerifyJob),
    /// Check a snapshot repository's structure (and with `read_data`, its data).
    Check(CheckJob),
    /// Remove the snapshots a keep policy does not keep (optionally pruning afterwards).
    Forget(ForgetJob),
    /// Delete the data of a snapshot repository no snapshot references any more.
    Prune(PruneJob),
    /// Check that each named storage can be reached, authenticated against and used.
    TestConnection(TestConnectionJob),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackupJob {
    /// Identifies the job across runs: incremental state and results are keyed by it.
    pub job_id: String,
    pub source: SourceRef,
    pub destination: DestinationRef,
    /// Globs of paths (relative to `source.path`) to copy; empty means everything.
    /// A pattern without `/` matches a name at any depth (`*.pdf`).
    #[serde(default)]
    pub include: Vec<String>,
    /// Globs of paths to leave out; they win over `include`.
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub options: TransferOptions,
    /// `mirror` (default) or `snapshot` (a restic repository under the destination's prefix).
    #[serde(default)]
    pub mode: BackupMode,
    /// Snapshot mode: create the repository if there is none (else a missing one is an error).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
    /// Snapshot mode: tags on the snapshot (as `restic backup --tag`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Set on the part messages a planned job fans out into (written by the worker, not by
    /// people): which files this part copies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<PartSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TestConnectionJob {
    /// Optional: results are labelled with it.
    #[serde(default)]
    pub job_id: Option<String>,
    #[serde(default)]
    pub source: Option<SourceRef>,
    #[serde(default)]
    pub destination: Option<DestinationRef>,
    /// A restore's target: checked for write permission (a temporary is created and removed).
    #[serde(default)]
    pub target: Option<TargetRef>,
    /// `snapshot`: the destination holds a restic repository, and a `repository` step checks
    /// that its password (the storage's `RESTIC_PASSWORD`) opens it.
    #[serde(default)]
    pub mode: BackupMode,
}

/// Where files come from: a storage profile and a directory on it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceRef {
    /// Storage profile name, resolved from the environment (e.g. `office_nas`).
    pub storage: String,
    /// Directory to back up (absolute, or relative to the login's home).
    pub path: String,
}

/// Where files go: a storage profile, a container, and a prefix inside it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DestinationRef {
    /// Storage profile name, resolved from the environment (e.g. `archive`).
    pub storage: String,
    /// Blob container (Azure Blob); defaults to the profile's `CONTAINER` option.
    #[serde(default)]
    pub container: Option<String>,
    /// File share (Azure Files); defaults to the profile's `SHARE_NAME` option.
    #[serde(default)]
    pub share: Option<String>,
    /// Path prefix inside the container where backed up data will be stored.
    #[serde(default)]
    pub prefix: String,
}

/// How files are moved. Names and defaults follow the Azure Files storage options.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TransferOptions {
    /// Upload chunk size (default 4 MiB). Chunks are stored in memory during upload.
    pub chunk_size: ByteSize,
    /// Number of chunks uploaded concurrently, for the whole job (default 16).
    pub upload_concurrency: u32,
    /// Maximum size of a file whose size is unknown or that grows while it is read (default 10 GiB).
    pub max_stream_size: ByteSize,
    /// How a later run decides a file is unchanged: `size_mtime` (default) or `hash` (MD5).
    pub compare: CompareMode,
    /// On a queue, a job with more files than this is split into parts (default 1000).
    pub part_max_files: u32,
    /// On a queue, a job with more bytes to copy than this is split into parts (default 8 GiB).
    pub part_max_bytes: ByteSize,
    /// What to do when the destination already holds a path: `never` replace it,
    /// `if_changed` (default: when size and mtime, or with `compare: hash` the MD5, differ),
    /// or `always`.
    pub overwrite: Overwrite,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Overwrite {
    /// Keep what the destination holds.
    Never,
    /// Replace it when it differs (see `compare`).
    #[default]
    IfChanged,
    /// Replace it every time.
    Always,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum CompareMode {
    /// Copy a file again when its size or modification time changed.
    #[default]
    SizeMtime,
    /// Read every file and copy it again when its MD5 differs from the stored Content-MD5.
    Hash,
}

pub const DEFAULT_CHUNK_SIZE: u64 = 4 * MIB;
pub const MIN_CHUNK_SIZE: u64 = 64 * KIB;
pub const MAX_CHUNK_SIZE: u64 = 100 * MIB;
pub const MAX_UPLOAD_CONCURRENCY: u32 = 256;

impl Default for TransferOptions {
    fn default() -> Self {
        Self {
            chunk_size: ByteSize(DEFAULT_CHUNK_SIZE),
            upload_concurrency: 16,
            max_stream_size: ByteSize(10 * GIB),
            compare: CompareMode::SizeMtime,
            part_max_files: 1000,
            part_max_bytes: ByteSize(8 * GIB),
            overwrite: Overwrite::IfChanged,
        }
    }
}

impl JobMessage {
    /// Parse and validate a message as it arrives (bytes): it must be UTF-8 JSON of at most
    /// [`json::MAX_MESSAGE_BYTES`].
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self> {
        Self::parse(json::decode(bytes)?)
    }

    /// Parse and validate a message. Errors name the field (`options.chunk_size`) and the rule.
    pub fn parse(text: &str) -> Result<Self> {
        let value = json::parse(json::decode(text.as_bytes())?)?;
        let serde_json::Value::Object(mut fields) = value else {
            return Err(Error::MalformedMessage(
                "a job message is a JSON object".into(),
            ));
        };
        // Dispatch on `kind` by hand: serde's tagged enums buffer their content and lose the
        // path of a bad field, which is what a person needs to see.
        let kind = match fields.remove("kind") {
            Some(serde_json::Value::String(kind)) => kind,
            Some(_) => return Err(Error::invalid_field("kind", "must be a string")),
            None => {
                return Err(Error::invalid_field(
                    "kind",
                    "is required: `backup`, `restore`, `verify`, `check`, `forget`, `prune` or `test_connection`",
                ))
            }
        };
        let rest = serde_json::Value::Object(fields);
        let message = match kind.as_str() {
            "backup" => JobMessage::Backup(from_value(rest)?),
            "restore" => JobMessage::Restore(from_value(rest)?),
            "verify" => JobMessage::Verify(from_value(rest)?),
            "check" => JobMessage::Check(from_value(rest)?),
            "forget" => JobMessage::Forget(from_value(rest)?),
            "prune" => JobMessage::Prune(from_value(rest)?),
            "test_connection" => JobMessage::TestConnection(from_value(rest)?),
            other => {
                return Err(Error::invalid_field(
                    "kind",
                    format!(
                        "`{other}` is not a job kind: use `backup`, `restore`, `verify`, `check`, `forget`, `prune` or `test_connection`"
                    ),
                ))
            }
        };
        message.validate()?;
        Ok(message)
    }

    pub fn job_id(&self) -> Option<&str> {
        match self {
            JobMessage::Backup(b) => Some(&b.job_id),
            JobMessage::Restore(r) => Some(&r.job_id),
            JobMessage::Verify(v) => Some(&v.job_id),
            JobMessage::Check(c) => Some(&c.job_id),
            JobMessage::Forget(f) => Some(&f.job_id),
            JobMessage::Prune(p) => Some(&p.job_id),
            JobMessage::TestConnection(t) => t.job_id.as_deref(),
        }
    }

    pub fn validate(&self) -> Result<()> {
        match self {
            JobMessage::Backup(job) => job.validate(),
            JobMessage::Restore(job) => job.validate(),
            JobMessage::Verify(job) => job.validate(),
            JobMessage::Check(job) => job.validate(),
            JobMessage::Forget(job) => job.validate(),
            JobMessage::Prune(job) => job.validate(),
            JobMessage::TestConnection(job) => {
                if let Some(id) = &job.job_id {
                    validate_job_id(id)?;
                }
                if job.source.is_none() && job.destination.is_none() && job.target.is_none() {
                    return Err(Error::invalid_field(
                        "source",
                        "or `destination` or `target` is required: name at least one storage to test",
                    ));
                }
                if job.mode == BackupMode::Snapshot && job.destination.is_none() {
                    return Err(Error::invalid_field(
                        "mode",
                        "`snapshot` tests the repository in `destination`: name one",
                    ));
                }
                if let Some(t) = &job.target {
                    t.validate()?;
                }
                if let Some(s) = &job.source {
                    s.validate()?;
                }
                if let Some(d) = &job.destination {
                    d.validate("destination")?;
                }
                Ok(())
            }
        }
    }

    /// The JSON Schema of job messages, as checked in under `events/schema/`.
    pub fn json_schema() -> serde_json::Value {
        let schema = schemars::schema_for!(JobMessage);
        serde_json::to_value(schema).unwrap_or_default()
    }
}

fn from_value<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        data_error(&path, e.inner())
    })
}

/// serde reports a missing or unknown field at the parent's path; turn it into the path a
/// person would look for (`source.path`).
fn data_error(path: &str, inner: &serde_json::Error) -> Error {
    let text = inner.to_string();
    let text = text.split(" at line ").next().unwrap_or(&text).to_string();
    let join = |child: &str| {
        if path == "." || path.is_empty() {
            child.to_string()
        } else {
            format!("{path}.{child}")
        }
    };
    if let Some(rest) = text.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        return Error::invalid_field(join(name), "is required");
    }
    if let Some(rest) = text.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        // serde_path_to_error already ends the path with the unknown field itself.
        let field = if path.ends_with(name) {
            path.to_string()
        } else {
            join(name)
        };
        return Error::invalid_field(
            field,
            format!(
                "is not a known field (secrets never go in messages: set them in the environment){}",
                rest.split_once('`')
                    .map(|(_, r)| r.trim_start_matches(',').to_string())
                    .map(|r| if r.is_empty() { r } else { format!(";{r}") })
                    .unwrap_or_default()
            ),
        );
    }
    Error::invalid_field(path, text)
}

impl BackupJob {
    pub fn validate(&self) -> Result<()> {
        validate_job_id(&self.job_id)?;
        self.source.validate()?;
        self.destination.validate("destination")?;
        validate_globs(&self.include, &self.exclude)?;
        self.options.validate()?;
        if let Some(part) = &self.part {
            part.validate()?;
        }
        mode::validate(self)
    }
}

fn validate_globs(include: &[String], exclude: &[String]) -> Result<()> {
    for (field, globs) in [("include", include), ("exclude", exclude)] {
        for (i, glob) in globs.iter().enumerate() {
            paths::check_glob(&format!("{field}[{i}]"), glob)?;
            globset::Glob::new(glob).map_err(|e| {
                Error::invalid_field(format!("{field}[{i}]"), format!("is not a valid glob: {e}"))
            })?;
        }
    }
    Ok(())
}

impl SourceRef {
    fn validate(&self) -> Result<()> {
        validate_storage_name("source.storage", &self.storage)?;
        if self.path.trim().is_empty() {
            return Err(Error::invalid_field(
                "source.path",
                "must not be empty (use \".\" for the login's home)",
            ));
        }
        paths::check_text("source.path", &self.path, paths::MAX_PATH_CHARS)
    }
}

impl DestinationRef {
    /// `role` is where it sits in the message: `destination` (backup), `source` (restore).
    fn validate(&self, role: &str) -> Result<()> {
        validate_storage_name(&format!("{role}.storage"), &self.storage)?;
        if let Some(c) = &self.container {
            validate_container_name(&format!("{role}.container"), c)?;
        }
        if self.container.is_some() && self.share.is_some() {
            return Err(Error::invalid_field(
                format!("{role}.share"),
                format!("and `{role}.container` exclude each other: a share is for Azure Files, a container for Azure Blob"),
            ));
        }
        if let Some(s) = &self.share {
            validate_share_name(&format!("{role}.share"), s)?;
        }
        paths::check_prefix(&format!("{role}.prefix"), &self.prefix)
    }
}

impl TransferOptions {
    pub fn validate(&self) -> Result<()> {
        let chunk = self.chunk_size.bytes();
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk) {
            return Err(Error::invalid_field(
                "options.chunk_size",
                format!(
                    "is {}: it must be between {} and {}",
                    self.chunk_size,
                    ByteSize(MIN_CHUNK_SIZE),
                    ByteSize(MAX_CHUNK_SIZE)
                ),
            ));
        }
        if self.upload_concurrency == 0 || self.upload_concurrency > MAX_UPLOAD_CONCURRENCY {
            return Err(Error::invalid_field(
                "options.upload_concurrency",
                format!(
                    "is {}: it must be between 1 and {MAX_UPLOAD_CONCURRENCY}",
                    self.upload_concurrency
                ),
            ));
        }
        if self.max_stream_size.bytes() == 0 {
            return Err(Error::invalid_field(
                "options.max_stream_size",
                "must be greater than 0",
            ));
        }
        if self.part_max_files == 0 {
            return Err(Error::invalid_field(
                "options.part_max_files",
                "must be at least 1",
            ));
        }
        if self.part_max_bytes.bytes() == 0 {
            return Err(Error::invalid_field(
                "options.part_max_bytes",
                "must be greater than 0",
            ));
        }
        Ok(())
    }

    /// The memory budget of a job: every chunk in flight lives inside it.
    pub fn memory_budget(&self) -> u64 {
        self.chunk_size.bytes() * u64::from(self.upload_concurrency)
    }
}

fn validate_job_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_field(
            "job_id",
            "must be 1 to 128 characters of letters, digits, `-`, `_` or `.`",
        ))
    }
}

fn validate_storage_name(field: &str, name: &str) -> Result<()> {
    let ok = !name.trim().is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ' '));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_field(
            field,
            "must be a storage profile name of letters, digits, spaces, `-` or `_`",
        ))
    }
}

/// Azure's share naming rule: 3-63 lower-case letters, digits and single dashes, like containers.
fn validate_share_name(field: &str, name: &str) -> Result<()> {
    validate_container_name(field, name).map_err(|_| {
        Error::invalid_field(
            field,
            format!("`{name}` is not a valid share name: 3-63 lower-case letters, digits and single dashes"),
        )
    })
}

/// Azure's container naming rule: 3-63 lower-case letters, digits and single dashes.
fn validate_container_name(field: &str, name: &str) -> Result<()> {
    let ok = (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_field(
            field,
            format!("`{name}` is not a valid container name: 3-63 lower-case letters, digits and single dashes"),
        ))
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod schema_tests {
    use super::JobMessage;

    /// The checked-in schema is what users validate against: it must match the Rust types.
    /// Regenerate with `UPDATE_SCHEMA=1 cargo test -p backup-common schema`.
    #[test]
    fn checked_in_schema_matches_the_types() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../events/schema/job-message.schema.json");
        let generated = serde_json::to_string_pretty(&JobMessage::json_schema()).unwrap() + "\n";
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "{} is out of date: run UPDATE_SCHEMA=1 cargo test -p backup-common schema",
            path.display()
        );
    }

    #[test]
    fn every_sample_message_is_valid() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).unwrap();
                if path.file_name().is_some_and(|n| n == "plan.json") {
                    crate::plan::Plan::parse(&text)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                } else {
                    JobMessage::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                }
                seen += 1;
            }
        }
        assert!(seen >= 2, "no sample messages found in {}", dir.display());
    }
}
