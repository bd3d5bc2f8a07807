//! Azurite (Blob service only, in memory) on a free port, and a small client for tests to set
//! up containers and read back what the worker wrote.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use azure_core::http::{ClientOptions, Transport, Url};
use azure_storage_blob::models::{
    BlobClientGetPropertiesResultHeaders, BlobContainerClientListBlobsOptions, ListBlobsIncludeItem,
};
use azure_storage_blob::{
    BlobClient, BlobClientOptions, BlobContainerClient, BlobContainerClientOptions,
};
use backup_common::config::Secret;
use backup_common::storage::azure::account::AZURITE_KEY;
use backup_common::storage::azure::signing::SigningPolicy;
use backup_common::storage::azure::{AccountConfig, AzureAuth};
use futures::TryStreamExt;

use crate::{free_port, repo_root, wait_for_port};

pub const ACCOUNT: &str = "devstoreaccount1";

pub struct Azurite {
    pub port: u16,
    /// Serving https with OAuth on (`--oauth basic`), with the harness's test certificate.
    tls: bool,
    child: Child,
    _dir: tempfile::TempDir,
}

/// One Azurite service (`azurite-blob`, `azurite-queue`) in memory on a free port.
struct Service {
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

fn start_service(service: &str, extra: &[String]) -> Service {
    let bin = repo_root().join(format!(".tools/node_modules/.bin/azurite-{service}"));
    assert!(
        bin.exists(),
        "{} is missing: run `./dev install`",
        bin.display()
    );
    let dir = tempfile::Builder::new()
        .prefix(&format!("azurite-{service}-"))
        .tempdir()
        .expect("tempdir");
    let port = free_port();
    let child = Command::new(bin)
        .args([
            format!("--{service}Host"),
            "127.0.0.1".into(),
            format!("--{service}Port"),
            port.to_string(),
        ])
        .args([
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--silent",
        ])
        .args(extra)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start azurite");
    wait_for_port(port, &format!("azurite-{service}"), Duration::from_secs(30));
    Service { port, child, dir }
}

impl Azurite {
    pub fn start() -> Azurite {
        let Service { port, child, dir } = start_service("blob", &[]);
        Azurite {
            port,
            tls: false,
            child,
            _dir: dir,
        }
    }

    /// Blob over https with Entra ID bearer tokens accepted (SharedKey still works).
    pub fn start_oauth() -> Azurite {
        let pki = crate::pki::Pki::get();
        let args = [
            "--oauth".to_string(),
            "basic".into(),
            "--cert".into(),
            pki.server_cert().display().to_string(),
            "--key".into(),
            pki.server_key().display().to_string(),
        ];
        let Service { port, child, dir } = start_service("blob", &args);
        Azurite {
            port,
            tls: true,
            child,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    pub fn config(&self) -> AccountConfig {
        AccountConfig {
            storage: "test".into(),
            account: ACCOUNT.into(),
            endpoint: Url::parse(&format!("{}/", self.endpoint())).expect("url"),
            auth: AzureAuth::SharedKey {
                key: Secret::new(AZURITE_KEY),
            },
            sas_resource: None,
            http: if self.tls {
                crate::test_http_client()
            } else {
                reqwest::Client::new()
            },
            request_timeout: backup_common::storage::azure::http::DEFAULT_REQUEST_TIMEOUT,
        }
    }

    fn options(&self) -> ClientOptions {
        let config = self.config();
        ClientOptions {
            transport: Some(Transport::new(Arc::new(config.http.clone()))),
            per_try_policies: vec![Arc::new(SigningPolicy::new(&config))],
            ..Default::default()
        }
    }

    pub fn container(&self, name: &str) -> BlobContainerClient {
        let url = Url::parse(&format!("{}/{name}", self.endpoint())).expect("url");
        BlobContainerClient::new(
            url,
            None,
            Some(BlobContainerClientOptions {
                client_options: self.options(),
                ..Default::default()
            }),
        )
        .expect("container client")
    }

    pub async fn create_container(&self, name: &str) {
        self.container(name)
            .create(None)
            .await
            .expect("create container");
    }

    fn blob(&self, container: &str, name: &str) -> BlobClient {
        let mut url = Url::parse(&format!("{}/{container}", self.endpoint())).expect("url");
        url.path_segments_mut()
            .expect("base")
            .extend(name.split('/'));
        BlobClient::new(
            url,
            None,
            Some(BlobClientOptions {
                client_options: self.options(),
                ..Default::default()
            }),
        )
        .expect("blob client")
    }

    /// Every committed blob name in the container.
    pub async fn list(&self, container: &str) -> Vec<String> {
        let options = BlobContainerClientListBlobsOptions {
            include: Some(vec![ListBlobsIncludeItem::Metadata]),
            ..Default::default()
        };
        let mut pager = self
            .container(container)
            .list_blobs(Some(options))
            .expect("list");
        let mut names = Vec::new();
        while let Some(item) = pager.try_next().await.expect("list page") {
            names.extend(item.name);
        }
        names.sort();
        names
    }

    pub async fn read(&self, container: &str, name: &str) -> Vec<u8> {
        let response = self
            .blob(container, name)
            .download(None)
            .await
            .unwrap_or_else(|e| panic!("download {name}: {e}"));
        let body = response.body.collect().await.expect("body");
        body.to_vec()
    }

    /// A blob's bytes and stored Content-MD5 from one GET (one version, never two mixed),
    /// or `None` when it is not there. For observers racing with writers.
    pub async fn read_whole(
        &self,
        container: &str,
        name: &str,
    ) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
        use base64::Engine;
        let sas = self.container_sas_url(container, "r", 600);
        let (base, query) = sas.split_once('?').expect("a SAS URL has a query");
        let url = format!("{base}/{name}?{query}");
        let response = reqwest::get(&url).await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let md5 = response
            .headers()
            .get("content-md5")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok());
        let body = response.bytes().await.ok()?;
        Some((body.to_vec(), md5))
    }

