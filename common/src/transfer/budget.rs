//! The process's memory budget for file data. Every chunk read from a source is held in a
//! reservation from it until the destination acknowledged it, whichever job it belongs to: a
//! Lambda batch runs up to ten jobs at once in one process, and their chunks together must fit
//! the function's memory. (Each job's `upload_concurrency` still bounds the job itself.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::buffers::ChunkBuffers;

use crate::error::{Error, Result};
use crate::message::{ByteSize, GIB, KIB, MIB};

/// Reservations are counted in these units (a chunk is at least 64 KiB).
const UNIT: u64 = 64 * KIB;
/// Without a setting or a Lambda memory size: a machine, or an Azure Functions instance.
pub const DEFAULT_BUDGET: u64 = GIB;
/// The part of a Lambda function's memory left for file data: the rest is the runtime, TLS,
/// HTTP and SSH buffers, and the allocator's slack.
const LAMBDA_SHARE_PERCENT: u64 = 50;
pub const BUDGET_VAR: &str = "BACKUP_MEMORY_BUDGET";
const LAMBDA_MEMORY_VAR: &str = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE";

pub struct MemoryBudget {
    total: u64,
    permits: Arc<Semaphore>,
    in_use: AtomicU64,
    peak: AtomicU64,
}

/// Bytes held for one chunk; given back when dropped.
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
    bytes: u64,
    budget: Arc<MemoryBudget>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.in_use.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl MemoryBudget {
    pub fn new(total_bytes: u64) -> Arc<Self> {
        let units = (total_bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS as u64 / 2);
        Arc::new(MemoryBudget {
            total: units * UNIT,
            permits: Arc::new(Semaphore::new(units as usize)),
            in_use: AtomicU64::new(0),
            peak: AtomicU64::new(0),
        })
    }

    /// The one budget of this process, sized on first use by [`budget_from`] the environment.
    pub fn process() -> Arc<Self> {
        static PROCESS: OnceLock<Arc<MemoryBudget>> = OnceLock::new();
        PROCESS
            .get_or_init(|| {
                let setting = std::env::var(BUDGET_VAR).ok();
                let lambda = std::env::var(LAMBDA_MEMORY_VAR).ok();
                let total =
                    budget_from(setting.as_deref(), lambda.as_deref()).unwrap_or_else(|e| {
                        tracing::error!(error = %e, "memory budget setting ignored");
                        DEFAULT_BUDGET
                    });
                tracing::info!(bytes = total, "memory budget for file data");
                MemoryBudget::new(total)
            })
            .clone()
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// The most bytes held at once so far.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Hold `bytes` (at most the whole budget, so one large chunk cannot wait forever).
    pub async fn reserve(self: &Arc<Self>, bytes: u64) -> Result<Reservation> {
        let units = bytes.div_ceil(UNIT).clamp(1, self.total / UNIT);
        let permit = self
            .permits
            .clone()
            .acquire_many_owned(units as u32)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let held = units * UNIT;
        let now = self.in_use.fetch_add(held, Ordering::Relaxed) + held;
        self.peak.fetch_max(now, Ordering::Relaxed);
        Ok(Reservation {
            _permit: permit,
            bytes: held,
            budget: self.clone(),
        })
    }
}

/// Where a chunk's memory comes from: one of its job's `upload_concurrency` slots, and its
/// bytes in the process budget; its buffer from the job's recycled ones.
#[derive(Clone)]
pub struct ChunkSlots {
    job: Arc<Semaphore>,
    memory: Arc<MemoryBudget>,
    buffers: Arc<ChunkBuffers>,
}

/// Idle chunk buffers a job keeps: in full flight a returned buffer is soon taken again, so a
/// few suffice; this bounds what a job winding down holds beside the budget.
const IDLE_BUFFERS: usize = 4;

/// One chunk's place in memory; given back when dropped.
pub struct ChunkSlot {
    _job: OwnedSemaphorePermit,
    _memory: Reservation,
}

impl ChunkSlots {
    pub fn new(upload_concurrency: u32, chunk_size: usize, memory: Arc<MemoryBudget>) -> Self {
        ChunkSlots {
            job: Arc::new(Semaphore::new(upload_concurrency.max(1) as usize)),
            memory,
            buffers: ChunkBuffers::new(chunk_size, IDLE_BUFFERS),
        }
    }

    /// The job's chunk buffers (see [`ChunkBuffers`]).
    pub fn buffers(&self) -> Arc<ChunkBuffers> {
        self.buffers.clone()
    }

    /// Wait for a slot of the job, then for `bytes` of the process budget.
    pub async fn take(&self, bytes: u64) -> Result<ChunkSlot> {
        let job = self
            .job
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(ChunkSlot {
            _job: job,
            _memory: self.memory.reserve(bytes).await?,
        })
    }
}

/// The budget: `BACKUP_MEMORY_BUDGET` (`512MiB`), else half of a Lambda function's memory
/// (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, MB), else [`DEFAULT_BUDGET`].
pub fn budget_from(setting: Option<&str>, lambda_mb: Option<&str>) -> Result<u64> {
    if let Some(text) = setting {
        let size: ByteSize = serde_json::from_value(serde_json::Value::String(text.into()))
            .map_err(|e| Error::Internal(format!("{BUDGET_VAR}=`{text}`: {e}")))?;
        if size.bytes() < UNIT {
            return Err(Error::Internal(format!(
                "{BUDGET_VAR}=`{text}` is below the smallest chunk (64KiB)"
            )));
        }
        return Ok(size.bytes());
    }
    match lambda_mb.and_then(|mb| mb.trim().parse::<u64>().ok()) {
        Some(mb) => Ok(mb * MIB * LAMBDA_SHARE_PERCENT / 100),
        None => Ok(DEFAULT_BUDGET),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_comes_from_the_setting_then_the_lambda_size() {
        assert_eq!(
            budget_from(Some("512MiB"), Some("3008")).unwrap(),
            512 * MIB
        );
        assert_eq!(budget_from(None, Some("1024")).unwrap(), 512 * MIB);
        assert_eq!(budget_from(None, None).unwrap(), DEFAULT_BUDGET);
        assert!(budget_from(Some("lots"), None).is_err());
        assert!(budget_from(Some("1KiB"), None).is_err());
    }

    #[tokio::test]
    async fn reservations_wait_for_room_and_the_peak_is_kept() {
        let budget = MemoryBudget::new(4 * UNIT);
        let a = budget.reserve(3 * UNIT).await.unwrap();
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(2 * UNIT).await.map(|_| ()) })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "2 units do not fit beside 3 of 4");
        drop(a);
        waiting.await.unwrap().unwrap();
        assert_eq!(budget.peak(), 3 * UNIT);
        // Bigger than the whole budget: takes all of it instead of waiting forever.
        let all = budget.reserve(100 * UNIT).await.unwrap();
        assert_eq!(budget.peak(), 4 * UNIT);
        drop(all);
    }
}
