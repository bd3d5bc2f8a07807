//! Retention of snapshot repositories, judged by stock `restic`: a forget keeps exactly what its
//! policy says (`restic snapshots` agrees), a prune deletes the data only forgotten snapshots
//! used, and afterwards `restic check --read-data` is clean and every kept snapshot restores
//! byte for byte. Bad policies are refused before anything is touched.

use std::path::Path;

use backup_common::config::Profiles;
use backup_common::result::{JobResult, JobStatus};
use harness::restic::Restic;
use harness::stack::{error_codes, pattern, write_file, Stack};

const PASSWORD: &str = "retention password";
const MIB: usize = 1024 * 1024;

fn backup(src: &Path, dest: &str, tag: &str) -> String {
    format!(
        r#"{{"kind": "backup", "job_id": "ret", "mode": "snapshot", "init": true,
            "tags": ["{tag}"], "source": {{"storage": "office_nas", "path": "{}"}},
            "destination": {dest}}}"#,
        src.display()
    )
}

/// Three snapshots of one tree whose 3 MiB file is rewritten each time: the first tagged
/// `monthly`, the others `nightly`. Returns their ids and each one's `data.bin`.
async fn three_snapshots(
    stack: &Stack,
    profiles: &Profiles,
    src: &Path,
    dest: &str,
) -> Vec<(String, Vec<u8>)> {
    write_file(src, "notes.txt", b"the same in every snapshot");
    let mut made = Vec::new();
    for (seed, tag) in [(1, "monthly"), (2, "nightly"), (3, "nightly")] {
        let data = pattern(3 * MIB, seed);
        let path = write_file(src, "data.bin", &data);
        // A rewrite within the same second, same size, would look unchanged (as to restic):
        // give each version its own mtime.
        let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000 + seed);
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(mtime).unwrap();
        let r = stack.run_with(&backup(src, dest, tag), profiles).await;
        assert_eq!(r.status, JobStatus::Succeeded, "{r:#?}");
        let id = r.snapshot.expect("a snapshot").id;
        made.push((id, data));
    }
    made
}

