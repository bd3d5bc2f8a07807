//! A local identity endpoint over https: it plays the Entra ID token endpoint
//! (`/{tenant}/oauth2/v2.0/token`: client secret, client assertion, password grants) and the
//! Azure Functions / App Service managed identity endpoint (`/msi/token`), and, on a plain-http
//! port that clients reach as their HTTP proxy, the VM instance metadata endpoint (requests for
//! `http://169.254.169.254/metadata/identity/oauth2/token`). It checks what it is
//! sent for real (secrets, passwords, the RS256 signature of a client assertion against the
//! registered certificate, the identity header, the requested scope) and answers in Entra's
//! format, errors included. Its tokens carry what Azurite and the Files server check: issuer
//! `https://sts.windows.net/…`, audience `https://storage.azure.com`, lifetime, and `oid`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use files_server::serve::Background;
use serde_json::{json, Value};

use crate::pki::Pki;

pub const TENANT: &str = "7e57e57e-0000-4000-8000-00000000ba5e";
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
/// The `IDENTITY_HEADER` value Functions would set.
pub const IDENTITY_HEADER: &str = "identity-header-for-tests";

#[derive(Clone)]
pub enum AppCredential {
    Secret(String),
    /// RS256 assertions signed by this certificate's key. With `by_subject`, the app trusts a
    /// subject name and issuer, so the assertion must carry the chain (`x5c`).
    Certificate {
        by_subject: bool,
    },
    /// Workload identity federation: the assertion is this token (a Kubernetes service account
    /// token in real life), taken as is.
    Federated(String),
}

/// One token the endpoint issued (for tests to assert who got what, and how).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub kind: &'static str,
    pub principal: String,
    pub oid: String,
    pub sent_x5c: bool,
}

#[derive(Default)]
struct Directory {
    apps: HashMap<String, (AppCredential, String)>,
    users: HashMap<String, (String, String)>,
    /// `system`, `client_id=…`, `object_id=…`, `mi_res_id=…` → oid.
    identities: HashMap<String, String>,
    grants: Vec<Grant>,
}

struct Shared {
    port: u16,
    directory: Mutex<Directory>,
    cert_public_key: Vec<u8>,
    cert_thumbprint: String,
    cert_der: Vec<u8>,
}

pub struct Identity {
    shared: Arc<Shared>,
    imds_port: u16,
    _server: Background,
    _imds: Background,
}

impl Identity {
    pub fn start() -> Identity {
        let pki = Pki::get();
        let acceptor = files_server::tls::acceptor(&pki.server_cert(), &pki.server_key())
            .expect("identity TLS");
        let port = crate::free_port();
        let cert_der = pki.client_cert_der();
        let thumbprint = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &cert_der);
        let shared = Arc::new(Shared {
            port,
            directory: Mutex::new(Directory::default()),
            cert_public_key: pki.client_public_key(),
            cert_thumbprint: URL_SAFE_NO_PAD.encode(thumbprint.as_ref()),
            cert_der,
        });
        let app = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/msi/token", get(msi))
            .with_state(shared.clone());
        let addr = format!("127.0.0.1:{port}").parse().expect("addr");
        let server =
            files_server::serve::spawn("identity", addr, app, Some(acceptor)).expect("identity");
        let imds = Router::new()
            .route("/metadata/identity/oauth2/token", get(imds))
            .with_state(shared.clone());
        let imds =
            files_server::serve::spawn("imds", "127.0.0.1:0".parse().expect("addr"), imds, None)
                .expect("imds");
        Identity {
            shared,
            imds_port: imds.addr.port(),
            _server: server,
            _imds: imds,
        }
    }

    /// An HTTP proxy (`HTTP_PROXY`) through which `http://169.254.169.254/…` reaches the
    /// instance metadata endpoint served here.
    pub fn imds_proxy(&self) -> String {
        format!("http://127.0.0.1:{}", self.imds_port)
    }

    /// The authority host (`AUTHORITY_HOST`).
    pub fn authority(&self) -> String {
        format!("https://127.0.0.1:{}", self.shared.port)
    }

    /// `IDENTITY_ENDPOINT` for the managed identity protocol.
    pub fn msi_endpoint(&self) -> String {
        format!("{}/msi/token", self.authority())
    }

    fn directory(&self) -> std::sync::MutexGuard<'_, Directory> {
        self.shared
            .directory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Register an app; returns its object id (what storage servers see as `oid`).
    pub fn add_app(&self, client_id: &str, credential: AppCredential) -> String {
        let oid = format!("oid-app-{client_id}");
        self.directory()
            .apps
            .insert(client_id.into(), (credential, oid.clone()));
        oid
    }

    pub fn add_user(&self, username: &str, password: &str) -> String {
        let oid = format!("oid-user-{username}");
        self.directory()
            .users
            .insert(username.into(), (password.into(), oid.clone()));
        oid
    }

    /// Assign a managed identity: `system`, or `client_id=…`, `object_id=…`, `mi_res_id=…`.
    pub fn add_identity(&self, selector: &str) -> String {
        let oid = format!("oid-msi-{}", selector.replace(['=', '/'], "-"));
        self.directory()
            .identities
            .insert(selector.into(), oid.clone());
        oid
    }

    pub fn grants(&self) -> Vec<Grant> {
        self.directory().grants.clone()
    }
}

