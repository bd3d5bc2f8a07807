//! Azure Blob storage options: the account (see [`crate::storage::azure::account`]) plus the
//! seed's `CONTAINER` and `MAX_CONNECTIONS` (Stash's `azure.container`, `azure.maxConnections`).

use crate::config::Profile;
use crate::error::Result;
use crate::storage::azure::{AccountConfig, Service};
use crate::storage::checksum::ChunkChecksum;

pub use crate::storage::azure::account::AZURITE_KEY;

pub const OPT_CONTAINER: &str = "CONTAINER";
pub const OPT_MAX_CONNECTIONS: &str = "MAX_CONNECTIONS";

#[derive(Debug, Clone)]
pub struct BlobConfig {
    pub account: AccountConfig,
    /// The container used when a job names none (from the profile or the SAS URL).
    pub container: Option<String>,
    /// Cap on parallel requests to this account (the seed's `maxConnections`).
    pub max_connections: Option<u32>,
    pub chunk_checksum: ChunkChecksum,
}

impl BlobConfig {
    pub fn from_profile(p: &Profile<'_>) -> Result<Self> {
        let max_connections = p.parse::<u32>(OPT_MAX_CONNECTIONS)?;
        if max_connections == Some(0) {
            return Err(p.invalid(OPT_MAX_CONNECTIONS, "must be at least 1"));
        }
        let account = AccountConfig::from_profile(p, Service::Blob)?;
        let container = p
            .get(OPT_CONTAINER)
            .or_else(|| account.sas_resource.clone());
        Ok(BlobConfig {
            account,
            container,
            max_connections,
            chunk_checksum: ChunkChecksum::from_profile(p)?,
        })
    }
}
