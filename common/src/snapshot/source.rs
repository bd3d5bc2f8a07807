//! One snapshot of a restic repository as a [`Source`]: what a restore reads, through the same
//! engine as a mirror restore (filters, `overwrite`, atomic writes on the target, names that
//! would leave the target refused). Content comes out of `rustic_core`, which authenticates
//! every blob it decrypts, so a damaged or tampered pack fails the file instead of landing.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use rustic_core::repofile::Node;
use rustic_core::vfs::OpenFile;
use rustic_core::{IndexedFullStatus, LsOptions, OpenStatus, ReadBackend, Repository, RusticError};
use tokio::sync::mpsc;

use super::backend::ObjectBackend;
use super::lock::{LockKind, RepoLock};
use super::{failure, no_repository, open_existing};
use crate::check::CheckFailure;
use crate::config::Secret;
use crate::error::{Error, Result};
use crate::storage::{ChunkBuf, ListItem, Source, SourceFile, SourceReader};

type Repo = Repository<IndexedFullStatus>;

pub struct SnapshotSource {
    repo: Arc<Repo>,
    describe: String,
    /// The snapshot's files by path relative to its backed-up directory.
    files: HashMap<String, Node>,
}

impl SnapshotSource {
    /// Blocking. Open the repository behind `backend` and its snapshot `id` (`latest`, or an
    /// id or its first characters, as `restic` takes them), under a shared lock (so no prune
    /// deletes what the restore reads): release it when the restore is done.
    pub fn open(
        backend: Arc<ObjectBackend>,
        password: &Secret,
        id: &str,
    ) -> Result<(Self, RepoLock)> {
        let repo = open_existing(&backend, password)?.ok_or_else(|| no_repository(&backend))?;
        let lock = RepoLock::acquire(&backend, &repo.key(), LockKind::Shared)?;
        // Dropped on an error: the lock's refresher removes it.
        Ok((Self::read(backend, repo, id)?, lock))
    }

    fn read(backend: Arc<ObjectBackend>, repo: Repository<OpenStatus>, id: &str) -> Result<Self> {
        let failed = |e: Box<RusticError>| failure(&backend, &e);
        let repo = repo.to_indexed().map_err(failed)?;
        let snap = repo.get_snapshot_from_str(id, |_| true).map_err(failed)?;
        let root = snap.paths.iter().next().cloned().unwrap_or_default();
        let node = repo
            .node_from_snapshot_and_path(&snap, &root)
            .map_err(failed)?;
        let mut files = HashMap::new();
        for item in repo.ls(&node, &LsOptions::default()).map_err(failed)? {
            let (path, node) = item.map_err(failed)?;
            if let (true, Some(path)) = (node.is_file(), path.to_str()) {
                files.insert(path.to_string(), node);
            }
        }
        let describe = format!(
            "{} snapshot {}",
            backend.location(),
            &snap.id.to_hex().as_str()[..8]
        );
        Ok(SnapshotSource {
            repo: Arc::new(repo),
            describe,
            files,
        })
    }

    fn file(&self, path: &str) -> Option<SourceFile> {
        self.files.get(path).map(|node| SourceFile {
            path: path.to_string(),
            size: node.meta.size,
            mtime: node.meta.mtime.map_or(0, |t| t.as_second()),
            md5: None,
        })
    }
}

#[async_trait]
impl Source for SnapshotSource {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn check(&self, _root: &str) -> std::result::Result<(), CheckFailure> {
        Ok(()) // opened already: the repository, the password and the snapshot are good
    }

    async fn list(&self, _root: &str) -> Result<mpsc::Receiver<ListItem>> {
        let mut paths: Vec<&String> = self.files.keys().collect();
        paths.sort();
        let items: Vec<SourceFile> = paths.into_iter().filter_map(|p| self.file(p)).collect();
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            for file in items {
                if tx.send(ListItem::File(file)).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }

    async fn stat(&self, _root: &str, path: &str) -> Result<Option<(u64, i64)>> {
        Ok(self.file(path).map(|f| (f.size, f.mtime)))
    }

    async fn open(&self, _root: &str, path: &str, offset: u64) -> Result<Box<dyn SourceReader>> {
        let node = self
            .files
            .get(path)
            .cloned()
            .ok_or_else(|| Error::ObjectNotFound {
                storage: self.describe.clone(),
                path: path.to_string(),
            })?;
        let repo = self.repo.clone();
        let open = tokio::task::spawn_blocking(move || repo.open_file(&node))
            .await
            .map_err(|e| Error::Internal(format!("snapshot read task failed: {e}")))?
            .map_err(|e| snapshot_error(&e))?;
        Ok(Box::new(SnapshotReader {
            repo: self.repo.clone(),
            file: Arc::new(open),
            offset,
        }))
    }
}

struct SnapshotReader {
    repo: Arc<Repo>,
    file: Arc<OpenFile>,
    offset: u64,
}

#[async_trait]
impl SourceReader for SnapshotReader {
    async fn read_into(&mut self, buf: &mut ChunkBuf, want: usize) -> Result<()> {
        let len = want.saturating_sub(buf.len());
        if len == 0 {
            return Ok(());
        }
        let (repo, file, offset) = (self.repo.clone(), self.file.clone(), self.offset);
        let data =
            tokio::task::spawn_blocking(move || repo.read_file_at(&file, offset as usize, len))
                .await
                .map_err(|e| Error::Internal(format!("snapshot read task failed: {e}")))?
                .map_err(|e| snapshot_error(&e))?;
        self.offset += data.len() as u64;
        buf.extend_from_slice(&data);
        Ok(())
    }
}

fn snapshot_error(e: &RusticError) -> Error {
    Error::Snapshot {
        detail: e.display_log(),
    }
}
