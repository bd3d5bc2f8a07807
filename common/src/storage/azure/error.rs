//! Map Azure Storage responses (status + `x-ms-error-code`) to the seed's error classes, for
//! Blob containers and File shares alike. Table-tested below.

use super::AzureAuth;
use crate::error::{Error, ErrorKind};

/// An authorization failure before any request left: no token, or a request that cannot be signed.
pub fn credential_error(account: &str, auth: &AzureAuth, e: &azure_core::Error) -> Error {
    Error::AzureToken {
        account: account.to_string(),
        method: auth.method().to_string(),
        detail: entra_description(&error_chain(e)),
    }
}

/// Every distinct message of an error and its sources, first lines only: the SDK wraps the
/// endpoint's answer ("AADSTS7000215: Invalid client secret…") in retry-policy errors whose
/// own text says nothing.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        let line = text.lines().next().unwrap_or_default().trim().to_string();
        if !line.is_empty() && !parts.iter().any(|p| p.contains(&line)) {
            parts.push(line);
        }
        next = err.source();
    }
    parts.join(": ")
}

/// Whether an error or one of its sources is a timeout (reqwest's, or an I/O `TimedOut`).
pub fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if err
            .downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_timeout)
            || err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        next = err.source();
    }
    false
}

/// `azure_identity` 1.0 reads Entra's `error_description` as a borrowed string, which fails on the
/// `\r\n` every real description holds; the description then survives only inside serde's
/// "invalid type" message. Recover its first line so the user reads Entra's own words.
fn entra_description(detail: &str) -> String {
    const START: &str = "invalid type: string \"";
    const END: &str = "\", expected a borrowed string";
    let (Some(start), Some(end)) = (detail.find(START), detail.find(END)) else {
        return detail.to_string();
    };
    let inner = &detail[start + START.len()..end.max(start + START.len())];
    let first_line = inner.split("\\r\\n").next().unwrap_or(inner);
    format!("{}{first_line}", &detail[..start])
}

/// What a request was aimed at, for messages.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub account: &'a str,
    /// `container` or `share`.
    pub kind: &'static str,
    pub name: &'a str,
    /// What the call touched (`container backups`, a file path); never a signed URL.
    pub resource: &'a str,
    /// The permission the call needs (`read`, `list`, `write`, `delete`), named on a 403.
    pub needs: &'static str,
}

/// The kind of an SDK error (Blob goes through the SDK), as [`Error::kind`] decides it.
pub fn sdk_kind(e: &azure_core::Error) -> ErrorKind {
    match e.kind() {
        azure_core::error::ErrorKind::HttpResponse {
            status, error_code, ..
        } => ErrorKind::of_http(u16::from(*status), error_code.as_deref().unwrap_or("")),
        azure_core::error::ErrorKind::Connection | azure_core::error::ErrorKind::Io => {
            ErrorKind::Unavailable
        }
        azure_core::error::ErrorKind::Credential => ErrorKind::Unauthenticated,
        _ => ErrorKind::Other,
    }
}

pub fn classify(t: &Target<'_>, status: u16, code: &str) -> Error {
    match (status, code) {
        (404, "ContainerNotFound") => Error::ContainerNotFound {
            account: t.account.to_string(),
            container: t.name.to_string(),
        },
        (404, "ShareNotFound") => Error::ShareNotFound {
            account: t.account.to_string(),
            share: t.name.to_string(),
        },
        // Azure says AuthenticationFailed for a bad key or an expired SAS; Azurite says
        // AuthorizationFailure for a bad signature.
        (403, "AuthenticationFailed") | (403, "AuthorizationFailure") | (401, _) => {
            Error::AzureAuthFailed {
                account: t.account.to_string(),
                detail: code.to_string(),
            }
        }
        (403, _) => Error::AzureForbidden {
            account: t.account.to_string(),
            resource: t.resource.to_string(),
            detail: if code.is_empty() {
                "403".into()
            } else {
                code.to_string()
            },
            kind: t.kind,
            needs: t.needs,
        },
        _ => Error::AzureHttp {
            resource: t.resource.to_string(),
            status,
            code: code.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entra_descriptions_are_recovered_from_serde_messages() {
        let raw = r#"ClientSecretCredential authentication failed. invalid type: string "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x", expected a borrowed string at line 1 column 268"#;
        assert_eq!(
            entra_description(raw),
            "ClientSecretCredential authentication failed. AADSTS7000215: Invalid client secret provided."
        );
        assert_eq!(entra_description("plain"), "plain");
    }

    #[test]
    fn table() {
        let t = Target {
            account: "a",
            kind: "container",
            name: "c",
            resource: "r",
            needs: "write",
        };
        let cases = [
            (404, "ContainerNotFound", "azure.container_not_found"),
            (404, "ShareNotFound", "azure.share_not_found"),
            (403, "AuthenticationFailed", "azure.auth_failed"),
            (403, "AuthorizationFailure", "azure.auth_failed"),
            (403, "AuthorizationPermissionMismatch", "azure.forbidden"),
            (403, "", "azure.forbidden"),
            (404, "BlobNotFound", "azure.http_error"),
            (503, "ServerBusy", "azure.http_error"),
        ];
        for (status, code, expected) in cases {
            assert_eq!(
                classify(&t, status, code).code(),
                expected,
                "{status} {code}"
            );
        }
        assert!(classify(&t, 503, "ServerBusy").is_retryable());
        let forbidden = classify(&t, 403, "AuthorizationPermissionMismatch").to_string();
        assert!(
            forbidden.contains("lack the write permission"),
            "{forbidden}"
        );
        let share = Target {
            kind: "share",
            name: "Backups",
            ..t
        };
        let msg = classify(&share, 404, "ShareNotFound").to_string();
        assert!(
            msg.contains("`Backups`") && msg.contains("case-sensitive"),
            "{msg}"
        );
    }
}
