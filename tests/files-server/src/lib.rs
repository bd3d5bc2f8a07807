//! An Azure Files test server: the File service REST API on a free loopback port, in memory.
//!
//! Azure Files has no emulator; this one exists for tests and is trusted only because clients
//! nobody here wrote (Microsoft's Python SDK, rclone) agree with it. It verifies SharedKey and
//! SAS signatures for real, and Entra ID bearer tokens when it serves https. Operations it does
//! not implement answer 501 `NotImplemented`.

mod api;
mod auth;
mod reply;
pub mod serve;
pub mod store;
pub mod tls;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub use store::Store;

/// Well-known test credentials (Azurite's published development account and key).
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub struct State {
    pub account: String,
    pub key: String,
    pub store: Mutex<Store>,
    /// Injected failures: the next requests answer with these statuses (and `Retry-After`: 1 s, or in turn a date at least 1 s ahead).
    pub faults: Mutex<std::collections::VecDeque<u16>>,
    /// The next successful operation with this `comp=` (e.g. `rename`) is done, but answered
    /// 503 as if its answer had been lost on the way back.
    pub lose_answer_of: Mutex<Option<String>>,
    /// Injected failures answered so far (their `Retry-After` alternates seconds and a date).
    pub faults_served: std::sync::atomic::AtomicU64,
    /// Requests served, counted by kind (see `FilesServer::take_requests`).
    pub requests: Mutex<std::collections::BTreeMap<String, u64>>,
    /// Served over https (bearer tokens are accepted only then).
    pub tls: bool,
    /// Entra object ids whose role allows reading only (Storage File Data Privileged Reader).
    pub read_only: Mutex<HashSet<String>>,
}

impl State {
    fn is_read_only(&self, oid: &str) -> bool {
        self.read_only
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(oid)
    }
}

/// A running server; stops when dropped.
pub struct FilesServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    _server: serve::Background,
}

impl FilesServer {
    /// Start on a free loopback port with the well-known account.
    pub fn start() -> anyhow::Result<FilesServer> {
        FilesServer::start_on("127.0.0.1:0".parse()?, ACCOUNT, KEY)
    }

    /// Start on a free loopback port, serving https with this certificate chain and key (PEM).
    pub fn start_tls(cert: &Path, key: &Path) -> anyhow::Result<FilesServer> {
        let acceptor = tls::acceptor(cert, key)?;
        FilesServer::start_with("127.0.0.1:0".parse()?, ACCOUNT, KEY, Some(acceptor))
    }

    pub fn start_on(addr: SocketAddr, account: &str, key: &str) -> anyhow::Result<FilesServer> {
        FilesServer::start_with(addr, account, key, None)
    }

    fn start_with(
        addr: SocketAddr,
        account: &str,
        key: &str,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> anyhow::Result<FilesServer> {
        let state = Arc::new(State {
            account: account.to_string(),
            key: key.to_string(),
            store: Mutex::new(Store::default()),
            faults: Mutex::new(Default::default()),
            faults_served: Default::default(),
            requests: Default::default(),
            lose_answer_of: Mutex::new(None),
            tls: tls.is_some(),
            read_only: Mutex::new(HashSet::new()),
        });
        let app = api::router(state.clone());
        let server = serve::spawn("files-server", addr, app, tls)?;
        Ok(FilesServer {
            addr: server.addr,
            state,
            _server: server,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The account URL clients use: `http://127.0.0.1:PORT/ACCOUNT` (https when serving TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.state.tls { "https" } else { "http" };
        format!("{scheme}://{}/{}", self.addr, self.state.account)
    }

    /// Give the Entra identity `oid` a read-only role: its writes answer 403.
    pub fn grant_read_only(&self, oid: &str) {
        let mut set = self
            .state
            .read_only
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        set.insert(oid.to_string());
    }

    pub fn account(&self) -> &str {
        &self.state.account
    }

    pub fn key(&self) -> &str {
        &self.state.key
    }

    /// Make the next requests fail with `status` (e.g. 503 ServerBusy), `count` times.
    /// Do the next `comp=<comp>` operation but answer it 503, as if the answer was lost.
    pub fn lose_answer_of_next(&self, comp: &str) {
        if let Ok(mut lost) = self.state.lose_answer_of.lock() {
            *lost = Some(comp.to_string());
        }
    }

    /// Requests served since the last call, counted by `METHOD comp` (`GET list`, `PUT range`),
    /// else `METHOD restype` (`PUT directory`), else `METHOD` (`PUT`: Create File), followed by
    /// ` md5` / ` crc64` when the request carried Content-MD5 / x-ms-content-crc64 (`PUT range
    /// crc64`); counting starts again.
    pub fn take_requests(&self) -> std::collections::BTreeMap<String, u64> {
        let mut requests = self
            .state
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *requests)
    }

    pub fn fail_next(&self, count: usize, status: u16) {
        let mut faults = self.state.faults.lock().unwrap_or_else(|p| p.into_inner());
        faults.extend(std::iter::repeat_n(status, count));
    }

    /// A service SAS for a share (`sp` is a subset of `rcwdl`), valid until `expiry_unix`.
    pub fn share_sas(&self, share: &str, permissions: &str, expiry_unix: i64) -> String {
        auth::share_sas(
            &self.state.account,
            &self.state.key,
            share,
            permissions,
            expiry_unix,
        )
    }

    /// Direct access to the stored data, for assertions.
    pub fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let mut store = self.state.store.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut store)
    }

    /// Create a share directly (as the portal would).
    pub fn create_share(&self, name: &str) {
        self.with_store(|s| {
            s.shares
                .entry(name.to_string())
                .or_insert_with(|| store::Share::new(100, Vec::new()));
        });
    }

    /// Every file in a share: (path with its case, content).
    pub fn files(&self, share: &str) -> Vec<(String, Vec<u8>)> {
        self.with_store(|s| {
            s.shares
                .get(share)
                .map(|sh| {
                    sh.nodes
                        .values()
                        .filter_map(|n| match n {
                            store::Node::File(f) => Some((f.props.name.clone(), f.read_all())),
                            store::Node::Dir(_) => None,
                        })
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    /// Stored properties of a file: (content MD5, last write time in Unix seconds).
    pub fn file_properties(&self, share: &str, path: &str) -> Option<(Option<Vec<u8>>, i64)> {
        self.with_store(|s| match s.shares.get(share)?.get(path)? {
            store::Node::File(f) => Some((
                f.http.content_md5.clone(),
                (f.props.last_write / 1_000_000_000) as i64,
            )),
            store::Node::Dir(_) => None,
        })
    }
}
