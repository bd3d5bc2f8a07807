//! SFTP storage options, with the seed's names (`SSH Host`, `SSH Username`, …) as env options.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Profile, Secret};
use crate::error::Result;

#[derive(Debug, Clone)]
pub struct SftpConfig {
    pub storage: String,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: Option<Secret>,
    /// PEM-Encoded Private Key, pasted inline.
    pub private_key: Option<Secret>,
    pub private_key_file: Option<PathBuf>,
    pub private_key_passphrase: Option<Secret>,
    /// SSH Public Certificate, inline (an OpenSSH certificate for the private key).
    pub public_certificate: Option<String>,
    /// Public Key File: path to the certificate (`id_ed25519-cert.pub`).
    pub public_key_file: Option<PathBuf>,
    /// Use SSH Agent: authenticate with the keys of the agent at `agent_socket`.
    pub use_agent: bool,
    pub agent_socket: Option<PathBuf>,
    /// Allow Insecure Ciphers: also offer CBC ciphers, SHA-1 key exchanges and hmac-sha1.
    pub allow_insecure_ciphers: bool,
    /// Disable Hash Check: never run remote commands (`md5sum`) to hash files.
    pub disable_hash_check: bool,
    pub host_key: HostKeyPolicy,
    pub connect_timeout: Duration,
    /// How long one read may wait for data before it fails and is retried (`SSH_READ_TIMEOUT`).
    pub read_timeout: Duration,
}

/// How the server's host key is verified. There is no silent trust-on-first-use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// The key must match an entry for host:port in this OpenSSH known_hosts file.
    KnownHosts(PathBuf),
    /// The key's SHA256 fingerprint must be this one (`SHA256:…`, as `ssh-keygen -lf` prints).
    Fingerprint(String),
    /// Explicit opt-out (`SSH_SKIP_HOST_KEY_CHECK=true`): any key is accepted and a warning logged.
    Skip,
}

pub const OPT_HOST: &str = "SSH_HOST";
pub const OPT_PORT: &str = "SSH_PORT";
pub const OPT_USERNAME: &str = "SSH_USERNAME";
pub const OPT_PASSWORD: &str = "SSH_PASSWORD";
pub const OPT_PRIVATE_KEY: &str = "SSH_PRIVATE_KEY";
pub const OPT_PRIVATE_KEY_FILE: &str = "SSH_PRIVATE_KEY_FILE";
pub const OPT_PRIVATE_KEY_PASSPHRASE: &str = "SSH_PRIVATE_KEY_PASSPHRASE";
pub const OPT_KNOWN_HOSTS_FILE: &str = "SSH_KNOWN_HOSTS_FILE";
pub const OPT_HOST_KEY_FINGERPRINT: &str = "SSH_HOST_KEY_FINGERPRINT";
pub const OPT_SKIP_HOST_KEY_CHECK: &str = "SSH_SKIP_HOST_KEY_CHECK";
pub const OPT_CONNECT_TIMEOUT: &str = "SSH_CONNECT_TIMEOUT";
pub const OPT_READ_TIMEOUT: &str = "SSH_READ_TIMEOUT";
pub const OPT_PUBLIC_CERTIFICATE: &str = "SSH_PUBLIC_CERTIFICATE";
pub const OPT_PUBLIC_KEY_FILE: &str = "SSH_PUBLIC_KEY_FILE";
pub const OPT_USE_AGENT: &str = "SSH_USE_AGENT";
pub const OPT_AGENT_SOCKET: &str = "SSH_AGENT_SOCKET";
pub const OPT_ALLOW_INSECURE_CIPHERS: &str = "SSH_ALLOW_INSECURE_CIPHERS";
pub const OPT_DISABLE_HASH_CHECK: &str = "SSH_DISABLE_HASH_CHECK";

