//! The check job: a snapshot repository judged as `restic check` would (structure; with
//! `read_data`, every pack). Each error-level finding is one error in the result.

use std::sync::Arc;

use tokio::runtime::Handle;

use super::{concluded, started, storages, Run};
use crate::error::{Error, Result};
use crate::message::CheckJob;
use crate::result::{FileError, JobResult};
use crate::snapshot::{self, backend::ObjectBackend, password::repository_password};

pub async fn run(job: &CheckJob, ctx: &Run<'_>) -> JobResult {
    let mut result = started("check", &job.job_id, None);
    let outcome = execute(job, ctx, &mut result).await;
    concluded(result, outcome)
}

async fn execute(job: &CheckJob, ctx: &Run<'_>, result: &mut JobResult) -> Result<()> {
    let place = &job.destination;
    let password = repository_password(ctx.profiles, &place.storage)?;
    let dest = storages::destination(ctx.profiles, place)?;
    let read = storages::mirror(ctx.profiles, place, "destination")?;
    let location = dest.describe();
    result.destination = Some(location.clone());
    let backend = Arc::new(ObjectBackend::new(dest, read, Handle::current(), 1));
    let read_data = job.read_data;
    let findings =
        tokio::task::spawn_blocking(move || snapshot::check(backend, &password, read_data))
            .await
            .map_err(|e| Error::Internal(format!("check task failed: {e}")))??;
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
