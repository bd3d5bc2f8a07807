//! Big jobs on a queue, driven in-process with a plain VecDeque as the queue: planning into
//! parts, part lists stored beside the data, duplicate deliveries, hand-back before a deadline,
//! and the summary the last part writes. (The same messages go through real SQS in
//! functions/local/tests/poll.rs.)

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use backup_common::job::{self, Run};
use backup_common::result::{JobResult, JobStatus};
use harness::fault::{through, FaultProxy};
use harness::stack::{write_file, Stack};
use serde_json::Value;

fn message(src: &std::path::Path, dest: &str, options: &str) -> String {
    format!(
        r#"{{"kind": "backup", "job_id": "big-job", "source": {{"storage": "office_nas", "path": "{}"}},
            "destination": {dest}, "options": {options}}}"#,
        src.display()
    )
}

/// Run messages until the queue is empty; returns every result in order.
async fn drain(stack: &Stack, first: String, duplicate_first_part: bool) -> Vec<JobResult> {
    let profiles = stack.profiles();
    let mut queue = VecDeque::from([first]);
    let mut results = Vec::new();
    let mut duplicated = !duplicate_first_part;
    while let Some(msg) = queue.pop_front() {
        let result = job::run_message(
            &msg,
            &Run::on_queue(&profiles, None, Duration::from_secs(60)),
        )
        .await;
        if !duplicated && result.part.is_some() {
            // At-least-once delivery: the same part arrives twice.
            queue.push_back(msg.clone());
            duplicated = true;
        }
        queue.extend(result.follow_up.iter().cloned());
        results.push(result);
    }
    results
}

fn data_blobs(names: Vec<String>) -> Vec<String> {
    names
        .into_iter()
        .filter(|n| !n.contains(".backup-worker/"))
        .collect()
}

#[tokio::test]
async fn a_big_job_is_planned_into_parts_and_summarised_once_all_are_done() {
    let stack = Stack::start();
    stack.azurite.create_container("fan").await;
    let src = stack.source_dir("fan");
    for i in 0..10 {
        write_file(
            &src,
            &format!("d{}/f{i}.txt", i % 3),
            format!("file {i}").as_bytes(),
        );
    }
    let first = message(
        &src,
        r#"{"storage": "archive", "container": "fan", "prefix": "p"}"#,
        r#"{"part_max_files": 3}"#,
    );
    let results = drain(&stack, first, true).await;

    let planned = &results[0];
    assert_eq!(planned.status, JobStatus::Planned, "{planned:#?}");
    let run = planned.run.clone().unwrap();
    assert_eq!((run.parts, planned.follow_up.len()), (4, 4));
    assert_eq!(planned.files.copied, 0, "the planner copies nothing");

    let parts: Vec<&JobResult> = results[1..].iter().collect();
    assert_eq!(parts.len(), 5, "four parts, one delivered twice");
    assert!(
        parts
            .iter()
            .all(|r| r.status == JobStatus::Succeeded
                && r.part.as_ref().unwrap().run_id == run.run_id)
    );
    let complete: Vec<&&JobResult> = parts
        .iter()
        .filter(|r| r.run.as_ref().is_some_and(|r| r.complete))
        .collect();
    assert!(!complete.is_empty(), "the last part saw every part done");

    // Every file exactly once, and a summary with the totals.
    let mut expected: Vec<String> = (0..10).map(|i| format!("p/d{}/f{i}.txt", i % 3)).collect();
    expected.sort();
    assert_eq!(data_blobs(stack.azurite.list("fan").await), expected);
    let summary: Value = serde_json::from_slice(
        &stack
            .azurite
            .read(
                "fan",
                &format!("p/.backup-worker/runs/{}/summary.json", run.run_id),
            )
            .await,
    )
    .unwrap();
    assert_eq!(summary["complete"], true);
    assert_eq!(summary["parts"], 4);
    assert_eq!(
        summary["files"]["copied"].as_u64().unwrap()
            + summary["files"]["skipped"].as_u64().unwrap(),
        10
    );
    assert_eq!(summary["files"]["failed"], 0);

    // A later run of the same job finds nothing to do and plans nothing.
    let again = drain(
        &stack,
        message(
            &src,
            r#"{"storage": "archive", "container": "fan", "prefix": "p"}"#,
            r#"{"part_max_files": 3}"#,
        ),
        false,
    )
    .await;
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].status, again[0].files.skipped),
        (JobStatus::Succeeded, 10)
    );
}

