//! Verify on real servers: a mirror is read back and checked against its stored MD5s (damage
//! done behind the worker's back is found, in Blob and in Files), compared with its source on
//! request, and left exactly as it was.

use std::fs;

use backup_common::result::{JobStatus, VerifyCounts};
use harness::stack::{error_codes, pattern, write_file, Stack};

const OPTIONS: &str = r#""options": {"chunk_size": "256KiB", "upload_concurrency": 4}"#;

fn job(kind: &str, src: &std::path::Path, place: &str, storage: &str, extra: &str) -> String {
    format!(
        r#"{{"kind": "{kind}", "job_id": "v",
            "source": {{"storage": "office_nas", "path": "{}"}},
            "destination": {{"storage": "{storage}", {place}, "prefix": "m"}}, {OPTIONS}{extra}}}"#,
        src.display()
    )
}

fn tree(stack: &Stack, name: &str) -> std::path::PathBuf {
    let src = stack.source_dir(name);
    write_file(&src, "a.txt", b"alpha");
    write_file(&src, "big.bin", &pattern(700 * 1024, 3));
    write_file(&src, "docs/c.txt", b"charlie");
    write_file(&src, "empty", b"");
    src
}

#[tokio::test]
async fn an_intact_mirror_verifies_and_is_left_as_it_was() {
    let stack = Stack::start();
    stack.azurite.create_container("intact").await;
    let src = tree(&stack, "intact");
    let place = r#""container": "intact""#;
    let backup = stack.run(&job("backup", &src, place, "archive", "")).await;
    assert_eq!(backup.status, JobStatus::Succeeded, "{backup:#?}");
    let before = stack.azurite.list("intact").await;

    let r = stack.run(&job("verify", &src, place, "archive", "")).await;
    assert_eq!(r.status, JobStatus::Succeeded, "{r:#?}");
    assert_eq!(
        r.verify,
        Some(VerifyCounts {
            checked: 4,
            intact: 4,
            ..Default::default()
        })
    );
    assert_eq!(r.bytes.skipped, 5 + 700 * 1024 + 7, "every byte read");
    assert_eq!(
        stack.azurite.list("intact").await,
        before,
        "nothing written"
    );
}

#[tokio::test]
async fn damage_behind_our_back_is_found_in_blob() {
    let stack = Stack::start();
    stack.azurite.create_container("damaged").await;
    let src = tree(&stack, "damaged-blob");
    let place = r#""container": "damaged""#;
    assert_eq!(
        stack
            .run(&job("backup", &src, place, "archive", ""))
            .await
            .status,
        JobStatus::Succeeded
    );
    let mut big = pattern(700 * 1024, 3);
    big[512 * 1024] ^= 1;
    stack
        .azurite
        .overwrite_keeping_properties("damaged", "m/big.bin", &big)
        .await;

    let r = stack.run(&job("verify", &src, place, "archive", "")).await;
    assert_eq!(r.status, JobStatus::PartiallyFailed, "{r:#?}");
    assert_eq!(
        error_codes(&r),
        [("big.bin".to_string(), "verify.corrupt".to_string())]
    );
    let counts = r.verify.unwrap();
    assert_eq!((counts.checked, counts.intact, counts.corrupt), (4, 3, 1));
}

#[tokio::test]
async fn damage_behind_our_back_is_found_in_files() {
    let stack = Stack::start();
    stack.files.create_share("damaged");
    let src = tree(&stack, "damaged-files");
    let place = r#""share": "damaged""#;
    assert_eq!(
        stack
            .run(&job("backup", &src, place, "fileshare", ""))
            .await
            .status,
        JobStatus::Succeeded
    );
    stack.files.with_store(|s| {
        let share = s.shares.get_mut("damaged").unwrap();
        match share.get_mut("m/docs/c.txt") {
            Some(files_server::store::Node::File(f)) => f.write(0, b"C"),
            _ => panic!("m/docs/c.txt is not stored"),
        }
    });

    let r = stack
        .run(&job("verify", &src, place, "fileshare", ""))
        .await;
    assert_eq!(r.status, JobStatus::PartiallyFailed, "{r:#?}");
    assert_eq!(
        error_codes(&r),
        [("docs/c.txt".to_string(), "verify.corrupt".to_string())]
    );
    assert!(
        r.errors[0].error.message.contains("overwrite: always"),
        "{r:#?}"
    );
}

#[tokio::test]
async fn against_source_reports_missing_extra_and_changed_files() {
    let stack = Stack::start();
    stack.files.create_share("behind");
    let src = tree(&stack, "behind");
    let place = r#""share": "behind""#;
    assert_eq!(
        stack
            .run(&job("backup", &src, place, "fileshare", ""))
            .await
            .status,
        JobStatus::Succeeded
    );
    // After the backup: one new file, one deleted, one rewritten with another size.
    write_file(&src, "new.txt", b"not backed up yet");
    fs::remove_file(src.join("a.txt")).unwrap();
    write_file(&src, "docs/c.txt", b"charlie, longer now");

    let r = stack
        .run(&job(
            "verify",
            &src,
            place,
            "fileshare",
            r#", "against_source": true"#,
        ))
        .await;
    assert_eq!(r.status, JobStatus::PartiallyFailed, "{r:#?}");
    assert_eq!(
        error_codes(&r),
        [("new.txt".to_string(), "verify.missing".to_string())]
    );
    let c = r.verify.unwrap();
    assert_eq!(
        (c.checked, c.intact, c.missing, c.extra, c.changed),
        (4, 4, 1, 1, 1),
        "{c:?}"
    );

    // By hash: a rewrite that keeps the size and mtime is still seen.
    let same_len = b"CHARLIE, longer now";
    let path = write_file(&src, "docs/c.txt", b"charlie, longer now");
    let backup = stack
        .run(&job("backup", &src, place, "fileshare", ""))
        .await;
    assert_eq!(backup.status, JobStatus::Succeeded, "{backup:#?}");
    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    fs::write(&path, same_len).unwrap();
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let by_size = stack
        .run(&job(
            "verify",
            &src,
            place,
            "fileshare",
            r#", "against_source": true"#,
        ))
        .await;
    assert_eq!(by_size.verify.unwrap().changed, 0, "size and mtime match");
    let hashed = r#", "against_source": true, "options": {"compare": "hash"}"#;
    let message =
        job("verify", &src, place, "fileshare", "").replace(&format!(", {OPTIONS}"), hashed);
    let by_hash = stack.run(&message).await;
    assert_eq!(by_hash.verify.unwrap().changed, 1, "the MD5 differs");
}

#[tokio::test]
async fn against_source_needs_a_source() {
    let stack = Stack::start();
    let message = r#"{"kind": "verify", "job_id": "v", "against_source": true,
        "destination": {"storage": "archive", "container": "any"}}"#;
    let r = stack.run(message).await;
    assert_eq!(r.status, JobStatus::Failed);
    assert_eq!(r.errors[0].error.code, "message.invalid_field");
    assert!(r.errors[0].error.message.contains("`source`"), "{r:#?}");
}
