//! A source file read to its end across broken connections: when a read fails in a way that
//! may pass (a cut link, a stalled read), the file is reopened at the offset already read and
//! the read goes on. Nothing read before is read again, so the MD5 the engine keeps while
//! reading (the integrity value carried across reconnects) stays valid, and a link that drops
//! every few tens of MB still gets a large file through.

use std::sync::Arc;
use std::time::Duration;

use super::budget::ChunkSlots;
use super::buffers::ChunkBuffers;
use super::digest::FileMd5;
use crate::error::Result;
use crate::storage::{ChunkBuf, Source, SourceReader};
use bytes::Bytes;

/// Reopens in a row without a byte of progress before the error is final, and the first pause
/// between them (doubling). A reopen that got further starts the count again: a link that
/// keeps dropping but keeps delivering is used to the end.
const REOPENS: u32 = 6;
const FIRST_PAUSE: Duration = Duration::from_millis(200);

pub struct ResumingReader {
    source: Arc<dyn Source>,
    root: String,
    path: String,
    offset: u64,
    reader: Box<dyn SourceReader>,
    /// Reopens since the read last made progress, and the offset of the last reopen.
    reopens: u32,
    reopened_at: u64,
    /// What the storage said the whole file's MD5 is when it was first opened.
    stored_md5: Option<[u8; 16]>,
    /// Where chunk buffers come from and go back to (else each is allocated).
    buffers: Option<Arc<ChunkBuffers>>,
}

impl ResumingReader {
    pub async fn open(source: Arc<dyn Source>, root: &str, path: &str) -> Result<Self> {
        let reader = source.open(root, path, 0).await?;
        Ok(ResumingReader {
            stored_md5: reader.stored_md5(),
            source,
            root: root.to_string(),
            path: path.to_string(),
            offset: 0,
            reader,
            reopens: 0,
            reopened_at: 0,
            buffers: None,
        })
    }

    /// Read into buffers of `buffers`, handed back there once a chunk is dropped.
    pub fn recycling(mut self, buffers: Arc<ChunkBuffers>) -> Self {
        self.buffers = Some(buffers);
        self
    }

    /// The MD5 the storage holds for this file, if it keeps one (a mirror's Content-MD5).
    pub fn stored_md5(&self) -> Option<[u8; 16]> {
        self.stored_md5
    }

    /// The next `len` bytes, fewer only at end of file. Bytes read before a failure are kept:
    /// the file is reopened where they end.
    pub async fn read_chunk(&mut self, len: usize) -> Result<Bytes> {
        let mut buf = match &self.buffers {
            Some(buffers) => buffers.take(len),
            None => ChunkBuf::heap(len),
        };
        loop {
            let failure = match self.reader.read_into(&mut buf, len).await {
                Ok(()) => {
                    self.offset += buf.len() as u64;
                    return Ok(match &self.buffers {
                        Some(buffers) => buffers.freeze(buf),
                        None => buf.freeze(),
                    });
                }
                Err(e) if e.is_retryable() => e,
                Err(e) => return Err(e),
            };
            let reached = self.offset + buf.len() as u64;
            if reached > self.reopened_at {
                self.reopens = 0;
            }
            if self.reopens >= REOPENS {
                return Err(failure);
            }
            let pause = FIRST_PAUSE * 2u32.pow(self.reopens.min(5));
            self.reopens += 1;
            self.reopened_at = reached;
            tracing::info!(path = %self.path, offset = reached, error = %failure, "read failed; reopening at the same offset");
            tokio::time::sleep(pause).await;
            if let Ok(reader) = self.source.open(&self.root, &self.path, reached).await {
                self.reader = reader;
            }
        }
    }
}

/// What reading a whole file told.
pub struct ReadDigest {
    pub md5: [u8; 16],
    pub len: u64,
    /// The MD5 the storage keeps for the file, if any (to compare with `md5`).
    pub stored: Option<[u8; 16]>,
}

/// Read `root/path` to its end, `chunk_size` bytes at a time, each chunk inside one slot of
/// `slots` (the job's memory), and hash it.
pub async fn read_md5(
    source: &Arc<dyn Source>,
    root: &str,
    path: &str,
    chunk_size: usize,
    slots: &ChunkSlots,
) -> Result<ReadDigest> {
    let mut reader = ResumingReader::open(source.clone(), root, path)
        .await?
        .recycling(slots.buffers());
    let mut md5 = FileMd5::new();
    let mut len = 0;
    loop {
        let slot = slots.take(chunk_size as u64).await?;
        let chunk = reader.read_chunk(chunk_size).await?;
        if chunk.is_empty() {
            break;
        }
        len += chunk.len() as u64;
        md5.update(chunk, slot).await?;
    }
    Ok(ReadDigest {
        md5: md5.finish().await?,
        len,
        stored: reader.stored_md5(),
    })
}
