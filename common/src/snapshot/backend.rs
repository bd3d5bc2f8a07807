//! A restic repository is a key-value store of files named by type and id (`config`, `keys/<id>`,
//! `snapshots/<id>`, `index/<id>`, `data/<id[..2]>/<id>`). This is `rustic_core`'s backend over
//! our object layer, so a repository lives in any storage the worker writes (Blob, Files) with
//! every credential it has, and every object is written atomically (the object layer never shows
//! a half-written file: a short pack would make the repository unreadable).
//!
//! `rustic_core` is blocking: its calls arrive on its own threads and we run our async storage
//! calls on the job's runtime through a captured [`Handle`]. Never call it on a runtime thread.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use rustic_core::{
    BytesList, ErrorKind, FileType, Id, ReadBackend, RusticError, RusticResult, WriteBackend,
};
use tokio::runtime::Handle;

use crate::error::{Error, ErrorKind as Kind, Result};
use crate::storage::write::unix_now;
use crate::storage::{ChunkBuf, Destination, FileMeta, ListItem, Source};

/// Largest request body for one staged chunk of a big object (Azure Files takes at most 4 MiB).
const CHUNK: u64 = 4 * 1024 * 1024;

pub struct ObjectBackend {
    write: Arc<dyn Destination>,
    /// The same place, read side.
    read: Arc<dyn Source>,
    runtime: Handle,
    /// Chunks of one object in flight at once (the seed's `maxConnections`, default 5).
    parallel: usize,
    /// The first storage error behind a failed call: `rustic_core` wraps errors in its own
    /// type, and the job reports ours (its stable code, its words) instead.
    first_error: Mutex<Option<Error>>,
    /// Key files this run wrote (an `init`): removed again if another run's `init` won.
    keys_written: Mutex<Vec<String>>,
}

impl ObjectBackend {
    pub fn new(
        write: Arc<dyn Destination>,
        read: Arc<dyn Source>,
        runtime: Handle,
        parallel: usize,
    ) -> Self {
        ObjectBackend {
            write,
            read,
            runtime,
            parallel: parallel.max(1),
            first_error: Mutex::new(None),
            keys_written: Mutex::new(Vec::new()),
        }
    }

    /// The storage the repository lives in (its write side): where a run keeps its own state.
    pub fn destination(&self) -> Arc<dyn Destination> {
        self.write.clone()
    }

    /// The storage error that made a repository call fail, if one did.
    pub fn take_error(&self) -> Option<Error> {
        self.first_error.lock().ok().and_then(|mut e| e.take())
    }

    /// Run a storage call to completion; a failure is kept for the job and handed to
    /// `rustic_core` as a backend error naming the object.
    fn call<T>(
        &self,
        what: &str,
        op: impl std::future::Future<Output = Result<T>>,
    ) -> RusticResult<T> {
        self.runtime.block_on(op).map_err(|e| {
            let message = e.to_string();
            if let Ok(mut first) = self.first_error.lock() {
                first.get_or_insert(e);
            }
            RusticError::new(ErrorKind::Backend, "{what}: {message}")
                .attach_context("what", what.to_string())
                .attach_context("message", message)
        })
    }

    async fn list(&self, tpe: FileType) -> Result<Vec<(Id, u32)>> {
        if tpe == FileType::Config {
            let size = self.read.stat("", "config").await?;
            return Ok(size
                .map(|(size, _)| (Id::default(), size as u32))
                .into_iter()
                .collect());
        }
        self.list_dir(tpe.dirname()).await
    }

