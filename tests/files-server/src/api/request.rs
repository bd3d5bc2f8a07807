//! A parsed request and the reply an operation builds.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Uri};
use base64::Engine;
use percent_encoding::percent_decode_str;

use crate::reply::{http_date, iso, ApiError};
use crate::store::Props;

use super::PERMISSION_KEY;

/// A parsed request.
pub(super) struct Req {
    pub(super) method: Method,
    pub(super) share: Option<String>,
    pub(super) path: String,
    pub(super) query: Vec<(String, String)>,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
    /// A Put Range body's digests ([`Req::range_digests`]), computed once the request is
    /// authorized and before the store is locked.
    pub(super) digests: Option<BodyDigests>,
}

/// What the service computes over a written range: its MD5 always (the answer carries it),
/// its CRC-64 when the request gave one to check. Both in base64.
pub(super) struct BodyDigests {
    pub(super) md5: String,
    pub(super) crc64: Option<String>,
}

impl BodyDigests {
    pub(super) fn of(body: &[u8], with_crc64: bool) -> Self {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let crc64 = with_crc64.then(|| {
            let mut crc = crc64fast_nvme::Digest::new();
            crc.write(body);
            // Azure's CRC-64: 8 bytes little-endian.
            b64(&crc.sum64().to_le_bytes())
        });
        BodyDigests {
            // Azure computes this on its side; here it shares the machine with the client being
            // measured, so it takes the fastest MD5 at hand. The Content-MD5 Microsoft's SDK sends
            // with each range (tests/clients/python_sdk.py) is compared with it: the SDK judges it.
            md5: b64(&md5_simd::digest(body)),
            crc64,
        }
    }
}

impl Req {
    /// The account, share and path out of the URL (percent-decoded) and the query.
    pub(super) fn parse(
        account: &str,
        method: Method,
        uri: &Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Self, ApiError> {
        let invalid_uri = || {
            ApiError::new(
                400,
                "InvalidUri",
                "The requested URI does not represent any resource on the server.",
            )
        };
        let query: Vec<(String, String)> =
            url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        let mut segments = uri.path().split('/').filter(|s| !s.is_empty()).map(|s| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| invalid_uri())
        });
        if segments.next().transpose()?.unwrap_or_default() != account {
            return Err(invalid_uri());
        }
        let share = segments.next().transpose()?;
        let path = segments.collect::<Result<Vec<_>, _>>()?.join("/");
        Ok(Req {
            method,
            share,
            path,
            query,
            headers,
            body,
            digests: None,
        })
    }

    /// For a Put Range, its body's digests; `None` for any other request.
    pub(super) fn range_digests(&self) -> Option<BodyDigests> {
        let is_range = self.method == Method::PUT && self.q("comp") == Some("range");
        is_range
            .then(|| BodyDigests::of(&self.body, self.headers.contains_key("x-ms-content-crc64")))
    }

    pub(super) fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn h(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(super) fn metadata(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter_map(|(k, v)| {
                let name = k.as_str().strip_prefix("x-ms-meta-")?;
                Some((name.to_string(), v.to_str().ok()?.to_string()))
            })
            .collect()
    }
}

pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Reply {
    /// The HTTP response (a HEAD's without its body).
    pub(super) fn into_response(self, head: bool) -> Response<Body> {
        let mut r = Response::new(Body::from(if head { Vec::new() } else { self.body }));
        *r.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        for (k, v) in self.headers {
            if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
                r.headers_mut().append(k, v);
            }
        }
        r
    }

    pub(super) fn new(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub(super) fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub(super) fn xml(mut self, body: String) -> Self {
        self.body = body.into_bytes();
        self.header("content-type", "application/xml")
    }

    pub(super) fn props(self, p: &Props) -> Self {
        self.header("etag", p.etag.clone())
            .header("last-modified", http_date(p.last_modified))
            .header("x-ms-file-id", p.file_id.to_string())
            .header("x-ms-file-creation-time", iso(p.created))
            .header("x-ms-file-last-write-time", iso(p.last_write))
            .header("x-ms-file-change-time", iso(p.changed))
            .header("x-ms-file-permission-key", PERMISSION_KEY)
            .header("x-ms-request-server-encrypted", "false")
    }

    pub(super) fn meta(mut self, metadata: &[(String, String)]) -> Self {
        for (k, v) in metadata {
            self = self.header(&format!("x-ms-meta-{k}"), v.clone());
        }
        self
    }
}
