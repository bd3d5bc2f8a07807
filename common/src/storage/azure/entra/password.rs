//! Username/password (OAuth resource-owner password grant), which `azure_identity` 1.0 lacks.
//! Works for work or school accounts without MFA; Microsoft discourages it, and so do we, but
//! teams that have only a user account can still back up.

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use url::Url;

use super::token::{parse_answer, send, TokenCache};
use super::{Context, Principal};
use crate::config::Secret;
use crate::error::Result;

pub struct UsernamePasswordCredential {
    token_url: Url,
    client_id: String,
    username: String,
    password: Secret,
    http: reqwest::Client,
    cache: TokenCache,
}

impl std::fmt::Debug for UsernamePasswordCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsernamePasswordCredential")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl UsernamePasswordCredential {
    pub fn new(ctx: &Context, who: &Principal, username: &str, password: &Secret) -> Result<Self> {
        Ok(UsernamePasswordCredential {
            token_url: ctx.token_url(&who.tenant)?,
            client_id: who.client_id.clone(),
            username: username.to_string(),
            password: password.clone(),
            http: ctx.http.clone(),
            cache: TokenCache::default(),
        })
    }

    async fn fetch(&self, scopes: &[&str]) -> azure_core::Result<AccessToken> {
        let form = [
            ("grant_type", "password"),
            ("client_id", self.client_id.as_str()),
            ("username", self.username.as_str()),
            ("password", self.password.expose()),
            ("scope", &scopes.join(" ")),
        ];
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = self
            .http
            .post(self.token_url.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        let (status, bytes) = send(request, "token endpoint").await?;
        parse_answer(status.as_u16(), &bytes)
    }
}

#[async_trait::async_trait]
impl TokenCredential for UsernamePasswordCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.cache.get(|| self.fetch(scopes)).await
    }
}
