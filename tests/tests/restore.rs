//! Backup → restore round trips on real servers: a mirror in Azurite (Blob) or the Files test
//! server comes back into a fresh SFTP directory byte for byte and mtime for mtime; overwrite
//! policies; damaged and hostile mirrors; a target the login may not write.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use backup_common::result::{JobResult, JobStatus};
use harness::stack::{error_codes, pattern, write_file, Stack};

const CHUNK: usize = 256 * 1024;
const OPTIONS: &str = r#""options": {"chunk_size": "256KiB", "upload_concurrency": 4}"#;

/// Where a backup put its mirror: `"container": "x"` or `"share": "x"` on a storage.
struct Mirror {
    storage: &'static str,
    place: String,
}

impl Mirror {
    fn blob(container: &str) -> Mirror {
        Mirror {
            storage: "archive",
            place: format!(r#""container": "{container}""#),
        }
    }

    fn files(share: &str) -> Mirror {
        Mirror {
            storage: "fileshare",
            place: format!(r#""share": "{share}""#),
        }
    }

    fn backup(&self, src: &Path) -> String {
        format!(
            r#"{{"kind": "backup", "job_id": "b",
                "source": {{"storage": "office_nas", "path": "{}"}},
                "destination": {{"storage": "{}", {}, "prefix": "m"}}, {OPTIONS}}}"#,
            src.display(),
            self.storage,
            self.place
        )
    }

    fn restore(&self, target: &Path, extra: &str) -> String {
        format!(
            r#"{{"kind": "restore", "job_id": "r",
                "source": {{"storage": "{}", {}, "prefix": "m"}},
                "target": {{"storage": "office_nas", "path": "{}"}}{extra}}}"#,
            self.storage,
            self.place,
            target.display()
        )
    }
}

