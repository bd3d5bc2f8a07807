//! SFTP → Azure Files backups: sshd on loopback and the Azure Files test server (itself proven
//! against Microsoft's SDK and rclone).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backup_common::config::Profiles;
use backup_common::result::JobStatus;
use harness::stack::{error_codes, pattern, write_file, Stack};
use md5::{Digest, Md5};

fn message(path: &Path, share: &str, prefix: &str, extra: &str) -> String {
    format!(
        r#"{{"kind": "backup", "job_id": "f",
            "source": {{"storage": "office_nas", "path": "{}"}},
            "destination": {{"storage": "fileshare", "share": "{share}", "prefix": "{prefix}"}}
            {extra}}}"#,
        path.display()
    )
}

const SMALL_CHUNKS: &str = r#", "options": {"chunk_size": "1MiB", "upload_concurrency": 4}"#;

/// A source file's modification time, in Unix seconds.
fn mtime_of(path: &Path) -> i64 {
    fs::metadata(path)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sorted(mut v: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    v.sort();
    v
}

#[tokio::test]
async fn a_tree_lands_in_a_share_byte_for_byte() {
    let stack = Stack::start();
    stack.files.create_share("tree");
    let src = stack.source_dir("ftree");
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("empty.txt", vec![]),
        ("big.bin", pattern(9 * 1024 * 1024 + 5, 3)),
        ("ünïcødé/naïve café.txt", b"unicode".to_vec()),
        ("with space/a b + c&d.txt", b"spaces".to_vec()),
        ("a/b/c/deep.txt", b"deep".to_vec()),
    ];
    for (rel, data) in &files {
        write_file(&src, rel, data);
    }
    // Names Azure Files forbids: per-file errors, the rest goes on.
    write_file(&src, "what?.txt", b"q");
    write_file(&src, "dir/colon:name.txt", b"c");
    std::os::unix::fs::symlink(src.join("big.bin"), src.join("link")).unwrap();
    let unreadable = write_file(&src, "secret.txt", b"no");
    fs::set_permissions(&unreadable, fs::Permissions::from_mode(0o000)).unwrap();

    let r = stack
        .run(&message(&src, "tree", "nas/daily", SMALL_CHUNKS))
        .await;
    assert_eq!(r.status, JobStatus::PartiallyFailed, "{r:#?}");
    assert_eq!(
        (r.files.copied, r.files.failed, r.files.symlinks_skipped),
        (5, 3, 1)
    );
    assert_eq!(
        error_codes(&r),
        [
            (
                "dir/colon:name.txt".to_string(),
                "dest.invalid_name".to_string()
            ),
            (
                "secret.txt".to_string(),
                "sftp.permission_denied".to_string()
            ),
            ("what?.txt".to_string(), "dest.invalid_name".to_string()),
        ]
    );
    let bad_name = r
        .errors
        .iter()
        .find(|e| e.path.as_deref() == Some("what?.txt"))
        .unwrap();
    assert!(
        bad_name.error.message.contains("`?`"),
        "{}",
        bad_name.error.message
    );

    let expected: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(rel, d)| (format!("nas/daily/{rel}"), d.clone()))
        .collect();
    assert_eq!(
        sorted(stack.files.files("tree")),
        sorted(expected),
        "exactly the good files, complete, no temporaries"
    );
    for (rel, data) in &files {
        let path = format!("nas/daily/{rel}");
        let (md5, mtime) = stack.files.file_properties("tree", &path).unwrap();
        assert_eq!(
            md5.as_deref(),
            Some(&Md5::digest(data)[..]),
            "{path} Content-MD5"
        );
        let source_mtime = mtime_of(&src.join(rel));
        assert_eq!(
            mtime, source_mtime,
            "{path}: last write time is the source mtime"
        );
    }

    // Our own client reads what was stored, whole and by range.
    let profiles = stack.profiles();
    let cfg = backup_common::storage::files::FilesConfig::from_profile(
        &profiles.profile("fileshare").unwrap(),
    )
    .unwrap();
    let client =
        backup_common::storage::files::client::FilesClient::new(&cfg, "tree".into()).unwrap();
    let big = &files[1].1;
    assert_eq!(
        client.read("nas/daily/big.bin", None).await.unwrap(),
        big[..]
    );
    assert_eq!(
        client
            .read("nas/daily/big.bin", Some((5_000_000, 10)))
            .await
            .unwrap(),
        big[5_000_000..5_000_010]
    );
    let missing = client.read("nas/daily/nope.bin", None).await.unwrap_err();
    assert_eq!(missing.code(), "azure.http_error", "{missing}");

    // The same job again: everything unchanged is skipped (sizes and LastWriteTime match).
    fs::set_permissions(&unreadable, fs::Permissions::from_mode(0o644)).unwrap();
    fs::remove_file(src.join("what?.txt")).unwrap();
    fs::remove_file(src.join("dir/colon:name.txt")).unwrap();
    let again = stack
        .run(&message(&src, "tree", "nas/daily", SMALL_CHUNKS))
        .await;
    assert_eq!(again.status, JobStatus::Succeeded, "{again:#?}");
    assert_eq!(
        (again.files.copied, again.files.skipped),
        (1, 5),
        "only secret.txt is new"
    );
}

