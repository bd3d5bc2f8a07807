//! Reading one file over SFTP in chunks. A read that fails because the connection broke or
//! stalled marks the connection broken (the next user reconnects) and fails with a retryable
//! error; the engine then reopens the file at the offset it reached.

use std::io::SeekFrom;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncSeekExt;

use super::connect::Connection;
use super::session::Sessions;
use super::with_connection;
use crate::error::{Error, Result};
use crate::storage::{ChunkBuf, SourceReader};

pub struct SftpReader {
    file: russh_sftp::client::fs::File,
    path: String,
    sessions: Arc<Sessions>,
    conn: Arc<Connection>,
}

/// Open `path` and position it at `offset`.
pub async fn open(
    sessions: Arc<Sessions>,
    path: String,
    offset: u64,
) -> Result<Box<dyn SourceReader>> {
    let (file, conn) = with_connection(&sessions, &path, |conn| {
        let path = path.clone();
        async move {
            let file = conn.sftp.open(path).await?;
            Ok((file, conn))
        }
    })
    .await?;
    let mut reader = SftpReader {
        file,
        path,
        sessions,
        conn,
    };
    if offset > 0 {
        if let Err(e) = reader.file.seek(SeekFrom::Start(offset)).await {
            return Err(reader.lost(format!("seek to {offset} failed: {e}")).await);
        }
    }
    Ok(Box::new(reader))
}

impl SftpReader {
    fn read_timeout(&self) -> Duration {
        self.sessions.cfg().read_timeout
    }

    /// The connection under this file failed: let the next user reconnect.
    async fn lost(&self, detail: String) -> Error {
        self.sessions.invalidate(&self.conn).await;
        let cfg = self.sessions.cfg();
        Error::SftpConnectionLost {
            host: cfg.host.clone(),
            port: cfg.port,
            path: self.path.clone(),
            detail,
        }
    }
}

#[async_trait]
impl SourceReader for SftpReader {
    async fn read_into(&mut self, buf: &mut ChunkBuf, want: usize) -> Result<()> {
        let limit = self.read_timeout();
        while buf.len() < want {
            let read = buf.read_from(&mut self.file, want - buf.len());
            // A stalled read fails (and is retried) instead of blocking the file.
            let n = match tokio::time::timeout(limit, read).await {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(self.lost(format!("read failed: {e}")).await),
                Err(_) => {
                    let secs = limit.as_secs();
                    return Err(self
                        .lost(format!(
                            "no data for {secs} s (SSH_READ_TIMEOUT); Timeout Errors"
                        ))
                        .await);
                }
            };
            if n == 0 {
                break;
            }
        }
        Ok(())
    }
}
