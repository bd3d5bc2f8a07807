//! Test Connection's first two steps for an Azure account, before any storage request:
//! `connect` (DNS, TCP, and for https the TLS handshake) and `authenticate` (an Entra ID token,
//! or a SAS that has not expired). Each failure names the step's own cause, so "cannot resolve the host" never
//! reads as "wrong key".

use std::time::Duration;

use tokio::net::TcpStream;

use super::entra::STORAGE_SCOPE;
use super::error::{credential_error, error_chain};
use super::{AccountConfig, AzureAuth};
use crate::check::Step;
use crate::error::{Error, Result};
use crate::storage::CheckFailure;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn connect_and_authenticate(
    cfg: &AccountConfig,
) -> std::result::Result<(), CheckFailure> {
    connect(cfg)
        .await
        .map_err(CheckFailure::at(Step::Connect))?;
    authenticate(cfg)
        .await
        .map_err(CheckFailure::at(Step::Authenticate))
}

async fn connect(cfg: &AccountConfig) -> Result<()> {
    let endpoint = &cfg.endpoint;
    let unreachable = |detail: String| Error::AzureUnreachable {
        endpoint: endpoint.to_string(),
        detail,
    };
    let host = endpoint
        .host_str()
        .ok_or_else(|| unreachable("the endpoint has no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = endpoint.port_or_known_default().unwrap_or(443);
    let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| {
            unreachable(format!(
                "cannot resolve `{host}` ({e}); check the account name or ENDPOINT"
            ))
        })?
        .collect();
    let attempt = async {
        let mut last = None;
        for addr in &addrs {
            match TcpStream::connect(addr).await {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .map(|e| e.to_string())
            .unwrap_or_else(|| "no address".into()))
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(Ok(())) => http_answer(cfg, &host, port).await,
        Ok(Err(e)) => Err(unreachable(format!(
            "connection to {host}:{port} failed ({e}); check firewalls, private endpoints and ENDPOINT"
        ))),
        Err(_) => Err(timeout(cfg, "connect: TCP connection not accepted")),
    }
}

fn timeout(cfg: &AccountConfig, during: &str) -> Error {
    Error::AzureTimeout {
        endpoint: cfg.endpoint.to_string(),
        seconds: CONNECT_TIMEOUT.as_secs(),
        during: during.to_string(),
    }
}

/// An unauthenticated HEAD on the service root: any HTTP answer proves TLS and HTTP work. No
/// answer in time is a timeout at this step (something accepts TCP and then says nothing); a
/// failure before an answer over https is a handshake problem (an untrusted certificate, a
/// proxy in the way).
async fn http_answer(cfg: &AccountConfig, host: &str, port: u16) -> Result<()> {
    let head = cfg.http.head(cfg.endpoint.clone()).send();
    match tokio::time::timeout(CONNECT_TIMEOUT, head).await {
        Err(_) => Err(timeout(
            cfg,
            "connect: the TCP connection was accepted but no HTTP answer came",
        )),
        Ok(Err(e)) if e.is_timeout() => Err(timeout(
            cfg,
            "connect: the TCP connection was accepted but no HTTP answer came",
        )),
        Ok(Err(e)) if e.is_connect() && cfg.endpoint.scheme() == "https" => {
            let e = e.without_url();
            Err(Error::AzureUnreachable {
                endpoint: cfg.endpoint.to_string(),
                detail: format!(
                    "TLS handshake with {host}:{port} failed ({}); if a private CA signs the endpoint's certificate, set CA_CERT_FILE",
                    error_chain(&e)
                ),
            })
        }
        Ok(Err(e)) => Err(Error::AzureUnreachable {
            endpoint: cfg.endpoint.to_string(),
            detail: format!(
                "{host}:{port} does not answer HTTP ({}); check ENDPOINT",
                error_chain(&e.without_url())
            ),
        }),
        Ok(Ok(_)) => Ok(()),
    }
}

/// One Test Connection step against the service, bounded by the account's request timeout:
/// a step that hangs (retries included) is reported as Timeout Errors at that step.
pub async fn within<T>(
    cfg: &AccountConfig,
    step: Step,
    work: impl std::future::Future<Output = std::result::Result<T, CheckFailure>>,
) -> std::result::Result<T, CheckFailure> {
    match tokio::time::timeout(cfg.request_timeout, work).await {
        Ok(outcome) => outcome,
        Err(_) => Err(CheckFailure {
            step,
            error: Error::AzureTimeout {
                endpoint: cfg.endpoint.to_string(),
                seconds: cfg.request_timeout.as_secs(),
                during: format!("{}: the service did not answer", step.as_str()),
            },
        }),
    }
}

async fn authenticate(cfg: &AccountConfig) -> Result<()> {
    match &cfg.auth {
        AzureAuth::Entra(auth) => auth
            .credential
            .get_token(&[STORAGE_SCOPE], None)
            .await
            .map(|_| ())
            .map_err(|e| credential_error(&cfg.account, &cfg.auth, &e)),
        AzureAuth::Sas { token } => sas_not_expired(&cfg.account, token.expose()),
        // A key can only be proven by a signed request: that is the next step.
        AzureAuth::SharedKey { .. } => Ok(()),
    }
}

/// A SAS's `se` (signed expiry) must lie in the future.
fn sas_not_expired(account: &str, token: &str) -> Result<()> {
    let expiry = url::form_urlencoded::parse(token.as_bytes())
        .find(|(k, _)| k == "se")
        .map(|(_, v)| v.into_owned());
    let Some(expiry) = expiry else {
        return Ok(());
    };
    let parsed =
        time::OffsetDateTime::parse(&expiry, &time::format_description::well_known::Rfc3339)
            .or_else(|_| {
                // Date-only and minute-precision forms are valid too (`2026-01-01`, `…T10:00Z`).
                let padded = match expiry.len() {
                    10 => format!("{expiry}T00:00:00Z"),
                    17 => format!("{}:00Z", expiry.trim_end_matches('Z')),
                    _ => expiry.clone(),
                };
                time::OffsetDateTime::parse(&padded, &time::format_description::well_known::Rfc3339)
            });
    match parsed {
        Ok(at) if at <= time::OffsetDateTime::now_utc() => Err(Error::AzureAuthFailed {
            account: account.to_string(),
            detail: format!("the SAS expired at {expiry}; create a new SAS URL"),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_sas_is_caught_before_any_request() {
        let e =
            sas_not_expired("a", "sv=2025-05-05&se=2020-01-01T00%3A00%3A00Z&sig=x").unwrap_err();
        assert_eq!(e.code(), "azure.auth_failed");
        assert!(
            e.to_string().contains("expired at 2020-01-01T00:00:00Z"),
            "{e}"
        );
        assert!(sas_not_expired("a", "se=2020-01-01&sig=x").is_err());
        assert!(sas_not_expired("a", "se=2999-01-01T10:00Z&sig=x").is_ok());
        assert!(sas_not_expired("a", "sig=x").is_ok());
    }
}
