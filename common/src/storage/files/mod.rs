//! Azure Files destination, on our own REST client ([`client::FilesClient`]).
//!
//! Never a half-written file: each file is written under a temporary name in its target
//! directory (`.bw-partial-<version>`), its ranges go up `upload_concurrency` at a time, its MD5
//! and mtime are set, and only then is it renamed over the final name. The temporary's name
//! follows from the source file's version and the chunk size, so an attempt that was killed or
//! handed back is resumed from the ranges it wrote; temporaries nobody touched for an hour
//! (their source changed or vanished) are removed by the next run's listing.

pub mod client;
pub mod config;
pub mod names;
mod read;
mod upload;
mod wire;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use super::azure::probe::{connect_and_authenticate, within};
use super::azure::AccountConfig;
use super::checksum::{BodySum, ChunkChecksum};
use super::walk;
use super::write::{put_whole, unix_now, Capability};
use super::{
    CheckFailure, Destination, FileMeta, HeldFile, Holdings, RemoteFile, Upload, RESERVED_DIR,
};
use crate::check::Step;
use crate::check::DESTINATION_STEPS;
use crate::error::{Error, ErrorKind, Result};
use client::{DirEntry, FilesClient, MAX_RANGE};
pub use config::FilesConfig;
use read::ListedFile;
use upload::FilesUpload;

pub use super::write::TEMP_PREFIX;
/// A temporary nobody wrote to for this long belongs to a run that died. (One being written is
/// touched by every Put Range; other workers of the same job may be writing theirs right now.)
pub const STALE_AFTER_SECS: i64 = 3600;

pub struct FilesDestination {
    client: Arc<FilesClient>,
    /// Prefix inside the share, without leading or trailing `/`.
    prefix: String,
    /// Directories known to exist, so each is created once per job.
    known_dirs: Mutex<HashSet<String>>,
    /// Temporaries found by `list`, removed by `clean_up_incomplete`.
    stale: Arc<Mutex<Vec<String>>>,
    account: AccountConfig,
    resume_after_secs: u64,
    chunk_checksum: ChunkChecksum,
}

impl FilesDestination {
    pub fn new(cfg: FilesConfig, share: Option<String>, prefix: &str) -> Result<Self> {
        let share = share.or_else(|| cfg.share.clone()).ok_or_else(|| {
            Error::invalid_field(
                "destination.share",
                format!(
                    "is required: name it in the message or set BACKUP_STORAGE_{}_SHARE_NAME",
                    crate::config::normalize_name(&cfg.account.storage)
                ),
            )
        })?;
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() {
            names::check(prefix).map_err(|e| {
                Error::invalid_field(
                    "destination.prefix",
                    format!("cannot be used in a share: {e}"),
                )
            })?;
        }
        Ok(FilesDestination {
            client: Arc::new(FilesClient::new(&cfg, share)?),
            resume_after_secs: cfg.resume_after_secs,
            chunk_checksum: cfg.chunk_checksum,
            account: cfg.account,
            prefix: prefix.to_string(),
            known_dirs: Mutex::new(HashSet::new()),
            stale: Arc::default(),
        })
    }

    /// Share-relative path of a path relative to the job's prefix.
    fn full(&self, rel: &str) -> String {
        join(&self.prefix, rel)
    }

    /// Test Connection up to listing `dir` (share-relative): connect, authenticate, the share
    /// exists, listing is allowed. Both sides' checks start with it.
    async fn check_reachable(&self, dir: &str) -> std::result::Result<(), CheckFailure> {
        let cfg = &self.account;
        connect_and_authenticate(cfg).await?;
        within(cfg, Step::Access, async {
            self.client
                .share_properties()
                .await
                .map_err(CheckFailure::at(Step::Access))
        })
        .await?;
        within(cfg, Step::List, async {
            self.client
                .list(dir)
                .await
                .map(|_| ())
                .map_err(CheckFailure::at(Step::List))
        })
        .await
    }

