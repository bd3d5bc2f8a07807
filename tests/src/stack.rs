//! The local stack a job runs against: sshd as the source, Azurite (Blob) and the Azure Files
//! test server as destinations, and the storage profiles (`office_nas`, `archive`, `fileshare`)
//! that point at them.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use backup_common::config::Profiles;
use backup_common::result::JobResult;
use backup_common::storage::blob::config::AZURITE_KEY;
use backup_common::transfer::Progress;

use crate::azurite::{Azurite, ACCOUNT};
use crate::sshd::{Sshd, TEST_USER};
use files_server::FilesServer;

pub const SOURCE: &str = "office_nas";
pub const DEST: &str = "archive";
pub const DEST_FILES: &str = "fileshare";

pub struct Stack {
    pub sshd: Sshd,
    pub azurite: Azurite,
    pub files: FilesServer,
}

impl Stack {
    pub fn start() -> Stack {
        Stack {
            sshd: Sshd::start(),
            azurite: Azurite::start(),
            files: FilesServer::start().expect("start the Azure Files test server"),
        }
    }

    /// The stack with https destinations that accept Entra ID tokens: Azurite with OAuth and
    /// the Files server over TLS (both still take the account key, which set-up uses).
    pub fn start_entra() -> Stack {
        let pki = crate::pki::Pki::get();
        Stack {
            sshd: Sshd::start(),
            azurite: Azurite::start_oauth(),
            files: FilesServer::start_tls(&pki.server_cert(), &pki.server_key())
                .expect("start the Azure Files test server (TLS)"),
        }
    }

    /// Environment variables for both storages, key auth and a pinned known_hosts.
    pub fn vars(&self) -> HashMap<String, String> {
        let mut v = source_vars(&self.sshd);
        let mut set = |k: &str, val: String| {
            v.insert(k.to_string(), val);
        };
        set("BACKUP_STORAGE_ARCHIVE_TYPE", "azureblob".into());
        set("BACKUP_STORAGE_ARCHIVE_ACCOUNT_NAME", ACCOUNT.into());
        set("BACKUP_STORAGE_ARCHIVE_ACCOUNT_KEY", AZURITE_KEY.into());
        set("BACKUP_STORAGE_ARCHIVE_ENDPOINT", self.azurite.endpoint());
        set("BACKUP_STORAGE_FILESHARE_TYPE", "azurefiles".into());
        set(
            "BACKUP_STORAGE_FILESHARE_ACCOUNT_NAME",
            self.files.account().into(),
        );
        set(
            "BACKUP_STORAGE_FILESHARE_ACCOUNT_KEY",
            self.files.key().into(),
        );
        set("BACKUP_STORAGE_FILESHARE_ENDPOINT", self.files.endpoint());
        v
    }

    pub fn profiles(&self) -> Profiles {
        Profiles::from_vars(self.vars())
    }

    /// The stack's profiles with `password` as the restic repository password of both Azure
    /// storages (`archive`, `fileshare`): what snapshot-mode jobs need.
    pub fn snapshot_profiles(&self, password: &str) -> Profiles {
        let mut vars = self.vars();
        for storage in ["ARCHIVE", "FILESHARE"] {
            vars.insert(
                format!("BACKUP_STORAGE_{storage}_RESTIC_PASSWORD"),
                password.into(),
            );
        }
        Profiles::from_vars(vars)
    }

    /// A fresh directory under the served data root, readable by the login user.
    pub fn source_dir(&self, name: &str) -> PathBuf {
        let dir = self.sshd.data_dir().join(name);
        fs::create_dir_all(&dir).expect("source dir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        dir
    }

    /// Run a job message (JSON text) through the library, as every entry point does.
    pub async fn run(&self, message: &str) -> JobResult {
        self.run_with(message, &self.profiles()).await
    }

    pub async fn run_with(&self, message: &str, profiles: &Profiles) -> JobResult {
        backup_common::job::run_text(message, profiles, Progress::new()).await
    }
}

/// The `office_nas` profile's variables: the SFTP server `sshd`, key auth, pinned known_hosts.
pub fn source_vars(sshd: &Sshd) -> HashMap<String, String> {
    let mut v = HashMap::new();
    let mut set = |k: &str, val: String| {
        v.insert(k.to_string(), val);
    };
    set("BACKUP_STORAGE_OFFICE_NAS_TYPE", "sftp".into());
    set("BACKUP_STORAGE_OFFICE_NAS_SSH_HOST", "127.0.0.1".into());
    set("BACKUP_STORAGE_OFFICE_NAS_SSH_PORT", sshd.port.to_string());
    set("BACKUP_STORAGE_OFFICE_NAS_SSH_USERNAME", TEST_USER.into());
    set(
        "BACKUP_STORAGE_OFFICE_NAS_SSH_PRIVATE_KEY_FILE",
        sshd.client_key().display().to_string(),
    );
    set(
        "BACKUP_STORAGE_OFFICE_NAS_SSH_KNOWN_HOSTS_FILE",
        sshd.known_hosts().display().to_string(),
    );
    v
}

/// Write `content` at `root/rel`, creating directories readable by everyone.
/// Set a source file's modification time (to fool or wake a size+mtime compare).
pub fn set_mtime(path: &Path, at: std::time::SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(at))
        .unwrap_or_else(|e| panic!("set the mtime of {}: {e}", path.display()));
}

pub fn write_file(root: &Path, rel: &str, content: &[u8]) -> PathBuf {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("mkdir");
        let mut dir = parent;
        while dir != root {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod");
            dir = dir.parent().expect("inside root");
        }
    }
    fs::write(&path, content).expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    path
}

/// Deterministic pseudo-random bytes (no two chunks alike, so misplaced blocks show).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A result's per-file errors as sorted (path, code) pairs.
pub fn error_codes(r: &JobResult) -> Vec<(String, String)> {
    let mut e: Vec<_> = r
        .errors
        .iter()
        .map(|e| (e.path.clone().unwrap_or_default(), e.error.code.clone()))
        .collect();
    e.sort();
    e
}
