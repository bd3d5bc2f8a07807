//! The read side of Blob: a mirror listed page by page as a stream, a blob's properties, and
//! ranged reads (one Get Blob per chunk, so memory holds one chunk per read in flight).

use std::num::NonZero;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::http::pager::Page;
use azure_core::http::{ClientOptions, Url};
use azure_storage_blob::models::{
    BlobClientDownloadOptions, BlobClientGetPropertiesResultHeaders,
    BlobContainerClientListBlobsOptions, BlobItem, ListBlobsIncludeItem,
};
use azure_storage_blob::{BlobClient, BlobClientOptions};
use bytes::{Bytes, BytesMut};
use futures::TryStreamExt;
use tokio::sync::mpsc;

use super::{map_sdk_error, BlobDestination, META_SOURCE_MTIME};
use crate::check::CheckFailure;
use crate::check::Step;
use crate::error::{Error, ErrorKind, Result};
use crate::storage::azure::error::sdk_kind;
use crate::storage::azure::probe::{connect_and_authenticate, within};
use crate::storage::azure::url_path::push_segments;
use crate::storage::azure::AccountConfig;
use crate::storage::read::{joined, spawn_listing, RangeRead, RangedReader};
use crate::storage::{join, Destination, ListItem, Source, SourceFile, SourceReader, RESERVED_DIR};

/// What a blob holds, as a reader needs it.
pub(super) struct Properties {
    pub size: u64,
    /// The source's mtime recorded at backup, else when the blob was last written.
    pub mtime: i64,
    /// The source's mtime recorded at backup only.
    pub recorded_mtime: Option<i64>,
    pub md5: Option<[u8; 16]>,
}

/// Everything needed to read blobs of one container, cheap to clone into a reader.
#[derive(Clone)]
pub(super) struct BlobReads {
    pub account: AccountConfig,
    pub container: String,
    pub client_options: ClientOptions,
}

impl BlobReads {
    fn client(&self, name: &str) -> Result<BlobClient> {
        let mut url: Url = self.account.endpoint.clone();
        push_segments(
            &mut url,
            std::iter::once(self.container.as_str()).chain(name.split('/')),
        );
        let options = BlobClientOptions {
            client_options: self.client_options.clone(),
            ..Default::default()
        };
        BlobClient::new(url, None, Some(options)).map_err(|e| Error::Azure {
            resource: name.to_string(),
            detail: e.to_string(),
        })
    }

    fn map_err(&self, name: &str, e: azure_core::Error) -> Error {
        map_sdk_error(&self.account, &self.container, name, "read", e)
    }

    /// `None` when there is no such blob.
    pub(super) async fn properties(&self, name: &str) -> Result<Option<Properties>> {
        let props = match self.client(name)?.get_properties(None).await {
            Ok(p) => p,
            Err(e) if sdk_kind(&e) == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.map_err(name, e)),
        };
        let metadata = props.metadata().unwrap_or_default();
        let modified = props.last_modified().ok().flatten();
        let recorded = metadata.get(META_SOURCE_MTIME);
        Ok(Some(Properties {
            size: props.content_length().ok().flatten().unwrap_or(0),
            mtime: mtime_of(recorded, modified),
            recorded_mtime: recorded.and_then(|v| v.parse().ok()),
            md5: props
                .content_md5()
                .ok()
                .flatten()
                .and_then(|m| m.try_into().ok()),
        }))
    }
}

/// The source's mtime recorded at backup, else when the blob was last written.
fn mtime_of(recorded: Option<&String>, modified: Option<time::OffsetDateTime>) -> i64 {
    recorded
        .and_then(|v| v.parse().ok())
        .or_else(|| modified.map(|t| t.unix_timestamp()))
        .unwrap_or(0)
}

#[async_trait]
impl RangeRead for BlobReads {
    async fn read_range(&self, name: &str, offset: u64, len: u64) -> Result<Bytes> {
        let part = NonZero::new(len as usize).unwrap_or(NonZero::<usize>::MIN);
        let options = BlobClientDownloadOptions {
            range: Some((offset..offset + len).into()),
            parallel: NonZero::new(1),
            partition_size: Some(part),
            ..Default::default()
        };
        let response = self
            .client(name)?
            .download(Some(options))
            .await
            .map_err(|e| self.map_err(name, e))?;
        let mut body = response.body;
        let mut data = BytesMut::with_capacity(len as usize);
        while let Some(piece) = body.try_next().await.map_err(|e| self.map_err(name, e))? {
            data.extend_from_slice(&piece);
        }
        Ok(data.freeze())
    }
}

fn to_source_file(item: BlobItem, list_prefix: &str) -> Option<SourceFile> {
    let name = item.name?;
    let rel = name.strip_prefix(list_prefix)?;
    if rel.split('/').next() == Some(RESERVED_DIR) {
        return None;
    }
    let props = item.properties.unwrap_or_default();
    let metadata = item.metadata.and_then(|m| m.values).unwrap_or_default();
    Some(SourceFile {
        path: rel.to_string(),
        size: props.content_length.unwrap_or(0),
        mtime: mtime_of(metadata.get(META_SOURCE_MTIME), props.last_modified),
        md5: props.content_md5.and_then(|m| m.try_into().ok()),
    })
}

