//! The one HTTP client of an Azure account: storage requests and token requests share its
//! connection pool and its trust roots. `CA_CERT_FILE` adds roots (a private CA in front of a
//! private endpoint, an emulator) to the system's; it never replaces them.

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

pub const OPT_CA_CERT_FILE: &str = "CA_CERT_FILE";

pub fn client(storage: &str, extra_roots: Option<&Path>) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(20))
        .read_timeout(Duration::from_secs(120))
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
