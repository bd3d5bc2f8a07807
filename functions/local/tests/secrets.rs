//! The secret scan: every credential the worker takes, good and bad, in jobs that succeed and
//! jobs that fail, through the runner binary at the most verbose log level a user can set.
//! Every line of logs and every result is searched for every secret value, and for bearer
//! tokens and client assertions (JWTs). Nothing may be found.

use std::collections::HashMap;
use std::path::Path;

use backup_common::storage::blob::config::AZURITE_KEY;
use harness::identity::{AppCredential, Identity, IDENTITY_HEADER, TENANT};
use harness::pki::{Pki, PKCS12_PASSWORD};
use harness::sshd::TEST_PASSWORD;
use harness::stack::{pattern, write_file, Stack};

const CLIENT_SECRET: &str = "scan-client-secret-Q8~value";
const WRONG_CLIENT_SECRET: &str = "scan-wrong-client-secret-Z3";
const USER_PASSWORD: &str = "scan-user-password-K7!";
const WRONG_USER_PASSWORD: &str = "scan-wrong-user-password-M2";
const WRONG_SSH_PASSWORD: &str = "scan-wrong-ssh-password-P4";
const WRONG_ACCOUNT_KEY: &str = "c2Nhbi13cm9uZy1hY2NvdW50LWtleS12YWx1ZS1mb3ItdGhlLXNlY3JldC1zY2Fu";
const WRONG_PKCS12_PASSWORD: &str = "scan-wrong-p12-password-R9";
/// Every JWT (tokens, client assertions) starts with a base64url `{"alg":…` header.
const JWT_PREFIX: &str = "eyJhbGci";

