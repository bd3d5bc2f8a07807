//! Walking a tree over SFTP: the next few directories are read at once (each retried on a new
//! connection if the link breaks), items stream through a bounded channel in path order.

use std::sync::Arc;

use russh_sftp::client::fs::ReadDir;
use tokio::sync::mpsc;

use super::session::Sessions;
use super::with_connection;
use crate::error::Result;
use crate::storage::read::spawn_listing;
use crate::storage::walk::{child, walk_ahead, Entry};
use crate::storage::{join, ListItem, SourceFile};

/// Items buffered between the walker and the transfer engine.
const LIST_CHANNEL_DEPTH: usize = 256;

/// Whether a walk lists the worker's own temporaries: a source never does (a temporary is never
/// data); the write side does, to remove dead ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Temporaries {
    Skip,
    List,
}

/// Read `root` (it must be readable: a wrong path fails the job instead of "0 files copied"),
/// then walk the rest in the background, in path order ([`crate::storage::walk`]).
pub async fn start(
    sessions: Arc<Sessions>,
    root: &str,
    temporaries: Temporaries,
) -> Result<mpsc::Receiver<ListItem>> {
    let first = entries("", read_dir(&sessions, root).await?, temporaries);
    let (tx, rx) = mpsc::channel(LIST_CHANNEL_DEPTH);
    let root = root.to_string();
    let read = move |dir: String| {
        let (sessions, path) = (sessions.clone(), join(&root, &dir));
        async move {
            let read = read_dir(&sessions, &path).await?;
            Ok(entries(&dir, read, temporaries))
        }
    };
    spawn_listing(
        tx,
        |tx| walk_ahead(first, read, ListItem::Error, tx),
        |e| ListItem::Error(String::new(), e),
    );
    Ok(rx)
}

async fn read_dir(sessions: &Sessions, path: &str) -> Result<ReadDir> {
    with_connection(sessions, path, |conn| {
        let path = path.to_string();
        async move { conn.sftp.read_dir(path).await }
    })
    .await
}

/// What one directory holds that a walk yields or enters.
fn entries(dir: &str, read: ReadDir, temporaries: Temporaries) -> Vec<Entry<ListItem>> {
    let mut found = Vec::new();
    for entry in read {
        let name = entry.file_name();
        let temporary = super::write::is_temporary(&name);
        if name == "." || name == ".." || (temporary && temporaries == Temporaries::Skip) {
            continue;
        }
        let rel = child(dir, &name);
        let meta = entry.metadata();
        let item = if meta.is_symlink() {
            ListItem::Symlink(rel)
        } else if meta.is_dir() {
            found.push(Entry::Dir(name));
            continue;
        } else if meta.is_regular() {
            ListItem::File(SourceFile {
                path: rel,
                size: meta.size.unwrap_or(0),
                mtime: i64::from(meta.mtime.unwrap_or(0)),
                md5: None,
            })
        } else {
            // Sockets, FIFOs, devices: nothing to back up.
            continue;
        };
        found.push(Entry::Item(name, item));
    }
    found
}
