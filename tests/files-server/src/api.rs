//! Routing and the operations: one function per REST call, each returning the service's
//! status, headers and (XML) body, or an [`ApiError`].

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State as AxState};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Uri};
use axum::Router;
use base64::Engine;
use md5::{Digest, Md5};
use percent_encoding::percent_decode_str;

use crate::auth::{self, ResourceType};
use crate::reply::{escape, http_date, iso, parse_iso, ApiError};
use crate::store::{base_name, key, now, parent, File, HttpHeaders, Node, Props, Share};
use crate::State;

const MAX_RANGE: u64 = 4 * 1024 * 1024;
const PERMISSION_KEY: &str = "4066528134148476695*1";

pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(8 * 1024 * 1024))
        .with_state(state)
}

/// A parsed request.
struct Req {
    method: Method,
    share: Option<String>,
    path: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
}

impl Req {
    fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn h(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn metadata(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter_map(|(k, v)| {
                let name = k.as_str().strip_prefix("x-ms-meta-")?;
                Some((name.to_string(), v.to_str().ok()?.to_string()))
            })
            .collect()
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn new(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    fn xml(mut self, body: String) -> Self {
        self.body = body.into_bytes();
        self.header("content-type", "application/xml")
    }

    fn props(self, p: &Props) -> Self {
        self.header("etag", p.etag.clone())
            .header("last-modified", http_date(p.last_modified))
            .header("x-ms-file-id", p.file_id.to_string())
            .header("x-ms-file-creation-time", iso(p.created))
            .header("x-ms-file-last-write-time", iso(p.last_write))
            .header("x-ms-file-change-time", iso(p.changed))
            .header("x-ms-file-permission-key", PERMISSION_KEY)
            .header("x-ms-request-server-encrypted", "false")
    }

    fn meta(mut self, metadata: &[(String, String)]) -> Self {
        for (k, v) in metadata {
            self = self.header(&format!("x-ms-meta-{k}"), v.clone());
        }
        self
    }
}

async fn handle(
    AxState(state): AxState<Arc<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let head = method == Method::HEAD;
    let fault = state.faults.lock().ok().and_then(|mut f| f.pop_front());
    if let Some(status) = fault {
        let mut r = ApiError::new(
            status,
            "ServerBusy",
            "Injected failure: the server is busy.",
        )
        .into_response(head);
        // Both forms HTTP allows, in turn: delay seconds, or the date to come back at.
        let date = state
            .faults_served
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % 2
            == 1;
        let value = if date {
            // Whole seconds: two ahead is at least one from now.
            httpdate::fmt_http_date(
                std::time::SystemTime::now() + std::time::Duration::from_secs(2),
            )
        } else {
            "1".to_string()
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            r.headers_mut().insert("retry-after", v);
        }
        return r;
    }
    let version = headers.get("x-ms-version").cloned();
    let comp = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "comp")
        .map(|(_, v)| v.into_owned());
    if let Ok(mut requests) = state.requests.lock() {
        let restype = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .find(|(k, _)| k == "restype")
            .map(|(_, v)| v.into_owned());
        let mut name = match comp.as_ref().or(restype.as_ref()) {
            Some(what) => format!("{method} {what}"),
            None => method.to_string(),
        };
        // What a write's body was checked by.
        for (header, kind) in [("content-md5", " md5"), ("x-ms-content-crc64", " crc64")] {
            if headers.contains_key(header) {
                name.push_str(kind);
            }
        }
        *requests.entry(name).or_default() += 1;
    }
    let served = serve(&state, method, &uri, headers, body);
    if served.is_ok() && comp.is_some() && take_lost_answer(&state, comp.as_deref()) {
        // The operation happened; its answer is "lost" (a gateway failing on the way back).
        return ApiError::new(503, "ServerBusy", "Injected failure: the answer was lost.")
            .into_response(head);
    }
    let mut response = match served {
        Ok(reply) => {
            let mut r = Response::new(Body::from(if head { Vec::new() } else { reply.body }));
            *r.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
            for (k, v) in reply.headers {
                if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
                    r.headers_mut().append(k, v);
                }
            }
            r
        }
        Err(e) => e.into_response(head),
    };
    let h = response.headers_mut();
    h.insert(
        "x-ms-request-id",
        HeaderValue::from(crate::store::next_id()),
    );
    if let Some(v) = version {
        h.insert("x-ms-version", v);
    }
    if let Ok(date) = HeaderValue::try_from(http_date(std::time::SystemTime::now())) {
        h.insert("date", date);
    }
    response
}

/// Whether the answer of this `comp=` operation is to be lost (once).
fn take_lost_answer(state: &State, comp: Option<&str>) -> bool {
    let Ok(mut lost) = state.lose_answer_of.lock() else {
        return false;
    };
    if lost.as_deref().is_some() && lost.as_deref() == comp {
        *lost = None;
        return true;
    }
    false
}

fn serve(
    state: &State,
    method: Method,
    uri: &Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let raw_path = uri.path();
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let mut segments = raw_path.split('/').filter(|s| !s.is_empty()).map(|s| {
        percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| {
                ApiError::new(
                    400,
                    "InvalidUri",
                    "The requested URI does not represent any resource on the server.",
                )
            })
    });
    let account = segments.next().transpose()?.unwrap_or_default();
    if account != state.account {
        return Err(ApiError::new(
            400,
            "InvalidUri",
            "The requested URI does not represent any resource on the server.",
        ));
    }
    let share = segments.next().transpose()?;
    let path = segments.collect::<Result<Vec<_>, _>>()?.join("/");
    let req = Req {
        method,
        share,
        path,
        query,
        headers,
        body,
    };

