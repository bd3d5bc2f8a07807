//! Jobs: turn a validated message into work and a result. Never panics and never returns an
//! error: whatever happens ends up in the [`JobResult`].

mod backup;
mod check;
mod parts;
mod restore;
mod retention;
mod snapshot;
mod snapshot_parts;
pub use snapshot::repository as snapshot_repository;
pub mod storages;
mod test_connection;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use crate::config::Profiles;
use crate::message::JobMessage;
use crate::result::JobResult;
use crate::transfer::{Deadline, MemoryBudget, Progress};

/// How a job is being run.
pub struct Run<'a> {
    pub profiles: &'a Profiles,
    pub progress: Arc<Progress>,
    /// On a queue: big jobs may be split into parts and unfinished work handed back, as
    /// messages in [`JobResult::follow_up`] that the caller must enqueue. Off on one machine.
    pub fan_out: bool,
    /// When the platform stops this invocation (Lambda's deadline, the Functions timeout).
    pub deadline: Option<Deadline>,
    /// The process's memory for file data: every job run here shares it.
    pub memory: Arc<MemoryBudget>,
}

impl<'a> Run<'a> {
    /// One machine, no queue: do the whole job here.
    pub fn local(profiles: &'a Profiles, progress: Arc<Progress>) -> Self {
        Run {
            profiles,
            progress,
            fan_out: false,
            deadline: None,
            memory: MemoryBudget::process(),
        }
    }

    /// A queue worker that must be done by `deadline` (if any); `margin` is kept in hand.
    pub fn on_queue(
        profiles: &'a Profiles,
        deadline: Option<std::time::Instant>,
        margin: Duration,
    ) -> Self {
        Run {
            profiles,
            progress: Progress::new(),
            fan_out: true,
            deadline: deadline.map(|at| Deadline { at, margin }),
            memory: MemoryBudget::process(),
        }
    }
}

pub async fn run(message: &JobMessage, ctx: &Run<'_>) -> JobResult {
    match message {
        JobMessage::Backup(job) => backup::run(job, ctx).await,
        JobMessage::Restore(job) => restore::run(job, ctx).await,
        JobMessage::Verify(job) => verify::run(job, ctx).await,
        JobMessage::Check(job) => check::run(job, ctx).await,
        JobMessage::Forget(job) => retention::forget(job, ctx).await,
        JobMessage::Prune(job) => retention::prune(job, ctx).await,
        JobMessage::TestConnection(job) => test_connection::run(job, ctx.profiles).await,
    }
}

/// Parse, validate and run a message as it arrived (what every entry point receives): bytes,
/// which must be UTF-8 JSON (see [`JobMessage::parse_bytes`]).
pub async fn run_message(message: impl AsRef<[u8]>, ctx: &Run<'_>) -> JobResult {
    match JobMessage::parse_bytes(message.as_ref()) {
        Ok(message) => run(&message, ctx).await,
        Err(e) => JobResult::job_failed("unknown", None, &e),
    }
}

/// [`run_message`] on one machine.
pub async fn run_text(
    message: impl AsRef<[u8]>,
    profiles: &Profiles,
    progress: Arc<Progress>,
) -> JobResult {
    run_message(message, &Run::local(profiles, progress)).await
}

/// A copy job (backup, restore) begins: its result, and a log line.
fn started(kind: &str, job_id: &str, part: Option<u32>) -> JobResult {
    tracing::info!(job_id, part, "{kind} started");
    JobResult::new(kind, Some(job_id.to_string()))
}

/// A copy job ends: a job-level error goes into the result, which is finished and logged.
fn concluded(mut result: JobResult, outcome: crate::Result<()>) -> JobResult {
    let (kind, job_id) = (
        result.kind.clone(),
        result.job_id.clone().unwrap_or_default(),
    );
    if let Err(e) = outcome {
        tracing::error!(%job_id, code = e.code(), error = %e, "{kind} failed");
        result.errors.push(crate::result::FileError::new(None, &e));
    }
    result.finish();
    tracing::info!(
        %job_id,
        status = ?result.status,
        copied = result.files.copied,
        skipped = result.files.skipped,
        failed = result.files.failed,
        bytes = result.bytes.copied,
        duration_ms = result.duration_ms,
        "{kind} finished"
    );
    result
}
