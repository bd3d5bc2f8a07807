//! Debian's `restic`, the judge of the snapshot repositories the worker writes: a repository is
//! copied out of Azurite or the Files test server into a directory, and restic checks it,
//! lists its snapshots and restores them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::stack::Stack;

pub struct Restic {
    /// The repository, copied into a local directory.
    pub repo: tempfile::TempDir,
    password: String,
}

impl Restic {
    /// The repository under `prefix` in a Blob container.
    pub async fn from_blob(stack: &Stack, container: &str, prefix: &str, password: &str) -> Restic {
        let repo = tempfile::tempdir().expect("temp dir");
        let base = format!("{prefix}/");
        for name in stack.azurite.list(container).await {
            if let Some(rel) = name.strip_prefix(&base) {
                write(
                    repo.path(),
                    rel,
                    &stack.azurite.read(container, &name).await,
                );
            }
        }
        Restic {
            repo,
            password: password.to_string(),
        }
    }

    /// The repository under `prefix` in an Azure Files share.
    pub fn from_files(stack: &Stack, share: &str, prefix: &str, password: &str) -> Restic {
        let repo = tempfile::tempdir().expect("temp dir");
        let base = format!("{prefix}/");
        for (name, data) in stack.files.files(share) {
            if let Some(rel) = name.strip_prefix(&base) {
                write(repo.path(), rel, &data);
            }
        }
        Restic {
            repo,
            password: password.to_string(),
        }
    }

    /// Run `restic -r <repo> <args>`; panics (with restic's words) unless it succeeds.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.try_run(args);
        assert!(
            out.status.success(),
            "restic {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn try_run(&self, args: &[&str]) -> Output {
        Command::new("restic")
            .arg("--repo")
            .arg(self.repo.path())
            .args(["--no-cache", "--quiet"])
            .args(args)
            .env("RESTIC_PASSWORD", &self.password)
            .output()
            .expect("run restic (installed by ./dev install)")
    }

    /// `restic snapshots --json`.
    pub fn snapshots(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.run(&["snapshots", "--json"])).expect("snapshots JSON")
    }

    /// `restic restore <id> --target <dir>`; returns the directory.
    pub fn restore(&self, id: &str) -> (tempfile::TempDir, PathBuf) {
        let target = tempfile::tempdir().expect("temp dir");
        let dir = target.path().to_path_buf();
        self.run(&["restore", id, "--target", &dir.display().to_string()]);
        (target, dir)
    }
}

fn write(root: &Path, rel: &str, data: &[u8]) {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, data).expect("write");
}
