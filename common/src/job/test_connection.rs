//! Test Connection: for each side, run the cheapest real checks in order and report the first
//! step that fails, with the seed's wording.

use super::storages;
use crate::check::{CheckFailure, Step, SOURCE_STEPS};
use crate::config::Profiles;
use crate::error::Error;
use crate::message::{BackupMode, DestinationRef, TestConnectionJob};
use crate::result::{CheckResult, JobResult};
use crate::snapshot;
use crate::storage::Destination;

pub async fn run(job: &TestConnectionJob, profiles: &Profiles) -> JobResult {
    let mut result = JobResult::new("test_connection", job.job_id.clone());
    if let Some(src) = &job.source {
        let mut check = CheckResult::new("source", &src.storage);
        match storages::source(profiles, src) {
            Err(e) => check.fail(Step::Configuration, &e),
            Ok(source) => {
                check.target = Some(format!("{}{}", source.describe(), src.path));
                check.pass(Step::Configuration);
                let outcome = source.check(&src.path).await;
                check.record(&SOURCE_STEPS, outcome.err());
            }
        }
        result.source = check.target.clone();
        result.checks.push(check);
    }
    if let Some(dst) = &job.destination {
        let mut check = check_destination("destination", &dst.storage, || {
            storages::destination(profiles, dst)
        })
        .await;
        if check.ok && job.mode == BackupMode::Snapshot {
            match check_repository(profiles, dst).await {
                Ok(()) => check.pass(Step::Repository),
                Err(e) => check.fail(Step::Repository, &e),
            }
        }
        result.destination = check.target.clone();
        result.checks.push(check);
    }
    if let Some(target) = &job.target {
        let check = check_destination("target", &target.storage, || {
            storages::target(profiles, target)
        })
        .await;
        result.destination = check.target.clone();
        result.checks.push(check);
    }
    result.finish();
    result
}

/// The `repository` step: the storage's `RESTIC_PASSWORD` opens the restic repository there
/// (a place with no repository yet passes: the first backup with `init: true` creates it).
async fn check_repository(profiles: &Profiles, place: &DestinationRef) -> crate::Result<()> {
    let (backend, password) = super::snapshot::repository(profiles, place, "destination")?;
    let opened =
        super::snapshot::blocking(move || snapshot::check_repository(backend, &password)).await?;
    if !opened {
        tracing::info!(storage = %place.storage, "no snapshot repository yet: a backup with init: true creates it");
    }
    Ok(())
}

/// A side that is written: a backup's destination, a restore's target.
async fn check_destination(
    side: &str,
    storage: &str,
    resolve: impl FnOnce() -> crate::Result<std::sync::Arc<dyn Destination>>,
) -> CheckResult {
    let mut check = CheckResult::new(side, storage);
    match resolve() {
        Err(e) => check.fail(Step::Configuration, &e),
        Ok(dest) => {
            check.target = Some(dest.describe());
            check.pass(Step::Configuration);
            let outcome = dest.check().await;
            check.record(dest.capability().check_steps, outcome.err());
        }
    }
    check
}

impl CheckResult {
    fn new(side: &str, storage: &str) -> Self {
        CheckResult {
            side: side.to_string(),
            storage: storage.to_string(),
            target: None,
            ok: true,
            passed: Vec::new(),
            failed_step: None,
            error: None,
        }
    }

    fn pass(&mut self, step: Step) {
        self.passed.push(step.as_str().to_string());
    }

    /// Pass every step up to the failing one, then fail it (or pass them all). A failure at a
    /// step outside `steps` is still a failure, recorded after the steps before it.
    fn record(&mut self, steps: &[Step], failure: Option<CheckFailure>) {
        for step in steps {
            match &failure {
                Some(f) if f.step == *step => break,
                _ => self.pass(*step),
            }
        }
        if let Some(f) = failure {
            self.fail(f.step, &f.error);
        }
    }

    fn fail(&mut self, step: Step, e: &Error) {
        let step = step.as_str();
        tracing::warn!(side = %self.side, storage = %self.storage, step, code = e.code(), error = %e, "check failed");
        self.ok = false;
        self.failed_step = Some(step.to_string());
        self.error = Some(e.report());
    }
}
