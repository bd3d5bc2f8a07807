//! The one HTTP client of an Azure account: storage requests and token requests share its
//! connection pool and its trust roots. `CA_CERT_FILE` adds roots (a private CA in front of a
//! private endpoint, an emulator) to the system's; it never replaces them.

use std::path::Path;
use std::time::Duration;

use crate::config::Profile;
use crate::error::{Error, Result};

pub const OPT_CA_CERT_FILE: &str = "CA_CERT_FILE";
/// Seconds a request may go without an answer (no byte read) before it fails as a timeout
/// and is retried; also the TCP connect limit (at most 10 s).
pub const OPT_REQUEST_TIMEOUT: &str = "REQUEST_TIMEOUT";
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The profile's `REQUEST_TIMEOUT` (1 to 600 seconds), or the default.
pub fn request_timeout(p: &Profile<'_>) -> Result<Duration> {
    match p.parse::<u64>(OPT_REQUEST_TIMEOUT)? {
        None => Ok(DEFAULT_REQUEST_TIMEOUT),
        Some(secs @ 1..=600) => Ok(Duration::from_secs(secs)),
        Some(_) => Err(p.invalid(OPT_REQUEST_TIMEOUT, "must be between 1 and 600 seconds")),
    }
}

pub fn client(
    storage: &str,
    extra_roots: Option<&Path>,
    timeout: Duration,
) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        // Between reads, not for the whole request: a large body may take longer as a whole.
        .read_timeout(timeout)
        // Azure's REST guidelines use no redirects; following one could send a token elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        // Bytes are hashed and stored as sent: never let the client decode them.
        .no_gzip()
        .no_deflate();
    if let Some(path) = extra_roots {
        let pem = std::fs::read(path).map_err(|e| {
            Error::invalid_option(
                storage,
                OPT_CA_CERT_FILE,
                format!("cannot read `{}`: {e}", path.display()),
            )
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            Error::invalid_option(
                storage,
                OPT_CA_CERT_FILE,
                format!("`{}` is not a PEM certificate bundle: {e}", path.display()),
            )
        })?;
        if certs.is_empty() {
            return Err(Error::invalid_option(
                storage,
                OPT_CA_CERT_FILE,
                format!("`{}` holds no PEM certificate", path.display()),
            ));
        }
        builder = builder.tls_certs_merge(certs);
    }
    builder
        .build()
        .map_err(|e| Error::Internal(format!("HTTP client: {e}")))
}
