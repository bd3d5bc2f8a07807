//! The write side of a storage. A backup writes Blob or Files; a restore writes SFTP (or any).
//!
//! The contract every destination keeps: **nothing is visible under a file's final name before
//! `commit`** (Blob: uncommitted blocks, then Put Block List; Files and SFTP: a temporary name,
//! then a rename). A destination knows nothing about where the bytes come from.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::checksum::{BodySum, ChunkChecksum};
pub use crate::check::CheckFailure;
use crate::error::Result;

/// Temporary files start with this, in every storage that writes through a temporary name
/// (Files, SFTP); nothing else the worker writes does.
pub const TEMP_PREFIX: &str = ".bw-partial-";

/// 16 random hex digits: makes one attempt's temporary its own.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    let rng = ring::rand::SystemRandom::new();
    if ring::rand::SecureRandom::fill(&rng, &mut bytes).is_err() {
        // No system randomness: time and process still separate attempts in practice.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        bytes = (nanos ^ u64::from(std::process::id()).rotate_left(40)).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a storage's write side can do. One value per storage instead of a default method per
/// trait: a new storage states all of it at once.
#[derive(Debug, Clone, Copy)]
pub struct Capability {
    /// The largest chunk one request may carry (Azure Files: 4 MiB), if capped.
    pub max_chunk: Option<u64>,
    /// A cap on parallel requests the storage's profile sets (Blob's `MAX_CONNECTIONS`).
    pub max_parallel_requests: Option<u32>,
    /// Staged chunks survive an interrupted attempt and can be resumed
    /// ([`Upload::resumable_chunks`]); otherwise a failed upload is aborted.
    pub resumable_staging: bool,
    /// Two names that differ only in case are one file (Azure Files).
    pub names_ignore_case: bool,
    /// The integrity value each chunk's request carries (see [`super::checksum`]).
    pub chunk_checksum: ChunkChecksum,
    /// The steps `check` runs, in order (an SFTP target has a handshake; Azure has none).
    pub check_steps: &'static [crate::check::Step],
}

/// Seconds since the Unix epoch, now (what a temporary's age and a state object's mtime use).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `data` as one chunk of `upload`, committed; aborted if any step fails. How a storage whose
/// small writes go through its staged upload (a temporary, then a rename) implements `put_small`.
pub async fn put_whole(upload: Arc<dyn Upload>, data: Bytes, meta: &FileMeta) -> Result<()> {
    let result = async {
        // The only chunk's bytes are the file's: its MD5 checks the request.
        upload.put_chunk(0, 0, data, BodySum::Md5(meta.md5)).await?;
        upload.commit(1, meta).await
    }
    .await;
    if result.is_err() {
        upload.abort().await;
    }
    result
}

/// Folder beside the data for the worker's own state; never listed or copied as data.
pub const RESERVED_DIR: &str = ".backup-worker";

/// What a destination already holds for a path: used by incremental runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub size: u64,
    /// The source's mtime recorded at upload, if the object has it.
    pub source_mtime: Option<i64>,
    pub md5: Option<[u8; 16]>,
}

/// A file a destination holds, as its listing yields it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldFile {
    /// Relative to the job's prefix.
    pub path: String,
    pub remote: RemoteFile,
}

/// What [`Destination::list`] yields: files in path order; an error ends it.
pub type Holdings = mpsc::Receiver<Result<HeldFile>>;

/// Properties stored with a committed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    pub size: u64,
    pub mtime: i64,
    pub md5: [u8; 16],
}

#[async_trait]
pub trait Destination: Send + Sync {
    /// `azureblob://account/container/prefix`, for logs and results. Never contains a secret.
    fn describe(&self) -> String;

    /// Test Connection's checks, in the order of [`crate::check::DESTINATION_STEPS`], cheapest first: reach the
    /// endpoint, authenticate, the container exists, listing is allowed, writing is allowed
    /// (without leaving anything visible). The first failing step ends the check.
    async fn check(&self) -> std::result::Result<(), CheckFailure>;

    /// What this storage can and cannot do, in one value (the engine plans by it).
    fn capability(&self) -> Capability;

    /// Whether `path` (relative to the prefix) can be stored under exactly that name.
    fn check_name(&self, _path: &str) -> Result<()> {
        Ok(())
    }

    /// What the destination holds for one path (`None`: nothing): how a part of a big job
    /// checks its files one by one instead of listing the whole destination again.
    async fn stat(&self, path: &str) -> Result<Option<RemoteFile>>;

    /// Files under the job's prefix (paths relative to it) as a stream in path order
    /// ([`super::walk`]), never the whole tree in memory. The first page or folder is read before
    /// this returns (a missing container fails here); a later error is the stream's last item.
    /// Dead temporaries the walk meets are remembered for `clean_up_incomplete`.
    async fn list(&self) -> Result<Holdings>;

