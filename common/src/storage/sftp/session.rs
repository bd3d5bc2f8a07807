//! The job's SFTP connection, replaced when it breaks. Every user asks [`Sessions::get`] for the
//! current connection; whoever sees it fail calls [`Sessions::invalidate`] with the one it used,
//! and the next `get` reconnects, with backoff, once for everyone (a cut link breaks every
//! file in flight at the same moment).

use std::sync::Arc;

use tokio::sync::Mutex;

use super::config::SftpConfig;
use super::connect::{self, Connection};
use crate::check::CheckFailure;
use crate::error::Error;
use crate::storage::retry;

pub struct Sessions {
    cfg: SftpConfig,
    slot: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    current: Option<Arc<Connection>>,
    /// A connection existed and broke: the next one is a reconnect.
    broken: bool,
}

impl Sessions {
    pub fn new(cfg: SftpConfig) -> Self {
        Sessions {
            cfg,
            slot: Mutex::new(Slot::default()),
        }
    }

    pub fn cfg(&self) -> &SftpConfig {
        &self.cfg
    }

    /// A live connection: the current one, or a new one.
    pub async fn get(&self) -> Result<Arc<Connection>, CheckFailure> {
        let mut slot = self.slot.lock().await;
        if let Some(conn) = slot.current.as_ref().filter(|c| !c.is_closed()) {
            return Ok(conn.clone());
        }
        let broken = slot.broken || slot.current.is_some();
        let conn = Arc::new(self.connect(broken).await?);
        slot.current = Some(conn.clone());
        slot.broken = false;
        Ok(conn)
    }

    /// `conn` failed (a cut link, a stalled read): the next `get` opens a new connection.
    pub async fn invalidate(&self, conn: &Arc<Connection>) {
        let mut slot = self.slot.lock().await;
        if slot.current.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            tracing::info!(host = %self.cfg.host, "SFTP connection lost: reconnecting");
            slot.current = None;
            slot.broken = true;
        }
    }

    async fn connect(&self, reconnect: bool) -> Result<Connection, CheckFailure> {
        // A reconnect follows the retry policy; the first connection is tried once (Test
        // Connection must answer at once).
        let attempts = if reconnect {
            retry::REQUESTS.attempts
        } else {
            1
        };
        let mut attempt = 1;
        loop {
            match connect::connect(&self.cfg).await {
                Ok(conn) => return Ok(conn),
                Err(f) if attempt < attempts && transient(&f.error) => {
                    let wait = retry::REQUESTS.wait(attempt, None);
                    tracing::info!(attempt, error = %f.error, "SFTP reconnect failed; retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(f) => return Err(f),
            }
        }
    }
}

/// The job is over: say goodbye (SSH_MSG_DISCONNECT "by application"), so the server logs a
/// disconnect rather than a dropped connection. The message goes from a task of its own (a
/// drop cannot wait); when the runtime is going away with the job, the socket's close is all.
impl Drop for Sessions {
    fn drop(&mut self) {
        let Some(conn) = self.slot.get_mut().current.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { conn.disconnect().await });
        }
    }
}

/// Worth another try after a connection that worked broke (a server restarting refuses for a
/// moment too); authentication and host-key failures are not.
fn transient(e: &Error) -> bool {
    e.is_retryable() || matches!(e, Error::SftpConnectionRefused { .. })
}