    let (permission, resource) = required_access(&req);
    let auth_req = auth::Request {
        method: &req.method,
        raw_path,
        query: &req.query,
        headers: &req.headers,
        account: &state.account,
        share: req.share.as_deref(),
        path: &req.path,
        secure: state.tls,
    };
    let read_only = |oid: &str| state.is_read_only(oid);
    auth::verify(&auth_req, &state.key, permission, resource, &read_only)?;
    if req.q("sig").is_none() && req.h("x-ms-version").is_none() {
        return Err(ApiError::new(
            400,
            "MissingRequiredHeader",
            "An HTTP header that's mandatory for this request is not specified.",
        )
        .with_detail("HeaderName", "x-ms-version"));
    }

    let mut store = state.store.lock().unwrap_or_else(|p| p.into_inner());
    let Some(share_name) = req.share.clone() else {
        return match (req.method.as_str(), req.q("comp")) {
            ("GET", Some("list")) => Ok(list_shares(&store.shares, &state.account)),
            _ => Err(ApiError::not_implemented("this service-level operation")),
        };
    };
    let restype = req.q("restype").map(str::to_string);
    let comp = req.q("comp").map(str::to_string);
    if restype.as_deref() == Some("share") {
        return share_op(&mut store.shares, &share_name, &req, comp.as_deref());
    }
    let share = store.shares.get_mut(&share_name).ok_or_else(|| {
        ApiError::new(404, "ShareNotFound", "The specified share does not exist.")
    })?;
    match (req.method.as_str(), restype.as_deref(), comp.as_deref()) {
        ("PUT", Some("directory"), None) => create_directory(share, &req),
        ("GET" | "HEAD", Some("directory"), None) => directory_properties(share, &req),
        ("GET", Some("directory"), Some("list")) => list(share, &req, &share_name, &state.account),
        ("DELETE", Some("directory"), None) => delete_directory(share, &req),
        ("PUT", Some("directory"), Some("rename")) => {
            rename(share, &req, &state.account, &share_name, true)
        }
        ("PUT", Some("directory"), Some("metadata")) => set_metadata(share, &req),
        ("PUT", None, None) if req.h("x-ms-copy-source").is_some() => {
            Err(ApiError::not_implemented("Copy File"))
        }
        ("PUT", None, None) => create_file(share, &req),
        ("PUT", None, Some("range")) => put_range(share, &req),
        ("PUT", None, Some("properties")) => set_properties(share, &req),
        ("PUT", None, Some("metadata")) => set_metadata(share, &req),
        ("PUT", None, Some("rename")) => rename(share, &req, &state.account, &share_name, false),
        ("GET", None, None) => get_file(share, &req),
        ("GET", None, Some("rangelist")) => list_ranges(share, &req),
        ("HEAD", None, None) => file_properties(share, &req),
        ("DELETE", None, None) => delete_file(share, &req),
        (m, r, c) => Err(ApiError::not_implemented(&format!(
            "{m} with restype={} comp={}",
            r.unwrap_or("-"),
            c.unwrap_or("-")
        ))),
    }
}

