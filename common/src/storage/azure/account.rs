//! An Azure Storage account as a profile describes it, for one service (Blob or File):
//! account name + key, connection string, SAS URL, an Entra ID credential (see [`super::entra`]),
//! custom endpoint. Shared by both destinations.

use std::collections::HashMap;

use url::Url;

use super::entra::{self, EntraAuth};
use super::http::{self, OPT_CA_CERT_FILE};
use crate::config::{Profile, Secret};
use crate::error::{Error, Result};

pub const OPT_ACCOUNT_NAME: &str = "ACCOUNT_NAME";
pub const OPT_ACCOUNT_KEY: &str = "ACCOUNT_KEY";
pub const OPT_SAS_URL: &str = "SAS_URL";
pub const OPT_CONNECTION_STRING: &str = "CONNECTION_STRING";
pub const OPT_ENDPOINT: &str = "ENDPOINT";

/// Azurite's published development key (not a secret: it is in Microsoft's docs).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Blob,
    File,
}

impl Service {
    /// The host label (`acct.blob.core.windows.net`) and connection-string key (`BlobEndpoint`).
    fn label(self) -> &'static str {
        match self {
            Service::Blob => "blob",
            Service::File => "file",
        }
    }

    fn endpoint_key(self) -> &'static str {
        match self {
            Service::Blob => "blobendpoint",
            Service::File => "fileendpoint",
        }
    }
}

#[derive(Debug, Clone)]
pub enum AzureAuth {
    SharedKey {
        key: Secret,
    },
    /// A SAS token (the query string, without `?`).
    Sas {
        token: Secret,
    },
    /// An Entra ID token, sent as `Authorization: Bearer`.
    Entra(EntraAuth),
}

impl AzureAuth {
    pub fn method(&self) -> &str {
        match self {
            AzureAuth::SharedKey { .. } => "storage account key",
            AzureAuth::Sas { .. } => "SAS",
            AzureAuth::Entra(e) => &e.method,
        }
    }

    pub fn is_entra(&self) -> bool {
        matches!(self, AzureAuth::Entra(_))
    }
}

#[derive(Debug, Clone)]
pub struct AccountConfig {
    pub storage: String,
    pub account: String,
    /// The service root, ending in `/`: `https://acct.blob.core.windows.net/` or, path-style,
    /// `http://127.0.0.1:10000/devstoreaccount1/`.
    pub endpoint: Url,
    pub auth: AzureAuth,
    /// The first path segment of a SAS URL (a container or share it was made for).
    pub sas_resource: Option<String>,
    /// One connection pool for the account's storage and token requests.
    pub http: reqwest::Client,
    /// How long a request may wait for an answer (`REQUEST_TIMEOUT`); named in timeout errors.
    pub request_timeout: std::time::Duration,
}

impl AccountConfig {
    /// Resolve the account from a profile: connection string, then SAS URL, then name + key,
    /// then an Entra ID credential.
    pub fn from_profile(p: &Profile<'_>, service: Service) -> Result<Self> {
        let timeout = http::request_timeout(p)?;
        let mut cfg = Self::resolve(p, service, timeout)?;
        cfg.request_timeout = timeout;
        Ok(cfg)
    }

