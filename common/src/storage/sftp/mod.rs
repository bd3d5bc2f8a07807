//! The SFTP source (russh + russh-sftp): lists a tree and streams files in chunks.
//!
//! One SSH connection per job ([`session::Sessions`]), opened on first use and replaced when it
//! breaks; reads keep several requests in flight (russh-sftp's `File` read-ahead, as many as the
//! connection's round trip needs: `read_ahead`), so a file is never read one small request at a
//! time. Every operation that fails because the connection did (not because the server said no)
//! is tried again on a new connection.

pub mod config;
mod connect;
mod read_ahead;
mod reader;
mod session;
mod walk;
mod write;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::StatusCode;
use tokio::sync::mpsc;

use super::{join, ListItem, Source, SourceReader};
use crate::check::CheckFailure;
use crate::check::Step;
use crate::error::{Error, ErrorKind, Result};
pub use config::{HostKeyPolicy, SftpConfig};
use connect::Connection;
use session::Sessions;
pub use write::SftpDestination;

/// Times one operation is tried when the connection under it breaks.
const OPERATION_ATTEMPTS: u32 = 3;

pub struct SftpSource {
    sessions: Arc<Sessions>,
    /// Set once the server refused `md5sum`, so it is not asked again for every file.
    hash_command_refused: AtomicBool,
}

impl SftpSource {
    pub fn new(cfg: SftpConfig) -> Self {
        SftpSource {
            sessions: Arc::new(Sessions::new(cfg)),
            hash_command_refused: AtomicBool::new(false),
        }
    }

    fn cfg(&self) -> &SftpConfig {
        self.sessions.cfg()
    }
}

/// Map an SFTP status to the seed's error classes.
fn map_sftp_error(path: &str, e: SftpError) -> Error {
    match &e {
        SftpError::Status(s) if s.status_code == StatusCode::NoSuchFile => Error::SftpNotFound {
            path: path.to_string(),
        },
        SftpError::Status(s) if s.status_code == StatusCode::PermissionDenied => {
            Error::SftpPermissionDenied {
                path: path.to_string(),
            }
        }
        _ => Error::Sftp {
            path: path.to_string(),
            detail: e.to_string(),
        },
    }
}

/// Whether the failure came from the connection (closed, timed out) rather than the server's
/// answer: then a new connection may succeed.
fn connection_failed(e: &SftpError) -> bool {
    !matches!(e, SftpError::Status(_))
}

/// Run `op` on the current connection; when the connection fails under it, replace the
/// connection and try again (at most [`OPERATION_ATTEMPTS`] times).
async fn with_connection<T, F, Fut>(sessions: &Sessions, path: &str, op: F) -> Result<T>
where
    F: Fn(Arc<Connection>) -> Fut,
    Fut: Future<Output = std::result::Result<T, SftpError>>,
{
    let mut attempt = 1;
    loop {
        let conn = sessions.get().await.map_err(|f| f.error)?;
        match op(conn.clone()).await {
            Ok(value) => return Ok(value),
            Err(e) if connection_failed(&e) && attempt < OPERATION_ATTEMPTS => {
                tracing::info!(%path, error = %e, attempt, "SFTP operation failed with its connection; retrying");
                sessions.invalidate(&conn).await;
                attempt += 1;
            }
            Err(e) => return Err(map_sftp_error(path, e)),
        }
    }
}

#[async_trait]
impl Source for SftpSource {
    fn describe(&self) -> String {
        let cfg = self.cfg();
        format!("sftp://{}@{}:{}", cfg.username, cfg.host, cfg.port)
    }

    async fn check(&self, root: &str) -> std::result::Result<(), CheckFailure> {
        let conn = self.sessions.get().await?;
        let list = async {
            let meta = conn
                .sftp
                .metadata(root)
                .await
                .map_err(|e| map_sftp_error(root, e))?;
            if !meta.is_dir() {
                return Err(Error::Sftp {
                    path: root.to_string(),
                    detail: "is not a directory".into(),
                });
            }
            // Listing proves read permission on the directory itself.
            conn.sftp
                .read_dir(root)
                .await
                .map_err(|e| map_sftp_error(root, e))?;
            Ok(())
        };
        list.await.map_err(CheckFailure::at(Step::List))
    }

    async fn list(&self, root: &str) -> Result<mpsc::Receiver<ListItem>> {
        walk::start(self.sessions.clone(), root, walk::Temporaries::Skip).await
    }

    /// `md5sum` on the server, unless Disable Hash Check is set or the server refused it once.
    async fn remote_md5(&self, root: &str, path: &str) -> Result<Option<[u8; 16]>> {
        if self.cfg().disable_hash_check || self.hash_command_refused.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let conn = self.sessions.get().await.map_err(|f| f.error)?;
        let full = join(root, path);
        let quoted = format!("'{}'", full.replace('\'', "'\\''"));
        match conn.exec(&format!("md5sum -- {quoted}")).await {
            Some((0, out)) => Ok(parse_md5sum(&out)),
            Some((status, _)) if status != 127 => Ok(None),
            _ => {
                tracing::info!(host = %self.cfg().host, "the server does not run md5sum: files will be read to hash them");
                self.hash_command_refused.store(true, Ordering::Relaxed);
                Ok(None)
            }
        }
    }

    async fn stat(&self, root: &str, path: &str) -> Result<Option<(u64, i64)>> {
        let full = join(root, path);
        let stat = with_connection(&self.sessions, &full, |conn| {
            let full = full.clone();
            async move { conn.sftp.metadata(full).await }
        })
        .await;
        match stat {
            Ok(meta) => Ok(Some((
                meta.size.unwrap_or(0),
                i64::from(meta.mtime.unwrap_or(0)),
            ))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn open(&self, root: &str, path: &str, offset: u64) -> Result<Box<dyn SourceReader>> {
        reader::open(self.sessions.clone(), join(root, path), offset).await
    }
}

/// The digest at the start of `md5sum` output (`<32 hex> <name>`).
fn parse_md5sum(out: &[u8]) -> Option<[u8; 16]> {
    let text = std::str::from_utf8(out).ok()?;
    let hex = text.split_whitespace().next()?;
    if hex.len() != 32 {
        return None;
    }
    let mut md5 = [0u8; 16];
    for (i, byte) in md5.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(md5)
}

#[cfg(test)]
mod tests {
    #[test]
    fn md5sum_output_is_parsed() {
        let out = b"d41d8cd98f00b204e9800998ecf8427e  /tmp/empty\n";
        assert_eq!(super::parse_md5sum(out).unwrap()[0], 0xd4);
        assert!(super::parse_md5sum(b"md5sum: /x: No such file").is_none());
    }
}