    /// The objects named by an id in the repository folder `dir`, with their sizes.
    async fn list_dir(&self, dir: &str) -> Result<Vec<(Id, u32)>> {
        let mut items = match self.read.list(dir).await {
            Ok(items) => items,
            Err(e) if e.kind() == Kind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut found = Vec::new();
        while let Some(item) = items.recv().await {
            match item {
                ListItem::File(f) => {
                    let name = f.path.rsplit('/').next().unwrap_or(&f.path);
                    // Anything not named by an id (a stray file) is not the repository's.
                    if let Ok(id) = name.parse::<Id>() {
                        found.push((id, f.size as u32));
                    }
                }
                ListItem::Error(_, e) => return Err(e),
                ListItem::Symlink(_) => {}
            }
        }
        Ok(found)
    }

    async fn read(&self, path: &str, offset: u64, length: Option<u64>) -> Result<Bytes> {
        let mut reader = self.read.open("", path, offset).await?;
        let mut buf = ChunkBuf::heap(0);
        loop {
            let want = match length {
                Some(len) => len as usize,
                None => buf.len() + CHUNK as usize,
            };
            let before = buf.len();
            reader.read_into(&mut buf, want).await?;
            if buf.len() == before || length.is_some_and(|len| buf.len() as u64 >= len) {
                return Ok(buf.freeze());
            }
        }
    }

    /// The whole object in one request when it fits one chunk, else staged chunks (several in
    /// flight) committed at once: in both cases nothing is visible before it is complete.
    async fn write(&self, path: &str, data: Bytes) -> Result<()> {
        let meta = FileMeta {
            size: data.len() as u64,
            mtime: unix_now(),
            md5: crate::transfer::digest::md5_of(data.clone()).await?,
        };
        if meta.size <= CHUNK {
            return self.write.put_small(path, data, &meta).await;
        }
        let upload = self
            .write
            .start_upload(path, meta.size, meta.mtime, CHUNK)
            .await?;
        let chunks = meta.size.div_ceil(CHUNK);
        let checksum = self.write.capability().chunk_checksum;
        let put = futures::stream::iter(0..chunks)
            .map(|index| {
                let offset = index * CHUNK;
                let piece = data.slice(offset as usize..(offset + CHUNK).min(meta.size) as usize);
                let upload = upload.clone();
                async move {
                    let sum = checksum.of(&piece).await?;
                    upload.put_chunk(index, offset, piece, sum).await
                }
            })
            .buffer_unordered(self.parallel)
            .try_collect::<Vec<()>>()
            .await;
        match put {
            Ok(_) => upload.commit(chunks, &meta).await,
            Err(e) => {
                upload.abort().await;
                Err(e)
            }
        }
    }
}

/// restic's `locks/` folder, which `rustic_core` does not know (see [`super::lock`]). Blocking.
impl ObjectBackend {
    pub fn list_locks(&self) -> Result<Vec<Id>> {
        let found = self.runtime.block_on(self.list_dir(LOCKS))?;
        Ok(found.into_iter().map(|(id, _)| id).collect())
    }

    pub fn read_lock(&self, id: &Id) -> Result<Bytes> {
        self.runtime.block_on(self.read(&lock_path(id), 0, None))
    }

    /// Locks are small: one request, visible whole or not at all.
    pub fn write_lock(&self, id: &Id, data: Bytes) -> Result<()> {
        self.runtime.block_on(self.write(&lock_path(id), data))
    }

    pub fn remove_lock(&self, id: &Id) -> Result<()> {
        self.runtime
            .block_on(self.write.delete(&lock_path(id)))
            .map(|_| ())
    }
}

const LOCKS: &str = "locks";

fn lock_path(id: &Id) -> String {
    format!("{LOCKS}/{}", id.to_hex().as_str())
}

impl ObjectBackend {
    /// The config names the repository, so it is written once (a create-only write). Two runs
    /// with `init` at the same moment (a duplicate delivery) both write a key, but only one
    /// config: the loser removes its key (with the same password it would open a master key
    /// that decrypts nothing) and fails; the winner's repository is whole.
    async fn create_config(&self, data: Bytes) -> Result<()> {
        if self.write.create("config", data).await? {
            return Ok(());
        }
        let keys = self
            .keys_written
            .lock()
            .map(|mut k| std::mem::take(&mut *k))
            .unwrap_or_default();
        for key in keys {
            self.write.delete(&key).await?;
        }
        Err(Error::Snapshot {
            detail: "another run created the repository here at the same moment; this run \
                     removed its key and stopped: run the job again"
                .into(),
        })
    }
}

/// Where restic keeps an object of this type and id.
pub fn object_path(tpe: FileType, id: &Id) -> String {
    let hex = id.to_hex();
    match tpe {
        FileType::Config => "config".to_string(),
        FileType::Pack => format!("data/{}/{}", &hex[..2], hex.as_str()),
        other => format!("{}/{}", other.dirname(), hex.as_str()),
    }
}

impl ReadBackend for ObjectBackend {
    fn location(&self) -> String {
        self.write.describe()
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        self.call(tpe.dirname(), self.list(tpe))
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<Bytes> {
        let path = object_path(tpe, id);
        self.call(&path, self.read(&path, 0, None))
    }

    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<Bytes> {
        let path = object_path(tpe, id);
        self.call(&path, self.read(&path, offset.into(), Some(length.into())))
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        object_path(tpe, id)
    }
}

impl WriteBackend for ObjectBackend {
    fn write_bytes(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        content: BytesList,
    ) -> RusticResult<()> {
        let path = object_path(tpe, id);
        let data = match content.slice() {
            [one] => one.clone(),
            many => many.concat().into(),
        };
        if tpe == FileType::Config {
            return self.call(&path, self.create_config(data));
        }
        self.call(&path, self.write(&path, data))?;
        if tpe == FileType::Key {
            if let Ok(mut keys) = self.keys_written.lock() {
                keys.push(path);
            }
        }
        Ok(())
    }

    fn remove(&self, tpe: FileType, id: &Id, _cacheable: bool) -> RusticResult<()> {
        let path = object_path(tpe, id);
        self.call(&path, async { self.write.delete(&path).await.map(|_| ()) })
    }
}
