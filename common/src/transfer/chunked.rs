//! A file of several chunks: chunks go up concurrently, each inside one of the job's chunk
//! slots, and the file appears at commit. Chunks an interrupted earlier attempt already stored
//! are read (for the file's MD5) but not sent again; near the deadline the file is handed back,
//! its staged chunks kept for the next try.
//!
//! Opening and the first read go beside the upload's start, the end-of-file check beside the
//! last uploads: far away, round trips waited for in a row are a file's slowest steps.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use tokio::task::JoinSet;

use super::budget::ChunkSlot;
use super::digest::FileMd5;
use super::file::{check_stored_md5, FileCopier, Outcome};
use super::progress::Progress;
use super::reader::ResumingReader;
use crate::error::{Error, Result};
use crate::storage::checksum::BodySum;
use crate::storage::{FileMeta, SourceFile, Upload};

/// One chunk read and the slot its bytes are counted in.
type ReadChunk = (Arc<ChunkSlot>, Bytes);

/// A multi-chunk upload under way.
struct Staging {
    upload: Arc<dyn Upload>,
    /// Chunks an earlier attempt left that may be reused if they hold the same bytes.
    resumable: HashSet<u64>,
    in_flight: JoinSet<Result<()>>,
    md5: FileMd5,
    /// The next chunk's index, and the bytes read so far (the next chunk's offset).
    index: u64,
    read: u64,
    resumed: u64,
}

impl FileCopier {
    pub(super) async fn copy_chunked(&self, file: &SourceFile) -> Result<Outcome> {
        let (mut reader, mut staging, first) = self.start_chunked(file).await?;
        let outcome: Result<bool> = async {
            if !self
                .send_chunks(file, &mut reader, &mut staging, first)
                .await?
            {
                return Ok(false);
            }
            self.finish_chunked(file, &mut reader, &mut staging).await?;
            Ok(true)
        }
        .await;
        let upload = staging.upload.as_ref();
        match outcome {
            Ok(true) => Ok(Outcome::Copied {
                bytes: file.size,
                resumed: staging.resumed,
            }),
            Ok(false) => {
                tracing::info!(path = %file.path, staged = staging.read, "deadline near: file handed back mid-way");
                self.stop(upload, true).await;
                Ok(Outcome::HandedBack)
            }
            Err(e) => {
                staging.in_flight.abort_all();
                // What is staged stays for the retry when the failure may pass.
                self.stop(upload, e.is_transient()).await;
                Err(e)
            }
        }
    }

    /// Start the upload (and learn what an earlier attempt staged) beside opening the source
    /// and reading its first chunk.
    async fn start_chunked(
        &self,
        file: &SourceFile,
    ) -> Result<(ResumingReader, Staging, ReadChunk)> {
        let first_want = self.chunk_size.min(file.size as usize);
        let starting = async {
            let upload = self
                .dest
                .start_upload(&file.path, file.size, file.mtime, self.chunk_size as u64)
                .await?;
            let resumable = upload.resumable_chunks().await;
            Ok::<_, Error>((upload, resumable))
        };
        let (first, started) = tokio::join!(self.open_and_read(file, first_want), starting);
        let (upload, resumable) = started?;
        let (first, resumable) = match (first, resumable) {
            (Ok(first), Ok(resumable)) => (first, resumable),
            (Err(e), _) | (_, Err(e)) => {
                self.stop(upload.as_ref(), e.is_transient()).await;
                return Err(e);
            }
        };
        let (reader, slot, chunk) = first;
        let staging = Staging {
            upload,
            resumable,
            in_flight: JoinSet::new(),
            md5: FileMd5::new(),
            index: 0,
            read: 0,
            resumed: 0,
        };
        Ok((reader, staging, (slot, chunk)))
    }

    /// Read and send every chunk; `false` when the deadline came near first (what was sent
    /// is acknowledged by then).
    async fn send_chunks(
        &self,
        file: &SourceFile,
        reader: &mut ResumingReader,
        staging: &mut Staging,
        first: ReadChunk,
    ) -> Result<bool> {
        let mut first = Some(first);
        while staging.read < file.size {
            if self.deadline_near() {
                drain(&mut staging.in_flight).await?;
                return Ok(false);
            }
            let want = (file.size - staging.read).min(self.chunk_size as u64) as usize;
            let (slot, chunk) = match first.take() {
                Some(read) => read,
                None => {
                    let slot = Arc::new(self.take_slot(want as u64).await?);
                    (slot, reader.read_chunk(want).await?)
                }
            };
            if chunk.len() < want {
                return Err(self.changed(file, staging.read + chunk.len() as u64));
            }
            // The file's MD5 goes on beside the upload; the chunk's own request carries its
            // CRC-64 (see `storage::checksum`).
            staging.md5.update(chunk.clone(), slot.clone()).await?;
            let sum = self.chunk_checksum.of(&chunk).await?;
            staging.send(slot, chunk, sum, &self.progress).await?;
        }
        Ok(true)
    }

    /// The end-of-file check, the MD5's last chunk and what the destination records ahead of
    /// its commit go beside the last uploads (far away, each is a round trip); then commit.
    async fn finish_chunked(
        &self,
        file: &SourceFile,
        reader: &mut ResumingReader,
        staging: &mut Staging,
    ) -> Result<()> {
        let md5 = std::mem::take(&mut staging.md5);
        let upload = staging.upload.clone();
        let read = staging.read;
        let finishing = async {
            self.expect_end(file, reader, read).await?;
            let md5 = md5.finish().await?;
            check_stored_md5(file, reader, md5)?;
            let (size, mtime) = (file.size, file.mtime);
            let meta = FileMeta { size, mtime, md5 };
            upload.read_whole(&meta).await?;
            Ok(meta)
        };
        let (meta, ()) = tokio::try_join!(finishing, drain(&mut staging.in_flight))?;
        upload.commit(staging.index, &meta).await
    }
}

impl Staging {
    /// Send the next chunk (or reuse the staged one when it holds exactly these bytes); its
    /// slot is given back once the destination acknowledged it.
    async fn send(
        &mut self,
        slot: Arc<ChunkSlot>,
        chunk: Bytes,
        sum: BodySum,
        progress: &Arc<Progress>,
    ) -> Result<()> {
        let (index, offset, len) = (self.index, self.read, chunk.len() as u64);
        self.index += 1;
        self.read += len;
        if self.resumable.contains(&index)
            && self.upload.reuse_chunk(index, offset, &chunk, sum).await?
        {
            self.resumed += len;
            progress.bytes_acknowledged(len);
            return Ok(());
        }
        let (upload, progress) = (self.upload.clone(), progress.clone());
        self.in_flight.spawn(async move {
            let r = upload.put_chunk(index, offset, chunk, sum).await;
            drop(slot);
            if r.is_ok() {
                progress.bytes_acknowledged(len);
            }
            r
        });
        // Fail fast: stop reading as soon as one chunk failed.
        while let Some(done) = self.in_flight.try_join_next() {
            done.map_err(|e| Error::Internal(e.to_string()))??;
        }
        Ok(())
    }
}

/// Wait for every chunk in flight; the first failure is the answer.
async fn drain(in_flight: &mut JoinSet<Result<()>>) -> Result<()> {
    while let Some(done) = in_flight.join_next().await {
        done.map_err(|e| Error::Internal(e.to_string()))??;
    }
    Ok(())
}
