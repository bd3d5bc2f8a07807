//! Entra ID (Azure AD) tokens for Azure Storage: which credential a profile asks for.
//!
//! `azure_identity` 1.0 supplies the client-secret, client-assertion, workload-identity and
//! managed-identity credentials. What it lacks is ours, each a `TokenCredential` of its own
//! module: username/password ([`password`]), PEM or PKCS12 client certificates with x5c
//! ([`certificate`]), the service principal file ([`sp_file`]), the environment chain
//! ([`environment`]) and managed identity by resource id on Functions (`msi`).

pub mod certificate;
pub mod environment;
mod msi;
pub mod password;
pub mod sp_file;
mod token;

use std::path::PathBuf;
use std::sync::Arc;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret as SdkSecret, TokenCredential};
use azure_core::http::{ClientOptions, Transport};
use azure_identity::{
    ClientAssertionCredential, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId,
};
use url::Url;

use crate::config::{Profile, Secret};
use crate::error::{Error, Result};

/// The audience of every Azure Storage token (Blob, File and Queue alike).
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
pub const PUBLIC_AUTHORITY: &str = "https://login.microsoftonline.com";

pub const OPT_ENV_AUTH: &str = "ENV_AUTH";
pub const OPT_TENANT_ID: &str = "TENANT_ID";
pub const OPT_CLIENT_ID: &str = "CLIENT_ID";
pub const OPT_CLIENT_SECRET: &str = "CLIENT_SECRET";
pub const OPT_CLIENT_CERTIFICATE_PATH: &str = "CLIENT_CERTIFICATE_PATH";
pub const OPT_CLIENT_CERTIFICATE_PASSWORD: &str = "CLIENT_CERTIFICATE_PASSWORD";
pub const OPT_SEND_CERTIFICATE_CHAIN: &str = "SEND_CERTIFICATE_CHAIN";
pub const OPT_USERNAME: &str = "USERNAME";
pub const OPT_PASSWORD: &str = "PASSWORD";
pub const OPT_SERVICE_PRINCIPAL_FILE: &str = "SERVICE_PRINCIPAL_FILE";
pub const OPT_USE_MSI: &str = "USE_MSI";
pub const OPT_MSI_OBJECT_ID: &str = "MSI_OBJECT_ID";
pub const OPT_MSI_CLIENT_ID: &str = "MSI_CLIENT_ID";
pub const OPT_MSI_RESOURCE_ID: &str = "MSI_RESOURCE_ID";
/// Where tokens come from; defaults to `AZURE_AUTHORITY_HOST`, then the public cloud.
pub const OPT_AUTHORITY_HOST: &str = "AUTHORITY_HOST";

/// The options that select an Entra ID credential (any one of them set means "use a token").
pub const SELECTING_OPTIONS: [&str; 6] = [
    OPT_SERVICE_PRINCIPAL_FILE,
    OPT_CLIENT_SECRET,
    OPT_CLIENT_CERTIFICATE_PATH,
    OPT_USERNAME,
    OPT_USE_MSI,
    OPT_ENV_AUTH,
];

/// A token credential and the method's name, for messages ("service principal (client secret)").
#[derive(Clone)]
pub struct EntraAuth {
    pub credential: Arc<dyn TokenCredential>,
    pub method: String,
}

impl std::fmt::Debug for EntraAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EntraAuth({})", self.method)
    }
}

/// What every credential builder needs: the storage (for messages), the authority and the
/// account's HTTP client.
#[derive(Clone)]
pub struct Context {
    pub storage: String,
    pub authority: Url,
    pub http: reqwest::Client,
}

impl Context {
    fn client_options(&self) -> ClientOptions {
        let mut cloud = CustomConfiguration::default();
        cloud.authority_host = self.authority.as_str().trim_end_matches('/').to_string();
        ClientOptions {
            transport: Some(Transport::new(Arc::new(self.http.clone()))),
            cloud: Some(Arc::new(CloudConfiguration::Custom(cloud))),
            ..Default::default()
        }
    }

    /// `{authority}/{tenant}/oauth2/v2.0/token`, as `azure_identity` builds it.
    pub fn token_url(&self, tenant: &str) -> Result<Url> {
        self.authority
            .join(&format!("/{tenant}/oauth2/v2.0/token"))
            .map_err(|e| {
                Error::invalid_option(&self.storage, OPT_TENANT_ID, format!("`{tenant}`: {e}"))
            })
    }

    fn invalid(&self, option: &str, why: impl std::fmt::Display) -> Error {
        Error::invalid_option(&self.storage, option, why.to_string())
    }
}

/// A service principal's identity: tenant and client (application) id.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: String,
    pub client_id: String,
}

/// A certificate credential's inputs.
#[derive(Debug, Clone)]
pub struct CertificateSource {
    pub path: PathBuf,
    pub password: Option<Secret>,
    pub send_chain: bool,
}

/// Which user-assigned identity, if any.
#[derive(Debug, Clone)]
pub enum MsiId {
    System,
    Client(String),
    Object(String),
    Resource(String),
}

