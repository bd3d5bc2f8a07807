//! Local runner: run one job message on this machine.
//!
//!   backup-worker run <message.json>     (or `-`/nothing for stdin)
//!   backup-worker schema                 print the job message JSON Schema
//!   backup-worker poll (--sqs QUEUE_URL | --azure-queue QUEUE_URL --credentials STORAGE)
//!                      [--workers N] [--visibility SECS] [--exit-when-idle SECS]
//!                                        work a job queue (big jobs fan out over it)
//!
//! The job result goes to stdout as JSON; logs go to stderr (JSON unless stderr is a terminal).
//! `BACKUP_PROGRESS_INTERVAL_SECS` sets how often progress is logged (default 10).
//! Exit code: 0 succeeded, 1 failed, 2 partially failed, 3 no files found, 64 usage error.

use std::io::{IsTerminal, Read};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use backup_common::config::Profiles;
use backup_common::job;
use backup_common::transfer::Progress;
use indicatif::{ProgressBar, ProgressStyle};

mod poll;

const USAGE: &str = "usage: backup-worker run [MESSAGE.json | -]\n       backup-worker schema\n       backup-worker poll (--sqs QUEUE_URL | --azure-queue QUEUE_URL --credentials STORAGE) [--workers N] [--visibility SECS] [--exit-when-idle SECS]";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => {
            let message = match read_message(args.get(1).map(String::as_str)) {
                Ok(bytes) => bytes,
                Err(e) => {
                    // No job ran: a usage error, not a failed job.
                    eprintln!("backup-worker: {e:#}\n{USAGE}");
                    std::process::exit(64);
                }
            };
            let code = tokio::runtime::Runtime::new()?.block_on(run(&message))?;
            std::process::exit(code);
        }
        Some("poll") => {
            let options = poll_options(&args[1..])?;
            tokio::runtime::Runtime::new()?.block_on(async {
                init_logging();
                poll::poll(options, Arc::new(Profiles::from_env()?)).await
            })
        }
        Some("schema") => {
            println!(
                "{}",
                serde_json::to_string_pretty(&backup_common::message::JobMessage::json_schema())?
            );
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(64);
        }
    }
}

fn poll_options(args: &[String]) -> anyhow::Result<poll::PollOptions> {
    let (mut sqs, mut azure, mut credentials) = (None, None, None);
    let mut options = poll::PollOptions {
        queue: poll::QueueSpec::Sqs { url: String::new() },
        workers: 4,
        exit_when_idle: None,
        visibility: Duration::from_secs(60),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        let secs = || {
            value
                .parse::<f64>()
                .map(Duration::from_secs_f64)
                .with_context(|| format!("{flag}: `{value}` is not a number of seconds"))
        };
        match flag.as_str() {
            "--sqs" => sqs = Some(value.clone()),
            "--azure-queue" => azure = Some(value.clone()),
            "--credentials" => credentials = Some(value.clone()),
            "--workers" => {
                options.workers = value
                    .parse()
                    .with_context(|| format!("--workers: `{value}` is not a number"))?
            }
            "--visibility" => options.visibility = secs()?,
            "--exit-when-idle" => options.exit_when_idle = Some(secs()?),
            other => anyhow::bail!("unknown option {other}\n{USAGE}"),
        }
    }
    options.queue = match (sqs, azure, credentials) {
        (Some(url), None, None) => poll::QueueSpec::Sqs { url },
        (None, Some(url), Some(credentials)) => poll::QueueSpec::Azure { url, credentials },
        (None, Some(_), None) => anyhow::bail!(
            "--azure-queue needs --credentials STORAGE (a profile with the account key or SAS)\n{USAGE}"
        ),
        _ => anyhow::bail!("give one of --sqs or --azure-queue\n{USAGE}"),
    };
    Ok(options)
}

/// The message's bytes as given: their encoding is the library's to judge.
fn read_message(arg: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    match arg {
        None | Some("-") => {
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading the message from stdin")?;
        }
        Some(path) => {
            bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
        }
    }
    Ok(bytes)
}

async fn run(message: &[u8]) -> anyhow::Result<i32> {
    init_logging();
    let profiles = Profiles::from_env()?;
    let progress = match std::env::var("BACKUP_PROGRESS_INTERVAL_SECS") {
        Ok(secs) => Progress::with_log_interval(Duration::from_secs_f64(
            secs.parse()
                .context("BACKUP_PROGRESS_INTERVAL_SECS must be a number of seconds")?,
        )),
        Err(_) => Progress::new(),
    };
    let bar = std::io::stderr()
        .is_terminal()
        .then(|| show_progress(progress.clone()));
    let result = job::run_text(message, &profiles, progress).await;
    if let Some(bar) = bar {
        bar.abort();
    }
    println!("{}", serde_json::to_string_pretty(&result)?);
    if let Some(peak) = peak_rss_bytes() {
        // What an operator needs to size the function's memory: all of it, and the part that
        // chunks held at once (the rest does not grow with the files).
        let chunks = backup_common::transfer::MemoryBudget::process().peak();
        tracing::info!(
            peak_rss_bytes = peak,
            chunk_memory_peak = chunks,
            "resources"
        );
    }
    Ok(result.status.exit_code())
}

/// This process's peak resident set size (Linux `VmHWM`), if the platform tells.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.compact().init();
    } else {
        builder.json().flatten_event(true).init();
    }
}

/// A progress bar on the terminal, fed from the engine's counters.
fn show_progress(progress: Arc<Progress>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        loop {
            let s = progress.snapshot();
            bar.set_length(s.bytes_total);
            bar.set_position(s.bytes_done);
            bar.set_message(format!("{}/{} files", s.files_done, s.files_total));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}
