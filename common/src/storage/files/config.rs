//! Azure Files storage options: the account (see [`crate::storage::azure::account`]) plus the
//! seed's Share Name.

use crate::config::Profile;
use crate::error::Result;
use crate::storage::azure::{AccountConfig, Service};
use crate::storage::checksum::ChunkChecksum;

pub const OPT_SHARE_NAME: &str = "SHARE_NAME";
/// Seconds after which a temporary whose writer stopped without letting it go (it was killed)
/// may be claimed and resumed by another attempt. Only speed depends on it, never safety: a
/// writer that was merely slow finds its temporary gone and tries again.
pub const OPT_RESUME_AFTER_SECS: &str = "RESUME_AFTER_SECS";
pub const DEFAULT_RESUME_AFTER_SECS: u64 = 120;

#[derive(Debug, Clone)]
pub struct FilesConfig {
    pub account: AccountConfig,
    /// The share used when a job names none (from the profile or a share-level SAS URL).
    pub share: Option<String>,
    pub resume_after_secs: u64,
    pub chunk_checksum: ChunkChecksum,
}

impl FilesConfig {
    pub fn from_profile(p: &Profile<'_>) -> Result<Self> {
        let account = AccountConfig::from_profile(p, Service::File)?;
        let share = p
            .get(OPT_SHARE_NAME)
            .or_else(|| account.sas_resource.clone());
        let resume_after_secs = p
            .parse::<u64>(OPT_RESUME_AFTER_SECS)?
            .unwrap_or(DEFAULT_RESUME_AFTER_SECS);
        Ok(FilesConfig {
            account,
            share,
            resume_after_secs,
            chunk_checksum: ChunkChecksum::from_profile(p)?,
        })
    }
}
