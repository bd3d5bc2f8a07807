//! `./dev bench [sets] [blob|files]`: each data set into each destination by backup-worker and
//! by rclone, back to back and alternating which goes first, `BENCH_REPS` times (default 3),
//! every run into a sink process started fresh for it; medians of wall time, throughput, peak
//! RSS and the CPU seconds of the tool, sshd and the sink, next to the limits of the link.
//! Printed as a Markdown table (the README's).

use std::path::Path;

use harness::sshd::Sshd;

use super::limits::{self, Requests};
use super::link::Link;
use super::measure::{median, CpuWatch, MIB};
use super::sets::Set;
use super::sinks::{Service, Sink};
use super::tools::{chunk_memory_peak, Source, Tool, Tools};

pub struct Choice {
    pub sets: Vec<Set>,
    pub services: Vec<Service>,
    pub reps: usize,
    /// Added to loopback's round trip (`BENCH_RTT_MS`; zero: loopback as it is).
    pub round_trip: std::time::Duration,
}

/// One run's figures.
#[derive(Clone, Copy, Default)]
struct Sample {
    wall: f64,
    cpu: f64,
    rss: f64,
    sshd: f64,
    sink: f64,
    /// Ours: the most chunk memory held at once (the part of the RSS the slots bound).
    chunks: f64,
}

/// The median of each figure over some runs.
fn medians(samples: &[Sample]) -> Sample {
    let m = |f: fn(&Sample) -> f64| median(&mut samples.iter().map(f).collect::<Vec<_>>());
    Sample {
        wall: m(|s| s.wall),
        cpu: m(|s| s.cpu),
        rss: m(|s| s.rss),
        sshd: m(|s| s.sshd),
        sink: m(|s| s.sink),
        chunks: m(|s| s.chunks),
    }
}

pub async fn run(tools: &Tools, exe_dir: &Path, choice: Choice) -> anyhow::Result<()> {
    let sshd = Sshd::start();
    let link = Link::new(&sshd, choice.round_trip);
    let at = Source {
        sshd: &sshd,
        link: &link,
    };
    println!(
        "SFTP (sshd) -> Azure over {}, chunk 4 MiB, 16 requests in flight, worker {}, \
         medians of {} runs each\n",
        link.describe(),
        tools.runner_build(),
        choice.reps
    );
    println!("| set | destination | run | wall s | MB/s | files/s | peak RSS MiB | CPU s | sshd CPU s | sink CPU s |");
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut notes = Vec::new();
    for set in &choice.sets {
        let dir = set.write(&sshd.data_dir())?;
        let cat: Vec<Sample> = (0..choice.reps)
            .map(|_| {
                // sshd's share is not shown: the session serving a command is not reaped
                // into the listener's time as an SFTP session is.
                let m = limits::ssh_cat(&at, &dir);
                Sample {
                    wall: m.wall.as_secs_f64(),
                    cpu: m.cpu,
                    rss: m.peak_rss as f64,
                    ..Sample::default()
                }
            })
            .collect();
        let cat = medians(&cat);
        row(
            *set,
            "–",
            &format!("limit: `ssh cat` ({})", limits::CIPHER),
            &cat,
        );
        for service in &choice.services {
            let limits =
                sink_limits(tools, *set, *service, exe_dir, &at, &dir, choice.reps).await?;
            limits.rows(*set, *service);
            // Azurite computes CRC-64 in JavaScript: the MD5 variant shows what that costs.
            let tools_run: &[Tool] = match service {
                Service::Blob if *set != Set::SmallFiles => {
                    &[Tool::Ours, Tool::Rclone, Tool::OursMd5]
                }
                _ => &[Tool::Ours, Tool::Rclone],
            };
            let runs = side_by_side(
                tools,
                &at,
                exe_dir,
                &dir,
                *set,
                *service,
                tools_run,
                choice.reps,
            )
            .await?;
            for (tool, first, _) in &runs {
                row(*set, service.title(), tool.title(), first);
            }
            if *set == Set::SmallFiles {
                for (tool, _, again) in &runs {
                    row(
                        *set,
                        service.title(),
                        &format!("{}, unchanged rerun", tool.title()),
                        again,
                    );
                }
            }
            notes.push(judge(*set, *service, &runs, &cat, &limits));
        }
    }
    println!();
    for note in notes {
        println!("{note}");
    }
    Ok(())
}