#[tokio::test]
async fn a_chunk_size_above_four_mib_is_rejected_for_files() {
    let stack = Stack::start();
    stack.files.create_share("big-chunks");
    let src = stack.source_dir("fchunk");
    write_file(&src, "a.txt", b"a");
    let r = stack
        .run(&message(
            &src,
            "big-chunks",
            "",
            r#", "options": {"chunk_size": "8MiB"}"#,
        ))
        .await;
    assert_eq!(r.status, JobStatus::Failed);
    assert_eq!(r.errors[0].error.code, "message.invalid_field");
    assert!(
        r.errors[0].error.message.contains("`options.chunk_size`"),
        "{r:#?}"
    );
    assert!(r.errors[0].error.message.contains("4MiB"), "{r:#?}");
    assert!(stack.files.files("big-chunks").is_empty());
}

#[test]
fn a_watcher_never_sees_a_partial_file_under_its_final_name() {
    let stack = Stack::start();
    stack.files.create_share("watched");
    let src = stack.source_dir("fwatch");
    let data = pattern(24 * 1024 * 1024, 9);
    let expected_md5 = Md5::digest(&data).to_vec();
    write_file(&src, "large.bin", &data);

    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        let files = &stack.files;
        let (mut saw_temporary, mut partial_views) = (false, 0);
        std::thread::scope(|scope| {
            let watch = scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    for (name, len, md5) in files.with_store(|s| {
                        s.shares["watched"]
                            .nodes
                            .values()
                            .filter_map(|n| match n {
                                files_server::store::Node::File(f) => Some((
                                    f.props.name.clone(),
                                    f.written_end() as usize,
                                    f.http.content_md5.clone(),
                                )),
                                _ => None,
                            })
                            .collect::<Vec<_>>()
                    }) {
                        if name.contains(".bw-partial-") {
                            saw_temporary = true;
                        } else if name == "large.bin"
                            && (len != data.len() || md5.as_ref() != Some(&expected_md5))
                        {
                            partial_views += 1;
                        }
                    }
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                (saw_temporary, partial_views)
            });
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let r = runtime.block_on(stack.run(&message(&src, "watched", "", SMALL_CHUNKS)));
            assert_eq!(r.status, JobStatus::Succeeded, "{r:#?}");
            done.store(true, Ordering::Relaxed);
            watch.join().unwrap()
        })
    };
    let (saw_temporary, partial_views) = watcher;
    assert!(saw_temporary, "the upload went through a temporary name");
    assert_eq!(
        partial_views, 0,
        "a partial file was visible under its final name"
    );
    assert_eq!(
        stack.files.files("watched"),
        [("large.bin".to_string(), data)]
    );
}

#[tokio::test]
async fn temporaries_of_an_interrupted_run_are_removed_by_the_next_run() {
    let stack = Stack::start();
    stack.files.create_share("stale");
    let src = stack.source_dir("fstale");
    write_file(&src, "dir/a.txt", b"a");
    // What a killed run leaves behind: a half-written temporary beside the final name, untouched
    // for two hours; and one written a moment ago (another worker's, in progress) that must stay.
    let first = stack.run(&message(&src, "stale", "p", "")).await;
    assert_eq!(first.files.copied, 1);
    let temporary = |name: &str, age: Duration| {
        let mut props = files_server::store::Props::new(name, Vec::new());
        props.last_modified = std::time::SystemTime::now() - age;
        let mut file = files_server::store::File::new(props, 1000);
        file.write(0, &[1; 10]);
        file.mark(0, 9, false);
        files_server::store::Node::File(Box::new(file))
    };
    let (dead, busy) = (
        "p/dir/.bw-partial-0000dead-1-0000",
        "p/dir/.bw-partial-0000busy-2-0000",
    );
    stack.files.with_store(|s| {
        let share = s.shares.get_mut("stale").unwrap();
        share.nodes.insert(
            dead.to_lowercase(),
            temporary(dead, Duration::from_secs(2 * 3600)),
        );
        share
            .nodes
            .insert(busy.to_lowercase(), temporary(busy, Duration::from_secs(5)));
    });
    assert_eq!(stack.files.files("stale").len(), 3);
    let second = stack.run(&message(&src, "stale", "p", "")).await;
    assert_eq!(second.status, JobStatus::Succeeded, "{second:#?}");
    assert_eq!(
        second.files.skipped, 1,
        "temporaries are not taken for data"
    );
    let mut left: Vec<String> = stack
        .files
        .files("stale")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    left.sort();
    assert_eq!(
        left,
        [busy, "p/dir/a.txt"],
        "the dead temporary is gone, the busy one kept"
    );
}

