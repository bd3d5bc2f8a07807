//! The physical limits of the same link, so each row says which one binds: the SFTP server's
//! read with no sink (`ssh cat` of the set's bytes with the cipher we negotiate), and the sink's
//! ingest with no SFTP (the set's bytes, already in memory, one PUT per file for Blob, Create
//! File + 4 MiB Put Ranges for Files, 16 requests in flight, no hashing). Blob adds the ingest of
//! the worker's own requests (4 MiB Put Blocks carrying CRC-64, checksums computed before the
//! clock starts: Azurite checks CRC-64 in JavaScript, which binds the default rows) and, for the
//! unchanged rerun, the listing of a container holding what the worker's backup wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backup_common::storage::checksum::BodySum;
use base64::Engine;
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

/// Which requests carry the bytes in a sink-ingest limit.
#[derive(Clone, Copy, PartialEq)]
pub enum Requests {
    /// One Put Blob per file (Files: Put Ranges), no checksums.
    Plain,
    /// As the worker writes into Blob by default: a file of one chunk in one Put Blob with its
    /// Content-MD5, a bigger file in 4 MiB Put Blocks with their CRC-64, then its block list.
    AsTheWorker,
}

/// Upload the files of `dir` into `sink` straight from memory; the wall time of the upload.
pub async fn sink_put(sink: &Sink, dir: &Path, requests: Requests) -> anyhow::Result<Duration> {
    let files = load(dir)?;
    match sink.container_sas_url() {
        Some(sas) => {
            let container = Container::from_sas(&sas)?;
            match requests {
                Requests::Plain => container.put_plain(files).await,
                Requests::AsTheWorker => container.put_as_worker(files).await,
            }
        }
        None => files_put(sink, files).await,
    }
}

/// List everything the sink's container holds (with metadata, as the worker lists), page
/// after page; the wall time. `expected`: how many blobs it must hold.
pub async fn sink_list(sink: &Sink, expected: u64) -> anyhow::Result<Duration> {
    let sas = sink
        .container_sas_url()
        .ok_or_else(|| anyhow::anyhow!("listing is measured on Blob only"))?;
    let container = Container::from_sas(&sas)?;
    let started = Instant::now();
    let mut marker = String::new();
    let mut listed = 0;
    loop {
        let url = format!(
            "{}?restype=container&comp=list&include=metadata&marker={}&{}",
            container.base,
            encode(&marker),
            container.query
        );
        let page = container.http.get(url).send().await?.error_for_status()?;
        let page = page.text().await?;
        listed += page.matches("<Blob>").count() as u64;
        marker = between(&page, "<NextMarker>", "</NextMarker>").to_string();
        if marker.is_empty() {
            break;
        }
    }
    let took = started.elapsed();
    anyhow::ensure!(listed == expected, "listed {listed} blobs, {expected} held");
    Ok(took)
}

/// The text between `open` and `close` in `xml` (empty when absent).
fn between<'a>(xml: &'a str, open: &str, close: &str) -> &'a str {
    xml.split_once(open)
        .and_then(|(_, rest)| rest.split_once(close))
        .map_or("", |(inside, _)| inside)
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A container reached by SAS with plain HTTP requests.
struct Container {
    http: reqwest::Client,
    base: String,
    query: String,
}

impl Container {
    fn from_sas(sas: &str) -> anyhow::Result<Container> {
        let (base, query) = sas
            .split_once('?')
            .ok_or_else(|| anyhow::anyhow!("a SAS URL has a query"))?;
        Ok(Container {
            http: reqwest::Client::new(),
            base: base.into(),
            query: query.into(),
        })
    }

    fn put(&self, name: &str, params: &str) -> reqwest::RequestBuilder {
        self.http
            .put(format!("{}/{name}?{params}{}", self.base, self.query))
            .header("x-ms-version", "2025-01-05")
    }

    async fn put_plain(&self, files: Vec<(String, Bytes)>) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let puts = files.into_iter().map(|(name, data)| {
            self.put(&name, "")
                .header("x-ms-blob-type", "BlockBlob")
                .body(data)
        });
        send_all(puts).await?;
        Ok(started.elapsed())
    }

    async fn put_as_worker(&self, files: Vec<(String, Bytes)>) -> anyhow::Result<Duration> {
        let chunk = 4 * MIB as usize;
        let mut whole = Vec::new();
        let mut blocks = Vec::new();
        let mut lists = Vec::new();
        for (name, data) in files {
            if data.len() <= chunk {
                let (header, sum) = BodySum::md5_of(&data).azure_header();
                whole.push(
                    self.put(&name, "")
                        .header("x-ms-blob-type", "BlockBlob")
                        .header(header, sum)
                        .body(data),
                );
                continue;
            }
            let mut ids = String::new();
            for (i, at) in (0..data.len()).step_by(chunk).enumerate() {
                let piece = data.slice(at..(at + chunk).min(data.len()));
                let id = base64::engine::general_purpose::STANDARD.encode(format!("{i:06}"));
                let (header, sum) = BodySum::crc64_of(&piece).azure_header();
                let params = format!("comp=block&blockid={}&", encode(&id));
                blocks.push(self.put(&name, &params).header(header, sum).body(piece));
                ids.push_str(&format!("<Latest>{id}</Latest>"));
            }
            let list =
                format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>{ids}</BlockList>");
            lists.push(self.put(&name, "comp=blocklist&").body(list));
        }
        let started = Instant::now();
        send_all(whole.into_iter().chain(blocks)).await?;
        send_all(lists).await?;
        Ok(started.elapsed())
    }
}

/// Send `requests`, [`CONCURRENCY`] at a time; the first failure is the answer.
async fn send_all(
    requests: impl IntoIterator<Item = reqwest::RequestBuilder>,
) -> anyhow::Result<()> {
    futures::stream::iter(requests)
        .map(|request| async move { request.send().await?.error_for_status().map(|_| ()) })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await?;
    Ok(())
}

/// Create File + 4 MiB Put Ranges into the Files sink's share, with our Files client.
async fn files_put(sink: &Sink, files: Vec<(String, Bytes)>) -> anyhow::Result<Duration> {
    let started = Instant::now();
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
    Ok(started.elapsed())
}
