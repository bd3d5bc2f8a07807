//! `./dev demo`: start the local stack, put a sample tree on the SFTP side, then run the sample
//! messages in `events/` through the local runner exactly as a user would, and print results.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use harness::stack::{pattern, write_file, Stack};

const SAMPLE_TREE: &str = "/tmp/backup-worker-demo";
/// Where the restore samples write (the SFTP login is another user: it must be writable).
const RESTORED: &str = "/tmp/backup-worker-demo-restored";
/// The demo repository's password (a real deployment keeps it in a secret store).
const RESTIC_PASSWORD: &str = "demo-only-password";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = harness::repo_root();
    let runner = std::env::current_exe()?
        .parent()
        .map(|d| d.join("backup-worker"))
        .filter(|p| p.exists())
        .ok_or_else(|| {
            anyhow::anyhow!("backup-worker is not built: run `cargo build -p backup-local`")
        })?;

    println!("== starting sshd, Azurite and the Azure Files test server on loopback");
    let stack = Stack::start();
    stack.azurite.create_container("backups").await;
    stack.files.create_share("backups");
    println!(
        "   sshd 127.0.0.1:{}  azurite {}  azure files {}",
        stack.sshd.port,
        stack.azurite.endpoint(),
        stack.files.endpoint()
    );

    println!("== sample tree in {SAMPLE_TREE}");
    let tree = Path::new(SAMPLE_TREE);
    let _ = fs::remove_dir_all(tree);
    fs::create_dir_all(tree)?;
    fs::set_permissions(tree, fs::Permissions::from_mode(0o755))?;
    write_file(tree, "README.txt", b"Quarterly reports and scans.\n");
    write_file(tree, "reports/2026/q3 summary.pdf", &pattern(300_000, 1));
    write_file(
        tree,
        "reports/2026/ledger-2026.xlsx",
        &pattern(3_500_000, 2),
    );
    write_file(tree, "scans/café menu.png", &pattern(80_000, 3));
    write_file(tree, "scans/empty.txt", b"");
    write_file(
        tree,
        "scratch/build.tmp",
        b"excluded by the message's exclude glob",
    );

    let run = |message: &str| -> anyhow::Result<()> {
        println!("\n== backup-worker run {message}");
        let status = Command::new(&runner)
            .args(["run", message])
            .current_dir(&root)
            .envs(stack.vars())
            .env("BACKUP_STORAGE_ARCHIVE_RESTIC_PASSWORD", RESTIC_PASSWORD)
            .env("RUST_LOG", "warn")
            .status()?;
        println!("   (exit code {})", status.code().unwrap_or(-1));
        Ok(())
    };
    run("events/test-connection.json")?;
    run("events/backup.json")?;
    println!("\n== the same job again: unchanged files are skipped");
    run("events/backup.json")?;

    println!("\n== blobs in container `backups`");
    for name in stack.azurite.list("backups").await {
        println!("   {name}");
    }

    println!("\n== the same tree into an Azure Files share");
    run("events/backup-to-files.json")?;
    println!("\n== files in share `backups`");
    let mut files = stack.files.files("backups");
    files.sort();
    for (name, data) in files {
        println!("   {name} ({} bytes)", data.len());
    }

    println!("\n== can we restore into {RESTORED}? (the target is checked for write permission)");
    let _ = fs::remove_dir_all(RESTORED);
    fs::create_dir_all(RESTORED)?;
    fs::set_permissions(RESTORED, fs::Permissions::from_mode(0o777))?;
    run("events/test-connection-restore-target.json")?;
    println!("\n== restore the Blob mirror onto the SFTP server");
    run("events/restore.json")?;
    for (rel, same) in compare_trees(tree, Path::new(RESTORED))? {
        println!("   {rel}: {}", if same { "identical" } else { "DIFFERENT" });
    }
    println!("\n== restore only `reports` from the Files mirror, replacing what is there");
    run("events/restore-some-files.json")?;
    println!("\n== verify the Blob mirror, and compare it with the source");
    run("events/verify.json")?;

    println!("\n== snapshot mode: the tree as an encrypted restic repository, twice");
    run("events/backup-snapshot.json")?;
    run("events/backup-snapshot.json")?;
    println!("\n== what stock restic says of it (copied out of Azurite)");
    let restic =
        harness::restic::Restic::from_blob(&stack, "backups", "office-nas-restic", RESTIC_PASSWORD)
            .await;
    print!("{}", restic.run(&["snapshots"]));
    restic.run(&["check", "--read-data"]);
    println!("   restic check --read-data: no errors");
    println!("\n== restore `reports` from the latest snapshot onto the SFTP server");
    let from_snapshot = Path::new("/tmp/backup-worker-demo-restored-snapshot");
    let _ = fs::remove_dir_all(from_snapshot);
    fs::create_dir_all(from_snapshot)?;
    fs::set_permissions(from_snapshot, fs::Permissions::from_mode(0o777))?;
    run("events/restore-snapshot.json")?;
    println!("\n== retention: keep the last one (and daily/weekly/monthly), prune the rest");
    run("events/forget.json")?;
    run("events/prune.json")?;
    println!("\n== check the repository, reading every pack");
    run("events/check.json")?;
    let restic =
        harness::restic::Restic::from_blob(&stack, "backups", "office-nas-restic", RESTIC_PASSWORD)
            .await;
    restic.run(&["check", "--read-data"]);
    println!("   restic check --read-data after forget and prune: no errors");
    Ok(())
}

/// Each file of `original` (bar the excluded `*.tmp`), and whether `restored` has the same
/// bytes and mtime (to the second).
fn compare_trees(original: &Path, restored: &Path) -> anyhow::Result<Vec<(String, bool)>> {
    let mut out = Vec::new();
    let mut pending = vec![original.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let rel = path.strip_prefix(original)?.to_path_buf();
            if rel.extension().is_some_and(|e| e == "tmp") {
                continue;
            }
            let copy = restored.join(&rel);
            // SFTP carries mtimes in whole seconds.
            let secs = |p: &Path| {
                fs::metadata(p)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs())
            };
            let same = fs::read(&path).ok() == fs::read(&copy).ok() && secs(&path) == secs(&copy);
            out.push((rel.display().to_string(), same));
        }
    }
    out.sort();
    Ok(out)
}
