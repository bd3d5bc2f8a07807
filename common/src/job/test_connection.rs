//! Test Connection: for each side, run the cheapest real checks in order and report the first
//! step that fails, with the seed's wording.

use super::storages;
use crate::config::Profiles;
use crate::dest::CHECK_STEPS;
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
                match source.check_root(&src.path).await {
                    Ok(()) => {
                        check.pass("connect");
                        check.pass("authenticate");
                        check.pass("list");
                    }
                    Err(e) => {
                        let step = match &e {
                            Error::SftpAuthFailed { .. } | Error::SftpBadKey(_) => {
                                check.pass("connect");
                                "authenticate"
                            }
                            Error::SftpPermissionDenied { .. }
                            | Error::SftpNotFound { .. }
                            | Error::Sftp { .. } => {
                                check.pass("connect");
                                check.pass("authenticate");
                                "list"
                            }
                            _ => "connect",
                        };
                        check.fail(step, &e);
                    }
                }
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
                let failure = dest.check().await.err();
                for step in CHECK_STEPS {
                    match &failure {
                        Some(f) if f.step == step => {
                            check.fail(step, &f.error);
                            break;
                        }
                        _ => check.pass(step),
                    }
                }
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

    fn fail(&mut self, step: &str, e: &Error) {
        tracing::warn!(side = %self.side, storage = %self.storage, step, code = e.code(), error = %e, "check failed");
        self.ok = false;
        self.failed_step = Some(step.to_string());
        self.error = Some(e.report());
    }
}
