//! The read side of Azure Files: a mirror walked directory by directory as a stream in path
//! order (the walk the write side's listing shares), a file's
//! properties, and ranged reads (one Get File per chunk).

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::client::{DirEntry, FilesClient};
use super::{join, FilesDestination, TEMP_PREFIX};
use crate::check::CheckFailure;
use crate::error::{Error, Result};
use crate::storage::read::{spawn_listing, RangedReader};
use crate::storage::walk::{child, walk_ahead, Entry};
use crate::storage::{Destination, ListItem, Source, SourceFile, SourceReader, RESERVED_DIR};

/// A file as a directory listing shows it.
pub(super) struct ListedFile {
    pub name: String,
    pub size: u64,
    pub last_write: Option<i64>,
    pub last_modified: Option<i64>,
}

/// Walk the share-relative folder `base` in path order ([`crate::storage::walk`]), the next
/// few directories read at once, skipping the worker's state folder at the top. `keep` turns a file
/// (with its folder relative to `base`) into an item, or drops it. The first directory is read
/// here: a missing share fails the caller, a missing folder lists nothing; a later directory
/// that cannot be read becomes the item `failed` makes, and the walk goes on.
pub(super) async fn walk<T: Send + 'static>(
    client: Arc<FilesClient>,
    base: String,
    keep: impl Fn(&str, ListedFile) -> Option<T> + Send + Sync + 'static,
    failed: impl Fn(String, Error) -> T + Send + Sync + 'static,
) -> Result<mpsc::Receiver<T>> {
    let entries = move |dir: &str, listed: Vec<DirEntry>| -> Vec<Entry<T>> {
        listed
            .into_iter()
            .filter_map(|entry| match entry {
                DirEntry::Directory(name) if dir.is_empty() && name == RESERVED_DIR => None,
                DirEntry::Directory(name) => Some(Entry::Dir(name)),
                DirEntry::File {
                    name,
                    size,
                    last_write,
                    last_modified,
                } => {
                    let file = ListedFile {
                        name: name.clone(),
                        size,
                        last_write,
                        last_modified,
                    };
                    keep(dir, file).map(|item| Entry::Item(name, item))
                }
            })
            .collect()
    };
    let entries = Arc::new(entries);
    let first = entries("", client.list(&base).await?.unwrap_or_default());
    let (tx, rx) = mpsc::channel(1024);
    let read = move |dir: String| {
        let (client, entries, path) = (client.clone(), entries.clone(), join(&base, &dir));
        async move {
            let listed = client.list(&path).await?;
            Ok(entries(&dir, listed.unwrap_or_default()))
        }
    };
    let failed = Arc::new(failed);
    let broken = failed.clone();
    spawn_listing(
        tx,
        |tx| walk_ahead(first, read, move |dir, e| failed(dir, e), tx),
        move |e| broken(String::new(), e),
    );
    Ok(rx)
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

    /// Every file under `<prefix>/<root>`, one directory at a time, in path order.
    async fn list(&self, root: &str) -> Result<mpsc::Receiver<ListItem>> {
        let base = self.full(root.trim_matches('/'));
        let keep = |dir: &str, file: ListedFile| {
            // An interrupted upload's temporary is not data.
            (!file.name.starts_with(TEMP_PREFIX)).then(|| {
                ListItem::File(SourceFile {
                    path: child(dir, &file.name),
                    size: file.size,
                    mtime: file.last_write.or(file.last_modified).unwrap_or(0),
                    // Listings do not carry Content-MD5: the reader learns it when it opens.
                    md5: None,
                })
            })
        };
        walk(self.client.clone(), base, keep, ListItem::Error).await
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
