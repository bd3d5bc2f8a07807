//! What our own credentials share: a one-token cache that refreshes ahead of expiry, and the
//! OAuth token endpoint's JSON answers.

use azure_core::credentials::{AccessToken, Secret as SdkSecret};
use azure_core::error::ErrorKind;
use azure_core::time::{Duration, OffsetDateTime};
use serde::Deserialize;
use tokio::sync::Mutex;

/// Refresh this long before expiry, so a request never leaves with a token about to lapse.
const REFRESH_AHEAD: Duration = Duration::minutes(5);

#[derive(Default)]
pub(super) struct TokenCache(Mutex<Option<AccessToken>>);

impl TokenCache {
    /// The cached token, or a new one from `fetch` (one fetch at a time).
    pub async fn get<F, Fut>(&self, fetch: F) -> azure_core::Result<AccessToken>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = azure_core::Result<AccessToken>>,
    {
        let mut slot = self.0.lock().await;
        if let Some(token) = slot.as_ref() {
            if token.expires_on - REFRESH_AHEAD > OffsetDateTime::now_utc() {
                return Ok(token.clone());
            }
        }
        let token = fetch().await?;
        *slot = Some(token.clone());
        Ok(token)
    }
}

/// Send a request to a token endpoint (`what` names it in errors): the answer's status and body.
pub(super) async fn send(
    request: reqwest::RequestBuilder,
    what: &str,
) -> azure_core::Result<(reqwest::StatusCode, bytes::Bytes)> {
    let response = request.send().await.map_err(|e| {
        azure_core::Error::with_message(
            ErrorKind::Connection,
            format!("{what} unreachable: {}", e.without_url()),
        )
    })?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| azure_core::Error::with_message(ErrorKind::Io, e.without_url().to_string()))?;
    Ok((status, body))
}

/// `{"access_token", "expires_in"}` or `{"error", "error_description", "error_codes"}`.
#[derive(Deserialize)]
struct Answer {
    access_token: Option<String>,
    expires_in: Option<serde_json::Value>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Turn a token endpoint's answer into a token or an error that says what the endpoint said.
pub(super) fn parse_answer(status: u16, body: &[u8]) -> azure_core::Result<AccessToken> {
    let answer: Answer = serde_json::from_slice(body).map_err(|e| {
        azure_core::Error::with_message(
            ErrorKind::Credential,
            format!("the token endpoint answered HTTP {status} with no token JSON ({e})"),
        )
    })?;
    match answer {
        Answer {
            access_token: Some(token),
            expires_in,
            ..
        } if (200..300).contains(&status) => {
            // Entra sends a number; some endpoints send it as a string.
            let seconds = match expires_in {
                Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(3600),
                Some(serde_json::Value::String(s)) => s.parse().unwrap_or(3600),
                _ => 3600,
            };
            Ok(AccessToken::new(
                SdkSecret::new(token),
                OffsetDateTime::now_utc() + Duration::seconds(seconds),
            ))
        }
        other => Err(azure_core::Error::with_message(
            ErrorKind::Credential,
            format!(
                "the token endpoint refused (HTTP {status}): {}{}",
                other.error.as_deref().unwrap_or("no error code"),
                other
                    .error_description
                    .map(|d| format!(": {}", d.lines().next().unwrap_or_default()))
                    .unwrap_or_default()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let t = parse_answer(200, br#"{"access_token":"abc","expires_in":"60"}"#).unwrap();
        assert_eq!(t.token.secret(), "abc");
        assert!(t.expires_on < OffsetDateTime::now_utc() + Duration::seconds(61));
        let e = parse_answer(
            400,
            br#"{"error":"invalid_grant","error_description":"AADSTS50126: bad password\r\nTrace"}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the token endpoint refused (HTTP 400): invalid_grant: AADSTS50126: bad password"
        );
        assert!(parse_answer(502, b"<html>").is_err());
    }
}
