//! The corpus of bad messages (`tests/bad-messages/`, listed with what each must produce in
//! `cases.tsv`): every one goes through the runner as a user would send it, and must give a
//! JSON result with its stable code, a message naming the field and the problem, the
//! documented exit code, and no change at all in either destination.

use std::path::Path;
use std::process::Command;

use harness::corpus::{cases, Case};
use harness::stack::{write_file, Stack};
use serde_json::Value;

fn run(stack: &Stack, dir: &Path, name: &str, bytes: &[u8]) -> std::process::Output {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write the message");
    Command::new(env!("CARGO_BIN_EXE_backup-worker"))
        .arg("run")
        .arg(&path)
        .envs(stack.vars())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the runner")
}

async fn destinations(stack: &Stack) -> (Vec<String>, Vec<(String, Vec<u8>)>) {
    (
        stack.azurite.list("corpus").await,
        stack.files.files("corpus"),
    )
}

#[tokio::test]
async fn every_bad_message_is_refused_by_name_and_changes_nothing() {
    let stack = Stack::start();
    stack.azurite.create_container("corpus").await;
    stack.files.create_share("corpus");
    let src = stack.source_dir("corpus");
    write_file(&src, "a.txt", b"already backed up");
    let work = tempfile::tempdir().unwrap();
    // Something in each destination first, so "unchanged" is checked against real content.
    for dest in [
        r#"{"storage": "archive", "container": "corpus", "prefix": "p"}"#,
        r#"{"storage": "fileshare", "share": "corpus", "prefix": "p"}"#,
    ] {
        let good = format!(
            r#"{{"kind": "backup", "job_id": "corpus", "source": {{"storage": "office_nas", "path": "{}"}}, "destination": {dest}}}"#,
            src.display()
        );
        let out = run(&stack, work.path(), "good.json", good.as_bytes());
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    write_file(&src, "b.txt", b"new: any run that gets through copies it");
    let before = destinations(&stack).await;
    assert_eq!(before.0, ["p/a.txt"]);

    let cases = cases();
    assert!(
        cases.len() >= 60,
        "the corpus has only {} cases",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let out = run(&stack, work.path(), &case.file, &case.message(&src));
        let verdict = check(case, &out);
        if let Err(why) = verdict {
            failures.push(format!("{}: {why}", case.file));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        destinations(&stack).await,
        before,
        "a refused message changed a destination"
    );
}

fn check(case: &Case, out: &std::process::Output) -> Result<(), String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("panicked") || stderr.contains("stack backtrace") {
        return Err(format!("the runner panicked: {stderr}"));
    }
    if out.status.code() != Some(case.exit) {
        return Err(format!(
            "exit code {:?}, expected {}",
            out.status.code(),
            case.exit
        ));
    }
    let result: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("stdout is not a JSON result ({e}): {stderr}"))?;
    if result["status"] != "failed" {
        return Err(format!("status {}", result["status"]));
    }
    let error = &result["errors"][0];
    case.judge(
        error["code"].as_str().unwrap_or_default(),
        error["message"].as_str().unwrap_or_default(),
    )
}

#[test]
fn a_missing_message_file_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_backup-worker"))
        .args(["run", "/nonexistent/job.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("reading /nonexistent/job.json"), "{stderr}");
    assert!(stderr.contains("usage: backup-worker run"), "{stderr}");
}