/// The SAS permission and account-SAS resource type an operation needs.
fn required_access(req: &Req) -> (char, ResourceType) {
    let comp = req.q("comp");
    let restype = req.q("restype");
    let resource = match (&req.share, restype) {
        (None, _) => ResourceType::Service,
        (Some(_), Some("share")) => ResourceType::Share,
        _ => ResourceType::Object,
    };
    let permission = match (req.method.as_str(), comp) {
        ("GET", Some("list")) => 'l',
        ("GET" | "HEAD", _) => 'r',
        ("DELETE", _) => 'd',
        ("PUT", None) => 'c',
        _ => 'w',
    };
    (permission, resource)
}

fn not_found() -> ApiError {
    ApiError::new(
        404,
        "ResourceNotFound",
        "The specified resource does not exist.",
    )
}

fn parent_not_found() -> ApiError {
    ApiError::new(
        404,
        "ParentNotFound",
        "The specified parent path does not exist.",
    )
}

/// The node at `path`, or the right 404 (a missing ancestor is ParentNotFound).
fn lookup<'a>(share: &'a Share, path: &str) -> Result<&'a Node, ApiError> {
    match share.get(path) {
        Some(n) => Ok(n),
        None if !share.is_dir(parent(path)) => Err(parent_not_found()),
        None => Err(not_found()),
    }
}

fn file_mut<'a>(share: &'a mut Share, path: &str) -> Result<&'a mut File, ApiError> {
    if !share.is_dir(parent(path)) {
        return Err(parent_not_found());
    }
    match share.get_mut(path) {
        Some(Node::File(f)) => Ok(f),
        _ => Err(not_found()),
    }
}

// --- shares and the service ---------------------------------------------------------------

fn share_op(
    shares: &mut std::collections::HashMap<String, Share>,
    name: &str,
    req: &Req,
    comp: Option<&str>,
) -> Result<Reply, ApiError> {
    let missing = || ApiError::new(404, "ShareNotFound", "The specified share does not exist.");
    match (req.method.as_str(), comp) {
        ("PUT", None) => {
            if shares.contains_key(name) {
                return Err(ApiError::new(
                    409,
                    "ShareAlreadyExists",
                    "The specified share already exists.",
                ));
            }
            let quota = req
                .h("x-ms-share-quota")
                .and_then(|q| q.parse().ok())
                .unwrap_or(100);
            let share = Share::new(quota, req.metadata());
            let reply = Reply::new(201)
                .header("etag", share.etag.clone())
                .header("last-modified", http_date(share.created));
            shares.insert(name.to_string(), share);
            Ok(reply)
        }
        ("GET" | "HEAD", None) => {
            let s = shares.get(name).ok_or_else(missing)?;
            Ok(Reply::new(200)
                .header("etag", s.etag.clone())
                .header("last-modified", http_date(s.created))
                .header("x-ms-share-quota", s.quota_gib.to_string())
                .header("x-ms-access-tier", "TransactionOptimized")
                .meta(&s.metadata))
        }
        ("GET", Some("stats")) => {
            let s = shares.get(name).ok_or_else(missing)?;
            Ok(Reply::new(200).xml(format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><ShareStats><ShareUsageBytes>{}</ShareUsageBytes></ShareStats>",
                s.usage()
            )))
        }
        ("PUT", Some("metadata")) => {
            let s = shares.get_mut(name).ok_or_else(missing)?;
            s.metadata = req.metadata();
            Ok(Reply::new(200).header("etag", s.etag.clone()))
        }
        ("DELETE", None) => {
            shares.remove(name).ok_or_else(missing)?;
            Ok(Reply::new(202))
        }
        (m, c) => Err(ApiError::not_implemented(&format!(
            "{m} share comp={}",
            c.unwrap_or("-")
        ))),
    }
}