    /// Put a blob named exactly `name` (dot segments, `//` and `\\` included: what someone
    /// else's tool may have written), with no Content-MD5 or metadata.
    /// Whether the service took the name.
    pub async fn put(&self, container: &str, name: &str, data: &[u8]) -> bool {
        let blob_type = [("x-ms-blob-type".to_string(), "BlockBlob".to_string())];
        self.send(container, name, "", data.to_vec(), &blob_type)
            .await
            .is_ok()
    }

    /// Replace a blob's bytes behind the worker's back, keeping its Content-MD5 and metadata:
    /// the damage only the bytes themselves can show.
    pub async fn overwrite_keeping_properties(&self, container: &str, name: &str, data: &[u8]) {
        use base64::Engine;
        let (md5, metadata) = self.properties(container, name).await;
        let mut headers: Vec<(String, String)> = metadata
            .into_iter()
            .map(|(k, v)| (format!("x-ms-meta-{k}"), v))
            .collect();
        if let Some(md5) = md5 {
            let b64 = base64::engine::general_purpose::STANDARD.encode(md5);
            headers.push(("x-ms-blob-content-md5".into(), b64));
        }
        // Put Block, then Put Block List with the old properties: the service checks a
        // Content-MD5 sent with bytes, not the one a block list declares.
        let block = ("comp=block&blockid=", "YmxvY2stMDAwMQ==");
        let query = format!("{}{}", block.0, urlencode(block.1));
        self.send(container, name, &query, data.to_vec(), &[])
            .await
            .unwrap();
        let list = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>{}</Latest></BlockList>",
            block.1
        );
        self.send(
            container,
            name,
            "comp=blocklist",
            list.into_bytes(),
            &headers,
        )
        .await
        .unwrap();
    }

    async fn send(
        &self,
        container: &str,
        name: &str,
        query: &str,
        body: Vec<u8>,
        headers: &[(String, String)],
    ) -> Result<(), String> {
        let sas = self.container_sas_url(container, "rcw", 600);
        let (base, sas_query) = sas.split_once('?').expect("a SAS URL has a query");
        let encoded: Vec<String> = name.split('/').map(encode_segment).collect();
        let url = format!("{base}/{}?{query}&{sas_query}", encoded.join("/"));
        let mut request = reqwest::Client::new().put(&url).body(body);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        match status.is_success() {
            true => Ok(()),
            false => Err(format!("put {name}?{query}: {status} {text}")),
        }
    }

