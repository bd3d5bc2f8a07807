//! One error type for the library, with a stable machine code per case.
//!
//! Messages are for people: they name the thing that is wrong and the fix, in the seeds' words.
//! They never contain a secret (URLs are passed through `redact_url` before they get here).

use serde::Serialize;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // --- job messages -----------------------------------------------------------------------
    #[error("malformed job message: {0}")]
    MalformedMessage(String),
    #[error("invalid job message: field `{field}` {reason}")]
    InvalidField { field: String, reason: String },

    // --- storage profiles -------------------------------------------------------------------
    #[error("unknown storage `{name}`: no profile found (set {env_prefix}_TYPE or add it to the profile file)")]
    UnknownStorage { name: String, env_prefix: String },
    #[error("storage `{storage}`: option `{option}` {reason}")]
    InvalidOption {
        storage: String,
        option: String,
        reason: String,
    },
    #[error("storage `{storage}` is a {actual} storage and cannot be used as {role}")]
    WrongStorageKind {
        storage: String,
        actual: &'static str,
        role: &'static str,
    },
    #[error("Connection String Errors: {0}")]
    ConnectionString(String),

    // --- SFTP -------------------------------------------------------------------------------
    #[error("Connection Refused: nothing accepts SSH connections on {host}:{port}. Ensure the SSH service is running and the correct port is specified; check that firewalls or security groups allow inbound connections on the SSH port")]
    SftpConnectionRefused { host: String, port: u16 },
    #[error("Timeout Errors: no answer from {host}:{port} within {seconds} s. Check network connectivity between this worker and the SFTP server (NAT, routing, firewalls)")]
    SftpTimeout {
        host: String,
        port: u16,
        seconds: u64,
    },
    #[error("Connection failed to {host}:{port}: {detail}")]
    SftpConnect {
        host: String,
        port: u16,
        detail: String,
    },
    #[error("Authentication Failure: the server rejected user `{user}` with {method}. {hint}")]
    SftpAuthFailed {
        user: String,
        method: String,
        hint: String,
    },
    #[error("Authentication Failure: cannot use the private key: {0}. The key must be in PEM/OpenSSH format and the correct passphrase provided")]
    SftpBadKey(String),
    #[error("Host Key Verification: {0}")]
    SftpHostKey(String),
    #[error("Permission Denied: the SSH user may not read `{path}`. Verify that the SSH user has read permission on it")]
    SftpPermissionDenied { path: String },
    #[error("Permission Denied: the SSH user may not write `{path}`. Verify that the SSH user has write permission on that directory")]
    SftpWriteDenied { path: String },
    #[error("not found on the SFTP server: `{path}`")]
    SftpNotFound { path: String },
    #[error("Connection lost to {host}:{port} while reading `{path}`: {detail}. Check network connectivity between this worker and the SFTP server")]
    SftpConnectionLost {
        host: String,
        port: u16,
        path: String,
        detail: String,
    },
    #[error("SFTP error on `{path}`: {detail}")]
    Sftp { path: String, detail: String },

    // --- Azure ------------------------------------------------------------------------------
    #[error("cannot reach Azure Storage at {endpoint}: {detail}")]
    AzureUnreachable { endpoint: String, detail: String },
    #[error("Timeout Errors: no answer from Azure Storage at {endpoint} within {seconds} s ({during}). Check network connectivity between this worker and the storage account (firewalls, private endpoints, proxies); REQUEST_TIMEOUT sets the limit")]
    AzureTimeout {
        endpoint: String,
        seconds: u64,
        during: String,
    },
    #[error("container not found: `{container}` does not exist in account `{account}`. Container names are lower-case; create it or fix the name")]
    ContainerNotFound { account: String, container: String },
    #[error("Authentication Failed: Azure Storage rejected the credentials for account `{account}` ({detail}). Ensure the Storage Account Name and Key are correct; if using a SAS URL, verify it has not expired")]
    AzureAuthFailed { account: String, detail: String },
    #[error("Authentication Failed: could not get an Entra ID token for account `{account}` with {method}: {detail}")]
    AzureToken {
        account: String,
        method: String,
        detail: String,
    },
    #[error("Share Not Found: `{share}` does not exist in account `{account}`. Verify that the Share Name matches the file share exactly: share names are case-sensitive")]
    ShareNotFound { account: String, share: String },
    #[error("Forbidden (403): the credentials for account `{account}` lack the {needs} permission on `{resource}` ({detail}). For a SAS URL include read, write, list and create permissions; for a service principal assign the appropriate RBAC role on the {kind}")]
    AzureForbidden {
        account: String,
        resource: String,
        detail: String,
        kind: &'static str,
        needs: &'static str,
    },
    #[error("Azure Storage error on `{resource}`: HTTP {status} {code}")]
    AzureHttp {
        resource: String,
        status: u16,
        code: String,
    },
    #[error("Azure Storage request for `{resource}` failed: {detail}")]
    Azure { resource: String, detail: String },

    // --- transfer ---------------------------------------------------------------------------
    #[error("`{path}` changed while it was being copied (expected {expected} bytes, read {actual}); it will be copied again on the next run")]
    SourceChanged {
        path: String,
        expected: u64,
        actual: u64,
    },
    #[error("`{path}` is larger than max_stream_size ({limit} bytes)")]
    TooLarge { path: String, limit: u64 },
    #[error("`{path}` cannot be stored in {service}: {reason}")]
    InvalidName {
        path: String,
        service: &'static str,
        reason: String,
    },
    #[error("`{path}`: the bytes read (MD5 {read}) do not match the MD5 stored with them ({stored}); the stored copy is damaged or was changed behind the worker's back, and nothing was written for it")]
    HashMismatch {
        path: String,
        stored: String,
        read: String,
    },
    #[error("`{path}` is refused: {reason}. Stored names must be relative paths that stay inside the target")]
    UnsafeName { path: String, reason: &'static str },
    #[error("`{path}` is damaged in the mirror: its bytes (MD5 {read}) do not match the MD5 stored with them ({stored}); run the backup with `overwrite: always` for this path to store it again")]
    Corrupt {
        path: String,
        stored: String,
        read: String,
    },
    #[error("`{path}` is in the source but not in the mirror: the last backup did not copy it (see that backup's result), or it is new since")]
    MissingFromMirror { path: String },
    #[error("`{path}` is not in {storage} (it was listed, then it was gone)")]
    ObjectNotFound { storage: String, path: String },
    // --- snapshot repositories --------------------------------------------------------------
    #[error("storage `{storage}` has no repository password: set {variable} (or {variable}_FILE naming a file that holds it)")]
    PasswordMissing { storage: String, variable: String },
    #[error("Wrong password: the repository password (RESTIC_PASSWORD) does not open the repository at {location}. Use the password the repository was created with")]
    WrongPassword { location: String },
    #[error("no restic repository at {location}: set `init: true` in the job to create one there, or fix the container, share or prefix")]
    NoRepository { location: String },
    #[error("snapshot repository: {detail}")]
    Snapshot { detail: String },
    #[error("the repository at {location} is locked: {holder}. Try again later (a lock not refreshed for 30 minutes is ignored; `restic unlock` removes stale ones)")]
    Locked { location: String, holder: String },
    #[error("the repository at {location} is damaged: {finding}")]
    RepositoryDamaged { location: String, finding: String },
    /// A request that was retried until its attempts ran out: final, with the last failure.
    #[error("{last} (gave up after {attempts} attempts)")]
    GaveUp { attempts: u32, last: Box<Error> },
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The stable machine code of this error. Never change one: users filter on them.
    pub fn code(&self) -> &'static str {
        match self {
            Error::MalformedMessage(_) => "message.malformed",
            Error::InvalidField { .. } => "message.invalid_field",
            Error::UnknownStorage { .. } => "config.unknown_storage",
            Error::InvalidOption { .. } => "config.invalid_option",
            Error::WrongStorageKind { .. } => "config.wrong_storage_kind",
            Error::ConnectionString(_) => "azure.connection_string_invalid",
            Error::SftpConnectionRefused { .. } => "sftp.connection_refused",
            Error::SftpTimeout { .. } => "sftp.timeout",
            Error::SftpConnect { .. } => "sftp.connect_failed",
            Error::SftpAuthFailed { .. } => "sftp.auth_failed",
            Error::SftpBadKey(_) => "sftp.bad_private_key",
            Error::SftpHostKey(_) => "sftp.host_key_verification",
            Error::SftpPermissionDenied { .. } | Error::SftpWriteDenied { .. } => {
                "sftp.permission_denied"
            }
            Error::SftpNotFound { .. } => "sftp.not_found",
            Error::SftpConnectionLost { .. } => "sftp.connection_lost",
            Error::Sftp { .. } => "sftp.error",
            Error::AzureUnreachable { .. } => "azure.unreachable",
            Error::AzureTimeout { .. } => "azure.timeout",
            Error::ContainerNotFound { .. } => "azure.container_not_found",
            Error::AzureAuthFailed { .. } => "azure.auth_failed",
            Error::AzureToken { .. } => "azure.token_failed",
            Error::ShareNotFound { .. } => "azure.share_not_found",
            Error::AzureForbidden { .. } => "azure.forbidden",
            Error::AzureHttp { .. } => "azure.http_error",
            Error::Azure { .. } => "azure.error",
            Error::SourceChanged { .. } => "transfer.source_changed",
            Error::TooLarge { .. } => "transfer.too_large",
            Error::InvalidName { .. } => "dest.invalid_name",
            Error::HashMismatch { .. } => "restore.hash_mismatch",
            Error::UnsafeName { .. } => "restore.unsafe_name",
            Error::ObjectNotFound { .. } => "storage.not_found",
            Error::Corrupt { .. } => "verify.corrupt",
            Error::MissingFromMirror { .. } => "verify.missing",
            Error::PasswordMissing { .. } => "snapshot.password_missing",
            Error::WrongPassword { .. } => "snapshot.wrong_password",
            Error::NoRepository { .. } => "snapshot.no_repository",
            Error::Snapshot { .. } => "snapshot.error",
            Error::RepositoryDamaged { .. } => "check.damaged",
            Error::Locked { .. } => "snapshot.locked",
            Error::GaveUp { last, .. } => last.code(),
            Error::Internal(_) => "internal",
        }
    }

    /// What kind of failure this is, for callers that act on it (a missing object is absent,
    /// an existing one lost a conditional write): they match kinds, never status numbers.
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind::*;
        match self {
            Error::SftpNotFound { .. } | Error::ObjectNotFound { .. } => NotFound,
            Error::SftpPermissionDenied { .. }
            | Error::SftpWriteDenied { .. }
            | Error::AzureForbidden { .. } => PermissionDenied,
            Error::SftpAuthFailed { .. }
            | Error::SftpBadKey(_)
            | Error::SftpHostKey(_)
            | Error::AzureAuthFailed { .. }
            | Error::AzureToken { .. } => Unauthenticated,
            Error::SftpConnectionRefused { .. }
            | Error::SftpTimeout { .. }
            | Error::SftpConnect { .. }
            | Error::SftpConnectionLost { .. }
            | Error::AzureUnreachable { .. }
            | Error::AzureTimeout { .. } => Unavailable,
            Error::AzureHttp { status, code, .. } => ErrorKind::of_http(*status, code),
            Error::MalformedMessage(_)
            | Error::InvalidField { .. }
            | Error::UnknownStorage { .. }
            | Error::InvalidOption { .. }
            | Error::WrongStorageKind { .. }
            | Error::ConnectionString(_)
            | Error::ContainerNotFound { .. }
            | Error::ShareNotFound { .. }
            | Error::PasswordMissing { .. }
            | Error::NoRepository { .. } => Configuration,
            Error::WrongPassword { .. } => Unauthenticated,
            // Held by another job for now: the queue delivers this one again later.
            Error::Locked { .. } => Unavailable,
            Error::GaveUp { last, .. } => last.kind(),
            _ => Other,
        }
    }

    /// Whether trying the same operation again may succeed (network blips, throttling, 5xx).
    /// Decided here, once, for every layer.
    pub fn is_retryable(&self) -> bool {
        match self {
            // A refused connection is final for a job; a reconnect retries it on its own.
            Error::SftpConnectionRefused { .. } | Error::GaveUp { .. } => false,
            Error::SourceChanged { .. } | Error::Azure { .. } => true,
            Error::AzureHttp { status, .. } if *status >= 500 => true,
            e => matches!(e.kind(), ErrorKind::Throttled | ErrorKind::Unavailable),
        }
    }

    /// Whether the cause may pass with time (a retryable error, or one retried until its
    /// attempts ran out): staged work is then kept for the next attempt to resume.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::GaveUp { last, .. } => last.is_transient(),
            e => e.is_retryable(),
        }
    }

    /// The serialisable form that goes into results and logs.
    pub fn report(&self) -> ErrorReport {
        ErrorReport {
            code: self.code().to_string(),
            message: self.to_string(),
            retryable: self.is_retryable(),
        }
    }

    pub(crate) fn invalid_field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_option(
        storage: &str,
        option: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidOption {
            storage: storage.to_string(),
            option: option.into(),
            reason: reason.into(),
        }
    }
}

