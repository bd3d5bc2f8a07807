//! Request authentication, verified for real: SharedKey (the Blob/Queue/File canonical form),
//! service SAS (share or file), account SAS, and Entra ID bearer tokens (checked the way
//! Azurite checks them: issuer, audience and lifetime, not the signature; plus the File
//! service's own rules: https only, `x-ms-file-request-intent: backup`, and the identity's
//! role). A wrong key, an expired SAS or a missing permission fails the way Azure does.

use axum::http::{HeaderMap, Method};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::reply::ApiError;

pub struct Request<'a> {
    pub method: &'a Method,
    /// The path exactly as sent (still percent-encoded).
    pub raw_path: &'a str,
    /// Decoded query pairs.
    pub query: &'a [(String, String)],
    pub headers: &'a HeaderMap,
    pub account: &'a str,
    pub share: Option<&'a str>,
    /// Decoded share-relative path.
    pub path: &'a str,
    pub secure: bool,
}

/// What kind of resource an operation touches, for account SAS `srt`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ResourceType {
    Service,
    Share,
    Object,
}

pub fn verify(
    req: &Request<'_>,
    key_b64: &str,
    permission: char,
    resource: ResourceType,
    read_only: &dyn Fn(&str) -> bool,
) -> Result<(), ApiError> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(key_b64)
        .map_err(|_| ApiError::internal("the server's account key is not base64"))?;
    if query(req, "sig").is_some() {
        return verify_sas(req, &key, permission, resource);
    }
    let Some(auth) = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    else {
        return Err(ApiError::new(401, "NoAuthenticationInformation", "Server failed to authenticate the request. Please refer to the information in the www-authenticate header."));
    };
    if let Some(token) = auth.strip_prefix("Bearer ") {
        return verify_bearer(req, token, permission, read_only);
    }
    let Some(rest) = auth.strip_prefix("SharedKey ") else {
        return Err(auth_failed(
            "only SharedKey and SAS authorization are supported by this server",
        ));
    };
    let (account, signature) = rest
        .split_once(':')
        .ok_or_else(|| auth_failed("malformed SharedKey header"))?;
    if account != req.account {
        return Err(auth_failed(&format!(
            "the SharedKey account `{account}` is not this account"
        )));
    }
    let string_to_sign = shared_key_string_to_sign(req);
    let expected = sign(&key, &string_to_sign);
    if expected != signature {
        return Err(auth_failed(&format!(
            "The MAC signature found in the HTTP request '{signature}' is not the same as any computed signature. Server used following string to sign: '{}'.",
            string_to_sign.replace('\n', "\\n")
        )));
    }
    Ok(())
}

/// The claims a storage token must carry, as Azurite checks them.
#[derive(serde::Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    nbf: Option<i64>,
    exp: i64,
    oid: Option<String>,
}

