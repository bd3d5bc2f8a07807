//! Memory stays bounded by `chunk_size × upload_concurrency` plus a constant, whatever the file
//! size. The runner logs its own peak RSS (`VmHWM`) at exit; the test compares a run that copies
//! a few bytes with one that streams a file many times larger than the budget.

use std::io::Write;

use harness::stack::{pattern, Stack};
use serde_json::Value;

const MIB: u64 = 1024 * 1024;

/// Run a backup through the real binary; return the peak RSS it reported and its log lines.
fn backup_peak_rss(stack: &Stack, path: &std::path::Path, options: &str) -> (u64, Vec<Value>) {
    let message = format!(
        r#"{{"kind": "backup", "job_id": "mem", "source": {{"storage": "office_nas", "path": "{}"}},
            "destination": {{"storage": "archive", "container": "mem"}}, "options": {options}}}"#,
        path.display()
    );
    let out = harness::runner::run(
        std::path::Path::new(env!("CARGO_BIN_EXE_backup-worker")),
        stack,
        &message,
        &[
            ("RUST_LOG", "info"),
            ("BACKUP_PROGRESS_INTERVAL_SECS", "0.5"),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let peak = lines
        .iter()
        .find_map(|l| l["peak_rss_bytes"].as_u64())
        .unwrap_or_else(|| panic!("no peak_rss_bytes in the runner's log: {stderr}"));
    (peak, lines)
}

/// Write a large file in slices so this test process stays small too.
fn write_big(path: &std::path::Path, size: u64) {
    let mut f = std::fs::File::create(path).expect("create");
    for i in 0..size / MIB {
        f.write_all(&pattern(MIB as usize, i)).expect("write");
    }
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
}

#[tokio::test]
async fn peak_memory_follows_the_budget_not_the_file_size() {
    let stack = Stack::start();
    stack.azurite.create_container("mem").await;
    let tiny = stack.source_dir("tiny");
    harness::stack::write_file(&tiny, "t.txt", b"tiny");
    let big = stack.source_dir("big");
    let file_size = 256 * MIB;
    write_big(&big.join("big.bin"), file_size);

    let options = r#"{"chunk_size": "1MiB", "upload_concurrency": 4}"#;
    let budget = 4 * MIB;
    let (baseline, _) = backup_peak_rss(&stack, &tiny, options);
    let (peak, log) = backup_peak_rss(&stack, &big, options);
    let mib = |b: u64| b as f64 / MIB as f64;
    println!(
        "memory: file {} MiB, budget {} MiB (1 MiB x 4): peak RSS {:.1} MiB, baseline (4-byte job) {:.1} MiB, growth {:.1} MiB",
        file_size / MIB,
        budget / MIB,
        mib(peak),
        mib(baseline),
        mib(peak.saturating_sub(baseline)),
    );
    // The constant covers the SFTP read-ahead of the files in flight and allocator slack. It is
    // far below the file size: a runner that buffered the file would fail here.
    let constant = 24 * MIB;
    assert!(
        peak < baseline + budget + constant,
        "peak RSS {:.1} MiB exceeds baseline {:.1} + budget {:.1} + {:.1} MiB",
        mib(peak),
        mib(baseline),
        mib(budget),
        mib(constant)
    );

    // A long transfer logs its progress at intervals: bytes done grow, a rate is given.
    let progress: Vec<u64> = log
        .iter()
        .filter(|l| l["message"] == "progress")
        .map(|l| l["bytes_done"].as_u64().unwrap_or(0))
        .collect();
    assert!(
        progress.len() >= 2,
        "expected periodic progress lines, got {progress:?}"
    );
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert!(log
        .iter()
        .any(|l| l["message"] == "progress" && l["bytes_per_sec"].as_u64() > Some(0)));
}
