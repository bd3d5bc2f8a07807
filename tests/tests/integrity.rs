//! The guarantees under the events a queue worker lives with: duplicate and concurrent
//! deliveries, a source rewritten with its mtime kept between two attempts, names that URL
//! handling would change, endpoints that never answer. Each test failed on the code before the
//! fix it guards (see the closing notes of the session that added it).

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use backup_common::job::{self, Run};
use backup_common::result::JobStatus;
use harness::fault::{through, FaultProxy, Policy};
use harness::stack::{error_codes, pattern, write_file, Stack};
use md5::{Digest, Md5};

fn backup(src: &Path, dest: &str, options: &str) -> String {
    format!(
        r#"{{"kind": "backup", "job_id": "integrity",
            "source": {{"storage": "office_nas", "path": "{}"}},
            "destination": {dest}, "options": {options}}}"#,
        src.display()
    )
}

const SMALL_CHUNKS: &str = r#"{"chunk_size": "256KiB", "upload_concurrency": 4}"#;

/// Every stored file is a whole source version: its bytes are the source's and its stored MD5
/// is the MD5 of its bytes.
async fn assert_blobs_whole(stack: &Stack, container: &str, expected: &[(String, Vec<u8>)]) {
    let mut names = stack.azurite.list(container).await;
    names.retain(|n| !n.starts_with(".backup-worker/"));
    let mut want: Vec<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    want.sort();
    assert_eq!(names, want);
    for (name, data) in expected {
        let stored = stack.azurite.read(container, name).await;
        assert!(stored == *data, "{name}: bytes differ from the source");
        let (md5, _) = stack.azurite.properties(container, name).await;
        assert_eq!(
            md5.as_deref(),
            Some(&Md5::digest(&stored)[..]),
            "{name}: Content-MD5"
        );
    }
}

fn assert_share_whole(stack: &Stack, share: &str, expected: &[(String, Vec<u8>)]) {
    let mut files = stack.files.files(share);
    files.retain(|(n, _)| !n.starts_with(".backup-worker/"));
    files.sort();
    let mut want = expected.to_vec();
    want.sort();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let want_names: Vec<&str> = want.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names, want_names,
        "files in the share (temporaries included)"
    );
    for ((name, stored), (_, data)) in files.iter().zip(&want) {
        assert!(stored == data, "{name}: bytes differ from the source");
        let (md5, _) = stack
            .files
            .file_properties(share, name)
            .expect("properties");
        assert_eq!(
            md5.as_deref(),
            Some(&Md5::digest(stored)[..]),
            "{name}: Content-MD5"
        );
    }
}

fn tree(src: &Path, seed: u64) -> Vec<(String, Vec<u8>)> {
    (0..5)
        .map(|i| {
            let name = format!("d{}/f{i}.bin", i % 2);
            let data = pattern(700 * 1024 + i * 4099, seed + i as u64);
            write_file(src, &name, &data);
            (name, data)
        })
        .collect()
}

/// Three deliveries of one job at once (the queue redelivered it while the first still ran):
/// each writer stages its own chunks, so whatever order they commit in, every file is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_of_one_job_commit_only_whole_files() {
    let stack = Stack::start();
    stack.azurite.create_container("dup").await;
    stack.files.create_share("dup");
    let src = stack.source_dir("dup");
    let expected = tree(&src, 40);
    for dest in [
        r#"{"storage": "archive", "container": "dup"}"#,
        r#"{"storage": "fileshare", "share": "dup"}"#,
    ] {
        let message = backup(&src, dest, SMALL_CHUNKS);
        let (a, b, c) = tokio::join!(
            stack.run(&message),
            stack.run(&message),
            stack.run(&message)
        );
        for r in [&a, &b, &c] {
            assert_eq!(r.status, JobStatus::Succeeded, "{dest}: {r:#?}");
            assert_eq!(r.files.copied + r.files.skipped, 5, "{dest}: {r:#?}");
        }
    }
    assert_blobs_whole(&stack, "dup", &expected).await;
    assert_share_whole(&stack, "dup", &expected);
    // And a later run finds nothing to do: what is there is what the source has.
    for dest in [
        r#"{"storage": "archive", "container": "dup"}"#,
        r#"{"storage": "fileshare", "share": "dup"}"#,
    ] {
        let again = stack.run(&backup(&src, dest, SMALL_CHUNKS)).await;
        assert_eq!((again.files.skipped, again.files.copied), (5, 0), "{dest}");
    }
}