fn list_shares(shares: &std::collections::HashMap<String, Share>, account: &str) -> Reply {
    let mut names: Vec<&String> = shares.keys().collect();
    names.sort();
    let items: String = names
        .into_iter()
        .map(|n| {
            let s = &shares[n];
            format!(
                "<Share><Name>{}</Name><Properties><Last-Modified>{}</Last-Modified><Etag>{}</Etag><Quota>{}</Quota></Properties></Share>",
                escape(n),
                http_date(s.created),
                escape(&s.etag),
                s.quota_gib
            )
        })
        .collect();
    Reply::new(200).xml(format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults ServiceEndpoint=\"http://127.0.0.1/{account}/\"><Shares>{items}</Shares><NextMarker/></EnumerationResults>"
    ))
}

// --- directories ---------------------------------------------------------------------------

fn create_directory(share: &mut Share, req: &Req) -> Result<Reply, ApiError> {
    if req.path.is_empty() || share.get(&req.path).is_some() {
        return Err(ApiError::new(
            409,
            "ResourceAlreadyExists",
            "The specified resource already exists.",
        ));
    }
    if !share.is_dir(parent(&req.path)) {
        return Err(parent_not_found());
    }
    let props = Props::new(&req.path, req.metadata());
    let reply = Reply::new(201)
        .props(&props)
        .header("x-ms-file-attributes", "Directory");
    share.nodes.insert(key(&req.path), Node::Dir(props));
    Ok(reply)
}

fn directory_properties(share: &Share, req: &Req) -> Result<Reply, ApiError> {
    if req.path.is_empty() {
        let root = Props::new("", Vec::new());
        return Ok(Reply::new(200)
            .props(&root)
            .header("x-ms-file-attributes", "Directory"));
    }
    match lookup(share, &req.path)? {
        Node::Dir(p) => Ok(Reply::new(200)
            .props(p)
            .meta(&p.metadata)
            .header("x-ms-file-attributes", "Directory")),
        Node::File(_) => Err(not_found()),
    }
}

fn delete_directory(share: &mut Share, req: &Req) -> Result<Reply, ApiError> {
    match lookup(share, &req.path)? {
        Node::Dir(_) if !share.children(&req.path).is_empty() => Err(ApiError::new(
            409,
            "DirectoryNotEmpty",
            "The specified directory is not empty.",
        )),
        Node::Dir(_) => {
            share.nodes.remove(&key(&req.path));
            Ok(Reply::new(202))
        }
        Node::File(_) => Err(not_found()),
    }
}

fn list(share: &Share, req: &Req, share_name: &str, account: &str) -> Result<Reply, ApiError> {
    if !share.is_dir(&req.path) {
        return Err(if share.is_dir(parent(&req.path)) {
            not_found()
        } else {
            parent_not_found()
        });
    }
    let prefix = req.q("prefix").unwrap_or("");
    let marker = req.q("marker").unwrap_or("");
    let max: usize = req
        .q("maxresults")
        .and_then(|m| m.parse().ok())
        .filter(|m| *m > 0)
        .unwrap_or(5000);
    let mut children: Vec<&Node> = share
        .children(&req.path)
        .into_iter()
        .filter(|n| {
            base_name(&n.props().name)
                .to_lowercase()
                .starts_with(&prefix.to_lowercase())
        })
        .filter(|n| {
            marker.is_empty() || base_name(&n.props().name).to_lowercase() >= marker.to_lowercase()
        })
        .collect();
    children.sort_by_key(|n| base_name(&n.props().name).to_lowercase());
    let next_marker = children
        .get(max)
        .map(|n| base_name(&n.props().name).to_string())
        .unwrap_or_default();
    let times = |p: &Props| {
        format!(
            "<CreationTime>{}</CreationTime><LastAccessTime>{}</LastAccessTime><LastWriteTime>{}</LastWriteTime><ChangeTime>{}</ChangeTime><Last-Modified>{}</Last-Modified><Etag>{}</Etag>",
            iso(p.created),
            iso(p.last_write),
            iso(p.last_write),
            iso(p.changed),
            http_date(p.last_modified),
            escape(&p.etag)
        )
    };
    let entries: String = children
        .iter()
        .take(max)
        .map(|n| match n {
            Node::Dir(p) => format!(
                "<Directory><Name>{}</Name><FileId>{}</FileId><Properties>{}</Properties><Attributes>Directory</Attributes><PermissionKey>{PERMISSION_KEY}</PermissionKey></Directory>",
                escape(base_name(&p.name)),
                p.file_id,
                times(p)
            ),
            Node::File(f) => format!(
                "<File><Name>{}</Name><FileId>{}</FileId><Properties><Content-Length>{}</Content-Length>{}</Properties><Attributes>Archive</Attributes><PermissionKey>{PERMISSION_KEY}</PermissionKey></File>",
                escape(base_name(&f.props.name)),
                f.props.file_id,
                f.len,
                times(&f.props)
            ),
        })
        .collect();
    let optional = |tag: &str, v: Option<&str>| {
        v.map(|v| format!("<{tag}>{}</{tag}>", escape(v)))
            .unwrap_or_default()
    };
    Ok(Reply::new(200).xml(format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults ServiceEndpoint=\"http://127.0.0.1/{account}/\" ShareName=\"{}\" DirectoryPath=\"{}\">{}{}{}<DirectoryId>0</DirectoryId><Entries>{entries}</Entries><NextMarker>{}</NextMarker></EnumerationResults>",
        escape(share_name),
        escape(&req.path),
        optional("Prefix", req.q("prefix")),
        optional("Marker", req.q("marker")),
        optional("MaxResults", req.q("maxresults")),
        escape(&next_marker)
    )))
}

