//! The backup job: resolve both storages, then let the transfer engine copy the tree.

use std::sync::Arc;
use std::time::Duration;

use super::storages;
use crate::config::Profiles;
use crate::error::Result;
use crate::message::BackupJob;
use crate::result::{FileError, JobResult};
use crate::transfer::{self, Filter, Progress};

const PROGRESS_LOG_INTERVAL: Duration = Duration::from_secs(10);

pub async fn run(job: &BackupJob, profiles: &Profiles, progress: Arc<Progress>) -> JobResult {
    let mut result = JobResult::new("backup", Some(job.job_id.clone()));
    tracing::info!(job_id = %job.job_id, "backup started");
    let logger = progress.log_periodically(PROGRESS_LOG_INTERVAL);
    if let Err(e) = copy(job, profiles, progress, &mut result).await {
        tracing::error!(job_id = %job.job_id, code = e.code(), error = %e, "backup failed");
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
        "backup finished"
    );
    result
}

async fn copy(
    job: &BackupJob,
    profiles: &Profiles,
    progress: Arc<Progress>,
    result: &mut JobResult,
) -> Result<()> {
    let filter = Filter::new(&job.include, &job.exclude)?;
    let source = storages::source(profiles, &job.source)?;
    let dest = storages::destination(profiles, &job.destination)?;
    result.source = Some(format!("{}{}", source.describe(), job.source.path));
    result.destination = Some(dest.describe());
    transfer::copy_tree(
        source,
        dest,
        &job.source.path,
        &filter,
        &job.options,
        progress,
        result,
    )
    .await
}