    fn resolve(p: &Profile<'_>, service: Service, timeout: std::time::Duration) -> Result<Self> {
        let ca = p.get(OPT_CA_CERT_FILE).map(std::path::PathBuf::from);
        let http = http::client(p.storage(), ca.as_deref(), timeout)?;
        if let Some(cs) = p.secret(OPT_CONNECTION_STRING) {
            return from_connection_string(p.storage(), cs.expose(), service, http);
        }
        if let Some(sas_url) = p.secret(OPT_SAS_URL) {
            return from_sas_url(p, sas_url.expose(), service, http);
        }
        if p.secret(OPT_ACCOUNT_KEY).is_none() {
            if let Some(auth) = entra::from_profile(p, &http)? {
                return from_entra(p, service, auth, http);
            }
        }
        let account = p.get(OPT_ACCOUNT_NAME).ok_or_else(|| {
            p.invalid(
                OPT_ACCOUNT_NAME,
                format!(
                    "is required: set {} and {} (or an Entra ID option such as {}), or {}, or {}",
                    p.var_name(OPT_ACCOUNT_NAME),
                    p.var_name(OPT_ACCOUNT_KEY),
                    p.var_name(entra::OPT_ENV_AUTH),
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
            None => default_endpoint("https", &account, service, "core.windows.net"),
        };
        Ok(AccountConfig {
            storage: p.storage().to_string(),
            account,
            endpoint,
            auth: AzureAuth::SharedKey { key },
            sas_resource: None,
            http,
            request_timeout: http::DEFAULT_REQUEST_TIMEOUT,
        })
    }
}

/// An account reached with an Entra ID token: named by ACCOUNT_NAME or by ENDPOINT, over https.
fn from_entra(
    p: &Profile<'_>,
    service: Service,
    auth: EntraAuth,
    http: reqwest::Client,
) -> Result<AccountConfig> {
    let (account, endpoint) = match (p.get(OPT_ACCOUNT_NAME), p.get(OPT_ENDPOINT)) {
        (account, Some(e)) => {
            let endpoint = service_root(&e).map_err(|why| p.invalid(OPT_ENDPOINT, why))?;
            let account = account.or_else(|| account_of(&endpoint)).ok_or_else(|| {
                p.invalid(
                    OPT_ACCOUNT_NAME,
                    "is required: the endpoint names no account",
                )
            })?;
            (account, endpoint)
        }
        (Some(a), None) => {
            let endpoint = default_endpoint("https", &a, service, "core.windows.net");
            (a, endpoint)
        }
        (None, None) => {
            return Err(p.invalid(
                OPT_ACCOUNT_NAME,
                format!(
                    "is required with {}: set {} (or {})",
                    auth.method,
                    p.var_name(OPT_ACCOUNT_NAME),
                    p.var_name(OPT_ENDPOINT)
                ),
            ))
        }
    };
    if endpoint.scheme() != "https" {
        return Err(p.invalid(
            OPT_ENDPOINT,
            format!("`{endpoint}` is http: Entra ID tokens are only sent over https"),
        ));
    }
    Ok(AccountConfig {
        storage: p.storage().to_string(),
        account,
        endpoint,
        auth: AzureAuth::Entra(auth),
        sas_resource: None,
        http,
        request_timeout: http::DEFAULT_REQUEST_TIMEOUT,
    })
}

/// The account an endpoint names: the first path segment path-style, else the first host label.
fn account_of(endpoint: &Url) -> Option<String> {
    if is_path_style(endpoint) {
        endpoint
            .path_segments()
            .and_then(|mut s| s.next().map(str::to_string))
            .filter(|s| !s.is_empty())
    } else {
        endpoint
            .host_str()
            .and_then(|h| h.split('.').next())
            .map(str::to_string)
    }
}

fn default_endpoint(scheme: &str, account: &str, service: Service, suffix: &str) -> Url {
    let text = format!("{scheme}://{account}.{}.{suffix}/", service.label());
    Url::parse(&text)
        .unwrap_or_else(|_| Url::parse("https://invalid.invalid/").expect("static URL"))
}

/// Parse an endpoint and make sure it ends with `/` so joining keeps its path.
pub fn service_root(text: &str) -> std::result::Result<Url, String> {
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
        .map_err(|_| {
            Error::invalid_option(
                storage,
                option,
                "is not valid base64: copy the key value from the portal's Access keys page in full",
            )
        })
}

/// Hosts that use path-style URLs (`host/account/container`): emulators and IP addresses.
pub fn is_path_style(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost" || !d.contains('.'),
        Some(_) => true,
        None => false,
    }
}

fn from_sas_url(
    p: &Profile<'_>,
    text: &str,
    service: Service,
    http: reqwest::Client,
) -> Result<AccountConfig> {
    let url = Url::parse(text.trim())
        .map_err(|e| p.invalid(OPT_SAS_URL, format!("is not a URL: {e}")))?;
    check_sas_service(p, &url, service)?;
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
    let path_style = is_path_style(&url);
    let account = if path_style {
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
    root.set_path(&if path_style {
        format!("/{account}/")
    } else {
        "/".to_string()
    });
    Ok(AccountConfig {
        storage: p.storage().to_string(),
        account,
        endpoint: root,
        auth: AzureAuth::Sas {
            token: Secret::new(token),
        },
        sas_resource: segments.first().cloned(),
        http,
        request_timeout: http::DEFAULT_REQUEST_TIMEOUT,
    })
}

/// A SAS URL names its service in the host (`acct.blob.core.windows.net`): one made for
/// another service would send this storage's requests to the wrong place (and fail there
/// with a confusing error), so it is refused, naming both.
fn check_sas_service(p: &Profile<'_>, url: &Url, service: Service) -> Result<()> {
    const SERVICES: [&str; 5] = ["blob", "file", "queue", "table", "dfs"];
    let host = url.host_str().unwrap_or_default();
    let Some(label) = host.split('.').nth(1).filter(|l| SERVICES.contains(l)) else {
        return Ok(()); // an emulator or custom domain: nothing to tell from the host
    };
    if label == service.label() {
        return Ok(());
    }
    let wanted = match service {
        Service::Blob => "Azure Blob",
        Service::File => "Azure Files",
    };
    Err(p.invalid(
        OPT_SAS_URL,
        format!(
            "is for the {label} service (`{host}`), but this storage is {wanted}: make the SAS URL on the {} service (`<account>.{}.core.windows.net`)",
            service.label(),
            service.label()
        ),
    ))
}

/// Parse a connection string as the portal shows it. Errors say which part is missing.
pub fn from_connection_string(
    storage: &str,
    text: &str,
    service: Service,
    http: reqwest::Client,
) -> Result<AccountConfig> {
    let parts = connection_string_parts(storage, text)?;
    if parts
        .get("usedevelopmentstorage")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return development_storage(storage, service, http);
    }
    let missing = |part: &str| {
        Error::ConnectionString(format!(
            "storage `{storage}`: the connection string has no `{part}`. Partial strings cause authentication failures: copy it in full from the Azure Portal (Access keys)"
        ))
    };
    let account = parts.get("accountname").cloned();
    let endpoint = match parts.get(service.endpoint_key()) {
        Some(e) => service_root(e).map_err(|why| {
            Error::ConnectionString(format!("storage `{storage}`: endpoint {why}"))
        })?,
        None => {
            let account = account.clone().ok_or_else(|| missing("AccountName"))?;
            let scheme = parts
                .get("defaultendpointsprotocol")
                .map_or("https", String::as_str);
            let suffix = parts
                .get("endpointsuffix")
                .map_or("core.windows.net", String::as_str);
            default_endpoint(scheme, &account, service, suffix)
        }
    };
    let account = match account {
        Some(a) => a,
        None => account_of(&endpoint).ok_or_else(|| missing("AccountName"))?,
    };
    let auth = match parts.get("sharedaccesssignature") {
        Some(token) => AzureAuth::Sas {
            token: Secret::new(token.trim_start_matches('?').to_string()),
        },
        None => {
            let key = parts
                .get("accountkey")
                .ok_or_else(|| missing("AccountKey"))?;
            check_key(storage, "CONNECTION_STRING AccountKey", key).map_err(|_| {
                Error::ConnectionString(format!(
                    "storage `{storage}`: AccountKey is not valid base64; the string looks cut short, copy it in full from the Azure Portal"
                ))
            })?;
            AzureAuth::SharedKey {
                key: Secret::new(key.clone()),
            }
        }
    };
    Ok(AccountConfig {
        storage: storage.to_string(),
        account,
        endpoint,
        auth,
        sas_resource: None,
        http,
        request_timeout: http::DEFAULT_REQUEST_TIMEOUT,
    })
}

/// `Key=Value` parts separated by `;`, keys lower-cased.
fn connection_string_parts(storage: &str, text: &str) -> Result<HashMap<String, String>> {
    let mut parts = HashMap::new();
    for (i, piece) in text
        .trim()
        .split(';')
        .filter(|s| !s.trim().is_empty())
        .enumerate()
    {
        // The part itself is never quoted: it may be key material pasted in the wrong place.
        let (k, v) = piece.split_once('=').ok_or_else(|| {
            Error::ConnectionString(format!(
                "storage `{storage}`: part {} ({} characters) is not a Key=Value part; make sure the connection string is copied in full from the Azure Portal",
                i + 1,
                piece.chars().count()
            ))
        })?;
        parts.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    Ok(parts)
}

/// `UseDevelopmentStorage=true`: Azurite's well-known account on loopback (Blob only).
fn development_storage(
    storage: &str,
    service: Service,
    http: reqwest::Client,
) -> Result<AccountConfig> {
    if service == Service::File {
        return Err(Error::ConnectionString(format!(
            "storage `{storage}`: UseDevelopmentStorage has no File service (Azurite has none); give FileEndpoint instead"
        )));
    }
    Ok(AccountConfig {
        storage: storage.to_string(),
        account: "devstoreaccount1".into(),
        endpoint: service_root("http://127.0.0.1:10000/devstoreaccount1")
            .map_err(Error::ConnectionString)?,
        auth: AzureAuth::SharedKey {
            key: Secret::new(AZURITE_KEY),
        },
        sas_resource: None,
        http,
        request_timeout: http::DEFAULT_REQUEST_TIMEOUT,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_string_with_key() {
        let c = from_connection_string("a", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net", Service::Blob, reqwest::Client::new())
        .unwrap();
        assert_eq!(c.account, "acct");
        assert_eq!(c.endpoint.as_str(), "https://acct.blob.core.windows.net/");
        assert!(matches!(c.auth, AzureAuth::SharedKey { .. }));
        let f = from_connection_string(
            "a",
            "AccountName=acct;AccountKey=a2V5",
            Service::File,
            reqwest::Client::new(),
        )
        .unwrap();
        assert_eq!(f.endpoint.as_str(), "https://acct.file.core.windows.net/");
    }

    #[test]
    fn connection_string_with_service_endpoint_path_style() {
        let c = from_connection_string("a", "AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;FileEndpoint=http://127.0.0.1:9/devstoreaccount1", Service::File, reqwest::Client::new())
        .unwrap();
        assert_eq!(c.endpoint.as_str(), "http://127.0.0.1:9/devstoreaccount1/");
    }

    #[test]
    fn partial_connection_string_says_which_part_is_missing() {
        let e = from_connection_string(
            "a",
            "DefaultEndpointsProtocol=https;AccountName=acct",
            Service::Blob,
            reqwest::Client::new(),
        )
        .unwrap_err();
        assert_eq!(e.code(), "azure.connection_string_invalid");
        assert!(e.to_string().contains("`AccountKey`"), "{e}");
        let e = from_connection_string(
            "a",
            "DefaultEndpointsProtocol=https;AccountKey=a2V5",
            Service::Blob,
            reqwest::Client::new(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("`AccountName`"), "{e}");
        let e = from_connection_string(
            "a",
            "AccountName=acct;AccountKey=a2V5;EndpointSuf",
            Service::Blob,
            reqwest::Client::new(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("part 3 (11 characters)"), "{e}");
        // A key pasted where a part belongs is never echoed.
        let key_like = "c2VjcmV0a2V5bWF0ZXJpYWxzZWNyZXRrZXk";
        let e = from_connection_string(
            "a",
            &format!("AccountName=acct;{key_like}"),
            Service::Blob,
            reqwest::Client::new(),
        )
        .unwrap_err();
        assert!(!e.to_string().contains(&key_like[..8]), "{e}");
    }

    #[test]
    fn a_sas_url_for_another_service_is_refused() {
        let vars = |url: &str| {
            crate::config::Profiles::from_vars([
                (
                    "BACKUP_STORAGE_S_TYPE".to_string(),
                    "azurefiles".to_string(),
                ),
                ("BACKUP_STORAGE_S_SAS_URL".to_string(), url.to_string()),
            ])
        };
        let blob = "https://acct.blob.core.windows.net/c?sv=2024&sig=abc";
        let profiles = vars(blob);
        let p = profiles.profile("s").unwrap();
        let e = AccountConfig::from_profile(&p, Service::File).unwrap_err();
        assert_eq!(e.code(), "config.invalid_option");
        let text = e.to_string();
        assert!(
            text.contains("blob service") && text.contains("Azure Files"),
            "{text}"
        );
        assert!(!text.contains("sig=abc"), "{text}");
        let profiles = vars("https://acct.file.core.windows.net/share?sv=2024&sig=abc");
        let p = profiles.profile("s").unwrap();
        assert!(AccountConfig::from_profile(&p, Service::File).is_ok());
        assert!(AccountConfig::from_profile(&p, Service::Blob).is_err());
    }

    #[test]
    fn truncated_key_is_reported() {
        let e = from_connection_string(
            "a",
            "AccountName=acct;AccountKey=abc",
            Service::Blob,
            reqwest::Client::new(),
        )
        .unwrap_err();
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