/// A directory the SFTP login may write (it is another user than the tests).
fn target_dir(stack: &Stack, name: &str) -> PathBuf {
    let dir = stack.sshd.data_dir().join(name);
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// A tree around the chunk edges, with odd names and deep paths; each file its own mtime.
fn edge_tree() -> Vec<(String, Vec<u8>, i64)> {
    let sizes = [
        ("empty.txt", 0),
        ("one.bin", 1),
        ("chunk-minus-one.bin", CHUNK - 1),
        ("chunk.bin", CHUNK),
        ("chunk-plus-one.bin", CHUNK + 1),
        ("multi/odd-tail.bin", 3 * CHUNK + 12_345),
        ("ünïcødé/naïve café.txt", 7),
        ("with space/a b + c&d [1].txt", 6),
        ("a/b/c/d/e/f/deep.txt", 4),
    ];
    sizes
        .iter()
        .enumerate()
        .map(|(i, (name, len))| {
            let mtime = 1_600_000_000 + i as i64 * 86_400 + 17;
            (name.to_string(), pattern(*len, i as u64 + 1), mtime)
        })
        .collect()
}

fn write_tree(root: &Path, tree: &[(String, Vec<u8>, i64)]) {
    for (rel, data, mtime) in tree {
        let path = write_file(root, rel, data);
        set_mtime(&path, *mtime);
    }
}

fn set_mtime(path: &Path, mtime: i64) {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(mtime as u64);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(at)
        .unwrap();
}

fn mtime_of(path: &Path) -> i64 {
    let m = fs::metadata(path).unwrap().modified().unwrap();
    m.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Every regular file under `root`, relative, sorted.
fn files_under(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                found.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    found
}

fn assert_tree_equals(target: &Path, tree: &[(String, Vec<u8>, i64)]) {
    let mut names: Vec<String> = tree.iter().map(|(n, _, _)| n.clone()).collect();
    names.sort();
    assert_eq!(
        files_under(target),
        names,
        "exactly the tree, no temporaries"
    );
    for (rel, data, mtime) in tree {
        let path = target.join(rel);
        let got = fs::read(&path).unwrap();
        assert!(
            got == *data,
            "{rel}: {} bytes, {} expected",
            got.len(),
            data.len()
        );
        assert_eq!(mtime_of(&path), *mtime, "{rel}: mtime");
    }
}

fn counts(r: &JobResult) -> (u64, u64, u64, u64) {
    (
        r.files.found,
        r.files.copied,
        r.files.skipped,
        r.files.failed,
    )
}

async fn round_trip(stack: &Stack, mirror: Mirror, name: &str) {
    let src = stack.source_dir(name);
    let tree = edge_tree();
    write_tree(&src, &tree);
    let backup = stack.run(&mirror.backup(&src)).await;
    assert_eq!(backup.status, JobStatus::Succeeded, "{backup:#?}");

    let target = target_dir(stack, &format!("{name}-restored")).join("fresh/inside");
    let r = stack.run(&mirror.restore(&target, "")).await;
    assert_eq!(r.status, JobStatus::Succeeded, "{r:#?}");
    let n = tree.len() as u64;
    assert_eq!(counts(&r), (n, n, 0, 0));
    let total: u64 = tree.iter().map(|(_, d, _)| d.len() as u64).sum();
    assert_eq!(r.bytes.copied, total);
    assert_tree_equals(&target, &tree);

    // Again: everything is there with its size and mtime, nothing is written.
    let again = stack.run(&mirror.restore(&target, "")).await;
    assert_eq!(counts(&again), (n, 0, n, 0), "{again:#?}");
}

#[tokio::test]
async fn a_blob_mirror_comes_back_byte_for_byte_and_mtime_for_mtime() {
    let stack = Stack::start();
    stack.azurite.create_container("rtb").await;
    round_trip(&stack, Mirror::blob("rtb"), "rt-blob").await;
}

#[tokio::test]
async fn a_files_mirror_comes_back_byte_for_byte_and_mtime_for_mtime() {
    let stack = Stack::start();
    stack.files.create_share("rtf");
    round_trip(&stack, Mirror::files("rtf"), "rt-files").await;
}

#[tokio::test]
async fn overwrite_policies_decide_what_is_replaced() {
    let stack = Stack::start();
    stack.azurite.create_container("owb").await;
    let src = stack.source_dir("ow");
    write_file(&src, "same.txt", b"same");
    write_file(&src, "changed.txt", b"from the backup");
    let backup = stack.run(&Mirror::blob("owb").backup(&src)).await;
    assert_eq!(backup.status, JobStatus::Succeeded, "{backup:#?}");
    let mirror = Mirror::blob("owb");

    let target = target_dir(&stack, "ow-target");
    let first = stack.run(&mirror.restore(&target, "")).await;
    assert_eq!(counts(&first), (2, 2, 0, 0), "{first:#?}");
    // Someone edits a restored file: different bytes, different size.
    fs::write(target.join("changed.txt"), b"edited on the server").unwrap();

    let never = r#", "options": {"overwrite": "never"}"#;
    let r = stack.run(&mirror.restore(&target, never)).await;
    assert_eq!(counts(&r), (2, 0, 2, 0), "never: {r:#?}");
    assert_eq!(
        fs::read(target.join("changed.txt")).unwrap(),
        b"edited on the server"
    );

    let r = stack.run(&mirror.restore(&target, "")).await;
    assert_eq!(counts(&r), (2, 1, 1, 0), "if_changed: {r:#?}");
    assert_eq!(
        fs::read(target.join("changed.txt")).unwrap(),
        b"from the backup"
    );

    let always = r#", "options": {"overwrite": "always"}"#;
    let r = stack.run(&mirror.restore(&target, always)).await;
    assert_eq!(counts(&r), (2, 2, 0, 0), "always: {r:#?}");
}

#[tokio::test]
async fn paths_and_filters_pick_what_is_restored() {
    let stack = Stack::start();
    stack.files.create_share("pick");
    let src = stack.source_dir("pick");
    for rel in [
        "a.txt",
        "docs/b.pdf",
        "docs/c.txt",
        "docs/sub/d.pdf",
        "other/e.pdf",
    ] {
        write_file(&src, rel, rel.as_bytes());
    }
    let mirror = Mirror::files("pick");
    assert_eq!(
        stack.run(&mirror.backup(&src)).await.status,
        JobStatus::Succeeded
    );

    let target = target_dir(&stack, "pick-target");
    let extra = r#", "paths": ["docs", "a.txt"], "exclude": ["*.txt"]"#;
    let r = stack.run(&mirror.restore(&target, extra)).await;
    assert_eq!(r.status, JobStatus::Succeeded, "{r:#?}");
    assert_eq!(files_under(&target), ["docs/b.pdf", "docs/sub/d.pdf"]);

    let none = r#", "paths": ["missing"]"#;
    let r = stack.run(&mirror.restore(&target, none)).await;
    assert_eq!(r.status, JobStatus::NoFiles, "{r:#?}");
}

#[tokio::test]
async fn a_blob_changed_behind_our_back_is_caught_and_not_restored() {
    let stack = Stack::start();
    stack.azurite.create_container("tamper").await;
    let src = stack.source_dir("tamper");
    write_file(&src, "good.txt", b"good");
    write_file(&src, "small.txt", b"the original bytes");
    write_file(&src, "big.bin", &pattern(3 * CHUNK + 5, 9));
    let mirror = Mirror::blob("tamper");
    assert_eq!(
        stack.run(&mirror.backup(&src)).await.status,
        JobStatus::Succeeded
    );
    // Same length, other bytes, the stored Content-MD5 and metadata kept.
    stack
        .azurite
        .overwrite_keeping_properties("tamper", "m/small.txt", b"THE ORIGINAL BYTES")
        .await;
    let mut big = pattern(3 * CHUNK + 5, 9);
    big[2 * CHUNK + 1] ^= 0xff;
    stack
        .azurite
        .overwrite_keeping_properties("tamper", "m/big.bin", &big)
        .await;

    let target = target_dir(&stack, "tamper-target");
    fs::write(target.join("small.txt"), b"what was there before").unwrap();
    fs::set_permissions(target.join("small.txt"), fs::Permissions::from_mode(0o666)).unwrap();
    let r = stack.run(&mirror.restore(&target, "")).await;
    assert_eq!(r.status, JobStatus::PartiallyFailed, "{r:#?}");
    assert_eq!(
        error_codes(&r),
        [
            ("big.bin".to_string(), "restore.hash_mismatch".to_string()),
            ("small.txt".to_string(), "restore.hash_mismatch".to_string()),
        ]
    );
    assert!(r.errors[0].error.message.contains("MD5"), "{r:#?}");
    assert_eq!(
        files_under(&target),
        ["good.txt", "small.txt"],
        "no temporaries"
    );
    assert_eq!(
        fs::read(target.join("small.txt")).unwrap(),
        b"what was there before"
    );
}

#[tokio::test]
async fn a_stored_name_that_would_escape_the_target_is_refused() {
    let stack = Stack::start();
    stack.azurite.create_container("escape").await;
    assert!(stack.azurite.put("escape", "m/fine.txt", b"fine").await);
    // Names someone else's tool may have put in a container (each service refuses some).
    // Names someone else's tool may have put in a container (the service rewrites some:
    // Azurite turns `\` into `/` and drops `./`; what it keeps is what a restore meets).
    for name in [
        "m/../../outside.txt",
        "m//etc/passwd",
        "m/a\\..\\..\\b.txt",
        "m/./dot.txt",
        "m/tab\there.txt",
    ] {
        stack.azurite.put("escape", name, b"hostile").await;
    }
    let listed = stack.azurite.list("escape").await;
    let is_unsafe = |n: &&String| n.contains("//") || n.split('/').any(|s| s == ".." || s == ".");
    let hostile: Vec<&String> = listed.iter().filter(is_unsafe).collect();
    assert!(
        hostile.len() >= 2,
        "Azurite keeps few hostile names: {listed:?}"
    );

    let parent = target_dir(&stack, "escape-parent");
    let target = parent.join("target");
    let r = stack
        .run(&Mirror::blob("escape").restore(&target, ""))
        .await;
    assert_eq!(r.status, JobStatus::PartiallyFailed, "{r:#?}");
    assert_eq!(r.files.failed as usize, hostile.len(), "{listed:?} {r:#?}");
    for e in &r.errors {
        assert_eq!(e.error.code, "restore.unsafe_name", "{r:#?}");
        let path = e.path.as_deref().unwrap_or_default();
        assert!(
            e.error.message.contains(path),
            "the message names the name: {e:?}"
        );
    }
    let mut safe: Vec<String> = listed
        .iter()
        .filter(|n| !is_unsafe(n))
        .map(|n| n.replacen("m/", "target/", 1))
        .collect();
    safe.sort();
    assert_eq!(files_under(&parent), safe, "nothing outside the target");
}

#[tokio::test]
async fn a_target_the_login_may_not_write_fails_naming_the_path() {
    let stack = Stack::start();
    stack.files.create_share("rof");
    let src = stack.source_dir("ro");
    write_file(&src, "a.txt", b"a");
    let mirror = Mirror::files("rof");
    assert_eq!(
        stack.run(&mirror.backup(&src)).await.status,
        JobStatus::Succeeded
    );

    let target = stack.sshd.data_dir().join("ro-target");
    fs::create_dir_all(&target).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o555)).unwrap();
    let r = stack.run(&mirror.restore(&target, "")).await;
    assert_eq!(r.status, JobStatus::Failed, "{r:#?}");
    assert_eq!(r.errors.len(), 1, "{r:#?}");
    let e = &r.errors[0].error;
    assert_eq!(e.code, "sftp.permission_denied");
    assert!(e.message.contains("Permission Denied"), "{e:?}");
    assert!(e.message.contains(&target.display().to_string()), "{e:?}");
    assert!(files_under(&target).is_empty());
}

