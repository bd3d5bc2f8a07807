//! One file's copy: retried when its error may pass, compared by hash when asked, sent whole
//! when it fits in one chunk (the rest is `chunked`), and checked at its end against what the
//! source says now.

use std::sync::Arc;

use super::budget::{self, ChunkSlots};
use super::decide::Decision;
use super::progress::Progress;
use super::reader::{self, ResumingReader};
use super::{digest, CopyPlan, Deadline};
use crate::error::{Error, Result};
use crate::storage::checksum::ChunkChecksum;
use crate::storage::{Destination, FileMeta, RemoteFile, Source, SourceFile, Upload};

/// How many times a file is tried when its error is retryable (network, 5xx, changed source).
const FILE_ATTEMPTS: usize = 2;

pub(super) enum Outcome {
    Copied {
        bytes: u64,
        resumed: u64,
    },
    Unchanged(u64),
    /// Stopped before the deadline; the file goes back on the queue.
    HandedBack,
}

/// Bytes that come with a stored MD5 (a mirror being restored) must match it before they are
/// committed: a damaged or tampered copy never replaces a good file.
pub(super) fn check_stored_md5(
    file: &SourceFile,
    reader: &ResumingReader,
    read: [u8; 16],
) -> Result<()> {
    match file.md5.or(reader.stored_md5()) {
        Some(stored) if stored != read => Err(Error::HashMismatch {
            path: file.path.clone(),
            stored: hex::encode(stored),
            read: hex::encode(read),
        }),
        _ => Ok(()),
    }
}

pub(super) struct FileCopier {
    pub(super) source: Arc<dyn Source>,
    pub(super) dest: Arc<dyn Destination>,
    pub(super) root: String,
    pub(super) chunk_size: usize,
    pub(super) max_stream_size: u64,
    /// One slot = one chunk in memory (the job's share of the process budget).
    pub(super) budget: ChunkSlots,
    pub(super) progress: Arc<Progress>,
    pub(super) deadline: Option<Deadline>,
    pub(super) chunk_checksum: ChunkChecksum,
}

impl FileCopier {
    pub(super) fn new(plan: &CopyPlan<'_>) -> Self {
        let chunk_size = plan.options.chunk_size.bytes() as usize;
        FileCopier {
            source: plan.source.clone(),
            dest: plan.dest.clone(),
            root: plan.root.to_string(),
            chunk_size,
            max_stream_size: plan.options.max_stream_size.bytes(),
            budget: ChunkSlots::new(
                plan.options.upload_concurrency,
                chunk_size,
                plan.memory.clone(),
            ),
            progress: plan.progress.clone(),
            deadline: plan.deadline,
            chunk_checksum: plan.dest.capability().chunk_checksum,
        }
    }

