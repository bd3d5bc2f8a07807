//! Fan-out over a real queue (SQS by moto, Azure Queue by Azurite) with several worker
//! processes, one of which is killed (SIGKILL) mid-job: every file still arrives exactly once,
//! byte for byte, and the run's summary says complete. Prints the fan-out figures.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::azurite::AzuriteQueue;
use harness::moto::Moto;
use harness::stack::{pattern, write_file, Stack};
use serde_json::Value;

/// The queue the workers share.
enum Queue {
    Sqs(Moto, aws_sdk_sqs::Client, String),
    Azure(AzuriteQueue, String),
}

impl Queue {
    async fn sqs() -> Queue {
        let moto = Moto::start();
        let client = moto.sqs_client();
        let url = moto.create_queue("jobs").await;
        Queue::Sqs(moto, client, url)
    }

    async fn azure() -> Queue {
        let queue = AzuriteQueue::start();
        queue.create("backup-jobs").await;
        let url = queue.queue_url("backup-jobs");
        Queue::Azure(queue, url)
    }

    async fn send(&self, text: &str) {
        match self {
            Queue::Sqs(_, client, url) => {
                client
                    .send_message()
                    .queue_url(url)
                    .message_body(text)
                    .send()
                    .await
                    .unwrap();
            }
            Queue::Azure(queue, _) => queue.send("backup-jobs", text).await,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Queue::Sqs(..) => "SQS (moto)",
            Queue::Azure(..) => "Azure Queue (Azurite)",
        }
    }

    fn worker(&self, stack: &Stack) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_backup-worker"));
        cmd.arg("poll");
        match self {
            Queue::Sqs(moto, _, url) => cmd.args(["--sqs", url]).envs(moto.aws_env()),
            Queue::Azure(_, url) => cmd.args(["--azure-queue", url, "--credentials", "archive"]),
        };
        cmd.args([
            "--workers",
            "2",
            "--visibility",
            "4",
            "--exit-when-idle",
            "8",
        ])
        .envs(stack.vars())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a worker")
    }
}

fn data(names: Vec<String>) -> Vec<String> {
    names
        .into_iter()
        .filter(|n| !n.starts_with(".backup-worker/"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sqs_workers_share_a_big_job_and_survive_one_being_killed() {
    fan_out_with_a_killed_worker(Queue::sqs().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_queue_workers_share_a_big_job_and_survive_one_being_killed() {
    fan_out_with_a_killed_worker(Queue::azure().await).await;
}

async fn fan_out_with_a_killed_worker(queue: Queue) {
    let stack = Stack::start();
    stack.azurite.create_container("pollfan").await;
    let src = stack.source_dir("pollfan");
    let files = 36;
    for i in 0..files {
        write_file(
            &src,
            &format!("d{}/f{i:02}.bin", i % 4),
            &pattern(512 * 1024, i),
        );
    }
    let job = serde_json::json!({"kind": "backup", "job_id": "nightly-big",
        "source": {"storage": "office_nas", "path": src},
        "destination": {"storage": "archive", "container": "pollfan"},
        "options": {"part_max_files": 4, "chunk_size": "256KiB", "upload_concurrency": 4}});
    queue.send(&job.to_string()).await;

    let started = Instant::now();
    let mut workers: Vec<Child> = (0..3).map(|_| queue.worker(&stack)).collect();
    // Kill one worker once copying is under way.
    loop {
        if data(stack.azurite.list("pollfan").await).len() >= 4 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nothing was copied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    workers[0].kill().unwrap();
    workers[0].wait().unwrap();
    let mut results: Vec<Value> = Vec::new();
    for w in workers.drain(1..) {
        let out = w.wait_with_output().unwrap();
        assert!(out.status.success(), "a worker failed");
        results.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok()),
        );
    }
    let wall = started.elapsed();

    let mut expected: Vec<String> = (0..files)
        .map(|i| format!("d{}/f{i:02}.bin", i % 4))
        .collect();
    expected.sort();
    assert_eq!(
        data(stack.azurite.list("pollfan").await),
        expected,
        "every file exactly once"
    );
    for i in (0..files).step_by(7) {
        let name = format!("d{}/f{i:02}.bin", i % 4);
        assert_eq!(
            stack.azurite.read("pollfan", &name).await,
            pattern(512 * 1024, i),
            "{name}"
        );
    }
    let complete: Vec<&Value> = results
        .iter()
        .filter(|r| r["run"]["complete"] == true)
        .collect();
    assert!(
        !complete.is_empty(),
        "no worker saw the run complete: {results:#?}"
    );
    let summary_name = complete[0]["run"]["summary"].as_str().unwrap().to_string();
    let summary: Value =
        serde_json::from_slice(&stack.azurite.read("pollfan", &summary_name).await).unwrap();
    assert_eq!(summary["complete"], true);
    assert_eq!(summary["files"]["failed"], 0);
    assert_eq!(
        summary["files"]["copied"].as_u64().unwrap()
            + summary["files"]["skipped"].as_u64().unwrap(),
        files
    );
    println!(
        "fan-out on {}: {files} files ({} MiB), {} parts, 3 worker processes x 2 (one killed), wall {:.1} s incl. 8 s idle exit, {} messages handled by the survivors",
        queue.name(),
        files / 2,
        summary["parts"],
        wall.as_secs_f64(),
        results.len()
    );
}
