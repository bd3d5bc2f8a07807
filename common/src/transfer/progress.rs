//! Live progress of a transfer: counters any front end can read (the local runner's progress
//! bar, the periodic log line). Updated when a destination acknowledged bytes, not when read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Progress {
    started: Instant,
    log_every: Duration,
    bytes_done: AtomicU64,
    bytes_total: AtomicU64,
    files_done: AtomicU64,
    files_total: AtomicU64,
}

/// How often a long transfer logs its progress unless told otherwise.
pub const DEFAULT_LOG_INTERVAL: Duration = Duration::from_secs(10);

impl Default for Progress {
    fn default() -> Self {
        Progress {
            started: Instant::now(),
            log_every: DEFAULT_LOG_INTERVAL,
            bytes_done: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
            files_done: AtomicU64::new(0),
            files_total: AtomicU64::new(0),
        }
    }
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub bytes_done: u64,
    /// Bytes of the files queued for copying so far (grows while the source is listed).
    pub bytes_total: u64,
    pub files_done: u64,
    pub files_total: u64,
    pub elapsed: Duration,
}

impl Snapshot {
    pub fn bytes_per_sec(&self) -> u64 {
        let ms = self.elapsed.as_millis().max(1) as u64;
        self.bytes_done.saturating_mul(1000) / ms
    }
}

impl Progress {
    pub fn new() -> Arc<Self> {
        Arc::new(Progress::default())
    }

    /// Progress that logs every `every` while a backup runs.
    pub fn with_log_interval(every: Duration) -> Arc<Self> {
        Arc::new(Progress {
            log_every: every.max(Duration::from_millis(100)),
            ..Progress::default()
        })
    }

    pub fn file_queued(&self, size: u64) {
        self.files_total.fetch_add(1, Ordering::Relaxed);
        self.bytes_total.fetch_add(size, Ordering::Relaxed);
    }

    pub fn bytes_acknowledged(&self, n: u64) {
        self.bytes_done.fetch_add(n, Ordering::Relaxed);
    }

    pub fn file_finished(&self) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            bytes_total: self.bytes_total.load(Ordering::Relaxed),
            files_done: self.files_done.load(Ordering::Relaxed),
            files_total: self.files_total.load(Ordering::Relaxed),
            elapsed: self.started.elapsed(),
        }
    }

    /// Log progress at this progress's interval until the returned task is aborted.
    pub fn log_periodically(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(me.log_every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let s = me.snapshot();
                tracing::info!(
                    bytes_done = s.bytes_done,
                    bytes_total = s.bytes_total,
                    files_done = s.files_done,
                    files_total = s.files_total,
                    bytes_per_sec = s.bytes_per_sec(),
                    "progress"
                );
            }
        })
    }
}
