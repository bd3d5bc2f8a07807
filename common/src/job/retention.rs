//! The forget and prune jobs: a snapshot repository's retention, as `restic forget` and
//! `restic prune` do it.

use std::str::FromStr;

use rustic_core::{KeepOptions, ReadBackend, StringList};

use super::snapshot::{blocking, repository};
use super::{concluded, started, Run};
use crate::error::{Error, Result};
use crate::message::{ForgetJob, PruneJob};
use crate::result::JobResult;
use crate::snapshot::retention::{self, parse_group_by, parse_within};

pub async fn forget(job: &ForgetJob, ctx: &Run<'_>) -> JobResult {
    let mut result = started("forget", &job.job_id, None);
    let outcome = run_forget(job, ctx, &mut result).await;
    concluded(result, outcome)
}

pub async fn prune(job: &PruneJob, ctx: &Run<'_>) -> JobResult {
    let mut result = started("prune", &job.job_id, None);
    let outcome = run_prune(&job.destination, ctx, &mut result).await;
    concluded(result, outcome)
}

async fn run_forget(job: &ForgetJob, ctx: &Run<'_>, result: &mut JobResult) -> Result<()> {
    let keep = keep_options(job)?;
    let group_by =
        parse_group_by(&job.group_by).map_err(|r| Error::invalid_field("group_by", r))?;
    let (backend, password) = repository(ctx.profiles, &job.destination, "destination")?;
    result.destination = Some(backend.location());
    let report = blocking(move || retention::forget(backend, &password, &keep, group_by)).await?;
    tracing::info!(
        kept = report.kept,
        removed = report.removed.len(),
        "snapshots forgotten"
    );
    result.forget = Some(report);
    if job.prune {
        run_prune(&job.destination, ctx, result).await?;
    }
    Ok(())
}

async fn run_prune(
    place: &crate::message::DestinationRef,
    ctx: &Run<'_>,
    result: &mut JobResult,
) -> Result<()> {
    let (backend, password) = repository(ctx.profiles, place, "destination")?;
    result.destination = Some(backend.location());
    let report = blocking(move || retention::prune(backend, &password)).await?;
    tracing::info!(
        packs_deleted = report.packs_deleted,
        packs_repacked = report.packs_repacked,
        bytes_freed = report.bytes_freed,
        "repository pruned"
    );
    result.prune = Some(report);
    Ok(())
}

/// The message's rules as `rustic_core` takes them (validated already; checked again here
/// rather than trusted).
fn keep_options(job: &ForgetJob) -> Result<KeepOptions> {
    let count = |n: Option<u32>| n.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    let mut keep = KeepOptions::default()
        .keep_last(count(job.keep_last))
        .keep_hourly(count(job.keep_hourly))
        .keep_daily(count(job.keep_daily))
        .keep_weekly(count(job.keep_weekly))
        .keep_monthly(count(job.keep_monthly))
        .keep_yearly(count(job.keep_yearly));
    if let Some(within) = &job.keep_within {
        let span = parse_within(within).map_err(|r| Error::invalid_field("keep_within", r))?;
        keep = keep.keep_within(span);
    }
    let mut tags = Vec::new();
    for tag in &job.keep_tags {
        tags.push(
            StringList::from_str(tag)
                .map_err(|e| Error::invalid_field("keep_tags", e.to_string()))?,
        );
    }
    Ok(keep.keep_tags(tags))
}
