//! `./dev bench`: backup-worker against rclone 1.75 on the same loopback stack, same files, same
//! chunk size and requests in flight, in one run, side by side as ratios, next to the limits of
//! the link (see `speed`). `./dev bench restore` and `./dev bench snapshot` measure the other
//! directions and modes, `./dev bench init` a Lambda cold start's init. The machine is shared
//! and noisy: read the ratios and medians.

use std::io::Write;
use std::path::Path;

use harness::stack::{pattern, Stack};

mod init;
mod limits;
mod link;
mod measure;
mod restore;
mod sets;
mod sinks;
mod snapshot;
mod speed;
mod tools;

use measure::MIB;

fn write_big(path: &Path, size: u64) {
    let mut f = std::fs::File::create(path).expect("create");
    for i in 0..size / MIB {
        f.write_all(&pattern(MIB as usize, i)).expect("write");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    measure::adopt_orphans();
    let exe_dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let tools = tools::Tools {
        // The runner as it ships (the `dist` profile: the RSS counts its code pages too);
        // BENCH_RUNNER: another build (`target/release/backup-worker`, a wrapper script).
        runner: std::env::var_os("BENCH_RUNNER")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| exe_dir.join("../dist/backup-worker")),
        rclone: harness::repo_root().join(".tools/venv/bin/rclone"),
    };
    for built in [&tools.runner, &exe_dir.join("files-server")] {
        anyhow::ensure!(
            built.exists(),
            "build {} first (./dev bench does)",
            built.display()
        );
    }
    anyhow::ensure!(tools.rclone.exists(), "run ./dev install for rclone");

    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("restore") => return restore::rows(&tools.runner, &Stack::start()).await,
        Some("snapshot") => return snapshot::rows(&tools.runner, &Stack::start()).await,
        Some("init") => {
            let dist = exe_dir.join("../dist/bootstrap");
            let release = exe_dir.join("bootstrap");
            return init::rows(&[("dist (shipped)", &dist), ("release", &release)]);
        }
        _ => {}
    }
    let choice = choose(&args)?;
    speed::run(&tools, &exe_dir, choice).await
}

/// Sets and destinations named on the command line (all of either when none is named).
fn choose(args: &[String]) -> anyhow::Result<speed::Choice> {
    let mut sets = Vec::new();
    let mut services = Vec::new();
    for arg in args.iter().filter(|a| *a != "speed") {
        match arg.as_str() {
            "blob" => services.push(sinks::Service::Blob),
            "files" => services.push(sinks::Service::Files),
            key => match sets::ALL.iter().find(|s| s.key() == key) {
                Some(set) => sets.push(*set),
                None => anyhow::bail!(
                    "unknown argument {key:?}: sets are 1g, 10m, 16k, 4g; destinations blob, files; \
                     or `restore`, `snapshot`"
                ),
            },
        }
    }
    if sets.is_empty() {
        sets = sets::ALL.to_vec();
    }
    if services.is_empty() {
        services = vec![sinks::Service::Blob, sinks::Service::Files];
    }
    let reps = match std::env::var("BENCH_REPS") {
        Ok(v) => v
            .parse()
            .map_err(|_| anyhow::anyhow!("BENCH_REPS={v:?} is not a count"))?,
        Err(_) => 3,
    };
    anyhow::ensure!(reps >= 1, "BENCH_REPS must be at least 1");
    let round_trip = match std::env::var("BENCH_RTT_MS") {
        Ok(v) => v
            .parse()
            .map(std::time::Duration::from_millis)
            .map_err(|_| anyhow::anyhow!("BENCH_RTT_MS={v:?} is not a count of milliseconds"))?,
        Err(_) => std::time::Duration::ZERO,
    };
    Ok(speed::Choice {
        sets,
        services,
        reps,
        round_trip,
    })
}
