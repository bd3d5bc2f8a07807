//! `backup-worker poll`: work an SQS job queue from this machine, the way the Lambda function
//! does in the cloud: take a message, run it (big jobs fan out into parts on the same queue),
//! delete it when done. While a job runs its message is kept invisible (a heartbeat extends the
//! visibility timeout); a worker that dies simply stops extending it, and another worker gets
//! the message. After `MAX_RECEIVES` deliveries a message is dropped as poison, logged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{MessageSystemAttributeName, SendMessageBatchRequestEntry};
use aws_sdk_sqs::Client;
use backup_common::config::Profiles;
use backup_common::job;

const MAX_RECEIVES: u32 = 5;

pub struct PollOptions {
    pub queue_url: String,
    pub workers: usize,
    /// Stop once no message came for this long (tests, batch use); run forever without it.
    pub exit_when_idle: Option<Duration>,
    pub visibility: Duration,
}

pub async fn poll(options: PollOptions, profiles: Arc<Profiles>) -> anyhow::Result<()> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sqs = Client::new(&config);
    let options = Arc::new(options);
    let workers: Vec<_> = (0..options.workers.max(1))
        .map(|n| tokio::spawn(work(n, sqs.clone(), options.clone(), profiles.clone())))
        .collect();
    for w in workers {
        w.await??;
    }
    Ok(())
}

async fn work(
    n: usize,
    sqs: Client,
    o: Arc<PollOptions>,
    profiles: Arc<Profiles>,
) -> anyhow::Result<()> {
    let visibility = o.visibility.as_secs().max(1) as i32;
    let mut idle_since = Instant::now();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(&o.queue_url)
            .max_number_of_messages(1)
            .wait_time_seconds(1)
            .visibility_timeout(visibility)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await?;
        let Some(message) = got.messages.unwrap_or_default().into_iter().next() else {
            if o.exit_when_idle.is_some_and(|d| idle_since.elapsed() >= d) {
                tracing::info!(worker = n, "queue idle: stopping");
                return Ok(());
            }
            continue;
        };
        let receipt = message.receipt_handle.clone().unwrap_or_default();
        let receives: u32 = message
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let heartbeat = tokio::spawn(keep_invisible(
            sqs.clone(),
            o.queue_url.clone(),
            receipt.clone(),
            visibility,
        ));
        let run = job::Run::on_queue(&profiles, None, Duration::from_secs(60));
        let result = job::run_message(message.body.as_deref().unwrap_or_default(), &run).await;
        heartbeat.abort();
        println!("{}", serde_json::to_string(&result)?);
        enqueue(&sqs, &o.queue_url, &result.follow_up).await?;
        if !result.needs_redelivery() || receives >= MAX_RECEIVES {
            if result.needs_redelivery() {
                tracing::error!(
                    worker = n,
                    receives,
                    "message failed {MAX_RECEIVES} times: dropped as poison"
                );
            }
            sqs.delete_message()
                .queue_url(&o.queue_url)
                .receipt_handle(receipt)
                .send()
                .await?;
        }
        idle_since = Instant::now();
    }
}

/// Extend the message's visibility every half timeout while its job runs.
async fn keep_invisible(sqs: Client, queue: String, receipt: String, visibility: i32) {
    let every = Duration::from_secs((visibility as u64 / 2).max(1));
    loop {
        tokio::time::sleep(every).await;
        let extended = sqs
            .change_message_visibility()
            .queue_url(&queue)
            .receipt_handle(&receipt)
            .visibility_timeout(visibility)
            .send()
            .await;
        if let Err(e) = extended {
            tracing::warn!(error = %e, "cannot extend the message's visibility");
        }
    }
}

async fn enqueue(sqs: &Client, queue: &str, messages: &[String]) -> anyhow::Result<()> {
    for chunk in messages.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
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
            anyhow::bail!("the queue refused a message: {:?}", failed.message);
        }
    }
    Ok(())
}
