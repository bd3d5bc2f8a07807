//! A TCP proxy on loopback that misbehaves on purpose, between the worker and a real server:
//! it cuts a connection (closes or resets it) after it has carried a number of bytes, or stalls
//! it (holds it open and forwards nothing more). Faults hit the first `faulty_connections`
//! connections (none unless set; `u64::MAX` for all), so "a link that drops every few MB" and
//! "one cut, then a good link" are both one policy. Pacing is the link's, not a fault: it
//! applies to every connection. In front of an HTTP service it can also answer new
//! connections with 503/429 bursts, `Retry-After` in both forms.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use backup_common::config::Profiles;

use crate::stack::Stack;

/// What the proxy does to a faulty connection. Byte counts are both directions together (a
/// download and an upload are both cut mid-way); 0 = never.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy {
    pub cut_after: u64,
    pub stall_after: u64,
    /// How many connections (in accept order) get the faults; the rest pass untouched.
    pub faulty_connections: u64,
    /// HTTP only: this many new connections get their one request answered `503 Server Busy`
    /// or `429` in turn, with `Retry-After` in seconds or as a date in turn, and are closed.
    pub busy_answers: u64,
    /// A cut is a reset (RST) instead of an orderly close (FIN).
    pub reset: bool,
    /// Pace each connection to this many bytes a second, both directions together (0: as
    /// fast as it goes): a slow link, so a deadline falls mid-file whatever the machine.
    pub bytes_per_second: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    busy_served: AtomicU64,
    bytes_down: AtomicU64,
    faults: AtomicU64,
}

