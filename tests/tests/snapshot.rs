//! Snapshot mode, judged by stock `restic`: a backup from SFTP into a restic repository in Blob
//! and in Azure Files, which `restic check --read-data` finds clean, `restic snapshots` lists
//! with our paths, host and tags, and `restic restore` gives back byte for byte; a second run
//! of the same tree adds almost nothing, a changed file only its changed chunks; a wrong password
//! or a missing repository fails clearly.

use std::path::Path;

use backup_common::result::{JobResult, JobStatus};
use harness::restic::Restic;
use harness::stack::{error_codes, pattern, write_file, Stack};

const PASSWORD: &str = "correct horse battery staple";
const MIB: usize = 1024 * 1024;

fn snapshot_backup(src: &Path, destination: &str, init: bool) -> String {
    format!(
        r#"{{"kind": "backup", "job_id": "snap", "mode": "snapshot", "init": {init},
            "tags": ["nightly"], "source": {{"storage": "office_nas", "path": "{}"}},
            "destination": {destination}, "options": {{"chunk_size": "1MiB"}}}}"#,
        src.display()
    )
}

/// A tree with the shapes that matter: nested, empty, odd names, several MiB.
fn tree(stack: &Stack, name: &str) -> (std::path::PathBuf, Vec<(String, Vec<u8>)>) {
    let src = stack.source_dir(name);
    let files = vec![
        ("big.bin".to_string(), pattern(12 * MIB + 123, 1)),
        ("docs/report.txt".to_string(), b"quarterly numbers".to_vec()),
        ("docs/empty".to_string(), Vec::new()),
        (
            "docs/deeper/ünïcødé naïve.txt".to_string(),
            pattern(70_000, 2),
        ),
        ("a-c".to_string(), b"sorts before a/".to_vec()),
        ("a/b".to_string(), b"sorts after a-c".to_vec()),
    ];
    for (path, data) in &files {
        write_file(&src, path, data);
    }
    (src, files)
}

fn report(r: &JobResult) -> &backup_common::snapshot::SnapshotReport {
    r.snapshot
        .as_ref()
        .unwrap_or_else(|| panic!("no snapshot in {r:#?}"))
}

