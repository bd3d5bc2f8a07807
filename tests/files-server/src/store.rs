//! The server's in-memory state: shares holding a tree of directories and files.
//! Names are case-insensitive but keep their case, as on Azure Files.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The unit a file's bytes are stored in (Put Range's largest range).
pub const BLOCK: u64 = 4 * 1024 * 1024;

/// Nanoseconds since the Unix epoch.
pub type Nanos = i128;

pub fn now() -> Nanos {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

static COUNTER: AtomicU64 = AtomicU64::new(1);

pub fn next_id() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

pub fn new_etag() -> String {
    format!("\"0x8DC{:011X}\"", next_id())
}

#[derive(Debug, Clone)]
pub struct Props {
    /// Full path with its original case.
    pub name: String,
    pub file_id: u64,
    pub created: Nanos,
    pub last_write: Nanos,
    pub changed: Nanos,
    pub last_modified: SystemTime,
    pub etag: String,
    pub metadata: Vec<(String, String)>,
}

impl Props {
    pub fn new(name: &str, metadata: Vec<(String, String)>) -> Self {
        let t = now();
        Props {
            name: name.to_string(),
            file_id: next_id(),
            created: t,
            last_write: t,
            changed: t,
            last_modified: SystemTime::now(),
            etag: new_etag(),
            metadata,
        }
    }

    pub fn touch(&mut self) {
        self.changed = now();
        self.last_modified = SystemTime::now();
        self.etag = new_etag();
    }
}

/// The standard HTTP properties of a file, replaced as a group by Set File Properties.
#[derive(Debug, Clone, Default)]
pub struct HttpHeaders {
    pub content_type: Option<String>,
    pub content_md5: Option<Vec<u8>>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
}

#[derive(Debug, Clone)]
pub struct File {
    pub props: Props,
    pub http: HttpHeaders,
    /// The file's length; bytes never written read as zeros (files are created zero-filled
    /// at their final size, so they are stored sparse).
    pub len: u64,
    /// Written bytes in blocks of up to [`BLOCK`] by block index, each as long as the furthest
    /// byte written into it: a write fills only the blocks it touches, so a file costs what was
    /// written (a small file, its size), at any offset, and growing copies at most one block.
    /// Private: read it with [`File::read`], [`File::written_end`].
    pub(crate) data: BTreeMap<u64, Vec<u8>>,
    /// Ranges written by Put Range (inclusive, sorted, merged), for List Ranges.
    pub ranges: Vec<(u64, u64)>,
}

impl File {
    /// An empty file of `len` bytes (all zeros until written).
    pub fn new(props: Props, len: u64) -> Self {
        File {
            props,
            http: HttpHeaders::default(),
            len,
            data: BTreeMap::new(),
            ranges: Vec::new(),
        }
    }

    pub fn read(&self, start: u64, end_inclusive: u64) -> Vec<u8> {
        let mut out = vec![0u8; (end_inclusive + 1 - start) as usize];
        for (at, block, part) in spans(start, out.len()) {
            if let Some(data) = self.data.get(&block) {
                // Past the block's length: never written, zeros.
                let have = part.start.min(data.len())..part.end.min(data.len());
                let from = (at - start) as usize;
                out[from..from + have.len()].copy_from_slice(&data[have]);
            }
        }
        out
    }

    /// Record `start..=end` as written (or, with `clear`, as cleared).
    pub fn mark(&mut self, start: u64, end: u64, clear: bool) {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for &(s, e) in &self.ranges {
            if e < start || s > end {
                out.push((s, e));
            } else {
                if s < start {
                    out.push((s, start - 1));
                }
                if e > end {
                    out.push((end + 1, e));
                }
            }
        }
        if !clear {
            out.push((start, end));
        }
        out.sort();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (s, e) in out {
            match merged.last_mut() {
                Some(last) if s <= last.1 + 1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.ranges = merged;
    }

    /// Where the written bytes end (0: none written).
    pub fn written_end(&self) -> u64 {
        self.ranges.last().map_or(0, |&(_, end)| end + 1)
    }

    pub fn write(&mut self, start: u64, bytes: &[u8]) {
        let mut from = 0;
        for (_, block, part) in spans(start, bytes.len()) {
            let len = part.len();
            let data = self.data.entry(block).or_default();
            if data.len() < part.end {
                data.resize(part.end, 0);
            }
            data[part].copy_from_slice(&bytes[from..from + len]);
            from += len;
        }
    }

    pub fn resize(&mut self, len: u64) {
        if len < self.len {
            self.mark(len, self.len.max(len + 1) - 1, true);
            // What lay past the new end reads as zeros if the file grows again.
            self.data.retain(|&block, _| block * BLOCK < len);
            if let Some(last) = self.data.get_mut(&(len / BLOCK)) {
                last.truncate((len % BLOCK) as usize);
            }
        }
        self.len = len;
    }
}

/// The pieces of `start..start + len`, one a block: where each starts, its block, and the
/// range of it inside that block.
fn spans(start: u64, len: usize) -> impl Iterator<Item = (u64, u64, std::ops::Range<usize>)> {
    let end = start + len as u64;
    let mut at = start;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let (block, offset) = (at / BLOCK, (at % BLOCK) as usize);
        let take = ((BLOCK - offset as u64).min(end - at)) as usize;
        let span = (at, block, offset..offset + take);
        at += take as u64;
        Some(span)
    })
}

#[derive(Debug, Clone)]
pub enum Node {
    Dir(Props),
    File(Box<File>),
}

impl Node {
    pub fn props(&self) -> &Props {
        match self {
            Node::Dir(p) => p,
            Node::File(f) => &f.props,
        }
    }
}

#[derive(Debug)]
pub struct Share {
    pub created: SystemTime,
    pub etag: String,
    pub quota_gib: u64,
    pub metadata: Vec<(String, String)>,
    /// Keyed by lower-cased full path ("dir/sub/file"); the share root is implicit.
    pub nodes: BTreeMap<String, Node>,
}

impl Share {
    pub fn new(quota_gib: u64, metadata: Vec<(String, String)>) -> Self {
        Share {
            created: SystemTime::now(),
            etag: new_etag(),
            quota_gib,
            metadata,
            nodes: BTreeMap::new(),
        }
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(&key(path))
    }

    pub fn get_mut(&mut self, path: &str) -> Option<&mut Node> {
        self.nodes.get_mut(&key(path))
    }

    pub fn is_dir(&self, path: &str) -> bool {
        path.is_empty() || matches!(self.get(path), Some(Node::Dir(_)))
    }

    /// Children of a directory, in name order.
    pub fn children(&self, dir: &str) -> Vec<&Node> {
        let k = key(dir);
        let prefix = if k.is_empty() {
            String::new()
        } else {
            format!("{k}/")
        };
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| !p[prefix.len()..].contains('/'))
            .map(|(_, n)| n)
            .collect()
    }

    pub fn usage(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| match n {
                Node::File(f) => f.len,
                Node::Dir(_) => 0,
            })
            .sum()
    }
}

