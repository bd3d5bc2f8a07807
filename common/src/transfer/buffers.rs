//! Chunk buffers used again instead of allocated for every chunk.
//!
//! A chunk's bytes are shared by its request body and the file's MD5 pipeline, and freed by
//! whichever lets go last (often the HTTP client). A new 4 MiB buffer costs a page fault per
//! page it fills, so the bytes are frozen with an owner that hands the buffer back to its job's
//! [`ChunkBuffers`] when the last reference drops, and the job reuses the buffers its
//! `upload_concurrency` slots already bound. The buffers are mapped ([`ChunkBuf::mapped`]):
//! those not kept go back to the system when freed instead of staying in the allocator.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::storage::ChunkBuf;

/// Reads smaller than this are not worth a pooled buffer (the end-of-file probe, small files).
const SMALLEST_POOLED: usize = 256 * 1024;

/// The job's chunk buffers: all of its chunk size, so any idle one serves any read.
pub struct ChunkBuffers {
    size: usize,
    idle: Mutex<Vec<ChunkBuf>>,
    /// Idle buffers kept at most: a job in full flight keeps few idle (each is taken again by
    /// the next read); this bounds what a job winding down holds outside the budget.
    keep: usize,
}

impl ChunkBuffers {
    pub fn new(size: usize, keep: usize) -> Arc<Self> {
        Arc::new(ChunkBuffers {
            size,
            idle: Mutex::new(Vec::new()),
            keep,
        })
    }

    /// An empty buffer with room for `len` bytes: for a chunk (up to the chunk size, at least
    /// [`SMALLEST_POOLED`]) an idle buffer or a new mapped one of the chunk size, else one of
    /// `len` on the heap.
    pub fn take(&self, len: usize) -> ChunkBuf {
        if !self.pools(len) {
            return ChunkBuf::heap(len);
        }
        match self.lock().pop() {
            Some(mut buf) => {
                buf.clear();
                buf
            }
            None => ChunkBuf::mapped(self.size),
        }
    }

    /// Freeze `buf` (from [`ChunkBuffers::take`]) so that its memory comes back here once
    /// every copy of the returned bytes is dropped.
    pub fn freeze(self: &Arc<Self>, buf: ChunkBuf) -> Bytes {
        if !buf.is_mapped() || buf.capacity() != self.size || !self.pools(self.size) {
            return buf.freeze();
        }
        Bytes::from_owner(Recycled {
            data: Some(buf),
            home: self.clone(),
        })
    }

    /// Whether a read of `len` bytes gets a pooled buffer.
    fn pools(&self, len: usize) -> bool {
        (SMALLEST_POOLED..=self.size).contains(&len)
    }

    /// Buffers waiting to be used again.
    pub fn idle(&self) -> usize {
        self.lock().len()
    }

    fn give_back(&self, buf: ChunkBuf) {
        let mut idle = self.lock();
        if idle.len() < self.keep {
            idle.push(buf);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ChunkBuf>> {
        // A panic while holding the lock leaves a plain list of buffers: still usable.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The owner of a frozen chunk's memory.
struct Recycled {
    /// `None` only once handed back.
    data: Option<ChunkBuf>,
    home: Arc<ChunkBuffers>,
}

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        self.data.as_ref().map_or(&[], |buf| buf.as_ref())
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        if let Some(buf) = self.data.take() {
            self.home.give_back(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn a_buffer_comes_back_when_its_last_copy_drops_and_is_used_again() {
        let buffers = ChunkBuffers::new(4 * MIB, 4);
        let mut buf = buffers.take(4 * MIB);
        buf.extend_from_slice(&[7u8; 1000]);
        assert!(buf.is_mapped(), "a chunk's buffer is its own mapping");
        let first = buf.as_ref().as_ptr();
        let bytes = buffers.freeze(buf);
        let copy = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(buffers.idle(), 0, "a slice still holds the memory");
        assert_eq!(copy[0], 7);
        drop(copy);
        assert_eq!(buffers.idle(), 1);
        // A file's shorter last chunk takes the same buffer.
        let mut again = buffers.take(2 * MIB);
        again.extend_from_slice(&[1]);
        assert_eq!(again.as_ref().as_ptr(), first, "the same memory");
        again.clear();
        assert!(again.is_empty(), "handed out empty");
        assert_eq!(again.capacity(), 4 * MIB);
    }

    #[test]
    fn small_reads_are_not_pooled() {
        let buffers = ChunkBuffers::new(4 * MIB, 4);
        let tiny = buffers.take(1);
        assert!(tiny.capacity() < MIB);
        assert!(!tiny.is_mapped(), "small reads stay on the heap");
        drop(buffers.freeze(tiny));
        // A read bigger than the chunk size (not made by the engine) is not pooled either.
        drop(buffers.freeze(buffers.take(8 * MIB)));
        assert_eq!(buffers.idle(), 0);
        drop(buffers.freeze(buffers.take(MIB)));
        assert_eq!(buffers.idle(), 1);
    }

    #[test]
    fn at_most_keep_buffers_stay_idle() {
        let buffers = ChunkBuffers::new(MIB, 2);
        let held: Vec<Bytes> = (0..5).map(|_| buffers.freeze(buffers.take(MIB))).collect();
        drop(held);
        assert_eq!(buffers.idle(), 2);
    }
}
