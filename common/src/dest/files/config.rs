//! Azure Files storage options: the account (see [`crate::dest::azure::account`]) plus the
//! seed's Share Name.

use crate::config::Profile;
use crate::dest::azure::{AccountConfig, Service};
use crate::error::Result;

pub const OPT_SHARE_NAME: &str = "SHARE_NAME";

#[derive(Debug, Clone)]
pub struct FilesConfig {
    pub account: AccountConfig,
    /// The share used when a job names none (from the profile or a share-level SAS URL).
    pub share: Option<String>,
}

impl FilesConfig {
    pub fn from_profile(p: &Profile<'_>) -> Result<Self> {
        let account = AccountConfig::from_profile(p, Service::File)?;
        let share = p
            .get(OPT_SHARE_NAME)
            .or_else(|| account.sas_resource.clone());
        Ok(FilesConfig { account, share })
    }
}