/// Each tool `reps` times, rotating which goes first; per tool the medians of first runs and
/// of unchanged reruns (the small-file set only).
#[allow(clippy::too_many_arguments)]
async fn side_by_side(
    tools: &Tools,
    at: &Source<'_>,
    exe_dir: &Path,
    dir: &Path,
    set: Set,
    service: Service,
    which: &[Tool],
    reps: usize,
) -> anyhow::Result<Vec<(Tool, Sample, Sample)>> {
    let mut first: Vec<Vec<Sample>> = vec![Vec::new(); which.len()];
    let mut again: Vec<Vec<Sample>> = vec![Vec::new(); which.len()];
    for rep in 0..reps {
        for turn in 0..which.len() {
            let slot = (rep + turn) % which.len();
            let tool = which[slot];
            let sink = Sink::start(service, exe_dir, at.link).await?;
            first[slot].push(one_run(tools, tool, at, dir, &sink));
            let held = sink.count_files().await?;
            anyhow::ensure!(
                held as u64 == set.files(),
                "{} left {held} files in {} where {} were expected",
                tool.title(),
                service.title(),
                set.files()
            );
            if set == Set::SmallFiles {
                again[slot].push(one_run(tools, tool, at, dir, &sink));
            }
        }
    }
    Ok(which
        .iter()
        .enumerate()
        .map(|(i, tool)| (*tool, medians(&first[i]), medians(&again[i])))
        .collect())
}

fn one_run(tools: &Tools, tool: Tool, at: &Source, dir: &Path, sink: &Sink) -> Sample {
    let watch = CpuWatch::start(at.sshd.pid(), &[sink.pid()]);
    let m = tools.run(tool, at, dir, sink);
    let spent = watch.stop();
    Sample {
        wall: m.wall.as_secs_f64(),
        cpu: m.cpu,
        rss: m.peak_rss as f64,
        sshd: spent[0],
        sink: spent[1],
        chunks: chunk_memory_peak(&m.stderr).unwrap_or(0) as f64,
    }
}

fn row(set: Set, destination: &str, run: &str, s: &Sample) {
    let per_second = |n: f64| n / s.wall.max(1e-9);
    let cpu = |v: f64| {
        if v > 0.0 {
            format!("{v:.2}")
        } else {
            "–".into()
        }
    };
    let rss = if s.rss > 0.0 {
        format!("{:.1}", s.rss / MIB as f64)
    } else {
        "–".into()
    };
    println!(
        "| {} | {destination} | {run} | {:.2} | {:.1} | {:.0} | {rss} | {} | {} | {} |",
        set.title(),
        s.wall,
        per_second(set.bytes() as f64 / 1e6),
        per_second(set.files() as f64),
        cpu(s.cpu),
        cpu(s.sshd),
        cpu(s.sink),
    );
}

/// The ratios and which limit binds.
fn judge(
    set: Set,
    service: Service,
    runs: &[(Tool, Sample, Sample)],
    cat: &Sample,
    limits: &SinkLimits,
) -> String {
    let (ours, theirs) = (&runs[0].1, &runs[1].1);
    let gib = set.bytes() as f64 / (1024.0 * MIB as f64);
    let mut note = format!(
        "- {} into {}: speed x{:.2} of rclone's, peak RSS x{:.2}, CPU x{:.2} \
         ({:.2} CPU s/GiB against {:.2})",
        set.title(),
        service.title(),
        theirs.wall / ours.wall,
        ours.rss / theirs.rss.max(1.0),
        ours.cpu / theirs.cpu.max(1e-9),
        ours.cpu / gib,
        theirs.cpu / gib,
    );
    // The slots bound the chunks; what grows with the file, if anything, is the rest.
    if ours.chunks > 0.0 {
        note.push_str(&format!(
            "; ours held at most {:.1} MiB of chunks at once, and {:.1} MiB besides",
            ours.chunks / MIB as f64,
            (ours.rss - ours.chunks) / MIB as f64
        ));
    }
    // The worker's default requests meet the sink's ingest of those requests.
    if let Some(put) = limits.worker_put.as_ref().or(limits.put.as_ref()) {
        let (limit, name) = if cat.wall >= put.wall {
            (cat.wall, "the SFTP read")
        } else {
            (put.wall, "the sink's ingest")
        };
        note.push_str(&format!(
            "; the binding limit is {name} ({limit:.2} s): ours at {:.0} % of it",
            100.0 * limit / ours.wall
        ));
    }
    if let Some(list) = &limits.list {
        let (ours, theirs) = (&runs[0].2, &runs[1].2);
        note.push_str(&format!(
            "; unchanged rerun x{:.2} of rclone's, at {:.0} % of the container's listing ({:.2} s)",
            theirs.wall / ours.wall,
            100.0 * list.wall / ours.wall,
            list.wall
        ));
    }
    note
}

