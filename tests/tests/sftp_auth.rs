//! Each SFTP authentication option of the seed, against an sshd configured for the case:
//! inline PEM key, key file with passphrase, OpenSSH certificate (inline and file), ssh-agent
//! (a real `ssh-agent`), Allow Insecure Ciphers against a legacy-only server, and a password
//! through keyboard-interactive (PAM) where password authentication is off.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use backup_common::config::Profiles;
use backup_common::result::{CheckResult, JobStatus};
use harness::sshd::{keygen, Sshd, SshdOptions, TEST_USER};

/// Profile variables for `office_nas` against `sshd`, without any credential.
fn base(sshd: &Sshd) -> HashMap<String, String> {
    HashMap::from([
        ("BACKUP_STORAGE_OFFICE_NAS_TYPE".into(), "sftp".into()),
        (
            "BACKUP_STORAGE_OFFICE_NAS_SSH_HOST".into(),
            "127.0.0.1".into(),
        ),
        (
            "BACKUP_STORAGE_OFFICE_NAS_SSH_PORT".into(),
            sshd.port.to_string(),
        ),
        (
            "BACKUP_STORAGE_OFFICE_NAS_SSH_USERNAME".into(),
            TEST_USER.into(),
        ),
        (
            "BACKUP_STORAGE_OFFICE_NAS_SSH_KNOWN_HOSTS_FILE".into(),
            sshd.known_hosts().display().to_string(),
        ),
    ])
}

async fn check(vars: HashMap<String, String>) -> CheckResult {
    let message =
        r#"{"kind": "test_connection", "source": {"storage": "office_nas", "path": "/tmp"}}"#;
    let r = backup_common::job::run_text(
        message,
        &Profiles::from_vars(vars),
        backup_common::transfer::Progress::new(),
    )
    .await;
    assert_eq!(r.status == JobStatus::Succeeded, r.checks[0].ok);
    r.checks[0].clone()
}

fn with(
    mut vars: HashMap<String, String>,
    option: &str,
    value: impl Into<String>,
) -> HashMap<String, String> {
    vars.insert(format!("BACKUP_STORAGE_OFFICE_NAS_{option}"), value.into());
    vars
}

#[tokio::test]
async fn an_inline_pem_key_authenticates() {
    let sshd = Sshd::start();
    let pem = std::fs::read_to_string(sshd.client_key()).unwrap();
    let c = check(with(base(&sshd), "SSH_PRIVATE_KEY", pem)).await;
    assert!(c.ok, "{c:#?}");
}

#[tokio::test]
async fn a_key_file_with_its_passphrase_authenticates_and_a_wrong_one_is_named() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("locked");
    keygen(&key, "open sesame");
    sshd.authorize(&key.with_extension("pub"));
    let vars = with(
        base(&sshd),
        "SSH_PRIVATE_KEY_FILE",
        key.display().to_string(),
    );
    let c = check(with(
        vars.clone(),
        "SSH_PRIVATE_KEY_PASSPHRASE",
        "open sesame",
    ))
    .await;
    assert!(c.ok, "{c:#?}");
    let c = check(with(vars, "SSH_PRIVATE_KEY_PASSPHRASE", "wrong")).await;
    let e = c.error.unwrap();
    assert_eq!(e.code, "sftp.bad_private_key");
    assert!(e.message.contains("passphrase"), "{}", e.message);
    assert!(
        !e.message.contains("wrong"),
        "the passphrase leaked: {}",
        e.message
    );
}

#[tokio::test]
async fn an_openssh_certificate_authenticates_where_the_bare_key_does_not() {
    let sshd = Sshd::start_with(SshdOptions {
        authorized_keys: false,
        user_ca: true,
        ..Default::default()
    });
    let key = with(
        base(&sshd),
        "SSH_PRIVATE_KEY_FILE",
        sshd.client_key().display().to_string(),
    );
    let bare = check(key.clone()).await;
    assert_eq!(
        bare.error.unwrap().code,
        "sftp.auth_failed",
        "only certificates may log in"
    );

    let from_file = check(with(
        key.clone(),
        "SSH_PUBLIC_KEY_FILE",
        sshd.client_certificate().display().to_string(),
    ))
    .await;
    assert!(from_file.ok, "{from_file:#?}");
    let inline = std::fs::read_to_string(sshd.client_certificate()).unwrap();
    let from_text = check(with(key.clone(), "SSH_PUBLIC_CERTIFICATE", inline)).await;
    assert!(from_text.ok, "{from_text:#?}");

    let garbage = check(with(
        key,
        "SSH_PUBLIC_CERTIFICATE",
        "ssh-ed25519-cert-v01@openssh.com AAAA",
    ))
    .await;
    let e = garbage.error.unwrap();
    assert_eq!(e.code, "sftp.bad_private_key");
    assert!(e.message.contains("OpenSSH certificate"), "{}", e.message);
}

