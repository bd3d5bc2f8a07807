//! A Lambda Runtime API on loopback, speaking the documented protocol
//! (`/2018-06-01/runtime/invocation/next`, `…/{id}/response`, `…/{id}/error`), so the real
//! `bootstrap` binary runs here exactly as in Lambda: it polls for events and posts results.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(Value),
    Error(Value),
}

#[derive(Default)]
struct Shared {
    pending: Mutex<VecDeque<(String, String, u64)>>,
    arrived: tokio::sync::Notify,
    outcomes: Mutex<HashMap<String, Outcome>>,
    /// When the function first asked for an event: the end of its init.
    first_poll: Mutex<Option<Instant>>,
}

pub struct RuntimeApi {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl RuntimeApi {
    pub fn start() -> RuntimeApi {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        // Its own thread and runtime: it serves whatever the test's runtime is doing, and lives
        // until the test process ends.
        crate::proxy::on_own_thread(async move {
            if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
                let _ = axum::serve(listener, app).await;
            }
        });
        RuntimeApi { addr, shared }
    }

    /// When the function first asked for an event (process start to this is its init time).
    pub fn first_poll(&self) -> Option<Instant> {
        self.shared.first_poll.lock().ok().and_then(|f| *f)
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Environment a function process needs to run against this API.
    pub fn function_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_RUNTIME_API", self.endpoint()),
            ("AWS_LAMBDA_FUNCTION_NAME", "backup-worker".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "test".into()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                "/aws/lambda/backup-worker".into(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Queue an invocation with `deadline_ms` of run time; returns its request id.
    pub fn invoke(&self, event: &Value, deadline_ms: u64) -> String {
        let id = format!("req-{}", uuid_like());
        self.shared.pending.lock().expect("lock").push_back((
            id.clone(),
            event.to_string(),
            deadline_ms,
        ));
        self.shared.arrived.notify_one();
        id
    }

    /// Wait for the function's answer to `id`.
    pub fn outcome(&self, id: &str, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(o) = self.shared.outcomes.lock().expect("lock").get(id) {
                return o.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no answer to {id} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn uuid_like() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    format!(
        "{:08x}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

async fn next(State(s): State<Arc<Shared>>) -> (HeaderMap, String) {
    if let Ok(mut first) = s.first_poll.lock() {
        first.get_or_insert_with(Instant::now);
    }
    loop {
        let item = s.pending.lock().expect("lock").pop_front();
        if let Some((id, body, run_ms)) = item {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            let mut h = HeaderMap::new();
            let mut set = |k: &'static str, v: String| {
                if let Ok(v) = HeaderValue::try_from(v) {
                    h.insert(k, v);
                }
            };
            set("lambda-runtime-aws-request-id", id);
            set("lambda-runtime-deadline-ms", (now + run_ms).to_string());
            set(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:000000000000:function:backup-worker".into(),
            );
            set(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000".into(),
            );
            return (h, body);
        }
        s.arrived.notified().await;
    }
}

async fn response(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    s.outcomes
        .lock()
        .expect("lock")
        .insert(id, Outcome::Response(value));
    StatusCode::ACCEPTED
}

async fn error(State(s): State<Arc<Shared>>, Path(id): Path<String>, body: String) -> StatusCode {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    s.outcomes
        .lock()
        .expect("lock")
        .insert(id, Outcome::Error(value));
    StatusCode::ACCEPTED
}

async fn init_error(body: String) -> StatusCode {
    eprintln!("function init error: {body}");
    StatusCode::ACCEPTED
}