/// The kinds of failure callers act on, the same for every storage (OpenDAL's `ErrorKind` in
/// spirit). The error's code stays the precise, stable name for users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object (a file, a blob) is not there. A missing container or share is not this:
    /// it is [`ErrorKind::Configuration`], never read as "absent".
    NotFound,
    /// A create-only write met an existing object (409 `*AlreadyExists`, 412 on
    /// `If-None-Match: *`, an SFTP rename that does not replace).
    AlreadyExists,
    /// The service asked to slow down (429, 503 Server Busy).
    Throttled,
    /// The credentials work but lack a permission.
    PermissionDenied,
    /// The credentials were refused (or no token could be had).
    Unauthenticated,
    /// The peer could not be reached or answered with a transient failure (timeouts, 5xx).
    Unavailable,
    /// The job or a profile is wrong: fixing the configuration, not retrying, helps.
    Configuration,
    Other,
}

impl ErrorKind {
    /// An Azure Storage answer's kind, by status and `x-ms-error-code`.
    pub fn of_http(status: u16, code: &str) -> ErrorKind {
        match status {
            404 => ErrorKind::NotFound,
            409 if code.ends_with("AlreadyExists") => ErrorKind::AlreadyExists,
            412 => ErrorKind::AlreadyExists,
            401 => ErrorKind::Unauthenticated,
            403 => ErrorKind::PermissionDenied,
            429 | 503 => ErrorKind::Throttled,
            408 | 500 | 502 | 504 => ErrorKind::Unavailable,
            _ => ErrorKind::Other,
        }
    }
}

