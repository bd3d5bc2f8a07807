//! The stack for Entra ID tests: Azurite with OAuth and the Files server over TLS (see
//! [`Stack::start_entra`]), the local identity endpoint, and profiles that use tokens.

use std::collections::HashMap;

use crate::identity::{Identity, TENANT};
use crate::pki::Pki;
use crate::stack::Stack;

pub struct EntraStack {
    pub stack: Stack,
    pub identity: Identity,
}

impl EntraStack {
    /// Start everything, with a container and a share named `name` (made with the account key).
    pub async fn start(name: &str) -> EntraStack {
        let stack = Stack::start_entra();
        stack.azurite.create_container(name).await;
        stack.files.create_share(name);
        EntraStack {
            stack,
            identity: Identity::start(),
        }
    }

    /// The stack's variables with both Azure storages (`archive`, `fileshare`) switched from the
    /// account key to `options`, trusting the test CA and taking tokens from the identity
    /// endpoint (`AUTHORITY_HOST`, `TENANT_ID`).
    pub fn vars(&self, options: &[(&str, &str)]) -> HashMap<String, String> {
        let mut vars = self.stack.vars();
        let ca = Pki::get().ca().display().to_string();
        let authority = self.identity.authority();
        let common = [
            ("CA_CERT_FILE", ca.as_str()),
            ("AUTHORITY_HOST", authority.as_str()),
            ("TENANT_ID", TENANT),
        ];
        for storage in ["ARCHIVE", "FILESHARE"] {
            vars.remove(&format!("BACKUP_STORAGE_{storage}_ACCOUNT_KEY"));
            for (k, v) in common.iter().chain(options) {
                vars.insert(format!("BACKUP_STORAGE_{storage}_{k}"), v.to_string());
            }
        }
        vars
    }
}
