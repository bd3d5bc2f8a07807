//! The real custom-handler binary over HTTP, fed the Functions host's invocation payloads
//! (`events/azure/`): queue messages as text, base64 and malformed, and the timer.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use harness::stack::{write_file, Stack};
use serde_json::{json, Value};

fn sample(name: &str) -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../events")
            .join(name),
    )
    .unwrap()
}

struct Handler {
    child: Child,
    base: String,
}

impl Handler {
    fn start(env: Vec<(String, String)>) -> Handler {
        let port = harness::free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_handler"))
            .envs(env)
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start handler");
        harness::wait_for_port(port, "custom handler", Duration::from_secs(10));
        Handler {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn post(&self, function: &str, body: &Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/{function}", self.base))
            .header(
                "X-Azure-Functions-InvocationId",
                "3bd9f2a6-0000-0000-0000-000000000000",
            )
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        let bytes = r.bytes().await.expect("answer");
        (status, serde_json::from_slice(&bytes).expect("JSON answer"))
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn queue_invocations_run_jobs_and_failures_ask_for_redelivery() {
    let stack = Stack::start();
    stack.azurite.create_container("backups").await;
    let src = stack.source_dir("azfn");
    write_file(&src, "a.txt", b"a");
    let handler = Handler::start(stack.vars().into_iter().collect());
    // The host probes readiness with a plain GET.
    assert!(reqwest::get(&handler.base)
        .await
        .unwrap()
        .status()
        .is_success());

    let invocation: Value = serde_json::from_str(
        &sample("azure/queue-invocation.json")
            .replace("/tmp/backup-worker-demo", src.to_str().unwrap()),
    )
    .unwrap();
    let (status, answer) = handler.post("backup-queue", &invocation).await;
    assert_eq!(status, 200, "{answer:#}");
    assert_eq!(answer["ReturnValue"]["status"], "succeeded");
    let output: Value =
        serde_json::from_str(answer["Outputs"]["result"].as_str().unwrap()).unwrap();
    assert_eq!(output["files"]["copied"], 1);
    assert_eq!(stack.azurite.list("backups").await, ["office-nas/a.txt"]);

    // The same message still base64-encoded (a queue written without the host's encoding).
    use base64::Engine;
    let mut encoded = invocation.clone();
    let text = invocation["Data"]["message"].as_str().unwrap();
    encoded["Data"]["message"] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    let (status, answer) = handler.post("backup-queue", &encoded).await;
    assert_eq!(status, 200, "{answer:#}");
    assert_eq!(
        answer["ReturnValue"]["files"]["skipped"], 1,
        "the second run is incremental"
    );

    // A malformed message fails the invocation, so the host retries it and then poisons it.
    let mut broken = invocation.clone();
    broken["Data"]["message"] = json!("{\"kind\": \"backup\", \"job_id\": ");
    let (status, answer) = handler.post("backup-queue", &broken).await;
    assert_eq!(status, 500);
    assert_eq!(answer["ReturnValue"]["status"], "failed");
    assert_eq!(
        answer["ReturnValue"]["errors"][0]["code"],
        "message.malformed"
    );
}

#[tokio::test]
async fn the_timer_turns_the_plan_into_queue_outputs() {
    let plan = sample("plan.json");
    let handler = Handler::start(vec![("BACKUP_PLAN".into(), plan.clone())]);
    let timer: Value = serde_json::from_str(&sample("azure/timer-invocation.json")).unwrap();
    let (status, answer) = handler.post("backup-schedule", &timer).await;
    assert_eq!(status, 200, "{answer:#}");
    let jobs: Vec<Value> = answer["Outputs"]["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| serde_json::from_str(j.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(
        Value::Array(jobs),
        serde_json::from_str::<Value>(&plan).unwrap()
    );
    assert_eq!(answer["ReturnValue"], json!({"enqueued": 2}));

    let without_plan = Handler::start(Vec::new());
    let (status, answer) = without_plan.post("backup-schedule", &timer).await;
    assert_eq!(status, 500);
    assert!(
        answer["Logs"][0].as_str().unwrap().contains("BACKUP_PLAN"),
        "{answer:#}"
    );
}

#[tokio::test]
async fn a_big_job_fans_out_through_the_jobs_output_binding() {
    let stack = Stack::start();
    stack.azurite.create_container("fanout").await;
    let src = stack.source_dir("azfan");
    for i in 0..5 {
        write_file(&src, &format!("f{i}.txt"), b"x");
    }
    let handler = Handler::start(stack.vars().into_iter().collect());
    let job = json!({"kind": "backup", "job_id": "az-big", "source": {"storage": "office_nas", "path": src},
        "destination": {"storage": "archive", "container": "fanout"}, "options": {"part_max_files": 2}});
    // What the host does: deliver a message, enqueue the function's `jobs` outputs, repeat.
    let mut queue = vec![job.to_string()];
    let mut answers = Vec::new();
    while let Some(message) = queue.pop() {
        let invocation =
            json!({"Data": {"message": message}, "Metadata": {"Id": "x", "DequeueCount": 1}});
        let (status, answer) = handler.post("backup-queue", &invocation).await;
        assert_eq!(status, 200, "{answer:#}");
        for next in answer["Outputs"]["jobs"].as_array().unwrap() {
            queue.push(next.as_str().unwrap().to_string());
        }
        answers.push(answer);
    }
    assert_eq!(answers[0]["ReturnValue"]["status"], "planned");
    assert_eq!(answers.len(), 4, "the plan and three parts");
    assert!(answers
        .iter()
        .any(|a| a["ReturnValue"]["run"]["complete"] == true));
    let data: Vec<String> = stack
        .azurite
        .list("fanout")
        .await
        .into_iter()
        .filter(|n| !n.starts_with(".backup-worker/"))
        .collect();
    assert_eq!(data, ["f0.txt", "f1.txt", "f2.txt", "f3.txt", "f4.txt"]);
}

/// Every refused message of the corpus, delivered as the host delivers queue messages (base64,
/// and as text where it is JSON text), is refused with the same code and words, asks for
/// redelivery (500: the host poisons it after `maxDequeueCount`) and writes nothing.
#[tokio::test]
async fn every_refused_message_is_refused_as_a_queue_invocation_too() {
    use base64::Engine;
    let stack = Stack::start();
    stack.azurite.create_container("corpus").await;
    stack.files.create_share("corpus");
    let src = stack.source_dir("azcorpus");
    write_file(&src, "a.txt", b"never copied");
    let handler = Handler::start(stack.vars().into_iter().collect());
    let mut failures = Vec::new();
    let mut delivered = 0;
    for case in harness::corpus::cases() {
        let bytes = case.message(&src);
        let mut shapes = vec![json!(
            base64::engine::general_purpose::STANDARD.encode(&bytes)
        )];
        if let Ok(text) = std::str::from_utf8(&bytes) {
            if text.trim_start().starts_with('{') {
                shapes.push(json!(text));
            }
        }
        for shape in shapes {
            let invocation = json!({"Data": {"message": shape}, "Metadata": {"Id": case.file}});
            let (status, answer) = handler.post("backup-queue", &invocation).await;
            delivered += 1;
            let error = &answer["ReturnValue"]["errors"][0];
            let verdict = if status != 500 {
                Err(format!("status {status}"))
            } else {
                case.judge(
                    error["code"].as_str().unwrap_or_default(),
                    error["message"].as_str().unwrap_or_default(),
                )
            };
            if let Err(why) = verdict {
                failures.push(format!("{}: {why}", case.file));
            }
        }
    }
    assert!(delivered >= 120, "only {delivered} invocations");
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(stack.azurite.list("corpus").await.is_empty());
    assert!(stack.files.files("corpus").is_empty());
}
