//! Map Azure SDK errors to the seed's error classes. Table-tested below.

use azure_core::error::ErrorKind;

use crate::error::{redact_url, Error};

/// `resource` is what the call touched (`container backups`, a blob path); never a signed URL.
pub fn map(account: &str, container: &str, resource: &str, e: azure_core::Error) -> Error {
    match e.kind() {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => {
            let code = error_code.clone().unwrap_or_default();
            classify(account, container, resource, u16::from(*status), &code)
        }
        ErrorKind::Connection | ErrorKind::Io => Error::AzureUnreachable {
            endpoint: redact_url(resource),
            detail: e.to_string(),
        },
        _ => Error::Azure {
            resource: resource.to_string(),
            detail: e.to_string(),
        },
    }
}

pub fn classify(account: &str, container: &str, resource: &str, status: u16, code: &str) -> Error {
    match (status, code) {
        (404, "ContainerNotFound") => Error::ContainerNotFound {
            account: account.to_string(),
            container: container.to_string(),
        },
        // Azure says AuthenticationFailed for a bad key or expired SAS; Azurite says
        // AuthorizationFailure for a bad signature.
        (403, "AuthenticationFailed") | (403, "AuthorizationFailure") | (401, _) => {
            Error::AzureAuthFailed {
                account: account.to_string(),
                detail: code.to_string(),
            }
        }
        (403, _) => Error::AzureForbidden {
            account: account.to_string(),
            resource: resource.to_string(),
            detail: if code.is_empty() {
                "403".into()
            } else {
                code.to_string()
            },
        },
        _ => Error::AzureHttp {
            resource: resource.to_string(),
            status,
            code: code.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases = [
            (404, "ContainerNotFound", "azure.container_not_found"),
            (403, "AuthenticationFailed", "azure.auth_failed"),
            (403, "AuthorizationFailure", "azure.auth_failed"),
            (403, "AuthorizationPermissionMismatch", "azure.forbidden"),
            (403, "", "azure.forbidden"),
            (404, "BlobNotFound", "azure.http_error"),
            (503, "ServerBusy", "azure.http_error"),
        ];
        for (status, code, expected) in cases {
            assert_eq!(
                classify("a", "c", "r", status, code).code(),
                expected,
                "{status} {code}"
            );
        }
        assert!(classify("a", "c", "r", 503, "ServerBusy").is_retryable());
    }
}
