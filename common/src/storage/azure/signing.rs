//! Authorizing requests: signed with `reqsign-azure-storage` (SharedKey, or SAS by appending the
//! token), or carrying an Entra ID bearer token. One [`Authorizer`] serves the Blob SDK's pipeline
//! (a per-try policy) and the Files client's plain requests alike. A policy runs after retry, so
//! every attempt is authorized afresh (a token near expiry is refreshed by its credential).

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request, Url};
use reqsign_azure_storage::{Credential, RequestSigner, StaticCredentialProvider};

use super::account::{AccountConfig, AzureAuth};
use super::entra::{EntraAuth, STORAGE_SCOPE};
use super::error::error_chain;

pub type Signer = reqsign_core::Signer<Credential>;

pub enum Authorizer {
    Signer(Signer),
    Token(EntraAuth),
}

impl Authorizer {
    pub fn new(cfg: &AccountConfig) -> Self {
        let provider = match &cfg.auth {
            AzureAuth::SharedKey { key } => {
                StaticCredentialProvider::new_shared_key(&cfg.account, key.expose())
            }
            AzureAuth::Sas { token } => StaticCredentialProvider::new_sas_token(token.expose()),
            AzureAuth::Entra(auth) => return Authorizer::Token(auth.clone()),
        };
        Authorizer::Signer(reqsign_core::Signer::new(
            reqsign_core::Context::new(),
            provider,
            RequestSigner::new(),
        ))
    }

    /// Sign the request head, or add the bearer token. A token failure is a `Credential` error.
    pub async fn authorize(&self, parts: &mut http::request::Parts) -> azure_core::Result<()> {
        match self {
            Authorizer::Signer(signer) => signer.sign(parts, None).await.map_err(sign_error),
            Authorizer::Token(auth) => {
                let token = auth
                    .credential
                    .get_token(&[STORAGE_SCOPE], None)
                    .await
                    .map_err(|e| {
                        azure_core::Error::with_message(ErrorKind::Credential, error_chain(&e))
                    })?;
                let value = format!("Bearer {}", token.token.secret());
                let value = http::HeaderValue::from_str(&value).map_err(sign_error)?;
                parts.headers.insert(http::header::AUTHORIZATION, value);
                Ok(())
            }
        }
    }
}

pub struct SigningPolicy {
    authorizer: Authorizer,
}

impl std::fmt::Debug for SigningPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningPolicy")
    }
}

impl SigningPolicy {
    pub fn new(cfg: &AccountConfig) -> Self {
        SigningPolicy {
            authorizer: Authorizer::new(cfg),
        }
    }
}

fn sign_error(what: impl std::fmt::Display) -> azure_core::Error {
    azure_core::Error::with_message(
        ErrorKind::Credential,
        format!("cannot sign the request: {what}"),
    )
}

#[async_trait]
impl Policy for SigningPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let mut head = http::Request::builder()
            .method(request.method().as_ref())
            .uri(request.url().as_str());
        let mut has_length = false;
        for (name, value) in request.headers().iter() {
            has_length |= name.as_str().eq_ignore_ascii_case("content-length");
            head = head.header(name.as_str(), value.as_str());
        }
        // The transport adds Content-Length later for some calls (Put Block List); the signature
        // must cover it now. Zero is signed as empty, which is what the service expects.
        let body_len = request.body().len().unwrap_or(0);
        if !has_length && body_len > 0 {
            head = head.header("content-length", body_len.to_string());
        }
        let (mut parts, ()) = head.body(()).map_err(sign_error)?.into_parts();
        self.authorizer.authorize(&mut parts).await?;
        for (name, value) in parts.headers.iter() {
            let value = value.to_str().map_err(sign_error)?;
            request.insert_header(name.as_str().to_string(), value.to_string());
        }
        let signed_uri = parts.uri.to_string();
        if signed_uri != request.url().as_str() {
            *request.url_mut() = Url::parse(&signed_uri).map_err(sign_error)?;
        }
        match next.split_first() {
            Some((head, rest)) => head.send(ctx, request, rest).await,
            None => Err(sign_error("no transport after the signing policy")),
        }
    }
}
