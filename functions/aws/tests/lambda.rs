//! The real `bootstrap` binary under a Lambda Runtime API on loopback, with the sample events in
//! `events/aws/`: SQS batches with partial failures, results on a results queue, and a schedule
//! that puts the backup plan on the job queue (SQS by moto).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use harness::lambda::{Outcome, RuntimeApi};
use harness::moto::Moto;
use harness::stack::{write_file, Stack};
use serde_json::{json, Value};

fn events() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn start_function(api: &RuntimeApi, env: Vec<(String, String)>) -> KillOnDrop {
    let child = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(api.function_env())
        .envs(env)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start bootstrap");
    KillOnDrop(child)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn drain(sqs: &aws_sdk_sqs::Client, queue: &str, want: usize) -> Vec<String> {
    let mut bodies = Vec::new();
    for _ in 0..20 {
        let got = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        bodies.extend(
            got.messages
                .unwrap_or_default()
                .into_iter()
                .filter_map(|m| m.body),
        );
        if bodies.len() >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bodies
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sqs_batch_reports_exactly_the_failed_record() {
    let stack = Stack::start();
    let moto = Moto::start();
    let sqs = moto.sqs_client();
    let results = moto.create_queue("results").await;
    stack.azurite.create_container("backups").await;
    let src = stack.source_dir("lambda");
    write_file(&src, "reports/q3.pdf", b"q3");
    write_file(&src, "scans/page1.png", b"p1");
    let sample = std::fs::read_to_string(events().join("aws/sqs-batch.json")).unwrap();
    let event: Value =
        serde_json::from_str(&sample.replace("/tmp/backup-worker-demo", src.to_str().unwrap()))
            .unwrap();

    let api = RuntimeApi::start();
    let mut env: Vec<(String, String)> = stack.vars().into_iter().collect();
    env.extend(moto.aws_env());
    env.push(("BACKUP_RESULTS_QUEUE_URL".into(), results.clone()));
    let _function = start_function(&api, env);
    let id = api.invoke(&event, 60_000);

    let outcome = api.outcome(&id, Duration::from_secs(60));
    assert_eq!(
        outcome,
        Outcome::Response(
            json!({"batchItemFailures": [{"itemIdentifier": "d9a1b1c8-5e8b-4f0b-9b7e-3f2a1c0e9d11"}]})
        )
    );
    assert_eq!(
        stack.azurite.list("backups").await,
        ["reports/q3.pdf", "scans/page1.png"]
    );

    // One result per record went to the results queue.
    let mut statuses: Vec<String> = drain(&sqs, &results, 3)
        .await
        .iter()
        .map(|b| {
            serde_json::from_str::<Value>(b).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["failed", "succeeded", "succeeded"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_puts_the_backup_plan_on_the_queue() {
    let moto = Moto::start();
    let sqs = moto.sqs_client();
    let jobs = moto.create_queue("jobs").await;
    let plan = std::fs::read_to_string(events().join("plan.json")).unwrap();
    let scheduled: Value = serde_json::from_str(
        &std::fs::read_to_string(events().join("aws/scheduled-event.json")).unwrap(),
    )
    .unwrap();

    let api = RuntimeApi::start();
    let mut env = moto.aws_env();
    env.push(("BACKUP_QUEUE_URL".into(), jobs.clone()));
    env.push(("BACKUP_PLAN".into(), plan.clone()));
    let _function = start_function(&api, env);
    let id = api.invoke(&scheduled, 30_000);
    assert_eq!(
        api.outcome(&id, Duration::from_secs(30)),
        Outcome::Response(json!({"enqueued": 2}))
    );

    let mut got: Vec<Value> = drain(&sqs, &jobs, 2)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    got.sort_by_key(|v| v["job_id"].as_str().unwrap().to_string());
    let mut want: Vec<Value> = serde_json::from_str(&plan).unwrap();
    want.sort_by_key(|v| v["job_id"].as_str().unwrap().to_string());
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_plan_fails_the_scheduled_invocation_by_name() {
    let moto = Moto::start();
    let api = RuntimeApi::start();
    let mut env = moto.aws_env();
    env.push((
        "BACKUP_QUEUE_URL".into(),
        format!("{}/000000000000/jobs", moto.endpoint()),
    ));
    env.push((
        "BACKUP_PLAN".into(),
        r#"[{"kind": "backup", "job_id": "x"}]"#.into(),
    ));
    let _function = start_function(&api, env);
    let scheduled: Value = serde_json::from_str(
        &std::fs::read_to_string(events().join("aws/scheduled-event.json")).unwrap(),
    )
    .unwrap();
    let id = api.invoke(&scheduled, 30_000);
    match api.outcome(&id, Duration::from_secs(30)) {
        Outcome::Error(e) => assert!(e.to_string().contains("plan[0].source"), "{e}"),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_big_job_fans_out_over_the_job_queue() {
    let stack = Stack::start();
    let moto = Moto::start();
    let sqs = moto.sqs_client();
    let jobs = moto.create_queue("jobs").await;
    stack.azurite.create_container("lambdafan").await;
    let src = stack.source_dir("lambdafan");
    for i in 0..6 {
        write_file(&src, &format!("f{i}.bin"), format!("{i}").as_bytes());
    }
    let api = RuntimeApi::start();
    let mut env: Vec<(String, String)> = stack.vars().into_iter().collect();
    env.extend(moto.aws_env());
    env.push(("BACKUP_QUEUE_URL".into(), jobs.clone()));
    env.push(("BACKUP_HANDOFF_MARGIN_SECS".into(), "5".into()));
    let _function = start_function(&api, env);
    let job = json!({"kind": "backup", "job_id": "lambda-big", "source": {"storage": "office_nas", "path": src},
        "destination": {"storage": "archive", "container": "lambdafan"}, "options": {"part_max_files": 2}});
    let event = |bodies: Vec<String>| {
        json!({"Records": bodies.iter().enumerate().map(|(i, b)| json!({
            "messageId": format!("m{i}"), "body": b, "eventSource": "aws:sqs", "attributes": {}, "messageAttributes": {}
        })).collect::<Vec<_>>()})
    };
    // The plan: no failures, three parts on the queue.
    let id = api.invoke(&event(vec![job.to_string()]), 60_000);
    assert_eq!(
        api.outcome(&id, Duration::from_secs(60)),
        Outcome::Response(json!({"batchItemFailures": []}))
    );
    let parts = drain(&sqs, &jobs, 3).await;
    assert_eq!(parts.len(), 3);
    // The parts, as SQS would deliver them.
    let id = api.invoke(&event(parts), 60_000);
    assert_eq!(
        api.outcome(&id, Duration::from_secs(60)),
        Outcome::Response(json!({"batchItemFailures": []}))
    );
    let data: Vec<String> = stack
        .azurite
        .list("lambdafan")
        .await
        .into_iter()
        .filter(|n| !n.starts_with(".backup-worker/"))
        .collect();
    assert_eq!(
        data,
        ["f0.bin", "f1.bin", "f2.bin", "f3.bin", "f4.bin", "f5.bin"]
    );
    let names = stack.azurite.list("lambdafan").await;
    assert!(
        names.iter().any(|n| n.ends_with("/summary.json")),
        "{names:?}"
    );
}

/// One SQS record carrying `body`, shaped like the sample batch.
fn single_record_event(body: &str) -> Value {
    let sample: Value = serde_json::from_str(
        &std::fs::read_to_string(events().join("aws/sqs-batch.json")).unwrap(),
    )
    .unwrap();
    let mut record = sample["Records"][0].clone();
    record["body"] = Value::String(body.to_string());
    json!({ "Records": [record] })
}

async fn put_secret(moto: &Moto, name: &str, value: &str) {
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(moto.endpoint())
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("create secret");
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_secrets_come_from_secrets_manager() {
    let stack = Stack::start();
    let moto = Moto::start();
    stack.azurite.create_container("secrets").await;
    let src = stack.source_dir("from-secrets");
    write_file(&src, "ledger.xlsx", b"ledger");
    // The function's environment has no key and no SSH credential: both are in the secret.
    let mut env: Vec<(String, String)> = stack
        .vars()
        .into_iter()
        .filter(|(k, _)| {
            k != "BACKUP_STORAGE_ARCHIVE_ACCOUNT_KEY"
                && k != "BACKUP_STORAGE_OFFICE_NAS_SSH_PRIVATE_KEY_FILE"
        })
        .collect();
    let secret = json!({
        "BACKUP_STORAGE_ARCHIVE_ACCOUNT_KEY": backup_common::storage::blob::config::AZURITE_KEY,
        "BACKUP_STORAGE_OFFICE_NAS_SSH_PASSWORD": harness::sshd::TEST_PASSWORD,
    });
    put_secret(&moto, "backup/storages", &secret.to_string()).await;
    env.extend(moto.aws_env());
    env.push(("BACKUP_SECRETS_ID".into(), "backup/storages".into()));

    let api = RuntimeApi::start();
    let _function = start_function(&api, env);
    let body = json!({
        "kind": "backup", "job_id": "from-secrets",
        "source": {"storage": "office_nas", "path": src.display().to_string()},
        "destination": {"storage": "archive", "container": "secrets"},
    });
    let id = api.invoke(&single_record_event(&body.to_string()), 60_000);
    assert_eq!(
        api.outcome(&id, Duration::from_secs(60)),
        Outcome::Response(json!({"batchItemFailures": []}))
    );
    assert_eq!(stack.azurite.list("secrets").await, ["ledger.xlsx"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_secret_stops_the_function_at_start_naming_it() {
    let moto = Moto::start();
    let api = RuntimeApi::start();
    let out = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(api.function_env())
        .envs(moto.aws_env())
        .env("BACKUP_SECRETS_ID", "backup/nowhere")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .expect("run bootstrap");
    assert!(!out.status.success());
    let logs =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        logs.contains("backup/nowhere") && logs.contains("ResourceNotFoundException"),
        "{logs}"
    );
}

/// Up to ten jobs run at once in one Lambda process: their chunks together stay inside the one
/// memory budget of the process (here 4 MiB against 3 jobs × 16 chunks × 1 MiB asked for).
#[tokio::test(flavor = "multi_thread")]
async fn a_three_job_batch_stays_within_one_memory_budget() {
    let stack = Stack::start();
    stack.azurite.create_container("budget").await;
    let mut records = Vec::new();
    let mut data = Vec::new();
    for i in 0..3 {
        let src = stack.source_dir(&format!("budget-{i}"));
        let bytes = harness::stack::pattern(24 * 1024 * 1024, 40 + i);
        write_file(&src, "big.bin", &bytes);
        data.push(bytes);
        let body = json!({
            "kind": "backup", "job_id": format!("budget-{i}"),
            "source": {"storage": "office_nas", "path": src},
            "destination": {"storage": "archive", "container": "budget", "prefix": format!("job{i}")},
            "options": {"chunk_size": "1MiB", "upload_concurrency": 16}
        });
        let mut record = single_record_event(&body.to_string())["Records"][0].clone();
        record["messageId"] = json!(format!("m{i}"));
        records.push(record);
    }
    let event = json!({ "Records": records });

    let api = RuntimeApi::start();
    let mut env: Vec<(String, String)> = stack.vars().into_iter().collect();
    env.push(("BACKUP_MEMORY_BUDGET".into(), "4MiB".into()));
    let log = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(api.function_env())
        .envs(env)
        .env("RUST_LOG", "info")
        .stdout(log.reopen().unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start bootstrap");
    let _function = KillOnDrop(child);
    let id = api.invoke(&event, 120_000);
    let outcome = api.outcome(&id, Duration::from_secs(120));
    assert_eq!(outcome, Outcome::Response(json!({"batchItemFailures": []})));
    for (i, bytes) in data.iter().enumerate() {
        let stored = stack
            .azurite
            .read("budget", &format!("job{i}/big.bin"))
            .await;
        assert!(stored == *bytes, "job{i}/big.bin differs");
    }

    let logs = std::fs::read_to_string(log.path()).unwrap();
    let batch = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "batch finished")
        .unwrap_or_else(|| panic!("no `batch finished` line in {logs}"));
    let (total, peak) = (
        batch["memory_budget"].as_u64().unwrap(),
        batch["memory_peak"].as_u64().unwrap(),
    );
    assert_eq!(total, 4 * 1024 * 1024, "{batch}");
    assert!(peak <= total, "the jobs held {peak} bytes at once: {batch}");
    assert!(
        peak > total / 2,
        "the budget was not what bounded them: {batch}"
    );
    println!("3 jobs, budget {total} bytes, peak held {peak} bytes");
}

/// A warm function keeps nothing open between invocations: the job's SSH connection and its
/// HTTP connections to the storage close when the job ends, not when the instance is frozen;
/// the SSH server is told so (it logs the worker's goodbye, not a dropped connection).
#[tokio::test(flavor = "multi_thread")]
async fn a_warm_function_holds_no_connection_after_its_job() {
    let stack = Stack::start();
    stack.azurite.create_container("warm").await;
    let src = stack.source_dir("warm");
    write_file(&src, "ledger.xlsx", b"ledger");
    let api = RuntimeApi::start();
    let function = start_function(&api, stack.vars().into_iter().collect());
    // The probe proves the count sees a connection held open to the port, counted against what
    // this test process held before it: other tests run in this process, and once in four runs
    // it already held one socket whose remote port was this one (the count was 2, not 1).
    let held_before = connections_to(std::process::id(), stack.sshd.port);
    let probe = std::net::TcpStream::connect(("127.0.0.1", stack.sshd.port)).unwrap();
    assert_eq!(
        connections_to(std::process::id(), stack.sshd.port),
        held_before + 1
    );
    drop(probe);
    let body = json!({
        "kind": "backup", "job_id": "warm",
        "source": {"storage": "office_nas", "path": src.display().to_string()},
        "destination": {"storage": "archive", "container": "warm"},
    });
    let id = api.invoke(&single_record_event(&body.to_string()), 60_000);
    assert_eq!(
        api.outcome(&id, Duration::from_secs(60)),
        Outcome::Response(json!({"batchItemFailures": []}))
    );
    assert_eq!(stack.azurite.list("warm").await, ["ledger.xlsx"]);
    // The response is sent as the job's last step; its connections close just after.
    let open =
        || [stack.sshd.port, stack.azurite.port].map(|port| connections_to(function.0.id(), port));
    let said_goodbye = || stack.sshd.log().contains(": job done");
    for _ in 0..50 {
        if open() == [0, 0] && said_goodbye() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        open(),
        [0, 0],
        "connections (sshd, Azurite) still open 5 s after the job"
    );
    panic!(
        "sshd logged no disconnect from the worker:\n{}",
        stack.sshd.log()
    );
}

/// TCP connections `pid` holds open to `port` on loopback: its sockets' inodes found in
/// `/proc/net/tcp` with that remote port.
fn connections_to(pid: u32, port: u16) -> usize {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    let remote_port = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            cols.len() > 9 && cols[2].ends_with(&remote_port) && inodes.contains(cols[9])
        })
        .count()
}
