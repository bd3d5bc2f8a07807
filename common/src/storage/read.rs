//! The read side of a storage: list a tree as a stream (never the whole tree in memory) and
//! open a file as a sequence of chunks, from any offset. A backup reads SFTP; a restore and a
//! verify read a mirror in Blob or Files. It knows nothing about where the bytes go.

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::ChunkBuf;
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
    async fn read_into(&mut self, buf: &mut ChunkBuf, want: usize) -> Result<()>;

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
    async fn read_into(&mut self, buf: &mut ChunkBuf, want: usize) -> Result<()> {
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

/// Run a listing's producer as its own task, sending into `tx`. A producer that panicked would
/// close the channel just as a finished one does, and a partial listing would pass for the
/// whole (a backup short of files, a verify that checked less, without a word): its last item
/// is then `broken(error)` instead.
pub fn spawn_listing<T, P, F>(
    tx: mpsc::Sender<T>,
    produce: P,
    broken: impl FnOnce(Error) -> T + Send + 'static,
) where
    T: Send + 'static,
    P: FnOnce(mpsc::Sender<T>) -> F,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let producer = tokio::spawn(produce(tx.clone()));
    // This sender keeps the channel open until the producer's end is known.
    tokio::spawn(async move {
        match producer.await {
            Err(e) if e.is_panic() => {
                let error = Error::Internal(format!("the listing stopped before its end: {e}"));
                let _ = tx.send(broken(error)).await;
            }
            _ => {} // finished, or the runtime is shutting down
        }
    });
}

/// The output of a task a listing's producer spawned (a folder read, a page fetch). A panic in
/// it is raised again here, so the producer fails and [`spawn_listing`] reports the listing
/// broken; `None` when the runtime is shutting down.
pub async fn joined<T>(task: tokio::task::JoinHandle<T>) -> Option<T> {
    match task.await {
        Ok(output) => Some(output),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listing_that_panics_ends_with_an_error_not_as_if_whole() {
        let (tx, mut rx) = mpsc::channel(1);
        spawn_listing(
            tx,
            |tx| async move {
                for n in 0..3 {
                    if n == 2 {
                        panic!("a bug in the walk");
                    }
                    let _ = tx.send(Ok(n)).await;
                }
            },
            Err,
        );
        assert_eq!(rx.recv().await.map(|r| r.ok()), Some(Some(0)));
        assert_eq!(rx.recv().await.map(|r| r.ok()), Some(Some(1)));
        let Some(Err(last)) = rx.recv().await else {
            panic!("the listing ended without saying it broke");
        };
        assert_eq!(last.code(), "internal");
        assert!(
            last.to_string()
                .contains("the listing stopped before its end"),
            "{last}"
        );
        assert!(rx.recv().await.is_none(), "then the channel closes");
    }

    #[tokio::test]
    async fn a_listing_that_finishes_just_closes() {
        let (tx, mut rx) = mpsc::channel(4);
        spawn_listing(
            tx,
            |tx| async move {
                let _ = tx.send(Ok::<_, Error>(7)).await;
            },
            Err,
        );
        assert_eq!(rx.recv().await.map(|r| r.ok()), Some(Some(7)));
        assert!(rx.recv().await.is_none());
    }
}
