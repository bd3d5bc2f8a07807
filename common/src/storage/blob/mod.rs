//! Azure Blob destination (`azure_storage_blob` 1.x, signed by [`signing::SigningPolicy`]).
//!
//! Files become block blobs: chunks are staged as uncommitted blocks and the blob appears only
//! when Put Block List commits them, so a reader never sees a half-written blob. Small files go
//! in one Put Blob. Each blob carries the source's MD5 (Content-MD5), size and mtime (metadata).

pub mod config;
pub mod names;
mod read;
mod upload;

use std::collections::{HashMap, HashSet};
use std::num::NonZero;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use azure_core::http::{ClientOptions, Transport, Url};
use azure_storage_blob::models::{
    BlobContainerClientListBlobsOptions, BlobItem, BlockBlobClientUploadOptions,
};
use azure_storage_blob::{
    BlobClient, BlobClientOptions, BlobContainerClient, BlobContainerClientOptions,
    BlockBlobClient, BlockBlobClientOptions,
};
use bytes::Bytes;
use futures::TryStreamExt;

use super::azure::error::{classify, credential_error, is_timeout, sdk_kind, Target};
use super::azure::probe::{connect_and_authenticate, within};
use super::azure::signing::SigningPolicy;
use super::azure::url_path::push_segments;
use super::azure::AccountConfig;
use super::retry;
use super::write::Capability;
use super::{
    CheckFailure, Destination, FileMeta, HeldFile, Holdings, RemoteFile, Upload, RESERVED_DIR,
};
use crate::check::Step;
use crate::check::DESTINATION_STEPS;
use crate::error::{redact_url, Error, ErrorKind, Result};
pub use config::BlobConfig;
use upload::{BlobUpload, BlockNaming};

const META_SOURCE_MTIME: &str = "source_mtime";
const META_SOURCE_SIZE: &str = "source_size";

pub struct BlobDestination {
    cfg: BlobConfig,
    container: String,
    /// Prefix inside the container, without leading or trailing `/`.
    prefix: String,
    client_options: ClientOptions,
    container_client: BlobContainerClient,
}

impl BlobDestination {
    pub fn new(cfg: BlobConfig, container: Option<String>, prefix: &str) -> Result<Self> {
        let container = container.or_else(|| cfg.container.clone()).ok_or_else(|| {
            Error::invalid_field(
                "destination.container",
                format!(
                    "is required: name it in the message or set BACKUP_STORAGE_{}_CONTAINER",
                    crate::config::normalize_name(&cfg.account.storage)
                ),
            )
        })?;
        // The account's HTTP client: one connection pool for every blob client and the tokens.
        let transport = Transport::new(Arc::new(cfg.account.http.clone()));
        let client_options = ClientOptions {
            per_try_policies: vec![Arc::new(SigningPolicy::new(&cfg.account))],
            transport: Some(transport),
            retry: retry::REQUESTS.sdk_options(),
            ..Default::default()
        };
        let mut container_url = cfg.account.endpoint.clone();
        push_segments(&mut container_url, [container.as_str()]);
        let container_client = BlobContainerClient::new(
            container_url,
            None,
            Some(BlobContainerClientOptions {
                client_options: client_options.clone(),
                ..Default::default()
            }),
        )
        .map_err(|e| Error::Azure {
            resource: container.clone(),
            detail: e.to_string(),
        })?;
        Ok(BlobDestination {
            prefix: prefix.trim_matches('/').to_string(),
            cfg,
            container,
            client_options,
            container_client,
        })
    }

    fn reads(&self) -> read::BlobReads {
        read::BlobReads {
            account: self.cfg.account.clone(),
            container: self.container.clone(),
            client_options: self.client_options.clone(),
        }
    }

    /// The blob name of a path relative to the job's prefix.
    fn blob_name(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }

    fn blob_url(&self, rel: &str) -> Url {
        let name = self.blob_name(rel);
        let mut url = self.cfg.account.endpoint.clone();
        push_segments(
            &mut url,
            std::iter::once(self.container.as_str()).chain(name.split('/')),
        );
        url
    }

    fn blob_client(&self, rel: &str) -> Result<BlobClient> {
        let options = BlobClientOptions {
            client_options: self.client_options.clone(),
            ..Default::default()
        };
        BlobClient::new(self.blob_url(rel), None, Some(options)).map_err(|e| Error::Azure {
            resource: self.blob_name(rel),
            detail: e.to_string(),
        })
    }

    fn block_client(&self, rel: &str) -> Result<BlockBlobClient> {
        let name = self.blob_name(rel);
        let mut url = self.cfg.account.endpoint.clone();
        push_segments(
            &mut url,
            std::iter::once(self.container.as_str()).chain(name.split('/')),
        );
        BlockBlobClient::new(
            url,
            None,
            Some(BlockBlobClientOptions {
                client_options: self.client_options.clone(),
                ..Default::default()
            }),
        )
        .map_err(|e| Error::Azure {
            resource: name,
            detail: e.to_string(),
        })
    }