/// A part handed back mid-file, then the file rewritten in place with its size and mtime kept:
/// the continuation must not reuse a single stale chunk, and what it commits is the new
/// content with its own MD5.
#[tokio::test(flavor = "multi_thread")]
async fn a_file_changed_with_its_mtime_kept_is_never_resumed_from_stale_chunks() {
    let stack = Stack::start();
    stack.azurite.create_container("stale").await;
    stack.files.create_share("stale");
    let src = stack.source_dir("stale");
    let profiles = stack.profiles();
    // The first invocation reads through a 20 MB/s link: its deadline falls mid-file on any
    // machine (48 MiB need 2.5 s; it has 0.7 s).
    let slow_link = FaultProxy::paced(stack.sshd.port, 20_000_000);
    let slow = through(&stack, &slow_link, &[]);
    for (dest, seed) in [
        (r#"{"storage": "archive", "container": "stale"}"#, 1),
        (r#"{"storage": "fileshare", "share": "stale"}"#, 2),
    ] {
        let old = pattern(48 * 1024 * 1024, seed);
        let path = write_file(&src, "big.bin", &old);
        let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let part = format!(
            r#"{{"kind": "backup", "job_id": "stale", "source": {{"storage": "office_nas", "path": "{}"}},
                "destination": {dest}, "options": {SMALL_CHUNKS},
                "part": {{"run_id": "stale-{seed}", "index": 0, "count": 1,
                          "files": [{{"path": "big.bin", "size": {}, "mtime": 1700000000}}]}}}}"#,
            src.display(),
            old.len()
        );
        let margin = Duration::from_secs(30);
        let short = Run::on_queue(
            &slow,
            Some(Instant::now() + margin + Duration::from_millis(700)),
            margin,
        );
        let first = job::run_message(&part, &short).await;
        assert_eq!(first.status, JobStatus::Continued, "{dest}: {first:#?}");

        // Rewritten in place: same size, mtime set back.
        let new = pattern(old.len(), seed + 100);
        std::fs::write(&path, &new).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();

        let second =
            job::run_message(&first.follow_up[0], &Run::on_queue(&profiles, None, margin)).await;
        assert_eq!(
            (second.status, second.files.copied),
            (JobStatus::Succeeded, 1),
            "{dest}: {second:#?}"
        );
        assert_eq!(second.bytes.resumed, 0, "{dest}: stale chunks were reused");
        if dest.contains("archive") {
            assert_blobs_whole(&stack, "stale", &[("big.bin".into(), new)]).await;
        } else {
            assert_share_whole(&stack, "stale", &[("big.bin".into(), new)]);
        }
    }
}

