//! The files a snapshot archives, as `rustic_core` reads them: a [`ReadSource`] over any
//! [`Source`] (SFTP), each file streamed chunk by chunk from the source without a local copy.
//!
//! The archiver wants entries in sorted path order; the walk is not sorted, so the listing is
//! collected and sorted first (paths and sizes only: about 100 bytes a file).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes};
use rustic_core::repofile::{Metadata, Node, NodeType};
use rustic_core::{
    ErrorKind, ReadSource, ReadSourceEntry, ReadSourceOpen, RusticError, RusticResult,
};
use tokio::runtime::Handle;

use crate::error::Error;
use crate::storage::{join, Source, SourceFile};
use crate::transfer::reader::ResumingReader;
use crate::transfer::Deadline;

/// The files of one job's source, sorted, ready to archive.
pub struct SourceTree {
    files: Arc<Vec<SourceFile>>,
    opener: Opener,
    /// When set, no file is handed to the archiver once it comes near; the rest is
    /// [`SourceTree::left_over`], for the next invocation.
    deadline: Option<Deadline>,
    /// How many files the archiver was given.
    taken: Arc<AtomicUsize>,
    failures: Failures,
}

/// Files that could not be read, with why: the archiver leaves such a file out of the snapshot
/// and only logs it, so they are collected here for the job to report, one error each.
type Failures = Arc<Mutex<Vec<(String, Error)>>>;

/// What every entry needs to open its file.
#[derive(Clone)]
struct Opener {
    source: Arc<dyn Source>,
    /// The source path the job names (`/srv/data`): the snapshot's path.
    root: String,
    runtime: Handle,
    /// Bytes asked of the source per read: what one file holds in memory at a time.
    read_size: usize,
    failures: Failures,
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
        let failures = Failures::default();
        SourceTree {
            files: Arc::new(files),
            opener: Opener {
                source,
                root: root.to_string(),
                runtime,
                read_size,
                failures: failures.clone(),
            },
            deadline: None,
            taken: Arc::default(),
            failures,
        }
    }

    /// Stop handing files to the archiver when `deadline` comes near (after the first: the
    /// caller does not start when it is near already).
    pub fn until(mut self, deadline: Option<Deadline>) -> Self {
        self.deadline = deadline;
        self
    }

    pub fn root(&self) -> PathBuf {
        PathBuf::from(&self.opener.root)
    }

    /// The files that could not be read (left out of the snapshot), with why.
    pub fn failures(&self) -> Vec<(String, Error)> {
        self.failures
            .lock()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default()
    }

    /// The files the archiver was not given (the deadline came near first).
    pub fn left_over(&self) -> Vec<SourceFile> {
        let taken = self.taken.load(Ordering::SeqCst);
        self.files.get(taken..).unwrap_or_default().to_vec()
    }
}

impl Opener {
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
            failures: self.failures.clone(),
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
    type Iter = Entries;

    fn size(&self) -> RusticResult<Option<u64>> {
        Ok(Some(self.files.iter().map(|f| f.size).sum()))
    }

    fn entries(&self) -> Entries {
        Entries {
            files: self.files.clone(),
            opener: self.opener.clone(),
            deadline: self.deadline,
            taken: self.taken.clone(),
        }
    }
}

/// The archiver's entries, made as it asks for them, until the deadline comes near.
pub struct Entries {
    files: Arc<Vec<SourceFile>>,
    opener: Opener,
    deadline: Option<Deadline>,
    taken: Arc<AtomicUsize>,
}

impl Iterator for Entries {
    type Item = RusticResult<ReadSourceEntry<OpenFile>>;

    fn next(&mut self) -> Option<Self::Item> {
        let index = self.taken.load(Ordering::SeqCst);
        // At least one file an invocation: each one moves the run forward.
        if index > 0 && self.deadline.is_some_and(|d| d.is_near()) {
            return None;
        }
        let file = self.files.get(index)?;
        self.taken.store(index + 1, Ordering::SeqCst);
        Some(self.opener.entry(file))
    }
}

/// How to open one file when the archiver gets to it.
pub struct OpenFile {
    source: Arc<dyn Source>,
    root: String,
    path: String,
    runtime: Handle,
    read_size: usize,
    failures: Failures,
}

/// Keep `e` as `path`'s failure; what the archiver gets is its message.
fn record(failures: &Failures, path: &str, e: Error) -> String {
    let message = e.to_string();
    if let Ok(mut f) = failures.lock() {
        // A file fails once: its first error says why.
        if !f.iter().any(|(p, _)| p == path) {
            f.push((path.to_string(), e));
        }
    }
    message
}

impl ReadSourceOpen for OpenFile {
    type Reader = StreamingFile;

    fn open(self) -> RusticResult<StreamingFile> {
        let opened = ResumingReader::open(self.source, &self.root, &self.path);
        let reader = self.runtime.block_on(opened).map_err(|e| {
            let message = record(&self.failures, &self.path, e);
            RusticError::new(ErrorKind::InputOutput, "cannot open `{path}`: {message}")
                .attach_context("path", self.path.clone())
                .attach_context("message", message)
        })?;
        Ok(StreamingFile {
            reader,
            buf: Bytes::new(),
            runtime: self.runtime,
            read_size: self.read_size,
            path: self.path,
            failures: self.failures,
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
    path: String,
    failures: Failures,
}

impl Read for StreamingFile {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.buf.is_empty() {
            self.buf = self
                .runtime
                .block_on(self.reader.read_chunk(self.read_size))
                .map_err(|e| std::io::Error::other(record(&self.failures, &self.path, e)))?;
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf.advance(n);
        Ok(n)
    }
}