pub struct FaultProxy {
    pub port: u16,
    policy: Arc<Mutex<Policy>>,
    counters: Arc<Counters>,
    /// Dropping it ends the proxy's thread (and with it every connection it holds).
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FaultProxy {
    /// Forward 127.0.0.1:`port` (a free one) to 127.0.0.1:`target`, with faults per `policy`.
    /// The proxy runs on its own thread and runtime, so any test (async or not) can own it.
    pub fn start(target: u16, policy: Policy) -> FaultProxy {
        let policy = Arc::new(Mutex::new(policy));
        let counters = Arc::new(Counters::default());
        let (p, c) = (policy.clone(), counters.clone());
        let (port, stop) = crate::proxy::serve(move |client| {
            let index = c.connections.fetch_add(1, Ordering::SeqCst);
            let rules = *p.lock().expect("policy");
            // Counted here, in accept order, not when the connection's task runs.
            let served = c.busy_served.load(Ordering::SeqCst);
            let busy = served < rules.busy_answers;
            if busy {
                c.busy_served.fetch_add(1, Ordering::SeqCst);
                c.faults.fetch_add(1, Ordering::SeqCst);
            }
            let c = c.clone();
            async move {
                if busy {
                    return answer_busy(client, served).await;
                }
                let rules = if index < rules.faulty_connections {
                    rules
                } else {
                    Policy {
                        bytes_per_second: rules.bytes_per_second,
                        ..Policy::default()
                    }
                };
                forward(client, target, rules, c).await
            }
        });
        FaultProxy {
            port,
            policy,
            counters,
            _stop: stop,
        }
    }

    /// A link of `bytes_per_second` (both directions together) and no faults.
    pub fn paced(target: u16, bytes_per_second: u64) -> FaultProxy {
        let policy = Policy {
            bytes_per_second,
            ..Policy::default()
        };
        FaultProxy::start(target, policy)
    }

    pub fn set_policy(&self, policy: Policy) {
        *self.policy.lock().expect("policy") = policy;
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.counters.connections.load(Ordering::SeqCst)
    }

    /// Bytes carried towards the worker, all connections together.
    pub fn bytes_down(&self) -> u64 {
        self.counters.bytes_down.load(Ordering::SeqCst)
    }

    /// Requests answered busy so far (`Policy::busy_answers` counts against this).
    pub fn busy_served(&self) -> u64 {
        self.counters.busy_served.load(Ordering::SeqCst)
    }

    /// Cuts, stalls and busy answers so far.
    pub fn faults(&self) -> u64 {
        self.counters.faults.load(Ordering::SeqCst)
    }
}

/// Read one HTTP request (head and `Content-Length` body), answer it busy, close.
async fn answer_busy(mut client: TcpStream, nth: u64) {
    let mut request = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let head_end = loop {
        let Ok(n @ 1..) = client.read(&mut buf).await else {
            return;
        };
        request.extend_from_slice(&buf[..n]);
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = request.len() - head_end;
    while body < length {
        let Ok(n @ 1..) = client.read(&mut buf).await else {
            return;
        };
        body += n;
    }
    let (status, retry_after) = if nth.is_multiple_of(2) {
        ("503 Server Busy", "1".to_string())
    } else {
        // Whole seconds: two ahead is at least one from now.
        let at = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
        ("429 Too Many Requests", httpdate::fmt_http_date(at))
    };
    let answer = format!(
        "HTTP/1.1 {status}\r\nRetry-After: {retry_after}\r\nx-ms-error-code: ServerBusy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = client.write_all(answer.as_bytes()).await;
    let _ = client.shutdown().await;
}

async fn forward(mut client: TcpStream, target: u16, rules: Policy, counters: Arc<Counters>) {
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)).await else {
        return;
    };
    let (mut up, mut down) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    let limit = [rules.cut_after, rules.stall_after]
        .into_iter()
        .filter(|l| *l > 0)
        .min()
        .unwrap_or(u64::MAX);
    let mut carried: u64 = 0;
    let started = tokio::time::Instant::now();
    loop {
        let (from, to, downward) = tokio::select! {
            read = client.read(&mut up) => (read, &mut server, false),
            read = server.read(&mut down) => (read, &mut client, true),
        };
        let Ok(n @ 1..) = from else { return };
        let allowed = (n as u64).min(limit - carried) as usize;
        let data = if downward {
            &down[..allowed]
        } else {
            &up[..allowed]
        };
        if to.write_all(data).await.is_err() {
            return;
        }
        carried += allowed as u64;
        if rules.bytes_per_second > 0 {
            let due = Duration::from_secs_f64(carried as f64 / rules.bytes_per_second as f64);
            tokio::time::sleep_until(started + due).await;
        }
        if downward {
            counters
                .bytes_down
                .fetch_add(allowed as u64, Ordering::SeqCst);
        }
        if carried >= limit {
            counters.faults.fetch_add(1, Ordering::SeqCst);
            if rules.stall_after > 0 && carried >= rules.stall_after {
                // Hold both sockets open and say nothing more.
                std::future::pending::<()>().await;
            }
            if rules.reset {
                // Linger zero: closing sends RST at once (no blocking close).
                let _ = client.set_zero_linger();
                let _ = server.set_zero_linger();
            }
            return; // a cut: both sockets close
        }
    }
}

/// The stack's profiles with the SFTP source reached through `proxy`.
pub fn through(stack: &Stack, proxy: &FaultProxy, extra: &[(&str, &str)]) -> Profiles {
    let mut vars = stack.vars();
    route_sftp(&mut vars, proxy.port);
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    Profiles::from_vars(vars)
}

/// Point the `office_nas` profile in `vars` at `port` (a proxy in front of sshd).
pub fn route_sftp(vars: &mut std::collections::HashMap<String, String>, port: u16) {
    vars.insert(
        "BACKUP_STORAGE_OFFICE_NAS_SSH_PORT".into(),
        port.to_string(),
    );
    // The known_hosts entry names sshd's own port; the proxy's port is another.
    vars.remove("BACKUP_STORAGE_OFFICE_NAS_SSH_KNOWN_HOSTS_FILE");
    vars.insert(
        "BACKUP_STORAGE_OFFICE_NAS_SSH_SKIP_HOST_KEY_CHECK".into(),
        "true".into(),
    );
}
