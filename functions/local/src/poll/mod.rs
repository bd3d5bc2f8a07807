//! `backup-worker poll`: work a job queue from this machine, the way the cloud functions do:
//! take a message, run it (big jobs fan out into parts on the same queue), delete it when done.
//! While a job runs its message is kept invisible (a heartbeat extends the visibility timeout);
//! a worker that dies simply stops extending it, and another worker gets the message. After
//! `MAX_RECEIVES` deliveries a message is dropped as poison, logged. SQS and Azure Queue
//! (see `sqs.rs`, `azure.rs`) differ only in how they do those few things.

mod azure;
mod sqs;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backup_common::config::Profiles;
use backup_common::job;

const MAX_RECEIVES: u32 = 5;

pub enum QueueSpec {
    Sqs {
        url: String,
    },
    /// The queue URL and the storage profile whose account key or SAS signs the requests.
    Azure {
        url: String,
        credentials: String,
    },
}

pub struct PollOptions {
    pub queue: QueueSpec,
    pub workers: usize,
    /// Stop once no message came for this long (tests, batch use); run forever without it.
    pub exit_when_idle: Option<Duration>,
    pub visibility: Duration,
}

/// A message taken from the queue.
pub struct Delivery {
    pub id: String,
    pub body: String,
    /// The handle that deletes or extends it (Azure renews it on every extension).
    pub receipt: tokio::sync::Mutex<String>,
    pub receives: u32,
}

#[async_trait]
pub trait JobQueue: Send + Sync {
    async fn receive(&self, visibility: Duration) -> anyhow::Result<Option<Delivery>>;
    async fn extend(&self, delivery: &Delivery, visibility: Duration) -> anyhow::Result<()>;
    async fn delete(&self, delivery: &Delivery) -> anyhow::Result<()>;
    async fn send(&self, messages: &[String]) -> anyhow::Result<()>;
}

pub async fn poll(options: PollOptions, profiles: Arc<Profiles>) -> anyhow::Result<()> {
    let queue: Arc<dyn JobQueue> = match &options.queue {
        QueueSpec::Sqs { url } => Arc::new(sqs::SqsQueue::connect(url).await),
        QueueSpec::Azure { url, credentials } => {
            Arc::new(azure::AzureQueue::new(url, &profiles, credentials)?)
        }
    };
    let options = Arc::new(options);
    let workers: Vec<_> = (0..options.workers.max(1))
        .map(|n| tokio::spawn(work(n, queue.clone(), options.clone(), profiles.clone())))
        .collect();
    for w in workers {
        w.await??;
    }
    Ok(())
}

async fn work(
    n: usize,
    queue: Arc<dyn JobQueue>,
    o: Arc<PollOptions>,
    profiles: Arc<Profiles>,
) -> anyhow::Result<()> {
    let mut idle_since = Instant::now();
    loop {
        let Some(delivery) = queue.receive(o.visibility).await? else {
            if o.exit_when_idle.is_some_and(|d| idle_since.elapsed() >= d) {
                tracing::info!(worker = n, "queue idle: stopping");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let delivery = Arc::new(delivery);
        let heartbeat = {
            let (queue, delivery, visibility) = (queue.clone(), delivery.clone(), o.visibility);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep((visibility / 2).max(Duration::from_secs(1))).await;
                    if let Err(e) = queue.extend(&delivery, visibility).await {
                        tracing::warn!(error = %e, "cannot extend the message's visibility");
                    }
                }
            })
        };
        let run = job::Run::on_queue(&profiles, None, Duration::from_secs(60));
        let result = job::run_message(&delivery.body, &run).await;
        heartbeat.abort();
        println!("{}", serde_json::to_string(&result)?);
        queue.send(&result.follow_up).await?;
        if !result.needs_redelivery() || delivery.receives >= MAX_RECEIVES {
            if result.needs_redelivery() {
                tracing::error!(worker = n, id = %delivery.id, receives = delivery.receives, "message failed {MAX_RECEIVES} times: dropped as poison");
            }
            queue.delete(&delivery).await?;
        }
        idle_since = Instant::now();
    }
}