#[tokio::test]
async fn long_part_lists_are_stored_beside_the_data() {
    let stack = Stack::start();
    stack.azurite.create_container("manifest").await;
    let src = stack.source_dir("manifest");
    let long = "n".repeat(180);
    for i in 0..300 {
        write_file(&src, &format!("{long}-{i:04}.txt"), b"x");
    }
    let first = message(
        &src,
        r#"{"storage": "archive", "container": "manifest"}"#,
        r#"{"part_max_files": 200}"#,
    );
    let results = drain(&stack, first, false).await;
    let messages: Vec<Value> = results[0]
        .follow_up
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect();
    assert_eq!(messages.len(), 2);
    assert!(
        messages[0]["part"]["manifest"].is_string(),
        "200 long names do not fit a message"
    );
    assert!(messages[1]["part"]["files"].is_array(), "100 do");
    assert!(
        results[0].follow_up.iter().all(|m| m.len() < 48 * 1024),
        "every message fits Azure Queue"
    );
    assert_eq!(data_blobs(stack.azurite.list("manifest").await).len(), 300);
    assert!(results.last().unwrap().run.as_ref().unwrap().complete);
}

#[tokio::test]
async fn a_part_handed_back_at_its_deadline_finishes_in_the_next_invocation() {
    let stack = Stack::start();
    stack.azurite.create_container("deadline").await;
    let src = stack.source_dir("deadline");
    for i in 0..4 {
        write_file(&src, &format!("f{i}.txt"), b"data");
    }
    let profiles = stack.profiles();
    let first = message(
        &src,
        r#"{"storage": "archive", "container": "deadline"}"#,
        r#"{"part_max_files": 2}"#,
    );
    let planned = job::run_message(
        &first,
        &Run::on_queue(&profiles, None, Duration::from_secs(60)),
    )
    .await;
    assert_eq!(planned.follow_up.len(), 2);

    // An invocation already inside its margin takes no file and hands the part back whole.
    let part = &planned.follow_up[0];
    let short = Run::on_queue(
        &profiles,
        Some(Instant::now() + Duration::from_secs(5)),
        Duration::from_secs(30),
    );
    let handed = job::run_message(part, &short).await;
    assert_eq!(handed.status, JobStatus::Continued, "{handed:#?}");
    assert_eq!((handed.files.copied, handed.follow_up.len()), (0, 1));
    let rest: Value = serde_json::from_str(&handed.follow_up[0]).unwrap();
    assert_eq!(rest["part"]["files"].as_array().unwrap().len(), 2);

    // The next invocation has time and finishes it; the other part completes the run.
    let finished = job::run_message(
        &handed.follow_up[0],
        &Run::on_queue(&profiles, None, Duration::from_secs(60)),
    )
    .await;
    assert_eq!(
        (finished.status, finished.files.copied),
        (JobStatus::Succeeded, 2)
    );
    let last = job::run_message(
        &planned.follow_up[1],
        &Run::on_queue(&profiles, None, Duration::from_secs(60)),
    )
    .await;
    assert!(last.run.unwrap().complete);
    assert_eq!(data_blobs(stack.azurite.list("deadline").await).len(), 4);
}

#[tokio::test]
async fn fan_out_works_into_azure_files_too() {
    let stack = Stack::start();
    stack.files.create_share("fanshare");
    let src = stack.source_dir("fanfiles");
    for i in 0..7 {
        write_file(&src, &format!("dir/f{i}.txt"), format!("{i}").as_bytes());
    }
    let first = message(
        &src,
        r#"{"storage": "fileshare", "share": "fanshare", "prefix": "nas"}"#,
        r#"{"part_max_files": 3}"#,
    );
    let results = drain(&stack, first, true).await;
    assert_eq!(results[0].status, JobStatus::Planned);
    assert!(
        results.last().unwrap().run.as_ref().unwrap().complete,
        "{:#?}",
        results.last()
    );
    let files = stack.files.files("fanshare");
    let data: Vec<&String> = files
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !n.contains(".backup-worker/"))
        .collect();
    assert_eq!(data.len(), 7);
    assert!(files.iter().any(|(n, _)| n.ends_with("summary.json")));
}

