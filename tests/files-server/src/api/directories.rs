//! Directories: create, properties, delete, list.

use crate::reply::{escape, http_date, iso, ApiError};
use crate::store::{base_name, key, parent, Node, Props, Share};

use super::request::{Reply, Req};
use super::{lookup, not_found, parent_not_found, PERMISSION_KEY};

pub(super) fn create_directory(share: &mut Share, req: &Req) -> Result<Reply, ApiError> {
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

pub(super) fn directory_properties(share: &Share, req: &Req) -> Result<Reply, ApiError> {
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

pub(super) fn delete_directory(share: &mut Share, req: &Req) -> Result<Reply, ApiError> {
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

pub(super) fn list(
    share: &Share,
    req: &Req,
    share_name: &str,
    account: &str,
) -> Result<Reply, ApiError> {
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