/// What restic restored under `restored` equals the source files.
fn assert_restored(restored: &Path, src: &Path, files: &[(String, Vec<u8>)]) {
    let base = restored.join(src.strip_prefix("/").expect("absolute source"));
    for (path, data) in files {
        let got = std::fs::read(base.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(got == *data, "{path} restored byte for byte");
    }
}

/// The judge's verdict on a repository after our runs (`ids`, oldest first) of one tree.
fn judge(restic: &Restic, src: &Path, files: &[(String, Vec<u8>)], ids: &[&str]) {
    restic.run(&["check", "--read-data"]);
    let snapshots = restic.snapshots();
    assert_eq!(snapshots.len(), ids.len(), "{snapshots:#?}");
    for (snap, id) in snapshots.iter().zip(ids) {
        assert_eq!(snap["id"], *id);
        assert_eq!(
            snap["paths"],
            serde_json::json!([src.display().to_string()])
        );
        assert_eq!(snap["hostname"], "office_nas");
        assert_eq!(snap["tags"], serde_json::json!(["nightly"]));
        // Taken just now: restic reads our time (RFC 3339 with the offset).
        let time = snap["time"].as_str().unwrap_or_default();
        let rfc3339 = &time::format_description::well_known::Rfc3339;
        let at = time::OffsetDateTime::parse(time, rfc3339)
            .unwrap_or_else(|e| panic!("snapshot time `{time}`: {e}"));
        let age = time::OffsetDateTime::now_utc() - at;
        assert!(
            age > time::Duration::seconds(-5) && age < time::Duration::minutes(10),
            "snapshot time {time}"
        );
    }
    let (_keep, restored) = restic.restore("latest");
    assert_restored(&restored, src, files);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_in_blob_is_checked_listed_and_restored_by_restic() {
    let stack = Stack::start();
    stack.azurite.create_container("snapshots").await;
    let (src, files) = tree(&stack, "snap-blob");
    let dest = r#"{"storage": "archive", "container": "snapshots", "prefix": "repo"}"#;
    let profiles = stack.snapshot_profiles(PASSWORD);

    let first = stack
        .run_with(&snapshot_backup(&src, dest, true), &profiles)
        .await;
    assert_eq!(first.status, JobStatus::Succeeded, "{first:#?}");
    assert_eq!((first.files.found, first.files.copied), (6, 6));
    assert!(report(&first).initialised);

    let second = stack
        .run_with(&snapshot_backup(&src, dest, false), &profiles)
        .await;
    assert_eq!(second.status, JobStatus::Succeeded, "{second:#?}");
    assert_eq!((second.files.copied, second.files.skipped), (0, 6));
    let (one, two) = (report(&first), report(&second));
    assert_eq!(two.parent.as_deref(), Some(one.id.as_str()));
    assert!(!two.initialised);
    assert!(
        two.data_added_packed < 4096,
        "an unchanged tree added {} bytes",
        two.data_added_packed
    );
    println!(
        "blob: first run stored {} bytes ({} before compression), second run {}",
        one.data_added_packed, one.data_added, two.data_added_packed
    );

    // 4 KiB changed in the middle of the 12 MiB file: only the chunks around it are new.
    let mut files = files;
    let changed = &mut files[0].1;
    changed[6 * MIB..6 * MIB + 4096].copy_from_slice(&pattern(4096, 77));
    write_file(&src, "big.bin", changed);
    let third = stack
        .run_with(&snapshot_backup(&src, dest, false), &profiles)
        .await;
    let three = report(&third);
    assert_eq!(
        (three.files_changed, three.files_unmodified),
        (1, 5),
        "{third:#?}"
    );
    // Content-defined chunks average 1 MiB but reach 8 MiB, and each repository has its own
    // chunker polynomial: the chunk around the change is usually small, never the whole file.
    assert!(
        three.data_added > 0 && three.data_added < 10 * MIB as u64,
        "4 KiB changed in 12 MiB added {} bytes",
        three.data_added
    );
    println!(
        "blob: 4 KiB changed in a 12 MiB file added {} bytes",
        three.data_added
    );

    let restic = Restic::from_blob(&stack, "snapshots", "repo", PASSWORD).await;
    judge(&restic, &src, &files, &[&one.id, &two.id, &three.id]);

    // Restored by us onto the SFTP server: the latest whole, and the first snapshot's big.bin
    // (from before the change) by its id.
    let latest = restore_target(&stack, "snap-restored-latest");
    let r = stack
        .run_with(&snapshot_restore(dest, "latest", &latest, "[]"), &profiles)
        .await;
    assert_eq!(
        (r.status, r.files.copied),
        (JobStatus::Succeeded, 6),
        "{r:#?}"
    );
    for (path, data) in &files {
        assert!(std::fs::read(latest.join(path)).unwrap() == *data, "{path}");
    }
    let older = restore_target(&stack, "snap-restored-first");
    let first_id = &one.id[..12];
    let r = stack
        .run_with(
            &snapshot_restore(dest, first_id, &older, r#"["big.bin"]"#),
            &profiles,
        )
        .await;
    assert_eq!(
        (r.status, r.files.copied),
        (JobStatus::Succeeded, 1),
        "{r:#?}"
    );
    assert!(std::fs::read(older.join("big.bin")).unwrap() == pattern(12 * MIB + 123, 1));
    assert!(!older.join("docs").exists(), "only the path asked for");
}

fn restore_target(stack: &Stack, name: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = stack.sshd.data_dir().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

fn snapshot_restore(source: &str, id: &str, target: &Path, paths: &str) -> String {
    format!(
        r#"{{"kind": "restore", "job_id": "snap-restore", "source": {source}, "snapshot": "{id}",
            "target": {{"storage": "office_nas", "path": "{}"}}, "paths": {paths}}}"#,
        target.display()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_in_azure_files_is_checked_listed_and_restored_by_restic() {
    let stack = Stack::start();
    stack.files.create_share("snapshots");
    let (src, files) = tree(&stack, "snap-files");
    let dest = r#"{"storage": "fileshare", "share": "snapshots", "prefix": "repo"}"#;
    let profiles = stack.snapshot_profiles(PASSWORD);

    let first = stack
        .run_with(&snapshot_backup(&src, dest, true), &profiles)
        .await;
    assert_eq!(first.status, JobStatus::Succeeded, "{first:#?}");
    let second = stack
        .run_with(&snapshot_backup(&src, dest, false), &profiles)
        .await;
    assert_eq!(
        (second.files.copied, second.files.skipped),
        (0, 6),
        "{second:#?}"
    );

    let restic = Restic::from_files(&stack, "snapshots", "repo", PASSWORD);
    judge(
        &restic,
        &src,
        &files,
        &[&report(&first).id, &report(&second).id],
    );
    let leftovers: Vec<_> = stack
        .files
        .files("snapshots")
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name.contains(".bw-partial-"))
        .collect();
    assert!(leftovers.is_empty(), "temporaries left: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_or_a_missing_repository_fails_naming_the_cause() {
    let stack = Stack::start();
    stack.azurite.create_container("guarded").await;
    let (src, _) = tree(&stack, "snap-guarded");
    let dest = r#"{"storage": "archive", "container": "guarded", "prefix": "repo"}"#;

    let missing = stack
        .run_with(
            &snapshot_backup(&src, dest, false),
            &stack.snapshot_profiles(PASSWORD),
        )
        .await;
    assert_eq!(missing.status, JobStatus::Failed);
    assert_eq!(
        error_codes(&missing),
        [(String::new(), "snapshot.no_repository".into())]
    );
    assert!(
        stack.azurite.list("guarded").await.is_empty(),
        "nothing written"
    );

    let made = stack
        .run_with(
            &snapshot_backup(&src, dest, true),
            &stack.snapshot_profiles(PASSWORD),
        )
        .await;
    assert_eq!(made.status, JobStatus::Succeeded, "{made:#?}");

    // Test Connection's `repository` step: the password opens the repository, or says why not.
    let test =
        format!(r#"{{"kind": "test_connection", "mode": "snapshot", "destination": {dest}}}"#);
    let good = stack
        .run_with(&test, &stack.snapshot_profiles(PASSWORD))
        .await;
    assert_eq!(good.status, JobStatus::Succeeded, "{good:#?}");
    assert_eq!(
        good.checks[0].passed.last().map(String::as_str),
        Some("repository")
    );
    let bad = stack
        .run_with(&test, &stack.snapshot_profiles("guess"))
        .await;
    assert_eq!(
        bad.checks[0].failed_step.as_deref(),
        Some("repository"),
        "{bad:#?}"
    );
    assert_eq!(
        bad.checks[0].error.as_ref().map(|e| e.code.as_str()),
        Some("snapshot.wrong_password")
    );

    let wrong = "not the password";
    let refused = stack
        .run_with(
            &snapshot_backup(&src, dest, true),
            &stack.snapshot_profiles(wrong),
        )
        .await;
    assert_eq!(refused.status, JobStatus::Failed);
    assert_eq!(
        error_codes(&refused),
        [(String::new(), "snapshot.wrong_password".into())]
    );
    let text = serde_json::to_string(&refused).unwrap();
    assert!(text.contains("RESTIC_PASSWORD"), "{text}");
    assert!(!text.contains(wrong) && !text.contains(PASSWORD), "{text}");

    let unset = stack.run(&snapshot_backup(&src, dest, false)).await;
    assert_eq!(
        error_codes(&unset),
        [(String::new(), "snapshot.password_missing".into())]
    );
    assert!(
        unset.errors[0]
            .error
            .message
            .contains("BACKUP_STORAGE_ARCHIVE_RESTIC_PASSWORD"),
        "{unset:#?}"
    );
}

/// Two first runs with `init` at once (a duplicate delivery): one repository, one key, whole.
#[tokio::test(flavor = "multi_thread")]
async fn two_inits_at_once_leave_one_whole_repository() {
    let stack = Stack::start();
    stack.azurite.create_container("twice").await;
    let (src, files) = tree(&stack, "snap-twice");
    let dest = r#"{"storage": "archive", "container": "twice", "prefix": "repo"}"#;
    let profiles = stack.snapshot_profiles(PASSWORD);
    let message = snapshot_backup(&src, dest, true);
    let (a, b) = tokio::join!(
        stack.run_with(&message, &profiles),
        stack.run_with(&message, &profiles)
    );
    let ok: Vec<&JobResult> = [&a, &b]
        .into_iter()
        .filter(|r| r.status == JobStatus::Succeeded)
        .collect();
    assert!(!ok.is_empty(), "{a:#?}\n{b:#?}");
    println!("two inits at once: {:?} and {:?}", a.status, b.status);
    for r in [&a, &b] {
        if r.status != JobStatus::Succeeded {
            assert_eq!(
                error_codes(r),
                [(String::new(), "snapshot.error".into())],
                "{r:#?}"
            );
        }
    }
    let restic = Restic::from_blob(&stack, "twice", "repo", PASSWORD).await;
    let keys: Vec<serde_json::Value> =
        serde_json::from_str(&restic.run(&["key", "list", "--json"])).expect("keys JSON");
    assert_eq!(keys.len(), 1, "{keys:#?}");
    let ids: Vec<&str> = ok.iter().map(|r| report(r).id.as_str()).collect();
    restic.run(&["check", "--read-data"]);
    assert_eq!(restic.snapshots().len(), ids.len());
    let (_keep, restored) = restic.restore("latest");
    assert_restored(&restored, &src, &files);
}

/// The other way round: a repository stock restic made (`restic init` + `restic backup` of a local
/// directory), copied into Azurite, is restored by ours onto the SFTP server, byte for byte.
#[tokio::test(flavor = "multi_thread")]
async fn a_repository_made_by_restic_is_restored_by_ours() {
    let stack = Stack::start();
    stack.azurite.create_container("by-restic").await;
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("data");
    let files = [
        ("notes/todo.txt", b"written by restic".to_vec()),
        ("big.bin", pattern(3 * MIB + 7, 5)),
    ];
    for (path, data) in &files {
        write_file(&src, path, data);
    }
    let repo = local.path().join("repo");
    let restic = |args: &[&str]| {
        let out = std::process::Command::new("restic")
            .arg("--repo")
            .arg(&repo)
            .args(["--no-cache", "--quiet"])
            .args(args)
            .env("RESTIC_PASSWORD", PASSWORD)
            .output()
            .expect("run restic");
        assert!(out.status.success(), "restic {args:?}: {out:?}");
    };
    restic(&["init"]);
    restic(&["backup", &src.display().to_string()]);
    let mut stack_files = vec![repo.clone()];
    while let Some(dir) = stack_files.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack_files.push(path);
            } else {
                let rel = path.strip_prefix(&repo).unwrap().display().to_string();
                let data = std::fs::read(&path).unwrap();
                assert!(
                    stack
                        .azurite
                        .put("by-restic", &format!("repo/{rel}"), &data)
                        .await
                );
            }
        }
    }

    let target = restore_target(&stack, "restored-from-restic");
    let source = r#"{"storage": "archive", "container": "by-restic", "prefix": "repo"}"#;
    let r = stack
        .run_with(
            &snapshot_restore(source, "latest", &target, "[]"),
            &stack.snapshot_profiles(PASSWORD),
        )
        .await;
    assert_eq!(
        (r.status, r.files.copied),
        (JobStatus::Succeeded, 2),
        "{r:#?}"
    );
    for (path, data) in &files {
        assert!(std::fs::read(target.join(path)).unwrap() == *data, "{path}");
    }
}

/// The check job: a healthy repository passes; one damaged pack fails `read_data`, naming it.
#[tokio::test(flavor = "multi_thread")]
async fn a_check_job_finds_a_damaged_pack() {
    let stack = Stack::start();
    stack.azurite.create_container("checked").await;
    let (src, _) = tree(&stack, "snap-checked");
    let dest = r#"{"storage": "archive", "container": "checked", "prefix": "repo"}"#;
    let profiles = stack.snapshot_profiles(PASSWORD);
    let made = stack
        .run_with(&snapshot_backup(&src, dest, true), &profiles)
        .await;
    assert_eq!(made.status, JobStatus::Succeeded, "{made:#?}");
    let check = |read_data: bool| {
        format!(
            r#"{{"kind": "check", "job_id": "c", "destination": {dest}, "read_data": {read_data}}}"#
        )
    };
    let healthy = stack.run_with(&check(true), &profiles).await;
    assert_eq!(healthy.status, JobStatus::Succeeded, "{healthy:#?}");

    // Flip bytes in the largest pack, keeping its length.
    let mut packs = Vec::new();
    for name in stack.azurite.list("checked").await {
        if name.starts_with("repo/data/") {
            let data = stack.azurite.read("checked", &name).await;
            packs.push((data.len(), name, data));
        }
    }
    packs.sort();
    let (_, name, mut data) = packs.pop().expect("a pack");
    let middle = data.len() / 2;
    for b in &mut data[middle..middle + 64] {
        *b ^= 0xff;
    }
    stack
        .azurite
        .overwrite_keeping_properties("checked", &name, &data)
        .await;

    let damaged = stack.run_with(&check(true), &profiles).await;
    assert_eq!(damaged.status, JobStatus::Failed, "{damaged:#?}");
    assert!(
        damaged
            .errors
            .iter()
            .all(|e| e.error.code == "check.damaged")
            && !damaged.errors.is_empty(),
        "{damaged:#?}"
    );
    let pack_id = name.rsplit('/').next().unwrap_or_default();
    let text = serde_json::to_string(&damaged.errors).unwrap();
    assert!(
        text.contains(&pack_id[..8]),
        "the damaged pack is named: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_that_cannot_be_read_is_reported_and_left_out_of_the_snapshot() {
    use std::os::unix::fs::PermissionsExt;
    let stack = Stack::start();
    stack.azurite.create_container("unreadable").await;
    let (src, files) = tree(&stack, "snap-unreadable");
    let secret = write_file(&src, "docs/secret.txt", b"root only");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    let dest = r#"{"storage": "archive", "container": "unreadable", "prefix": "repo"}"#;
    let profiles = stack.snapshot_profiles(PASSWORD);

    let r = stack
        .run_with(&snapshot_backup(&src, dest, true), &profiles)
        .await;
    assert_eq!(r.status, JobStatus::PartiallyFailed, "{r:#?}");
    assert_eq!((r.files.found, r.files.copied, r.files.failed), (7, 6, 1));
    assert_eq!(
        error_codes(&r),
        [("docs/secret.txt".into(), "sftp.permission_denied".into())]
    );
    // The snapshot holds every other file; restic finds it whole.
    let restic = Restic::from_blob(&stack, "unreadable", "repo", PASSWORD).await;
    judge(&restic, &src, &files, &[&report(&r).id]);
    let (_keep, restored) = restic.restore("latest");
    let base = restored.join(src.strip_prefix("/").unwrap());
    assert!(!base.join("docs/secret.txt").exists());
}
