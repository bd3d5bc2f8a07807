//! The SFTP source (russh + russh-sftp): lists a tree and streams files in chunks.
//!
//! One SSH connection per job, opened on first use; reads keep several requests in flight
//! (russh-sftp's `File` read-ahead), so a file is never read one small request at a time.

pub mod config;
mod connect;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::client::SftpSession;
use russh_sftp::protocol::StatusCode;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, OnceCell};

use super::{join, ListItem, Source, SourceFile, SourceReader};
use crate::check::CheckFailure;
use crate::error::{Error, Result};
pub use config::{HostKeyPolicy, SftpConfig};

/// Items buffered between the walker and the transfer engine.
const LIST_CHANNEL_DEPTH: usize = 256;

pub struct SftpSource {
    cfg: SftpConfig,
    session: OnceCell<Arc<connect::Connection>>,
    /// Set once the server refused `md5sum`, so it is not asked again for every file.
    hash_command_refused: std::sync::atomic::AtomicBool,
}

impl SftpSource {
    pub fn new(cfg: SftpConfig) -> Self {
        SftpSource {
            cfg,
            session: OnceCell::new(),
            hash_command_refused: std::sync::atomic::AtomicBool::new(false),
        }
    }

    async fn sftp(&self) -> Result<Arc<connect::Connection>> {
        self.sftp_by_step().await.map_err(|f| f.error)
    }

    /// The connection, or the step of opening it that failed (for Test Connection).
    async fn sftp_by_step(&self) -> std::result::Result<Arc<connect::Connection>, CheckFailure> {
        self.session
            .get_or_try_init(|| async { connect::connect(&self.cfg).await.map(Arc::new) })
            .await
            .cloned()
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

fn session_of(conn: &Arc<connect::Connection>) -> &SftpSession {
    &conn.sftp
}

#[async_trait]
impl Source for SftpSource {
    fn describe(&self) -> String {
        format!(
            "sftp://{}@{}:{}",
            self.cfg.username, self.cfg.host, self.cfg.port
        )
    }

    async fn check(&self, root: &str) -> std::result::Result<(), CheckFailure> {
        let conn = self.sftp_by_step().await?;
        let list = async {
            let meta = session_of(&conn)
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
            session_of(&conn)
                .read_dir(root)
                .await
                .map_err(|e| map_sftp_error(root, e))?;
            Ok(())
        };
        list.await.map_err(CheckFailure::at("list"))
    }

    async fn list(&self, root: &str) -> Result<mpsc::Receiver<ListItem>> {
        let conn = self.sftp().await?;
        // The root must be readable: a wrong path fails the job instead of "0 files copied".
        let first = session_of(&conn)
            .read_dir(root)
            .await
            .map_err(|e| map_sftp_error(root, e))?;
        let (tx, rx) = mpsc::channel(LIST_CHANNEL_DEPTH);
        let root = root.to_string();
        tokio::spawn(async move {
            let mut pending: Vec<String> = Vec::new();
            let mut batch = Some(first);
            let mut current = String::new();
            loop {
                let entries = match batch.take() {
                    Some(entries) => entries,
                    None => {
                        let Some(dir) = pending.pop() else { break };
                        let full = join(&root, &dir);
                        match session_of(&conn).read_dir(&full).await {
                            Ok(entries) => {
                                current = dir;
                                entries
                            }
                            Err(e) => {
                                let err = map_sftp_error(&full, e);
                                if tx.send(ListItem::Error(dir, err)).await.is_err() {
                                    return;
                                }
                                continue;
                            }
                        }
                    }
                };
                for entry in entries {
                    let name = entry.file_name();
                    if name == "." || name == ".." {
                        continue;
                    }
                    let rel = if current.is_empty() {
                        name
                    } else {
                        format!("{current}/{name}")
                    };
                    let meta = entry.metadata();
                    let item = if meta.is_symlink() {
                        ListItem::Symlink(rel)
                    } else if meta.is_dir() {
                        pending.push(rel);
                        continue;
                    } else if meta.is_regular() {
                        ListItem::File(SourceFile {
                            path: rel,
                            size: meta.size.unwrap_or(0),
                            mtime: i64::from(meta.mtime.unwrap_or(0)),
                        })
                    } else {
                        // Sockets, FIFOs, devices: nothing to back up.
                        continue;
                    };
                    if tx.send(item).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }

    /// `md5sum` on the server, unless Disable Hash Check is set or the server refused it once.
    async fn remote_md5(&self, root: &str, path: &str) -> Result<Option<[u8; 16]>> {
        use std::sync::atomic::Ordering;
        if self.cfg.disable_hash_check || self.hash_command_refused.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let conn = self.sftp().await?;
        let full = join(root, path);
        let quoted = format!("'{}'", full.replace('\'', "'\\''"));
        match conn.exec(&format!("md5sum -- {quoted}")).await {
            Some((0, out)) => Ok(parse_md5sum(&out)),
            Some((status, _)) if status != 127 => Ok(None),
            _ => {
                tracing::info!(host = %self.cfg.host, "the server does not run md5sum: files will be read to hash them");
                self.hash_command_refused.store(true, Ordering::Relaxed);
                Ok(None)
            }
        }
    }

    async fn stat(&self, root: &str, path: &str) -> Result<Option<(u64, i64)>> {
        let conn = self.sftp().await?;
        let full = join(root, path);
        match session_of(&conn).metadata(full.as_str()).await {
            Ok(meta) => Ok(Some((
                meta.size.unwrap_or(0),
                i64::from(meta.mtime.unwrap_or(0)),
            ))),
            Err(e) => match map_sftp_error(&full, e) {
                Error::SftpNotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn open(&self, root: &str, path: &str) -> Result<Box<dyn SourceReader>> {
        let conn = self.sftp().await?;
        let full = join(root, path);
        let file = session_of(&conn)
            .open(full.as_str())
            .await
            .map_err(|e| map_sftp_error(&full, e))?;
        Ok(Box::new(SftpReader {
            file,
            path: full,
            read_timeout: self.cfg.read_timeout,
            host: self.cfg.host.clone(),
            port: self.cfg.port,
            _conn: conn,
        }))
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

struct SftpReader {
    file: russh_sftp::client::fs::File,
    path: String,
    read_timeout: std::time::Duration,
    host: String,
    port: u16,
    _conn: Arc<connect::Connection>,
}

#[async_trait]
impl SourceReader for SftpReader {
    async fn read_chunk(&mut self, len: usize) -> Result<Bytes> {
        let mut buf = BytesMut::with_capacity(len);
        while buf.len() < len {
            let mut limited = (&mut self.file).take((len - buf.len()) as u64);
            let read = limited.read_buf(&mut buf);
            // A stalled read fails (and is retried by the engine) instead of blocking the file.
            let n = tokio::time::timeout(self.read_timeout, read)
                .await
                .map_err(|_| Error::SftpTimeout {
                    host: self.host.clone(),
                    port: self.port,
                    seconds: self.read_timeout.as_secs(),
                })?
                .map_err(|e| Error::Sftp {
                    path: self.path.clone(),
                    detail: format!("read failed: {e}"),
                })?;
            if n == 0 {
                break;
            }
        }
        Ok(buf.freeze())
    }
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
