//! Rename File and Rename Directory within a share.

use percent_encoding::percent_decode_str;

use crate::reply::ApiError;
use crate::store::{key, parent, Node, Share};

use super::request::{Reply, Req};
use super::{lookup, parent_not_found};

/// Rename File / Rename Directory within the share.
pub(super) fn rename(
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
pub(super) fn source_path(text: &str, account: &str, share: &str) -> Result<String, ApiError> {
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
