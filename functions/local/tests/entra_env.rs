//! Credentials that come from the process environment, through the runner binary as a
//! function host starts it: managed identity over the Functions/App Service protocol
//! (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`) and the VM instance metadata endpoint, both served
//! by the harness's identity endpoint, and Environment Auth (`AZURE_*` variables: service
//! principal, workload identity, then managed identity).

use std::path::Path;

use harness::entra::EntraStack;
use harness::identity::{AppCredential, IDENTITY_HEADER, TENANT};
use harness::stack::write_file;
use serde_json::Value;

const SECRET: &str = "env-client-secret-4xQ";

struct Env(EntraStack);

impl std::ops::Deref for Env {
    type Target = EntraStack;
    fn deref(&self) -> &EntraStack {
        &self.0
    }
}

impl Env {
    async fn start() -> Env {
        Env(EntraStack::start("msi").await)
    }

    /// Run `message` with both Azure storages set to `options` instead of the account key, and
    /// `env` in the process environment. Returns the JSON result and stderr (the logs).
    fn run(
        &self,
        message: &str,
        options: &[(&str, &str)],
        env: &[(&str, &str)],
    ) -> (Value, String) {
        let mut env = env.to_vec();
        env.push(("RUST_LOG", "debug"));
        let out = harness::runner::run_with_vars(
            Path::new(env!("CARGO_BIN_EXE_backup-worker")),
            self.vars(options),
            message,
            &env,
        );
        let logs = String::from_utf8_lossy(&out.stderr).into_owned();
        let result = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("no JSON result ({e}); stderr: {logs}"));
        (result, logs)
    }

    fn check_both(&self, options: &[(&str, &str)], env: &[(&str, &str)]) -> Vec<Value> {
        [
            r#"{"kind": "test_connection", "destination": {"storage": "archive", "container": "msi"}}"#,
            r#"{"kind": "test_connection", "destination": {"storage": "fileshare", "share": "msi"}}"#,
        ]
        .iter()
        .map(|m| self.run(m, options, env).0)
        .collect()
    }

    fn msi_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("IDENTITY_ENDPOINT", self.identity.msi_endpoint()),
            ("IDENTITY_HEADER", IDENTITY_HEADER.to_string()),
        ]
    }
}

fn borrowed<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn assert_succeeded(result: &Value) {
    assert_eq!(result["status"], "succeeded", "{result:#}");
    assert_eq!(
        result["checks"][0]["passed"],
        serde_json::json!([
            "configuration",
            "connect",
            "authenticate",
            "access",
            "list",
            "write"
        ])
    );
}

#[tokio::test]
async fn managed_identity_system_assigned_backs_up() {
    let env = Env::start().await;
    let oid = env.identity.add_identity("system");
    let msi = env.msi_env();
    for r in env.check_both(&[("USE_MSI", "true")], &borrowed(&msi)) {
        assert_succeeded(&r);
        assert!(
            r["checks"][0]["target"]
                .as_str()
                .unwrap_or_default()
                .starts_with("azure"),
            "{r:#}"
        );
    }
    let dir = env.stack.source_dir("msi-backup");
    write_file(&dir, "report.csv", b"a,b\n1,2\n");
    let message = format!(
        r#"{{"kind": "backup", "job_id": "msi", "source": {{"storage": "office_nas", "path": "{}"}},
            "destination": {{"storage": "fileshare", "share": "msi"}}}}"#,
        dir.display()
    );
    let (r, _) = env.run(&message, &[("USE_MSI", "true")], &borrowed(&msi));
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(env.stack.files.files("msi")[0].0, "report.csv");
    assert!(env
        .identity
        .grants()
        .iter()
        .all(|g| g.oid == oid && g.principal == "system"));
}

