//! `./dev bench restore`: 1 GiB backed up into each Azure service, then restored onto the SFTP
//! server, by us (chunk 4 MiB, 16 in flight): throughput and peak RSS of each direction.

use std::path::Path;
use std::process::Command;

use harness::stack::Stack;

use super::measure::{measure, MIB};
use super::write_big;

pub async fn rows(runner: &Path, stack: &Stack) -> anyhow::Result<()> {
    let src = stack.source_dir("bench-restore");
    write_big(&src.join("big.bin"), 1024 * MIB);
    Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&src)
        .status()?;
    stack.azurite.create_container("restore").await;
    stack.files.create_share("restore");
    let places = [
        ("Blob", "archive", r#""container": "restore""#),
        ("Files", "fileshare", r#""share": "restore""#),
    ];
    println!(
        "1 GiB file, loopback, chunk 4 MiB, 16 in flight; the worker as it ships (profile `dist`)"
    );
    println!(
        "{:<8} {:<8} {:>9} {:>9} {:>14}",
        "service", "job", "wall s", "MB/s", "peak RSS MiB"
    );
    for (service, storage, place) in places {
        let options = r#""options": {"chunk_size": "4MiB", "upload_concurrency": 16}"#;
        let backup = format!(
            r#"{{"kind": "backup", "job_id": "b", "source": {{"storage": "office_nas", "path": "{}"}},
                "destination": {{"storage": "{storage}", {place}, "prefix": "big"}}, {options}}}"#,
            src.display()
        );
        let target = stack.sshd.data_dir().join(format!("restored-{storage}"));
        std::fs::create_dir_all(&target)?;
        Command::new("chmod").arg("777").arg(&target).status()?;
        let restore = format!(
            r#"{{"kind": "restore", "job_id": "r", "source": {{"storage": "{storage}", {place}, "prefix": "big"}},
                "target": {{"storage": "office_nas", "path": "{}"}}, {options}}}"#,
            target.display()
        );
        for (job, message) in [("backup", &backup), ("restore", &restore)] {
            let child = harness::runner::spawn(runner, stack, message, &[("RUST_LOG", "warn")]);
            let m = measure(child, job);
            println!(
                "{:<8} {:<8} {:>9.2} {:>9.1} {:>14.1}",
                service,
                job,
                m.wall.as_secs_f64(),
                (1024 * MIB) as f64 / 1e6 / m.wall.as_secs_f64(),
                m.peak_rss as f64 / MIB as f64
            );
        }
        let same = std::fs::read(src.join("big.bin"))? == std::fs::read(target.join("big.bin"))?;
        anyhow::ensure!(same, "the restored file differs from the source");
    }
    Ok(())
}