#[tokio::test]
async fn a_blob_mirror_restores_into_a_files_share() {
    let stack = Stack::start();
    stack.azurite.create_container("across").await;
    stack.files.create_share("across");
    let src = stack.source_dir("across");
    let tree = edge_tree();
    write_tree(&src, &tree);
    assert_eq!(
        stack.run(&Mirror::blob("across").backup(&src)).await.status,
        JobStatus::Succeeded
    );

    let message = format!(
        r#"{{"kind": "restore", "job_id": "x",
            "source": {{"storage": "archive", "container": "across", "prefix": "m"}},
            "target": {{"storage": "fileshare", "share": "across", "prefix": "copy"}}, {OPTIONS}}}"#
    );
    let r = stack.run(&message).await;
    assert_eq!(r.status, JobStatus::Succeeded, "{r:#?}");
    let mut want: Vec<(String, Vec<u8>)> = tree
        .iter()
        .map(|(n, d, _)| (format!("copy/{n}"), d.clone()))
        .collect();
    want.sort();
    assert!(
        stack.files.files("across") == want,
        "the share holds the tree"
    );
    for (rel, _, mtime) in &tree {
        let (md5, last_write) = stack
            .files
            .file_properties("across", &format!("copy/{rel}"))
            .unwrap();
        assert!(md5.is_some(), "{rel}: Content-MD5 set");
        assert_eq!(last_write, *mtime, "{rel}: mtime carried");
    }
}

