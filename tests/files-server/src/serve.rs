//! Running an axum app on its own thread and runtime, on a loopback port, plain or over TLS, so
//! it serves whatever the caller's runtime is doing (tests block, spawn and drop runtimes).

use std::net::SocketAddr;

use tokio_rustls::TlsAcceptor;

use crate::tls::TlsListener;

/// A running server; stops when dropped.
pub struct Background {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub fn spawn(
    name: &str,
    addr: SocketAddr,
    app: axum::Router,
    tls: Option<TlsAcceptor>,
) -> anyhow::Result<Background> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let label = name.to_string();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("{label}: no runtime: {e}");
                    return;
                }
            };
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let stopped = async {
                    let _ = stopped.await;
                };
                let _ = match tls {
                    Some(acceptor) => {
                        axum::serve(TlsListener::new(listener, acceptor), app)
                            .with_graceful_shutdown(stopped)
                            .await
                    }
                    None => {
                        axum::serve(listener, app)
                            .with_graceful_shutdown(stopped)
                            .await
                    }
                };
            });
        })?;
    Ok(Background {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