#[tokio::test]
async fn a_file_too_big_for_one_invocation_is_handed_back_mid_way_and_resumed() {
    let stack = Stack::start();
    stack.azurite.create_container("midway").await;
    let src = stack.source_dir("midway");
    let path = src.join("huge.bin");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&path).unwrap();
        for i in 0..256 {
            f.write_all(&harness::stack::pattern(1024 * 1024, i))
                .unwrap();
        }
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
    }
    let meta = std::fs::metadata(&path).unwrap();
    let mtime = meta
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let part = format!(
        r#"{{"kind": "backup", "job_id": "midway", "source": {{"storage": "office_nas", "path": "{}"}},
            "destination": {{"storage": "archive", "container": "midway"}},
            "options": {{"chunk_size": "1MiB", "upload_concurrency": 4}},
            "part": {{"run_id": "midway-1", "index": 0, "count": 1,
                      "files": [{{"path": "huge.bin", "size": {}, "mtime": {mtime}}}]}}}}"#,
        src.display(),
        meta.len()
    );
    let profiles = stack.profiles();
    // 1.5 s before the margin, through a 100 MB/s link: too little for 256 MiB on any
    // machine (2.7 s at least), enough to start.
    let paced = FaultProxy::paced(stack.sshd.port, 100_000_000);
    let slow = through(&stack, &paced, &[]);
    let margin = Duration::from_secs(30);
    let short = Run::on_queue(
        &slow,
        Some(Instant::now() + margin + Duration::from_millis(1500)),
        margin,
    );
    let first = job::run_message(&part, &short).await;
    assert_eq!(first.status, JobStatus::Continued, "{first:#?}");
    assert_eq!((first.files.copied, first.follow_up.len()), (0, 1));
    assert!(
        stack
            .azurite
            .list("midway")
            .await
            .iter()
            .all(|n| n.starts_with(".backup-worker/")),
        "nothing visible yet"
    );
    let staged = stack.azurite.uncommitted_blocks("midway", "huge.bin").await;
    assert!(
        staged > 0,
        "the first invocation staged blocks before handing back"
    );

    let second =
        job::run_message(&first.follow_up[0], &Run::on_queue(&profiles, None, margin)).await;
    assert_eq!(
        (second.status, second.files.copied),
        (JobStatus::Succeeded, 1),
        "{second:#?}"
    );
    assert!(
        second.bytes.resumed >= staged as u64 * 1024 * 1024,
        "{:?}",
        second.bytes
    );
    assert!(second.run.as_ref().unwrap().complete);
    let got = stack.azurite.read("midway", "huge.bin").await;
    assert_eq!(got.len(), 256 * 1024 * 1024);
    assert!(got
        .chunks(1024 * 1024)
        .enumerate()
        .all(|(i, c)| c == harness::stack::pattern(1024 * 1024, i as u64)));
}

