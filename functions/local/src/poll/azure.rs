//! The job queue on Azure Queue Storage (`azure_storage_queue` 1.x, signed by our SharedKey/SAS
//! policy). Messages are base64 on the wire, as the Functions queue trigger expects; plain text
//! is accepted on receive.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::http::{ClientOptions, Url};
use azure_storage_queue::models::{QueueClientReceiveMessagesOptions, QueueMessage};
use azure_storage_queue::{QueueClient, QueueClientOptions};
use backup_common::config::Profiles;
use backup_common::storage::azure::signing::SigningPolicy;
use backup_common::storage::azure::{AccountConfig, Service};
use base64::Engine;

use super::{Delivery, JobQueue};

pub struct AzureQueue {
    client: QueueClient,
}

impl AzureQueue {
    pub fn new(url: &str, profiles: &Profiles, credentials: &str) -> anyhow::Result<AzureQueue> {
        let account = AccountConfig::from_profile(&profiles.profile(credentials)?, Service::Blob)?;
        let options = QueueClientOptions {
            client_options: ClientOptions {
                per_try_policies: vec![Arc::new(SigningPolicy::new(&account))],
                ..Default::default()
            },
            ..Default::default()
        };
        let client = QueueClient::new(Url::parse(url)?, None, Some(options))?;
        Ok(AzureQueue { client })
    }
}

fn decode(text: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| text.to_string())
}

#[async_trait]
impl JobQueue for AzureQueue {
    async fn receive(&self, visibility: Duration) -> anyhow::Result<Option<Delivery>> {
        let options = QueueClientReceiveMessagesOptions {
            number_of_messages: Some(1),
            visibility_timeout: Some(visibility.as_secs().max(1) as i32),
            ..Default::default()
        };
        let got = self
            .client
            .receive_messages(Some(options))
            .await?
            .into_model()?;
        Ok(got
            .items
            .unwrap_or_default()
            .into_iter()
            .next()
            .map(|m| Delivery {
                id: m.message_id.unwrap_or_default(),
                body: decode(m.message_text.as_deref().unwrap_or_default()),
                receipt: tokio::sync::Mutex::new(m.pop_receipt.unwrap_or_default()),
                receives: m.dequeue_count.unwrap_or(1) as u32,
            }))
    }

    async fn extend(&self, delivery: &Delivery, visibility: Duration) -> anyhow::Result<()> {
        let mut receipt = delivery.receipt.lock().await;
        let response = self
            .client
            .update_message(
                &delivery.id,
                &receipt,
                visibility.as_secs().max(1) as i32,
                None,
            )
            .await?;
        // Every update issues a new pop receipt; the old one no longer deletes the message.
        if let Some(new) = response
            .headers()
            .get_optional_string(&"x-ms-popreceipt".into())
        {
            *receipt = new;
        }
        Ok(())
    }

    async fn delete(&self, delivery: &Delivery) -> anyhow::Result<()> {
        let receipt = delivery.receipt.lock().await.clone();
        self.client
            .delete_message(&delivery.id, &receipt, None)
            .await?;
        Ok(())
    }

    async fn send(&self, messages: &[String]) -> anyhow::Result<()> {
        for text in messages {
            let message = QueueMessage {
                message_text: Some(base64::engine::general_purpose::STANDARD.encode(text)),
            };
            self.client.send_message(message.try_into()?, None).await?;
        }
        Ok(())
    }
}