impl SftpConfig {
    pub fn from_profile(p: &Profile<'_>) -> Result<Self> {
        let host = p.require(OPT_HOST)?;
        let port = p.parse::<u16>(OPT_PORT)?.unwrap_or(22);
        let username = p.require(OPT_USERNAME)?;
        let password = p.secret(OPT_PASSWORD);
        let private_key = p.secret(OPT_PRIVATE_KEY);
        let private_key_file = p.get(OPT_PRIVATE_KEY_FILE).map(PathBuf::from);
        let use_agent = p.flag(OPT_USE_AGENT)?;
        let agent_socket = p
            .get(OPT_AGENT_SOCKET)
            .or_else(|| std::env::var("SSH_AUTH_SOCK").ok())
            .map(PathBuf::from);
        if use_agent && agent_socket.is_none() {
            return Err(p.invalid(
                OPT_USE_AGENT,
                format!(
                    "is set but no agent is reachable: SSH_AUTH_SOCK is not set (or set {})",
                    p.var_name(OPT_AGENT_SOCKET)
                ),
            ));
        }
        if password.is_none() && private_key.is_none() && private_key_file.is_none() && !use_agent {
            return Err(p.invalid(
                OPT_PASSWORD,
                format!(
                    "or a key is required: set {}, {}, {} or {}=true",
                    p.var_name(OPT_PASSWORD),
                    p.var_name(OPT_PRIVATE_KEY),
                    p.var_name(OPT_PRIVATE_KEY_FILE),
                    p.var_name(OPT_USE_AGENT)
                ),
            ));
        }
        let public_certificate = p.get(OPT_PUBLIC_CERTIFICATE);
        let public_key_file = p.get(OPT_PUBLIC_KEY_FILE).map(PathBuf::from);
        if (public_certificate.is_some() || public_key_file.is_some())
            && private_key.is_none()
            && private_key_file.is_none()
        {
            return Err(p.invalid(
                OPT_PUBLIC_CERTIFICATE,
                format!(
                    "needs its private key: set {} or {}",
                    p.var_name(OPT_PRIVATE_KEY),
                    p.var_name(OPT_PRIVATE_KEY_FILE)
                ),
            ));
        }
        let host_key = HostKeyPolicy::from_profile(p)?;
        let connect_timeout =
            Duration::from_secs(p.parse::<u64>(OPT_CONNECT_TIMEOUT)?.unwrap_or(15).max(1));
        let read_timeout =
            Duration::from_secs(p.parse::<u64>(OPT_READ_TIMEOUT)?.unwrap_or(30).max(1));
        Ok(SftpConfig {
            storage: p.storage().to_string(),
            host,
            port,
            username,
            password,
            private_key,
            private_key_file,
            private_key_passphrase: p.secret(OPT_PRIVATE_KEY_PASSPHRASE),
            public_certificate,
            public_key_file,
            use_agent,
            agent_socket,
            allow_insecure_ciphers: p.flag(OPT_ALLOW_INSECURE_CIPHERS)?,
            disable_hash_check: p.flag(OPT_DISABLE_HASH_CHECK)?,
            host_key,
            connect_timeout,
            read_timeout,
        })
    }
}

impl HostKeyPolicy {
    /// The explicit opt-out, else a pinned fingerprint, else a known_hosts file (by default
    /// `~/.ssh/known_hosts`).
    fn from_profile(p: &Profile<'_>) -> Result<Self> {
        if p.flag(OPT_SKIP_HOST_KEY_CHECK)? {
            return Ok(HostKeyPolicy::Skip);
        }
        if let Some(fp) = p.get(OPT_HOST_KEY_FINGERPRINT) {
            if !fp.starts_with("SHA256:") {
                return Err(p.invalid(
                    OPT_HOST_KEY_FINGERPRINT,
                    "must be a SHA256 fingerprint such as `SHA256:AbC…` (ssh-keygen -lf KEY prints it)",
                ));
            }
            return Ok(HostKeyPolicy::Fingerprint(fp));
        }
        Ok(HostKeyPolicy::KnownHosts(
            match p.get(OPT_KNOWN_HOSTS_FILE) {
                Some(file) => PathBuf::from(file),
                None => {
                    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
                    PathBuf::from(home).join(".ssh/known_hosts")
                }
            },
        ))
    }
}
