//! A file's MD5, computed once over its bytes as they are read, off the async threads.
//!
//! MD5 is the costliest thing done to each byte and strictly sequential within a file. Each
//! chunk is hashed on a blocking thread while the next chunk is read (a pipeline one chunk
//! deep), so on two cores the hash of one chunk runs beside the SSH decryption of the next
//! instead of after it. Whatever the chunk's memory is accounted by stays held until it is
//! hashed, so the memory budget still covers every byte in memory.

use bytes::Bytes;
use md5_simd::Md5;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// Below this, hashing inline costs less than handing the bytes to another thread.
const INLINE_BELOW: usize = 256 * 1024;

#[derive(Default)]
pub struct FileMd5 {
    /// The state when no chunk is being hashed.
    idle: Option<Md5>,
    /// The chunk being hashed; its result is the state after it.
    pending: Option<JoinHandle<Md5>>,
}

impl FileMd5 {
    pub fn new() -> FileMd5 {
        FileMd5::default()
    }

    /// Hash `chunk` after every chunk given before it. `hold` (the chunk's memory slot) is
    /// dropped once the chunk is hashed.
    pub async fn update<H: Send + 'static>(&mut self, chunk: Bytes, hold: H) -> Result<()> {
        let mut md5 = self.settle().await?;
        if chunk.len() < INLINE_BELOW {
            md5.update(&chunk);
            self.idle = Some(md5);
            return Ok(());
        }
        self.pending = Some(tokio::task::spawn_blocking(move || {
            md5.update(&chunk);
            drop(hold);
            md5
        }));
        Ok(())
    }

    /// The MD5 of every chunk given, in order.
    pub async fn finish(mut self) -> Result<[u8; 16]> {
        Ok(self.settle().await?.finalize())
    }

    /// Wait for the chunk being hashed; the state after it.
    async fn settle(&mut self) -> Result<Md5> {
        match self.pending.take() {
            Some(hashing) => hashing
                .await
                .map_err(|e| Error::Internal(format!("hashing a chunk failed: {e}"))),
            None => Ok(self.idle.take().unwrap_or_default()),
        }
    }
}

/// The MD5 of `data` (a whole small file), off the async threads when it is big enough to matter.
pub async fn md5_of(data: Bytes) -> Result<[u8; 16]> {
    let mut md5 = FileMd5::new();
    md5.update(data, ()).await?;
    md5.finish().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest as _;

    /// RustCrypto's MD5, another implementation, is the judge.
    fn judged(data: &[u8]) -> [u8; 16] {
        md5::Md5::digest(data).into()
    }

    #[test]
    fn the_workers_md5_agrees_with_another_implementation_at_every_block_boundary() {
        let data: Vec<u8> = (0..70_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        // Every length around the 64-byte block and the 56-byte padding edge, and longer ones.
        let lengths = (0..=200).chain([4095, 4096, 4097, 65_535, 65_536, 70_000]);
        for len in lengths {
            assert_eq!(
                md5_simd::digest(&data[..len]),
                judged(&data[..len]),
                "length {len}"
            );
        }
        // Fed in uneven pieces, as chunks of a file arrive.
        let mut md5 = Md5::new();
        for piece in data.chunks(1_021) {
            md5.update(piece);
        }
        assert_eq!(md5.finalize(), judged(&data));
    }

    #[tokio::test]
    async fn chunks_hashed_in_pipeline_give_the_whole_files_md5() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = judged(&data);
        let mut md5 = FileMd5::new();
        // Small and large pieces, so both the inline and the blocking paths run, in order.
        for piece in [
            &data[..10],
            &data[10..1_000_000],
            &data[1_000_000..1_000_100],
        ] {
            md5.update(Bytes::copy_from_slice(piece), ()).await.unwrap();
        }
        md5.update(Bytes::copy_from_slice(&data[1_000_100..]), ())
            .await
            .unwrap();
        assert_eq!(md5.finish().await.unwrap(), whole);
        assert_eq!(md5_of(Bytes::from(data)).await.unwrap(), whole);
    }
}
