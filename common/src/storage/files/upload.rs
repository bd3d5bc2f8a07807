//! One file's upload into a share: a temporary of its own, then Rename File over the final name.
//!
//! Every attempt writes its own temporary, `.bw-partial-<version>-w<attempt>` (the version names
//! the target, the source's size and mtime, and the cut; the attempt is random), so two writers
//! of one file (a duplicate delivery, a retry elsewhere) never share bytes, and a rename only
//! ever publishes a temporary its own writer filled. To resume, an attempt *claims* a temporary
//! of the same version that its writer let go (renamed to `…-r<attempt>` on a hand-back or a
//! retryable failure) or that nobody touched for `RESUME_AFTER_SECS` (its writer died; every Put Range touches it), by renaming
//! it to its own name without replace: the service lets exactly one claimant win. A writer whose
//! temporary was claimed (it was only slow) finds it gone and fails that attempt; nothing it
//! does can reach the claimant's file. Claimed ranges are reused only after the service's MD5
//! of each matches the bytes read now.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::client::{DirEntry, FilesClient};
use super::TEMP_PREFIX;
use crate::error::{Error, ErrorKind, Result};
use crate::storage::checksum::BodySum;
use crate::storage::write::{random_hex, unix_now};
use crate::storage::{FileMeta, Upload};

pub struct FilesUpload {
    pub(super) client: Arc<FilesClient>,
    pub(super) temporary: String,
    pub(super) target: String,
    pub(super) size: u64,
    pub(super) chunk_size: u64,
    /// Whether the temporary was claimed from an earlier attempt (and may hold ranges).
    pub(super) resuming: bool,
    /// Whether the temporary holds the committed file's properties (created with them, a file
    /// of one range, or set once it was read whole), so the commit is the rename alone.
    pub(super) properties_set: AtomicBool,
}

/// `dir/.bw-partial-<version>-w<random>`: the temporary of one attempt.
pub fn own_name(dir: &str, version: &str) -> String {
    super::join(dir, &format!("{TEMP_PREFIX}{version}-w{}", random_hex()))
}

/// Take over a temporary of `version` in `dir` that its writer let go or abandoned, renaming
/// it to `own`. Returns whether one was claimed (`own` then exists with `size` bytes).
pub async fn claim(
    client: &FilesClient,
    dir: &str,
    version: &str,
    own: &str,
    size: u64,
    quiet_secs: u64,
) -> Result<bool> {
    let prefix = format!("{TEMP_PREFIX}{version}-");
    let now = unix_now();
    let entries = client
        .list_prefixed(dir, &prefix)
        .await?
        .unwrap_or_default();
    for entry in entries {
        let DirEntry::File {
            name,
            size: len,
            last_modified,
            ..
        } = entry
        else {
            continue;
        };
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let released = rest.starts_with('r');
        let abandoned = last_modified.is_some_and(|t| now - t >= quiet_secs as i64);
        if len != size || !(released || abandoned) {
            continue;
        }
        match client.rename(&super::join(dir, &name), own, false).await {
            Ok(()) => {
                tracing::info!(temporary = %name, "resuming the staged ranges of an earlier attempt");
                return Ok(true);
            }
            // Another attempt claimed it first (it is gone, or our name is taken).
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::AlreadyExists) => {
                continue
            }
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

impl FilesUpload {
    /// The committed file's size, MD5 and times on the temporary, once.
    async fn set_properties(&self, meta: &FileMeta) -> Result<()> {
        if self.properties_set.load(Ordering::Acquire) {
            return Ok(());
        }
        self.client
            .set_properties(&self.temporary, meta.size, &meta.md5, meta.mtime)
            .await?;
        self.properties_set.store(true, Ordering::Release);
        Ok(())
    }

    /// After a failed Rename: whether the file is nevertheless committed (the response was
    /// lost): our temporary is gone and the target holds our size and MD5.
    async fn committed_anyway(&self, meta: &FileMeta) -> Result<bool> {
        if self.client.size(&self.temporary).await?.is_some() {
            return Ok(false);
        }
        Ok(self.client.size_and_md5(&self.target).await? == Some((meta.size, Some(meta.md5))))
    }
}

#[async_trait]
impl Upload for FilesUpload {
    /// The chunks the claimed temporary holds written ranges for (List Ranges).
    async fn resumable_chunks(&self) -> Result<HashSet<u64>> {
        if !self.resuming || self.chunk_size == 0 {
            return Ok(HashSet::new());
        }
        let written = self.client.written_ranges(&self.temporary).await?;
        let covered = |start: u64, end: u64| written.iter().any(|(s, e)| *s <= start && end <= *e);
        Ok((0..self.size.div_ceil(self.chunk_size))
            .filter(|i| {
                let start = i * self.chunk_size;
                let end = (start + self.chunk_size).min(self.size) - 1;
                covered(start, end)
            })
            .collect())
    }

    /// The service's MD5 of the stored range must equal the MD5 of the bytes read now (hashed
    /// here: only a resumed chunk needs it).
    async fn reuse_chunk(
        &self,
        _index: u64,
        offset: u64,
        data: &Bytes,
        _sum: BodySum,
    ) -> Result<bool> {
        let md5 = crate::transfer::digest::md5_of(data.clone()).await?;
        let stored = self
            .client
            .range_md5(&self.temporary, offset, data.len() as u64)
            .await?;
        match stored {
            Some(stored) => Ok(stored == md5),
            None => Err(Error::Azure {
                resource: self.temporary.clone(),
                detail: "the temporary vanished while it was resumed (another attempt claimed it)"
                    .into(),
            }),
        }
    }

    async fn put_chunk(&self, _index: u64, offset: u64, data: Bytes, sum: BodySum) -> Result<()> {
        self.client
            .put_range(&self.temporary, offset, data, Some(sum))
            .await
    }

    /// Set File Properties beside the last Put Ranges: they keep the MD5 and (sent with
    /// `x-ms-file-last-write-time: preserve`) the times.
    async fn read_whole(&self, meta: &FileMeta) -> Result<()> {
        self.set_properties(meta).await
    }

    async fn commit(&self, _chunks: u64, meta: &FileMeta) -> Result<()> {
        self.set_properties(meta).await?;
        match self
            .client
            .rename(&self.temporary, &self.target, true)
            .await
        {
            Ok(()) => Ok(()),
            // A retried Rename whose first answer was lost finds its source gone: check.
            Err(e) if self.committed_anyway(meta).await.unwrap_or(false) => {
                tracing::info!(path = %self.target, error = %e, "the rename's answer was lost, but the file is committed");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Rename the temporary to its released name, so the next attempt can claim it at once.
    async fn release(&self) {
        let Some((head, attempt)) = self.temporary.rsplit_once("-w") else {
            return;
        };
        let released = format!("{head}-r{attempt}");
        if let Err(e) = self.client.rename(&self.temporary, &released, true).await {
            tracing::warn!(path = %self.temporary, error = %e, "cannot release a temporary; it can be claimed once it is quiet");
        }
    }

    async fn abort(&self) {
        if let Err(e) = self.client.delete_file(&self.temporary).await {
            tracing::warn!(path = %self.temporary, error = %e, "cannot remove a temporary; the next run will");
        }
    }
}
