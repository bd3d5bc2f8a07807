//! Azure Blob storage options: account name + key, connection string, SAS URL, custom endpoint.
//! Option names follow the seeds (`ACCOUNT_NAME`, `ACCOUNT_KEY`, `SAS_URL`, `CONNECTION_STRING`,
//! `ENDPOINT`, `CONTAINER`, `MAX_CONNECTIONS`).

use url::Url;

use crate::config::{Profile, Secret};
use crate::error::{Error, Result};

pub const OPT_ACCOUNT_NAME: &str = "ACCOUNT_NAME";
pub const OPT_ACCOUNT_KEY: &str = "ACCOUNT_KEY";
pub const OPT_SAS_URL: &str = "SAS_URL";
pub const OPT_CONNECTION_STRING: &str = "CONNECTION_STRING";
pub const OPT_ENDPOINT: &str = "ENDPOINT";
pub const OPT_CONTAINER: &str = "CONTAINER";
pub const OPT_MAX_CONNECTIONS: &str = "MAX_CONNECTIONS";

#[derive(Debug, Clone)]
pub struct BlobConfig {
    pub storage: String,
    pub account: String,
    /// The service root, ending in `/`: `https://acct.blob.core.windows.net/` or, path-style,
    /// `http://127.0.0.1:10000/devstoreaccount1/`.
    pub endpoint: Url,
    pub auth: BlobAuth,
    /// The container used when a job names none (from the profile or the SAS URL).
    pub container: Option<String>,
    /// Cap on parallel requests to this account (the seed's `maxConnections`).
    pub max_connections: Option<u32>,
}

#[derive(Debug, Clone)]
pub enum BlobAuth {
    SharedKey {
        key: Secret,
    },
    /// A SAS token (the query string, without `?`).
    Sas {
        token: Secret,
    },
}

impl BlobAuth {
    pub fn method(&self) -> &'static str {
        match self {
            BlobAuth::SharedKey { .. } => "storage account key",
            BlobAuth::Sas { .. } => "SAS",
        }
    }
}

impl BlobConfig {
    pub fn from_profile(p: &Profile<'_>) -> Result<Self> {
        let max_connections = p.parse::<u32>(OPT_MAX_CONNECTIONS)?;
        if max_connections == Some(0) {
            return Err(p.invalid(OPT_MAX_CONNECTIONS, "must be at least 1"));
        }
        let container = p.get(OPT_CONTAINER);
        let mut cfg = if let Some(cs) = p.secret(OPT_CONNECTION_STRING) {
            from_connection_string(p.storage(), cs.expose())?
        } else if let Some(sas_url) = p.secret(OPT_SAS_URL) {
            from_sas_url(p, sas_url.expose())?
        } else {
            let account = p.get(OPT_ACCOUNT_NAME).ok_or_else(|| {
                p.invalid(
                    OPT_ACCOUNT_NAME,
                    format!(
                        "is required: set {} and {}, or {}, or {}",
                        p.var_name(OPT_ACCOUNT_NAME),
                        p.var_name(OPT_ACCOUNT_KEY),
                        p.var_name(OPT_CONNECTION_STRING),
                        p.var_name(OPT_SAS_URL)
                    ),
                )
            })?;
            let key = p.secret(OPT_ACCOUNT_KEY).ok_or_else(|| {
                p.invalid(
                    OPT_ACCOUNT_KEY,
                    format!("is required: set {}", p.var_name(OPT_ACCOUNT_KEY)),
                )
            })?;
            check_key(p.storage(), OPT_ACCOUNT_KEY, key.expose())?;
            let endpoint = match p.get(OPT_ENDPOINT) {
                Some(e) => service_root(&e).map_err(|why| p.invalid(OPT_ENDPOINT, why))?,
                None => default_endpoint("https", &account, "core.windows.net"),
            };
            BlobConfig {
                storage: p.storage().to_string(),
                account,
                endpoint,
                auth: BlobAuth::SharedKey { key },
                container: None,
                max_connections: None,
            }
        };
        cfg.max_connections = max_connections;
        if container.is_some() {
            cfg.container = container;
        }
        Ok(cfg)
    }
}

