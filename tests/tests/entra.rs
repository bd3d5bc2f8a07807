//! Entra ID credentials for real: Azurite with OAuth over https, the Azure Files test server
//! over TLS (bearer tokens, the backup intent header, a read-only role), and the local identity
//! endpoint that issues tokens only for the right secret, password or signed assertion.
//! Managed identity and Environment Auth read the process environment, so they are tested
//! through the runner binary (functions/local/tests/entra_env.rs).

use std::collections::HashMap;

use backup_common::config::Profiles;
use backup_common::result::{CheckResult, JobStatus};
use harness::entra::EntraStack;
use harness::identity::{AppCredential, TENANT};
use harness::pki::{Pki, PKCS12_PASSWORD};
use harness::stack::write_file;

const SECRET: &str = "client-secret-value-7Q~x";
const USER_PASSWORD: &str = "user-password-9@z";

struct Env(EntraStack);

impl std::ops::Deref for Env {
    type Target = EntraStack;
    fn deref(&self) -> &EntraStack {
        &self.0
    }
}

impl Env {
    async fn start() -> Env {
        Env(EntraStack::start("entra").await)
    }

    fn profiles(&self, options: &[(&str, &str)]) -> Profiles {
        Profiles::from_vars(self.vars(options))
    }

    async fn check(&self, options: &[(&str, &str)]) -> (CheckResult, CheckResult) {
        let message = r#"{"kind": "test_connection",
            "destination": {"storage": "archive", "container": "entra"}}"#;
        let files_message = r#"{"kind": "test_connection",
            "destination": {"storage": "fileshare", "share": "entra"}}"#;
        let profiles = self.profiles(options);
        let blob = self.stack.run_with(message, &profiles).await;
        let files = self.stack.run_with(files_message, &profiles).await;
        (blob.checks[0].clone(), files.checks[0].clone())
    }
}

fn assert_passed(c: &CheckResult) {
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
        ],
        "{c:#?}"
    );
}

/// [`harness::check::assert_failed`], and no secret of these tests in the message.
fn assert_failed(c: &CheckResult, step: &str, code: &str, words: &[&str]) {
    harness::check::assert_failed(c, step, code, words);
    let e = c.error.as_ref().expect("error");
    for secret in [SECRET, USER_PASSWORD, PKCS12_PASSWORD] {
        assert!(!e.message.contains(secret), "secret in {:?}", e.message);
    }
}

#[tokio::test]
async fn client_secret_backs_up_into_blob_and_files() {
    let env = Env::start().await;
    let oid = env
        .identity
        .add_app("app-secret", AppCredential::Secret(SECRET.into()));
    let options = [("CLIENT_ID", "app-secret"), ("CLIENT_SECRET", SECRET)];
    let (blob, files) = env.check(&options).await;
    assert_passed(&blob);
    assert_passed(&files);

    let dir = env.stack.source_dir("entra-secret");
    write_file(&dir, "a.txt", b"alpha");
    write_file(&dir, "sub/b.bin", &harness::stack::pattern(300_000, 7));
    let profiles = env.profiles(&options);
    for (storage, target) in [
        ("archive", r#""container": "entra""#),
        ("fileshare", r#""share": "entra""#),
    ] {
        let message = format!(
            r#"{{"kind": "backup", "job_id": "entra", "source": {{"storage": "office_nas", "path": "{}"}},
                "destination": {{"storage": "{storage}", {target}, "prefix": "nas"}}}}"#,
            dir.display()
        );
        let r = env.stack.run_with(&message, &profiles).await;
        assert_eq!(r.status, JobStatus::Succeeded, "{r:#?}");
        assert_eq!(r.files.copied, 2, "{r:#?}");
    }
    assert_eq!(
        env.stack.azurite.list("entra").await,
        ["nas/a.txt", "nas/sub/b.bin"]
    );
    assert_eq!(
        env.stack.azurite.read("entra", "nas/sub/b.bin").await,
        harness::stack::pattern(300_000, 7)
    );
    let names: Vec<String> = env
        .stack
        .files
        .files("entra")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["nas/a.txt", "nas/sub/b.bin"]);
    // Tokens are cached: a handful of grants for many requests, all for this app.
    let grants = env.identity.grants();
    assert!(!grants.is_empty() && grants.len() <= 8, "{grants:#?}");
    assert!(grants
        .iter()
        .all(|g| g.kind == "client_secret" && g.oid == oid));
}

