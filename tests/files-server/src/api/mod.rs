//! Routing: a request is parsed, authorized and dispatched to its operation, one function per
//! REST call (in a module per resource), each returning the service's status, headers and (XML)
//! body, or an [`ApiError`].

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State as AxState};
use axum::http::{HeaderMap, HeaderValue, Method, Response, Uri};
use axum::Router;

use crate::auth::{self, ResourceType};
use crate::reply::{http_date, ApiError};
use crate::store::{parent, File, Node, Share};
use crate::State;

mod directories;
mod files;
mod ranges;
mod rename;
mod request;
mod shares;

use directories::{create_directory, delete_directory, directory_properties, list};
use files::{create_file, delete_file, file_properties, get_file, set_metadata, set_properties};
use ranges::{list_ranges, put_range};
use rename::rename;
use request::{Reply, Req};
use shares::{list_shares, share_op};

/// The largest range one Put Range (or a ranged Get File with its MD5) may cover.
const MAX_RANGE: u64 = 4 * 1024 * 1024;
/// The one security descriptor every file and directory answers with.
const PERMISSION_KEY: &str = "4066528134148476695*1";

pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(8 * 1024 * 1024))
        .with_state(state)
}

async fn handle(
    AxState(state): AxState<Arc<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let head = method == Method::HEAD;
    if let Some(busy) = injected_fault(&state, head) {
        return busy;
    }
    let version = headers.get("x-ms-version").cloned();
    let query_value = |name: &str| {
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let comp = query_value("comp");
    let what = comp.clone().or_else(|| query_value("restype"));
    count_request(&state, &method, what, &headers);
    let served = serve(&state, method, &uri, headers, body);
    if served.is_ok() && comp.is_some() && take_lost_answer(&state, comp.as_deref()) {
        // The operation happened; its answer is "lost" (a gateway failing on the way back).
        return ApiError::new(503, "ServerBusy", "Injected failure: the answer was lost.")
            .into_response(head);
    }
    let mut response = match served {
        Ok(reply) => reply.into_response(head),
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

/// The next injected failure, if one is queued: 503 with a Retry-After.
fn injected_fault(state: &State, head: bool) -> Option<Response<Body>> {
    let status = state.faults.lock().ok().and_then(|mut f| f.pop_front())?;
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
        httpdate::fmt_http_date(std::time::SystemTime::now() + std::time::Duration::from_secs(2))
    } else {
        "1".to_string()
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().insert("retry-after", v);
    }
    Some(r)
}

/// Count the request as `METHOD comp-or-restype`, with ` md5` / ` crc64` when its body was
/// checked by one (what tests read through `FilesServer::take_requests`).
fn count_request(state: &State, method: &Method, what: Option<String>, headers: &HeaderMap) {
    let Ok(mut requests) = state.requests.lock() else {
        return;
    };
    let mut name = match what {
        Some(what) => format!("{method} {what}"),
        None => method.to_string(),
    };
    for (header, kind) in [("content-md5", " md5"), ("x-ms-content-crc64", " crc64")] {
        if headers.contains_key(header) {
            name.push_str(kind);
        }
    }
    *requests.entry(name).or_default() += 1;
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
    let mut req = Req::parse(&state.account, method, uri, headers, body)?;
    authorize(state, &req, uri.path())?;
    // Hashed here, outside the store's lock, so ranges arriving together are hashed together.
    req.digests = req.range_digests();
    dispatch(state, &req)
}

/// SharedKey, SAS or bearer token, and the permission the operation needs; then the version.
fn authorize(state: &State, req: &Req, raw_path: &str) -> Result<(), ApiError> {
    let (permission, resource) = required_access(req);
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
    Ok(())
}

/// The operation a method, `restype` and `comp` name, run under the store's lock.
fn dispatch(state: &State, req: &Req) -> Result<Reply, ApiError> {
    let mut store = state.store.lock().unwrap_or_else(|p| p.into_inner());
    let Some(share_name) = req.share.as_deref() else {
        return match (req.method.as_str(), req.q("comp")) {
            ("GET", Some("list")) => Ok(list_shares(&store.shares, &state.account)),
            _ => Err(ApiError::not_implemented("this service-level operation")),
        };
    };
    let (restype, comp) = (req.q("restype"), req.q("comp"));
    if restype == Some("share") {
        return share_op(&mut store.shares, share_name, req, comp);
    }
    let share = store.shares.get_mut(share_name).ok_or_else(|| {
        ApiError::new(404, "ShareNotFound", "The specified share does not exist.")
    })?;
    let account = state.account.as_str();
    match (req.method.as_str(), restype, comp) {
        ("PUT", Some("directory"), None) => create_directory(share, req),
        ("GET" | "HEAD", Some("directory"), None) => directory_properties(share, req),
        ("GET", Some("directory"), Some("list")) => list(share, req, share_name, account),
        ("DELETE", Some("directory"), None) => delete_directory(share, req),
        ("PUT", Some("directory"), Some("rename")) => rename(share, req, account, share_name, true),
        ("PUT", Some("directory"), Some("metadata")) => set_metadata(share, req),
        ("PUT", None, None) if req.h("x-ms-copy-source").is_some() => {
            Err(ApiError::not_implemented("Copy File"))
        }
        ("PUT", None, None) => create_file(share, req),
        ("PUT", None, Some("range")) => put_range(share, req),
        ("PUT", None, Some("properties")) => set_properties(share, req),
        ("PUT", None, Some("metadata")) => set_metadata(share, req),
        ("PUT", None, Some("rename")) => rename(share, req, account, share_name, false),
        ("GET", None, None) => get_file(share, req),
        ("GET", None, Some("rangelist")) => list_ranges(share, req),
        ("HEAD", None, None) => file_properties(share, req),
        ("DELETE", None, None) => delete_file(share, req),
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

pub(super) fn not_found() -> ApiError {
    ApiError::new(
        404,
        "ResourceNotFound",
        "The specified resource does not exist.",
    )
}

pub(super) fn parent_not_found() -> ApiError {
    ApiError::new(
        404,
        "ParentNotFound",
        "The specified parent path does not exist.",
    )
}

/// The node at `path`, or the right 404 (a missing ancestor is ParentNotFound).
pub(super) fn lookup<'a>(share: &'a Share, path: &str) -> Result<&'a Node, ApiError> {
    match share.get(path) {
        Some(n) => Ok(n),
        None if !share.is_dir(parent(path)) => Err(parent_not_found()),
        None => Err(not_found()),
    }
}

pub(super) fn file_mut<'a>(share: &'a mut Share, path: &str) -> Result<&'a mut File, ApiError> {
    if !share.is_dir(parent(path)) {
        return Err(parent_not_found());
    }
    match share.get_mut(path) {
        Some(Node::File(f)) => Ok(f),
        _ => Err(not_found()),
    }
}
