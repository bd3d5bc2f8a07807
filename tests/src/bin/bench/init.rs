//! `./dev bench init`: a Lambda cold start's own part, process start to the first request for
//! an event, of the shipped `bootstrap` (profile `dist`) and of the release build, against the
//! Runtime API emulator. No network at init: the function reads its environment and polls.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::lambda::RuntimeApi;

use super::measure::{median, MIB};

const RUNS: usize = 20;

pub fn rows(binaries: &[(&str, &Path)]) -> anyhow::Result<()> {
    println!("| build | binary MiB | init ms, median of {RUNS} | min | max |");
    println!("|---|---:|---:|---:|---:|");
    for (name, bootstrap) in binaries {
        let size = std::fs::metadata(bootstrap)?.len() as f64 / MIB as f64;
        let mut inits: Vec<f64> = (0..RUNS)
            .map(|_| init_ms(bootstrap))
            .collect::<anyhow::Result<_>>()?;
        let (min, max) = inits
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        println!(
            "| {name} | {size:.1} | {:.1} | {min:.1} | {max:.1} |",
            median(&mut inits)
        );
    }
    Ok(())
}

/// Milliseconds from spawning `bootstrap` to its first `GET …/invocation/next`.
fn init_ms(bootstrap: &Path) -> anyhow::Result<f64> {
    let api = RuntimeApi::start();
    let started = Instant::now();
    let mut child = Command::new(bootstrap)
        .env_clear()
        .envs(api.function_env())
        .envs([
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "bench"),
            ("AWS_SECRET_ACCESS_KEY", "bench"),
            ("RUST_LOG", "warn"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let polled = loop {
        if let Some(at) = api.first_poll() {
            break Some(at);
        }
        if started.elapsed() > Duration::from_secs(10) {
            break None;
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    let at = polled.ok_or_else(|| anyhow::anyhow!("{} never polled", bootstrap.display()))?;
    Ok(at.duration_since(started).as_secs_f64() * 1e3)
}