// --- files ---------------------------------------------------------------------------------

fn create_file(share: &mut Share, req: &Req) -> Result<Reply, ApiError> {
    if req.h("x-ms-type").map(|t| t.eq_ignore_ascii_case("file")) != Some(true) {
        return Err(ApiError::new(
            400,
            "MissingRequiredHeader",
            "An HTTP header that's mandatory for this request is not specified.",
        )
        .with_detail("HeaderName", "x-ms-type"));
    }
    let len: u64 = req
        .h("x-ms-content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            ApiError::new(
                400,
                "InvalidHeaderValue",
                "The value for one of the HTTP headers is not in the correct format.",
            )
            .with_detail("HeaderName", "x-ms-content-length")
        })?;
    if len > 4 * 1024 * 1024 * 1024 * 1024 {
        return Err(
            ApiError::new(400, "InvalidHeaderValue", "The file size exceeds 4 TiB.")
                .with_detail("HeaderName", "x-ms-content-length"),
        );
    }
    if req.path.is_empty() {
        return Err(not_found());
    }
    if !share.is_dir(parent(&req.path)) {
        return Err(parent_not_found());
    }
    if let Some(Node::Dir(_)) = share.get(&req.path) {
        return Err(ApiError::new(
            409,
            "ResourceTypeMismatch",
            "The specified resource type does not match the type of the existing resource.",
        ));
    }
    let mut props = Props::new(&req.path, req.metadata());
    apply_smb_times(&mut props, req)?;
    let file = File {
        props,
        http: http_headers(req, "x-ms-"),
        len,
        data: Vec::new(),
        ranges: Vec::new(),
    };
    let reply = Reply::new(201)
        .props(&file.props)
        .header("x-ms-file-attributes", "Archive");
    share
        .nodes
        .insert(key(&req.path), Node::File(Box::new(file)));
    Ok(reply)
}

/// The HTTP header group of a file from `x-ms-content-*`/`x-ms-cache-control` headers.
fn http_headers(req: &Req, prefix: &str) -> HttpHeaders {
    let h = |n: &str| req.h(&format!("{prefix}{n}")).map(str::to_string);
    HttpHeaders {
        content_type: h("content-type"),
        content_md5: h("content-md5")
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok()),
        content_encoding: h("content-encoding"),
        content_language: h("content-language"),
        cache_control: h("cache-control"),
        content_disposition: h("content-disposition"),
    }
}

fn apply_smb_times(props: &mut Props, req: &Req) -> Result<(), ApiError> {
    for (header, slot) in [
        ("x-ms-file-creation-time", &mut props.created),
        ("x-ms-file-last-write-time", &mut props.last_write),
        ("x-ms-file-change-time", &mut props.changed),
    ] {
        match req.h(header) {
            None | Some("preserve") => {}
            Some("now") => *slot = now(),
            Some(v) => {
                *slot = parse_iso(v).ok_or_else(|| {
                    ApiError::new(
                        400,
                        "InvalidHeaderValue",
                        "The value for one of the HTTP headers is not in the correct format.",
                    )
                    .with_detail("HeaderName", header)
                    .with_detail("HeaderValue", v)
                })?
            }
        }
    }
    Ok(())
}

