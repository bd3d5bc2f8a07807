//! The files a snapshot archives, as `rustic_core` reads them: a [`ReadSource`] over any
//! [`Source`] (SFTP), each file streamed chunk by chunk from the source without a local copy.
//!
//! The archiver wants entries in sorted path order; the walk is not sorted, so the listing is
//! collected and sorted first (paths and sizes only: about 100 bytes a file).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use rustic_core::repofile::{Metadata, Node, NodeType};
use rustic_core::{
    ErrorKind, ReadSource, ReadSourceEntry, ReadSourceOpen, RusticError, RusticResult,
};
use tokio::runtime::Handle;

use crate::storage::{join, Source, SourceFile};
use crate::transfer::reader::ResumingReader;

/// The files of one job's source, sorted, ready to archive.
pub struct SourceTree {
    source: Arc<dyn Source>,
    /// The source path the job names (`/srv/data`): the snapshot's path.
    root: String,
    files: Vec<SourceFile>,
    runtime: Handle,
    /// Bytes asked of the source per read: what one file holds in memory at a time.
    read_size: usize,
}

impl SourceTree {
    pub fn new(
        source: Arc<dyn Source>,
        root: &str,
        mut files: Vec<SourceFile>,
        runtime: Handle,
        read_size: usize,
    ) -> Self {
        // Component-wise, as the archiver builds trees (`a/b` before `a-c`).
        files.sort_by(|a, b| Path::new(&a.path).cmp(Path::new(&b.path)));
        SourceTree {
            source,
            root: root.to_string(),
            files,
            runtime,
            read_size,
        }
    }

    pub fn root(&self) -> PathBuf {
        PathBuf::from(&self.root)
    }

    fn entry(&self, file: &SourceFile) -> RusticResult<ReadSourceEntry<OpenFile>> {
        let path = PathBuf::from(join(&self.root, &file.path));
        let name = path.file_name().ok_or_else(|| {
            RusticError::new(ErrorKind::InvalidInput, "`{path}` has no file name")
                .attach_context("path", file.path.clone())
        })?;
        let meta = Metadata {
            size: file.size,
            mtime: rustic_core::jiff::Timestamp::from_second(file.mtime).ok(),
            mode: Some(0o100_644),
            ..Metadata::default()
        };
        let node = Node::new_node(name, NodeType::File, meta);
        let open = OpenFile {
            source: self.source.clone(),
            root: self.root.clone(),
            path: file.path.clone(),
            runtime: self.runtime.clone(),
            read_size: self.read_size,
        };
        Ok(ReadSourceEntry {
            path,
            node,
            open: Some(open),
        })
    }
}

impl ReadSource for SourceTree {
    type Open = OpenFile;
    type Iter = std::vec::IntoIter<RusticResult<ReadSourceEntry<OpenFile>>>;

    fn size(&self) -> RusticResult<Option<u64>> {
        Ok(Some(self.files.iter().map(|f| f.size).sum()))
    }

    fn entries(&self) -> Self::Iter {
        let entries: Vec<_> = self.files.iter().map(|f| self.entry(f)).collect();
        entries.into_iter()
    }
}

/// How to open one file when the archiver gets to it.
pub struct OpenFile {
    source: Arc<dyn Source>,
    root: String,
    path: String,
    runtime: Handle,
    read_size: usize,
}

impl ReadSourceOpen for OpenFile {
    type Reader = StreamingFile;

    fn open(self) -> RusticResult<StreamingFile> {
        let opened = ResumingReader::open(self.source, &self.root, &self.path);
        let reader = self.runtime.block_on(opened).map_err(|e| {
            RusticError::with_source(ErrorKind::InputOutput, "cannot open `{path}`", e)
                .attach_context("path", self.path.clone())
        })?;
        Ok(StreamingFile {
            reader,
            buf: Bytes::new(),
            runtime: self.runtime,
            read_size: self.read_size,
        })
    }
}

/// A source file as a blocking [`Read`]: one chunk fetched at a time, on the job's runtime,
/// continued at the same offset when the link breaks under it.
pub struct StreamingFile {
    reader: ResumingReader,
    buf: Bytes,
    runtime: Handle,
    read_size: usize,
}

impl Read for StreamingFile {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.buf.is_empty() {
            self.buf = self
                .runtime
                .block_on(self.reader.read_chunk(self.read_size))
                .map_err(std::io::Error::other)?;
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf.advance(n);
        Ok(n)
    }
}
