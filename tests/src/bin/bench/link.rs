//! How the tools reach sshd and the sinks: loopback as it is, or loopback with a round trip
//! added (`BENCH_RTT_MS`, through `harness::latency` delay lines), the link a worker has to a
//! server in another region. Both tools and the limit rows go the same way.

use std::time::Duration;

use harness::latency::LatencyProxy;
use harness::sshd::Sshd;

pub struct Link {
    one_way: Duration,
    sftp_port: u16,
    /// In front of sshd when a round trip is added.
    sftp: Option<LatencyProxy>,
}

impl Link {
    /// `round_trip` zero: loopback as it is.
    pub fn new(sshd: &Sshd, round_trip: Duration) -> Link {
        let one_way = round_trip / 2;
        let proxy = (!one_way.is_zero()).then(|| LatencyProxy::start(sshd.port, one_way));
        Link {
            one_way,
            sftp_port: proxy.as_ref().map_or(sshd.port, |p| p.port),
            sftp: proxy,
        }
    }

    /// The port the tools reach sshd at.
    pub fn sftp_port(&self) -> u16 {
        self.sftp_port
    }

    /// Whether the tools reach sshd through a proxy (whose port the host key was not
    /// recorded for).
    pub fn proxied(&self) -> bool {
        self.sftp.is_some()
    }

    /// A delay line in front of a sink listening on `port`, when a round trip is added.
    pub fn to_sink(&self, port: u16) -> Option<LatencyProxy> {
        (!self.one_way.is_zero()).then(|| LatencyProxy::start(port, self.one_way))
    }

    pub fn describe(&self) -> String {
        if self.one_way.is_zero() {
            "loopback".into()
        } else {
            format!(
                "loopback + {} ms round trip (`BENCH_RTT_MS`)",
                (self.one_way * 2).as_millis()
            )
        }
    }
}

/// `endpoint` (`http://127.0.0.1:<port>/…`) with its port replaced by `port`.
pub fn with_port(endpoint: &str, port: u16) -> String {
    let Some((scheme_host, rest)) = endpoint.rsplit_once("127.0.0.1:") else {
        return endpoint.to_string();
    };
    let path = rest.find('/').map_or("", |at| &rest[at..]);
    format!("{scheme_host}127.0.0.1:{port}{path}")
}

/// The port of `endpoint` (`http://127.0.0.1:<port>/…`).
pub fn port_of(endpoint: &str) -> Option<u16> {
    let (_, rest) = endpoint.rsplit_once("127.0.0.1:")?;
    rest.split('/').next()?.parse().ok()
}
