//! The restore job: read a mirror a backup made (Blob or Files) and write it back onto a
//! target (an SFTP directory, or any other storage), through the same engine as a backup.
//! What makes it a restore is in the storages and the engine, not here: every file is checked
//! against its stored MD5 before it is committed, written atomically (temporary, then rename),
//! and stored names that would leave the target are refused.
//!
//! On a queue, files not started before the deadline go back as follow-up restore messages
//! naming them in `paths` (several messages when the names do not fit in one).

use super::backup::fit_options;
use super::{storages, Run};
use crate::error::{Error, Result};
use crate::message::{JobMessage, RestoreJob};
use crate::result::{FileError, JobResult};
use crate::storage::SourceFile;
use crate::transfer::{self, CopyPlan, Existing, Filter, Input};

/// The bytes of `paths` one follow-up message may carry (queues take 64 KiB after base64).
const FOLLOW_UP_PATHS_BYTES: usize = 32 * 1024;

pub async fn run(job: &RestoreJob, ctx: &Run<'_>) -> JobResult {
    let mut result = JobResult::new("restore", Some(job.job_id.clone()));
    tracing::info!(job_id = %job.job_id, "restore started");
    let logger = ctx.progress.log_periodically();
    if let Err(e) = execute(job, ctx, &mut result).await {
        tracing::error!(job_id = %job.job_id, code = e.code(), error = %e, "restore failed");
        result.errors.push(FileError::new(None, &e));
    }
    logger.abort();
    result.finish();
    tracing::info!(
        job_id = %job.job_id,
        status = ?result.status,
        copied = result.files.copied,
        skipped = result.files.skipped,
        failed = result.files.failed,
        bytes = result.bytes.copied,
        duration_ms = result.duration_ms,
        "restore finished"
    );
    result
}

async fn execute(job: &RestoreJob, ctx: &Run<'_>, result: &mut JobResult) -> Result<()> {
    let filter = Filter::new(&job.include, &job.exclude)?.within(&job.paths)?;
    let source = storages::mirror(ctx.profiles, &job.source, "source")?;
    let dest = storages::target(ctx.profiles, &job.target)?;
    let options = fit_options(&job.options, dest.as_ref())?;
    result.source = Some(source.describe());
    result.destination = Some(dest.describe());
    let plan = CopyPlan {
        source,
        dest,
        root: "",
        filter: &filter,
        options: &options,
        progress: ctx.progress.clone(),
        deadline: if ctx.fan_out { ctx.deadline } else { None },
        memory: ctx.memory.clone(),
    };
    let left_over = transfer::copy(plan, Input::Walk, Existing::List, result).await?;
    for message in hand_back(job, &left_over)? {
        result.follow_up.push(message);
    }
    Ok(())
}

/// The same restore, narrowed to the files not started, in as many messages as they need.
fn hand_back(job: &RestoreJob, left_over: &[SourceFile]) -> Result<Vec<String>> {
    let mut messages = Vec::new();
    let mut batch: Vec<String> = Vec::new();
    let mut bytes = 0;
    for file in left_over {
        if bytes + file.path.len() > FOLLOW_UP_PATHS_BYTES && !batch.is_empty() {
            messages.push(follow_up(job, std::mem::take(&mut batch))?);
            bytes = 0;
        }
        bytes += file.path.len() + 4;
        batch.push(file.path.clone());
    }
    if !batch.is_empty() {
        messages.push(follow_up(job, batch)?);
    }
    Ok(messages)
}

fn follow_up(job: &RestoreJob, paths: Vec<String>) -> Result<String> {
    let message = JobMessage::Restore(RestoreJob {
        paths,
        ..job.clone()
    });
    serde_json::to_string(&message).map_err(|e| Error::Internal(e.to_string()))
}