#[tokio::test]
async fn test_connection_checks_that_a_restore_target_is_writable() {
    let stack = Stack::start();
    let message = |path: &Path| {
        format!(
            r#"{{"kind": "test_connection", "target": {{"storage": "office_nas", "path": "{}"}}}}"#,
            path.display()
        )
    };
    let writable = target_dir(&stack, "tc-writable").join("not/yet");
    let r = stack.run(&message(&writable)).await;
    assert_eq!(r.status, JobStatus::Succeeded, "{r:#?}");
    let check = &r.checks[0];
    assert_eq!(check.side, "target");
    assert_eq!(
        check.passed,
        [
            "configuration",
            "connect",
            "handshake",
            "authenticate",
            "list",
            "write"
        ]
    );
    assert!(files_under(&writable).is_empty(), "the probe was removed");

    let read_only = stack.sshd.data_dir().join("tc-read-only");
    fs::create_dir_all(&read_only).unwrap();
    fs::set_permissions(&read_only, fs::Permissions::from_mode(0o555)).unwrap();
    let r = stack.run(&message(&read_only)).await;
    assert_eq!(r.status, JobStatus::Failed, "{r:#?}");
    let check = &r.checks[0];
    assert_eq!(check.failed_step.as_deref(), Some("write"), "{r:#?}");
    let error = check.error.as_ref().unwrap();
    assert_eq!(error.code, "sftp.permission_denied");
    assert!(
        error.message.contains(&read_only.display().to_string()),
        "{error:?}"
    );
}