    pub(super) async fn copy_with_retry(
        &self,
        file: &SourceFile,
        remote: Option<&RemoteFile>,
        decision: Decision,
    ) -> Result<Outcome> {
        let mut attempt = 1;
        loop {
            match self.copy(file, remote, decision).await {
                Err(e) if e.is_retryable() && attempt < FILE_ATTEMPTS => {
                    tracing::info!(path = %file.path, code = e.code(), attempt, "retrying file");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn copy(
        &self,
        file: &SourceFile,
        remote: Option<&RemoteFile>,
        decision: Decision,
    ) -> Result<Outcome> {
        if file.size > self.max_stream_size {
            return Err(Error::TooLarge {
                path: file.path.clone(),
                limit: self.max_stream_size,
            });
        }
        if decision == Decision::CompareHashes {
            if let Some(r) = remote {
                let stored = match r.md5 {
                    Some(md5) => Some(md5),
                    None => self.dest.stored_md5(&file.path).await?,
                };
                if let Some(stored) = stored {
                    if self.hash_source(file).await? == stored {
                        return Ok(Outcome::Unchanged(file.size));
                    }
                }
            }
        }
        if file.size <= self.chunk_size as u64 {
            let mut reader = self.open(file).await?;
            self.copy_small(file, &mut reader).await
        } else {
            self.copy_chunked(file).await
        }
    }

    async fn open(&self, file: &SourceFile) -> Result<ResumingReader> {
        Ok(
            ResumingReader::open(self.source.clone(), &self.root, &file.path)
                .await?
                .recycling(self.budget.buffers()),
        )
    }

    /// Open `file` and read its first chunk (`want` bytes) inside a slot.
    pub(super) async fn open_and_read(
        &self,
        file: &SourceFile,
        want: usize,
    ) -> Result<(ResumingReader, Arc<budget::ChunkSlot>, bytes::Bytes)> {
        let slot = Arc::new(self.take_slot(want as u64).await?);
        let mut reader = self.open(file).await?;
        let chunk = reader.read_chunk(want).await?;
        Ok((reader, slot, chunk))
    }

    pub(super) async fn take_slot(&self, bytes: u64) -> Result<budget::ChunkSlot> {
        self.budget.take(bytes).await
    }

    /// A file that fits in one chunk: one read, one request.
    async fn copy_small(&self, file: &SourceFile, reader: &mut ResumingReader) -> Result<Outcome> {
        let _slot = self.take_slot(file.size).await?;
        let data = reader.read_chunk(file.size as usize).await?;
        self.expect_end(file, reader, data.len() as u64).await?;
        let meta = FileMeta {
            size: file.size,
            mtime: file.mtime,
            md5: digest::md5_of(data.clone()).await?,
        };
        check_stored_md5(file, reader, meta.md5)?;
        self.dest.put_small(&file.path, data, &meta).await?;
        self.progress.bytes_acknowledged(file.size);
        Ok(Outcome::Copied {
            bytes: file.size,
            resumed: 0,
        })
    }

    /// End an upload without publishing it: keep its staged chunks for a later attempt when
    /// `keep` and the destination can resume, else remove them.
    pub(super) async fn stop(&self, upload: &dyn Upload, keep: bool) {
        if keep && self.dest.capability().resumable_staging {
            upload.release().await;
        } else {
            upload.abort().await;
        }
    }

    pub(super) fn deadline_near(&self) -> bool {
        self.deadline.is_some_and(|d| d.is_near())
    }

    /// After reading the listed size, the file must be at its end: a file that grew while it
    /// was copied is not committed (it will be copied whole next run).
    pub(super) async fn expect_end(
        &self,
        file: &SourceFile,
        reader: &mut ResumingReader,
        read: u64,
    ) -> Result<()> {
        if read != file.size {
            return Err(self.changed(file, read));
        }
        // Both at once: on a far link each is a round trip.
        let (more, now) = tokio::join!(
            reader.read_chunk(1),
            self.source.stat(&self.root, &file.path)
        );
        let more = more?;
        if !more.is_empty() {
            return Err(self.changed(file, read + more.len() as u64));
        }
        // Rewritten in place (same size) while it was read: its mtime tells.
        match now? {
            Some((size, mtime)) if size == file.size && mtime == file.mtime => Ok(()),
            Some((size, _)) => Err(self.changed(file, size)),
            None => Err(self.changed(file, 0)),
        }
    }

    pub(super) fn changed(&self, file: &SourceFile, actual: u64) -> Error {
        Error::SourceChanged {
            path: file.path.clone(),
            expected: file.size,
            actual,
        }
    }

    /// MD5 of the source file: computed by the source where it lives if it can, else read
    /// chunk by chunk inside the budget.
    async fn hash_source(&self, file: &SourceFile) -> Result<[u8; 16]> {
        if let Some(md5) = self.source.remote_md5(&self.root, &file.path).await? {
            return Ok(md5);
        }
        let read = reader::read_md5(
            &self.source,
            &self.root,
            &file.path,
            self.chunk_size,
            &self.budget,
        )
        .await?;
        Ok(read.md5)
    }
}