fn entra_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description}\r\nTrace ID: 00000000-test\r\nTimestamp: 2026-11-23"),
        "error_codes": [code],
    });
    json_reply(status, body)
}

fn json_reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A storage token: unsigned in substance (nobody checks the signature), right in its claims.
fn storage_token(oid: &str) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "typ": "JWT"}).to_string());
    let claims = URL_SAFE_NO_PAD.encode(
        json!({
            "iss": format!("https://sts.windows.net/{TENANT}/"),
            "aud": "https://storage.azure.com",
            "iat": now, "nbf": now, "exp": now + 3600,
            "oid": oid, "tid": TENANT,
        })
        .to_string(),
    );
    format!("{header}.{claims}.{}", URL_SAFE_NO_PAD.encode("not-signed"))
}

async fn token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    if tenant != TENANT && tenant != "organizations" {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    }
    if field("scope") != STORAGE_SCOPE {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            "The provided value for the input parameter 'scope' is not valid.",
        );
    }
    let client_id = field("client_id");
    let mut dir = shared.directory.lock().unwrap_or_else(|p| p.into_inner());
    let (kind, principal, oid, sent_x5c) = match field("grant_type").as_str() {
        "password" => {
            let username = field("username");
            match dir.users.get(&username) {
                Some((password, oid)) if *password == field("password") => {
                    ("password", username, oid.clone(), false)
                }
                _ => {
                    return entra_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        50126,
                        "Error validating credentials due to invalid username or password.",
                    )
                }
            }
        }
        "client_credentials" => {
            let Some((credential, oid)) = dir.apps.get(&client_id).cloned() else {
                return entra_error(
                    StatusCode::BAD_REQUEST,
                    "unauthorized_client",
                    700016,
                    &format!(
                        "Application with identifier '{client_id}' was not found in the directory."
                    ),
                );
            };
            match credential {
                AppCredential::Secret(secret) => {
                    if field("client_secret") != secret {
                        return entra_error(
                            StatusCode::UNAUTHORIZED,
                            "invalid_client",
                            7000215,
                            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                        );
                    }
                    ("client_secret", client_id, oid, false)
                }
                AppCredential::Federated(expected) => {
                    if form.get("client_assertion") != Some(&expected) {
                        return entra_error(
                            StatusCode::UNAUTHORIZED,
                            "invalid_client",
                            700211,
                            "No matching federated identity record found for presented assertion.",
                        );
                    }
                    ("federated", client_id, oid, false)
                }
                AppCredential::Certificate { by_subject } => {
                    let expected_aud = format!(
                        "https://127.0.0.1:{}/{tenant}/oauth2/v2.0/token",
                        shared.port
                    );
                    match check_assertion(&shared, &form, &client_id, &expected_aud, by_subject) {
                        Ok(sent_x5c) => ("client_assertion", client_id, oid, sent_x5c),
                        Err(why) => {
                            return entra_error(
                                StatusCode::UNAUTHORIZED,
                                "invalid_client",
                                700027,
                                &format!("Client assertion failed signature validation: {why}"),
                            )
                        }
                    }
                }
            }
        }
        other => {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{other}'."),
            )
        }
    };
    dir.grants.push(Grant {
        kind,
        principal,
        oid: oid.clone(),
        sent_x5c,
    });
    json_reply(
        StatusCode::OK,
        json!({
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": storage_token(&oid),
        }),
    )
}