fn verify_bearer(
    req: &Request<'_>,
    token: &str,
    permission: char,
    read_only: &dyn Fn(&str) -> bool,
) -> Result<(), ApiError> {
    if !req.secure {
        return Err(auth_failed("bearer tokens are accepted over https only"));
    }
    let claims: Claims = token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or_else(|| {
            invalid_token("the bearer token is not a JWT with issuer, audience and expiry")
        })?;
    if !claims.iss.starts_with("https://sts.windows.net/") {
        return Err(invalid_token(&format!(
            "issuer `{}` is not Entra ID",
            claims.iss
        )));
    }
    if !matches!(
        claims.aud.as_str(),
        "https://storage.azure.com" | "https://storage.azure.com/"
    ) {
        return Err(invalid_token(&format!(
            "audience `{}` is not Azure Storage",
            claims.aud
        )));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if claims.exp <= now || claims.nbf.is_some_and(|nbf| nbf > now + 300) {
        return Err(invalid_token("the token is expired or not yet valid"));
    }
    if req
        .headers
        .get("x-ms-file-request-intent")
        .and_then(|v| v.to_str().ok())
        != Some("backup")
    {
        return Err(ApiError::new(
            400,
            "MissingRequiredHeader",
            "An HTTP header that's mandatory for this request is not specified.",
        )
        .with_detail("HeaderName", "x-ms-file-request-intent"));
    }
    let oid = claims.oid.unwrap_or_default();
    if read_only(&oid) && !matches!(permission, 'r' | 'l') {
        return Err(ApiError::new(
            403,
            "AuthorizationPermissionMismatch",
            "This request is not authorized to perform this operation using this permission.",
        ));
    }
    Ok(())
}

fn invalid_token(detail: &str) -> ApiError {
    ApiError::new(
        401,
        "InvalidAuthenticationInfo",
        "Authentication information is not given in the correct format. Check the value of Authorization header.",
    )
    .with_detail("AuthenticationErrorDetail", detail)
}

fn auth_failed(detail: &str) -> ApiError {
    ApiError::new(
        403,
        "AuthenticationFailed",
        "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
    )
    .with_detail("AuthenticationErrorDetail", detail)
}

fn sign(key: &[u8], text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn header<'a>(req: &'a Request<'_>, name: &str) -> &'a str {
    req.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn query<'a>(req: &'a Request<'_>, name: &str) -> Option<&'a str> {
    req.query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The SharedKey string to sign: the standard header lines, the `x-ms-` headers sorted, then
/// `/account/path-as-sent` and the query parameters sorted by lower-case name.
pub fn shared_key_string_to_sign(req: &Request<'_>) -> String {
    let length = header(req, "content-length");
    let length = if length == "0" { "" } else { length };
    let mut out = format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        req.method.as_str(),
        header(req, "content-encoding"),
        header(req, "content-language"),
        length,
        header(req, "content-md5"),
        header(req, "content-type"),
        header(req, "date"),
        header(req, "if-modified-since"),
        header(req, "if-match"),
        header(req, "if-none-match"),
        header(req, "if-unmodified-since"),
        header(req, "range"),
    );
    let mut ms: Vec<(String, String)> = Vec::new();
    for (name, value) in req.headers {
        let name = name.as_str().to_ascii_lowercase();
        if name.starts_with("x-ms-") {
            let value = value.to_str().unwrap_or("").trim().to_string();
            match ms.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => {
                    v.push(',');
                    v.push_str(&value);
                }
                None => ms.push((name, value)),
            }
        }
    }
    ms.sort();
    for (name, value) in ms {
        out.push_str(&format!("{name}:{value}\n"));
    }
    out.push_str(&format!("/{}{}", req.account, req.raw_path));
    let mut params: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in req.query {
        let k = k.to_ascii_lowercase();
        match params.iter_mut().find(|(n, _)| *n == k) {
            Some((_, vs)) => vs.push(v.clone()),
            None => params.push((k, vec![v.clone()])),
        }
    }
    params.sort();
    for (k, mut vs) in params {
        vs.sort();
        out.push_str(&format!("\n{k}:{}", vs.join(",")));
    }
    out
}

fn verify_sas(
    req: &Request<'_>,
    key: &[u8],
    permission: char,
    resource: ResourceType,
) -> Result<(), ApiError> {
    let q = |n: &str| query(req, n).unwrap_or("");
    let string_to_sign = if query(req, "ss").is_some() {
        account_sas_string(req, resource)?
    } else {
        service_sas_string(req)?
    };
    if sign(key, &string_to_sign) != q("sig") {
        return Err(auth_failed(&format!(
            "Signature did not match. String to sign used was {}",
            string_to_sign.replace('\n', "\\n")
        )));
    }
    check_sas_times(req)?;
    if q("spr") == "https" && !req.secure {
        return Err(ApiError::new(
            403,
            "AuthorizationProtocolMismatch",
            "This request is not authorized to perform this operation using this protocol.",
        ));
    }
    // Creating is allowed by `c` or `w`, as on Azure.
    let permissions = q("sp");
    let allowed =
        permissions.contains(permission) || (permission == 'c' && permissions.contains('w'));
    if !allowed {
        return Err(ApiError::new(
            403,
            "AuthorizationPermissionMismatch",
            "This request is not authorized to perform this operation using this permission.",
        ));
    }
    Ok(())
}

/// An account SAS's string to sign, once it covers the File service and the resource type.
fn account_sas_string(req: &Request<'_>, resource: ResourceType) -> Result<String, ApiError> {
    let q = |n: &str| query(req, n).unwrap_or("");
    if !q("ss").contains('f') {
        return Err(ApiError::new(
            403,
            "AuthorizationServiceMismatch",
            "This request is not authorized to perform this operation using this service.",
        ));
    }
    let needed = match resource {
        ResourceType::Service => 's',
        ResourceType::Share => 'c',
        ResourceType::Object => 'o',
    };
    if !q("srt").contains(needed) {
        return Err(ApiError::new(
            403,
            "AuthorizationResourceTypeMismatch",
            "This request is not authorized to perform this operation using this resource type.",
        ));
    }
    let mut s = format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        req.account,
        q("sp"),
        q("ss"),
        q("srt"),
        q("st"),
        q("se"),
        q("sip"),
        q("spr"),
        q("sv")
    );
    if q("sv") >= "2020-12-06" {
        s.push_str(&format!("{}\n", q("ses")));
    }
    Ok(s)
}

/// A service SAS's string to sign: for the share (`sr=s`) or one file (`sr=f`).
fn service_sas_string(req: &Request<'_>) -> Result<String, ApiError> {
    let q = |n: &str| query(req, n).unwrap_or("");
    let share = req.share.unwrap_or("");
    let canonical = match q("sr") {
        "s" => format!("/file/{}/{share}", req.account),
        // A file SAS names its file: used on another path, the signature does not match.
        "f" => format!("/file/{}/{share}/{}", req.account, req.path),
        other => {
            return Err(auth_failed(&format!(
                "unsupported signed resource sr={other}"
            )));
        }
    };
    Ok(format!(
        "{}\n{}\n{}\n{canonical}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
        q("sp"),
        q("st"),
        q("se"),
        q("si"),
        q("sip"),
        q("spr"),
        q("sv"),
        q("rscc"),
        q("rscd"),
        q("rsce"),
        q("rscl"),
        q("rsct")
    ))
}

/// The signed expiry must be ahead, the signed start (if any) not more than 15 minutes ahead.
fn check_sas_times(req: &Request<'_>) -> Result<(), ApiError> {
    let q = |n: &str| query(req, n).unwrap_or("");
    let now = time::OffsetDateTime::now_utc();
    let parse = |t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
    };
    match parse(q("se")) {
        Some(expiry) if expiry > now => {}
        Some(_) => {
            return Err(auth_failed(&format!(
                "Signed expiry time [{}] must be after signed start time and the current time [{}]",
                q("se"),
                httpdate::fmt_http_date(std::time::SystemTime::now())
            )))
        }
        None => {
            return Err(auth_failed(
                "the signed expiry (se) is missing or malformed",
            ))
        }
    }
    if let Some(start) = query(req, "st").and_then(parse) {
        if start > now + time::Duration::minutes(15) {
            return Err(auth_failed(&format!(
                "Signed start time [{}] is in the future",
                q("st")
            )));
        }
    }
    Ok(())
}

/// Make a service SAS for a share, as the SDKs do (used by tests to get tokens).
pub fn share_sas(
    account: &str,
    key_b64: &str,
    share: &str,
    permissions: &str,
    expiry_unix: i64,
) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(key_b64)
        .unwrap_or_default();
    let expiry = time::OffsetDateTime::from_unix_timestamp(expiry_unix)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .replace_nanosecond(0)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let version = "2025-05-05";
    let string_to_sign =
        format!("{permissions}\n\n{expiry}\n/file/{account}/{share}\n\n\n\n{version}\n\n\n\n\n");
    let sig = sign(&key, &string_to_sign);
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("sv", version)
        .append_pair("sr", "s")
        .append_pair("sp", permissions)
        .append_pair("se", &expiry)
        .append_pair("sig", &sig)
        .finish()
}
