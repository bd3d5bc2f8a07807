//! The backup job: resolve both storages, then copy the tree here, or (on a queue) plan it into
//! parts, or copy one part.

use std::sync::Arc;

use super::{concluded, parts, started, storages, Run};
use crate::error::{Error, Result};
use crate::message::{BackupJob, BackupMode, TransferOptions};
use crate::result::JobResult;
use crate::storage::Destination;
use crate::storage::Source;
use crate::transfer::{self, CopyPlan, Deadline, Existing, Filter, Input};

/// What every way of running a backup needs.
pub(super) struct Prepared {
    pub source: Arc<dyn Source>,
    pub dest: Arc<dyn Destination>,
    /// Where a run in parts keeps its state: the backup's destination, the restore's mirror
    /// (never a restore's target, where a later backup would meet it as data).
    pub state: Arc<dyn Destination>,
    pub filter: Filter,
    /// The job's options with the storage's limits applied.
    pub options: TransferOptions,
}

impl Prepared {
    /// The engine's plan for this job: its storages, filter and options, rooted at `root`.
    pub fn copy_plan<'a>(
        &'a self,
        root: &'a str,
        ctx: &Run<'_>,
        deadline: Option<Deadline>,
    ) -> CopyPlan<'a> {
        CopyPlan {
            source: self.source.clone(),
            dest: self.dest.clone(),
            root,
            filter: &self.filter,
            options: &self.options,
            progress: ctx.progress.clone(),
            deadline,
            memory: ctx.memory.clone(),
        }
    }
}

pub async fn run(job: &BackupJob, ctx: &Run<'_>) -> JobResult {
    let mut result = started("backup", &job.job_id, job.part.as_ref().map(|p| p.index));
    let logger = ctx.progress.log_periodically();
    let outcome = execute(job, ctx, &mut result).await;
    logger.abort();
    concluded(result, outcome)
}

async fn execute(job: &BackupJob, ctx: &Run<'_>, result: &mut JobResult) -> Result<()> {
    if job.mode == BackupMode::Snapshot {
        return super::snapshot::run(job, ctx, result).await;
    }
    let prepared = prepare(job, ctx, result)?;
    match (&job.part, ctx.fan_out) {
        (Some(part), _) => parts::run_part(job, part, &prepared, ctx, result).await,
        (None, true) => parts::plan(job, &prepared, ctx, result).await,
        (None, false) => {
            // No queue to hand files back to: run to the end.
            let plan = prepared.copy_plan(&job.source.path, ctx, None);
            transfer::copy(plan, Input::Walk, Existing::List, result).await?;
            Ok(())
        }
    }
}

fn prepare(job: &BackupJob, ctx: &Run<'_>, result: &mut JobResult) -> Result<Prepared> {
    let filter = Filter::new(&job.include, &job.exclude)?;
    let source = storages::source(ctx.profiles, &job.source)?;
    let dest = storages::destination(ctx.profiles, &job.destination)?;
    let options = fit_options(&job.options, dest.as_ref())?;
    result.source = Some(format!("{}{}", source.describe(), job.source.path));
    result.destination = Some(dest.describe());
    Ok(Prepared {
        source,
        state: dest.clone(),
        dest,
        filter,
        options,
    })
}

/// The job's options within what `dest` accepts: a chunk larger than one request may carry
/// is refused; the profile's `MAX_CONNECTIONS` caps the chunks in flight.
pub(super) fn fit_options(
    options: &TransferOptions,
    dest: &dyn Destination,
) -> Result<TransferOptions> {
    let capability = dest.capability();
    if let Some(max) = capability.max_chunk {
        if options.chunk_size.bytes() > max {
            return Err(Error::invalid_field(
                "options.chunk_size",
                format!(
                    "is {}: {} accepts at most {} per request",
                    options.chunk_size,
                    dest.describe(),
                    crate::message::ByteSize(max)
                ),
            ));
        }
    }
    Ok(cap_concurrency(options, capability.max_parallel_requests))
}

/// The profile's `MAX_CONNECTIONS` caps the chunks in flight (and so the memory budget too).
fn cap_concurrency(options: &TransferOptions, max: Option<u32>) -> TransferOptions {
    let mut capped = options.clone();
    if let Some(max) = max.filter(|m| *m < options.upload_concurrency) {
        tracing::info!(
            upload_concurrency = options.upload_concurrency,
            max_connections = max,
            "capped by MAX_CONNECTIONS"
        );
        capped.upload_concurrency = max;
    }
    capped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_connections_caps_upload_concurrency() {
        let o = TransferOptions {
            upload_concurrency: 16,
            ..Default::default()
        };
        assert_eq!(cap_concurrency(&o, Some(5)).upload_concurrency, 5);
        assert_eq!(cap_concurrency(&o, Some(32)).upload_concurrency, 16);
        assert_eq!(cap_concurrency(&o, None).upload_concurrency, 16);
    }
}
