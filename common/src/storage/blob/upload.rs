//! One file's upload into a container as a block blob: chunks staged as uncommitted blocks
//! whose ids name the bytes they hold, then one Put Block List.

use std::collections::HashSet;
use std::sync::Mutex;

use async_trait::async_trait;
use azure_storage_blob::models::{
    BlockBlobClientCommitBlockListOptions, BlockBlobClientStageBlockOptions, BlockListType,
    BlockLookupList,
};
use azure_storage_blob::BlockBlobClient;
use bytes::Bytes;

use super::{map_sdk_error, metadata};
use crate::error::{Error, ErrorKind, Result};
use crate::storage::azure::error::sdk_kind;
use crate::storage::azure::AccountConfig;
use crate::storage::checksum::BodySum;
use crate::storage::{FileMeta, Upload};

/// Block ids name the source version and the cut (size, mtime, chunk size: hashed to 8 bytes),
/// the index, and the chunk's integrity value (its CRC-64, the one its request carried), all in
/// fixed width (a blob's ids must have one length, at most 64 bytes). A resumed upload reuses a
/// staged block only if it holds the bytes read now, so a file changed with its mtime kept
/// cannot mix in stale blocks (short of a CRC-64 collision at the same index of a same-size,
/// same-mtime version: 2^-64 by accident); two writers of the same bytes stage the same ids,
/// harmlessly.
#[derive(Debug, Clone)]
pub(super) struct BlockNaming {
    version: String,
}

impl BlockNaming {
    pub(super) fn new(size: u64, mtime: i64, chunk_size: u64) -> Self {
        let key = format!("{size}\n{mtime}\n{chunk_size}");
        let digest = md5_simd::digest(key.as_bytes());
        BlockNaming {
            version: hex::encode(&digest[..8]),
        }
    }

    fn id(&self, index: u64, sum: &BodySum) -> Vec<u8> {
        format!("{}{index:08x}{}", self.version, sum.hex32()).into_bytes()
    }

    /// The index of a block id of this version, if it is one.
    fn index_of(&self, id: &[u8]) -> Option<u64> {
        let text = std::str::from_utf8(id).ok()?;
        let rest = text.strip_prefix(&self.version)?;
        u64::from_str_radix(rest.get(..8)?, 16).ok()
    }
}

pub(super) struct BlobUpload {
    pub(super) naming: BlockNaming,
    pub(super) size: u64,
    pub(super) chunk_size: u64,
    /// Block ids an earlier attempt staged for this version (from Get Block List).
    pub(super) staged: Mutex<HashSet<Vec<u8>>>,
    /// The id of each chunk of this attempt, by index: what `commit` lists.
    pub(super) ids: Mutex<Vec<Option<Vec<u8>>>>,
    pub(super) client: BlockBlobClient,
    pub(super) name: String,
    pub(super) account: AccountConfig,
    pub(super) container: String,
}

impl BlobUpload {
    fn chunk_len(&self, index: u64) -> u64 {
        self.size
            .saturating_sub(index * self.chunk_size)
            .min(self.chunk_size)
    }

    /// Chunk `index` is staged under `id` in this attempt.
    fn remember(&self, index: u64, id: Vec<u8>) {
        if let Ok(mut ids) = self.ids.lock() {
            let i = index as usize;
            if ids.len() <= i {
                ids.resize(i + 1, None);
            }
            ids[i] = Some(id);
        }
    }

    fn map_err(&self, e: azure_core::Error) -> Error {
        map_sdk_error(&self.account, &self.container, &self.name, "write", e)
    }
}

#[async_trait]
impl Upload for BlobUpload {
    async fn resumable_chunks(&self) -> Result<HashSet<u64>> {
        let list = match self
            .client
            .get_block_list(BlockListType::Uncommitted, None)
            .await
        {
            Ok(r) => r.into_model().map_err(|e| self.map_err(e))?,
            // No blob and no staged blocks yet: nothing to resume.
            Err(e) if sdk_kind(&e) == ErrorKind::NotFound => return Ok(HashSet::new()),
            Err(e) => return Err(self.map_err(e)),
        };
        let mut indexes = HashSet::new();
        let mut staged = HashSet::new();
        for block in list.uncommitted_blocks.unwrap_or_default() {
            let (Some(id), Some(size)) = (block.name, block.size) else {
                continue;
            };
            if let Some(index) = self.naming.index_of(&id) {
                if size as u64 == self.chunk_len(index) {
                    indexes.insert(index);
                    staged.insert(id);
                }
            }
        }
        if let Ok(mut s) = self.staged.lock() {
            *s = staged;
        }
        Ok(indexes)
    }

    async fn reuse_chunk(
        &self,
        index: u64,
        _offset: u64,
        _data: &Bytes,
        sum: BodySum,
    ) -> Result<bool> {
        let id = self.naming.id(index, &sum);
        let reused = self.staged.lock().is_ok_and(|s| s.contains(&id));
        if reused {
            self.remember(index, id);
        }
        Ok(reused)
    }

    async fn put_chunk(&self, index: u64, _offset: u64, data: Bytes, sum: BodySum) -> Result<()> {
        let id = self.naming.id(index, &sum);
        let options = match sum {
            BodySum::Md5(md5) => BlockBlobClientStageBlockOptions {
                transactional_content_md5: Some(md5.to_vec()),
                ..Default::default()
            },
            BodySum::Crc64(crc) => BlockBlobClientStageBlockOptions {
                transactional_content_crc64: Some(crc.to_le_bytes().to_vec()),
                ..Default::default()
            },
        };
        self.client
            .stage_block(&id, data.len() as u64, data.into(), Some(options))
            .await
            .map_err(|e| self.map_err(e))?;
        self.remember(index, id);
        Ok(())
    }

    async fn commit(&self, chunks: u64, meta: &FileMeta) -> Result<()> {
        let ids = self.ids.lock().map(|ids| ids.clone()).unwrap_or_default();
        let latest: Option<Vec<Vec<u8>>> = (0..chunks as usize)
            .map(|i| ids.get(i).cloned().flatten())
            .collect();
        let Some(latest) = latest else {
            return Err(Error::Internal(format!(
                "commit of `{}` before all {chunks} chunks were staged",
                self.name
            )));
        };
        let list = BlockLookupList {
            latest: Some(latest),
            ..Default::default()
        };
        let body = list.try_into().map_err(|e| self.map_err(e))?;
        let options = BlockBlobClientCommitBlockListOptions {
            blob_content_md5: Some(meta.md5.to_vec()),
            metadata: Some(metadata(meta)),
            ..Default::default()
        };
        self.client
            .commit_block_list(body, Some(options))
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(())
    }

    async fn abort(&self) {
        // Uncommitted blocks are invisible and the service drops them after a week; a later
        // commit of the same blob discards them at once. Nothing to undo.
    }
}