/// The sink's own limits for one set, each a median of runs into a fresh sink.
#[derive(Default)]
struct SinkLimits {
    /// Plain ingest (not for the 4 GiB set, which measures memory growth).
    put: Option<Sample>,
    /// Blob, sets of big files: the ingest of the worker's own requests (CRC-64 per block).
    worker_put: Option<Sample>,
    /// Blob, small files: listing what the worker's backup left (the unchanged rerun's limit).
    list: Option<Sample>,
}

impl SinkLimits {
    fn rows(&self, set: Set, service: Service) {
        let named = [
            (&self.put, "limit: PUT from memory"),
            (
                &self.worker_put,
                "limit: PUT from memory, the worker's requests (Put Block + CRC-64)",
            ),
            (&self.list, "limit: list the container (for the rerun)"),
        ];
        for (sample, name) in named {
            if let Some(sample) = sample {
                row(set, service.title(), name, sample);
            }
        }
    }
}

async fn sink_limits(
    tools: &Tools,
    set: Set,
    service: Service,
    exe_dir: &Path,
    at: &Source<'_>,
    dir: &Path,
    reps: usize,
) -> anyhow::Result<SinkLimits> {
    let blob = service == Service::Blob;
    let (mut put, mut worker_put, mut list) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        // The 4 GiB set is for memory growth: only what binds the worker's Blob row.
        if set != Set::FourGiB {
            let sink = Sink::start(service, exe_dir, at.link).await?;
            put.push(ingest(at, &sink, dir, Requests::Plain).await?);
        }
        if blob && set == Set::SmallFiles {
            list.push(listing(tools, at, exe_dir, dir, set).await?);
        }
        if blob && set != Set::SmallFiles {
            let sink = Sink::start(service, exe_dir, at.link).await?;
            worker_put.push(ingest(at, &sink, dir, Requests::AsTheWorker).await?);
        }
    }
    let median_of = |samples: Vec<Sample>| (!samples.is_empty()).then(|| medians(&samples));
    Ok(SinkLimits {
        put: median_of(put),
        worker_put: median_of(worker_put),
        list: median_of(list),
    })
}

/// The rerun's limit: listing a container that holds what the worker wrote (its blobs carry
/// the worker's metadata, which the listing returns) in a sink that has served nothing but
/// that backup, as the rerun's has.
async fn listing(
    tools: &Tools,
    at: &Source<'_>,
    exe_dir: &Path,
    dir: &Path,
    set: Set,
) -> anyhow::Result<Sample> {
    let sink = Sink::start(Service::Blob, exe_dir, at.link).await?;
    tools.run(Tool::Ours, at, dir, &sink);
    let watch = CpuWatch::start(at.sshd.pid(), &[sink.pid()]);
    let took = limits::sink_list(&sink, set.files()).await?;
    Ok(Sample {
        wall: took.as_secs_f64(),
        sink: watch.stop()[1],
        ..Sample::default()
    })
}

/// One sink-ingest limit run: its wall time and the sink's CPU.
async fn ingest(
    at: &Source<'_>,
    sink: &Sink,
    dir: &Path,
    requests: Requests,
) -> anyhow::Result<Sample> {
    let watch = CpuWatch::start(at.sshd.pid(), &[sink.pid()]);
    let took = limits::sink_put(sink, dir, requests).await?;
    Ok(Sample {
        wall: took.as_secs_f64(),
        sink: watch.stop()[1],
        ..Sample::default()
    })
}