impl BlobDestination {
    /// Every blob whose name starts with `list_prefix`, page by page, in the service's order
    /// (by name), each turned into a `T` by `keep` (`None`: not data). The first page is
    /// fetched here, so a missing container or a refused listing fails the caller; a later
    /// error (a page refused or unreadable) is the stream's last item. The next page is asked
    /// for before this one is parsed and handed over, so our parsing is never what the next
    /// request waits for (memory: two pages).
    pub(super) async fn list_blobs<T: Send + 'static>(
        &self,
        list_prefix: String,
        keep: impl Fn(BlobItem) -> Option<T> + Send + 'static,
        failed: impl Fn(Error) -> T + Send + Sync + 'static,
    ) -> Result<mpsc::Receiver<T>> {
        let options = BlobContainerClientListBlobsOptions {
            include: Some(vec![ListBlobsIncludeItem::Metadata]),
            prefix: (!list_prefix.is_empty()).then(|| list_prefix.clone()),
            ..Default::default()
        };
        let what = format!("container {}", self.container);
        let (account, container) = (self.cfg.account.clone(), self.container.clone());
        let map_err =
            move |e: azure_core::Error| map_sdk_error(&account, &container, &what, "list", e);
        let mut pages = self
            .container_client
            .list_blobs(Some(options))
            .map_err(&map_err)?
            .into_pages();
        let first = pages.try_next().await.map_err(&map_err)?;
        let (tx, rx) = mpsc::channel(1024);
        let failed = Arc::new(failed);
        let broken = failed.clone();
        let produce = |tx: mpsc::Sender<T>| async move {
            let mut page = first;
            while let Some(raw) = page {
                // The pager has read this page's marker already.
                let next = tokio::spawn(async move {
                    let fetched = pages.try_next().await;
                    (pages, fetched)
                });
                let items = match raw.into_items().await {
                    Ok(items) => items,
                    Err(e) => {
                        next.abort();
                        let _ = tx.send(failed(map_err(e))).await;
                        return;
                    }
                };
                for item in items {
                    let Some(kept) = keep(item) else { continue };
                    if tx.send(kept).await.is_err() {
                        next.abort(); // nobody reads on: no page more
                        return;
                    }
                }
                let Some((rest, fetched)) = joined(next).await else {
                    return; // the runtime is shutting down
                };
                pages = rest;
                page = match fetched {
                    Ok(next) => next,
                    Err(e) => {
                        let _ = tx.send(failed(map_err(e))).await;
                        return;
                    }
                };
            }
        };
        spawn_listing(tx, produce, move |e| broken(e));
        Ok(rx)
    }

    /// The blob name of `path` under `root` (relative to the prefix).
    fn read_name(&self, root: &str, path: &str) -> String {
        let rel = match (root.trim_matches('/'), path) {
            ("", path) => path.to_string(),
            (root, path) => join(root, path),
        };
        if rel.is_empty() {
            self.prefix.clone()
        } else {
            self.blob_name(&rel)
        }
    }
}

#[async_trait]
impl Source for BlobDestination {
    fn describe(&self) -> String {
        Destination::describe(self)
    }

    async fn check(&self, _root: &str) -> std::result::Result<(), CheckFailure> {
        connect_and_authenticate(&self.cfg.account).await?;
        within(&self.cfg.account, Step::List, self.check_list()).await
    }

    /// Every blob under `<prefix>/<root>/`, one page at a time, in name order.
    async fn list(&self, root: &str) -> Result<mpsc::Receiver<ListItem>> {
        let base = self.read_name(root, "");
        let list_prefix = if base.is_empty() {
            String::new()
        } else {
            format!("{base}/")
        };
        let at = list_prefix.clone();
        self.list_blobs(
            list_prefix.clone(),
            move |item| to_source_file(item, &list_prefix).map(ListItem::File),
            move |e| ListItem::Error(at.clone(), e),
        )
        .await
    }

    async fn remote_md5(&self, root: &str, path: &str) -> Result<Option<[u8; 16]>> {
        let name = self.read_name(root, path);
        Ok(self.reads().properties(&name).await?.and_then(|p| p.md5))
    }

    async fn stat(&self, root: &str, path: &str) -> Result<Option<(u64, i64)>> {
        let name = self.read_name(root, path);
        Ok(self
            .reads()
            .properties(&name)
            .await?
            .map(|p| (p.size, p.mtime)))
    }

    async fn open(&self, root: &str, path: &str, offset: u64) -> Result<Box<dyn SourceReader>> {
        let name = self.read_name(root, path);
        let reads = self.reads();
        let props = reads
            .properties(&name)
            .await?
            .ok_or_else(|| Error::ObjectNotFound {
                storage: Destination::describe(self),
                path: path.to_string(),
            })?;
        Ok(Box::new(RangedReader {
            storage: Arc::new(reads),
            path: name,
            offset,
            size: props.size,
            md5: props.md5,
        }))
    }
}
