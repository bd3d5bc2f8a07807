//! The read side of a storage: list a tree as a stream (never the whole tree in memory) and
//! open a file as a sequence of chunks, from any offset. A backup reads SFTP; a restore and a
//! verify read a mirror in Blob or Files. It knows nothing about where the bytes go.

use async_trait::async_trait;
use bytes::BytesMut;
use tokio::sync::mpsc;

use crate::error::{Error, Result};

/// A regular file found under the source root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to the listed root, `/`-separated, never starting with `/`.
    pub path: String,
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
    /// The MD5 the storage holds for these bytes (a mirror's Content-MD5), when the listing
    /// tells it: what was read must match it.
    pub md5: Option<[u8; 16]>,
}

/// One item of a listing: a file to consider, or something the walk could not use.
#[derive(Debug)]
pub enum ListItem {
    File(SourceFile),
    /// A symbolic link: not followed (a link can point outside the tree or loop).
    Symlink(String),
    /// A directory or entry that could not be read; the rest of the walk goes on.
    Error(String, Error),
}

#[async_trait]
pub trait Source: Send + Sync {
    /// `sftp://user@host:port`, for logs and results. Never contains a secret.
    fn describe(&self) -> String;

    /// Test Connection's checks, in the order of [`crate::check::SOURCE_STEPS`]: reach the host,
    /// handshake, log in, and list `root` (it must be a readable directory).
    async fn check(&self, root: &str) -> std::result::Result<(), crate::check::CheckFailure>;

    /// Walk `root` recursively. Items arrive as they are found; the channel is bounded, so a
    /// slow consumer slows the walk instead of growing memory. Fails only if `root` itself
    /// cannot be read.
    async fn list(&self, root: &str) -> Result<mpsc::Receiver<ListItem>>;

    /// The file's MD5 computed where it lives, if the source can (saves reading it over the
    /// network). `None`: read it instead.
    async fn remote_md5(&self, _root: &str, _path: &str) -> Result<Option<[u8; 16]>> {
        Ok(None)
    }

    /// The file's size and mtime now (`None` if it is gone): checked after the last read, so
    /// a file rewritten in place while it was read is not committed.
    async fn stat(&self, root: &str, path: &str) -> Result<Option<(u64, i64)>>;

    /// Open `root/path` for reading from `offset` (0: its start; more: continuing a read the
    /// connection broke under).
    async fn open(&self, root: &str, path: &str, offset: u64) -> Result<Box<dyn SourceReader>>;
}

#[async_trait]
pub trait SourceReader: Send {
    /// Append the file's next bytes to `buf` until it holds `want` bytes or the file ends. On
    /// an error, what was read stays in `buf`, so a caller can continue from there.
    async fn read_into(&mut self, buf: &mut BytesMut, want: usize) -> Result<()>;

    /// The MD5 the storage holds for the whole file (learnt when it was opened), if any.
    fn stored_md5(&self) -> Option<[u8; 16]> {
        None
    }
}

/// A storage that reads a file by byte ranges, one request per range (Blob, Files).
#[async_trait]
pub trait RangeRead: Send + Sync + 'static {
    /// `len` bytes of `path` from `offset` (`len` > 0, within the file).
    async fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<bytes::Bytes>;
}

/// A [`SourceReader`] over a [`RangeRead`]: each `read_into` is one ranged request of at most
/// `want` bytes, so memory holds what the engine asked for and nothing more.
pub struct RangedReader {
    pub storage: std::sync::Arc<dyn RangeRead>,
    /// The storage's own name of the file.
    pub path: String,
    pub offset: u64,
    /// The file's size when it was opened.
    pub size: u64,
    pub md5: Option<[u8; 16]>,
}

#[async_trait]
impl SourceReader for RangedReader {
    async fn read_into(&mut self, buf: &mut BytesMut, want: usize) -> Result<()> {
        let len =
            (want.saturating_sub(buf.len()) as u64).min(self.size - self.offset.min(self.size));
        if len == 0 {
            return Ok(());
        }
        let data = self
            .storage
            .read_range(&self.path, self.offset, len)
            .await?;
        self.offset += data.len() as u64;
        buf.extend_from_slice(&data);
        Ok(())
    }

    fn stored_md5(&self) -> Option<[u8; 16]> {
        self.md5
    }
}

/// `root` joined with a relative `path`.
pub fn join(root: &str, path: &str) -> String {
    if path.is_empty() {
        root.to_string()
    } else if root.ends_with('/') {
        format!("{root}{path}")
    } else {
        format!("{root}/{path}")
    }
}
