//! Test Connection against real servers: one test per error class the seeds name, each checking
//! the failing step, the stable code and the actionable words of the message.

use std::collections::HashMap;
use std::net::TcpListener;

use backup_common::config::Profiles;
use backup_common::result::{CheckResult, JobStatus};
use harness::check::assert_failed;
use harness::free_port;
use harness::sshd::{keygen, Sshd, SshdOptions, TEST_PASSWORD};
use harness::stack::Stack;

const BOTH: &str = r#"{"kind": "test_connection",
    "source": {"storage": "office_nas", "path": "/tmp"},
    "destination": {"storage": "archive", "container": "tcx"}}"#;

fn source_only(path: &str) -> String {
    format!(
        r#"{{"kind": "test_connection", "source": {{"storage": "office_nas", "path": "{path}"}}}}"#
    )
}

fn dest_only(container: &str) -> String {
    format!(
        r#"{{"kind": "test_connection", "destination": {{"storage": "archive", "container": "{container}"}}}}"#
    )
}

/// The stack's profiles with some variables changed (`None` removes one).
fn with(stack: &Stack, changes: &[(&str, Option<&str>)]) -> Profiles {
    let mut vars: HashMap<String, String> = stack.vars();
    for (k, v) in changes {
        match v {
            Some(v) => vars.insert(k.to_string(), v.to_string()),
            None => vars.remove(*k),
        };
    }
    Profiles::from_vars(vars)
}

async fn check(stack: &Stack, message: &str, profiles: &Profiles) -> CheckResult {
    let r = stack.run_with(message, profiles).await;
    assert_eq!(r.checks.len(), 1, "{r:#?}");
    assert_eq!(
        r.status,
        if r.checks[0].ok {
            JobStatus::Succeeded
        } else {
            JobStatus::Failed
        }
    );
    r.checks[0].clone()
}

#[tokio::test]
async fn both_sides_pass_with_good_settings() {
    let stack = Stack::start();
    stack.azurite.create_container("tcx").await;
    let r = stack.run(BOTH).await;
    assert_eq!(r.status, JobStatus::Succeeded, "{r:#?}");
    assert_eq!(
        r.checks[0].passed,
        [
            "configuration",
            "connect",
            "handshake",
            "authenticate",
            "list"
        ]
    );
    assert_eq!(
        r.checks[1].passed,
        [
            "configuration",
            "connect",
            "authenticate",
            "access",
            "list",
            "write"
        ]
    );
    // The write probe is an uncommitted block: nothing became visible.
    assert!(stack.azurite.list("tcx").await.is_empty());
}

#[tokio::test]
async fn connection_refused() {
    let stack = Stack::start();
    let port = free_port().to_string();
    let p = with(
        &stack,
        &[("BACKUP_STORAGE_OFFICE_NAS_SSH_PORT", Some(&port))],
    );
    let c = check(&stack, &source_only("/tmp"), &p).await;
    assert_failed(
        &c,
        "connect",
        "sftp.connection_refused",
        &["Connection Refused", &port, "firewalls"],
    );
}

#[tokio::test]
async fn timeout_when_the_server_never_answers() {
    let stack = Stack::start();
    // Accepts TCP connections (the kernel does) but never speaks SSH.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let p = with(
        &stack,
        &[
            ("BACKUP_STORAGE_OFFICE_NAS_SSH_PORT", Some(&port)),
            ("BACKUP_STORAGE_OFFICE_NAS_SSH_CONNECT_TIMEOUT", Some("1")),
        ],
    );
    let c = check(&stack, &source_only("/tmp"), &p).await;
    // TCP connects (the kernel accepts), so the step that times out is the SSH handshake.
    assert_failed(&c, "handshake", "sftp.timeout", &["Timeout Errors", "1 s"]);
    assert_eq!(c.passed, ["configuration", "connect"]);
}

#[tokio::test]
async fn password_authentication_works_and_a_wrong_password_is_an_authentication_failure() {
    let stack = Stack::start();
    let good = with(
        &stack,
        &[
            ("BACKUP_STORAGE_OFFICE_NAS_SSH_PRIVATE_KEY_FILE", None),
            (
                "BACKUP_STORAGE_OFFICE_NAS_SSH_PASSWORD",
                Some(TEST_PASSWORD),
            ),
        ],
    );
    assert!(check(&stack, &source_only("/tmp"), &good).await.ok);
    let bad = with(
        &stack,
        &[
            ("BACKUP_STORAGE_OFFICE_NAS_SSH_PRIVATE_KEY_FILE", None),
            (
                "BACKUP_STORAGE_OFFICE_NAS_SSH_PASSWORD",
                Some("not-the-password"),
            ),
        ],
    );
    let c = check(&stack, &source_only("/tmp"), &bad).await;
    assert_failed(
        &c,
        "authenticate",
        "sftp.auth_failed",
        &["Authentication Failure", "bwtest", "password"],
    );
    assert!(!c.error.unwrap().message.contains("not-the-password"));
}