struct Agent(Child, tempfile::TempDir);

impl Agent {
    fn start(keys: &[&Path]) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        harness::wait_for(|| socket.exists(), "ssh-agent socket");
        for key in keys {
            let ok = Command::new("ssh-add")
                .arg(key)
                .env("SSH_AUTH_SOCK", &socket)
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(ok.success(), "ssh-add");
        }
        Agent(child, dir)
    }

    fn socket(&self) -> String {
        self.1.path().join("agent.sock").display().to_string()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_ssh_agent_authenticates_and_an_empty_one_says_so() {
    let sshd = Sshd::start();
    let agent = Agent::start(&[&sshd.client_key()]);
    let vars = with(
        with(base(&sshd), "SSH_USE_AGENT", "true"),
        "SSH_AGENT_SOCKET",
        agent.socket(),
    );
    let c = check(vars).await;
    assert!(c.ok, "{c:#?}");

    let empty = Agent::start(&[]);
    let vars = with(
        with(base(&sshd), "SSH_USE_AGENT", "true"),
        "SSH_AGENT_SOCKET",
        empty.socket(),
    );
    let e = check(vars).await.error.unwrap();
    assert_eq!(e.code, "sftp.auth_failed");
    assert!(
        e.message.contains("no keys loaded") && e.message.contains("ssh-add"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn allow_insecure_ciphers_reaches_a_legacy_server() {
    let sshd = Sshd::start_with(SshdOptions {
        legacy_only: true,
        ..Default::default()
    });
    let key = with(
        base(&sshd),
        "SSH_PRIVATE_KEY_FILE",
        sshd.client_key().display().to_string(),
    );
    let refused = check(key.clone()).await;
    assert_eq!(refused.failed_step.as_deref(), Some("handshake"));
    let e = refused.error.unwrap();
    assert_eq!(e.code, "sftp.connect_failed");
    assert!(
        e.message.contains("SSH_ALLOW_INSECURE_CIPHERS"),
        "{}",
        e.message
    );
    let c = check(with(key, "SSH_ALLOW_INSECURE_CIPHERS", "true")).await;
    assert!(c.ok, "{c:#?}");
}

/// Whether this CPU runs AES-GCM in hardware (the worker then puts it first).
fn aes_in_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("aes")
        && std::arch::is_x86_feature_detected!("pclmulqdq");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

#[tokio::test]
async fn the_fastest_safe_cipher_is_negotiated_and_chacha20_stays_for_servers_without_aes_gcm() {
    let negotiated = |sshd: &Sshd| {
        let log = sshd.log();
        log.lines()
            .find_map(|l| l.split("kex: client->server cipher: ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
    };
    let sshd = Sshd::start_with(SshdOptions {
        debug_log: true,
        ..Default::default()
    });
    let key = |sshd: &Sshd| {
        with(
            base(sshd),
            "SSH_PRIVATE_KEY_FILE",
            sshd.client_key().display().to_string(),
        )
    };
    let c = check(key(&sshd)).await;
    assert!(c.ok, "{c:#?}");
    let fastest = if aes_in_hardware() {
        "aes256-gcm@openssh.com"
    } else {
        "chacha20-poly1305@openssh.com"
    };
    assert_eq!(negotiated(&sshd).as_deref(), Some(fastest));

    let chacha_only = Sshd::start_with(SshdOptions {
        debug_log: true,
        ciphers: Some("chacha20-poly1305@openssh.com"),
        ..Default::default()
    });
    let c = check(key(&chacha_only)).await;
    assert!(c.ok, "{c:#?}");
    assert_eq!(
        negotiated(&chacha_only).as_deref(),
        Some("chacha20-poly1305@openssh.com")
    );
}

#[tokio::test]
async fn a_password_goes_through_keyboard_interactive_when_the_server_wants_that() {
    let sshd = Sshd::start_with(SshdOptions {
        password_auth: false,
        authorized_keys: false,
        keyboard_interactive: true,
        ..Default::default()
    });
    let c = check(with(
        base(&sshd),
        "SSH_PASSWORD",
        harness::sshd::TEST_PASSWORD,
    ))
    .await;
    assert!(c.ok, "{c:#?}");
    assert!(
        sshd.log().contains("Accepted keyboard-interactive/pam"),
        "{}",
        sshd.log()
    );
    let c = check(with(base(&sshd), "SSH_PASSWORD", "not-the-password")).await;
    assert_eq!(c.failed_step.as_deref(), Some("authenticate"), "{c:#?}");
    let e = c.error.expect("error");
    assert_eq!(e.code, "sftp.auth_failed");
    assert!(e.message.contains("keyboard-interactive"), "{}", e.message);
    assert!(!e.message.contains("not-the-password"));
}
