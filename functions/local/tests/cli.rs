//! The local runner as a user drives it: a message file or stdin in, a JSON result and an exit
//! code out. Bad input gets an error that names the problem and writes nothing.

use std::path::Path;
use std::process::{Command, Output};

use harness::stack::{pattern, write_file, Stack};
use serde_json::Value;

fn runner(stack: &Stack) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_backup-worker"));
    cmd.envs(stack.vars()).env("RUST_LOG", "info");
    cmd
}

fn run_stdin(stack: &Stack, message: &str, extra_env: &[(&str, &str)]) -> Output {
    let mut env = vec![("RUST_LOG", "info")];
    env.extend_from_slice(extra_env);
    harness::runner::run(
        Path::new(env!("CARGO_BIN_EXE_backup-worker")),
        stack,
        message,
        &env,
    )
}

fn result_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not a JSON result ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test]
async fn bad_messages_are_rejected_by_name_and_write_nothing() {
    let stack = Stack::start();
    stack.azurite.create_container("cli").await;
    let src = stack.source_dir("cli");
    write_file(&src, "a.txt", b"must not be copied");
    let good = format!(
        r#"{{"kind": "backup", "job_id": "cli",
            "source": {{"storage": "office_nas", "path": "{}"}},
            "destination": {{"storage": "archive", "container": "cli"}},
            "options": {{"chunk_size": "1MiB", "upload_concurrency": 4}}}}"#,
        src.display()
    );
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "malformed JSON",
            good[..40].to_string(),
            "message.malformed",
            "EOF",
        ),
        (
            "unknown kind",
            good.replace("\"backup\"", "\"rewind\""),
            "message.invalid_field",
            "`kind`",
        ),
        (
            "missing field",
            good.replace(
                r#""destination": {"storage": "archive", "container": "cli"},"#,
                "",
            ),
            "message.invalid_field",
            "`destination` is required",
        ),
        (
            "unknown storage",
            good.replace("\"archive\"", "\"nowhere\""),
            "config.unknown_storage",
            "BACKUP_STORAGE_NOWHERE_TYPE",
        ),
        (
            "zero concurrency",
            good.replace("\"upload_concurrency\": 4", "\"upload_concurrency\": 0"),
            "message.invalid_field",
            "`options.upload_concurrency`",
        ),
        (
            "chunk size too small",
            good.replace("\"1MiB\"", "\"4k\""),
            "message.invalid_field",
            "`options.chunk_size`",
        ),
        (
            "chunk size too large",
            good.replace("\"1MiB\"", "\"1GiB\""),
            "message.invalid_field",
            "`options.chunk_size`",
        ),
        (
            "secret in the message",
            good.replace(
                "\"container\": \"cli\"",
                "\"container\": \"cli\", \"account_key\": \"x\"",
            ),
            "message.invalid_field",
            "`destination.account_key`",
        ),
    ];
    for (name, message, code, words) in cases {
        let out = run_stdin(&stack, &message, &[]);
        assert_eq!(out.status.code(), Some(1), "{name}: exit code");
        let result = result_of(&out);
        assert_eq!(result["status"], "failed", "{name}");
        let error = &result["errors"][0];
        assert_eq!(error["code"], code, "{name}: {result:#}");
        let text = error["message"].as_str().unwrap_or_default();
        assert!(text.contains(words), "{name}: {text:?} lacks {words:?}");
    }
    assert!(
        stack.azurite.list("cli").await.is_empty(),
        "a rejected job wrote something"
    );

    // The same message, corrected, does copy: the cases above failed for their own reason.
    let out = run_stdin(&stack, &good, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stack.azurite.list("cli").await, ["a.txt"]);
}

#[tokio::test]
async fn a_message_file_runs_and_usage_errors_exit_64() {
    let stack = Stack::start();
    stack.azurite.create_container("file").await;
    let src = stack.source_dir("file");
    write_file(&src, "x.bin", &pattern(3000, 1));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"kind": "backup", "job_id": "file", "source": {{"storage": "office_nas", "path": "{}"}},
                "destination": {{"storage": "archive", "container": "file", "prefix": "p"}}}}"#,
            src.display()
        ),
    )
    .unwrap();
    let out = runner(&stack).arg("run").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let result = result_of(&out);
    assert_eq!(result["files"]["copied"], 1);
    assert_eq!(result["bytes"]["copied"], 3000);
    // Logs are JSON lines on stderr when it is not a terminal.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let finished = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "backup finished")
        .unwrap_or_else(|| panic!("no JSON 'backup finished' log line in {stderr}"));
    assert_eq!(finished["copied"], 1);

    let usage = runner(&stack).arg("frobnicate").output().unwrap();
    assert_eq!(usage.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("usage: backup-worker run"));
}