    /// Remove what interrupted earlier runs left behind (temporaries); returns how many.
    /// Called after a `list` was read to its end.
    async fn clean_up_incomplete(&self) -> Result<usize> {
        Ok(0)
    }

    /// The stored MD5 of `path` when `list` could not tell it.
    async fn stored_md5(&self, _path: &str) -> Result<Option<[u8; 16]>> {
        Ok(None)
    }

    /// Write the small file `path` (relative to the prefix) whole, only if nothing exists under
    /// that name: `false` when something did (its content is kept). Blob: `If-None-Match: *`;
    /// Files and SFTP: a temporary renamed without replacing. A run's summary, a repository's
    /// config: whichever writer gets there first wins, and the others know it.
    async fn create(&self, path: &str, data: Bytes) -> Result<bool>;

    /// Remove the file `path` (relative to the prefix) and nothing else: `false` when there was
    /// none. What a snapshot repository's prune and lock release stand on.
    async fn delete(&self, path: &str) -> Result<bool>;

    /// Write a file that fits in one chunk, in as few requests as the service allows.
    async fn put_small(&self, path: &str, data: Bytes, meta: &FileMeta) -> Result<()>;

    /// Start a multi-chunk upload of `path`: the source file's `size` and `mtime` name the
    /// version, `chunk_size` how it is cut (both matter when an earlier attempt is resumed).
    async fn start_upload(
        &self,
        path: &str,
        size: u64,
        mtime: i64,
        chunk_size: u64,
    ) -> Result<Arc<dyn Upload>>;

    // --- the worker's own state, in the reserved folder beside the data ---------------------
    // (`<prefix>/.backup-worker/<name>`): run plans, part manifests, part markers, summaries.
    // Small JSON objects, written whole (never visible half-written, like data).

    async fn put_state(&self, name: &str, data: Bytes) -> Result<()>;

    /// Write a state object only if none exists under `name`: `false` when one did (its content
    /// is kept). How a run's summary is written once, by whichever part gets there first.
    async fn create_state(&self, name: &str, data: Bytes) -> Result<bool> {
        self.create(&format!("{RESERVED_DIR}/{name}"), data).await
    }

    /// `None` when there is no such state object.
    async fn get_state(&self, name: &str) -> Result<Option<Bytes>>;

    /// Names of the state objects directly under the folder `dir` (not recursive).
    async fn list_state(&self, dir: &str) -> Result<Vec<String>>;
}

/// A multi-chunk upload in progress. Chunks may be put concurrently and in any order.
///
/// Each upload owns what it stages: no other writer (a duplicate delivery, a retry in another
/// instance) can add to it or publish it, and `commit` publishes only chunks this upload put or
/// verified, so the stored bytes are always the bytes whose MD5 the engine computed.
#[async_trait]
pub trait Upload: Send + Sync {
    /// Chunks an interrupted earlier attempt at this same version may already hold. They are
    /// candidates only: [`Upload::reuse_chunk`] decides, chunk by chunk, once the bytes are read.
    async fn resumable_chunks(&self) -> Result<HashSet<u64>> {
        Ok(HashSet::new())
    }

    /// Whether the staged chunk `index` holds exactly `data` (whose integrity value is `sum`),
    /// so it need not be sent again. A chunk that differs (the source changed with its mtime
    /// kept) is not reused: the caller puts it again.
    async fn reuse_chunk(
        &self,
        _index: u64,
        _offset: u64,
        _data: &Bytes,
        _sum: BodySum,
    ) -> Result<bool> {
        Ok(false)
    }

    /// Chunk `index` holds the file's bytes from `offset`; `sum` goes with the request for the
    /// service to check.
    async fn put_chunk(&self, index: u64, offset: u64, data: Bytes, sum: BodySum) -> Result<()>;
    /// The source file was read whole and `meta` is final; chunks may still be in flight. A
    /// destination records here what no later chunk write changes (Files: the MD5 and times),
    /// so its commit is one request fewer; the commit that follows gets the same `meta`.
    async fn read_whole(&self, _meta: &FileMeta) -> Result<()> {
        Ok(())
    }
    /// Make the file visible under its final name with chunks `0..chunks`.
    async fn commit(&self, chunks: u64, meta: &FileMeta) -> Result<()>;
    /// Stop without publishing, keeping what is staged for a later attempt to verify and reuse
    /// (a deadline hand-back, a retryable failure). Best effort.
    async fn release(&self) {}
    /// Give up: nothing may become visible, nothing is kept. Best effort.
    async fn abort(&self);
}
