//! A thin client for the Azure Files REST API (File service), on reqwest, signed with the same
//! `reqsign-azure-storage` signer as Blob. One `async fn` per REST call; every failure goes
//! through one mapping to the seed's error classes. Retries 408/429/5xx with backoff and
//! honours `Retry-After`.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use url::Url;

use super::config::FilesConfig;
use super::wire::{
    base64_encode, error_code, format_time, header_md5, is_retryable_status, parse_time, EntryXml,
    ListXml, RangesXml,
};
use crate::error::{redact_url, Error, ErrorKind, Result};
use crate::storage::azure::error::credential_error;
use crate::storage::azure::error::{classify, Target};
use crate::storage::azure::signing::Authorizer;
use crate::storage::azure::url_path::push_segments;
use crate::storage::azure::AzureAuth;
use crate::storage::checksum::BodySum;
use crate::storage::retry::{self, retry_after};

/// The REST version we speak. Azure accepts it; the test server accepts any dated version.
pub const API_VERSION: &str = "2025-05-05";
/// Azure Files caps one Put Range at 4 MiB.
pub const MAX_RANGE: u64 = 4 * 1024 * 1024;

pub struct FilesClient {
    http: reqwest::Client,
    timeout: Duration,
    authorizer: Authorizer,
    auth: AzureAuth,
    share_url: Url,
    pub account: String,
    pub share: String,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirEntry {
    Directory(String),
    File {
        name: String,
        size: u64,
        /// `LastWriteTime` as Unix seconds, when the service returned it.
        last_write: Option<i64>,
        /// `Last-Modified` (any write, Put Range included) as Unix seconds.
        last_modified: Option<i64>,
    },
}

struct Reply {
    headers: HeaderMap,
    body: Bytes,
}

impl FilesClient {
    pub fn new(cfg: &FilesConfig, share: String) -> Result<Self> {
        let mut share_url = cfg.account.endpoint.clone();
        share_url
            .path_segments_mut()
            .map_err(|_| Error::Internal("endpoint cannot be a base URL".into()))?
            .pop_if_empty();
        push_segments(&mut share_url, [share.as_str()]);
        Ok(FilesClient {
            http: cfg.account.http.clone(),
            timeout: cfg.account.request_timeout,
            authorizer: Authorizer::new(&cfg.account),
            auth: cfg.account.auth.clone(),
            share_url,
            account: cfg.account.account.clone(),
            share,
        })
    }

    /// URL of a share-relative path (`a/b.txt`; empty for the share root).
    pub fn url(&self, path: &str) -> Url {
        let mut url = self.share_url.clone();
        push_segments(&mut url, path.split('/').filter(|s| !s.is_empty()));
        url
    }

