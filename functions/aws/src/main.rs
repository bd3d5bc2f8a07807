//! AWS Lambda entry point (`bootstrap`, provided.al2023). One binary, two triggers:
//! - an SQS event: each record is one job message; the records run concurrently, and the ones
//!   whose job failed are returned in `batchItemFailures`, so one bad message never re-drives
//!   its neighbours;
//! - a schedule (EventBridge rule or Scheduler): the backup plan (`BACKUP_PLAN` /
//!   `BACKUP_PLAN_FILE`) becomes job messages on `BACKUP_QUEUE_URL`.
//!
//! Every result is logged as JSON and, when `BACKUP_RESULTS_QUEUE_URL` is set, sent there.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use backup_common::config::Profiles;
use backup_common::plan::Plan;
use backup_common::transfer::Progress;
use backup_common::{job, result::JobResult};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};
use tracing::Instrument;

struct App {
    profiles: Profiles,
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
    // The SQS client is built only when a queue is configured (it costs cold-start time).
    let sqs = match job_queue.is_some() || results_queue.is_some() {
        true => Some(aws_sdk_sqs::Client::new(
            &aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await,
        )),
        false => None,
    };
    let app = App {
        profiles: Profiles::from_env()?,
        sqs,
        job_queue,
        results_queue,
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| handle(&app, event))).await
}

async fn handle(app: &App, event: LambdaEvent<Value>) -> Result<Value, Error> {
    if event.payload.get("Records").is_some() {
        let batch: SqsEvent = serde_json::from_value(event.payload)?;
        return Ok(serde_json::to_value(on_sqs(app, batch).await)?);
    }
    if event.payload.get("detail-type").is_some() || event.payload.get("plan").is_some() {
        return on_schedule(app).await;
    }
    Err("unrecognised event: expected an SQS event or a scheduled event".into())
}

async fn on_sqs(app: &App, batch: SqsEvent) -> SqsBatchResponse {
    let jobs = batch.records.into_iter().map(|record| async move {
        let id = record.message_id.unwrap_or_default();
        let text = record.body.unwrap_or_default();
        let result = job::run_text(&text, &app.profiles, Progress::new())
            .instrument(tracing::info_span!("message", message_id = %id))
            .await;
        report(app, &result).await;
        (id, result.needs_redelivery())
    });
    let mut response = SqsBatchResponse::default();
    for (id, failed) in futures::future::join_all(jobs).await {
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
    let (Some(sqs), Some(queue)) = (&app.sqs, &app.job_queue) else {
        return Err(
            "BACKUP_QUEUE_URL is not set: the schedule has nowhere to put the plan's jobs".into(),
        );
    };
    for (n, chunk) in plan.jobs.chunks(10).enumerate() {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("job{}", n * 10 + i))
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
                "the queue refused job {}: {}",
                failed.id,
                failed.message.clone().unwrap_or_default()
            )
            .into());
        }
    }
    tracing::info!(enqueued = plan.jobs.len(), "backup plan enqueued");
    Ok(json!({ "enqueued": plan.jobs.len() }))
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
