//! The service principal file: the JSON `az ad sp create-for-rbac` prints
//! (`{"appId", "password", "tenant", "displayName"}`), as rclone's `service_principal_file` reads it.

use std::path::Path;

use serde::Deserialize;

use super::{Context, Principal, OPT_SERVICE_PRINCIPAL_FILE};
use crate::config::Secret;
use crate::error::Result;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpFile {
    app_id: Option<String>,
    password: Option<String>,
    tenant: Option<String>,
}

pub fn read(ctx: &Context, path: &Path) -> Result<(Principal, Secret)> {
    let text = std::fs::read(path).map_err(|e| {
        ctx.invalid(
            OPT_SERVICE_PRINCIPAL_FILE,
            format!("cannot read `{}`: {e}", path.display()),
        )
    })?;
    // Say where the JSON is wrong, never what it holds (a password is in there).
    let file: SpFile = serde_json::from_slice(&text).map_err(|e| {
        ctx.invalid(
            OPT_SERVICE_PRINCIPAL_FILE,
            format!(
                "`{}` is not the JSON `az ad sp create-for-rbac` writes (line {}, column {})",
                path.display(),
                e.line(),
                e.column()
            ),
        )
    })?;
    let field = |value: Option<String>, name: &str| {
        value.filter(|v| !v.is_empty()).ok_or_else(|| {
            ctx.invalid(
                OPT_SERVICE_PRINCIPAL_FILE,
                format!("`{}` has no `{name}`", path.display()),
            )
        })
    };
    let who = Principal {
        client_id: field(file.app_id, "appId")?,
        tenant: field(file.tenant, "tenant")?,
    };
    Ok((who, Secret::new(field(file.password, "password")?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::azure::entra::tests::ctx;

    #[test]
    fn reads_what_az_writes_and_names_missing_fields() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("sp.json");
        std::fs::write(
            &good,
            r#"{"appId":"app","displayName":"backup","password":"pw-123","tenant":"t"}"#,
        )
        .unwrap();
        let (who, secret) = read(&ctx(), &good).unwrap();
        assert_eq!((who.client_id.as_str(), who.tenant.as_str()), ("app", "t"));
        assert_eq!(secret.expose(), "pw-123");

        let partial = dir.path().join("partial.json");
        std::fs::write(&partial, r#"{"appId":"app","password":"pw-123"}"#).unwrap();
        let e = read(&ctx(), &partial).unwrap_err().to_string();
        assert!(e.contains("no `tenant`"), "{e}");

        let broken = dir.path().join("broken.json");
        std::fs::write(&broken, r#"{"appId":"app","password":"pw-123""#).unwrap();
        let e = read(&ctx(), &broken).unwrap_err().to_string();
        assert!(e.contains("not the JSON") && !e.contains("pw-123"), "{e}");
    }
}