fn ids(restic: &Restic) -> Vec<String> {
    let mut ids: Vec<String> = restic
        .snapshots()
        .iter()
        .map(|s| s["id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    ids.sort();
    ids
}

/// restic restores snapshot `id` with `data` as its `data.bin`.
fn restores(restic: &Restic, id: &str, src: &Path, data: &[u8]) {
    let (_keep, dir) = restic.restore(id);
    let base = dir.join(src.strip_prefix("/").expect("absolute"));
    assert!(
        std::fs::read(base.join("data.bin")).unwrap() == data,
        "{id}"
    );
    assert_eq!(
        std::fs::read(base.join("notes.txt")).unwrap(),
        b"the same in every snapshot"
    );
}

fn prune_report(r: &JobResult) -> &backup_common::snapshot::retention::PruneReport {
    r.prune
        .as_ref()
        .unwrap_or_else(|| panic!("no prune report in {r:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn forget_keeps_what_the_policy_says_and_prune_frees_only_forgotten_data() {
    let stack = Stack::start();
    stack.azurite.create_container("retention").await;
    let profiles = stack.snapshot_profiles(PASSWORD);
    let src = stack.source_dir("retention-blob");
    let dest = r#"{"storage": "archive", "container": "retention", "prefix": "repo"}"#;
    let made = three_snapshots(&stack, &profiles, &src, dest).await;
    let (first, second, third) = (&made[0], &made[1], &made[2]);

    // Keep the last one and every `monthly`: the second goes.
    let forget = format!(
        r#"{{"kind": "forget", "job_id": "ret-forget", "destination": {dest},
            "keep_last": 1, "keep_tags": ["monthly"]}}"#
    );
    let r = stack.run_with(&forget, &profiles).await;
    assert_eq!(r.status, JobStatus::Succeeded, "{r:#?}");
    let report = r.forget.as_ref().expect("a forget report");
    assert_eq!((report.kept, &report.removed), (2, &vec![second.0.clone()]));
    let restic = Restic::from_blob(&stack, "retention", "repo", PASSWORD).await;
    assert_eq!(ids(&restic), sorted(&[&first.0, &third.0]));
    restic.run(&["check"]);

    // Prune: the second snapshot's 3 MiB is referenced by nothing now and is freed.
    let prune = format!(r#"{{"kind": "prune", "job_id": "ret-prune", "destination": {dest}}}"#);
    let r = stack.run_with(&prune, &profiles).await;
    assert_eq!(r.status, JobStatus::Succeeded, "{r:#?}");
    let pruned = prune_report(&r);
    assert!(
        pruned.packs_deleted + pruned.packs_repacked >= 1 && pruned.bytes_freed >= 3 * MIB as u64,
        "{pruned:#?}"
    );
    let restic = Restic::from_blob(&stack, "retention", "repo", PASSWORD).await;
    restic.run(&["check", "--read-data"]);
    assert_eq!(ids(&restic), sorted(&[&first.0, &third.0]));
    restores(&restic, &first.0, &src, &first.1);
    restores(&restic, &third.0, &src, &third.1);

    // A second prune finds nothing left to free.
    let again = stack.run_with(&prune, &profiles).await;
    assert_eq!(again.status, JobStatus::Succeeded, "{again:#?}");
    let pruned = prune_report(&again);
    assert_eq!(
        (pruned.packs_deleted, pruned.bytes_freed),
        (0, 0),
        "{pruned:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forget_with_prune_in_azure_files_leaves_a_repository_restic_checks_clean() {
    let stack = Stack::start();
    let profiles = stack.snapshot_profiles(PASSWORD);
    let src = stack.source_dir("retention-files");
    stack.files.create_share("retention");
    let dest = r#"{"storage": "fileshare", "share": "retention", "prefix": "restic"}"#;
    let made = three_snapshots(&stack, &profiles, &src, dest).await;

    let forget = format!(
        r#"{{"kind": "forget", "job_id": "ret-files", "destination": {dest},
            "keep_last": 1, "prune": true}}"#
    );
    let r = stack.run_with(&forget, &profiles).await;
    assert_eq!(r.status, JobStatus::Succeeded, "{r:#?}");
    assert_eq!(r.forget.as_ref().map(|f| f.removed.len()), Some(2));
    assert!(prune_report(&r).bytes_freed >= 6 * MIB as u64, "{r:#?}");
    let restic = Restic::from_files(&stack, "retention", "restic", PASSWORD);
    restic.run(&["check", "--read-data"]);
    assert_eq!(ids(&restic), vec![made[2].0.clone()]);
    restores(&restic, &made[2].0, &src, &made[2].1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_policies_are_refused_naming_the_field() {
    let stack = Stack::start();
    let dest = r#"{"storage": "archive", "container": "retention", "prefix": "repo"}"#;
    for (rules, field) in [
        ("", "keep_last"),
        (r#", "keep_daily": 0"#, "keep_daily"),
        (r#", "keep_within": "soon""#, "keep_within"),
        (r#", "keep_last": 1, "group_by": "host,planet""#, "group_by"),
        (r#", "keep_tags": [""]"#, "keep_tags"),
    ] {
        let message =
            format!(r#"{{"kind": "forget", "job_id": "bad", "destination": {dest}{rules}}}"#);
        let r = stack
            .run_with(&message, &stack.snapshot_profiles(PASSWORD))
            .await;
        assert_eq!(r.status, JobStatus::Failed, "{rules}");
        let errors = error_codes(&r);
        assert_eq!(errors.len(), 1, "{errors:?}");
        let message = &r.errors[0].error.message;
        assert!(
            errors[0].1 == "message.invalid_field" && message.contains(field),
            "{rules}: {errors:?}"
        );
    }
}
