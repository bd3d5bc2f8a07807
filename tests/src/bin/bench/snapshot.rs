//! `./dev bench snapshot`: snapshot mode next to mirror mode and stock `restic`, on one 1 GiB
//! file (throughput, peak RSS), and what a snapshot run uploads: first run, unchanged rerun,
//! and after 1 MiB of a 100 MiB file changed. Part of the `bench` binary.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use harness::stack::{pattern, Stack};

use super::measure::{measure, Measure, MIB};
use super::write_big;

const PASSWORD: &str = "bench-only-password";

fn run(runner: &Path, stack: &Stack, message: &str) -> Measure {
    run_with(runner, stack, message, &[])
}

fn run_with(runner: &Path, stack: &Stack, message: &str, extra: &[(&str, &str)]) -> Measure {
    let mut env = vec![
        ("RUST_LOG", "warn"),
        ("BACKUP_STORAGE_ARCHIVE_RESTIC_PASSWORD", PASSWORD),
    ];
    env.extend_from_slice(extra);
    measure(
        harness::runner::spawn(runner, stack, message, &env),
        "backup-worker",
    )
}

fn backup(src: &Path, mode: &str, prefix: &str) -> String {
    format!(
        r#"{{"kind": "backup", "job_id": "b", "mode": "{mode}", "init": {init},
            "source": {{"storage": "office_nas", "path": "{}"}},
            "destination": {{"storage": "archive", "container": "snap", "prefix": "{prefix}"}},
            "options": {{"chunk_size": "4MiB", "upload_concurrency": 16}}}}"#,
        src.display(),
        init = mode == "snapshot"
    )
}

/// The snapshot's bytes added (compressed and encrypted), from the runner's result.
fn added(m: &Measure) -> u64 {
    let result: serde_json::Value = serde_json::from_str(&m.stdout).unwrap_or_default();
    result["snapshot"]["data_added_packed"]
        .as_u64()
        .unwrap_or(0)
}

fn row(what: &str, bytes: u64, m: &Measure, uploaded: Option<u64>) {
    println!(
        "{:<34} {:>8.2} {:>8.1} {:>13.1} {:>14}",
        what,
        m.wall.as_secs_f64(),
        bytes as f64 / 1e6 / m.wall.as_secs_f64(),
        m.peak_rss as f64 / MIB as f64,
        uploaded.map_or("-".to_string(), |b| b.to_string()),
    );
}

pub async fn rows(runner: &Path, stack: &Stack) -> anyhow::Result<()> {
    stack.azurite.create_container("snap").await;
    let big = stack.source_dir("bench-snap-big");
    write_big(&big.join("big.bin"), 1024 * MIB);
    Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&big)
        .status()?;
    println!("1 GiB file into Azurite Blob, loopback; the worker as it ships (profile `dist`); chunk 4 MiB, 16 in flight");
    println!(
        "{:<34} {:>8} {:>8} {:>13} {:>14}",
        "run", "wall s", "MB/s", "peak RSS MiB", "bytes added"
    );
    let gib = 1024 * MIB;
    row(
        "mirror backup",
        gib,
        &run(runner, stack, &backup(&big, "mirror", "mirror")),
        None,
    );
    let first = run(runner, stack, &backup(&big, "snapshot", "repo"));
    row("snapshot backup (first)", gib, &first, Some(added(&first)));
    let again = run(runner, stack, &backup(&big, "snapshot", "repo"));
    row(
        "snapshot backup (unchanged)",
        gib,
        &again,
        Some(added(&again)),
    );
    // A repository created under a 64 MiB budget (a 128 MB Lambda): 4 MiB packs.
    let budget = [("BACKUP_MEMORY_BUDGET", "64MiB")];
    let small = run_with(
        runner,
        stack,
        &backup(&big, "snapshot", "repo-small"),
        &budget,
    );
    row(
        "snapshot backup (64 MiB budget)",
        gib,
        &small,
        Some(added(&small)),
    );
    for (what, extra) in [
        ("mirror restore", ""),
        ("snapshot restore (latest)", r#""snapshot": "latest","#),
    ] {
        let prefix = if extra.is_empty() { "mirror" } else { "repo" };
        let target = stack
            .sshd
            .data_dir()
            .join(format!("bench-restored-{prefix}"));
        std::fs::create_dir_all(&target)?;
        Command::new("chmod").arg("777").arg(&target).status()?;
        let message = format!(
            r#"{{"kind": "restore", "job_id": "r", {extra}
                "source": {{"storage": "archive", "container": "snap", "prefix": "{prefix}"}},
                "target": {{"storage": "office_nas", "path": "{}"}},
                "options": {{"chunk_size": "4MiB", "upload_concurrency": 16}}}}"#,
            target.display()
        );
        row(what, gib, &run(runner, stack, &message), None);
        let same = std::fs::read(big.join("big.bin"))? == std::fs::read(target.join("big.bin"))?;
        anyhow::ensure!(same, "{what}: the restored file differs from the source");
    }
    let restic = restic_backup(&big)?;
    row("restic backup (local copy, local repo)", gib, &restic, None);

    let hundred = stack.source_dir("bench-snap-100");
    let file = hundred.join("hundred.bin");
    write_big(&file, 100 * MIB);
    Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&hundred)
        .status()?;
    let before = run(runner, stack, &backup(&hundred, "snapshot", "repo100"));
    row(
        "100 MiB file (first)",
        100 * MIB,
        &before,
        Some(added(&before)),
    );
    let mut f = std::fs::OpenOptions::new().write(true).open(&file)?;
    f.seek(SeekFrom::Start(50 * MIB))?;
    f.write_all(&pattern(MIB as usize, 999))?;
    drop(f);
    let after = run(runner, stack, &backup(&hundred, "snapshot", "repo100"));
    row(
        "100 MiB file, 1 MiB changed",
        100 * MIB,
        &after,
        Some(added(&after)),
    );
    Ok(())
}

/// Stock restic backing up a local copy into a local repository: the comparison the issue asks.
fn restic_backup(src: &Path) -> anyhow::Result<Measure> {
    let repo = tempfile::tempdir()?;
    let env = [("RESTIC_PASSWORD", PASSWORD), ("RESTIC_REPOSITORY", "")];
    let init = Command::new("restic")
        .args(["init", "--quiet", "--repo"])
        .arg(repo.path())
        .envs(env)
        .status()?;
    anyhow::ensure!(init.success(), "restic init failed");
    let child = Command::new("restic")
        .args(["backup", "--quiet", "--no-cache", "--repo"])
        .arg(repo.path())
        .arg(src)
        .envs(env)
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    Ok(measure(child, "restic backup"))
}