#[tokio::test]
async fn a_key_the_server_does_not_know_is_an_authentication_failure() {
    let stack = Stack::start();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("other");
    keygen(&key, "");
    let p = with(
        &stack,
        &[(
            "BACKUP_STORAGE_OFFICE_NAS_SSH_PRIVATE_KEY_FILE",
            key.to_str(),
        )],
    );
    let c = check(&stack, &source_only("/tmp"), &p).await;
    assert_failed(
        &c,
        "authenticate",
        "sftp.auth_failed",
        &["private key file", "authorized_keys"],
    );
}

#[tokio::test]
async fn an_encrypted_key_without_its_passphrase_says_so() {
    let stack = Stack::start();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("locked");
    keygen(&key, "sesame");
    let p = with(
        &stack,
        &[(
            "BACKUP_STORAGE_OFFICE_NAS_SSH_PRIVATE_KEY_FILE",
            key.to_str(),
        )],
    );
    let c = check(&stack, &source_only("/tmp"), &p).await;
    assert_failed(
        &c,
        "authenticate",
        "sftp.bad_private_key",
        &["SSH_PRIVATE_KEY_PASSPHRASE"],
    );
}

#[tokio::test]
async fn host_key_verification() {
    let stack = Stack::start();
    let fingerprint = stack.sshd.host_fingerprint();
    // A pinned fingerprint that matches: accepted without any known_hosts file.
    let pinned = with(
        &stack,
        &[
            ("BACKUP_STORAGE_OFFICE_NAS_SSH_KNOWN_HOSTS_FILE", None),
            (
                "BACKUP_STORAGE_OFFICE_NAS_SSH_HOST_KEY_FINGERPRINT",
                Some(&fingerprint),
            ),
        ],
    );
    assert!(check(&stack, &source_only("/tmp"), &pinned).await.ok);

    // A different pinned fingerprint: refused, both fingerprints named.
    let wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let mismatch = with(
        &stack,
        &[(
            "BACKUP_STORAGE_OFFICE_NAS_SSH_HOST_KEY_FINGERPRINT",
            Some(wrong),
        )],
    );
    let c = check(&stack, &source_only("/tmp"), &mismatch).await;
    assert_failed(
        &c,
        "handshake",
        "sftp.host_key_verification",
        &["Host Key Verification", &fingerprint, wrong],
    );

    // A known_hosts file that holds another server's key for this address: refused.
    let other = Sshd::start_with(SshdOptions::default());
    let other_key = std::fs::read_to_string(other.known_hosts()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("known_hosts");
    let entry = other_key.replace(
        &format!("]:{} ", other.port),
        &format!("]:{} ", stack.sshd.port),
    );
    std::fs::write(&stale, entry).unwrap();
    let changed = with(
        &stack,
        &[(
            "BACKUP_STORAGE_OFFICE_NAS_SSH_KNOWN_HOSTS_FILE",
            stale.to_str(),
        )],
    );
    let c = check(&stack, &source_only("/tmp"), &changed).await;
    assert_failed(
        &c,
        "handshake",
        "sftp.host_key_verification",
        &["does not match", "intercepting"],
    );

    // First connection to an unknown server: refused, with the fingerprint to pin.
    let empty = dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let unknown = with(
        &stack,
        &[(
            "BACKUP_STORAGE_OFFICE_NAS_SSH_KNOWN_HOSTS_FILE",
            empty.to_str(),
        )],
    );
    let c = check(&stack, &source_only("/tmp"), &unknown).await;
    assert_failed(
        &c,
        "handshake",
        "sftp.host_key_verification",
        &[&fingerprint, "SSH_HOST_KEY_FINGERPRINT"],
    );

    // The explicit opt-out accepts it.
    let skip = with(
        &stack,
        &[
            (
                "BACKUP_STORAGE_OFFICE_NAS_SSH_KNOWN_HOSTS_FILE",
                empty.to_str(),
            ),
            (
                "BACKUP_STORAGE_OFFICE_NAS_SSH_SKIP_HOST_KEY_CHECK",
                Some("true"),
            ),
        ],
    );
    assert!(check(&stack, &source_only("/tmp"), &skip).await.ok);
}

#[tokio::test]
async fn permission_denied_on_the_source_path() {
    let stack = Stack::start();
    let private = stack.source_dir("private");
    std::fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let c = check(
        &stack,
        &source_only(private.to_str().unwrap()),
        &stack.profiles(),
    )
    .await;
    assert_failed(
        &c,
        "list",
        "sftp.permission_denied",
        &["Permission Denied", "private"],
    );
    assert_eq!(
        c.passed,
        ["configuration", "connect", "handshake", "authenticate"]
    );
}

#[tokio::test]
async fn container_not_found() {
    let stack = Stack::start();
    let c = check(&stack, &dest_only("no-such-container"), &stack.profiles()).await;
    assert_failed(
        &c,
        "access",
        "azure.container_not_found",
        &["`no-such-container`"],
    );
}

#[tokio::test]
async fn a_wrong_account_key_is_authentication_failed() {
    let stack = Stack::start();
    stack.azurite.create_container("tcx").await;
    let wrong = "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXkgd3Jvbmcga2V5IHdyb25nIGtleQ==";
    let p = with(
        &stack,
        &[("BACKUP_STORAGE_ARCHIVE_ACCOUNT_KEY", Some(wrong))],
    );
    let c = check(&stack, &dest_only("tcx"), &p).await;
    assert_failed(
        &c,
        "access",
        "azure.auth_failed",
        &["Authentication Failed", "devstoreaccount1", "Key"],
    );
    assert!(!c.error.unwrap().message.contains(wrong));
}

#[tokio::test]
async fn sas_urls_valid_expired_and_lacking_permissions() {
    let stack = Stack::start();
    stack.azurite.create_container("tcx").await;
    let sas = |url: String| {
        with(
            &stack,
            &[
                ("BACKUP_STORAGE_ARCHIVE_ACCOUNT_NAME", None),
                ("BACKUP_STORAGE_ARCHIVE_ACCOUNT_KEY", None),
                ("BACKUP_STORAGE_ARCHIVE_ENDPOINT", None),
                ("BACKUP_STORAGE_ARCHIVE_SAS_URL", Some(url.as_str())),
            ],
        )
    };
    let good = stack.azurite.container_sas_url("tcx", "racwdl", 3600);
    let c = check(&stack, &dest_only("tcx"), &sas(good)).await;
    assert!(c.ok, "{c:#?}");

    let expired = stack.azurite.container_sas_url("tcx", "racwdl", -60);
    let c = check(&stack, &dest_only("tcx"), &sas(expired.clone())).await;
    assert_failed(
        &c,
        "authenticate",
        "azure.auth_failed",
        &["Authentication Failed", "expired at", "new SAS URL"],
    );
    let sig = expired.split("sig=").nth(1).unwrap();
    assert!(
        !c.error.unwrap().message.contains(sig),
        "the SAS signature leaked"
    );

    let read_only = stack.azurite.container_sas_url("tcx", "r", 3600);
    let c = check(&stack, &dest_only("tcx"), &sas(read_only)).await;
    assert_failed(
        &c,
        "list",
        "azure.forbidden",
        &["Forbidden (403)", "lack the list permission"],
    );
}

#[tokio::test]
async fn a_partial_connection_string_says_which_part_is_missing() {
    let stack = Stack::start();
    let p = with(
        &stack,
        &[(
            "BACKUP_STORAGE_ARCHIVE_CONNECTION_STRING",
            Some("DefaultEndpointsProtocol=https;AccountName=devstoreaccount1"),
        )],
    );
    let c = check(&stack, &dest_only("tcx"), &p).await;
    assert_failed(
        &c,
        "configuration",
        "azure.connection_string_invalid",
        &["Connection String Errors", "`AccountKey`", "in full"],
    );
}

#[tokio::test]
async fn a_full_connection_string_works() {
    let stack = Stack::start();
    stack.azurite.create_container("tcx").await;
    let cs = format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};BlobEndpoint={};",
        backup_common::storage::blob::config::AZURITE_KEY,
        stack.azurite.endpoint()
    );
    let p = with(
        &stack,
        &[("BACKUP_STORAGE_ARCHIVE_CONNECTION_STRING", Some(&cs))],
    );
    assert!(check(&stack, &dest_only("tcx"), &p).await.ok);
}

