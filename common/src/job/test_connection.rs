//! Test Connection: for each side, run the cheapest real checks in order and report the first
//! step that fails, with the seed's wording.

use super::storages;
use crate::check::{CheckFailure, DESTINATION_STEPS, SOURCE_STEPS};
use crate::config::Profiles;
use crate::error::Error;
use crate::message::TestConnectionJob;
use crate::result::{CheckResult, JobResult};

pub async fn run(job: &TestConnectionJob, profiles: &Profiles) -> JobResult {
    let mut result = JobResult::new("test_connection", job.job_id.clone());
    if let Some(src) = &job.source {
        let mut check = CheckResult::new("source", &src.storage);
        match storages::source(profiles, src) {
            Err(e) => check.fail("configuration", &e),
            Ok(source) => {
                check.target = Some(format!("{}{}", source.describe(), src.path));
                check.pass("configuration");
                let outcome = source.check(&src.path).await;
                check.record(&SOURCE_STEPS, outcome.err());
            }
        }
        result.source = check.target.clone();
        result.checks.push(check);
    }
    if let Some(dst) = &job.destination {
        let mut check = CheckResult::new("destination", &dst.storage);
        match storages::destination(profiles, dst) {
            Err(e) => check.fail("configuration", &e),
            Ok(dest) => {
                check.target = Some(dest.describe());
                check.pass("configuration");
                let outcome = dest.check().await;
                check.record(&DESTINATION_STEPS, outcome.err());
            }
        }
        result.destination = check.target.clone();
        result.checks.push(check);
    }
    result.finish();
    result
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

    fn pass(&mut self, step: &str) {
        self.passed.push(step.to_string());
    }

    /// Pass every step up to the failing one, then fail it (or pass them all).
    fn record(&mut self, steps: &[&str], failure: Option<CheckFailure>) {
        for step in steps {
            match &failure {
                Some(f) if f.step == *step => {
                    self.fail(step, &f.error);
                    return;
                }
                _ => self.pass(step),
            }
        }
    }

    fn fail(&mut self, step: &str, e: &Error) {
        tracing::warn!(side = %self.side, storage = %self.storage, step, code = e.code(), error = %e, "check failed");
        self.ok = false;
        self.failed_step = Some(step.to_string());
        self.error = Some(e.report());
    }
}