    /// Test Connection's `access` and `list` steps: one page of one name.
    async fn check_list(&self) -> std::result::Result<(), CheckFailure> {
        let what = format!("container {}", self.container);
        let options = BlobContainerClientListBlobsOptions {
            maxresults: Some(1),
            prefix: (!self.prefix.is_empty()).then(|| format!("{}/", self.prefix)),
            ..Default::default()
        };
        let listed = match self.container_client.list_blobs(Some(options)) {
            Ok(pager) => pager.into_pages().try_next().await.map(|_| ()),
            Err(e) => Err(e),
        };
        listed.map_err(|e| {
            let error = self.map_err(&what, "list", e);
            let step = if matches!(error, Error::AzureForbidden { .. }) {
                Step::List
            } else {
                Step::Access
            };
            CheckFailure { step, error }
        })
    }

    /// Test Connection's `write` step: an uncommitted block on a probe blob.
    async fn check_write(&self) -> Result<()> {
        let what = format!("container {}", self.container);
        let probe = format!("{RESERVED_DIR}/connection-test");
        let data = Bytes::from_static(b"connection test");
        self.block_client(&probe)?
            .stage_block(&probe_block_id(), data.len() as u64, data.into(), None)
            .await
            .map_err(|e| self.map_err(&what, "write", e))?;
        Ok(())
    }

    fn map_err(&self, resource: &str, needs: &'static str, e: azure_core::Error) -> Error {
        map_sdk_error(&self.cfg.account, &self.container, resource, needs, e)
    }
}

/// What a listed blob tells an incremental run (`None`: the worker's state, or not under the
/// prefix). The source's mtime is only what the worker recorded, never the blob's own time.
fn held_file(item: BlobItem, list_prefix: &str) -> Option<HeldFile> {
    let rel = item.name?.strip_prefix(list_prefix)?.to_string();
    if rel.split('/').next() == Some(RESERVED_DIR) {
        return None;
    }
    let props = item.properties.unwrap_or_default();
    let meta = item.metadata.and_then(|m| m.values).unwrap_or_default();
    Some(HeldFile {
        path: rel,
        remote: RemoteFile {
            size: props.content_length.unwrap_or(0),
            source_mtime: meta.get(META_SOURCE_MTIME).and_then(|v| v.parse().ok()),
            md5: props.content_md5.and_then(|m| m.try_into().ok()),
        },
    })
}

/// Map an SDK error to the seed's classes (see [`classify`]).
pub(super) fn map_sdk_error(
    account: &AccountConfig,
    container: &str,
    resource: &str,
    needs: &'static str,
    e: azure_core::Error,
) -> Error {
    let error = classify_sdk_error(account, container, resource, needs, e);
    // The pipeline retried retryable statuses and I/O failures until its attempts ran out.
    let retried = matches!(
        error,
        Error::AzureHttp { .. } | Error::AzureUnreachable { .. } | Error::AzureTimeout { .. }
    );
    if retried && error.is_retryable() {
        retry::REQUESTS.gave_up(retry::REQUESTS.attempts, error)
    } else {
        error
    }
}

fn classify_sdk_error(
    account: &AccountConfig,
    container: &str,
    resource: &str,
    needs: &'static str,
    e: azure_core::Error,
) -> Error {
    use azure_core::error::ErrorKind;
    match e.kind() {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => {
            let target = Target {
                account: &account.account,
                kind: "container",
                name: container,
                resource,
                needs,
            };
            classify(
                &target,
                u16::from(*status),
                error_code.as_deref().unwrap_or_default(),
            )
        }
        ErrorKind::Credential => credential_error(&account.account, &account.auth, &e),
        ErrorKind::Connection | ErrorKind::Io if is_timeout(&e) => Error::AzureTimeout {
            endpoint: redact_url(account.endpoint.as_str()),
            seconds: account.request_timeout.as_secs(),
            during: format!("{needs} `{resource}`"),
        },
        ErrorKind::Connection | ErrorKind::Io => Error::AzureUnreachable {
            endpoint: redact_url(resource),
            detail: e.to_string(),
        },
        _ => Error::Azure {
            resource: resource.to_string(),
            detail: e.to_string(),
        },
    }
}

pub(super) fn metadata(meta: &FileMeta) -> HashMap<String, String> {
    HashMap::from([
        (META_SOURCE_MTIME.to_string(), meta.mtime.to_string()),
        (META_SOURCE_SIZE.to_string(), meta.size.to_string()),
    ])
}

/// The write probe's block id (Test Connection); any length will do on its own blob.
fn probe_block_id() -> Vec<u8> {
    b"connection-test".to_vec()
}

#[async_trait]
impl Destination for BlobDestination {
    fn describe(&self) -> String {
        format!(
            "azureblob://{}/{}/{}",
            self.cfg.account.account, self.container, self.prefix
        )
    }

    fn capability(&self) -> Capability {
        Capability {
            max_chunk: None,
            max_parallel_requests: self.cfg.max_connections,
            resumable_staging: true,
            names_ignore_case: false,
            check_steps: &DESTINATION_STEPS,
            chunk_checksum: self.cfg.chunk_checksum,
        }
    }

    fn check_name(&self, path: &str) -> Result<()> {
        names::check(&self.blob_name(path))
    }