#[tokio::test]
async fn busy_responses_are_retried_after_the_time_the_server_asks() {
    let stack = Stack::start();
    stack.files.create_share("busy");
    let src = stack.source_dir("fbusy");
    write_file(&src, "x.bin", &pattern(3 * 1024 * 1024, 4));
    stack.files.fail_next(2, 503);
    let started = std::time::Instant::now();
    let r = stack.run(&message(&src, "busy", "", SMALL_CHUNKS)).await;
    assert_eq!(r.status, JobStatus::Succeeded, "{r:#?}");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "Retry-After: 1 was honoured twice"
    );
    assert_eq!(stack.files.files("busy")[0].1, pattern(3 * 1024 * 1024, 4));
}

#[tokio::test]
async fn a_small_file_costs_three_requests_and_a_big_ones_ranges_carry_crc64_or_md5() {
    let stack = Stack::start();
    let src = stack.source_dir("flean");
    let small: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("d/small-{i}.txt"), pattern(1000 + i, i as u64)))
        .collect();
    for (rel, data) in &small {
        write_file(&src, rel, data);
    }
    let big = pattern(2 * 1024 * 1024 + 7, 9);
    write_file(&src, "big.bin", &big);
    let mut expected = small.clone();
    expected.push(("big.bin".to_string(), big));

    for (share, checksum) in [("lean", None), ("leanmd5", Some("md5"))] {
        stack.files.create_share(share);
        let mut vars = stack.vars();
        if let Some(c) = checksum {
            vars.insert("BACKUP_STORAGE_FILESHARE_CHUNK_CHECKSUM".into(), c.into());
        }
        stack.files.take_requests();
        let r = stack
            .run_with(
                &message(&src, share, "", SMALL_CHUNKS),
                &Profiles::from_vars(vars),
            )
            .await;
        assert_eq!(r.status, JobStatus::Succeeded, "{r:#?}");
        let requests = stack.files.take_requests();
        let count = |name: &str| requests.get(name).copied().unwrap_or(0);
        // Small files: Create File (with MD5 and mtime), one Put Range checked by the file's
        // MD5, Rename; nothing else. The big file: Create, 3 ranges, Set File Properties,
        // Rename (and its resume lookup, a List).
        assert_eq!(count("PUT"), 3 + 1, "{requests:?}");
        let (crc, md5) = match checksum {
            None => (3, 3),
            Some(_) => (0, 3 + 3),
        };
        assert_eq!(count("PUT range crc64"), crc, "{requests:?}");
        assert_eq!(count("PUT range md5"), md5, "{requests:?}");
        assert_eq!(
            count("PUT range"),
            0,
            "every range is checked: {requests:?}"
        );
        assert_eq!(count("PUT rename"), 3 + 1, "{requests:?}");
        assert_eq!(count("PUT properties"), 1, "{requests:?}");
        assert_eq!(count("HEAD"), 0, "{requests:?}");
        assert_eq!(sorted(stack.files.files(share)), sorted(expected.clone()));
    }
    // What was stored: the whole-file MD5, the source's mtime (Put Range kept it).
    for (rel, data) in &expected {
        let (md5, mtime) = stack.files.file_properties("lean", rel).unwrap();
        assert_eq!(md5.as_deref(), Some(&Md5::digest(data)[..]), "{rel}");
        let source_mtime = mtime_of(&src.join(rel));
        assert_eq!(
            mtime, source_mtime,
            "{rel}: last write time is the source mtime"
        );
    }
}

#[tokio::test]
async fn a_range_whose_crc64_does_not_match_its_bytes_is_refused() {
    use backup_common::storage::checksum::BodySum;
    let stack = Stack::start();
    stack.files.create_share("crc");
    let cfg = backup_common::storage::files::FilesConfig::from_profile(
        &stack.profiles().profile("fileshare").unwrap(),
    )
    .unwrap();
    let client =
        backup_common::storage::files::client::FilesClient::new(&cfg, "crc".into()).unwrap();
    let data = bytes::Bytes::from(pattern(100_000, 5));
    client.create_file("f.bin", 100_000, &[]).await.unwrap();
    let right = BodySum::crc64_of(&data);
    client
        .put_range("f.bin", 0, data.clone(), Some(right))
        .await
        .unwrap();
    let BodySum::Crc64(crc) = right else {
        unreachable!()
    };
    let wrong = client
        .put_range("f.bin", 0, data, Some(BodySum::Crc64(crc ^ 1)))
        .await
        .unwrap_err();
    assert!(wrong.to_string().contains("Crc64Mismatch"), "{wrong}");
}
