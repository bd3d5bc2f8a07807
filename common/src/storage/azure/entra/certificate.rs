//! Client certificate credentials: a PEM or PKCS12 file holding the certificate and its RSA key.
//! `azure_identity` 1.0 reads only PKCS12 and needs OpenSSL for it; we sign the client
//! assertion (an RS256 JWT, see Entra's "certificate credentials" format) with `ring` and hand
//! it to `azure_identity`'s `ClientAssertionCredential`, which does the token request.
//!
//! Send Certificate Chain puts the certificates in the `x5c` header, for apps that trust a
//! subject name and issuer instead of one registered certificate.

use std::time::{SystemTime, UNIX_EPOCH};

use azure_core::error::ErrorKind;
use azure_core::http::ClientMethodOptions;
use azure_identity::ClientAssertion;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{
    CertificateSource, Context, Principal, OPT_CLIENT_CERTIFICATE_PASSWORD,
    OPT_CLIENT_CERTIFICATE_PATH,
};
use crate::error::Result;

/// How long one assertion is valid; a fresh one is signed for every token request.
const ASSERTION_LIFETIME_SECS: u64 = 600;

pub struct CertificateAssertion {
    key: RsaKeyPair,
    /// DER certificates, leaf first.
    chain: Vec<Vec<u8>>,
    send_chain: bool,
    client_id: String,
    audience: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for CertificateAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAssertion")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A private key and its certificates as DER, whatever the file's format.
struct KeyMaterial {
    key: RsaKeyPair,
    chain: Vec<Vec<u8>>,
}

impl CertificateAssertion {
    pub fn load(ctx: &Context, who: &Principal, source: &CertificateSource) -> Result<Self> {
        let bad = |why: String| {
            ctx.invalid(
                OPT_CLIENT_CERTIFICATE_PATH,
                format!("`{}`: {why}", source.path.display()),
            )
        };
        let bytes = std::fs::read(&source.path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let material =
            if bytes.starts_with(b"-----") || bytes.windows(11).any(|w| w == b"-----BEGIN ") {
                from_pem(&bytes).map_err(bad)?
            } else {
                let password = source.password.as_ref().map(|p| p.expose()).unwrap_or("");
                from_pkcs12(&bytes, password).map_err(|why| {
                    ctx.invalid(
                        OPT_CLIENT_CERTIFICATE_PASSWORD,
                        format!("cannot open `{}`: {why}", source.path.display()),
                    )
                })?
            };
        Ok(CertificateAssertion {
            key: material.key,
            chain: material.chain,
            send_chain: source.send_chain,
            client_id: who.client_id.clone(),
            audience: ctx.token_url(&who.tenant)?.to_string(),
            rng: SystemRandom::new(),
        })
    }

    /// The signed JWT: `base64url(header).base64url(claims).base64url(RS256 signature)`.
    pub fn sign(&self) -> std::result::Result<String, String> {
        let leaf = self.chain.first().ok_or("no certificate")?;
        let thumbprint = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf);
        let mut header = serde_json::json!({
            "alg": "RS256",
            "typ": "JWT",
            "x5t": URL_SAFE_NO_PAD.encode(thumbprint.as_ref()),
        });
        if self.send_chain {
            header["x5c"] = self.chain.iter().map(|c| STANDARD.encode(c)).collect();
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let mut jti = [0u8; 16];
        self.rng.fill(&mut jti).map_err(|_| "no randomness")?;
        let claims = serde_json::json!({
            "aud": self.audience,
            "iss": self.client_id,
            "sub": self.client_id,
            "jti": jti.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "iat": now,
            "nbf": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "RSA signing failed")?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

#[async_trait::async_trait]
impl ClientAssertion for CertificateAssertion {
    async fn secret(
        &self,
        _options: Option<ClientMethodOptions<'_>>,
    ) -> azure_core::Result<String> {
        self.sign().map_err(|why| {
            azure_core::Error::with_message(
                ErrorKind::Credential,
                format!("cannot sign the client assertion: {why}"),
            )
        })
    }
}

fn rsa_key(der: &PrivateKeyDer<'_>) -> std::result::Result<RsaKeyPair, String> {
    let parsed = match der {
        PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
        PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
        _ => {
            return Err(
                "the private key is not RSA; Entra ID client certificates use RSA keys".into(),
            )
        }
    };
    parsed.map_err(|e| format!("the private key is not a usable RSA key ({e})"))
}

fn from_pem(bytes: &[u8]) -> std::result::Result<KeyMaterial, String> {
    if bytes.windows(21).any(|w| w == b"ENCRYPTED PRIVATE KEY") {
        return Err("the PEM private key is encrypted; export it unencrypted, or as PKCS12 with CLIENT_CERTIFICATE_PASSWORD".into());
    }
    let chain = CertificateDer::pem_slice_iter(bytes)
        .map(|c| c.map(|c| c.as_ref().to_vec()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("not a valid PEM file ({e})"))?;
    if chain.is_empty() {
        return Err(
            "holds no CERTIFICATE block; the file must include the certificate and its private key"
                .into(),
        );
    }
    let key = PrivateKeyDer::from_pem_slice(bytes).map_err(|_| {
        "holds no PRIVATE KEY block; the file must include the certificate and its private key"
            .to_string()
    })?;
    Ok(KeyMaterial {
        key: rsa_key(&key)?,
        chain,
    })
}

fn from_pkcs12(bytes: &[u8], password: &str) -> std::result::Result<KeyMaterial, String> {
    let store = p12_keystore::KeyStore::from_pkcs12(
        bytes,
        password,
        p12_keystore::Pkcs12ImportPolicy::Relaxed,
    )
    .map_err(|e| format!("not a PKCS12 file, or the wrong Client Certificate Password ({e})"))?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or("the PKCS12 file holds no private key")?;
    let key = PrivateKeyDer::Pkcs8(chain.key().as_der().to_vec().into());
    let certs: Vec<Vec<u8>> = chain.certs().iter().map(|c| c.as_der().to_vec()).collect();
    if certs.is_empty() {
        return Err("the PKCS12 file holds no certificate for its key".into());
    }
    Ok(KeyMaterial {
        key: rsa_key(&key)?,
        chain: certs,
    })
}