    async fn check(&self) -> std::result::Result<(), CheckFailure> {
        let cfg = &self.cfg.account;
        connect_and_authenticate(cfg).await?;
        // List first: it proves the container exists (access) and listing is allowed, and
        // unlike Get Container Properties it works with a container-level SAS.
        within(cfg, Step::Access, self.check_list()).await?;
        // Write permission: stage a block that is never committed, so nothing becomes visible.
        within(cfg, Step::Write, async {
            self.check_write()
                .await
                .map_err(CheckFailure::at(Step::Write))
        })
        .await
    }

    async fn stat(&self, path: &str) -> Result<Option<RemoteFile>> {
        let props = self.reads().properties(&self.blob_name(path)).await?;
        Ok(props.map(|p| RemoteFile {
            size: p.size,
            source_mtime: p.recorded_mtime,
            md5: p.md5,
        }))
    }

    async fn list(&self) -> Result<Holdings> {
        let list_prefix = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        self.list_blobs(
            list_prefix.clone(),
            move |item| held_file(item, &list_prefix).map(Ok),
            Err,
        )
        .await
    }

    async fn delete(&self, path: &str) -> Result<bool> {
        match self.blob_client(path)?.delete(None).await {
            Ok(_) => Ok(true),
            Err(e) if sdk_kind(&e) == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.map_err(&self.blob_name(path), "delete", e)),
        }
    }

    async fn put_small(&self, path: &str, data: Bytes, meta: &FileMeta) -> Result<()> {
        let client = self.block_client(path)?;
        let options = BlockBlobClientUploadOptions {
            blob_content_md5: Some(meta.md5.to_vec()),
            metadata: Some(metadata(meta)),
            parallel: NonZero::new(1),
            partition_size: NonZero::new((data.len() as u64).max(1)),
            ..Default::default()
        };
        client
            .upload(data.into(), Some(options))
            .await
            .map_err(|e| self.map_err(&self.blob_name(path), "write", e))?;
        Ok(())
    }

    async fn start_upload(
        &self,
        path: &str,
        size: u64,
        mtime: i64,
        chunk_size: u64,
    ) -> Result<Arc<dyn Upload>> {
        Ok(Arc::new(BlobUpload {
            naming: BlockNaming::new(size, mtime, chunk_size),
            chunk_size,
            size,
            staged: Mutex::new(HashSet::new()),
            ids: Mutex::new(Vec::new()),
            client: self.block_client(path)?,
            name: self.blob_name(path),
            account: self.cfg.account.clone(),
            container: self.container.clone(),
        }))
    }

    async fn put_state(&self, name: &str, data: Bytes) -> Result<()> {
        let path = format!("{RESERVED_DIR}/{name}");
        let options = BlockBlobClientUploadOptions {
            parallel: NonZero::new(1),
            partition_size: NonZero::new((data.len() as u64).max(1)),
            blob_content_type: Some("application/json".into()),
            ..Default::default()
        };
        self.block_client(&path)?
            .upload(data.into(), Some(options))
            .await
            .map_err(|e| self.map_err(&self.blob_name(&path), "write", e))?;
        Ok(())
    }

    /// Put Blob with `If-None-Match: *`: the service refuses (409) when the blob exists.
    async fn create(&self, path: &str, data: Bytes) -> Result<bool> {
        let options = BlockBlobClientUploadOptions {
            parallel: NonZero::new(1),
            partition_size: NonZero::new((data.len() as u64).max(1)),
            blob_content_type: Some("application/json".into()),
            if_none_match: Some(azure_core::http::Etag::from("*")),
            ..Default::default()
        };
        match self
            .block_client(path)?
            .upload(data.into(), Some(options))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if sdk_kind(&e) == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(self.map_err(&self.blob_name(path), "write", e)),
        }
    }

    async fn get_state(&self, name: &str) -> Result<Option<Bytes>> {
        let path = format!("{RESERVED_DIR}/{name}");
        let response = match self.blob_client(&path)?.download(None).await {
            Ok(r) => r,
            Err(e) if sdk_kind(&e) == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.map_err(&self.blob_name(&path), "read", e)),
        };
        let body = response
            .body
            .collect()
            .await
            .map_err(|e| self.map_err(&self.blob_name(&path), "read", e))?;
        Ok(Some(body))
    }

    async fn list_state(&self, dir: &str) -> Result<Vec<String>> {
        let prefix = format!(
            "{}/",
            self.blob_name(&format!("{RESERVED_DIR}/{}", dir.trim_matches('/')))
        );
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(prefix.clone()),
            ..Default::default()
        };
        let what = format!("container {}", self.container);
        let mut items = self
            .container_client
            .list_blobs(Some(options))
            .map_err(|e| self.map_err(&what, "list", e))?;
        let mut names = Vec::new();
        while let Some(item) = items
            .try_next()
            .await
            .map_err(|e| self.map_err(&what, "list", e))?
        {
            if let Some(rest) = item.name.as_deref().and_then(|n| n.strip_prefix(&prefix)) {
                if !rest.contains('/') {
                    names.push(rest.to_string());
                }
            }
        }
        Ok(names)
    }
}
