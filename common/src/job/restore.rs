//! The restore job: read a mirror a backup made (Blob or Files) and write it back onto a
//! target (an SFTP directory, or any other storage), through the same engine as a backup.
//! What makes it a restore is in the storages and the engine, not here: every file is checked
//! against its stored MD5 before it is committed, written atomically (temporary, then rename),
//! and stored names that would leave the target are refused.
//!
//! On a queue a big restore is planned into parts like a backup (see [`super::parts`]; the
//! run's state is kept beside the mirror, in its `.backup-worker/` folder, so planning needs
//! write permission there).

use std::sync::Arc;

use super::backup::{fit_options, Prepared};
use super::{concluded, parts, started, storages, Run};
use crate::error::Result;
use crate::message::RestoreJob;
use crate::result::JobResult;
use crate::storage::Source;
use crate::transfer::{self, Existing, Filter, Input};

pub async fn run(job: &RestoreJob, ctx: &Run<'_>) -> JobResult {
    let mut result = started("restore", &job.job_id, job.part.as_ref().map(|p| p.index));
    let logger = ctx.progress.log_periodically();
    let outcome = execute(job, ctx, &mut result).await;
    logger.abort();
    concluded(result, outcome)
}

async fn execute(job: &RestoreJob, ctx: &Run<'_>, result: &mut JobResult) -> Result<()> {
    let filter = Filter::new(&job.include, &job.exclude)?.within(&job.paths)?;
    let (source, lock) = match &job.snapshot {
        Some(id) => {
            let (source, lock) =
                super::snapshot::open_snapshot(ctx.profiles, &job.source, id).await?;
            (source, Some(lock))
        }
        None => (storages::mirror(ctx.profiles, &job.source, "source")?, None),
    };
    let outcome = restore(job, ctx, source, filter, result).await;
    if let Some(lock) = lock {
        super::snapshot::release(lock).await;
    }
    outcome
}

async fn restore(
    job: &RestoreJob,
    ctx: &Run<'_>,
    source: Arc<dyn Source>,
    filter: Filter,
    result: &mut JobResult,
) -> Result<()> {
    let dest = storages::target(ctx.profiles, &job.target)?;
    let options = fit_options(&job.options, dest.as_ref())?;
    result.source = Some(source.describe());
    result.destination = Some(dest.describe());
    let prepared = Prepared {
        source,
        state: storages::mirror_state(ctx.profiles, &job.source)?,
        dest,
        filter,
        options,
    };
    // A snapshot is restored by one run (its listing comes out of the repository, not a walk).
    let fan_out = ctx.fan_out && job.snapshot.is_none();
    match (&job.part, fan_out) {
        (Some(part), _) => parts::run_part(job, part, &prepared, ctx, result).await,
        (None, true) => parts::plan(job, &prepared, ctx, result).await,
        (None, false) => {
            let plan = prepared.copy_plan("", ctx, None);
            transfer::copy(plan, Input::Walk, Existing::List, result).await?;
            Ok(())
        }
    }
}
