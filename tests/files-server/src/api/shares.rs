//! The service and its shares: list, create, properties, delete.

use crate::reply::{escape, http_date, ApiError};
use crate::store::Share;

use super::request::{Reply, Req};

pub(super) fn share_op(
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

pub(super) fn list_shares(
    shares: &std::collections::HashMap<String, Share>,
    account: &str,
) -> Reply {
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