    /// Create `dir` and its missing ancestors (each at most once per job).
    async fn ensure_dir(&self, dir: &str) -> Result<()> {
        let mut path = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            path = join(&path, part);
            let known = self
                .known_dirs
                .lock()
                .map(|d| d.contains(&path))
                .unwrap_or(false);
            if !known {
                self.client.create_directory(&path).await?;
                if let Ok(mut d) = self.known_dirs.lock() {
                    d.insert(path.clone());
                }
            }
        }
        Ok(())
    }
}

/// What a temporary's name says of the upload: the target, the source's size and mtime, and
/// the cut (hashed to 12 bytes), so only an attempt at the same version claims it.
fn version(target: &str, size: u64, mtime: i64, chunk_size: u64) -> String {
    let key = format!("{target}\n{size}\n{mtime}\n{chunk_size}");
    md5_simd::digest(key.as_bytes())
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

#[async_trait]
impl Destination for FilesDestination {
    fn describe(&self) -> String {
        format!(
            "azurefiles://{}/{}/{}",
            self.client.account, self.client.share, self.prefix
        )
    }

    fn capability(&self) -> Capability {
        Capability {
            max_chunk: Some(MAX_RANGE),
            max_parallel_requests: None,
            resumable_staging: true,
            names_ignore_case: true,
            check_steps: &DESTINATION_STEPS,
            chunk_checksum: self.chunk_checksum,
        }
    }

    fn check_name(&self, path: &str) -> Result<()> {
        if let Some(name) = path
            .rsplit('/')
            .next()
            .filter(|n| n.starts_with(TEMP_PREFIX))
        {
            return Err(Error::InvalidName {
                path: path.to_string(),
                service: "Azure Files",
                reason: format!("names starting with `{TEMP_PREFIX}` are this worker's temporaries (`{name}` would be taken for one)"),
            });
        }
        names::check(&self.full(path))
    }

    async fn check(&self) -> std::result::Result<(), CheckFailure> {
        let cfg = &self.account;
        self.check_reachable(&self.prefix).await?;
        // Write permission: create a temporary in the prefix directory and delete it again.
        let write = async {
            self.ensure_dir(&self.prefix).await?;
            let probe = upload::own_name(&self.prefix, "probe");
            self.client.create_file(&probe, 0, &[]).await?;
            self.client.delete_file(&probe).await.map(|_| ())
        };
        within(cfg, Step::Write, async {
            write.await.map_err(CheckFailure::at(Step::Write))
        })
        .await
    }

    async fn stat(&self, path: &str) -> Result<Option<RemoteFile>> {
        let props = self.client.properties(&self.full(path)).await?;
        Ok(props.map(|p| RemoteFile {
            size: p.size,
            source_mtime: p.last_write,
            md5: p.md5,
        }))
    }

    async fn list(&self) -> Result<Holdings> {
        let stale = self.stale.clone();
        let (prefix, now) = (self.prefix.clone(), unix_now());
        let keep = move |dir: &str, file: ListedFile| {
            let path = walk::child(dir, &file.name);
            if !file.name.starts_with(TEMP_PREFIX) {
                let remote = RemoteFile {
                    size: file.size,
                    source_mtime: file.last_write,
                    md5: None,
                };
                return Some(Ok(HeldFile { path, remote }));
            }
            if file
                .last_modified
                .is_none_or(|t| now - t >= STALE_AFTER_SECS)
            {
                if let Ok(mut s) = stale.lock() {
                    s.push(join(&prefix, &path));
                }
            }
            None
        };
        if let Ok(mut s) = self.stale.lock() {
            s.clear();
        }
        read::walk(self.client.clone(), self.prefix.clone(), keep, |_, e| {
            Err(e)
        })
        .await
    }

    async fn clean_up_incomplete(&self) -> Result<usize> {
        let stale = self
            .stale
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        for path in &stale {
            tracing::info!(%path, "removing a temporary left by an interrupted run");
            self.client.delete_file(path).await?;
        }
        Ok(stale.len())
    }

    async fn stored_md5(&self, path: &str) -> Result<Option<[u8; 16]>> {
        self.client.content_md5(&self.full(path)).await
    }

    async fn delete(&self, path: &str) -> Result<bool> {
        self.client.delete_file(&self.full(path)).await
    }

    /// Three requests: Create File with the final properties, one Put Range checked by the
    /// file's MD5, Rename over the final name. No earlier attempt is looked for: resuming one
    /// range would cost a listing of the folder to save at most one range.
    async fn put_small(&self, path: &str, data: Bytes, meta: &FileMeta) -> Result<()> {
        let target = self.full(path);
        let (dir, _) = target.rsplit_once('/').unwrap_or(("", &target));
        self.ensure_dir(dir).await?;
        let temporary = upload::own_name(dir, &version(&target, meta.size, meta.mtime, MAX_RANGE));
        self.client
            .create_file_with_properties(&temporary, meta.size, &meta.md5, meta.mtime)
            .await?;
        let upload = Arc::new(FilesUpload {
            client: self.client.clone(),
            temporary,
            target,
            size: meta.size,
            chunk_size: MAX_RANGE,
            resuming: false,
            properties_set: true.into(),
        });
        put_whole(upload, data, meta).await
    }

    async fn start_upload(
        &self,
        path: &str,
        size: u64,
        mtime: i64,
        chunk_size: u64,
    ) -> Result<Arc<dyn Upload>> {
        let target = self.full(path);
        let version = version(&target, size, mtime, chunk_size);
        let (dir, _) = target.rsplit_once('/').unwrap_or(("", &target));
        self.ensure_dir(dir).await?;
        let temporary = upload::own_name(dir, &version);
        // An earlier attempt at this same version let its temporary go: carry on with it.
        let resuming = upload::claim(
            &self.client,
            dir,
            &version,
            &temporary,
            size,
            self.resume_after_secs,
        )
        .await?;
        if !resuming {
            self.client.create_file(&temporary, size, &[]).await?;
        }
        Ok(Arc::new(FilesUpload {
            client: self.client.clone(),
            temporary,
            target,
            size,
            chunk_size,
            resuming,
            properties_set: false.into(),
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

    /// A temporary renamed without replace: the service refuses (409) when the name exists.
    async fn create(&self, path: &str, data: Bytes) -> Result<bool> {
        let target = self.full(path);
        let (dir, _) = target.rsplit_once('/').unwrap_or(("", &target));
        self.ensure_dir(dir).await?;
        let temporary = upload::own_name(dir, "create");
        let md5 = md5_simd::digest(&data);
        let size = data.len() as u64;
        let created = async {
            self.client
                .create_file_with_properties(&temporary, size, &md5, unix_now())
                .await?;
            self.client
                .put_range(&temporary, 0, data, Some(BodySum::Md5(md5)))
                .await?;
            self.client.rename(&temporary, &target, false).await
        }
        .await;
        match created {
            Ok(()) => Ok(true),
            Err(e) => {
                let _ = self.client.delete_file(&temporary).await;
                match e {
                    e if e.kind() == ErrorKind::AlreadyExists => Ok(false),
                    e => Err(e),
                }
            }
        }
    }

    async fn get_state(&self, name: &str) -> Result<Option<Bytes>> {
        match self
            .client
            .read(&self.full(&format!("{RESERVED_DIR}/{name}")), None)
            .await
        {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_state(&self, dir: &str) -> Result<Vec<String>> {
        let path = self.full(&format!("{RESERVED_DIR}/{}", dir.trim_matches('/')));
        let entries = self.client.list(&path).await?.unwrap_or_default();
        Ok(entries
            .into_iter()
            .filter_map(|e| match e {
                DirEntry::File { name, .. } if !name.starts_with(TEMP_PREFIX) => Some(name),
                _ => None,
            })
            .collect())
    }
}
