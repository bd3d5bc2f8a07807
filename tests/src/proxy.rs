//! What the test proxies share: a listener on a free loopback port, served on a thread and
//! runtime of its own (so any test, async or not, can own a proxy), until the returned sender
//! is dropped.

use std::future::Future;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Listen on 127.0.0.1:<free port> and run `serve` on every connection accepted. Returns the
/// port and the sender whose drop stops the proxy (and every connection it holds).
pub fn serve<F, Fut>(mut serve: F) -> (u16, oneshot::Sender<()>)
where
    F: FnMut(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let port = listener.local_addr().expect("proxy address").port();
    let (stop, stopped) = oneshot::channel::<()>();
    on_own_thread(async move {
        let listener = TcpListener::from_std(listener).expect("tokio listener");
        let accept = async {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client));
            }
        };
        tokio::select! {
            _ = accept => {}
            _ = stopped => {}
        }
    });
    (port, stop)
}

/// Run `task` on a thread and current-thread runtime of its own, whatever the caller's runtime
/// is doing, until it ends.
pub fn on_own_thread(task: impl Future<Output = ()> + Send + 'static) {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime of its own")
            .block_on(task);
    });
}