/// An error as it appears in a job result.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ErrorReport {
    pub code: String,
    pub message: String,
    pub retryable: bool,
}

/// Strip query strings (SAS signatures live there) from a URL before it goes into a message.
pub fn redact_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?<redacted>"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_dotted() {
        let samples = [
            Error::MalformedMessage("x".into()),
            Error::invalid_field("options.chunk_size", "must be at least 64 KiB"),
            Error::SftpHostKey("mismatch".into()),
            Error::ContainerNotFound {
                account: "a".into(),
                container: "c".into(),
            },
        ];
        let codes: Vec<_> = samples.iter().map(Error::code).collect();
        assert_eq!(
            codes,
            [
                "message.malformed",
                "message.invalid_field",
                "sftp.host_key_verification",
                "azure.container_not_found"
            ]
        );
    }

    #[test]
    fn field_errors_name_the_field() {
        let e = Error::invalid_field("options.upload_concurrency", "must be at least 1");
        assert!(e.to_string().contains("`options.upload_concurrency`"));
    }

    #[test]
    fn redaction_drops_sas_signature() {
        let r = redact_url("https://a.blob.core.windows.net/c?sv=1&sig=SECRET");
        assert!(!r.contains("SECRET"));
        assert!(r.starts_with("https://a.blob.core.windows.net/c"));
    }

    #[test]
    fn retryable_is_decided_by_status() {
        let e = |status| Error::AzureHttp {
            resource: "r".into(),
            status,
            code: "c".into(),
        };
        assert!(e(503).is_retryable());
        assert!(e(429).is_retryable());
        assert!(!e(404).is_retryable());
    }

    #[test]
    fn kinds_are_decided_once_for_every_storage() {
        let http = |status, code: &str| Error::AzureHttp {
            resource: "r".into(),
            status,
            code: code.into(),
        };
        let cases = [
            (http(404, "BlobNotFound"), ErrorKind::NotFound),
            (http(404, "ParentNotFound"), ErrorKind::NotFound),
            (http(409, "BlobAlreadyExists"), ErrorKind::AlreadyExists),
            (http(409, "LeaseIdMissing"), ErrorKind::Other),
            (http(412, "ConditionNotMet"), ErrorKind::AlreadyExists),
            (http(503, "ServerBusy"), ErrorKind::Throttled),
            (http(500, "InternalError"), ErrorKind::Unavailable),
            (
                Error::SftpNotFound { path: "p".into() },
                ErrorKind::NotFound,
            ),
            (
                Error::SftpWriteDenied { path: "p".into() },
                ErrorKind::PermissionDenied,
            ),
            (
                Error::ShareNotFound {
                    account: "a".into(),
                    share: "s".into(),
                },
                ErrorKind::Configuration,
            ),
            (
                Error::GaveUp {
                    attempts: 5,
                    last: Box::new(http(429, "")),
                },
                ErrorKind::Throttled,
            ),
        ];
        for (error, kind) in cases {
            assert_eq!(error.kind(), kind, "{error}");
        }
    }

    #[test]
    fn an_exhausted_error_is_final_but_transient_and_keeps_its_code() {
        let busy = Error::GaveUp {
            attempts: 5,
            last: Box::new(Error::AzureHttp {
                resource: "r".into(),
                status: 503,
                code: "ServerBusy".into(),
            }),
        };
        assert_eq!(busy.code(), "azure.http_error");
        assert!(!busy.is_retryable());
        assert!(busy.is_transient());
        assert!(
            busy.to_string().ends_with("(gave up after 5 attempts)"),
            "{busy}"
        );
    }
}
