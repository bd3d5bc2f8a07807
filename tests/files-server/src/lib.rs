//! An Azure Files test server: the File service REST API on a free loopback port, in memory.
//!
//! Azure Files has no emulator; this one exists for tests and is trusted only because clients
//! nobody here wrote (Microsoft's Python SDK, rclone) agree with it. It verifies SharedKey and
//! SAS signatures for real. Operations it does not implement answer 501 `NotImplemented`.

mod api;
mod auth;
mod reply;
pub mod store;

use std::net::SocketAddr;
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
    /// Injected failures: the next requests answer with these statuses (and `Retry-After: 1`).
    pub faults: Mutex<std::collections::VecDeque<u16>>,
}

/// A running server; stops when dropped.
pub struct FilesServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FilesServer {
    /// Start on a free loopback port with the well-known account.
    pub fn start() -> anyhow::Result<FilesServer> {
        FilesServer::start_on("127.0.0.1:0".parse()?, ACCOUNT, KEY)
    }

    pub fn start_on(addr: SocketAddr, account: &str, key: &str) -> anyhow::Result<FilesServer> {
        let state = Arc::new(State {
            account: account.to_string(),
            key: key.to_string(),
            store: Mutex::new(Store::default()),
            faults: Mutex::new(Default::default()),
        });
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = api::router(state.clone());
        // Its own runtime on its own thread, so it serves whatever the caller's runtime does.
        let thread = std::thread::Builder::new()
            .name("files-server".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("files-server: no runtime: {e}");
                        return;
                    }
                };
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })?;
        Ok(FilesServer {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The account URL clients use: `http://127.0.0.1:PORT/ACCOUNT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}/{}", self.addr, self.state.account)
    }

    pub fn account(&self) -> &str {
        &self.state.account
    }

    pub fn key(&self) -> &str {
        &self.state.key
    }

    /// Make the next requests fail with `status` (e.g. 503 ServerBusy), `count` times.
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

impl Drop for FilesServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
