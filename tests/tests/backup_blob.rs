//! SFTP → Azure Blob backups against real servers: OpenSSH sshd and Azurite on loopback.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use backup_common::result::{JobResult, JobStatus};
use harness::stack::{pattern, set_mtime, write_file, Stack};
use md5::{Digest, Md5};

fn backup_message(path: &Path, container: &str, prefix: &str, extra: &str) -> String {
    format!(
        r#"{{"kind": "backup", "job_id": "t",
            "source": {{"storage": "office_nas", "path": "{}"}},
            "destination": {{"storage": "archive", "container": "{container}", "prefix": "{prefix}"}}
            {extra}}}"#,
        path.display()
    )
}

const SMALL_CHUNKS: &str = r#", "options": {"chunk_size": "1MiB", "upload_concurrency": 4}"#;

fn error_paths(r: &JobResult) -> Vec<(String, String)> {
    r.errors
        .iter()
        .map(|e| (e.path.clone().unwrap_or_default(), e.error.code.clone()))
        .collect()
}

#[tokio::test]
async fn a_tree_is_copied_byte_for_byte() {
    let stack = Stack::start();
    stack.azurite.create_container("tree").await;
    let src = stack.source_dir("tree");
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("empty.txt", vec![]),
        ("big.bin", pattern(20 * 1024 * 1024 + 123, 7)),
        ("exactly-one-chunk.bin", pattern(1024 * 1024, 8)),
        ("ünïcødé/naïve café.txt", b"unicode".to_vec()),
        ("with space/a b + c&d.txt", b"spaces".to_vec()),
        ("a/b/c/d/deep.txt", b"deep".to_vec()),
    ];
    for (rel, data) in &files {
        write_file(&src, rel, data);
    }
    std::os::unix::fs::symlink(src.join("big.bin"), src.join("link-to-big")).unwrap();
    let unreadable = write_file(&src, "secret.txt", b"root only");
    fs::set_permissions(&unreadable, fs::Permissions::from_mode(0o000)).unwrap();

    let r = stack
        .run(&backup_message(&src, "tree", "p", SMALL_CHUNKS))
        .await;

    assert_eq!(r.status, JobStatus::PartiallyFailed, "{r:#?}");
    assert_eq!(r.files.found, 7);
    assert_eq!(r.files.copied, 6);
    assert_eq!(r.files.failed, 1);
    assert_eq!(r.files.symlinks_skipped, 1);
    assert_eq!(
        error_paths(&r),
        [(
            "secret.txt".to_string(),
            "sftp.permission_denied".to_string()
        )]
    );
    let total: u64 = files.iter().map(|(_, d)| d.len() as u64).sum();
    assert_eq!(r.bytes.copied, total);

    let mut expected: Vec<String> = files.iter().map(|(rel, _)| format!("p/{rel}")).collect();
    expected.sort();
    assert_eq!(
        stack.azurite.list("tree").await,
        expected,
        "exactly the readable files, no link"
    );
    for (rel, data) in &files {
        let name = format!("p/{rel}");
        let got = stack.azurite.read("tree", &name).await;
        assert!(
            got == *data,
            "{name}: {} bytes back, {} expected",
            got.len(),
            data.len()
        );
        let (md5, meta) = stack.azurite.properties("tree", &name).await;
        assert_eq!(
            md5.as_deref(),
            Some(&Md5::digest(data)[..]),
            "{name} Content-MD5"
        );
        assert_eq!(
            meta.get("source_size"),
            Some(&data.len().to_string()),
            "{name}"
        );
        assert!(meta.contains_key("source_mtime"), "{name}");
    }
}

