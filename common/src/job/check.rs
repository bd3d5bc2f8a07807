//! The check job: a snapshot repository judged as `restic check` would (structure; with
//! `read_data`, every pack). Each error-level finding is one error in the result.

use rustic_core::ReadBackend;

use super::snapshot::{blocking, repository};
use super::{concluded, started, Run};
use crate::error::{Error, Result};
use crate::message::CheckJob;
use crate::result::{FileError, JobResult};
use crate::snapshot;

pub async fn run(job: &CheckJob, ctx: &Run<'_>) -> JobResult {
    let mut result = started("check", &job.job_id, None);
    let outcome = execute(job, ctx, &mut result).await;
    concluded(result, outcome)
}

async fn execute(job: &CheckJob, ctx: &Run<'_>, result: &mut JobResult) -> Result<()> {
    let (backend, password) = repository(ctx.profiles, &job.destination, "destination")?;
    let location = backend.location();
    result.destination = Some(location.clone());
    let read_data = job.read_data;
    let findings = blocking(move || snapshot::check(backend, &password, read_data)).await?;
    for finding in findings {
        let e = Error::RepositoryDamaged {
            location: location.clone(),
            finding,
        };
        tracing::warn!(code = e.code(), error = %e, "repository check");
        result.errors.push(FileError::new(None, &e));
    }
    Ok(())
}
