//! Repository locks, judged by stock `restic` both ways: restic reads our lock files (it lists
//! them, decrypts them, and `restic prune` refuses to run under our backup's lock), and our
//! jobs honour restic's (a prune waits for restic's backup to finish; a backup runs beside
//! it). Locks are gone once a job ends.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backup_common::config::Profiles;
use backup_common::job::snapshot_repository;
use backup_common::message::DestinationRef;
use backup_common::result::JobStatus;
use backup_common::snapshot::lock::{hold, LockKind, RepoLock};
use harness::restic::Restic;
use harness::stack::{error_codes, write_file, Stack};

const PASSWORD: &str = "lock password";
const DEST: &str = r#"{"storage": "archive", "container": "locks", "prefix": "repo"}"#;

fn backup(src: &Path) -> String {
    format!(
        r#"{{"kind": "backup", "job_id": "locks", "mode": "snapshot", "init": true,
            "source": {{"storage": "office_nas", "path": "{}"}}, "destination": {DEST}}}"#,
        src.display()
    )
}

fn prune() -> String {
    format!(r#"{{"kind": "prune", "job_id": "locks-prune", "destination": {DEST}}}"#)
}

/// Our lock on the test repository, taken as a job takes it.
async fn our_lock(profiles: &Profiles, kind: LockKind) -> RepoLock {
    let place: DestinationRef = serde_json::from_str(DEST).unwrap();
    let (backend, password) = snapshot_repository(profiles, &place, "destination").unwrap();
    tokio::task::spawn_blocking(move || hold(&backend, &password, kind))
        .await
        .unwrap()
        .expect("a lock")
}

async fn release(lock: RepoLock) {
    tokio::task::spawn_blocking(move || lock.release())
        .await
        .unwrap();
}

async fn locks_in_azurite(stack: &Stack) -> Vec<String> {
    let names = stack.azurite.list("locks").await;
    names
        .into_iter()
        .filter(|n| n.starts_with("repo/locks/"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn restic_reads_our_locks_and_will_not_prune_under_them() {
    let stack = Stack::start();
    stack.azurite.create_container("locks").await;
    let profiles = stack.snapshot_profiles(PASSWORD);
    let src = stack.source_dir("locks-ours");
    write_file(&src, "a.txt", b"locked in");
    let r = stack.run_with(&backup(&src), &profiles).await;
    assert_eq!(r.status, JobStatus::Succeeded, "{r:#?}");
    assert!(
        locks_in_azurite(&stack).await.is_empty(),
        "a job leaves no lock"
    );

    // A backup's shared lock: restic decrypts it, and its prune refuses to run.
    let lock = our_lock(&profiles, LockKind::Shared).await;
    let held = locks_in_azurite(&stack).await;
    assert_eq!(held.len(), 1, "{held:?}");
    let id = held[0].trim_start_matches("repo/locks/");
    let restic = Restic::from_blob(&stack, "locks", "repo", PASSWORD).await;
    assert_eq!(restic.run(&["list", "locks", "--no-lock"]).trim(), id);
    let json: serde_json::Value =
        serde_json::from_str(&restic.run(&["cat", "lock", id, "--no-lock"])).unwrap();
    assert_eq!(json["exclusive"], false, "{json}");
    assert!(json["hostname"]
        .as_str()
        .unwrap_or_default()
        .starts_with("backup-worker@"));
    let refused = restic.try_run(&["prune"]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && said.contains("locked"),
        "{said}"
    );
    // ... while another backup of ours runs beside it.
    let r = stack.run_with(&backup(&src), &profiles).await;
    assert_eq!(r.status, JobStatus::Succeeded, "{r:#?}");
    release(lock).await;
    assert!(locks_in_azurite(&stack).await.is_empty(), "released");

    // An exclusive lock (a prune of ours): restic's backup and ours both refuse.
    let lock = our_lock(&profiles, LockKind::Exclusive).await;
    let restic = Restic::from_blob(&stack, "locks", "repo", PASSWORD).await;
    let refused = restic.try_run(&["backup", &src.display().to_string()]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && said.contains("locked exclusively"),
        "{said}"
    );
    let r = stack.run_with(&backup(&src), &profiles).await;
    assert_eq!(r.status, JobStatus::Failed, "{r:#?}");
    assert_eq!(error_codes(&r), [(String::new(), "snapshot.locked".into())]);
    let message = &r.errors[0].error.message;
    assert!(message.contains("exclusive lock of backup-worker@") && r.errors[0].error.retryable);
    release(lock).await;
}

/// `restic backup --stdin` holds its lock until its input ends: a restic-made lock, live.
struct ResticBackup {
    child: std::process::Child,
}

impl ResticBackup {
    fn start(restic: &Restic) -> Self {
        let child = Command::new("restic")
            .arg("--repo")
            .arg(restic.repo.path())
            .args([
                "--no-cache",
                "--quiet",
                "backup",
                "--stdin",
                "--stdin-filename",
                "dump.sql",
            ])
            .env("RESTIC_PASSWORD", PASSWORD)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("restic");
        ResticBackup { child }
    }

    /// The lock file restic wrote (name, bytes), once it is there: named by its id (restic
    /// writes it under a `…-tmp-…` name first and renames it whole).
    fn lock(&self, restic: &Restic) -> (String, Vec<u8>) {
        let dir = restic.repo.path().join("locks");
        let deadline = Instant::now() + Duration::from_secs(30);
        let is_id = |n: &str| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit());
        loop {
            let names = std::fs::read_dir(&dir).into_iter().flatten().flatten();
            let found = names
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|n| is_id(n));
            if let Some(name) = found {
                let bytes = std::fs::read(dir.join(&name)).unwrap();
                return (name, bytes);
            }
            assert!(Instant::now() < deadline, "restic wrote no lock");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn finish(mut self) {
        let mut stdin = self.child.stdin.take().unwrap();
        stdin.write_all(b"-- the end\n").unwrap();
        drop(stdin);
        assert!(self.child.wait().unwrap().success());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn our_prune_waits_for_restics_backup_and_our_backup_runs_beside_it() {
    let stack = Stack::start();
    stack.azurite.create_container("locks").await;
    let profiles = stack.snapshot_profiles(PASSWORD);
    let src = stack.source_dir("locks-restic");
    write_file(&src, "b.txt", b"beside restic");
    let r = stack.run_with(&backup(&src), &profiles).await;
    assert_eq!(r.status, JobStatus::Succeeded, "{r:#?}");

    // restic's live lock, put where our jobs look (the repository restic runs on is a copy).
    let restic = Restic::from_blob(&stack, "locks", "repo", PASSWORD).await;
    let running = ResticBackup::start(&restic);
    let (name, bytes) = running.lock(&restic);
    let ours = format!("repo/locks/{name}");
    assert!(stack.azurite.put("locks", &ours, &bytes).await);

    let r = stack.run_with(&prune(), &profiles).await;
    assert_eq!(r.status, JobStatus::Failed, "{r:#?}");
    assert_eq!(error_codes(&r), [(String::new(), "snapshot.locked".into())]);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(
        r.errors[0]
            .error
            .message
            .contains(&format!("lock of {} (pid", host.trim())),
        "names restic's host: {}",
        r.errors[0].error.message
    );
    assert_eq!(
        locks_in_azurite(&stack).await,
        std::slice::from_ref(&ours),
        "ours removed again"
    );

    let r = stack.run_with(&backup(&src), &profiles).await;
    assert_eq!(
        r.status,
        JobStatus::Succeeded,
        "a shared lock beside restic's: {r:#?}"
    );

    running.finish();
    stack
        .azurite
        .container("locks")
        .blob_client(&ours)
        .delete(None)
        .await
        .unwrap();
    let r = stack.run_with(&prune(), &profiles).await;
    assert_eq!(r.status, JobStatus::Succeeded, "{r:#?}");
    assert!(locks_in_azurite(&stack).await.is_empty());
}
