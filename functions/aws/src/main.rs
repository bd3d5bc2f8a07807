//! AWS Lambda entry point (`bootstrap`, provided.al2023). One binary, two triggers:
//! - an SQS event: each record is one job message; the records run concurrently, and the ones
//!   whose job failed are returned in `batchItemFailures`, so one bad message never re-drives
//!   its neighbours;
//! - a schedule (EventBridge rule or Scheduler): the backup plan (`BACKUP_PLAN` /
//!   `BACKUP_PLAN_FILE`) becomes job messages on `BACKUP_QUEUE_URL`.
//!
//! Storage options come from the environment and from the Secrets Manager secrets named by
//! `BACKUP_SECRETS_ID` (see `secrets`).
//!
//! Every result is logged as JSON and, when `BACKUP_RESULTS_QUEUE_URL` is set, sent there.
//! With `BACKUP_QUEUE_URL` set, big jobs fan out: their parts, and whatever a part could not
//! finish `BACKUP_HANDOFF_MARGIN_SECS` (60) before the invocation's deadline, go on that queue.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use backup_common::config::Profiles;
use backup_common::plan::Plan;
use backup_common::{job, result::JobResult};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};
use tracing::Instrument;

mod secrets;

struct App {
    profiles: Profiles,
    handoff_margin: Duration,
    sqs: Option<aws_sdk_sqs::Client>,
    job_queue: Option<String>,
    results_queue: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .without_time()
        .init();
    let job_queue = std::env::var("BACKUP_QUEUE_URL").ok();
    let results_queue = std::env::var("BACKUP_RESULTS_QUEUE_URL").ok();
    // The AWS configuration is loaded only when a queue or a secret needs it (cold start).
    let needs_aws = job_queue.is_some()
        || results_queue.is_some()
        || std::env::var(secrets::SECRETS_ID_VAR).is_ok();
    let aws = match needs_aws {
        true => Some(aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await),
        false => None,
    };
    let sqs = aws
        .as_ref()
        .filter(|_| job_queue.is_some() || results_queue.is_some())
        .map(aws_sdk_sqs::Client::new);
    let secret_vars = match &aws {
        Some(config) => secrets::load(config)
            .await
            .inspect_err(|e| tracing::error!(error = %e, "cannot start"))?,
        None => Default::default(),
    };
    let margin = std::env::var("BACKUP_HANDOFF_MARGIN_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let app = App {
        profiles: Profiles::from_env_with(secret_vars)?,
        handoff_margin: Duration::from_secs(margin),
        sqs,
        job_queue,
        results_queue,
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| handle(&app, event))).await
}

async fn handle(app: &App, event: LambdaEvent<Value>) -> Result<Value, Error> {
    if event.payload.get("Records").is_some() {
        let batch: SqsEvent = serde_json::from_value(event.payload)?;
        let deadline = deadline_instant(event.context.deadline);
        return Ok(serde_json::to_value(on_sqs(app, batch, deadline).await)?);
    }
    if event.payload.get("detail-type").is_some() || event.payload.get("plan").is_some() {
        return on_schedule(app).await;
    }
    Err("unrecognised event: expected an SQS event or a scheduled event".into())
}

/// Lambda gives the deadline as Unix milliseconds.
fn deadline_instant(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

async fn on_sqs(app: &App, batch: SqsEvent, deadline: Instant) -> SqsBatchResponse {
    let jobs = batch.records.into_iter().map(|record| async move {
        let id = record.message_id.unwrap_or_default();
        let text = record.body.unwrap_or_default();
        let mut run = job::Run::on_queue(&app.profiles, Some(deadline), app.handoff_margin);
        run.fan_out = app.job_queue.is_some();
        let result = job::run_message(&text, &run)
            .instrument(tracing::info_span!("message", message_id = %id))
            .await;
        report(app, &result).await;
        // Parts and hand-backs must reach the queue, or the record is delivered again.
        let enqueued = enqueue(app, &result.follow_up).await;
        if let Err(e) = &enqueued {
            tracing::error!(error = %e, "cannot enqueue follow-up messages");
        }
        (id, result.needs_redelivery() || enqueued.is_err())
    });
    let mut response = SqsBatchResponse::default();
    let results = futures::future::join_all(jobs).await;
    // Every job of the batch drew its chunks from the one budget of this process.
    let memory = backup_common::transfer::MemoryBudget::process();
    tracing::info!(
        jobs = results.len(),
        memory_budget = memory.total(),
        memory_peak = memory.peak(),
        "batch finished"
    );
    for (id, failed) in results {
        if failed {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

async fn on_schedule(app: &App) -> Result<Value, Error> {
    let plan = Plan::from_env()?;
    enqueue(app, &plan.jobs).await?;
    tracing::info!(enqueued = plan.jobs.len(), "backup plan enqueued");
    Ok(json!({ "enqueued": plan.jobs.len() }))
}

/// Put messages on the job queue, ten at a time.
async fn enqueue(app: &App, messages: &[String]) -> Result<(), Error> {
    if messages.is_empty() {
        return Ok(());
    }
    let (Some(sqs), Some(queue)) = (&app.sqs, &app.job_queue) else {
        return Err("BACKUP_QUEUE_URL is not set: there is no job queue to put messages on".into());
    };
    for (n, chunk) in messages.chunks(10).enumerate() {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("m{}", n * 10 + i))
                    .message_body(body)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sent = sqs
            .send_message_batch()
            .queue_url(queue)
            .set_entries(Some(entries))
            .send()
            .await?;
        if let Some(failed) = sent.failed.first() {
            return Err(format!(
                "the queue refused message {}: {}",
                failed.id,
                failed.message.clone().unwrap_or_default()
            )
            .into());
        }
    }
    Ok(())
}

/// Log the result; send it to the results queue when there is one (a failure there is logged,
/// not fatal: the job itself is done).
async fn report(app: &App, result: &JobResult) {
    let text = serde_json::to_string(result).unwrap_or_default();
    tracing::info!(result = %text, "job result");
    if let (Some(sqs), Some(queue)) = (&app.sqs, &app.results_queue) {
        if let Err(e) = sqs
            .send_message()
            .queue_url(queue)
            .message_body(text)
            .send()
            .await
        {
            tracing::warn!(error = %e, "cannot send the result to BACKUP_RESULTS_QUEUE_URL");
        }
    }
}
