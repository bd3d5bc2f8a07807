//! A verify: a mirror read back and checked, optionally against its source.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{validate_globs, validate_job_id, DestinationRef, SourceRef, TransferOptions};
use crate::error::{Error, Result};

/// A verify job has the shape of the backup job it checks: copy the backup's message and
/// change its `kind`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VerifyJob {
    pub job_id: String,
    /// The backup's source: required with `against_source`.
    #[serde(default)]
    pub source: Option<SourceRef>,
    /// The mirror to verify: the backup's destination.
    pub destination: DestinationRef,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Also compare with the source: files missing from the mirror, extra in it (deleted at
    /// the source), or changed since (size and mtime; with `options.compare: hash`, MD5).
    #[serde(default)]
    pub against_source: bool,
    /// `chunk_size` and `upload_concurrency` bound the memory used to read; `compare` as above.
    #[serde(default)]
    pub options: TransferOptions,
}

impl VerifyJob {
    pub fn validate(&self) -> Result<()> {
        validate_job_id(&self.job_id)?;
        match &self.source {
            Some(source) => source.validate()?,
            None if self.against_source => {
                return Err(Error::invalid_field(
                    "source",
                    "is required with `against_source: true`: the backup's source to compare with",
                ))
            }
            None => {}
        }
        self.destination.validate("destination")?;
        validate_globs(&self.include, &self.exclude)?;
        self.options.validate()
    }
}
