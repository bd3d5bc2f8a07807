//! Environment Auth: credentials from the runtime environment, in the order the Azure SDKs'
//! environment and default chains use. The first complete set wins:
//!
//! 1. `AZURE_TENANT_ID` + `AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET`: service principal secret;
//! 2. … + `AZURE_CLIENT_CERTIFICATE_PATH` (`_PASSWORD`, `AZURE_CLIENT_SEND_CERTIFICATE_CHAIN`);
//! 3. `AZURE_CLIENT_ID` + `AZURE_USERNAME` + `AZURE_PASSWORD` (tenant optional): user;
//! 4. `AZURE_FEDERATED_TOKEN_FILE` + tenant + client: workload identity (AKS);
//! 5. otherwise managed identity (`IDENTITY_ENDPOINT` on Functions/App Service, else the VM
//!    metadata endpoint), user-assigned by `AZURE_CLIENT_ID` when that is set.
//!
//! The variables are read as the profiles see the environment (the process environment, the
//! profile file, AWS Secrets Manager), so a client secret may live in any of them. On Azure
//! Functions, Key Vault references arrive as app settings, so they are covered here. Managed
//! identity's own endpoint variables are the platform's and are read from the process.
//! No CLI credentials: a function has no `az` login.

use std::path::PathBuf;

use azure_identity::{
    ClientAssertionCredentialOptions, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use super::{CertificateSource, Context, EntraAuth, MsiId, Principal, OPT_ENV_AUTH};
use crate::config::Secret;
use crate::error::Result;

pub fn from_env(ctx: &Context, env: &dyn Fn(&str) -> Option<String>) -> Result<EntraAuth> {
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let tenant = var("AZURE_TENANT_ID");
    let client = var("AZURE_CLIENT_ID");
    let principal = |tenant: &Option<String>| {
        tenant
            .clone()
            .zip(client.clone())
            .map(|(tenant, client_id)| Principal { tenant, client_id })
    };
    let chosen = |mut auth: EntraAuth, from: &str| {
        auth.method = format!("environment auth: {} from {from}", auth.method);
        Ok(auth)
    };
    if let (Some(who), Some(secret)) = (principal(&tenant), var("AZURE_CLIENT_SECRET")) {
        let auth = super::client_secret(ctx, &who, &Secret::new(secret))?;
        return chosen(auth, "AZURE_CLIENT_SECRET");
    }
    if let (Some(who), Some(path)) = (principal(&tenant), var("AZURE_CLIENT_CERTIFICATE_PATH")) {
        let send_chain = var("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true"));
        let cert = CertificateSource {
            path: PathBuf::from(path),
            password: var("AZURE_CLIENT_CERTIFICATE_PASSWORD").map(Secret::new),
            send_chain,
        };
        let auth = super::client_certificate(ctx, &who, &cert)?;
        return chosen(auth, "AZURE_CLIENT_CERTIFICATE_PATH");
    }
    if let (Some(username), Some(password)) = (var("AZURE_USERNAME"), var("AZURE_PASSWORD")) {
        if let Some(who) = principal(&tenant.clone().or(Some("organizations".into()))) {
            let auth = super::username_password(ctx, &who, &username, &Secret::new(password))?;
            return chosen(auth, "AZURE_USERNAME");
        }
    }
    if let (Some(who), Some(file)) = (principal(&tenant), var("AZURE_FEDERATED_TOKEN_FILE")) {
        let credential = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                client_options: ctx.client_options(),
            },
            client_id: Some(who.client_id),
            tenant_id: Some(who.tenant),
            token_file_path: Some(PathBuf::from(file)),
        }))
        .map_err(|e| ctx.invalid(OPT_ENV_AUTH, e))?;
        let auth = EntraAuth {
            credential,
            method: "workload identity".into(),
        };
        return chosen(auth, "AZURE_FEDERATED_TOKEN_FILE");
    }
    let id = client.map(MsiId::Client).unwrap_or(MsiId::System);
    let from = if var("IDENTITY_ENDPOINT").is_some() {
        "IDENTITY_ENDPOINT"
    } else {
        "the instance metadata endpoint"
    };
    chosen(super::managed_identity(ctx, &id)?, from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::azure::entra::tests::ctx;

    fn method(vars: &[(&str, &str)]) -> String {
        let lookup = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        from_env(&ctx(), &lookup).unwrap().method
    }

    #[test]
    fn picks_the_first_complete_set() {
        let sp = [
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_SECRET", "s"),
            ("AZURE_USERNAME", "u"),
            ("AZURE_PASSWORD", "p"),
        ];
        assert_eq!(
            method(&sp),
            "environment auth: service principal (client secret) from AZURE_CLIENT_SECRET"
        );
        assert_eq!(
            method(&sp[1..]),
            "environment auth: username/password (user `u`) from AZURE_USERNAME"
        );
        assert_eq!(
            method(&[("AZURE_CLIENT_ID", "c"), ("IDENTITY_ENDPOINT", "http://x")]),
            "environment auth: managed identity (client id c) from IDENTITY_ENDPOINT"
        );
        // An incomplete service principal (no tenant) falls through to managed identity.
        assert!(
            method(&[("AZURE_CLIENT_ID", "c"), ("AZURE_CLIENT_SECRET", "s")])
                .contains("managed identity")
        );
    }
}