#[tokio::test]
async fn include_exclude_and_prefix_select_what_is_copied() {
    let stack = Stack::start();
    stack.azurite.create_container("filters").await;
    let src = stack.source_dir("filters");
    for rel in [
        "a.pdf",
        "docs/b.pdf",
        "docs/c.txt",
        "docs/tmp/d.pdf",
        "e.tmp",
        "cache/f.pdf",
    ] {
        write_file(&src, rel, rel.as_bytes());
    }
    let extra = r#", "include": ["*.pdf", "docs/*.txt"], "exclude": ["tmp", "cache/**"]"#;
    let r = stack
        .run(&backup_message(&src, "filters", "nested/prefix", extra))
        .await;
    assert_eq!(r.status, JobStatus::Succeeded, "{r:#?}");
    assert_eq!((r.files.found, r.files.copied, r.files.excluded), (3, 3, 3));
    assert_eq!(
        stack.azurite.list("filters").await,
        [
            "nested/prefix/a.pdf",
            "nested/prefix/docs/b.pdf",
            "nested/prefix/docs/c.txt"
        ]
    );
}

#[tokio::test]
async fn a_second_run_copies_only_what_changed() {
    let stack = Stack::start();
    stack.azurite.create_container("incr").await;
    let src = stack.source_dir("incr");
    write_file(&src, "same.txt", b"unchanged");
    write_file(&src, "grows.txt", b"v1");
    let touched = write_file(&src, "touched.txt", b"same size");
    let message = backup_message(&src, "incr", "", "");

    let first = stack.run(&message).await;
    assert_eq!(
        (first.files.copied, first.files.skipped),
        (3, 0),
        "{first:#?}"
    );

    let second = stack.run(&message).await;
    assert_eq!(second.status, JobStatus::Succeeded);
    assert_eq!(
        (second.files.copied, second.files.skipped),
        (0, 3),
        "{second:#?}"
    );
    assert_eq!(second.bytes.skipped, first.bytes.copied);

    write_file(&src, "grows.txt", b"version two");
    let later = SystemTime::now() + Duration::from_secs(3600);
    set_mtime(&touched, later);
    write_file(&src, "new.txt", b"new");
    let third = stack.run(&message).await;
    assert_eq!(
        (third.files.copied, third.files.skipped),
        (3, 1),
        "{third:#?}"
    );
    assert_eq!(
        stack.azurite.read("incr", "grows.txt").await,
        b"version two"
    );
}

/// Azurite, like Azure, lists at most 5000 blobs a page: a rerun over more must find every
/// held file on every page (the next page is fetched while one is handed over).
#[tokio::test(flavor = "multi_thread")]
async fn a_rerun_finds_held_files_on_every_listing_page() {
    let stack = Stack::start();
    stack.azurite.create_container("pages").await;
    let src = stack.source_dir("pages");
    let files = 5_003;
    for i in 0..files {
        write_file(
            &src,
            &format!("d{}/f{i:05}.txt", i / 2000),
            format!("{i}").as_bytes(),
        );
    }
    let message = backup_message(&src, "pages", "", "");
    let first = stack.run(&message).await;
    assert_eq!(
        (first.files.copied, first.status),
        (files, JobStatus::Succeeded)
    );

    // One file on the second page changes (same size, later mtime).
    let changed = write_file(&src, "d2/f05001.txt", b"5002");
    let later = SystemTime::now() + Duration::from_secs(3600);
    set_mtime(&changed, later);
    let again = stack.run(&message).await;
    assert_eq!(again.status, JobStatus::Succeeded, "{again:#?}");
    assert_eq!(
        (again.files.copied, again.files.skipped),
        (1, files - 1),
        "{again:#?}"
    );
    assert_eq!(stack.azurite.read("pages", "d2/f05001.txt").await, b"5002");
    assert_eq!(stack.azurite.list("pages").await.len() as u64, files);
}

