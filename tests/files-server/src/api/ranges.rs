//! Ranges: the `x-ms-range` header, Put Range (checked by MD5 or CRC-64), List Ranges.

use crate::reply::ApiError;
use crate::store::{now, Node, Share};

use super::request::{BodyDigests, Reply, Req};
use super::{file_mut, lookup, not_found, MAX_RANGE};

pub(super) fn parse_range(req: &Req) -> Result<Option<(u64, Option<u64>)>, ApiError> {
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

pub(super) fn put_range(share: &mut Share, req: &Req) -> Result<Reply, ApiError> {
    let (start, end) = written_range(req)?;
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
    let digests = checked_digests(req)?;
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
        .header("content-md5", digests.md5.clone());
    Ok(match &digests.crc64 {
        Some(computed) => reply.header("x-ms-content-crc64", computed.clone()),
        None => reply,
    })
}

/// List Ranges: the ranges that hold written data (optionally within `x-ms-range`).
pub(super) fn list_ranges(share: &Share, req: &Req) -> Result<Reply, ApiError> {
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

/// A Put Range's `x-ms-range`: both ends are required.
fn written_range(req: &Req) -> Result<(u64, u64), ApiError> {
    match parse_range(req)? {
        Some((start, Some(end))) => Ok((start, end)),
        _ => Err(ApiError::new(
            400,
            "MissingRequiredHeader",
            "An HTTP header that's mandatory for this request is not specified.",
        )
        .with_detail("HeaderName", "x-ms-range")),
    }
}

/// The body's digests, once a given Content-MD5 or x-ms-content-crc64 matched them.
fn checked_digests(req: &Req) -> Result<&BodyDigests, ApiError> {
    let digests = req
        .digests
        .as_ref()
        .ok_or_else(|| ApiError::not_implemented("a range written without its digests"))?;
    if req
        .h("content-md5")
        .is_some_and(|given| given != digests.md5)
    {
        return Err(ApiError::new(400, "Md5Mismatch", "The MD5 value specified in the request did not match with the MD5 value calculated by the server."));
    }
    if let (Some(given), Some(computed)) = (req.h("x-ms-content-crc64"), &digests.crc64) {
        if given != computed {
            return Err(ApiError::new(400, "Crc64Mismatch", "The CRC64 value specified in the request did not match with the CRC64 value calculated by the server."));
        }
    }
    Ok(digests)
}
