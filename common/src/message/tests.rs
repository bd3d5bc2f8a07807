//! Parsing and validation of job messages, case by case.

use super::*;

const GOOD: &str = r#"{
    "kind": "backup", "job_id": "nightly",
    "source": {"storage": "office_nas", "path": "/srv/data"},
    "destination": {"storage": "archive", "container": "backups", "prefix": "nas"},
    "options": {"chunk_size": "1MiB", "upload_concurrency": 4}
}"#;

fn err_of(text: &str) -> Error {
    JobMessage::parse(text).expect_err("should be rejected")
}

#[test]
fn parses_a_backup_with_defaults_filled_in() {
    let JobMessage::Backup(job) = JobMessage::parse(GOOD).unwrap() else {
        panic!("not a backup")
    };
    assert_eq!(job.options.chunk_size.bytes(), MIB);
    assert_eq!(job.options.upload_concurrency, 4);
    assert_eq!(job.options.max_stream_size.bytes(), 10 * GIB);
    assert_eq!(job.options.compare, CompareMode::SizeMtime);
    assert!(job.include.is_empty());
}

#[test]
fn malformed_json_is_malformed() {
    assert_eq!(err_of("{\"kind\": ").code(), "message.malformed");
    assert_eq!(err_of("not json").code(), "message.malformed");
}

#[test]
fn unknown_kind_names_kind() {
    let e = err_of(r#"{"kind": "rewind", "job_id": "x"}"#);
    assert_eq!(e.code(), "message.invalid_field");
    assert!(e.to_string().contains("`kind`"), "{e}");
    assert!(e.to_string().contains("rewind"), "{e}");
}

#[test]
fn missing_field_names_its_path() {
    let e = err_of(
        r#"{"kind": "backup", "job_id": "x", "source": {"storage": "a"}, "destination": {"storage": "b"}}"#,
    );
    assert!(e.to_string().contains("`source.path` is required"), "{e}");
}

#[test]
fn zero_concurrency_is_rejected() {
    let e = err_of(&GOOD.replace("\"upload_concurrency\": 4", "\"upload_concurrency\": 0"));
    assert!(
        e.to_string().contains("`options.upload_concurrency`"),
        "{e}"
    );
}

#[test]
fn chunk_size_out_of_range_is_rejected() {
    for bad in ["\"1k\"", "\"1GiB\""] {
        let e = err_of(&GOOD.replace("\"1MiB\"", bad));
        assert!(e.to_string().contains("`options.chunk_size`"), "{e}");
    }
    let e = err_of(&GOOD.replace("\"1MiB\"", "\"lots\""));
    assert!(e.to_string().contains("`options.chunk_size`"), "{e}");
}

#[test]
fn a_secret_in_a_message_is_rejected() {
    let e = err_of(&GOOD.replace(
        "\"prefix\": \"nas\"",
        "\"prefix\": \"nas\", \"account_key\": \"abc\"",
    ));
    assert!(e.to_string().contains("`destination.account_key`"), "{e}");
    assert!(
        e.to_string().contains("secrets never go in messages"),
        "{e}"
    );
}

#[test]
fn bad_container_and_glob_and_job_id() {
    let e = err_of(&GOOD.replace("\"backups\"", "\"Backups\""));
    assert!(e.to_string().contains("`destination.container`"), "{e}");
    let e = err_of(&GOOD.replace("\"options\"", "\"include\": [\"a[\"], \"options\""));
    assert!(e.to_string().contains("`include[0]`"), "{e}");
    let e = err_of(&GOOD.replace("nightly", "bad id!"));
    assert!(e.to_string().contains("`job_id`"), "{e}");
}

#[test]
fn test_connection_needs_a_side() {
    let e = err_of(r#"{"kind": "test_connection"}"#);
    assert!(e.to_string().contains("`source`"), "{e}");
    let ok =
        JobMessage::parse(r#"{"kind": "test_connection", "destination": {"storage": "archive"}}"#);
    assert!(ok.is_ok());
}

#[test]
fn trailing_garbage_is_malformed() {
    assert_eq!(err_of(&format!("{GOOD} {{}}")).code(), "message.malformed");
}