fn parse_range(req: &Req) -> Result<Option<(u64, Option<u64>)>, ApiError> {
    let Some(text) = req.h("x-ms-range").or_else(|| req.h("range")) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(
            400,
            "InvalidHeaderValue",
            "The value for one of the HTTP headers is not in the correct format.",
        )
        .with_detail("HeaderName", "x-ms-range")
        .with_detail("HeaderValue", text)
    };
    let spec = text.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    let (start, end) = spec.split_once('-').ok_or_else(bad)?;
    let start: u64 = start.parse().map_err(|_| bad())?;
    let end: Option<u64> = if end.is_empty() {
        None
    } else {
        Some(end.parse().map_err(|_| bad())?)
    };
    if end.is_some_and(|e| e < start) {
        return Err(bad());
    }
    Ok(Some((start, end)))
}

fn put_range(share: &mut Share, req: &Req) -> Result<Reply, ApiError> {
    let (start, end) = match parse_range(req)? {
        Some((s, Some(e))) => (s, e),
        _ => {
            return Err(ApiError::new(
                400,
                "MissingRequiredHeader",
                "An HTTP header that's mandatory for this request is not specified.",
            )
            .with_detail("HeaderName", "x-ms-range"))
        }
    };
    let size = end - start + 1;
    let clear = match req.h("x-ms-write") {
        Some("update") => false,
        Some("clear") => true,
        _ => {
            return Err(ApiError::new(
                400,
                "InvalidHeaderValue",
                "x-ms-write must be update or clear.",
            )
            .with_detail("HeaderName", "x-ms-write"))
        }
    };
    if !clear && size > MAX_RANGE {
        return Err(ApiError::new(
            413,
            "RequestBodyTooLarge",
            "The request body is too large and exceeds the maximum permissible limit.",
        )
        .with_detail("MaxLimit", MAX_RANGE.to_string()));
    }
    let expected_body = if clear { 0 } else { size };
    if req.body.len() as u64 != expected_body {
        return Err(ApiError::new(
            400,
            "InvalidHeaderValue",
            "The range size does not match the body length.",
        )
        .with_detail("HeaderName", "Content-Length"));
    }
    // The service computes the range's MD5 once: it checks a given Content-MD5 and answers it.
    let md5 = Md5::digest(&req.body);
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    if req.h("content-md5").is_some_and(|given| given != b64(&md5)) {
        return Err(ApiError::new(400, "Md5Mismatch", "The MD5 value specified in the request did not match with the MD5 value calculated by the server."));
    }
    // x-ms-content-crc64: Azure's CRC-64 of the body, 8 bytes little-endian in base64.
    let crc64 = req.h("x-ms-content-crc64").map(|given| {
        let mut crc = crc64fast_nvme::Digest::new();
        crc.write(&req.body);
        (given.to_string(), b64(&crc.sum64().to_le_bytes()))
    });
    if let Some((given, computed)) = &crc64 {
        if given != computed {
            return Err(ApiError::new(400, "Crc64Mismatch", "The CRC64 value specified in the request did not match with the CRC64 value calculated by the server."));
        }
    }
    // Since 2021-06-08 a write may keep the file's last write time (`preserve`).
    let preserve = match req.h("x-ms-file-last-write-time") {
        None | Some("now") => false,
        Some("preserve") => true,
        Some(other) => {
            return Err(ApiError::new(
                400,
                "InvalidHeaderValue",
                "The value for one of the HTTP headers is not in the correct format.",
            )
            .with_detail("HeaderName", "x-ms-file-last-write-time")
            .with_detail("HeaderValue", other))
        }
    };
    let file = file_mut(share, &req.path)?;
    if end >= file.len {
        return Err(ApiError::new(
            416,
            "InvalidRange",
            "The range specified is invalid for the current size of the resource.",
        ));
    }
    if clear {
        let zeros = vec![0u8; size as usize];
        file.write(start, &zeros);
    } else {
        file.write(start, &req.body);
    }
    file.mark(start, end, clear);
    file.props.touch();
    if !preserve {
        file.props.last_write = now();
    }
    let reply = Reply::new(201)
        .props(&file.props)
        .header("content-md5", b64(&md5));
    Ok(match crc64 {
        Some((_, computed)) => reply.header("x-ms-content-crc64", computed),
        None => reply,
    })
}

