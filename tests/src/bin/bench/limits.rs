//! The physical limits of the same link, so each row says which one binds: the SFTP server's
//! read with no sink (`ssh cat` of the set's bytes with the cipher we negotiate), and the sink's
//! ingest with no SFTP (the set's bytes, already in memory, one PUT per file for Blob, Create
//! File + 4 MiB Put Ranges for Files, 16 requests in flight, no hashing).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use harness::sshd::TEST_USER;

use super::measure::{measure, Measure, MIB};
use super::sinks::Sink;
use super::tools::{Source, CONCURRENCY};

/// The cipher our SFTP client puts first when the CPU has AES instructions
/// (`common/src/storage/sftp/connect.rs`); `ssh cat` uses the same one.
pub const CIPHER: &str = "aes256-gcm@openssh.com";

/// Read every file of `dir` through one SSH channel into /dev/null.
pub fn ssh_cat(at: &Source, dir: &Path) -> Measure {
    let child = Command::new("ssh")
        .args([
            "-T",
            "-c",
            CIPHER,
            "-p",
            &at.link.sftp_port().to_string(),
            "-i",
        ])
        .arg(at.sshd.client_key())
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
        .arg(format!("{TEST_USER}@127.0.0.1"))
        .arg(format!("find '{}' -type f -exec cat {{}} +", dir.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ssh");
    measure(child, "ssh cat")
}

/// Every file of `dir`, relative name and bytes.
fn load(dir: &Path) -> std::io::Result<Vec<(String, Bytes)>> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path: PathBuf = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let name = path
                    .strip_prefix(dir)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                files.push((name, Bytes::from(std::fs::read(&path)?)));
            }
        }
    }
    Ok(files)
}

/// Upload the files of `dir` into `sink` straight from memory; the wall time of the upload.
pub async fn sink_put(sink: &Sink, dir: &Path) -> anyhow::Result<Duration> {
    let files = load(dir)?;
    let started = Instant::now();
    match sink.container_sas_url() {
        Some(sas) => {
            let (base, query) = sas
                .split_once('?')
                .ok_or_else(|| anyhow::anyhow!("a SAS URL has a query"))?;
            let http = reqwest::Client::new();
            futures::stream::iter(files)
                .map(|(name, data)| {
                    let request = http
                        .put(format!("{base}/{name}?{query}"))
                        .header("x-ms-blob-type", "BlockBlob")
                        .header("x-ms-version", "2025-01-05")
                        .body(data);
                    async move { request.send().await?.error_for_status().map(|_| ()) }
                })
                .buffer_unordered(CONCURRENCY)
                .try_collect::<()>()
                .await?;
        }
        None => {
            let client = sink.files_client()?;
            let mut dirs: Vec<String> = files
                .iter()
                .filter_map(|(n, _)| n.rsplit_once('/').map(|(d, _)| d.to_string()))
                .collect();
            dirs.dedup();
            for d in &dirs {
                client.create_directory(d).await?;
            }
            let client = &client;
            futures::stream::iter(&files)
                .map(|(name, data)| client.create_file(name, data.len() as u64, &[]))
                .buffer_unordered(CONCURRENCY)
                .try_collect::<()>()
                .await?;
            let step = 4 * MIB as usize;
            let ranges = files.iter().flat_map(|(name, data)| {
                (0..data.len()).step_by(step).map(move |at| {
                    let piece = data.slice(at..(at + step).min(data.len()));
                    client.put_range(name, at as u64, piece, None)
                })
            });
            futures::stream::iter(ranges)
                .buffer_unordered(CONCURRENCY)
                .try_collect::<()>()
                .await?;
        }
    }
    Ok(started.elapsed())
}
