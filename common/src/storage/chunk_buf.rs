//! The buffer a [`SourceReader`](super::SourceReader) reads a file's bytes into.
//!
//! A chunk-sized buffer can be its own anonymous memory mapping ([`ChunkBuf::mapped`]), so its
//! memory goes back to the system the moment it is freed. From the allocator it would not:
//! after the first 4 MiB buffer is freed, glibc raises its mmap threshold and serves the next
//! ones from per-thread arenas, which keep what is freed into them. Measured on the 4 GiB set
//! into Files (64 MiB of chunks held at the peak): 99–115 MiB peak RSS from the allocator,
//! 87 MiB mapped, the same ~22 MiB beside the chunks as on the 1 GiB set. Other reads (small
//! files, the end-of-file probe) stay on the heap.

use std::io;

use bytes::Bytes;
use memmap2::MmapMut;
use tokio::io::{AsyncRead, AsyncReadExt};

pub struct ChunkBuf {
    memory: Memory,
}

enum Memory {
    /// Filled up to the vector's length.
    Heap(Vec<u8>),
    /// Filled up to `len`; the rest is room (untouched zero pages, or an earlier chunk's bytes
    /// once the buffer is used again).
    Mapped { map: MmapMut, len: usize },
}

impl ChunkBuf {
    /// An empty buffer on the heap with room for `capacity` bytes.
    pub fn heap(capacity: usize) -> Self {
        ChunkBuf {
            memory: Memory::Heap(Vec::with_capacity(capacity)),
        }
    }

    /// An empty buffer of its own mapping of `capacity` bytes (on the heap if the system
    /// refuses the mapping: the read goes on, only the memory's return is lost).
    pub fn mapped(capacity: usize) -> Self {
        match MmapMut::map_anon(capacity.max(1)) {
            Ok(map) => ChunkBuf {
                memory: Memory::Mapped { map, len: 0 },
            },
            Err(e) => {
                tracing::debug!(error = %e, capacity, "anonymous mapping refused; heap buffer");
                ChunkBuf::heap(capacity)
            }
        }
    }

    pub fn len(&self) -> usize {
        match &self.memory {
            Memory::Heap(vec) => vec.len(),
            Memory::Mapped { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        match &self.memory {
            Memory::Heap(vec) => vec.capacity(),
            Memory::Mapped { map, .. } => map.len(),
        }
    }

    pub fn is_mapped(&self) -> bool {
        matches!(self.memory, Memory::Mapped { .. })
    }

    /// Empty it, keeping its memory.
    pub fn clear(&mut self) {
        match &mut self.memory {
            Memory::Heap(vec) => vec.clear(),
            Memory::Mapped { len, .. } => *len = 0,
        }
    }

    /// Append `data`. A mapping too small for it moves to the heap (a storage that sent more
    /// than was asked for is the caller's error to report, not a crash here).
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        self.make_room(data.len());
        match &mut self.memory {
            Memory::Heap(vec) => vec.extend_from_slice(data),
            Memory::Mapped { map, len } => {
                map[*len..*len + data.len()].copy_from_slice(data);
                *len += data.len();
            }
        }
    }

    /// One read of at most `max` bytes from `reader`, appended; 0 at the end of its data.
    pub async fn read_from<R>(&mut self, reader: &mut R, max: usize) -> io::Result<usize>
    where
        R: AsyncRead + Unpin + ?Sized,
    {
        self.make_room(max);
        match &mut self.memory {
            Memory::Heap(vec) => reader.take(max as u64).read_buf(vec).await,
            Memory::Mapped { map, len } => {
                let n = reader.read(&mut map[*len..*len + max]).await?;
                *len += n;
                Ok(n)
            }
        }
    }

    /// Bytes that own this buffer's memory (no copy).
    pub fn freeze(self) -> Bytes {
        match self.memory {
            Memory::Heap(vec) => Bytes::from(vec),
            Memory::Mapped { .. } => Bytes::from_owner(self),
        }
    }

    /// Make sure `more` bytes fit after the ones held.
    fn make_room(&mut self, more: usize) {
        match &mut self.memory {
            Memory::Heap(vec) => vec.reserve(more),
            Memory::Mapped { map, len } if map.len() - *len < more => {
                let mut vec = Vec::with_capacity(*len + more);
                vec.extend_from_slice(&map[..*len]);
                self.memory = Memory::Heap(vec);
            }
            Memory::Mapped { .. } => {}
        }
    }
}

impl AsRef<[u8]> for ChunkBuf {
    fn as_ref(&self) -> &[u8] {
        match &self.memory {
            Memory::Heap(vec) => vec,
            Memory::Mapped { map, len } => &map[..*len],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_and_appends_land_in_order_in_either_memory() {
        for mut buf in [ChunkBuf::heap(8), ChunkBuf::mapped(8)] {
            let mut source: &[u8] = b"abcdefgh";
            assert_eq!(buf.read_from(&mut source, 3).await.unwrap(), 3);
            buf.extend_from_slice(b"XY");
            assert_eq!(buf.read_from(&mut source, 10).await.unwrap(), 5);
            assert_eq!(
                buf.read_from(&mut source, 10).await.unwrap(),
                0,
                "end of data"
            );
            assert_eq!(buf.as_ref(), b"abcXYdefgh");
            let bytes = buf.freeze();
            assert_eq!(&bytes[..], b"abcXYdefgh");
        }
    }

    #[tokio::test]
    async fn a_mapping_outgrown_moves_to_the_heap_with_its_bytes() {
        let mut buf = ChunkBuf::mapped(4);
        buf.extend_from_slice(b"abc");
        assert!(buf.is_mapped());
        buf.extend_from_slice(b"defg");
        assert!(!buf.is_mapped());
        assert_eq!(buf.as_ref(), b"abcdefg");
        buf.clear();
        assert!(buf.is_empty());
        assert!(buf.capacity() >= 7, "cleared, memory kept");
    }

    #[test]
    fn a_mapped_buffer_is_its_own_mapping_and_cleared_keeps_it() {
        let mut buf = ChunkBuf::mapped(1 << 20);
        assert!(buf.is_mapped());
        assert_eq!(buf.capacity(), 1 << 20);
        buf.extend_from_slice(&[1; 1000]);
        let at = buf.as_ref().as_ptr();
        buf.clear();
        buf.extend_from_slice(&[2; 10]);
        assert_eq!(buf.as_ref().as_ptr(), at);
        assert_eq!(buf.as_ref(), &[2; 10]);
    }
}