/// Names URL handling would change are refused per file, never stored under another name;
/// everything else is stored exactly, and two source paths never share a destination path.
#[tokio::test]
async fn every_name_is_stored_exactly_or_refused() {
    let stack = Stack::start();
    stack.azurite.create_container("names").await;
    stack.files.create_share("names");
    let src = stack.source_dir("names");
    for name in [
        "tab\there.txt",
        "tabhere.txt",
        "new\nline.txt",
        "newline.txt",
        "back\\slash.txt",
        "back/slash.txt",
        "100%25.txt",
        "100%.txt",
        "%41.txt",
        "A.txt",
        "plus+and space & more #1 ?.txt",
        "trailing.",
        "Case.txt",
        "case.txt",
        ".bw-partial-fake",
        ".backup-worker/runs/forged.json",
    ] {
        write_file(&src, name, name.as_bytes());
    }
    let blob = stack
        .run(&backup(
            &src,
            r#"{"storage": "archive", "container": "names"}"#,
            "{}",
        ))
        .await;
    let invalid = |names: &[&str]| -> Vec<(String, String)> {
        let mut v: Vec<_> = names
            .iter()
            .map(|n| (n.to_string(), "dest.invalid_name".to_string()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        error_codes(&blob),
        invalid(&[
            "tab\there.txt",
            "new\nline.txt",
            "back\\slash.txt",
            "trailing.",
            ".backup-worker/runs/forged.json"
        ])
    );
    assert_eq!(
        (blob.files.found, blob.files.copied, blob.files.failed),
        (16, 11, 5)
    );
    let mut stored = stack.azurite.list("names").await;
    stored.sort();
    let mut want = vec![
        "tabhere.txt",
        "newline.txt",
        "back/slash.txt",
        "100%25.txt",
        "100%.txt",
        "%41.txt",
        "A.txt",
        "plus+and space & more #1 ?.txt",
        "Case.txt",
        "case.txt",
        ".bw-partial-fake",
    ];
    want.sort();
    assert_eq!(stored, want);
    for name in &want {
        assert_eq!(
            stack.azurite.read("names", name).await,
            name.as_bytes(),
            "{name}"
        );
    }

    let files = stack
        .run(&backup(
            &src,
            r#"{"storage": "fileshare", "share": "names"}"#,
            "{}",
        ))
        .await;
    let refused: Vec<String> = error_codes(&files).into_iter().map(|(p, _)| p).collect();
    assert!(
        refused.contains(&"tab\there.txt".to_string()),
        "{refused:?}"
    );
    assert!(
        refused.contains(&".bw-partial-fake".to_string()),
        "{refused:?}"
    );
    assert!(
        refused.contains(&".backup-worker/runs/forged.json".to_string()),
        "{refused:?}"
    );
    // Exactly one of two names that differ only in case is refused, naming the other.
    let case_clash = files
        .errors
        .iter()
        .find(|e| matches!(e.path.as_deref(), Some("case.txt" | "Case.txt")))
        .expect("one of Case.txt / case.txt is refused");
    assert!(
        case_clash.error.message.contains("ignore case"),
        "{}",
        case_clash.error.message
    );
    assert_eq!(files.files.copied + files.files.failed, files.files.found);
    for (name, data) in stack.files.files("names") {
        assert_eq!(data, name.as_bytes(), "{name} holds another file's bytes");
    }
}

/// An endpoint that accepts TCP and then says nothing: Test Connection names a timeout at the
/// `connect` step within seconds, and a backup fails with `azure.timeout` instead of hanging.
#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_that_never_answers_is_a_timeout_at_its_step() {
    let stack = Stack::start();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    // Accept and hold every connection without a byte in reply.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming() {
            held.push(conn);
        }
    });
    let mut vars = stack.vars();
    for storage in ["ARCHIVE", "FILESHARE"] {
        vars.insert(
            format!("BACKUP_STORAGE_{storage}_ENDPOINT"),
            format!("http://127.0.0.1:{port}/devstoreaccount1"),
        );
        vars.insert(
            format!("BACKUP_STORAGE_{storage}_REQUEST_TIMEOUT"),
            "2".into(),
        );
    }
    let profiles = backup_common::config::Profiles::from_vars(vars);
    for dest in [
        r#"{"storage": "archive", "container": "silent"}"#,
        r#"{"storage": "fileshare", "share": "silent"}"#,
    ] {
        let started = Instant::now();
        let check = stack
            .run_with(
                &format!(r#"{{"kind": "test_connection", "destination": {dest}}}"#),
                &profiles,
            )
            .await;
        let took = started.elapsed();
        assert_eq!(check.status, JobStatus::Failed, "{check:#?}");
        let failed = &check.checks[0];
        assert_eq!(failed.failed_step.as_deref(), Some("connect"), "{check:#?}");
        let error = failed.error.as_ref().expect("an error");
        assert_eq!(error.code, "azure.timeout", "{error:?}");
        assert!(
            error.message.contains("Timeout Errors"),
            "{}",
            error.message
        );
        assert!(
            took < Duration::from_secs(15),
            "Test Connection took {took:?}"
        );

        let src = stack.source_dir("silent");
        write_file(&src, "a.txt", b"a");
        let started = Instant::now();
        let run = stack.run_with(&backup(&src, dest, "{}"), &profiles).await;
        assert_eq!(run.status, JobStatus::Failed, "{run:#?}");
        assert_eq!(run.errors[0].error.code, "azure.timeout", "{run:#?}");
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the backup took {:?}",
            started.elapsed()
        );
    }
}

