//! The job queue on Amazon SQS.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageSystemAttributeName, SendMessageBatchRequestEntry};
use aws_sdk_sqs::Client;

use super::{Delivery, JobQueue};

pub struct SqsQueue {
    sqs: Client,
    url: String,
}

impl SqsQueue {
    pub async fn connect(url: &str) -> SqsQueue {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        SqsQueue {
            sqs: Client::new(&config),
            url: url.to_string(),
        }
    }
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn receive(&self, visibility: Duration) -> anyhow::Result<Option<Delivery>> {
        let got = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(1)
            .wait_time_seconds(1)
            .visibility_timeout(visibility.as_secs().max(1) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await?;
        Ok(got
            .messages
            .unwrap_or_default()
            .into_iter()
            .next()
            .map(|m| Delivery {
                receives: m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1),
                id: m.message_id.unwrap_or_default(),
                body: m.body.unwrap_or_default(),
                receipt: tokio::sync::Mutex::new(m.receipt_handle.unwrap_or_default()),
            }))
    }

    async fn extend(&self, delivery: &Delivery, visibility: Duration) -> anyhow::Result<()> {
        let receipt = delivery.receipt.lock().await.clone();
        self.sqs
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(visibility.as_secs().max(1) as i32)
            .send()
            .await?;
        Ok(())
    }

    async fn delete(&self, delivery: &Delivery) -> anyhow::Result<()> {
        let receipt = delivery.receipt.lock().await.clone();
        self.sqs
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await?;
        Ok(())
    }

    async fn send(&self, messages: &[String]) -> anyhow::Result<()> {
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
            let sent = self
                .sqs
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await?;
            if let Some(failed) = sent.failed.first() {
                anyhow::bail!("the queue refused a message: {:?}", failed.message);
            }
        }
        Ok(())
    }
}