#[tokio::test]
async fn wrong_client_secret_names_the_method_and_entra_error() {
    let env = Env::start().await;
    env.identity
        .add_app("app-secret", AppCredential::Secret(SECRET.into()));
    let (blob, files) = env
        .check(&[
            ("CLIENT_ID", "app-secret"),
            ("CLIENT_SECRET", "not-the-secret"),
        ])
        .await;
    for c in [&blob, &files] {
        assert_failed(
            c,
            "authenticate",
            "azure.token_failed",
            &[
                "Authentication Failed",
                "service principal (client secret)",
                "AADSTS7000215",
            ],
        );
    }
    let (blob, _) = env
        .check(&[("CLIENT_ID", "no-such-app"), ("CLIENT_SECRET", SECRET)])
        .await;
    assert_failed(
        &blob,
        "authenticate",
        "azure.token_failed",
        &["AADSTS700016", "no-such-app"],
    );
}

#[tokio::test]
async fn client_certificate_pem_and_pkcs12() {
    let env = Env::start().await;
    env.identity
        .add_app("app-cert", AppCredential::Certificate { by_subject: false });
    let pki = Pki::get();
    let pem = pki.client_pem().display().to_string();
    let p12 = pki.client_p12().display().to_string();
    let (blob, files) = env
        .check(&[("CLIENT_ID", "app-cert"), ("CLIENT_CERTIFICATE_PATH", &pem)])
        .await;
    assert_passed(&blob);
    assert_passed(&files);
    let (blob, _) = env
        .check(&[
            ("CLIENT_ID", "app-cert"),
            ("CLIENT_CERTIFICATE_PATH", &p12),
            ("CLIENT_CERTIFICATE_PASSWORD", PKCS12_PASSWORD),
        ])
        .await;
    assert_passed(&blob);
    assert!(env
        .identity
        .grants()
        .iter()
        .all(|g| g.kind == "client_assertion" && !g.sent_x5c));

    let (blob, _) = env
        .check(&[
            ("CLIENT_ID", "app-cert"),
            ("CLIENT_CERTIFICATE_PATH", &p12),
            ("CLIENT_CERTIFICATE_PASSWORD", "wrong"),
        ])
        .await;
    assert_failed(
        &blob,
        "configuration",
        "config.invalid_option",
        &["CLIENT_CERTIFICATE_PASSWORD", "client.p12"],
    );
    // A file that is neither: says so, and the storage is not touched.
    let bogus = tempfile::NamedTempFile::new().expect("tempfile");
    std::fs::write(
        bogus.path(),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let bogus = bogus.path().display().to_string();
    let (blob, _) = env
        .check(&[
            ("CLIENT_ID", "app-cert"),
            ("CLIENT_CERTIFICATE_PATH", &bogus),
        ])
        .await;
    assert_failed(
        &blob,
        "configuration",
        "config.invalid_option",
        &["CLIENT_CERTIFICATE_PATH"],
    );
}

#[tokio::test]
async fn send_certificate_chain_for_subject_name_trust() {
    let env = Env::start().await;
    env.identity
        .add_app("app-sni", AppCredential::Certificate { by_subject: true });
    let pem = Pki::get().client_pem().display().to_string();
    let base = [
        ("CLIENT_ID", "app-sni"),
        ("CLIENT_CERTIFICATE_PATH", pem.as_str()),
    ];
    let (blob, _) = env.check(&base).await;
    assert_failed(
        &blob,
        "authenticate",
        "azure.token_failed",
        &["AADSTS700027", "x5c"],
    );
    let with_chain: Vec<_> = base
        .iter()
        .copied()
        .chain([("SEND_CERTIFICATE_CHAIN", "true")])
        .collect();
    let (blob, files) = env.check(&with_chain).await;
    assert_passed(&blob);
    assert_passed(&files);
    assert!(env.identity.grants().iter().all(|g| g.sent_x5c));
}

#[tokio::test]
async fn username_and_password() {
    let env = Env::start().await;
    let oid = env.identity.add_user("backup@contoso.test", USER_PASSWORD);
    let good = [
        ("CLIENT_ID", "public-client"),
        ("USERNAME", "backup@contoso.test"),
        ("PASSWORD", USER_PASSWORD),
    ];
    let (blob, files) = env.check(&good).await;
    assert_passed(&blob);
    assert_passed(&files);
    assert!(env
        .identity
        .grants()
        .iter()
        .all(|g| g.kind == "password" && g.oid == oid));
    let (blob, _) = env
        .check(&[
            ("CLIENT_ID", "public-client"),
            ("USERNAME", "backup@contoso.test"),
            ("PASSWORD", "wrong-password"),
        ])
        .await;
    assert_failed(
        &blob,
        "authenticate",
        "azure.token_failed",
        &[
            "username/password (user `backup@contoso.test`)",
            "AADSTS50126",
        ],
    );
}

#[tokio::test]
async fn service_principal_file() {
    let env = Env::start().await;
    env.identity
        .add_app("app-from-file", AppCredential::Secret(SECRET.into()));
    let file = tempfile::NamedTempFile::new().expect("tempfile");
    std::fs::write(
        file.path(),
        format!(
            r#"{{"appId": "app-from-file", "displayName": "backup", "password": "{SECRET}", "tenant": "{TENANT}"}}"#
        ),
    )
    .expect("write");
    let path = file.path().display().to_string();
    let (blob, files) = env.check(&[("SERVICE_PRINCIPAL_FILE", &path)]).await;
    assert_passed(&blob);
    assert_passed(&files);
    assert_eq!(env.identity.grants()[0].principal, "app-from-file");
}

#[tokio::test]
async fn read_only_role_is_forbidden_with_rbac_hint() {
    let env = Env::start().await;
    let oid = env
        .identity
        .add_app("app-reader", AppCredential::Secret(SECRET.into()));
    env.stack.files.grant_read_only(&oid);
    let (_, files) = env
        .check(&[("CLIENT_ID", "app-reader"), ("CLIENT_SECRET", SECRET)])
        .await;
    assert_failed(
        &files,
        "write",
        "azure.forbidden",
        &["Forbidden (403)", "write permission", "RBAC role"],
    );
    assert_eq!(
        files.passed,
        ["configuration", "connect", "authenticate", "access", "list"]
    );
}

#[tokio::test]
async fn tokens_are_never_sent_over_http() {
    let env = Env::start().await;
    env.identity
        .add_app("app-secret", AppCredential::Secret(SECRET.into()));
    let mut vars: HashMap<String, String> = HashMap::new();
    for (k, v) in [
        ("TYPE", "azureblob"),
        ("ENDPOINT", "http://127.0.0.1:1/devstoreaccount1"),
        ("CLIENT_ID", "app-secret"),
        ("CLIENT_SECRET", SECRET),
        ("TENANT_ID", TENANT),
    ] {
        vars.insert(format!("BACKUP_STORAGE_PLAIN_{k}"), v.into());
    }
    let r = env
        .stack
        .run_with(
            r#"{"kind": "test_connection", "destination": {"storage": "plain", "container": "x1y"}}"#,
            &Profiles::from_vars(vars),
        )
        .await;
    assert_failed(
        &r.checks[0],
        "configuration",
        "config.invalid_option",
        &["ENDPOINT", "only sent over https"],
    );
    assert!(env.identity.grants().is_empty());
}

/// The Files server turns away a bearer request without `x-ms-file-request-intent: backup`, as
/// Azure does; so the passing Files checks above prove the worker sends it.
#[tokio::test]
async fn files_server_requires_the_backup_intent_with_tokens() {
    let env = Env::start().await;
    env.identity
        .add_app("app-secret", AppCredential::Secret(SECRET.into()));
    let http = harness::test_http_client();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "app-secret"),
        ("client_secret", SECRET),
        ("scope", "https://storage.azure.com/.default"),
    ];
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let token = http
        .post(format!(
            "{}/{TENANT}/oauth2/v2.0/token",
            env.identity.authority()
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("token")
        .bytes()
        .await
        .expect("body");
    let token: serde_json::Value = serde_json::from_slice(&token).expect("json");
    let bearer = format!("Bearer {}", token["access_token"].as_str().expect("token"));
    let url = format!("{}/entra?restype=share", env.stack.files.endpoint());
    let send = |intent: Option<&str>| {
        let mut request = http
            .get(&url)
            .header("authorization", &bearer)
            .header("x-ms-version", "2025-05-05");
        if let Some(intent) = intent {
            request = request.header("x-ms-file-request-intent", intent);
        }
        request.send()
    };
    let without = send(None).await.expect("send");
    assert_eq!(without.status(), 400);
    assert_eq!(
        without.headers()["x-ms-error-code"],
        "MissingRequiredHeader"
    );
    assert_eq!(send(Some("backup")).await.expect("send").status(), 200);
}

#[tokio::test]
async fn an_untrusted_certificate_fails_at_connect_and_says_how_to_trust_it() {
    let env = Env::start().await;
    // The stack's own variables name no CA_CERT_FILE: the test CA is not trusted.
    let vars: HashMap<String, String> = env.stack.vars();
    let r = env
        .stack
        .run_with(
            r#"{"kind": "test_connection", "destination": {"storage": "archive", "container": "entra"}}"#,
            &Profiles::from_vars(vars),
        )
        .await;
    assert_failed(
        &r.checks[0],
        "connect",
        "azure.unreachable",
        &["TLS handshake", "certificate", "CA_CERT_FILE"],
    );
}

/// Environment Auth reads the `AZURE_*` variables as the profiles see the environment, so they
/// may also come from the profile file or a secret store: certificate and user sets here (the
/// client secret, workload identity and managed identity sets run in entra_env.rs).
#[tokio::test]
async fn environment_auth_with_a_certificate_or_a_user() {
    let env = Env::start().await;
    env.identity
        .add_app("env-cert", AppCredential::Certificate { by_subject: true });
    let user_oid = env.identity.add_user("env@contoso.test", USER_PASSWORD);
    let pem = Pki::get().client_pem().display().to_string();
    let c = env_auth_check(
        &env,
        &[
            ("AZURE_TENANT_ID", TENANT),
            ("AZURE_CLIENT_ID", "env-cert"),
            ("AZURE_CLIENT_CERTIFICATE_PATH", &pem),
            ("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "true"),
        ],
    )
    .await;
    assert_passed(&c);
    let grant = env.identity.grants().pop().expect("grant");
    assert!(
        grant.kind == "client_assertion" && grant.sent_x5c,
        "{grant:?}"
    );

    let c = env_auth_check(
        &env,
        &[
            ("AZURE_CLIENT_ID", "public-client"),
            ("AZURE_USERNAME", "env@contoso.test"),
            ("AZURE_PASSWORD", USER_PASSWORD),
        ],
    )
    .await;
    assert_passed(&c);
    assert_eq!(env.identity.grants().pop().expect("grant").oid, user_oid);

    let c = env_auth_check(
        &env,
        &[
            ("AZURE_CLIENT_ID", "public-client"),
            ("AZURE_USERNAME", "env@contoso.test"),
            ("AZURE_PASSWORD", "wrong-password"),
        ],
    )
    .await;
    assert_failed(
        &c,
        "authenticate",
        "azure.token_failed",
        &[
            "environment auth: username/password",
            "AZURE_USERNAME",
            "AADSTS50126",
        ],
    );
}

async fn env_auth_check(env: &Env, azure: &[(&str, &str)]) -> CheckResult {
    let mut vars = env.vars(&[("ENV_AUTH", "true")]);
    for (k, v) in azure {
        vars.insert(k.to_string(), v.to_string());
    }
    let message = r#"{"kind": "test_connection",
        "destination": {"storage": "archive", "container": "entra"}}"#;
    let r = env
        .stack
        .run_with(message, &Profiles::from_vars(vars))
        .await;
    r.checks[0].clone()
}
