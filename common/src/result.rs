//! What a job reports. Honest by construction: a run that failed some files, or found nothing
//! where the user pointed, never says plain `succeeded`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorReport};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Everything asked for was done.
    Succeeded,
    /// Some files were copied (or were already there) and some failed.
    PartiallyFailed,
    /// The job could not run, or every file failed.
    Failed,
    /// The source was read, but no file matched: check the path and the filters.
    NoFiles,
    /// The job was split into parts, now on the queue (see `run`).
    Planned,
    /// The deadline came near: the files not started went back on the queue as a new message.
    Continued,
}

impl JobStatus {
    /// Process exit code for the local runner: 0 only for success.
    pub fn exit_code(self) -> i32 {
        match self {
            JobStatus::Succeeded => 0,
            JobStatus::Failed => 1,
            JobStatus::PartiallyFailed => 2,
            JobStatus::NoFiles => 3,
            JobStatus::Planned | JobStatus::Continued => 0,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileCounts {
    /// Regular files under the source path that passed include/exclude.
    pub found: u64,
    pub copied: u64,
    /// Unchanged since the last run (same size and mtime, or same MD5 with `compare: hash`).
    pub skipped: u64,
    pub failed: u64,
    /// Left out by include/exclude.
    pub excluded: u64,
    /// Symbolic links are not followed; they are counted here.
    pub symlinks_skipped: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ByteCounts {
    pub copied: u64,
    pub skipped: u64,
    /// Of `copied`, bytes an interrupted earlier attempt had already stored (not sent again).
    #[serde(default)]
    pub resumed: u64,
}

/// An error about one file (or directory), or about the job when `path` is absent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(flatten)]
    pub error: ErrorReport,
}

impl FileError {
    pub fn new(path: Option<String>, error: &Error) -> Self {
        FileError {
            path,
            error: error.report(),
        }
    }
}

/// One Test Connection check of one storage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckResult {
    /// `source` or `destination`.
    pub side: String,
    pub storage: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub ok: bool,
    /// The steps that passed, in order.
    pub passed: Vec<String>,
    /// The step that failed, with the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    pub kind: String,
    pub status: JobStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    pub started_at_unix_ms: u64,
    pub duration_ms: u64,
    pub files: FileCounts,
    pub bytes: ByteCounts,
    /// Bytes copied per second of wall time.
    pub throughput_bytes_per_sec: u64,
    pub errors: Vec<FileError>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub checks: Vec<CheckResult>,
    /// For a job run in parts: the run, and whether every part has finished.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub run: Option<RunReport>,
    /// For a part message: which part this was.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub part: Option<PartReport>,
    /// For a verify job: what the mirror holds, file by file.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub verify: Option<VerifyCounts>,
    /// For a backup in snapshot mode: the snapshot saved.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub snapshot: Option<crate::snapshot::SnapshotReport>,
    /// For a forget job: the snapshots kept and removed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub forget: Option<crate::snapshot::retention::ForgetReport>,
    /// For a prune (or a forget with `prune`): what was deleted.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub prune: Option<crate::snapshot::retention::PruneReport>,
    /// Messages the platform must put on the job queue (parts, continuations). Not reported.
    #[serde(skip)]
    pub follow_up: Vec<String>,
}

/// A verify job's findings. `corrupt` and `missing` fail the job (the backup cannot give
/// those files back); `changed` and `extra` only say the mirror is behind the source.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct VerifyCounts {
    /// Files in the mirror read to the end.
    pub checked: u64,
    /// Their bytes match the stored MD5.
    pub intact: u64,
    /// Their bytes do not match the stored MD5 (error `verify.corrupt`).
    pub corrupt: u64,
    /// No stored MD5 to compare with (not written by this worker).
    pub unverifiable: u64,
    /// In the source, not in the mirror (error `verify.missing`).
    pub missing: u64,
    /// In the mirror, no longer in the source.
    pub extra: u64,
    /// In both, but the source changed since it was backed up.
    pub changed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunReport {
    pub run_id: String,
    pub parts: u32,
    /// True once every part has finished; `summary` then names the state object with totals.
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub summary: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartReport {
    pub run_id: String,
    pub index: u32,
    pub count: u32,
}

impl JobResult {
    pub fn new(kind: &str, job_id: Option<String>) -> Self {
        JobResult {
            job_id,
            kind: kind.to_string(),
            status: JobStatus::Failed,
            source: None,
            destination: None,
            started_at_unix_ms: now_unix_ms(),
            duration_ms: 0,
            files: FileCounts::default(),
            bytes: ByteCounts::default(),
            throughput_bytes_per_sec: 0,
            errors: Vec::new(),
            checks: Vec::new(),
            run: None,
            part: None,
            verify: None,
            snapshot: None,
            forget: None,
            prune: None,
            follow_up: Vec::new(),
        }
    }

    /// A job that could not run at all.
    pub fn job_failed(kind: &str, job_id: Option<String>, error: &Error) -> Self {
        let mut r = JobResult::new(kind, job_id);
        r.errors.push(FileError::new(None, error));
        r.finish();
        r.status = JobStatus::Failed;
        r
    }

    /// Whether the queue should deliver this message again: failed and partially failed jobs are
    /// retried (an incremental run redoes only what is missing); after the queue's retry limit
    /// the message lands in its dead-letter/poison queue for a person to look at.
    pub fn needs_redelivery(&self) -> bool {
        matches!(self.status, JobStatus::Failed | JobStatus::PartiallyFailed)
    }

    /// Fill in duration and throughput, and decide the status from the counts.
    pub fn finish(&mut self) {
        self.duration_ms = now_unix_ms().saturating_sub(self.started_at_unix_ms);
        self.throughput_bytes_per_sec = (self.bytes.copied * 1000)
            .checked_div(self.duration_ms)
            .unwrap_or(0);
        let handed_on = !self.follow_up.is_empty() && !self.errors.iter().any(|e| e.path.is_none());
        self.status = if handed_on && self.part.is_none() {
            JobStatus::Planned
        } else if handed_on {
            JobStatus::Continued
        } else if !self.checks.is_empty() {
            if self.checks.iter().all(|c| c.ok) {
                JobStatus::Succeeded
            } else {
                JobStatus::Failed
            }
        } else if self.errors.iter().any(|e| e.path.is_none()) {
            JobStatus::Failed
        } else if self.files.failed > 0 {
            if self.files.copied + self.files.skipped > 0 {
                JobStatus::PartiallyFailed
            } else {
                JobStatus::Failed
            }
        } else if self.files.found == 0 && !MAINTENANCE.contains(&self.kind.as_str()) {
            // (Repository maintenance copies no files: with no error it succeeded.)
            JobStatus::NoFiles
        } else {
            JobStatus::Succeeded
        };
    }
}

/// Job kinds that work on a repository, not on files.
const MAINTENANCE: [&str; 3] = ["check", "forget", "prune"];

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result_with(found: u64, copied: u64, skipped: u64, failed: u64) -> JobResult {
        let mut r = JobResult::new("backup", Some("j".into()));
        r.files = FileCounts {
            found,
            copied,
            skipped,
            failed,
            ..Default::default()
        };
        r.finish();
        r
    }

    #[test]
    fn status_is_honest() {
        assert_eq!(result_with(3, 3, 0, 0).status, JobStatus::Succeeded);
        assert_eq!(result_with(3, 0, 3, 0).status, JobStatus::Succeeded);
        assert_eq!(result_with(3, 2, 0, 1).status, JobStatus::PartiallyFailed);
        assert_eq!(result_with(2, 0, 0, 2).status, JobStatus::Failed);
        assert_eq!(result_with(0, 0, 0, 0).status, JobStatus::NoFiles);
    }

    #[test]
    fn a_job_level_error_fails_the_job() {
        let r = JobResult::job_failed("backup", None, &Error::Internal("x".into()));
        assert_eq!(r.status, JobStatus::Failed);
        assert_eq!(r.status.exit_code(), 1);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["errors"][0]["code"], "internal");
    }
}
