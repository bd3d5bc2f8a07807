//! Storages: one folder per service, each implementing the two sides of one object layer —
//! [`read`] (list as a stream, stat, ranged reads) and [`write`] (small writes, staged uploads
//! committed atomically, the worker's state) — so that backup, restore and verify are written
//! once for every pair. Azure plumbing shared by Blob, Files and the Queue poller is in [`azure`].
//!
//! A storage knows no job: what to copy and why is decided in [`crate::transfer`] and [`crate::job`].

pub mod azure;
pub mod blob;
pub mod checksum;
pub mod chunk_buf;
pub mod files;
pub mod read;
pub mod retry;
pub mod sftp;
pub mod walk;
pub mod write;

pub use chunk_buf::ChunkBuf;
pub use read::{join, ListItem, Source, SourceFile, SourceReader};
pub use write::{
    Capability, CheckFailure, Destination, FileMeta, HeldFile, Holdings, RemoteFile, Upload,
    RESERVED_DIR,
};
