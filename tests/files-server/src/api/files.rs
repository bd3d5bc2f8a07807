//! Files: create, read, properties, metadata, delete.

use base64::Engine;
use md5::{Digest, Md5};

use crate::reply::{parse_iso, ApiError};
use crate::store::{key, now, parent, File, HttpHeaders, Node, Props, Share};

use super::ranges::parse_range;
use super::request::{Reply, Req};
use super::{file_mut, lookup, not_found, parent_not_found, MAX_RANGE};

pub(super) fn create_file(share: &mut Share, req: &Req) -> Result<Reply, ApiError> {
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
        data: Default::default(),
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
pub(super) fn http_headers(req: &Req, prefix: &str) -> HttpHeaders {
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

pub(super) fn apply_smb_times(props: &mut Props, req: &Req) -> Result<(), ApiError> {
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

pub(super) fn file_headers(reply: Reply, f: &File) -> Reply {
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

pub(super) fn get_file(share: &Share, req: &Req) -> Result<Reply, ApiError> {
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

pub(super) fn file_properties(share: &Share, req: &Req) -> Result<Reply, ApiError> {
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

pub(super) fn set_properties(share: &mut Share, req: &Req) -> Result<Reply, ApiError> {
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

pub(super) fn set_metadata(share: &mut Share, req: &Req) -> Result<Reply, ApiError> {
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

pub(super) fn delete_file(share: &mut Share, req: &Req) -> Result<Reply, ApiError> {
    match lookup(share, &req.path)? {
        Node::File(_) => {
            share.nodes.remove(&key(&req.path));
            Ok(Reply::new(202))
        }
        Node::Dir(_) => Err(not_found()),
    }
}