#[tokio::test]
async fn an_unreachable_endpoint_fails_at_connect() {
    let stack = Stack::start();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let refused = format!("http://127.0.0.1:{port}/devstoreaccount1");
    let p = with(
        &stack,
        &[("BACKUP_STORAGE_ARCHIVE_ENDPOINT", Some(&refused))],
    );
    let c = check(&stack, &dest_only("tcx"), &p).await;
    assert_failed(
        &c,
        "connect",
        "azure.unreachable",
        &[&format!("127.0.0.1:{port}"), "firewalls"],
    );
    assert_eq!(c.passed, ["configuration"]);

    let p = with(
        &stack,
        &[(
            "BACKUP_STORAGE_ARCHIVE_ENDPOINT",
            Some("https://no-such-account.blob.invalid"),
        )],
    );
    let c = check(&stack, &dest_only("tcx"), &p).await;
    assert_failed(
        &c,
        "connect",
        "azure.unreachable",
        &["cannot resolve `no-such-account.blob.invalid`"],
    );
}

#[tokio::test]
async fn an_unknown_storage_names_the_variable_to_set() {
    let stack = Stack::start();
    let r = stack
        .run(r#"{"kind": "test_connection", "destination": {"storage": "nowhere", "container": "tcx"}}"#)
        .await;
    let c = &r.checks[0];
    assert_failed(
        c,
        "configuration",
        "config.unknown_storage",
        &["BACKUP_STORAGE_NOWHERE_TYPE"],
    );
}

// --- Azure Files --------------------------------------------------------------------------

fn share_only(share: &str) -> String {
    format!(
        r#"{{"kind": "test_connection", "destination": {{"storage": "fileshare", "share": "{share}"}}}}"#
    )
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn azure_files_passes_and_leaves_nothing_behind() {
    let stack = Stack::start();
    stack.files.create_share("files-ok");
    let c = check(&stack, &share_only("files-ok"), &stack.profiles()).await;
    assert!(c.ok, "{c:#?}");
    assert_eq!(
        c.passed,
        [
            "configuration",
            "connect",
            "authenticate",
            "access",
            "list",
            "write"
        ]
    );
    assert!(
        stack.files.files("files-ok").is_empty(),
        "the write probe was removed"
    );
}

#[tokio::test]
async fn azure_files_share_not_found() {
    let stack = Stack::start();
    stack.files.create_share("backups");
    let c = check(&stack, &share_only("backup"), &stack.profiles()).await;
    assert_failed(
        &c,
        "access",
        "azure.share_not_found",
        &["Share Not Found", "`backup`", "case-sensitive"],
    );
}

#[tokio::test]
async fn azure_files_wrong_key_is_authentication_failed() {
    let stack = Stack::start();
    stack.files.create_share("files-key");
    let wrong = "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXkgd3Jvbmcga2V5IHdyb25nIGtleQ==";
    let p = with(
        &stack,
        &[("BACKUP_STORAGE_FILESHARE_ACCOUNT_KEY", Some(wrong))],
    );
    let c = check(&stack, &share_only("files-key"), &p).await;
    assert_failed(
        &c,
        "access",
        "azure.auth_failed",
        &["Authentication Failed", "Key"],
    );
}

#[tokio::test]
async fn azure_files_sas_urls_valid_expired_and_read_only() {
    let stack = Stack::start();
    stack.files.create_share("files-sas");
    let sas = |permissions: &str, valid_for: i64| {
        let token = stack
            .files
            .share_sas("files-sas", permissions, now_unix() + valid_for);
        let url = format!("{}/files-sas?{token}", stack.files.endpoint());
        with(
            &stack,
            &[
                ("BACKUP_STORAGE_FILESHARE_ACCOUNT_NAME", None),
                ("BACKUP_STORAGE_FILESHARE_ACCOUNT_KEY", None),
                ("BACKUP_STORAGE_FILESHARE_ENDPOINT", None),
                ("BACKUP_STORAGE_FILESHARE_SAS_URL", Some(url.as_str())),
            ],
        )
    };
    // The share comes from the SAS URL: the message need not name it.
    let from_url = r#"{"kind": "test_connection", "destination": {"storage": "fileshare"}}"#;
    let c = check(&stack, from_url, &sas("rcwdl", 3600)).await;
    assert!(c.ok, "{c:#?}");

    let c = check(&stack, from_url, &sas("rcwdl", -60)).await;
    assert_failed(
        &c,
        "authenticate",
        "azure.auth_failed",
        &["Authentication Failed"],
    );

    let c = check(&stack, from_url, &sas("rl", 3600)).await;
    assert_failed(
        &c,
        "write",
        "azure.forbidden",
        &["Forbidden (403)", "lack the write permission", "share"],
    );
}

#[tokio::test]
async fn azure_files_partial_connection_string() {
    let stack = Stack::start();
    let p = with(
        &stack,
        &[(
            "BACKUP_STORAGE_FILESHARE_CONNECTION_STRING",
            Some("DefaultEndpointsProtocol=https;AccountKey=a2V5"),
        )],
    );
    let c = check(&stack, &share_only("any-share"), &p).await;
    assert_failed(
        &c,
        "configuration",
        "azure.connection_string_invalid",
        &["`AccountName`"],
    );
    let cs = format!(
        "DefaultEndpointsProtocol=http;AccountName={};AccountKey={};FileEndpoint={}",
        stack.files.account(),
        stack.files.key(),
        stack.files.endpoint()
    );
    stack.files.create_share("any-share");
    let p = with(
        &stack,
        &[("BACKUP_STORAGE_FILESHARE_CONNECTION_STRING", Some(&cs))],
    );
    assert!(check(&stack, &share_only("any-share"), &p).await.ok);
}
