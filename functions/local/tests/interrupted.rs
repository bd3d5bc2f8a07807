//! A job killed mid-file (SIGKILL, nothing to clean up with) leaves no file under its final
//! name; the next run of the same job resumes from what was stored (Azure Files: the
//! temporary's written ranges; Blob: the staged blocks) and completes it.

use std::time::{Duration, Instant};

use harness::stack::{pattern, write_file, Stack};

fn nodes(stack: &Stack) -> Vec<(String, usize)> {
    stack.files.with_store(|s| {
        s.shares["killed"]
            .nodes
            .values()
            .filter_map(|n| match n {
                files_server::store::Node::File(f) => {
                    Some((f.props.name.clone(), f.written_end() as usize))
                }
                _ => None,
            })
            .collect()
    })
}

#[test]
fn a_killed_run_leaves_no_partial_file_and_the_next_run_finishes() {
    let stack = Stack::start();
    stack.files.create_share("killed");
    let src = stack.source_dir("killed");
    let data = pattern(96 * 1024 * 1024, 11);
    write_file(&src, "big.bin", &data);
    let message = format!(
        r#"{{"kind": "backup", "job_id": "k", "source": {{"storage": "office_nas", "path": "{}"}},
            "destination": {{"storage": "fileshare", "share": "killed"}},
            "options": {{"chunk_size": "256KiB", "upload_concurrency": 2}}}}"#,
        src.display()
    );
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_backup-worker"));
    // A killed writer cannot let its temporary go: the next attempt claims it once it has
    // been quiet this long.
    let env = [
        ("RUST_LOG", "warn"),
        ("BACKUP_STORAGE_FILESHARE_RESUME_AFTER_SECS", "1"),
    ];
    let run = || harness::runner::spawn(bin, &stack, &message, &env);

    // Kill the first run once a few MiB of the temporary are written.
    let mut first = run();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let written = nodes(&stack)
            .iter()
            .filter(|(n, _)| n.contains(".bw-partial-"))
            .map(|(_, l)| *l)
            .max();
        if written.is_some_and(|l| l > 4 * 1024 * 1024) {
            break;
        }
        assert!(Instant::now() < deadline, "the upload never started");
        assert!(
            first.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let left = nodes(&stack);
    assert!(
        left.iter().all(|(n, _)| n != "big.bin"),
        "a partial file is visible under its final name: {left:?}"
    );
    assert!(
        left.iter().any(|(n, _)| n.starts_with(".bw-partial-")),
        "{left:?}"
    );

    // The next run resumes from the ranges the temporary holds and renames it into place.
    std::thread::sleep(Duration::from_millis(2100));
    let out = run().wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let resumed = result["bytes"]["resumed"].as_u64().unwrap();
    assert!(
        resumed >= 4 * 1024 * 1024,
        "the written ranges were sent again: {result:#}"
    );
    let files = stack.files.files("killed");
    assert_eq!(
        files
            .iter()
            .map(|(n, d)| (n.as_str(), d.len()))
            .collect::<Vec<_>>(),
        [("big.bin", data.len())],
        "the temporary was consumed"
    );
    assert!(files[0].1 == data, "big.bin differs from the source");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_blob_upload_resumes_from_its_staged_blocks() {
    let stack = Stack::start();
    stack.azurite.create_container("resume").await;
    let src = stack.source_dir("resume");
    let data = pattern(64 * 1024 * 1024, 12);
    write_file(&src, "big.bin", &data);
    let message = format!(
        r#"{{"kind": "backup", "job_id": "r", "source": {{"storage": "office_nas", "path": "{}"}},
            "destination": {{"storage": "archive", "container": "resume"}},
            "options": {{"chunk_size": "256KiB", "upload_concurrency": 2}}}}"#,
        src.display()
    );
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_backup-worker"));
    let mut first = harness::runner::spawn(bin, &stack, &message, &[("RUST_LOG", "warn")]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while stack.azurite.uncommitted_blocks("resume", "big.bin").await < 16 {
        assert!(Instant::now() < deadline, "the upload never started");
        assert!(
            first.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(
        stack.azurite.list("resume").await.is_empty(),
        "nothing is visible before commit"
    );

    let out = harness::runner::run(bin, &stack, &message, &[("RUST_LOG", "warn")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let resumed = result["bytes"]["resumed"].as_u64().unwrap();
    assert!(
        resumed >= 16 * 256 * 1024,
        "staged blocks were sent again: {result:#}"
    );
    assert_eq!(result["bytes"]["copied"], data.len() as u64);
    assert_eq!(stack.azurite.read("resume", "big.bin").await, data);
    println!(
        "resumed {} of {} MiB after the kill",
        resumed / (1024 * 1024),
        data.len() / (1024 * 1024)
    );
}

/// A restore killed mid-file (SIGKILL) leaves the old file whole under its name, never a
/// half-written one; the next run removes the dead temporary and completes.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_restore_leaves_the_old_file_whole_and_the_next_run_completes() {
    use std::os::unix::fs::PermissionsExt;
    let stack = Stack::start();
    stack.azurite.create_container("restore-kill").await;
    let src = stack.source_dir("restore-kill-src");
    let data = pattern(64 * 1024 * 1024, 13);
    write_file(&src, "big.bin", &data);
    let backup = format!(
        r#"{{"kind": "backup", "job_id": "b", "source": {{"storage": "office_nas", "path": "{}"}},
            "destination": {{"storage": "archive", "container": "restore-kill"}}}}"#,
        src.display()
    );
    let r = stack.run(&backup).await;
    assert_eq!(r.files.copied, 1, "{r:#?}");

    let target = stack.sshd.data_dir().join("restore-kill-target");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o777)).unwrap();
    let old = b"the version that was here before the restore".to_vec();
    std::fs::write(target.join("big.bin"), &old).unwrap();
    std::fs::set_permissions(
        target.join("big.bin"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let restore = format!(
        r#"{{"kind": "restore", "job_id": "r",
            "source": {{"storage": "archive", "container": "restore-kill"}},
            "target": {{"storage": "office_nas", "path": "{}"}},
            "options": {{"chunk_size": "256KiB", "upload_concurrency": 2}}}}"#,
        target.display()
    );
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_backup-worker"));
    let temporaries = || -> Vec<(std::path::PathBuf, u64)> {
        std::fs::read_dir(&target)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".bw-partial-"))
            .map(|e| (e.path(), e.metadata().map(|m| m.len()).unwrap_or(0)))
            .collect()
    };

    let mut first = harness::runner::spawn(bin, &stack, &restore, &[("RUST_LOG", "warn")]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !temporaries().iter().any(|(_, len)| *len > 4 * 1024 * 1024) {
        assert!(
            Instant::now() < deadline,
            "the restore never started writing"
        );
        assert!(
            first.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(
        std::fs::read(target.join("big.bin")).unwrap(),
        old,
        "the old file is untouched"
    );
    let left = temporaries();
    assert_eq!(left.len(), 1, "{left:?}");

    // A temporary nobody touched for an hour is a dead run's: the next run removes it. The
    // server's sftp process may still be writing what the killed client had sent (which would
    // move the mtime forward again): wait until no process holds the file open, then age it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while held_open(&left[0].0) {
        assert!(Instant::now() < deadline, "the temporary stays open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3700);
    std::fs::File::options()
        .write(true)
        .open(&left[0].0)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    let out = harness::runner::run(bin, &stack, &restore, &[("RUST_LOG", "warn")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        std::fs::read(target.join("big.bin")).unwrap() == data,
        "big.bin is the backup's"
    );
    let left = temporaries();
    assert!(left.is_empty(), "the dead temporary was removed: {left:?}");
}

/// Whether any process has `path` open (the test runs as root and sees every process's fds).
fn held_open(path: &std::path::Path) -> bool {
    let fds = |pid: std::fs::DirEntry| {
        std::fs::read_dir(pid.path().join("fd"))
            .into_iter()
            .flatten()
    };
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(fds)
        .flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == path))
}
