//! The test harness: starts real servers on free loopback ports and stops them on drop, so
//! tests can run in parallel. Needs what `./dev install` puts on the machine: OpenSSH's sshd,
//! the `bwtest` login, and Azurite under `.tools/`.

pub mod azurite;
pub mod check;
pub mod corpus;
pub mod entra;
pub mod fault;
pub mod identity;
pub mod lambda;
pub mod latency;
pub mod moto;
pub mod pki;
pub mod proxy;
pub mod restic;
pub mod runner;
pub mod sshd;
pub mod stack;

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// The workspace root (where `.tools/` lives).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Wait until something accepts TCP connections on `port`.
pub fn wait_for_port(port: u16, what: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within {timeout:?}");
}

/// Wait until `ready()` holds (10 s at most).
pub fn wait_for(ready: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} did not appear within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An HTTP client that trusts the harness's test CA (for the https servers) besides the system's.
pub fn test_http_client() -> reqwest::Client {
    backup_common::storage::azure::http::client(
        "test",
        Some(&pki::Pki::get().ca()),
        backup_common::storage::azure::http::DEFAULT_REQUEST_TIMEOUT,
    )
    .expect("test HTTP client")
}
