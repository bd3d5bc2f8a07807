//! Managed identity by resource id on Azure Functions / App Service. `azure_identity` 1.0
//! refuses this case (it would send the IMDS parameter name, azure-sdk-for-rust issue 2407); the
//! App Service protocol takes `mi_res_id`. Everything else about managed identity is
//! `azure_identity`'s `ManagedIdentityCredential`.

use azure_core::credentials::{
    AccessToken, Secret as SdkSecret, TokenCredential, TokenRequestOptions,
};
use azure_core::error::ErrorKind;
use azure_core::time::OffsetDateTime;
use serde::Deserialize;
use url::Url;

use super::token::{send, TokenCache};
use crate::config::Secret;

const API_VERSION: &str = "2019-08-01";

pub struct AppServiceResourceId {
    endpoint: Url,
    header: Secret,
    resource_id: String,
    http: reqwest::Client,
    cache: TokenCache,
}

impl std::fmt::Debug for AppServiceResourceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppServiceResourceId")
            .field("resource_id", &self.resource_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Answer {
    access_token: String,
    /// Unix seconds, as a string.
    expires_on: String,
}

fn failure(kind: ErrorKind, message: String) -> azure_core::Error {
    azure_core::Error::with_message(kind, message)
}

impl AppServiceResourceId {
    /// From `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`, when both are set (on Functions they are).
    pub fn from_env(resource_id: &str, http: &reqwest::Client) -> Option<Self> {
        let endpoint = Url::parse(&std::env::var("IDENTITY_ENDPOINT").ok()?).ok()?;
        let header = Secret::new(std::env::var("IDENTITY_HEADER").ok()?);
        Some(AppServiceResourceId {
            endpoint,
            header,
            resource_id: resource_id.to_string(),
            http: http.clone(),
            cache: TokenCache::default(),
        })
    }

    async fn fetch(&self, scopes: &[&str]) -> azure_core::Result<AccessToken> {
        let resource = scopes
            .first()
            .map(|s| s.trim_end_matches("/.default"))
            .unwrap_or_default();
        let mut url = self.endpoint.clone();
        url.query_pairs_mut()
            .append_pair("api-version", API_VERSION)
            .append_pair("resource", resource)
            .append_pair("mi_res_id", &self.resource_id);
        let request = self
            .http
            .get(url)
            .header("x-identity-header", self.header.expose())
            .header("metadata", "true");
        let (status, body) = send(request, "managed identity endpoint").await?;
        if !status.is_success() {
            return Err(failure(
                ErrorKind::Credential,
                format!(
                    "the managed identity endpoint refused (HTTP {status}): {}",
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                ),
            ));
        }
        let answer: Answer = serde_json::from_slice(&body).map_err(|e| {
            failure(
                ErrorKind::Credential,
                format!("the managed identity endpoint sent no token JSON ({e})"),
            )
        })?;
        let expires = answer
            .expires_on
            .parse::<i64>()
            .ok()
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .ok_or_else(|| {
                failure(
                    ErrorKind::Credential,
                    "expires_on is not Unix seconds".into(),
                )
            })?;
        Ok(AccessToken::new(
            SdkSecret::new(answer.access_token),
            expires,
        ))
    }
}

#[async_trait::async_trait]
impl TokenCredential for AppServiceResourceId {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.cache.get(|| self.fetch(scopes)).await
    }
}
