//! The read side of Azure Files: a mirror walked directory by directory as a stream, a file's
//! properties, and ranged reads (one Get File per chunk).

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::client::DirEntry;
use super::{join, FilesDestination, TEMP_PREFIX};
use crate::check::CheckFailure;
use crate::error::{Error, Result};
use crate::storage::read::RangedReader;
use crate::storage::{Destination, ListItem, Source, SourceFile, SourceReader, RESERVED_DIR};

/// What one listed directory contributes: its files, and its folders to walk next.
fn sort_entries(rel_dir: &str, entries: Vec<DirEntry>) -> (Vec<SourceFile>, Vec<String>) {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for entry in entries {
        match entry {
            DirEntry::Directory(name) if rel_dir.is_empty() && name == RESERVED_DIR => {}
            DirEntry::Directory(name) => dirs.push(join(rel_dir, &name)),
            // An interrupted upload's temporary, not data.
            DirEntry::File { name, .. } if name.starts_with(TEMP_PREFIX) => {}
            DirEntry::File {
                name,
                size,
                last_write,
                last_modified,
            } => files.push(SourceFile {
                path: join(rel_dir, &name),
                size,
                mtime: last_write.or(last_modified).unwrap_or(0),
                // Listings do not carry Content-MD5: the reader learns it when it opens.
                md5: None,
            }),
        }
    }
    (files, dirs)
}

#[async_trait]
impl Source for FilesDestination {
    fn describe(&self) -> String {
        Destination::describe(self)
    }

    async fn check(&self, root: &str) -> std::result::Result<(), CheckFailure> {
        self.check_reachable(&self.full(root.trim_matches('/')))
            .await
    }

    /// Every file under `<prefix>/<root>`, one directory at a time: the first directory is
    /// read here (a missing share fails the job; a missing folder lists nothing).
    async fn list(&self, root: &str) -> Result<mpsc::Receiver<ListItem>> {
        let base = self.full(root.trim_matches('/'));
        let first = self.client.list(&base).await?.unwrap_or_default();
        let (tx, rx) = mpsc::channel(1024);
        let client = self.client.clone();
        tokio::spawn(async move {
            let (files, mut pending) = sort_entries("", first);
            let mut batch = files;
            loop {
                for file in batch.drain(..) {
                    if tx.send(ListItem::File(file)).await.is_err() {
                        return;
                    }
                }
                let Some(rel_dir) = pending.pop() else { return };
                match client.list(&join(&base, &rel_dir)).await {
                    Ok(entries) => {
                        let (files, dirs) = sort_entries(&rel_dir, entries.unwrap_or_default());
                        batch = files;
                        pending.extend(dirs);
                    }
                    Err(e) => {
                        if tx.send(ListItem::Error(rel_dir, e)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(rx)
    }

    async fn remote_md5(&self, root: &str, path: &str) -> Result<Option<[u8; 16]>> {
        let full = self.full(&join(root.trim_matches('/'), path));
        Ok(self.client.properties(&full).await?.and_then(|p| p.md5))
    }

    async fn stat(&self, root: &str, path: &str) -> Result<Option<(u64, i64)>> {
        let full = self.full(&join(root.trim_matches('/'), path));
        Ok(self
            .client
            .properties(&full)
            .await?
            .map(|p| (p.size, p.last_write.unwrap_or(0))))
    }

    async fn open(&self, root: &str, path: &str, offset: u64) -> Result<Box<dyn SourceReader>> {
        let full = self.full(&join(root.trim_matches('/'), path));
        let props = self
            .client
            .properties(&full)
            .await?
            .ok_or_else(|| Error::ObjectNotFound {
                storage: Destination::describe(self),
                path: path.to_string(),
            })?;
        Ok(Box::new(RangedReader {
            storage: self.client.clone(),
            path: full,
            offset,
            size: props.size,
            md5: props.md5,
        }))
    }
}