/// Verify a client assertion for real; returns whether it carried `x5c`.
fn check_assertion(
    shared: &Shared,
    form: &HashMap<String, String>,
    client_id: &str,
    expected_aud: &str,
    by_subject: bool,
) -> Result<bool, String> {
    if form.get("client_assertion_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return Err("client_assertion_type is not jwt-bearer".into());
    }
    let jwt = form.get("client_assertion").ok_or("no client_assertion")?;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err("the assertion is not a JWT".into());
    };
    let decode = |p: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD.decode(p).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    let (header, claims) = (decode(header)?, decode(claims)?);
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| e.to_string())?;
    let signed = format!("{}.{}", parts[0], parts[1]);
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &shared.cert_public_key,
    )
    .verify(signed.as_bytes(), &signature)
    .map_err(|_| "the signature does not verify with the registered certificate".to_string())?;
    if header["alg"] != "RS256" || header["x5t"] != shared.cert_thumbprint.as_str() {
        return Err("x5t does not name the registered certificate".into());
    }
    if claims["aud"] != expected_aud {
        return Err(format!("aud {} is not {expected_aud}", claims["aud"]));
    }
    if claims["iss"] != client_id || claims["sub"] != client_id {
        return Err("iss and sub must be the client id".into());
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if claims["exp"].as_i64().unwrap_or(0) <= now {
        return Err("the assertion is expired".into());
    }
    let x5c = header["x5c"].as_array();
    if let Some(chain) = x5c {
        let leaf = chain.first().and_then(Value::as_str).unwrap_or_default();
        if STANDARD.decode(leaf).ok().as_deref() != Some(shared.cert_der.as_slice()) {
            return Err("x5c does not start with the signing certificate".into());
        }
    } else if by_subject {
        return Err("the app trusts subject name and issuer, but the assertion has no x5c".into());
    }
    Ok(x5c.is_some())
}

/// The App Service / Functions protocol: `x-identity-header`, user-assigned ids as `client_id`,
/// `object_id` or `mi_res_id`.
async fn msi(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    let secret = headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok());
    managed_identity(&shared, &uri, secret == Some(IDENTITY_HEADER), "mi_res_id")
}

/// The VM instance metadata protocol: `Metadata: true`, resource ids as `msi_res_id`.
async fn imds(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    let metadata = headers.get("metadata").and_then(|v| v.to_str().ok());
    managed_identity(&shared, &uri, metadata == Some("true"), "msi_res_id")
}

fn managed_identity(shared: &Shared, uri: &Uri, header_ok: bool, resource_param: &str) -> Response {
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let fail = |status: StatusCode, message: &str| {
        json_reply(
            status,
            json!({"statusCode": status.as_u16(), "message": message}),
        )
    };
    if !header_ok {
        return fail(
            StatusCode::UNAUTHORIZED,
            "The identity header is missing or wrong.",
        );
    }
    if query.get("api-version").map(String::as_str) != Some("2019-08-01")
        || query.get("resource").map(String::as_str) != Some("https://storage.azure.com")
    {
        return fail(
            StatusCode::BAD_REQUEST,
            "api-version 2019-08-01 and resource https://storage.azure.com are expected.",
        );
    }
    let selector = ["client_id", "object_id", resource_param]
        .iter()
        .find_map(|k| query.get(*k).map(|v| format!("{k}={v}")))
        .unwrap_or_else(|| "system".into());
    let mut dir = shared.directory.lock().unwrap_or_else(|p| p.into_inner());
    let Some(oid) = dir.identities.get(&selector).cloned() else {
        return fail(
            StatusCode::BAD_REQUEST,
            &format!("No managed identity found for {selector}."),
        );
    };
    dir.grants.push(Grant {
        kind: "managed_identity",
        principal: selector,
        oid: oid.clone(),
        sent_x5c: false,
    });
    let expires_on = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    json_reply(
        StatusCode::OK,
        json!({
            "access_token": storage_token(&oid),
            "expires_on": expires_on.to_string(),
            "resource": "https://storage.azure.com",
            "token_type": "Bearer",
            "client_id": "msi-client",
        }),
    )
}
