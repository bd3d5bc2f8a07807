//! Snapshot runs too big for one invocation, judged by stock `restic`: a tree fanned out into
//! parts (one delivered twice), and a run handed back at every deadline, each end as exactly
//! one snapshot (the slices merged and gone) that `restic check --read-data` finds clean and
//! `restic restore` gives back byte for byte; the next run finds every file unchanged.

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use backup_common::config::Profiles;
use backup_common::job::{self, Run};
use backup_common::result::{JobResult, JobStatus};
use harness::restic::Restic;
use harness::stack::{pattern, write_file, Stack};

const PASSWORD: &str = "runs password";

fn message(src: &Path, container: &str, options: &str) -> String {
    format!(
        r#"{{"kind": "backup", "job_id": "snap-runs", "mode": "snapshot", "init": true,
            "tags": ["nightly"], "source": {{"storage": "office_nas", "path": "{}"}},
            "destination": {{"storage": "archive", "container": "{container}", "prefix": "repo"}},
            "options": {options}}}"#,
        src.display()
    )
}

fn tree(stack: &Stack, name: &str, count: usize) -> (std::path::PathBuf, Vec<(String, Vec<u8>)>) {
    let src = stack.source_dir(name);
    let files: Vec<(String, Vec<u8>)> = (0..count)
        .map(|i| {
            (
                format!("dir{}/f{i}.bin", i % 3),
                pattern(300_000 + i, i as u64),
            )
        })
        .collect();
    for (path, data) in &files {
        write_file(&src, path, data);
    }
    (src, files)
}

/// Run `first` and every message it leads to, each with a fresh `ctx()`; the first part is
/// delivered twice when `duplicate` is set. Returns every result in order.
async fn drain(first: String, ctx: impl Fn() -> Run<'static>, duplicate: bool) -> Vec<JobResult> {
    let mut queue = VecDeque::from([first]);
    let mut results = Vec::new();
    let mut duplicated = !duplicate;
    while let Some(msg) = queue.pop_front() {
        assert!(results.len() < 50, "the run never ends");
        let result = job::run_message(&msg, &ctx()).await;
        assert!(
            !matches!(
                result.status,
                JobStatus::Failed | JobStatus::PartiallyFailed
            ),
            "{result:#?}"
        );
        if !duplicated && result.part.is_some() {
            queue.push_back(msg.clone());
            duplicated = true;
        }
        queue.extend(result.follow_up.iter().cloned());
        results.push(result);
    }
    results
}

/// restic's verdict: exactly one snapshot, not partial, clean, restoring `files`.
fn judge(restic: &Restic, src: &Path, files: &[(String, Vec<u8>)]) -> String {
    restic.run(&["check", "--read-data"]);
    let snapshots = restic.snapshots();
    assert_eq!(snapshots.len(), 1, "{snapshots:#?}");
    assert_eq!(snapshots[0]["tags"], serde_json::json!(["nightly"]));
    let (_keep, dir) = restic.restore("latest");
    let base = dir.join(src.strip_prefix("/").unwrap());
    for (path, data) in files {
        assert!(std::fs::read(base.join(path)).unwrap() == *data, "{path}");
    }
    snapshots[0]["id"].as_str().unwrap_or_default().to_string()
}

fn leak(profiles: Profiles) -> &'static Profiles {
    Box::leak(Box::new(profiles))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fanned_out_snapshot_run_is_one_snapshot() {
    let stack = Stack::start();
    stack.azurite.create_container("fanned").await;
    let profiles = leak(stack.snapshot_profiles(PASSWORD));
    let (src, files) = tree(&stack, "snap-fanned", 7);
    let first = message(&src, "fanned", r#"{"part_max_files": 3}"#);
    let queue = || Run::on_queue(profiles, None, Duration::from_secs(60));
    let results = drain(first, queue, true).await;

    assert_eq!(results[0].status, JobStatus::Planned);
    assert_eq!(results[0].follow_up.len(), 3, "7 files, 3 a part");
    let merged: Vec<&JobResult> = results
        .iter()
        .filter(|r| r.run.as_ref().is_some_and(|run| run.complete))
        .collect();
    assert!(!merged.is_empty(), "the run completed");
    let report = merged[0].snapshot.as_ref().expect("the run's snapshot");
    assert_eq!(report.files_new, 7, "{report:#?}");
    let restic = Restic::from_blob(&stack, "fanned", "repo", PASSWORD).await;
    assert_eq!(judge(&restic, &src, &files), report.id);

    // The next run compares with that snapshot: nothing is new.
    let again = drain(
        message(&src, "fanned", r#"{"part_max_files": 3}"#),
        queue,
        false,
    )
    .await;
    let last = again.last().unwrap();
    let report = last.snapshot.as_ref().expect("merged");
    assert_eq!(
        (report.files_new, report.files_unmodified),
        (0, 7),
        "{report:#?}"
    );
    assert_eq!(
        Restic::from_blob(&stack, "fanned", "repo", PASSWORD)
            .await
            .snapshots()
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_run_handed_back_at_every_deadline_is_one_snapshot() {
    let stack = Stack::start();
    stack.azurite.create_container("deadlines").await;
    let profiles = leak(stack.snapshot_profiles(PASSWORD));
    let (src, files) = tree(&stack, "snap-deadlines", 4);
    // A deadline already at the margin when the invocation starts: each one archives one
    // file (always at least one) and hands back the rest with its slice.
    let short = || {
        let margin = Duration::from_secs(30);
        Run::on_queue(profiles, Some(Instant::now() + margin), margin)
    };
    let results = drain(message(&src, "deadlines", "{}"), short, false).await;
    assert_eq!(results.len(), 4, "one file an invocation: {results:#?}");
    assert!(results[..results.len() - 1]
        .iter()
        .all(|r| r.follow_up.len() == 1));
    let last = results.last().unwrap();
    assert!(last.run.as_ref().is_some_and(|r| r.complete), "{last:#?}");
    assert_eq!(last.snapshot.as_ref().map(|s| s.files_new), Some(4));
    let restic = Restic::from_blob(&stack, "deadlines", "repo", PASSWORD).await;
    judge(&restic, &src, &files);
}