#[tokio::test]
async fn managed_identity_user_assigned_by_client_object_and_resource_id() {
    let env = Env::start().await;
    let resource_id = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/backup";
    env.identity.add_identity("client_id=uami-client");
    env.identity.add_identity("object_id=uami-object");
    env.identity
        .add_identity(&format!("mi_res_id={resource_id}"));
    let msi = env.msi_env();
    let cases = [
        (
            "MSI_CLIENT_ID",
            "uami-client",
            "client_id=uami-client".to_string(),
        ),
        (
            "MSI_OBJECT_ID",
            "uami-object",
            "object_id=uami-object".to_string(),
        ),
        (
            "MSI_RESOURCE_ID",
            resource_id,
            format!("mi_res_id={resource_id}"),
        ),
    ];
    for (option, id, selector) in cases {
        let r = &env.check_both(&[("USE_MSI", "true"), (option, id)], &borrowed(&msi))[0];
        assert_succeeded(r);
        let last = env.identity.grants().pop().expect("a grant");
        assert_eq!(last.principal, selector);
    }
    // An identity that is not assigned to this app: the step, the method and the endpoint's words.
    let (r, logs) = env.run(
        r#"{"kind": "test_connection", "destination": {"storage": "archive", "container": "msi"}}"#,
        &[("USE_MSI", "true"), ("MSI_CLIENT_ID", "not-assigned")],
        &borrowed(&msi),
    );
    assert_eq!(r["status"], "failed", "{r:#}");
    let check = &r["checks"][0];
    assert_eq!(check["failed_step"], "authenticate", "{r:#}");
    assert_eq!(check["error"]["code"], "azure.token_failed");
    let message = check["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("managed identity (client id not-assigned)"),
        "{message}"
    );
    assert!(
        !logs.contains(IDENTITY_HEADER),
        "the identity header leaked into the logs"
    );
}

#[tokio::test]
async fn environment_auth_reads_azure_variables_then_managed_identity() {
    let env = Env::start().await;
    let app_oid = env
        .identity
        .add_app("env-app", AppCredential::Secret(SECRET.into()));
    let authority = env.identity.authority();
    let sp_env = [
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_CLIENT_ID", "env-app"),
        ("AZURE_CLIENT_SECRET", SECRET),
        ("AZURE_AUTHORITY_HOST", authority.as_str()),
    ];
    for r in env.check_both(&[("ENV_AUTH", "true")], &sp_env) {
        assert_succeeded(&r);
    }
    assert!(env.identity.grants().iter().all(|g| g.oid == app_oid));

    // No service principal in the environment: managed identity, user-assigned by AZURE_CLIENT_ID.
    let msi_oid = env.identity.add_identity("client_id=env-app");
    let mut msi = env.msi_env();
    msi.push(("AZURE_CLIENT_ID", "env-app".into()));
    let (r, logs) = env.run(
        r#"{"kind": "test_connection", "destination": {"storage": "archive", "container": "msi"}}"#,
        &[("ENV_AUTH", "true")],
        &borrowed(&msi),
    );
    assert_succeeded(&r);
    assert_eq!(env.identity.grants().pop().expect("grant").oid, msi_oid);
    for secret in [SECRET, IDENTITY_HEADER] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }

    // Workload identity (AKS): a federated token file instead of a secret.
    let federated = "federated-service-account-token";
    let fed_oid = env
        .identity
        .add_app("fed-app", AppCredential::Federated(federated.into()));
    let token_file = tempfile::NamedTempFile::new().expect("token file");
    std::fs::write(token_file.path(), federated).expect("write token");
    let token_path = token_file.path().display().to_string();
    let workload = [
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_CLIENT_ID", "fed-app"),
        ("AZURE_FEDERATED_TOKEN_FILE", token_path.as_str()),
        ("AZURE_AUTHORITY_HOST", authority.as_str()),
    ];
    let (r, logs) = env.run(
        r#"{"kind": "test_connection", "destination": {"storage": "fileshare", "share": "msi"}}"#,
        &[("ENV_AUTH", "true")],
        &workload,
    );
    assert_succeeded(&r);
    let last = env.identity.grants().pop().expect("grant");
    assert_eq!(
        (last.kind, last.oid.as_str()),
        ("federated", fed_oid.as_str())
    );
    assert!(
        !logs.contains(federated),
        "the federated token reached the logs"
    );
}

/// On a VM (no `IDENTITY_ENDPOINT`) the token comes from the instance metadata endpoint at
/// 169.254.169.254; the harness serves it behind `HTTP_PROXY`, which the worker's client honours.
#[tokio::test]
async fn managed_identity_on_a_vm_uses_the_instance_metadata_endpoint() {
    let env = Env::start().await;
    let system = env.identity.add_identity("system");
    let resource_id = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/vm";
    let by_resource = env
        .identity
        .add_identity(&format!("msi_res_id={resource_id}"));
    let proxy = env.identity.imds_proxy();
    let proxy_env = [("HTTP_PROXY", proxy.as_str()), ("NO_PROXY", "")];
    let r = &env.check_both(&[("USE_MSI", "true")], &proxy_env)[0];
    assert_succeeded(r);
    let r = &env.check_both(
        &[("USE_MSI", "true"), ("MSI_RESOURCE_ID", resource_id)],
        &proxy_env,
    )[1];
    assert_succeeded(r);
    let oids: Vec<String> = env.identity.grants().into_iter().map(|g| g.oid).collect();
    assert!(
        oids.contains(&system) && oids.contains(&by_resource),
        "{oids:?}"
    );
}