    fn target<'a>(&'a self, resource: &'a str, needs: &'static str) -> Target<'a> {
        Target {
            account: &self.account,
            kind: "share",
            name: &self.share,
            resource,
            needs,
        }
    }

    /// Send one request (signed anew for each attempt) and map failures.
    async fn send(
        &self,
        method: Method,
        mut url: Url,
        query: &[(&str, &str)],
        headers: &[(&str, String)],
        body: Bytes,
        resource: &str,
    ) -> Result<Reply> {
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = self
                .send_once(method.clone(), &url, headers, body.clone())
                .await;
            let retry_after = match &outcome {
                Ok((status, h, _)) if is_retryable_status(*status) => Some(retry_after(h)),
                // Any transport failure: refused, reset mid-body, timed out.
                Err(Failure::Transport(_)) => Some(None),
                _ => None,
            };
            if let (Some(hint), true) = (retry_after, retry::REQUESTS.allows_another(attempt)) {
                tokio::time::sleep(retry::REQUESTS.wait(attempt, hint)).await;
                continue;
            }
            let result = self.reply_or_error(outcome, &method, query, resource);
            return match result {
                Err(last) if retry_after.is_some() => Err(retry::REQUESTS.gave_up(attempt, last)),
                other => other,
            };
        }
    }

    /// The reply of a request's last attempt, or its failure in the seed's classes.
    fn reply_or_error(
        &self,
        outcome: std::result::Result<(StatusCode, HeaderMap, Bytes), Failure>,
        method: &Method,
        query: &[(&str, &str)],
        resource: &str,
    ) -> Result<Reply> {
        match outcome {
            Ok((status, headers, body)) if status.is_success() => Ok(Reply { headers, body }),
            Ok((status, headers, body)) => {
                let code = error_code(&headers, &body);
                let needs = match (method.as_str(), query.iter().any(|(_, v)| *v == "list")) {
                    ("GET", true) => "list",
                    ("GET" | "HEAD", false) => "read",
                    ("DELETE", _) => "delete",
                    _ => "write",
                };
                Err(classify(
                    &self.target(resource, needs),
                    status.as_u16(),
                    &code,
                ))
            }
            Err(Failure::Local(e)) => Err(e),
            Err(Failure::Transport(e)) if e.is_timeout() => Err(Error::AzureTimeout {
                endpoint: redact_url(self.share_url.as_str()),
                seconds: self.timeout.as_secs(),
                during: format!("{} `{resource}`", method.as_str()),
            }),
            Err(Failure::Transport(e)) => Err(Error::AzureUnreachable {
                endpoint: redact_url(self.share_url.as_str()),
                detail: e.without_url().to_string(),
            }),
        }
    }

    async fn send_once(
        &self,
        method: Method,
        url: &Url,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> std::result::Result<(StatusCode, HeaderMap, Bytes), Failure> {
        let mut head = http::Request::builder()
            .method(method)
            .uri(url.as_str())
            .header("x-ms-version", API_VERSION)
            .header("content-length", body.len().to_string());
        for (name, value) in headers {
            head = head.header(*name, value.as_str());
        }
        if self.auth.is_entra() {
            // The File service serves OAuth requests only to callers that declare the intent:
            // `backup` grants the data-plane rights of the identity's RBAC role.
            head = head.header("x-ms-file-request-intent", "backup");
        }
        let (mut parts, ()) = head
            .body(())
            .map_err(|e| Failure::Local(Error::Internal(format!("invalid request head: {e}"))))?
            .into_parts();
        self.authorizer
            .authorize(&mut parts)
            .await
            .map_err(|e| Failure::Local(credential_error(&self.account, &self.auth, &e)))?;
        let request = reqwest::Request::try_from(http::Request::from_parts(parts, body))
            .map_err(Failure::Transport)?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(Failure::Transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(Failure::Transport)?;
        Ok((status, headers, body))
    }

    // --- share -------------------------------------------------------------------------------

    /// Get Share Properties: proves the share exists and the credential may read it.
    pub async fn share_properties(&self) -> Result<()> {
        let what = format!("share {}", self.share);
        self.send(
            Method::GET,
            self.url(""),
            &[("restype", "share")],
            &[],
            Bytes::new(),
            &what,
        )
        .await
        .map(|_| ())
    }

    // --- directories -------------------------------------------------------------------------

    /// Create Directory; an existing one is fine.
    pub async fn create_directory(&self, dir: &str) -> Result<()> {
        let q = [("restype", "directory")];
        match self
            .send(Method::PUT, self.url(dir), &q, &[], Bytes::new(), dir)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// List Directories and Files, all pages. `None` when the directory does not exist.
    pub async fn list(&self, dir: &str) -> Result<Option<Vec<DirEntry>>> {
        self.list_prefixed(dir, "").await
    }

    /// The entries of `dir` whose names start with `prefix` (all of them when it is empty).
    pub async fn list_prefixed(&self, dir: &str, prefix: &str) -> Result<Option<Vec<DirEntry>>> {
        let mut entries = Vec::new();
        let mut marker = String::new();
        loop {
            let mut q = vec![
                ("restype", "directory"),
                ("comp", "list"),
                ("include", "Timestamps"),
            ];
            if !marker.is_empty() {
                q.push(("marker", marker.as_str()));
            }
            if !prefix.is_empty() {
                q.push(("prefix", prefix));
            }
            let reply = match self
                .send(Method::GET, self.url(dir), &q, &[], Bytes::new(), dir)
                .await
            {
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let page: ListXml =
                azure_core::xml::from_xml(reply.body.clone()).map_err(|e| Error::Azure {
                    resource: dir.to_string(),
                    detail: format!("unreadable listing: {e}"),
                })?;
            for item in page.entries.map(|e| e.items).unwrap_or_default() {
                entries.push(match item {
                    EntryXml::Directory(d) => DirEntry::Directory(d.name),
                    EntryXml::File(f) => {
                        let props = f.properties.unwrap_or_default();
                        DirEntry::File {
                            name: f.name,
                            size: props.content_length.unwrap_or(0),
                            last_write: props.last_write_time.as_deref().and_then(parse_time),
                            last_modified: props
                                .last_modified
                                .as_deref()
                                .and_then(|t| azure_core::time::parse_rfc7231(t.trim()).ok())
                                .map(|t| t.unix_timestamp()),
                        }
                    }
                });
            }
            match page.next_marker.filter(|m| !m.is_empty()) {
                Some(next) => marker = next,
                None => return Ok(Some(entries)),
            }
        }
    }

    // --- files -------------------------------------------------------------------------------

    /// Create File: a zero-filled file of its final length, with metadata.
    pub async fn create_file(
        &self,
        path: &str,
        size: u64,
        metadata: &[(&str, String)],
    ) -> Result<()> {
        let metadata: Vec<(String, String)> = metadata
            .iter()
            .map(|(k, v)| (format!("x-ms-meta-{k}"), v.clone()))
            .collect();
        let extra: Vec<(&str, String)> = metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        self.create(path, size, extra).await
    }

    /// Create File with the properties a committed file carries (Content-MD5, the source's
    /// modification time) set already: a file written in one range needs no Set File
    /// Properties after it (Put Range keeps both: see `put_range`).
    pub async fn create_file_with_properties(
        &self,
        path: &str,
        size: u64,
        md5: &[u8; 16],
        mtime: i64,
    ) -> Result<()> {
        let extra = vec![
            ("x-ms-content-md5", base64_encode(md5)),
            ("x-ms-file-last-write-time", format_time(mtime)),
        ];
        self.create(path, size, extra).await
    }

    async fn create(&self, path: &str, size: u64, extra: Vec<(&str, String)>) -> Result<()> {
        let mut headers = vec![
            ("x-ms-type", "file".to_string()),
            ("x-ms-content-length", size.to_string()),
        ];
        headers.extend(extra);
        self.send(
            Method::PUT,
            self.url(path),
            &[],
            &headers,
            Bytes::new(),
            path,
        )
        .await
        .map(|_| ())
    }

    /// Put Range: write `data` at `offset` (at most 4 MiB), checked by the service against
    /// `sum` when one is given (computed by the caller, which has it from its single pass).
    pub async fn put_range(
        &self,
        path: &str,
        offset: u64,
        data: Bytes,
        sum: Option<BodySum>,
    ) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let end = offset + data.len() as u64 - 1;
        let mut headers = vec![
            ("x-ms-write", "update".to_string()),
            ("x-ms-range", format!("bytes={offset}-{end}")),
            // The last write time is the source's, set at create or commit, never the upload's.
            ("x-ms-file-last-write-time", "preserve".to_string()),
        ];
        headers.extend(sum.map(|s| s.azure_header()));
        self.send(
            Method::PUT,
            self.url(path),
            &[("comp", "range")],
            &headers,
            data,
            path,
        )
        .await
        .map(|_| ())
    }

    /// Set File Properties: the whole-file MD5 and the source's modification time.
    pub async fn set_properties(
        &self,
        path: &str,
        size: u64,
        md5: &[u8; 16],
        mtime: i64,
    ) -> Result<()> {
        let headers = [
            ("x-ms-content-length", size.to_string()),
            ("x-ms-content-md5", base64_encode(md5)),
            ("x-ms-file-last-write-time", format_time(mtime)),
        ];
        self.send(
            Method::PUT,
            self.url(path),
            &[("comp", "properties")],
            &headers,
            Bytes::new(),
            path,
        )
        .await
        .map(|_| ())
    }

    /// Rename File to `to`, replacing what is there when `replace` (else a 409 if `to` exists).
    pub async fn rename(&self, from: &str, to: &str, replace: bool) -> Result<()> {
        let mut source = self.url(from);
        if let AzureAuth::Sas { token } = &self.auth {
            // A SAS-authorised rename names its source with the same token.
            source.set_query(Some(token.expose()));
        }
        let headers = [
            ("x-ms-file-rename-source", source.to_string()),
            ("x-ms-file-rename-replace-if-exists", replace.to_string()),
        ];
        self.send(
            Method::PUT,
            self.url(to),
            &[("comp", "rename")],
            &headers,
            Bytes::new(),
            to,
        )
        .await
        .map(|_| ())
    }

    /// Delete File; a missing one is fine (`false`).
    pub async fn delete_file(&self, path: &str) -> Result<bool> {
        match self
            .send(Method::DELETE, self.url(path), &[], &[], Bytes::new(), path)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Get File: `len` bytes from `offset`, or the whole file.
    pub async fn read(&self, path: &str, range: Option<(u64, u64)>) -> Result<Bytes> {
        let headers: Vec<(&str, String)> = match range {
            Some((_, 0)) => return Ok(Bytes::new()),
            Some((offset, len)) => {
                vec![("x-ms-range", format!("bytes={offset}-{}", offset + len - 1))]
            }
            None => Vec::new(),
        };
        let reply = self
            .send(
                Method::GET,
                self.url(path),
                &[],
                &headers,
                Bytes::new(),
                path,
            )
            .await?;
        Ok(reply.body)
    }

    /// The MD5 the service computes over the stored bytes `offset..offset+len` (at most 4 MiB;
    /// Get File with `x-ms-range-get-content-md5`), `None` if the file is gone.
    pub async fn range_md5(&self, path: &str, offset: u64, len: u64) -> Result<Option<[u8; 16]>> {
        if len == 0 {
            return Ok(Some(md5_simd::digest(&[])));
        }
        let headers = [
            ("x-ms-range", format!("bytes={offset}-{}", offset + len - 1)),
            ("x-ms-range-get-content-md5", "true".to_string()),
        ];
        let Some(headers) = self.headers_if_exists(Method::GET, path, &headers).await? else {
            return Ok(None);
        };
        Ok(header_md5(&headers))
    }

    /// Get File Properties: the response headers, `None` when the file does not exist.
    async fn head(&self, path: &str) -> Result<Option<HeaderMap>> {
        self.headers_if_exists(Method::HEAD, path, &[]).await
    }

    /// The response headers of a request on a file, `None` when the file does not exist.
    async fn headers_if_exists(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
    ) -> Result<Option<HeaderMap>> {
        match self
            .send(method, self.url(path), &[], headers, Bytes::new(), path)
            .await
        {
            Ok(r) => Ok(Some(r.headers)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The file's length, if it exists.
    pub async fn size(&self, path: &str) -> Result<Option<u64>> {
        Ok(self.head(path).await?.and_then(|h| {
            h.get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
        }))
    }

    /// List Ranges: the byte ranges (inclusive) that hold written data.
    pub async fn written_ranges(&self, path: &str) -> Result<Vec<(u64, u64)>> {
        let reply = self
            .send(
                Method::GET,
                self.url(path),
                &[("comp", "rangelist")],
                &[],
                Bytes::new(),
                path,
            )
            .await?;
        let list: RangesXml =
            azure_core::xml::from_xml(reply.body.clone()).map_err(|e| Error::Azure {
                resource: path.to_string(),
                detail: format!("unreadable range list: {e}"),
            })?;
        Ok(list.ranges.into_iter().map(|r| (r.start, r.end)).collect())
    }

    /// The stored Content-MD5, if the file exists and has one.
    pub async fn content_md5(&self, path: &str) -> Result<Option<[u8; 16]>> {
        Ok(self.head(path).await?.and_then(|h| header_md5(&h)))
    }

    /// The file's length, stored Content-MD5 and LastWriteTime, if it exists.
    pub async fn properties(&self, path: &str) -> Result<Option<FileProperties>> {
        Ok(self.head(path).await?.map(|h| {
            let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
            FileProperties {
                size: text("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                md5: header_md5(&h),
                last_write: text("x-ms-file-last-write-time").and_then(parse_time),
            }
        }))
    }

    /// The file's length and stored Content-MD5, if it exists.
    pub async fn size_and_md5(&self, path: &str) -> Result<Option<(u64, Option<[u8; 16]>)>> {
        Ok(self.head(path).await?.map(|h| {
            let size = h
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            (size, header_md5(&h))
        }))
    }
}

/// What Get File Properties tells about a file.
pub struct FileProperties {
    pub size: u64,
    pub md5: Option<[u8; 16]>,
    /// `LastWriteTime` as Unix seconds (a backup sets it to the source's mtime).
    pub last_write: Option<i64>,
}

#[async_trait::async_trait]
impl crate::storage::read::RangeRead for FilesClient {
    async fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes> {
        self.read(path, Some((offset, len))).await
    }
}

/// Why a request produced no HTTP response.
enum Failure {
    /// Could not reach the service (retryable).
    Transport(reqwest::Error),
    /// A problem on our side (not retryable).
    Local(Error),
}
