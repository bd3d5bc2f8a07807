//! A TCP proxy on loopback that delays every byte by a fixed time each way, so loopback looks
//! like a link to a server some milliseconds away: what a worker in one region sees of a share
//! in another. Bytes are read as they come and written out `one_way` later (a delay line per
//! direction), so the link's bandwidth stays loopback's and only its round trip grows: requests
//! that wait for their answer show it, requests kept in flight hide it. (TCP's own window is
//! not stretched: each side's connection ends at the proxy.)

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Reads waiting in one direction's delay line: bounds what the proxy holds per connection.
const LINE_DEPTH: usize = 1024;
const READ_SIZE: usize = 64 * 1024;

pub struct LatencyProxy {
    pub port: u16,
    /// Dropping it ends the proxy's thread (and with it every connection it holds).
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl LatencyProxy {
    /// Forward 127.0.0.1:`port` (a free one) to 127.0.0.1:`target`, `one_way` later each way.
    pub fn start(target: u16, one_way: Duration) -> LatencyProxy {
        let (port, stop) = crate::proxy::serve(move |client| connect(client, target, one_way));
        LatencyProxy { port, _stop: stop }
    }
}

async fn connect(client: TcpStream, target: u16, one_way: Duration) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
        return;
    };
    for stream in [&client, &server] {
        let _ = stream.set_nodelay(true);
    }
    let (client_in, client_out) = client.into_split();
    let (server_in, server_out) = server.into_split();
    tokio::join!(
        delay_line(client_in, server_out, one_way),
        delay_line(server_in, client_out, one_way),
    );
}

/// Copy `from` to `to`, each read written `one_way` after it arrived; the end of the stream
/// too arrives `one_way` late.
async fn delay_line(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, one_way: Duration) {
    let (line, mut arrivals) = mpsc::channel::<(Instant, Vec<u8>)>(LINE_DEPTH);
    let reading = async move {
        loop {
            let mut buf = vec![0u8; READ_SIZE];
            let n = from.read(&mut buf).await.unwrap_or(0);
            buf.truncate(n);
            let end = n == 0;
            if line.send((Instant::now() + one_way, buf)).await.is_err() || end {
                return;
            }
        }
    };
    let writing = async move {
        while let Some((due, data)) = arrivals.recv().await {
            tokio::time::sleep_until(due).await;
            if data.is_empty() || to.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reading, writing);
}
