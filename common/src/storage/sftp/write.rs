//! The write side of SFTP (a restore's target). Never a half-written file under a final name:
//! each file is written to a temporary in its target directory (`.bw-partial-r<random>`), its
//! chunks at their offsets (any order, several at once, each on its own handle), its mtime set
//! with setstat, and only then renamed over the final name with `posix-rename@openssh.com`.
//! Where the server lacks that extension (not OpenSSH), the old file is removed first, then the
//! temporary renamed: a reader may then find no file for a moment, never a partial one.

use std::collections::HashSet;
use std::io::SeekFrom;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::connect::Connection;
use super::session::Sessions;
use super::{walk, with_connection, SftpSource};
use crate::check::CheckFailure;
use crate::check::Step;
use crate::error::{Error, ErrorKind, Result};
use crate::storage::checksum::{BodySum, ChunkChecksum};
use crate::storage::read::spawn_listing;
use crate::storage::write::{put_whole, random_hex, unix_now, Capability, TEMP_PREFIX};
use crate::storage::{
    join, Destination, FileMeta, HeldFile, Holdings, ListItem, RemoteFile, Source, Upload,
    RESERVED_DIR,
};

/// A temporary nobody wrote to for this long belongs to a run that died (a live writer
/// touches its temporary with every chunk).
pub const STALE_AFTER_SECS: i64 = 3600;

pub struct SftpDestination {
    reads: SftpSource,
    sessions: Arc<Sessions>,
    /// The directory files are written under.
    root: String,
    /// Directories known to exist, so each is looked up or created once per job.
    known_dirs: Mutex<HashSet<String>>,
    /// Temporaries found by `list`, removed by `clean_up_incomplete`.
    stale: Arc<Mutex<Vec<String>>>,
}

impl SftpDestination {
    pub fn new(source: SftpSource, root: &str) -> Self {
        SftpDestination {
            sessions: source.sessions.clone(),
            reads: source,
            root: root.trim_end_matches('/').to_string(),
            known_dirs: Mutex::new(HashSet::new()),
            stale: Arc::default(),
        }
    }

    fn full(&self, rel: &str) -> String {
        join(&self.root, rel)
    }

    /// Create `dir` and its missing ancestors (each looked at once per job).
    async fn ensure_dir(&self, dir: &str) -> Result<()> {
        let absolute = dir.starts_with('/');
        let mut path = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            path = if path.is_empty() && absolute {
                format!("/{part}")
            } else {
                join(&path, part)
            };
            if self.known_dirs.lock().is_ok_and(|d| d.contains(&path)) {
                continue;
            }
            let p = path.clone();
            let exists = with_connection(&self.sessions, &path, |conn| {
                let p = p.clone();
                async move { conn.sftp.try_exists(p).await }
            })
            .await?;
            if !exists {
                let p = path.clone();
                let made = with_connection(&self.sessions, &path, |conn| {
                    let p = p.clone();
                    async move { conn.sftp.create_dir(p).await }
                })
                .await;
                // Another writer may have made it meanwhile.
                if let Err(e) = made {
                    if !self.is_dir(&path).await {
                        return Err(as_write_error(e));
                    }
                }
            }
            if let Ok(mut d) = self.known_dirs.lock() {
                d.insert(path.clone());
            }
        }
        Ok(())
    }

    async fn is_dir(&self, path: &str) -> bool {
        let p = path.to_string();
        with_connection(&self.sessions, path, |conn| {
            let p = p.clone();
            async move { conn.sftp.metadata(p).await }
        })
        .await
        .is_ok_and(|m| m.is_dir())
    }

    /// A new, empty temporary beside `target` (created exclusively: it is this attempt's own).
    async fn new_temporary(&self, target: &str) -> Result<String> {
        let (dir, _) = target.rsplit_once('/').unwrap_or(("", target));
        self.ensure_dir(dir).await?;
        let temporary = join(dir, &temporary_name(&random_hex()));
        let t = temporary.clone();
        with_connection(&self.sessions, &temporary, |conn| {
            let t = t.clone();
            async move {
                let flags = OpenFlags::CREATE | OpenFlags::EXCLUDE | OpenFlags::WRITE;
                conn.sftp.open_with_flags(t, flags).await?.close().await?;
                Ok(())
            }
        })
        .await
        .map_err(as_write_error)?;
        Ok(temporary)
    }
}