fn file_headers(reply: Reply, f: &File) -> Reply {
    let mut r = reply
        .props(&f.props)
        .meta(&f.props.metadata)
        .header("x-ms-type", "File")
        .header("x-ms-file-attributes", "Archive")
        .header(
            "content-type",
            f.http
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
        )
        .header("accept-ranges", "bytes");
    for (name, value) in [
        ("content-encoding", &f.http.content_encoding),
        ("content-language", &f.http.content_language),
        ("cache-control", &f.http.cache_control),
        ("content-disposition", &f.http.content_disposition),
    ] {
        if let Some(v) = value {
            r = r.header(name, v.clone());
        }
    }
    r
}

fn get_file(share: &Share, req: &Req) -> Result<Reply, ApiError> {
    let Node::File(f) = lookup(share, &req.path)? else {
        return Err(not_found());
    };
    let stored_md5 = f
        .http
        .content_md5
        .as_ref()
        .map(|m| base64::engine::general_purpose::STANDARD.encode(m));
    match parse_range(req)? {
        None => {
            let mut r = file_headers(Reply::new(200), f);
            if let Some(m) = stored_md5 {
                r = r.header("content-md5", m);
            }
            r.body = f.read_all();
            Ok(r)
        }
        Some((start, end)) => {
            if f.len == 0 || start >= f.len {
                return Err(ApiError::new(
                    416,
                    "InvalidRange",
                    "The range specified is invalid for the current size of the resource.",
                )
                .with_detail("ContentRange", format!("bytes */{}", f.len)));
            }
            let end = end.unwrap_or(f.len - 1).min(f.len - 1);
            let mut r = file_headers(Reply::new(206), f)
                .header("content-range", format!("bytes {start}-{end}/{}", f.len));
            let data = f.read(start, end);
            if req.h("x-ms-range-get-content-md5") == Some("true") {
                if data.len() as u64 > MAX_RANGE {
                    return Err(ApiError::new(
                        400,
                        "OutOfRangeInput",
                        "x-ms-range-get-content-md5 needs a range of at most 4 MiB.",
                    ));
                }
                r = r.header(
                    "content-md5",
                    base64::engine::general_purpose::STANDARD.encode(Md5::digest(&data)),
                );
            }
            if let Some(m) = stored_md5 {
                r = r.header("x-ms-content-md5", m);
            }
            r.body = data;
            Ok(r)
        }
    }
}

/// List Ranges: the ranges that hold written data (optionally within `x-ms-range`).
fn list_ranges(share: &Share, req: &Req) -> Result<Reply, ApiError> {
    let Node::File(f) = lookup(share, &req.path)? else {
        return Err(not_found());
    };
    let (from, to) = match parse_range(req)? {
        Some((s, e)) => (s, e.unwrap_or(u64::MAX)),
        None => (0, u64::MAX),
    };
    let ranges: String = f
        .ranges
        .iter()
        .filter(|(s, e)| *e >= from && *s <= to)
        .map(|(s, e)| {
            format!(
                "<Range><Start>{}</Start><End>{}</End></Range>",
                (*s).max(from),
                (*e).min(to)
            )
        })
        .collect();
    Ok(Reply::new(200)
        .props(&f.props)
        .header("x-ms-content-length", f.len.to_string())
        .xml(format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Ranges>{ranges}</Ranges>"
        )))
}

fn file_properties(share: &Share, req: &Req) -> Result<Reply, ApiError> {
    let Node::File(f) = lookup(share, &req.path)? else {
        return Err(not_found());
    };
    let mut r = file_headers(Reply::new(200), f).header("content-length", f.len.to_string());
    if let Some(m) = &f.http.content_md5 {
        r = r.header(
            "content-md5",
            base64::engine::general_purpose::STANDARD.encode(m),
        );
    }
    Ok(r)
}

fn set_properties(share: &mut Share, req: &Req) -> Result<Reply, ApiError> {
    let new_len: Option<u64> = match req.h("x-ms-content-length") {
        Some(v) => Some(v.parse().map_err(|_| {
            ApiError::new(400, "InvalidHeaderValue", "bad x-ms-content-length")
                .with_detail("HeaderName", "x-ms-content-length")
        })?),
        None => None,
    };
    let file = file_mut(share, &req.path)?;
    // The HTTP header group is replaced as a whole; SMB properties not given are kept.
    file.http = http_headers(req, "x-ms-");
    if let Some(len) = new_len {
        file.resize(len);
    }
    apply_smb_times(&mut file.props, req)?;
    file.props.touch();
    Ok(Reply::new(200)
        .props(&file.props)
        .header("x-ms-file-attributes", "Archive"))
}