/// An incremental run in parts: the summary adds the planner's own counts (unchanged files,
/// exclusions, links) to the parts', and a part delivered twice checks its files one by one at
/// the destination (no listing of the whole tree), so the second delivery copies nothing.
#[tokio::test]
async fn an_incremental_run_in_parts_is_summarised_whole() {
    let stack = Stack::start();
    stack.azurite.create_container("incr").await;
    let src = stack.source_dir("incr");
    for i in 0..10 {
        write_file(&src, &format!("f{i}.txt"), format!("file {i}").as_bytes());
    }
    let dest = r#"{"storage": "archive", "container": "incr", "prefix": "p"}"#;
    let options = r#"{"part_max_files": 2}"#;
    let first = drain(&stack, message(&src, dest, options), false).await;
    assert!(first.iter().all(|r| r.status != JobStatus::Failed));

    // Six files change; one new file is excluded; one link is not followed.
    for i in 0..6 {
        write_file(
            &src,
            &format!("f{i}.txt"),
            format!("changed {i}!").as_bytes(),
        );
    }
    write_file(&src, "scratch.tmp", b"left out");
    std::os::unix::fs::symlink(src.join("f0.txt"), src.join("link")).unwrap();
    let second =
        message(&src, dest, options).replace(r#""options""#, r#""exclude": ["*.tmp"], "options""#);
    let results = drain(&stack, second, true).await;
    let planned = &results[0];
    assert_eq!(planned.status, JobStatus::Planned, "{planned:#?}");
    let run = planned.run.clone().unwrap();
    assert_eq!(run.parts, 3, "six changed files in parts of two");

    // The duplicated delivery of the first part found its files already there.
    let first_part = &results[1].part.clone().unwrap();
    let deliveries: Vec<&JobResult> = results
        .iter()
        .filter(|r| r.part.as_ref() == Some(first_part))
        .collect();
    assert_eq!(deliveries.len(), 2);
    assert_eq!(
        (deliveries[1].files.copied, deliveries[1].files.skipped),
        (0, 2),
        "{:#?}",
        deliveries[1]
    );

    let summary: Value = serde_json::from_slice(
        &stack
            .azurite
            .read(
                "incr",
                &format!("p/.backup-worker/runs/{}/summary.json", run.run_id),
            )
            .await,
    )
    .unwrap();
    let files = &summary["files"];
    assert_eq!(files["found"], 10, "{summary:#}");
    assert_eq!(files["excluded"], 1, "{summary:#}");
    assert_eq!(files["symlinks_skipped"], 1, "{summary:#}");
    assert_eq!(files["failed"], 0, "{summary:#}");
    let (copied, skipped) = (
        files["copied"].as_u64().unwrap(),
        files["skipped"].as_u64().unwrap(),
    );
    assert_eq!(copied + skipped, 10, "{summary:#}");
    assert!(
        skipped >= 4,
        "the planner's unchanged files count: {summary:#}"
    );
}

/// A big restore fans out like a backup: planned into parts on the queue, each part (one of
/// them delivered twice) restores its files, the last writes the summary in the target.
#[tokio::test]
async fn a_big_restore_is_planned_into_parts() {
    use std::os::unix::fs::PermissionsExt;
    let stack = Stack::start();
    stack.files.create_share("restore-parts");
    let src = stack.source_dir("restore-parts");
    for i in 0..7 {
        write_file(
            &src,
            &format!("d{}/f{i}.txt", i % 2),
            format!("file {i}").as_bytes(),
        );
    }
    let dest = r#"{"storage": "fileshare", "share": "restore-parts", "prefix": "m"}"#;
    let backup = drain(&stack, message(&src, dest, "{}"), false).await;
    assert_eq!(backup[0].files.copied, 7, "{:#?}", backup[0]);

    let target = stack.sshd.data_dir().join("restore-parts-target");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o777)).unwrap();
    let restore = format!(
        r#"{{"kind": "restore", "job_id": "big-restore",
            "source": {{"storage": "fileshare", "share": "restore-parts", "prefix": "m"}},
            "target": {{"storage": "office_nas", "path": "{}"}},
            "options": {{"part_max_files": 2}}}}"#,
        target.display()
    );
    let results = drain(&stack, restore, true).await;
    let planned = &results[0];
    assert_eq!(planned.status, JobStatus::Planned, "{planned:#?}");
    let run = planned.run.clone().unwrap();
    assert_eq!(run.parts, 4);
    assert_eq!(results.len(), 6, "four parts, one delivered twice");
    assert!(results[1..]
        .iter()
        .all(|r| r.kind == "restore" && r.status == JobStatus::Succeeded));
    for i in 0..7 {
        let rel = format!("d{}/f{i}.txt", i % 2);
        assert_eq!(
            std::fs::read(target.join(&rel)).unwrap(),
            format!("file {i}").as_bytes()
        );
    }
    // The run's state is beside the mirror, not in the restored tree.
    assert!(!target.join(".backup-worker").exists());
    let summary_path = format!("m/.backup-worker/runs/{}/summary.json", run.run_id);
    let (_, summary) = stack
        .files
        .files("restore-parts")
        .into_iter()
        .find(|(name, _)| *name == summary_path)
        .unwrap_or_else(|| panic!("no {summary_path}"));
    let summary: Value = serde_json::from_slice(&summary).unwrap();
    assert_eq!(summary["files"]["found"], 7, "{summary:#}");
    assert_eq!(summary["files"]["failed"], 0, "{summary:#}");
}