/// Failures on the write side: "permission denied" is about writing here.
fn as_write_error(e: Error) -> Error {
    match e {
        Error::SftpPermissionDenied { path } => Error::SftpWriteDenied { path },
        e => e,
    }
}

#[async_trait]
impl Destination for SftpDestination {
    fn describe(&self) -> String {
        format!("{}{}", self.reads.describe(), self.root)
    }

    fn capability(&self) -> Capability {
        Capability {
            max_chunk: None,
            max_parallel_requests: None,
            // Each attempt writes its own temporary: a failed one is removed, not resumed.
            resumable_staging: false,
            names_ignore_case: false,
            check_steps: &crate::check::SFTP_TARGET_STEPS,
            chunk_checksum: ChunkChecksum::Crc64,
        }
    }

    fn check_name(&self, path: &str) -> Result<()> {
        match path.rsplit('/').next() {
            Some(name) if name.starts_with(TEMP_PREFIX) => Err(Error::InvalidName {
                path: path.to_string(),
                service: "SFTP",
                reason: format!(
                    "names starting with `{TEMP_PREFIX}` are this worker's temporaries"
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Connect, log in, then prove write permission in the target directory: create it if
    /// missing, create a temporary there and remove it again.
    async fn check(&self) -> std::result::Result<(), CheckFailure> {
        self.sessions.get().await?;
        let write = async {
            let probe = self.new_temporary(&self.full("probe")).await?;
            with_connection(&self.sessions, &probe, |conn| {
                let p = probe.clone();
                async move { conn.sftp.remove_file(p).await }
            })
            .await
            .map_err(as_write_error)
        };
        write.await.map_err(CheckFailure::at(Step::Write))
    }

    async fn stat(&self, path: &str) -> Result<Option<RemoteFile>> {
        let stat = self.reads.stat(&self.root, path).await?;
        Ok(stat.map(|(size, mtime)| RemoteFile {
            size,
            source_mtime: Some(mtime),
            md5: None,
        }))
    }

    async fn list(&self) -> Result<Holdings> {
        // The walk a source does, plus the temporaries (to find dead ones).
        let sessions = self.sessions.clone();
        let (tx, rx) = mpsc::channel(256);
        let mut items = match walk::start(sessions, &self.root, walk::Temporaries::List).await {
            Ok(items) => items,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(rx), // nothing yet
            Err(e) => return Err(e),
        };
        if let Ok(mut s) = self.stale.lock() {
            s.clear();
        }
        let (stale, root, now) = (self.stale.clone(), self.root.clone(), unix_now());
        let produce = |tx: mpsc::Sender<Result<HeldFile>>| async move {
            while let Some(item) = items.recv().await {
                let held = match item {
                    ListItem::File(f) if is_temporary(f.path.rsplit('/').next().unwrap_or("")) => {
                        if now - f.mtime >= STALE_AFTER_SECS {
                            if let Ok(mut s) = stale.lock() {
                                s.push(join(&root, &f.path));
                            }
                        }
                        continue;
                    }
                    ListItem::File(f) if f.path.split('/').next() == Some(RESERVED_DIR) => continue,
                    ListItem::File(f) => Ok(HeldFile {
                        remote: RemoteFile {
                            size: f.size,
                            source_mtime: Some(f.mtime),
                            md5: None,
                        },
                        path: f.path,
                    }),
                    ListItem::Symlink(_) => continue,
                    ListItem::Error(_, e) => Err(e),
                };
                if tx.send(held).await.is_err() {
                    return;
                }
            }
        };
        spawn_listing(tx, produce, Err);
        Ok(rx)
    }

    async fn clean_up_incomplete(&self) -> Result<usize> {
        let stale = self
            .stale
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        for path in &stale {
            tracing::info!(%path, "removing a temporary left by an interrupted run");
            let p = path.clone();
            with_connection(&self.sessions, path, |conn| {
                let p = p.clone();
                async move { conn.sftp.remove_file(p).await }
            })
            .await?;
        }
        Ok(stale.len())
    }

    /// `md5sum` on the server, as for a backup's source.
    async fn stored_md5(&self, path: &str) -> Result<Option<[u8; 16]>> {
        self.reads.remote_md5(&self.root, path).await
    }

    async fn delete(&self, path: &str) -> Result<bool> {
        let full = self.full(path);
        let p = full.clone();
        let removed = with_connection(&self.sessions, &full, |conn| {
            let p = p.clone();
            async move { conn.sftp.remove_file(p).await }
        })
        .await;
        match removed {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn put_small(&self, path: &str, data: Bytes, meta: &FileMeta) -> Result<()> {
        let upload = self
            .start_upload(path, meta.size, meta.mtime, data.len().max(1) as u64)
            .await?;
        put_whole(upload, data, meta).await
    }

    async fn start_upload(
        &self,
        path: &str,
        _size: u64,
        _mtime: i64,
        _chunk_size: u64,
    ) -> Result<Arc<dyn Upload>> {
        let target = self.full(path);
        let temporary = self.new_temporary(&target).await?;
        Ok(Arc::new(SftpUpload {
            sessions: self.sessions.clone(),
            temporary,
            target,
        }))
    }

    async fn put_state(&self, name: &str, data: Bytes) -> Result<()> {
        let meta = FileMeta {
            size: data.len() as u64,
            mtime: unix_now(),
            md5: md5_simd::digest(&data),
        };
        self.put_small(&format!("{RESERVED_DIR}/{name}"), data, &meta)
            .await
    }

    /// A temporary renamed with the plain SFTP rename, which refuses to replace (OpenSSH:
    /// link + unlink, failing when the name exists).
    async fn create(&self, path: &str, data: Bytes) -> Result<bool> {
        let target = self.full(path);
        if self.reads.stat(&self.root, path).await?.is_some() {
            return Ok(false);
        }
        let temporary = self.new_temporary(&target).await?;
        let upload = SftpUpload {
            sessions: self.sessions.clone(),
            temporary: temporary.clone(),
            target: target.clone(),
        };
        // An SFTP write carries no integrity value (the SSH MAC covers the transport).
        upload.put_chunk(0, 0, data, BodySum::Crc64(0)).await?;
        let (t, to) = (temporary.clone(), target.clone());
        let renamed = with_connection(&self.sessions, &target, |conn| {
            let (t, to) = (t.clone(), to.clone());
            async move { conn.sftp.rename(t, to).await }
        })
        .await;
        if renamed.is_err() {
            upload.abort().await;
        }
        match renamed {
            Ok(()) => Ok(true),
            Err(_) if self.reads.stat(&self.root, path).await?.is_some() => Ok(false),
            Err(e) => Err(as_write_error(e)),
        }
    }

    async fn get_state(&self, name: &str) -> Result<Option<Bytes>> {
        let path = self.full(&format!("{RESERVED_DIR}/{name}"));
        let p = path.clone();
        let read = with_connection(&self.sessions, &path, |conn| {
            let p = p.clone();
            async move { conn.sftp.read(p).await }
        })
        .await;
        match read {
            Ok(data) => Ok(Some(Bytes::from(data))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_state(&self, dir: &str) -> Result<Vec<String>> {
        let path = self.full(&format!("{RESERVED_DIR}/{}", dir.trim_matches('/')));
        let p = path.clone();
        let entries = with_connection(&self.sessions, &path, |conn| {
            let p = p.clone();
            async move { conn.sftp.read_dir(p).await }
        })
        .await;
        match entries {
            Ok(entries) => Ok(entries
                .filter(|e| e.file_type().is_file() && !e.file_name().starts_with(TEMP_PREFIX))
                .map(|e| e.file_name())
                .collect()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

/// The name of an SFTP temporary: `.bw-partial-r` + 16 hex digits (`random` is from
/// [`random_hex`]).
fn temporary_name(random: &str) -> String {
    format!("{TEMP_PREFIX}r{random}")
}

/// Whether `name` is exactly what [`temporary_name`] makes: only such files are skipped as data
/// or removed when dead, never a user's file that merely starts the same way.
pub(super) fn is_temporary(name: &str) -> bool {
    name.strip_prefix(TEMP_PREFIX)
        .and_then(|rest| rest.strip_prefix('r'))
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One file being written under its temporary name.
struct SftpUpload {
    sessions: Arc<Sessions>,
    temporary: String,
    target: String,
}

impl SftpUpload {
    /// Write `data` at `offset` on a handle of its own (the writes of one handle are
    /// pipelined; several chunks go at once on several handles).
    async fn write_at(&self, conn: &Connection, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut file = conn
            .sftp
            .open_with_flags(self.temporary.clone(), OpenFlags::WRITE)
            .await
            .map_err(std::io::Error::other)?;
        file.seek(SeekFrom::Start(offset)).await?;
        file.write_all(data).await?;
        file.shutdown().await
    }

    /// Replace the target with the temporary in one step where the server can.
    async fn rename_over(&self, conn: Arc<Connection>) -> std::result::Result<(), SftpError> {
        if let Some(done) = conn.posix_rename(&self.temporary, &self.target).await {
            return done;
        }
        match conn.sftp.remove_file(self.target.clone()).await {
            Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => {}
            other => other?,
        }
        conn.sftp
            .rename(self.temporary.clone(), self.target.clone())
            .await
    }
}

#[async_trait]
impl Upload for SftpUpload {
    async fn put_chunk(&self, _index: u64, offset: u64, data: Bytes, _sum: BodySum) -> Result<()> {
        let conn = self.sessions.get().await.map_err(|f| f.error)?;
        if let Err(e) = self.write_at(&conn, offset, &data).await {
            use std::io::ErrorKind::*;
            let lost = conn.is_closed()
                || matches!(
                    e.kind(),
                    TimedOut | BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof
                );
            if lost {
                self.sessions.invalidate(&conn).await;
                let cfg = self.sessions.cfg();
                return Err(Error::SftpConnectionLost {
                    host: cfg.host.clone(),
                    port: cfg.port,
                    path: self.temporary.clone(),
                    detail: format!("write failed: {e}"),
                });
            }
            return Err(as_write_error(Error::Sftp {
                path: self.temporary.clone(),
                detail: format!("write failed: {e}"),
            }));
        }
        Ok(())
    }

    async fn commit(&self, _chunks: u64, meta: &FileMeta) -> Result<()> {
        let times = FileAttributes {
            mtime: u32::try_from(meta.mtime).ok(),
            atime: u32::try_from(meta.mtime).ok(),
            ..FileAttributes::empty()
        };
        let t = self.temporary.clone();
        with_connection(&self.sessions, &self.temporary, |conn| {
            let (t, times) = (t.clone(), times.clone());
            async move { conn.sftp.set_metadata(t, times).await }
        })
        .await
        .map_err(as_write_error)?;
        with_connection(&self.sessions, &self.target, |conn| self.rename_over(conn))
            .await
            .map_err(as_write_error)
    }

    async fn abort(&self) {
        let t = self.temporary.clone();
        let removed = with_connection(&self.sessions, &self.temporary, |conn| {
            let t = t.clone();
            async move { conn.sftp.remove_file(t).await }
        })
        .await;
        if let Err(e) = removed {
            tracing::warn!(path = %self.temporary, error = %e, "could not remove a temporary");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_workers_own_temporaries_are_taken_for_temporaries() {
        assert!(is_temporary(&temporary_name(&random_hex())));
        for user_file in [
            ".bw-partial-fake",
            ".bw-partial-r123",
            ".bw-partial-rzzzzzzzzzzzzzzzz",
        ] {
            assert!(!is_temporary(user_file), "{user_file}");
        }
    }
}