/// One job: its message, the options of the Azure storage it uses (`archive` or `fileshare`),
/// SFTP options, and process environment.
struct Case {
    name: &'static str,
    message: String,
    azure: Vec<(&'static str, String)>,
    sftp: Vec<(&'static str, String)>,
    env: Vec<(&'static str, String)>,
}

#[tokio::test]
async fn no_secret_reaches_a_log_line_or_a_result() {
    let stack = Stack::start_entra();
    stack.azurite.create_container("scan").await;
    stack.files.create_share("scan");
    let identity = Identity::start();
    identity.add_app("scan-app", AppCredential::Secret(CLIENT_SECRET.into()));
    identity.add_app(
        "scan-cert",
        AppCredential::Certificate { by_subject: false },
    );
    identity.add_user("scan@contoso.test", USER_PASSWORD);
    identity.add_identity("system");
    let src = stack.source_dir("scan");
    write_file(&src, "big.bin", &pattern(3 * 1024 * 1024, 5));
    write_file(&src, "small.txt", b"small");

    let pki = Pki::get();
    let good_sas = stack.azurite.container_sas_url("scan", "racwdl", 3600);
    let expired_sas = stack.azurite.container_sas_url("scan", "racwdl", -60);
    let sigs: Vec<String> = [&good_sas, &expired_sas]
        .iter()
        .map(|u| u.split("sig=").nth(1).unwrap_or_default().to_string())
        .collect();
    let private_key = std::fs::read_to_string(stack.sshd.client_key()).expect("client key");
    let key_line = private_key.lines().nth(1).unwrap_or_default().to_string();

    let backup = |storage: &str, target: &str| {
        format!(
            r#"{{"kind": "backup", "job_id": "scan", "source": {{"storage": "office_nas", "path": "{}"}},
                "destination": {{"storage": "{storage}", {target}, "prefix": "p"}},
                "options": {{"chunk_size": "1MiB"}}}}"#,
            src.display()
        )
    };
    let check = |storage: &str, target: &str| {
        format!(
            r#"{{"kind": "test_connection", "source": {{"storage": "office_nas", "path": "{}"}},
                "destination": {{"storage": "{storage}", {target}}}}}"#,
            src.display()
        )
    };
    let blob = r#""container": "scan""#;
    let share = r#""share": "scan""#;
    let entra = |extra: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        [
            ("ACCOUNT_KEY", ""),
            ("AUTHORITY_HOST", identity.authority().as_str()),
            ("TENANT_ID", TENANT),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (*k, v.to_string()))
        .collect()
    };
    let s = |pairs: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    };
    let cases = vec![
        Case {
            name: "password + account key, backup",
            message: backup("archive", blob),
            azure: vec![],
            sftp: s(&[("SSH_PRIVATE_KEY_FILE", ""), ("SSH_PASSWORD", TEST_PASSWORD)]),
            env: vec![],
        },
        Case {
            name: "wrong SSH password",
            message: backup("archive", blob),
            azure: vec![],
            sftp: s(&[("SSH_PRIVATE_KEY_FILE", ""), ("SSH_PASSWORD", WRONG_SSH_PASSWORD)]),
            env: vec![],
        },
        Case {
            name: "inline PEM key, Files with the account key",
            message: backup("fileshare", share),
            azure: vec![],
            sftp: s(&[("SSH_PRIVATE_KEY_FILE", ""), ("SSH_PRIVATE_KEY", &private_key)]),
            env: vec![],
        },
        Case {
            name: "wrong account key",
            message: check("archive", blob),
            azure: s(&[("ACCOUNT_KEY", WRONG_ACCOUNT_KEY)]),
            sftp: vec![],
            env: vec![],
        },
        Case {
            name: "SAS URL",
            message: backup("archive", blob),
            azure: s(&[("ACCOUNT_KEY", ""), ("ACCOUNT_NAME", ""), ("ENDPOINT", ""), ("SAS_URL", &good_sas)]),
            sftp: vec![],
            env: vec![],
        },
        Case {
            name: "expired SAS URL",
            message: check("archive", blob),
            azure: s(&[("ACCOUNT_KEY", ""), ("ACCOUNT_NAME", ""), ("ENDPOINT", ""), ("SAS_URL", &expired_sas)]),
            sftp: vec![],
            env: vec![],
        },
        Case {
            name: "connection string",
            message: check("archive", blob),
            azure: s(&[(
                "CONNECTION_STRING",
                &format!(
                    "DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint={}",
                    stack.azurite.endpoint()
                ),
            )]),
            sftp: vec![],
            env: vec![],
        },
        Case {
            name: "client secret, backup to Files",
            message: backup("fileshare", share),
            azure: entra(&[("CLIENT_ID", "scan-app"), ("CLIENT_SECRET", CLIENT_SECRET)]),
            sftp: vec![],
            env: vec![],
        },
        Case {
            name: "client secret, backup to Blob",
            message: backup("archive", blob),
            azure: entra(&[("CLIENT_ID", "scan-app"), ("CLIENT_SECRET", CLIENT_SECRET)]),
            sftp: vec![],
            env: vec![],
        },
        Case {
            name: "wrong client secret",
            message: check("archive", blob),
            azure: entra(&[("CLIENT_ID", "scan-app"), ("CLIENT_SECRET", WRONG_CLIENT_SECRET)]),
            sftp: vec![],
            env: vec![],
        },
        Case {
            name: "PKCS12 certificate",
            message: check("fileshare", share),
            azure: entra(&[
                ("CLIENT_ID", "scan-cert"),
                ("CLIENT_CERTIFICATE_PATH", &pki.client_p12().display().to_string()),
                ("CLIENT_CERTIFICATE_PASSWORD", PKCS12_PASSWORD),
                ("SEND_CERTIFICATE_CHAIN", "true"),
            ]),
            sftp: vec![],
            env: vec![],
        },
        Case {
            name: "wrong PKCS12 password",
            message: check("archive", blob),
            azure: entra(&[
                ("CLIENT_ID", "scan-cert"),
                ("CLIENT_CERTIFICATE_PATH", &pki.client_p12().display().to_string()),
                ("CLIENT_CERTIFICATE_PASSWORD", WRONG_PKCS12_PASSWORD),
            ]),
            sftp: vec![],
            env: vec![],
        },
        Case {
            name: "username and password",
            message: check("archive", blob),
            azure: entra(&[
                ("CLIENT_ID", "public"),
                ("USERNAME", "scan@contoso.test"),
                ("PASSWORD", USER_PASSWORD),
            ]),
            sftp: vec![],
            env: vec![],
        },
        Case {
            name: "wrong user password",
            message: check("archive", blob),
            azure: entra(&[
                ("CLIENT_ID", "public"),
                ("USERNAME", "scan@contoso.test"),
                ("PASSWORD", WRONG_USER_PASSWORD),
            ]),
            sftp: vec![],
            env: vec![],
        },
        Case {
            name: "managed identity, backup",
            message: backup("archive", blob),
            azure: entra(&[("USE_MSI", "true")]),
            sftp: vec![],
            env: vec![
                ("IDENTITY_ENDPOINT", identity.msi_endpoint()),
                ("IDENTITY_HEADER", IDENTITY_HEADER.into()),
            ],
        },
    ];

    let mut secrets: Vec<String> = [
        TEST_PASSWORD,
        WRONG_SSH_PASSWORD,
        AZURITE_KEY,
        WRONG_ACCOUNT_KEY,
        CLIENT_SECRET,
        WRONG_CLIENT_SECRET,
        USER_PASSWORD,
        WRONG_USER_PASSWORD,
        PKCS12_PASSWORD,
        WRONG_PKCS12_PASSWORD,
        IDENTITY_HEADER,
        JWT_PREFIX,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    secrets.extend(sigs);
    secrets.push(key_line);
    assert!(secrets.iter().all(|s| s.len() >= 8), "{secrets:?}");

    let ca = pki.ca().display().to_string();
    let mut scanned = 0;
    let mut outcomes = Vec::new();
    for case in &cases {
        let mut vars: HashMap<String, String> = stack.vars();
        for storage in ["ARCHIVE", "FILESHARE"] {
            vars.insert(format!("BACKUP_STORAGE_{storage}_CA_CERT_FILE"), ca.clone());
            for (k, v) in &case.azure {
                vars.insert(format!("BACKUP_STORAGE_{storage}_{k}"), v.clone());
            }
        }
        for (k, v) in &case.sftp {
            vars.insert(format!("BACKUP_STORAGE_OFFICE_NAS_{k}"), v.clone());
        }
        let mut env: Vec<(&str, &str)> = case.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.push(("RUST_LOG", "trace"));
        let out = harness::runner::run_with_vars(
            Path::new(env!("CARGO_BIN_EXE_backup-worker")),
            vars,
            &case.message,
            &env,
        );
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let result: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{}: no JSON result ({e})", case.name));
        outcomes.push((
            case.name,
            result["status"].as_str().unwrap_or("?").to_string(),
        ));
        for secret in &secrets {
            if let Some(at) = text.find(secret.as_str()) {
                let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
                panic!(
                    "{}: a secret leaked in this line:\n{}",
                    case.name,
                    &text[line_start..line_end]
                );
            }
        }
        scanned += text.lines().count();
    }
    // The scan covered real work, successes and failures both.
    let status = |name: &str| {
        outcomes
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s.as_str())
            .unwrap_or_default()
            .to_string()
    };
    for ok in [
        "password + account key, backup",
        "inline PEM key, Files with the account key",
        "SAS URL",
        "connection string",
        "client secret, backup to Files",
        "client secret, backup to Blob",
        "PKCS12 certificate",
        "username and password",
        "managed identity, backup",
    ] {
        assert_eq!(status(ok), "succeeded", "{ok}: {outcomes:?}");
    }
    for failed in [
        "wrong SSH password",
        "wrong account key",
        "expired SAS URL",
        "wrong client secret",
        "wrong PKCS12 password",
        "wrong user password",
    ] {
        assert_eq!(status(failed), "failed", "{failed}: {outcomes:?}");
    }
    assert!(scanned > 2000, "only {scanned} lines: is trace logging on?");
}
