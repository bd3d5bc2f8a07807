//! Destinations: where files are written. Azure Blob today; Azure Files next.
//!
//! The contract every destination keeps: **nothing is visible under a file's final name before
//! `commit`** (Blob: uncommitted blocks, then Put Block List). A destination knows nothing about
//! where the bytes come from.

pub mod blob;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;

/// What a destination already holds for a path: used by incremental runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub size: u64,
    /// The source's mtime recorded at upload, if the object has it.
    pub source_mtime: Option<i64>,
    pub md5: Option<[u8; 16]>,
}

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

    /// Test Connection's checks, cheapest first: reach, authenticate, the container exists,
    /// listing is allowed, writing is allowed (without leaving anything visible).
    async fn check(&self) -> Result<()>;

    /// Files under the job's prefix, keyed by path relative to the prefix.
    async fn list(&self) -> Result<HashMap<String, RemoteFile>>;

    /// Write a file that fits in one chunk, in one request.
    async fn put_small(&self, path: &str, data: Bytes, meta: &FileMeta) -> Result<()>;

    /// Start a multi-chunk upload of `path`.
    async fn start_upload(&self, path: &str) -> Result<Arc<dyn Upload>>;
}

/// A multi-chunk upload in progress. Chunks may be put concurrently and in any order.
#[async_trait]
pub trait Upload: Send + Sync {
    async fn put_chunk(&self, index: u64, data: Bytes, md5: [u8; 16]) -> Result<()>;
    /// Make the file visible under its final name with chunks `0..chunks`.
    async fn commit(&self, chunks: u64, meta: &FileMeta) -> Result<()>;
    /// Give up: nothing may become visible. Best effort.
    async fn abort(&self);
}
