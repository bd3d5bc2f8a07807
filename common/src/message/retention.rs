//! Retention of a snapshot repository: `forget` (a keep policy, as `restic forget` takes it) and
//! `prune` (delete what no snapshot references). Both scheduled like backups.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{validate_job_id, DestinationRef};
use crate::error::{Error, Result};
use crate::snapshot::retention::{parse_group_by, parse_within};

fn default_group_by() -> String {
    "host,paths".to_string()
}

/// Remove the snapshots a policy does not keep, as `restic forget --keep-…` does. Within each
/// group (`group_by`), a snapshot is kept if any rule keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ForgetJob {
    pub job_id: String,
    /// The repository: what the snapshot backup named as its `destination`.
    pub destination: DestinationRef,
    /// Keep the last n snapshots.
    #[serde(default)]
    pub keep_last: Option<u32>,
    /// Keep the last snapshot of each of the last n hours (days, weeks, months, years) that
    /// have one.
    #[serde(default)]
    pub keep_hourly: Option<u32>,
    #[serde(default)]
    pub keep_daily: Option<u32>,
    #[serde(default)]
    pub keep_weekly: Option<u32>,
    #[serde(default)]
    pub keep_monthly: Option<u32>,
    #[serde(default)]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot newer than this, relative to the latest one (`30d`, `1y6m`, `12h`).
    #[serde(default)]
    pub keep_within: Option<String>,
    /// Keep every snapshot with these tags; an entry `a,b` needs both.
    #[serde(default)]
    pub keep_tags: Vec<String>,
    /// How snapshots are grouped before the rules apply: `host`, `paths`, `tags`,
    /// comma-separated (default `host,paths`, as restic).
    #[serde(default = "default_group_by")]
    pub group_by: String,
    /// Prune afterwards (as `restic forget --prune`).
    #[serde(default)]
    pub prune: bool,
}

impl ForgetJob {
    /// The count rules, named as in the message.
    pub fn counts(&self) -> [(&'static str, Option<u32>); 6] {
        [
            ("keep_last", self.keep_last),
            ("keep_hourly", self.keep_hourly),
            ("keep_daily", self.keep_daily),
            ("keep_weekly", self.keep_weekly),
            ("keep_monthly", self.keep_monthly),
            ("keep_yearly", self.keep_yearly),
        ]
    }

    pub fn validate(&self) -> Result<()> {
        validate_job_id(&self.job_id)?;
        self.destination.validate("destination")?;
        for (field, count) in self.counts() {
            if count == Some(0) {
                return Err(Error::invalid_field(
                    field,
                    "must be at least 1 (leave it out to not use it)",
                ));
            }
        }
        if let Some(within) = &self.keep_within {
            parse_within(within).map_err(|reason| Error::invalid_field("keep_within", reason))?;
        }
        if self.keep_tags.iter().any(|t| t.trim().is_empty()) {
            return Err(Error::invalid_field(
                "keep_tags",
                "must not hold an empty tag",
            ));
        }
        parse_group_by(&self.group_by)
            .map_err(|reason| Error::invalid_field("group_by", reason))?;
        let any_rule = self.counts().iter().any(|(_, c)| c.is_some())
            || self.keep_within.is_some()
            || !self.keep_tags.is_empty();
        if !any_rule {
            return Err(Error::invalid_field(
                "keep_last",
                "or another keep_* rule is required: a forget without one would keep nothing",
            ));
        }
        Ok(())
    }
}

/// Delete the data no snapshot references any more (after a forget), at once.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PruneJob {
    pub job_id: String,
    /// The repository: what the snapshot backup named as its `destination`.
    pub destination: DestinationRef,
}

impl PruneJob {
    pub fn validate(&self) -> Result<()> {
        validate_job_id(&self.job_id)?;
        self.destination.validate("destination")
    }
}
