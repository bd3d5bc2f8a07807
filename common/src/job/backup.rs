//! The backup job: resolve both storages, then let the transfer engine copy the tree.

use std::sync::Arc;

use super::storages;
use crate::config::Profiles;
use crate::error::{Error, Result};
use crate::message::BackupJob;
use crate::result::{FileError, JobResult};
use crate::transfer::{self, Filter, Progress};

pub async fn run(job: &BackupJob, profiles: &Profiles, progress: Arc<Progress>) -> JobResult {
    let mut result = JobResult::new("backup", Some(job.job_id.clone()));
    tracing::info!(job_id = %job.job_id, "backup started");
    let logger = progress.log_periodically();
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
    if let Some(max) = dest.max_chunk_size() {
        if job.options.chunk_size.bytes() > max {
            return Err(Error::invalid_field(
                "options.chunk_size",
                format!(
                    "is {}: {} accepts at most {} per request",
                    job.options.chunk_size,
                    dest.describe(),
                    crate::message::ByteSize(max)
                ),
            ));
        }
    }
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