pub fn client_secret(ctx: &Context, who: &Principal, secret: &Secret) -> Result<EntraAuth> {
    let credential = ClientSecretCredential::new(
        &who.tenant,
        who.client_id.clone(),
        SdkSecret::new(secret.expose().to_string()),
        Some(ClientSecretCredentialOptions {
            client_options: ctx.client_options(),
        }),
    )
    .map_err(|e| ctx.invalid(OPT_CLIENT_SECRET, e))?;
    Ok(EntraAuth {
        credential,
        method: "service principal (client secret)".into(),
    })
}

pub fn client_certificate(
    ctx: &Context,
    who: &Principal,
    cert: &CertificateSource,
) -> Result<EntraAuth> {
    let assertion = certificate::CertificateAssertion::load(ctx, who, cert)?;
    let credential = ClientAssertionCredential::new(
        who.tenant.clone(),
        who.client_id.clone(),
        assertion,
        Some(ClientAssertionCredentialOptions {
            client_options: ctx.client_options(),
        }),
    )
    .map_err(|e| ctx.invalid(OPT_CLIENT_CERTIFICATE_PATH, e))?;
    Ok(EntraAuth {
        credential,
        method: "service principal (client certificate)".into(),
    })
}

pub fn username_password(
    ctx: &Context,
    who: &Principal,
    username: &str,
    password: &Secret,
) -> Result<EntraAuth> {
    let credential = password::UsernamePasswordCredential::new(ctx, who, username, password)?;
    Ok(EntraAuth {
        credential: Arc::new(credential),
        method: format!("username/password (user `{username}`)"),
    })
}

pub fn managed_identity(ctx: &Context, id: &MsiId) -> Result<EntraAuth> {
    if let MsiId::Resource(resource_id) = id {
        if let Some(credential) = msi::AppServiceResourceId::from_env(resource_id, &ctx.http) {
            return Ok(EntraAuth {
                credential: Arc::new(credential),
                method: format!("managed identity (resource id {resource_id})"),
            });
        }
    }
    let (user_assigned_id, which) = match id {
        MsiId::System => (None, "system-assigned".to_string()),
        MsiId::Client(v) => (
            Some(UserAssignedId::ClientId(v.clone())),
            format!("client id {v}"),
        ),
        MsiId::Object(v) => (
            Some(UserAssignedId::ObjectId(v.clone())),
            format!("object id {v}"),
        ),
        MsiId::Resource(v) => (
            Some(UserAssignedId::ResourceId(v.clone())),
            format!("resource id {v}"),
        ),
    };
    let credential = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        user_assigned_id,
        client_options: ctx.client_options(),
    }))
    .map_err(|e| ctx.invalid(OPT_USE_MSI, e))?;
    Ok(EntraAuth {
        credential,
        method: format!("managed identity ({which})"),
    })
}

/// The Entra ID credential a profile asks for, or `None` when it asks for none.
pub fn from_profile(p: &Profile<'_>, http: &reqwest::Client) -> Result<Option<EntraAuth>> {
    if !SELECTING_OPTIONS.iter().any(|o| p.get(o).is_some()) {
        return Ok(None);
    }
    let authority = p
        .get(OPT_AUTHORITY_HOST)
        .or_else(|| p.environment("AZURE_AUTHORITY_HOST"))
        .unwrap_or_else(|| PUBLIC_AUTHORITY.to_string());
    let ctx = Context {
        storage: p.storage().to_string(),
        authority: authority_url(&authority).map_err(|why| p.invalid(OPT_AUTHORITY_HOST, why))?,
        http: http.clone(),
    };
    let principal = |tenant_default: Option<&str>| -> Result<Principal> {
        let tenant = match (p.get(OPT_TENANT_ID), tenant_default) {
            (Some(t), _) => t,
            (None, Some(d)) => d.to_string(),
            (None, None) => p.require(OPT_TENANT_ID)?,
        };
        Ok(Principal {
            tenant,
            client_id: p.require(OPT_CLIENT_ID)?,
        })
    };
    if let Some(path) = p.get(OPT_SERVICE_PRINCIPAL_FILE) {
        let (who, secret) = sp_file::read(&ctx, &PathBuf::from(path))?;
        let mut auth = client_secret(&ctx, &who, &secret)?;
        auth.method = "service principal file".into();
        return Ok(Some(auth));
    }
    if let Some(secret) = p.secret(OPT_CLIENT_SECRET) {
        return client_secret(&ctx, &principal(None)?, &secret).map(Some);
    }
    if let Some(path) = p.get(OPT_CLIENT_CERTIFICATE_PATH) {
        let cert = CertificateSource {
            path: PathBuf::from(path),
            password: p.secret(OPT_CLIENT_CERTIFICATE_PASSWORD),
            send_chain: p.flag(OPT_SEND_CERTIFICATE_CHAIN)?,
        };
        return client_certificate(&ctx, &principal(None)?, &cert).map(Some);
    }
    if let Some(username) = p.get(OPT_USERNAME) {
        let password = p.secret(OPT_PASSWORD).ok_or_else(|| {
            p.invalid(
                OPT_PASSWORD,
                format!(
                    "is required with {}: set {}",
                    OPT_USERNAME,
                    p.var_name(OPT_PASSWORD)
                ),
            )
        })?;
        // Work or school accounts of any tenant, as the Azure SDKs default to.
        let who = principal(Some("organizations"))?;
        return username_password(&ctx, &who, &username, &password).map(Some);
    }
    if p.flag(OPT_USE_MSI)? {
        return managed_identity(&ctx, &msi_id(p)?).map(Some);
    }
    if p.flag(OPT_ENV_AUTH)? {
        return environment::from_env(&ctx, &|name| p.environment(name)).map(Some);
    }
    Ok(None)
}

