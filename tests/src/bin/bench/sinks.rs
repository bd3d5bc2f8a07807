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
use harness::latency::LatencyProxy;

use super::link::{port_of, with_port, Link};

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

pub struct Sink {
    server: Server,
    /// Where the tools reach it: the server itself, or a delay line in front of it.
    endpoint: String,
    _delay: Option<LatencyProxy>,
}

enum Server {
    Blob(Azurite),
    Files(Child),
}

impl Sink {
    /// A fresh sink of `service`, reached over `link`.
    pub async fn start(service: Service, exe_dir: &Path, link: &Link) -> anyhow::Result<Sink> {
        let (server, endpoint) = Self::start_server(service, exe_dir).await?;
        let delay = port_of(&endpoint).and_then(|port| link.to_sink(port));
        Ok(Sink {
            endpoint: match &delay {
                Some(proxy) => with_port(&endpoint, proxy.port),
                None => endpoint,
            },
            server,
            _delay: delay,
        })
    }

    async fn start_server(service: Service, exe_dir: &Path) -> anyhow::Result<(Server, String)> {
        match service {
            Service::Blob => {
                let azurite = Azurite::start();
                azurite.create_container(CONTAINER).await;
                let endpoint = azurite.endpoint();
                Ok((Server::Blob(azurite), endpoint))
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
                Ok((Server::Files(child), endpoint))
            }
        }
    }

    pub fn pid(&self) -> u32 {
        match &self.server {
            Server::Blob(a) => a.pid(),
            Server::Files(child) => child.id(),
        }
    }

    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// Blob only: a SAS URL (create, write, list) of the bench container, reached like `endpoint`.
    pub fn container_sas_url(&self) -> Option<String> {
        let Server::Blob(azurite) = &self.server else {
            return None;
        };
        let sas = azurite.container_sas_url(CONTAINER, "cwl", 3600);
        Some(match port_of(&self.endpoint) {
            Some(port) => with_port(&sas, port),
            None => sas,
        })
    }

    /// The profile variables of our storage for this sink, and its name.
    pub fn profile(&self) -> (&'static str, HashMap<String, String>) {
        let (storage, env, kind, account, key) = match self.server {
            Server::Blob(_) => ("archive", "ARCHIVE", "azureblob", ACCOUNT, AZURITE_KEY),
            Server::Files(_) => (
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
        match self.server {
            Server::Blob(_) => format!(r#""container": "{CONTAINER}""#),
            Server::Files(_) => format!(r#""share": "{SHARE}""#),
        }
    }

    /// rclone's remote for this sink (`dest:…`) and the environment that defines it.
    pub fn rclone_remote(&self) -> (String, Vec<(String, String)>) {
        let mut env = vec![("RCLONE_CONFIG_DEST_ENDPOINT".into(), self.endpoint())];
        let mut set = |k: &str, v: &str| env.push((format!("RCLONE_CONFIG_DEST_{k}"), v.into()));
        match self.server {
            Server::Blob(_) => {
                set("TYPE", "azureblob");
                set("ACCOUNT", ACCOUNT);
                set("KEY", AZURITE_KEY);
                (format!("dest:{CONTAINER}"), env)
            }
            Server::Files(_) => {
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
        let backend = match self.server {
            Server::Blob(_) => "azureblob",
            Server::Files(_) => "azurefiles",
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
        match &self.server {
            Server::Blob(a) => Ok(a.list(CONTAINER).await.len()),
            Server::Files(_) => {
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
        if let Server::Files(child) = &mut self.server {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