/// A request that keeps failing is retried a bounded number of times, honouring `Retry-After`
/// (in seconds and as a date, in turn), and then fails for good, saying how many attempts
/// were made; the next run copies the file.
#[tokio::test(flavor = "multi_thread")]
async fn exhausted_retries_are_final_and_say_how_many_attempts() {
    let stack = Stack::start();
    stack.files.create_share("busy");
    let src = stack.source_dir("busy");
    write_file(&src, "a.txt", b"a");
    let message = backup(&src, r#"{"storage": "fileshare", "share": "busy"}"#, "{}");
    // Enough 503s for the listing to give up.
    stack.files.fail_next(5, 503);
    let started = Instant::now();
    let r = stack.run(&message).await;
    let took = started.elapsed();
    assert_eq!(r.status, JobStatus::Failed, "{r:#?}");
    let error = &r.errors[0].error;
    assert!(
        error.message.contains("gave up after 5 attempts"),
        "{}",
        error.message
    );
    assert!(!error.retryable, "an exhausted error is final");
    // Four waits of Retry-After (1 s, or a date about 1 s ahead): the service's word was kept.
    assert!(
        took >= Duration::from_secs(2),
        "retried without waiting: {took:?}"
    );
    let again = stack.run(&message).await;
    assert_eq!(
        (again.status, again.files.copied),
        (JobStatus::Succeeded, 1),
        "{again:#?}"
    );
}

/// Blob through the SDK's pipeline, with our policy: 503/429 bursts (in front of Azurite) are
/// waited out as `Retry-After` asks, in seconds and as a date; a burst longer than the attempts
/// fails for good, naming them.
#[tokio::test(flavor = "multi_thread")]
async fn blob_busy_answers_are_waited_out_then_final() {
    let stack = Stack::start();
    stack.azurite.create_container("busy").await;
    let src = stack.source_dir("blobbusy");
    write_file(&src, "a.txt", b"a");
    let endpoint = stack.azurite.endpoint();
    let port: u16 = endpoint
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("Azurite's port");
    let message = backup(&src, r#"{"storage": "archive", "container": "busy"}"#, "{}");
    for (busy, succeeds) in [(3, true), (8, false)] {
        let proxy = FaultProxy::start(
            port,
            Policy {
                busy_answers: busy,
                ..Policy::default()
            },
        );
        let mut vars = stack.vars();
        vars.insert(
            "BACKUP_STORAGE_ARCHIVE_ENDPOINT".into(),
            endpoint.replace(&format!(":{port}/"), &format!(":{}/", proxy.port)),
        );
        let profiles = backup_common::config::Profiles::from_vars(vars);
        let started = Instant::now();
        let r = stack.run_with(&message, &profiles).await;
        let took = started.elapsed();
        if succeeds {
            assert_eq!(
                (r.status, r.files.copied),
                (JobStatus::Succeeded, 1),
                "{r:#?}"
            );
            // 1 s, a date at least 1 s ahead, 1 s.
            assert!(
                took >= Duration::from_secs(3),
                "Retry-After was not waited for: {took:?}"
            );
        } else {
            assert_eq!(r.status, JobStatus::Failed, "{r:#?}");
            let error = &r.errors[0].error;
            assert!(
                error.message.contains("gave up after 5 attempts"),
                "{}",
                error.message
            );
            assert!(!error.retryable);
        }
        assert!(
            proxy.faults() >= busy.min(5),
            "{} busy answers",
            proxy.faults()
        );
    }
}

/// A Rename that happened but whose answer was lost: the retry finds its source gone, checks
/// the target, and counts the file as copied (once, with its bytes and MD5 in place).
#[tokio::test]
async fn a_commit_whose_answer_was_lost_is_not_a_failed_file() {
    let stack = Stack::start();
    stack.files.create_share("lost");
    let src = stack.source_dir("lost");
    let data = pattern(600 * 1024, 31);
    write_file(&src, "big.bin", &data);
    stack.files.lose_answer_of_next("rename");
    let r = stack
        .run(&backup(
            &src,
            r#"{"storage": "fileshare", "share": "lost"}"#,
            SMALL_CHUNKS,
        ))
        .await;
    assert_eq!(
        (r.status, r.files.copied, r.files.failed),
        (JobStatus::Succeeded, 1, 0),
        "{r:#?}"
    );
    assert_share_whole(&stack, "lost", &[("big.bin".into(), data)]);
}
