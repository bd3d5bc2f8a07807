//! The destination of one benchmarked run, in a process of its own started fresh for the run
//! (so its CPU time is the run's, and the bytes it held are gone after): Azurite for Blob, the
//! Azure Files test server for Files.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use backup_common::storage::azure::account::AZURITE_KEY;
use backup_common::storage::files::client::{DirEntry, FilesClient};
use backup_common::storage::files::FilesConfig;
use harness::azurite::{Azurite, ACCOUNT};

pub const CONTAINER: &str = "bench";
/// The share the test server's own binary creates at start.
pub const SHARE: &str = "backups";

#[derive(Clone, Copy, PartialEq)]
pub enum Service {
    Blob,
    Files,
}

impl Service {
    pub fn title(self) -> &'static str {
        match self {
            Service::Blob => "Blob (Azurite)",
            Service::Files => "Files (test server)",
        }
    }
}

pub enum Sink {
    Blob(Azurite),
    Files { child: Child, endpoint: String },
}

impl Sink {
    pub async fn start(service: Service, exe_dir: &Path) -> anyhow::Result<Sink> {
        match service {
            Service::Blob => {
                let azurite = Azurite::start();
                azurite.create_container(CONTAINER).await;
                Ok(Sink::Blob(azurite))
            }
            Service::Files => {
                let mut child = Command::new(exe_dir.join("files-server"))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()?;
                let mut line = String::new();
                let out = child.stdout.take().expect("piped stdout");
                std::io::BufReader::new(out).read_line(&mut line)?;
                // "Azure Files test server at <endpoint> (account …"
                let endpoint = line
                    .split_once(" at ")
                    .and_then(|(_, rest)| rest.split_once(' '))
                    .map(|(url, _)| url.to_string())
                    .ok_or_else(|| anyhow::anyhow!("files-server printed {line:?}"))?;
                Ok(Sink::Files { child, endpoint })
            }
        }
    }

    pub fn pid(&self) -> u32 {
        match self {
            Sink::Blob(a) => a.pid(),
            Sink::Files { child, .. } => child.id(),
        }
    }

    pub fn endpoint(&self) -> String {
        match self {
            Sink::Blob(a) => a.endpoint(),
            Sink::Files { endpoint, .. } => endpoint.clone(),
        }
    }

    /// The profile variables of our storage for this sink, and its name.
    pub fn profile(&self) -> (&'static str, HashMap<String, String>) {
        let (storage, env, kind, account, key) = match self {
            Sink::Blob(_) => ("archive", "ARCHIVE", "azureblob", ACCOUNT, AZURITE_KEY),
            Sink::Files { .. } => (
                "fileshare",
                "FILESHARE",
                "azurefiles",
                files_server::ACCOUNT,
                files_server::KEY,
            ),
        };
        let var = |name: &str| format!("BACKUP_STORAGE_{env}_{name}");
        let vars = HashMap::from([
            (var("TYPE"), kind.to_string()),
            (var("ACCOUNT_NAME"), account.to_string()),
            (var("ACCOUNT_KEY"), key.to_string()),
            (var("ENDPOINT"), self.endpoint()),
        ]);
        (storage, vars)
    }

    /// The destination object of a backup message.
    pub fn place(&self) -> String {
        match self {
            Sink::Blob(_) => format!(r#""container": "{CONTAINER}""#),
            Sink::Files { .. } => format!(r#""share": "{SHARE}""#),
        }
    }

    /// rclone's remote for this sink (`dest:…`) and the environment that defines it.
    pub fn rclone_remote(&self) -> (String, Vec<(String, String)>) {
        let mut env = vec![("RCLONE_CONFIG_DEST_ENDPOINT".into(), self.endpoint())];
        let mut set = |k: &str, v: &str| env.push((format!("RCLONE_CONFIG_DEST_{k}"), v.into()));
        match self {
            Sink::Blob(_) => {
                set("TYPE", "azureblob");
                set("ACCOUNT", ACCOUNT);
                set("KEY", AZURITE_KEY);
                (format!("dest:{CONTAINER}"), env)
            }
            Sink::Files { .. } => {
                set("TYPE", "azurefiles");
                set("ACCOUNT", files_server::ACCOUNT);
                set("KEY", files_server::KEY);
                set("SHARE_NAME", SHARE);
                ("dest:".into(), env)
            }
        }
    }

    /// rclone's chunk and concurrency flags for this backend.
    pub fn rclone_flags(&self, chunk: &str, concurrency: usize) -> Vec<String> {
        let backend = match self {
            Sink::Blob(_) => "azureblob",
            Sink::Files { .. } => "azurefiles",
        };
        vec![
            format!("--{backend}-chunk-size"),
            chunk.into(),
            format!("--{backend}-upload-concurrency"),
            concurrency.to_string(),
        ]
    }

    /// How many files the destination holds (temporaries included: a finished run has none).
    pub async fn count_files(&self) -> anyhow::Result<usize> {
        match self {
            Sink::Blob(a) => Ok(a.list(CONTAINER).await.len()),
            Sink::Files { .. } => {
                let client = self.files_client()?;
                let mut dirs = vec![String::new()];
                let mut files = 0;
                while let Some(dir) = dirs.pop() {
                    for entry in client.list(&dir).await?.unwrap_or_default() {
                        match entry {
                            DirEntry::Directory(name) if dir.is_empty() => dirs.push(name),
                            DirEntry::Directory(name) => dirs.push(format!("{dir}/{name}")),
                            DirEntry::File { .. } => files += 1,
                        }
                    }
                }
                Ok(files)
            }
        }
    }

    /// Our Files client on the sink's share, with the account key.
    pub fn files_client(&self) -> anyhow::Result<FilesClient> {
        let (storage, vars) = self.profile();
        let profiles = backup_common::config::Profiles::from_vars(vars);
        let profile = profiles
            .profile(storage)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let cfg = FilesConfig::from_profile(&profile)?;
        Ok(FilesClient::new(&cfg, SHARE.into())?)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Sink::Files { child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