fn msi_id(p: &Profile<'_>) -> Result<MsiId> {
    let ids = [
        (
            OPT_MSI_OBJECT_ID,
            p.get(OPT_MSI_OBJECT_ID).map(MsiId::Object),
        ),
        (
            OPT_MSI_CLIENT_ID,
            p.get(OPT_MSI_CLIENT_ID).map(MsiId::Client),
        ),
        (
            OPT_MSI_RESOURCE_ID,
            p.get(OPT_MSI_RESOURCE_ID).map(MsiId::Resource),
        ),
    ];
    let given: Vec<_> = ids.into_iter().filter(|(_, id)| id.is_some()).collect();
    match given.as_slice() {
        [] => Ok(MsiId::System),
        [(_, Some(id))] => Ok(id.clone()),
        _ => Err(p.invalid(
            given[1].0,
            format!(
                "cannot be combined with {}: a user-assigned identity is named by one id",
                given[0].0
            ),
        )),
    }
}

/// The authority must be https: a token request carries the client's secret.
pub fn authority_url(text: &str) -> std::result::Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if url.scheme() != "https" {
        return Err(format!(
            "`{text}` must be an https URL: token requests carry credentials"
        ));
    }
    Ok(url)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Profiles;

    /// A context for unit tests (nothing is sent with it).
    pub(crate) fn ctx() -> Context {
        Context {
            storage: "a".into(),
            authority: url::Url::parse("https://login.example").unwrap(),
            http: reqwest::Client::new(),
        }
    }

    fn profiles(pairs: &[(&str, &str)]) -> Profiles {
        Profiles::from_vars(
            pairs
                .iter()
                .map(|(k, v)| (format!("BACKUP_STORAGE_A_{k}"), v.to_string()))
                .chain([("BACKUP_STORAGE_A_TYPE".into(), "azureblob".into())]),
        )
    }

    fn resolve(pairs: &[(&str, &str)]) -> Result<Option<EntraAuth>> {
        let p = profiles(pairs);
        let http = reqwest::Client::new();
        from_profile(&p.profile("a").unwrap(), &http)
    }

    #[test]
    fn no_entra_option_means_no_token() {
        assert!(resolve(&[("ACCOUNT_NAME", "x")]).unwrap().is_none());
    }

    #[test]
    fn client_secret_needs_tenant_and_client_id() {
        let e = resolve(&[("CLIENT_SECRET", "s"), ("CLIENT_ID", "c")]).unwrap_err();
        assert!(e.to_string().contains("BACKUP_STORAGE_A_TENANT_ID"), "{e}");
        let e = resolve(&[("CLIENT_SECRET", "s"), ("TENANT_ID", "t")]).unwrap_err();
        assert!(e.to_string().contains("BACKUP_STORAGE_A_CLIENT_ID"), "{e}");
        let ok = resolve(&[
            ("CLIENT_SECRET", "s"),
            ("TENANT_ID", "t"),
            ("CLIENT_ID", "c"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(ok.method, "service principal (client secret)");
        assert!(!format!("{ok:?}").contains('s'.to_string().repeat(2).as_str()));
    }

    #[test]
    fn username_needs_password() {
        let e = resolve(&[("USERNAME", "u@x"), ("CLIENT_ID", "c")]).unwrap_err();
        assert!(e.to_string().contains("BACKUP_STORAGE_A_PASSWORD"), "{e}");
    }

    #[test]
    fn authority_must_be_https() {
        let e = resolve(&[
            ("CLIENT_SECRET", "s"),
            ("TENANT_ID", "t"),
            ("CLIENT_ID", "c"),
            ("AUTHORITY_HOST", "http://login.example"),
        ])
        .unwrap_err();
        assert!(
            e.to_string().contains("AUTHORITY_HOST") && e.to_string().contains("https"),
            "{e}"
        );
    }

    #[test]
    fn one_msi_id_at_a_time() {
        let e = resolve(&[
            ("USE_MSI", "true"),
            ("MSI_CLIENT_ID", "a"),
            ("MSI_OBJECT_ID", "b"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("cannot be combined"), "{e}");
        let ok = resolve(&[("USE_MSI", "true"), ("MSI_CLIENT_ID", "abc")])
            .unwrap()
            .unwrap();
        assert_eq!(ok.method, "managed identity (client id abc)");
    }
}
