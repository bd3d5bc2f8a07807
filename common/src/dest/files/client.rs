//! A thin client for the Azure Files REST API (File service), on reqwest, signed with the same
//! `reqsign-azure-storage` signer as Blob. One `async fn` per REST call; every failure goes
//! through one mapping to the seed's error classes. Retries 408/429/5xx with backoff and
//! honours `Retry-After`.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use md5::{Digest, Md5};
use serde::Deserialize;
use url::Url;

use super::config::FilesConfig;
use crate::dest::azure::error::credential_error;
use crate::dest::azure::error::{classify, Target};
use crate::dest::azure::signing::Authorizer;
use crate::dest::azure::url_path::push_segments;
use crate::dest::azure::{AzureAuth, FIRST_BACKOFF, REQUEST_ATTEMPTS};
use crate::error::{redact_url, Error, Result};

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
                Err(Failure::Transport(e))
                    if e.is_connect() || e.is_timeout() || e.is_request() =>
                {
                    Some(None)
                }
                _ => None,
            };
            if let (Some(wait), true) = (retry_after, attempt < REQUEST_ATTEMPTS) {
                // Full jitter on the exponential step, so retrying writers spread out.
                let backoff = (FIRST_BACKOFF * 2u32.pow(attempt - 1)).mul_f64(jitter());
                tokio::time::sleep(wait.unwrap_or(backoff).min(Duration::from_secs(30))).await;
                continue;
            }
            return match outcome {
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
            };
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
            Err(Error::AzureHttp {
                status: 409, code, ..
            }) if code == "ResourceAlreadyExists" => Ok(()),
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
                Err(Error::AzureHttp {
                    status: 404, code, ..
                }) if code == "ResourceNotFound" || code == "ParentNotFound" => return Ok(None),
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
        let mut headers = vec![
            ("x-ms-type", "file".to_string()),
            ("x-ms-content-length", size.to_string()),
        ];
        let meta_names: Vec<String> = metadata
            .iter()
            .map(|(k, _)| format!("x-ms-meta-{k}"))
            .collect();
        for ((_, v), name) in metadata.iter().zip(&meta_names) {
            headers.push((name.as_str(), v.clone()));
        }
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

    /// Put Range: write `data` at `offset` (at most 4 MiB), checked by its MD5.
    pub async fn put_range(&self, path: &str, offset: u64, data: Bytes) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let end = offset + data.len() as u64 - 1;
        let md5 = base64_encode(&Md5::digest(&data));
        let headers = [
            ("x-ms-write", "update".to_string()),
            ("x-ms-range", format!("bytes={offset}-{end}")),
            ("content-md5", md5),
        ];
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

    /// Delete File; a missing one is fine.
    pub async fn delete_file(&self, path: &str) -> Result<()> {
        match self
            .send(Method::DELETE, self.url(path), &[], &[], Bytes::new(), path)
            .await
        {
            Ok(_) => Ok(()),
            Err(Error::AzureHttp { status: 404, .. }) => Ok(()),
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
            return Ok(Some(Md5::digest([]).into()));
        }
        let headers = [
            ("x-ms-range", format!("bytes={offset}-{}", offset + len - 1)),
            ("x-ms-range-get-content-md5", "true".to_string()),
        ];
        let reply = match self
            .send(
                Method::GET,
                self.url(path),
                &[],
                &headers,
                Bytes::new(),
                path,
            )
            .await
        {
            Ok(r) => r,
            Err(Error::AzureHttp { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(header_md5(&reply.headers))
    }

    /// Get File Properties: the response headers, `None` when the file does not exist.
    async fn head(&self, path: &str) -> Result<Option<HeaderMap>> {
        match self
            .send(Method::HEAD, self.url(path), &[], &[], Bytes::new(), path)
            .await
        {
            Ok(r) => Ok(Some(r.headers)),
            Err(Error::AzureHttp { status: 404, .. }) => Ok(None),
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

/// Why a request produced no HTTP response.
enum Failure {
    /// Could not reach the service (retryable).
    Transport(reqwest::Error),
    /// A problem on our side (not retryable).
    Local(Error),
}

fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// A factor in [0.5, 1.5) from the clock's low bits: enough to spread retries, no RNG needed.
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    0.5 + f64::from(nanos % 1000) / 1000.0
}

/// `Retry-After` in either form the HTTP standard allows: delay seconds or an HTTP-date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers
        .get(HeaderName::from_static("retry-after"))
        .and_then(|v: &HeaderValue| v.to_str().ok())?
        .trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = azure_core::time::parse_rfc7231(text).ok()?;
    let wait = at - azure_core::time::OffsetDateTime::now_utc();
    Some(Duration::from_secs_f64(wait.as_seconds_f64().max(0.0)))
}

/// The service's error code: `x-ms-error-code` (HEAD has no body), else `<Code>` in the body.
fn error_code(headers: &HeaderMap, body: &[u8]) -> String {
    if let Some(code) = headers.get("x-ms-error-code").and_then(|v| v.to_str().ok()) {
        return code.to_string();
    }
    let text = String::from_utf8_lossy(body);
    text.split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.trim().to_string())
        .unwrap_or_default()
}

fn header_md5(headers: &HeaderMap) -> Option<[u8; 16]> {
    headers
        .get("content-md5")
        .and_then(|v| v.to_str().ok())
        .and_then(base64_decode)
        .and_then(|b| b.try_into().ok())
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
}

/// `x-ms-file-*-time` format: ISO 8601 with seven fractional digits.
pub fn format_time(unix_secs: i64) -> String {
    let t = azure_core::time::OffsetDateTime::from_unix_timestamp(unix_secs)
        .unwrap_or(azure_core::time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.0000000Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub fn parse_time(text: &str) -> Option<i64> {
    azure_core::time::parse_rfc3339(text.trim())
        .ok()
        .map(|t| t.unix_timestamp())
}

#[derive(Deserialize)]
struct RangesXml {
    #[serde(rename = "Range", default)]
    ranges: Vec<RangeXml>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RangeXml {
    start: u64,
    end: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListXml {
    entries: Option<EntriesXml>,
    next_marker: Option<String>,
}

#[derive(Deserialize)]
struct EntriesXml {
    #[serde(rename = "$value", default)]
    items: Vec<EntryXml>,
}

#[derive(Deserialize)]
enum EntryXml {
    Directory(DirXml),
    File(FileXml),
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DirXml {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FileXml {
    name: String,
    properties: Option<FilePropsXml>,
}

#[derive(Deserialize, Default)]
struct FilePropsXml {
    #[serde(rename = "Content-Length")]
    content_length: Option<u64>,
    #[serde(rename = "LastWriteTime")]
    last_write_time: Option<String>,
    #[serde(rename = "Last-Modified")]
    last_modified: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_in_the_seven_digit_format() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00.0000000Z");
        assert_eq!(format_time(1_700_000_000), "2023-11-14T22:13:20.0000000Z");
        assert_eq!(
            parse_time("2023-11-14T22:13:20.0000000Z"),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn listing_xml_is_read() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="x" ShareName="s" DirectoryPath="">
          <Entries><Directory><Name>sub dir</Name><Properties/></Directory>
          <File><Name>a &amp; b.txt</Name><Properties><Content-Length>5</Content-Length><LastWriteTime>2023-11-14T22:13:20.0000000Z</LastWriteTime></Properties></File>
          </Entries><NextMarker/></EnumerationResults>"#;
        let page: ListXml = azure_core::xml::from_xml(Bytes::from(xml)).unwrap();
        let items = page.entries.unwrap().items;
        assert!(matches!(&items[0], EntryXml::Directory(d) if d.name == "sub dir"));
        match &items[1] {
            EntryXml::File(f) => {
                assert_eq!(f.name, "a & b.txt");
                let p = f.properties.as_ref().unwrap();
                assert_eq!(p.content_length, Some(5));
                assert_eq!(
                    p.last_write_time.as_deref().and_then(parse_time),
                    Some(1_700_000_000)
                );
            }
            _ => panic!("not a file"),
        }
        assert_eq!(page.next_marker.filter(|m| !m.is_empty()), None);
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        let later =
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::seconds(5);
        let date = azure_core::time::to_rfc7231(&later);
        h.insert("retry-after", HeaderValue::from_str(&date).unwrap());
        let wait = retry_after(&h).unwrap();
        assert!(
            wait > Duration::from_secs(3) && wait <= Duration::from_secs(5),
            "{wait:?}"
        );
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }

    #[test]
    fn error_code_from_header_or_body() {
        let mut h = HeaderMap::new();
        assert_eq!(
            error_code(&h, b"<Error><Code>ShareNotFound</Code></Error>"),
            "ShareNotFound"
        );
        h.insert(
            "x-ms-error-code",
            HeaderValue::from_static("ParentNotFound"),
        );
        assert_eq!(error_code(&h, b""), "ParentNotFound");
    }
}
