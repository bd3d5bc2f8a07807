//! Azure Functions custom handler (`handler`): an HTTP server on `FUNCTIONS_CUSTOMHANDLER_PORT`
//! that the Functions host calls with its invocation payloads (see `app/` for host.json and the
//! function.json files):
//! - `POST /backup-queue` (queueTrigger `message`): run the job; a job that should be retried
//!   answers 500, so the host redelivers it and, after `maxDequeueCount`, moves it to the poison
//!   queue. The result goes to the `result` queue output binding and to the log. Big jobs fan
//!   out: parts, and what a part could not finish before `BACKUP_FUNCTION_TIMEOUT_SECS` (600,
//!   host.json's functionTimeout) minus `BACKUP_HANDOFF_MARGIN_SECS` (60), go to the `jobs`
//!   queue output binding.
//! - `POST /backup-schedule` (timerTrigger): the backup plan becomes job messages through the
//!   `jobs` queue output binding (the host enqueues them, base64 as the trigger expects).

mod payload;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use backup_common::config::Profiles;
use backup_common::job;
use backup_common::plan::Plan;
use payload::Invocation;
use serde_json::{json, Value};
use tracing::Instrument;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let port: u16 = std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT")
        .unwrap_or_else(|_| "8080".into())
        .parse()?;
    let profiles = Arc::new(Profiles::from_env()?);
    let app = Router::new()
        .route("/", get(|| async { "ready" }))
        .route("/backup-queue", post(on_queue))
        .route("/backup-schedule", post(on_timer))
        .with_state(profiles);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!(port, "custom handler listening");
    axum::serve(listener, app).await?;
    Ok(())
}

async fn on_queue(
    State(profiles): State<Arc<Profiles>>,
    Json(invocation): Json<Invocation>,
) -> (StatusCode, Json<Value>) {
    let id = invocation.message_id();
    let message = invocation.message_bytes("message").unwrap_or_default();
    let secs = |var: &str, default: u64| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let timeout = Duration::from_secs(secs("BACKUP_FUNCTION_TIMEOUT_SECS", 600));
    let margin = Duration::from_secs(secs("BACKUP_HANDOFF_MARGIN_SECS", 60));
    let run = job::Run::on_queue(&profiles, Some(Instant::now() + timeout), margin);
    let result = job::run_message(&message, &run)
        .instrument(tracing::info_span!("message", message_id = %id))
        .await;
    let result_json = serde_json::to_value(&result).unwrap_or_default();
    let summary = format!(
        "job {:?} {:?}",
        result.job_id.as_deref().unwrap_or("-"),
        result.status
    );
    tracing::info!(result = %result_json, "job result");
    let status = if result.needs_redelivery() {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let body = json!({
        "Outputs": { "result": result_json.to_string(), "jobs": result.follow_up },
        "Logs": [summary],
        "ReturnValue": result_json,
    });
    (status, Json(body))
}

async fn on_timer(Json(_invocation): Json<Invocation>) -> (StatusCode, Json<Value>) {
    match Plan::from_env() {
        Ok(plan) => {
            tracing::info!(jobs = plan.jobs.len(), "backup plan enqueued");
            let summary = format!("enqueued {} jobs", plan.jobs.len());
            (
                StatusCode::OK,
                Json(
                    json!({ "Outputs": { "jobs": plan.jobs }, "Logs": [summary], "ReturnValue": { "enqueued": plan.jobs.len() } }),
                ),
            )
        }
        Err(e) => {
            tracing::error!(code = e.code(), error = %e, "no plan to enqueue");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "Logs": [e.to_string()], "ReturnValue": e.report() })),
            )
        }
    }
}