pub fn key(path: &str) -> String {
    path.to_lowercase()
}

pub fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}

pub fn base_name(path: &str) -> &str {
    path.rsplit_once('/').map(|(_, n)| n).unwrap_or(path)
}

#[derive(Debug, Default)]
pub struct Store {
    pub shares: HashMap<String, Share>,
}

impl File {
    /// The whole content, zeros included.
    pub fn read_all(&self) -> Vec<u8> {
        if self.len == 0 {
            Vec::new()
        } else {
            self.read(0, self.len - 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(len: u64) -> File {
        File::new(Props::new("f", Vec::new()), len)
    }

    #[test]
    fn writes_across_blocks_read_back_with_zeros_where_nothing_was_written() {
        let mut f = file(3 * BLOCK);
        // Across the first block boundary, then one at the far end, last first.
        f.write(3 * BLOCK - 2, b"yz");
        f.write(BLOCK - 3, b"abcdef");
        assert_eq!(f.read(BLOCK - 4, BLOCK + 3), b"\0abcdef\0");
        assert_eq!(f.read(3 * BLOCK - 3, 3 * BLOCK - 1), b"\0yz");
        assert_eq!(f.data.len(), 3, "only the blocks written to are stored");
        assert_eq!(
            f.data[&2].len() as u64,
            BLOCK,
            "a block as long as what was written in it"
        );
        let mut small = file(16 * 1024);
        small.write(0, &[7; 16 * 1024]);
        assert_eq!(
            small.data[&0].len(),
            16 * 1024,
            "a small file costs its size"
        );
        assert_eq!(f.read(2 * BLOCK, 2 * BLOCK + 1), b"\0\0");
    }

    #[test]
    fn a_shrunk_file_grown_again_reads_zeros_past_the_old_end() {
        let mut f = file(2 * BLOCK);
        f.write(BLOCK - 2, b"abcd");
        f.resize(BLOCK - 1);
        assert_eq!(f.data.len(), 1, "the block past the end is dropped");
        f.resize(2 * BLOCK);
        assert_eq!(f.read(BLOCK - 2, BLOCK + 1), b"a\0\0\0");
        assert_eq!(f.read_all().len() as u64, 2 * BLOCK);
    }
}
