//! A check: the health of a snapshot repository, as `restic check` judges it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{validate_job_id, DestinationRef};
use crate::error::Result;

/// Check the restic repository a `mode: snapshot` backup writes: its structure (keys, index,
/// snapshots, trees), and with `read_data` every pack's bytes. Writes nothing.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckJob {
    pub job_id: String,
    /// The repository: what the snapshot backup named as its `destination`.
    pub destination: DestinationRef,
    /// Also read every pack and check its contents (reads the whole repository).
    #[serde(default)]
    pub read_data: bool,
}

impl CheckJob {
    pub fn validate(&self) -> Result<()> {
        validate_job_id(&self.job_id)?;
        self.destination.validate("destination")
    }
}