fn set_metadata(share: &mut Share, req: &Req) -> Result<Reply, ApiError> {
    let metadata = req.metadata();
    let node = share.get_mut(&req.path).ok_or_else(not_found)?;
    let props = match node {
        Node::Dir(p) => p,
        Node::File(f) => &mut f.props,
    };
    props.metadata = metadata;
    props.touch();
    Ok(Reply::new(200).header("etag", props.etag.clone()))
}

fn delete_file(share: &mut Share, req: &Req) -> Result<Reply, ApiError> {
    match lookup(share, &req.path)? {
        Node::File(_) => {
            share.nodes.remove(&key(&req.path));
            Ok(Reply::new(202))
        }
        Node::Dir(_) => Err(not_found()),
    }
}

/// Rename File / Rename Directory within the share.
fn rename(
    share: &mut Share,
    req: &Req,
    account: &str,
    share_name: &str,
    directory: bool,
) -> Result<Reply, ApiError> {
    let source_url = req.h("x-ms-file-rename-source").ok_or_else(|| {
        ApiError::new(
            400,
            "MissingRequiredHeader",
            "An HTTP header that's mandatory for this request is not specified.",
        )
        .with_detail("HeaderName", "x-ms-file-rename-source")
    })?;
    let source = source_path(source_url, account, share_name)?;
    let replace = req.h("x-ms-file-rename-replace-if-exists") == Some("true");
    let node = lookup(share, &source)?.clone();
    if matches!(node, Node::Dir(_)) != directory {
        return Err(ApiError::new(
            409,
            "ResourceTypeMismatch",
            "The specified resource type does not match the type of the existing resource.",
        ));
    }
    if !share.is_dir(parent(&req.path)) {
        return Err(parent_not_found());
    }
    if key(&source) == key(&req.path) {
        return Ok(Reply::new(200).props(node.props()));
    }
    match share.get(&req.path) {
        Some(Node::Dir(_)) => {
            return Err(ApiError::new(
                409,
                "ResourceAlreadyExists",
                "The specified resource already exists.",
            ))
        }
        Some(Node::File(_)) if !replace || directory => {
            return Err(ApiError::new(
                409,
                "ResourceAlreadyExists",
                "The specified resource already exists.",
            ))
        }
        _ => {}
    }
    // Move the node and, for a directory, everything under it.
    let old = key(&source);
    let moved: Vec<String> = share
        .nodes
        .keys()
        .filter(|k| **k == old || k.starts_with(&format!("{old}/")))
        .cloned()
        .collect();
    let mut reply = Reply::new(200);
    for k in moved {
        let Some(mut n) = share.nodes.remove(&k) else {
            continue;
        };
        let suffix = &n.props().name[source.len()..];
        let new_name = format!("{}{suffix}", req.path);
        match &mut n {
            Node::Dir(p) => {
                p.name = new_name.clone();
                p.touch();
            }
            Node::File(f) => {
                f.props.name = new_name.clone();
                f.props.touch();
            }
        }
        if k == old {
            reply = reply.props(n.props());
        }
        share.nodes.insert(key(&new_name), n);
    }
    Ok(reply)
}

/// The share-relative path named by an `x-ms-file-rename-source` URL (which may carry a SAS).
fn source_path(text: &str, account: &str, share: &str) -> Result<String, ApiError> {
    let bad = || {
        ApiError::new(
            400,
            "InvalidHeaderValue",
            "The rename source is not a URL of this share.",
        )
        .with_detail("HeaderName", "x-ms-file-rename-source")
    };
    let path = match url::Url::parse(text) {
        Ok(u) => u.path().to_string(),
        Err(_) => text.split('?').next().unwrap_or("").to_string(),
    };
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    match segments.as_slice() {
        [a, s, rest @ ..] if a == account && s == share && !rest.is_empty() => Ok(rest.join("/")),
        [s, rest @ ..] if s == share && !rest.is_empty() => Ok(rest.join("/")),
        _ => Err(bad()),
    }
}
