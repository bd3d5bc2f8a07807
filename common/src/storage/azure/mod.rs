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