    /// How many blocks are staged but not committed for `name` (an upload in progress).
    pub async fn uncommitted_blocks(&self, container: &str, name: &str) -> usize {
        let mut url = Url::parse(&format!("{}/{container}", self.endpoint())).expect("url");
        url.path_segments_mut()
            .expect("base")
            .extend(name.split('/'));
        let client = azure_storage_blob::BlockBlobClient::new(
            url,
            None,
            Some(azure_storage_blob::BlockBlobClientOptions {
                client_options: self.options(),
                ..Default::default()
            }),
        )
        .expect("client");
        match client
            .get_block_list(azure_storage_blob::models::BlockListType::Uncommitted, None)
            .await
        {
            Ok(r) => r
                .into_model()
                .map(|l| l.uncommitted_blocks.unwrap_or_default().len())
                .unwrap_or(0),
            Err(_) => 0,
        }
    }

    /// (Content-MD5, metadata) of a blob.
    pub async fn properties(
        &self,
        container: &str,
        name: &str,
    ) -> (Option<Vec<u8>>, HashMap<String, String>) {
        let props = self
            .blob(container, name)
            .get_properties(None)
            .await
            .expect("properties");
        (
            props.content_md5().ok().flatten(),
            props.metadata().unwrap_or_default(),
        )
    }

    /// A service SAS URL for the container with `permissions` (`racwdl` subset), valid from
    /// now for `valid_for_secs` (negative: already expired).
    pub fn container_sas_url(
        &self,
        container: &str,
        permissions: &str,
        valid_for_secs: i64,
    ) -> String {
        use reqsign_azure_storage::{ServiceSasResource, ServiceSharedAccessSignature};
        let now = reqsign_core::time::Timestamp::now().as_second();
        let sas = ServiceSharedAccessSignature::new(
            ACCOUNT.into(),
            AZURITE_KEY.into(),
            ServiceSasResource::from_path_percent_decoded(&format!("/{container}"))
                .expect("resource"),
            permissions.into(),
            reqsign_core::time::Timestamp::from_second(now + valid_for_secs).expect("time"),
        )
        .with_start(reqsign_core::time::Timestamp::from_second(now - 600).expect("time"));
        let pairs = sas.token().expect("sas token");
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        format!("{}/{container}?{query}", self.endpoint())
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Azurite's Queue service on its own free port, with a client to set queues up.
pub struct AzuriteQueue {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl AzuriteQueue {
    pub fn start() -> AzuriteQueue {
        let Service { port, child, dir } = start_service("queue", &[]);
        AzuriteQueue {
            port,
            child,
            _dir: dir,
        }
    }

    pub fn queue_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}/{name}", self.port)
    }

    fn client(&self, name: &str) -> azure_storage_queue::QueueClient {
        let account = AccountConfig {
            storage: "test".into(),
            account: ACCOUNT.into(),
            endpoint: Url::parse(&format!("http://127.0.0.1:{}/{ACCOUNT}/", self.port))
                .expect("url"),
            auth: AzureAuth::SharedKey {
                key: Secret::new(AZURITE_KEY),
            },
            sas_resource: None,
            http: reqwest::Client::new(),
            request_timeout: backup_common::storage::azure::http::DEFAULT_REQUEST_TIMEOUT,
        };
        let options = azure_storage_queue::QueueClientOptions {
            client_options: ClientOptions {
                per_try_policies: vec![Arc::new(SigningPolicy::new(&account))],
                ..Default::default()
            },
            ..Default::default()
        };
        azure_storage_queue::QueueClient::new(
            Url::parse(&self.queue_url(name)).expect("url"),
            None,
            Some(options),
        )
        .expect("queue client")
    }

    pub async fn create(&self, name: &str) {
        self.client(name).create(None).await.expect("create queue");
    }

    /// Enqueue `text` base64-encoded, as the Functions queue trigger expects.
    pub async fn send(&self, name: &str, text: &str) {
        use base64::Engine;
        let message = azure_storage_queue::models::QueueMessage {
            message_text: Some(base64::engine::general_purpose::STANDARD.encode(text)),
        };
        self.client(name)
            .send_message(message.try_into().expect("message"), None)
            .await
            .expect("send message");
    }
}

impl Drop for AzuriteQueue {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Percent-encode one path segment completely (dots too, so `..` reaches the service as a
/// name instead of being resolved by a URL parser).
fn encode_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