#[tokio::test]
async fn hash_compare_catches_a_change_that_keeps_size_and_mtime() {
    let stack = Stack::start();
    stack.azurite.create_container("hash").await;
    let src = stack.source_dir("hash");
    let file = write_file(&src, "f.txt", b"AAAA");
    let mtime = fs::metadata(&file).unwrap().modified().unwrap();
    let by_size = backup_message(&src, "hash", "", "");
    let by_hash = backup_message(&src, "hash", "", r#", "options": {"compare": "hash"}"#);
    assert_eq!(stack.run(&by_size).await.files.copied, 1);

    write_file(&src, "f.txt", b"BBBB");
    set_mtime(&file, mtime);
    let fooled = stack.run(&by_size).await;
    assert_eq!(fooled.files.skipped, 1, "size+mtime cannot see this change");
    let caught = stack.run(&by_hash).await;
    assert_eq!(
        (caught.files.copied, caught.files.skipped),
        (1, 0),
        "{caught:#?}"
    );
    assert_eq!(stack.azurite.read("hash", "f.txt").await, b"BBBB");
    let again = stack.run(&by_hash).await;
    assert_eq!((again.files.copied, again.files.skipped), (0, 1));
}

#[tokio::test]
async fn a_missing_source_path_fails_the_job_and_writes_nothing() {
    let stack = Stack::start();
    stack.azurite.create_container("missing").await;
    let r = stack
        .run(&backup_message(
            Path::new("/no/such/dir"),
            "missing",
            "",
            "",
        ))
        .await;
    assert_eq!(r.status, JobStatus::Failed);
    assert_eq!(
        error_paths(&r),
        [(String::new(), "sftp.not_found".to_string())]
    );
    assert!(r.errors[0].error.message.contains("/no/such/dir"));
    assert!(stack.azurite.list("missing").await.is_empty());
}

#[tokio::test]
async fn an_empty_source_reports_no_files_not_success() {
    let stack = Stack::start();
    stack.azurite.create_container("empty").await;
    let src = stack.source_dir("empty");
    write_file(&src, "only.tmp", b"excluded");
    let r = stack
        .run(&backup_message(
            &src,
            "empty",
            "",
            r#", "exclude": ["*.tmp"]"#,
        ))
        .await;
    assert_eq!(r.status, JobStatus::NoFiles, "{r:#?}");
    assert_eq!(r.status.exit_code(), 3);
}

#[tokio::test]
async fn a_missing_container_fails_the_job_with_its_name() {
    let stack = Stack::start();
    let src = stack.source_dir("nocontainer");
    write_file(&src, "a.txt", b"a");
    let r = stack.run(&backup_message(&src, "not-there", "", "")).await;
    assert_eq!(r.status, JobStatus::Failed);
    assert_eq!(r.errors[0].error.code, "azure.container_not_found");
    assert!(r.errors[0].error.message.contains("`not-there`"), "{r:#?}");
}

/// Remote commands sshd started since `from` bytes of its log (it logs each exec request).
fn remote_commands(stack: &Stack, from: usize) -> usize {
    stack.sshd.log()[from..]
        .lines()
        .filter(|l| l.contains("Starting session: command"))
        .count()
}

#[tokio::test]
async fn hash_compare_asks_the_server_unless_disable_hash_check_is_set() {
    let stack = Stack::start();
    stack.azurite.create_container("md5sum").await;
    let src = stack.source_dir("md5sum");
    write_file(&src, "hashed.txt", b"the same bytes");
    let by_hash = backup_message(&src, "md5sum", "", r#", "options": {"compare": "hash"}"#);
    assert_eq!(stack.run(&by_hash).await.files.copied, 1);

    // Default: the server's md5sum answers "unchanged" (one remote command, no file read).
    let mark = stack.sshd.log().len();
    let r = stack.run(&by_hash).await;
    assert_eq!(r.files.skipped, 1, "{r:#?}");
    assert_eq!(remote_commands(&stack, mark), 1, "md5sum was not asked");

    // Disable Hash Check: no remote command at all; the file is read to hash it.
    let mut vars = stack.vars();
    vars.insert(
        "BACKUP_STORAGE_OFFICE_NAS_SSH_DISABLE_HASH_CHECK".into(),
        "true".into(),
    );
    let profiles = backup_common::config::Profiles::from_vars(vars);
    let mark = stack.sshd.log().len();
    let r = stack.run_with(&by_hash, &profiles).await;
    assert_eq!(r.files.skipped, 1, "{r:#?}");
    assert_eq!(
        remote_commands(&stack, mark),
        0,
        "a command ran although Disable Hash Check is set"
    );

    // A change that keeps the size is seen by md5sum too.
    write_file(&src, "hashed.txt", b"THE SAME BYTES");
    assert_eq!(stack.run(&by_hash).await.files.copied, 1);
    assert_eq!(
        stack.azurite.read("md5sum", "hashed.txt").await,
        b"THE SAME BYTES"
    );
}
