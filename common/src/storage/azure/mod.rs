//! What the Azure destinations share: account resolution (key, SAS, connection string,
//! endpoint), request signing with `reqsign-azure-storage`, and the seed's error classes.

pub mod account;
pub mod entra;
pub mod error;
pub mod http;
pub mod probe;
pub mod signing;
pub mod url_path;

pub use account::{AccountConfig, AzureAuth, Service};

/// Every Azure request is tried at most this many times (408, 429, 5xx, timeouts and broken
/// connections are retried with exponential backoff from [`FIRST_BACKOFF`]); then the error is
/// final. The Files client and the Blob SDK pipeline both follow it.
pub const REQUEST_ATTEMPTS: u32 = 5;
pub const FIRST_BACKOFF: std::time::Duration = std::time::Duration::from_millis(200);