fn default_endpoint(scheme: &str, account: &str, suffix: &str) -> Url {
    // Both parts were checked to be URL-safe names; a parse failure would be a bug here.
    Url::parse(&format!("{scheme}://{account}.blob.{suffix}/"))
        .unwrap_or_else(|_| Url::parse("https://invalid.invalid/").expect("static URL"))
}

/// Parse an endpoint and make sure it ends with `/` so joining keeps its path.
fn service_root(text: &str) -> std::result::Result<Url, String> {
    let mut url = Url::parse(text.trim()).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{text}` must be an http or https URL"));
    }
    url.set_query(None);
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn check_key(storage: &str, option: &str, key: &str) -> Result<()> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .map(|_| ())
        .map_err(|_| Error::invalid_option(storage, option, "is not valid base64: copy the key value from the portal's Access keys page in full"))
}

/// Hosts that use path-style URLs (`host/account/container`): emulators and IP addresses.
fn is_path_style(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost" || !d.contains('.'),
        Some(_) => true,
        None => false,
    }
}

fn from_sas_url(p: &Profile<'_>, text: &str) -> Result<BlobConfig> {
    let url = Url::parse(text.trim())
        .map_err(|e| p.invalid(OPT_SAS_URL, format!("is not a URL: {e}")))?;
    let token = url.query().unwrap_or_default().to_string();
    if !token.contains("sig=") {
        return Err(p.invalid(
            OPT_SAS_URL,
            "has no `sig=` in its query string: copy the full SAS URL, including the token",
        ));
    }
    let mut segments: Vec<String> = url
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    let account = if is_path_style(&url) {
        if segments.is_empty() {
            return Err(p.invalid(OPT_SAS_URL, "has no account name in its path"));
        }
        segments.remove(0)
    } else {
        url.host_str()
            .and_then(|h| h.split('.').next())
            .unwrap_or_default()
            .to_string()
    };
    let mut root = url.clone();
    root.set_query(None);
    root.set_path(&if is_path_style(&url) {
        format!("/{account}/")
    } else {
        "/".to_string()
    });
    Ok(BlobConfig {
        storage: p.storage().to_string(),
        account,
        endpoint: root,
        auth: BlobAuth::Sas {
            token: Secret::new(token),
        },
        container: segments.first().cloned(),
        max_connections: None,
    })
}

/// Parse a connection string as the portal shows it. Errors say which part is missing.
pub fn from_connection_string(storage: &str, text: &str) -> Result<BlobConfig> {
    let mut parts = std::collections::HashMap::new();
    for piece in text.trim().split(';').filter(|s| !s.trim().is_empty()) {
        let (k, v) = piece.split_once('=').ok_or_else(|| {
            Error::ConnectionString(format!(
                "storage `{storage}`: `{}` is not a Key=Value part; make sure the connection string is copied in full from the Azure Portal",
                piece.split('=').next().unwrap_or_default().chars().take(24).collect::<String>()
            ))
        })?;
        parts.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    if parts
        .get("usedevelopmentstorage")
        .map(|v| v.eq_ignore_ascii_case("true"))
        == Some(true)
    {
        return Ok(BlobConfig {
            storage: storage.to_string(),
            account: "devstoreaccount1".into(),
            endpoint: service_root("http://127.0.0.1:10000/devstoreaccount1")
                .map_err(Error::ConnectionString)?,
            auth: BlobAuth::SharedKey {
                key: Secret::new(AZURITE_KEY),
            },
            container: None,
            max_connections: None,
        });
    }
    let missing = |part: &str| {
        Error::ConnectionString(format!(
            "storage `{storage}`: the connection string has no `{part}`. Partial strings cause authentication failures: copy it in full from the Azure Portal (Access keys)"
        ))
    };
    let sas = parts.get("sharedaccesssignature").cloned();
    let account = parts.get("accountname").cloned();
    let endpoint = match parts.get("blobendpoint") {
        Some(e) => service_root(e).map_err(|why| {
            Error::ConnectionString(format!("storage `{storage}`: BlobEndpoint {why}"))
        })?,
        None => {
            let account = account.clone().ok_or_else(|| missing("AccountName"))?;
            let scheme = parts
                .get("defaultendpointsprotocol")
                .cloned()
                .unwrap_or_else(|| "https".into());
            let suffix = parts
                .get("endpointsuffix")
                .cloned()
                .unwrap_or_else(|| "core.windows.net".into());
            default_endpoint(&scheme, &account, &suffix)
        }
    };
    let account = match account {
        Some(a) => a,
        None if is_path_style(&endpoint) => endpoint
            .path_segments()
            .and_then(|mut s| s.next().map(str::to_string))
            .ok_or_else(|| missing("AccountName"))?,
        None => endpoint
            .host_str()
            .and_then(|h| h.split('.').next())
            .map(str::to_string)
            .ok_or_else(|| missing("AccountName"))?,
    };
    let auth = if let Some(token) = sas {
        BlobAuth::Sas {
            token: Secret::new(token.trim_start_matches('?').to_string()),
        }
    } else {
        let key = parts
            .get("accountkey")
            .ok_or_else(|| missing("AccountKey"))?;
        check_key(storage, "CONNECTION_STRING AccountKey", key).map_err(|_| {
            Error::ConnectionString(format!(
                "storage `{storage}`: AccountKey is not valid base64; the string looks cut short, copy it in full from the Azure Portal"
            ))
        })?;
        BlobAuth::SharedKey {
            key: Secret::new(key.clone()),
        }
    };
    Ok(BlobConfig {
        storage: storage.to_string(),
        account,
        endpoint,
        auth,
        container: None,
        max_connections: None,
    })
}

/// Azurite's published development key (not a secret: it is in Microsoft's docs).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_string_with_key() {
        let c = from_connection_string(
            "a",
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!(c.account, "acct");
        assert_eq!(c.endpoint.as_str(), "https://acct.blob.core.windows.net/");
        assert!(matches!(c.auth, BlobAuth::SharedKey { .. }));
    }

    #[test]
    fn connection_string_with_blob_endpoint_path_style() {
        let c = from_connection_string(
            "a",
            "AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
        )
        .unwrap();
        assert_eq!(
            c.endpoint.as_str(),
            "http://127.0.0.1:10000/devstoreaccount1/"
        );
    }

    #[test]
    fn partial_connection_string_says_which_part_is_missing() {
        let e = from_connection_string("a", "DefaultEndpointsProtocol=https;AccountName=acct")
            .unwrap_err();
        assert_eq!(e.code(), "azure.connection_string_invalid");
        assert!(e.to_string().contains("`AccountKey`"), "{e}");
        let e = from_connection_string("a", "DefaultEndpointsProtocol=https;AccountKey=a2V5")
            .unwrap_err();
        assert!(e.to_string().contains("`AccountName`"), "{e}");
        let e = from_connection_string("a", "AccountName=acct;AccountKey=a2V5;EndpointSuf")
            .unwrap_err();
        assert!(e.to_string().contains("EndpointSuf"), "{e}");
    }

    #[test]
    fn truncated_key_is_reported() {
        let e = from_connection_string("a", "AccountName=acct;AccountKey=abc").unwrap_err();
        assert!(e.to_string().contains("cut short"), "{e}");
    }

    #[test]
    fn service_root_keeps_the_path() {
        assert_eq!(
            service_root("http://127.0.0.1:1/devstoreaccount1")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:1/devstoreaccount1/"
        );
        assert!(service_root("ftp://x").is_err());
    }
}
