//! The distributed work queue: RabbitMQ through lapin.
//!
//! One durable queue carries "start this run" messages from the scheduler's
//! outbox relay to the workers. Publishing waits for the broker's confirm
//! (so the relay deletes an outbox row only once RabbitMQ holds the message
//! on disk); messages are persistent; a worker acknowledges a delivery only
//! after the database records the outcome, so a worker that dies mid-run
//! leaves its delivery to be redelivered. Deliveries may repeat: consumers
//! are idempotent (they act only on a run still in the status the message
//! was about).

use futures_util::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

/// Failures talking to RabbitMQ.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("cannot reach RabbitMQ at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: lapin::Error,
    },
    #[error("RabbitMQ refused {what}: {source}")]
    Broker {
        what: &'static str,
        #[source]
        source: lapin::Error,
    },
    #[error("RabbitMQ did not confirm a message (nack); it will be published again")]
    NotConfirmed,
}

/// A connection to one work queue.
pub struct WorkQueue {
    connection: Connection,
    /// Publishes, in confirm mode.
    publisher: Channel,
    queue: String,
}

/// RabbitMQ's persistent delivery mode.
const PERSISTENT: u8 = 2;

impl WorkQueue {
    /// Connects to `url` (`amqp://guest:guest@127.0.0.1:5672/%2f`) and
    /// declares the durable queue `queue`.
    pub async fn connect(url: &str, queue: &str) -> Result<Self, QueueError> {
        let connection = Connection::connect(url, ConnectionProperties::default())
            .await
            .map_err(|source| QueueError::Connect {
                url: without_credentials(url),
                source,
            })?;
        let publisher = channel(&connection).await?;
        publisher
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|source| QueueError::Broker {
                what: "declaring the work queue",
                source,
            })?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|source| QueueError::Broker {
                what: "publisher confirms",
                source,
            })?;
        Ok(Self {
            connection,
            publisher,
            queue: queue.to_owned(),
        })
    }

    /// Publishes `payload` persistently and waits for the broker's confirm.
    pub async fn publish(&self, payload: &[u8]) -> Result<(), QueueError> {
        let confirm = self
            .publisher
            .basic_publish(
                "".into(),
                self.queue.as_str().into(),
                BasicPublishOptions::default(),
                payload,
                BasicProperties::default()
                    .with_delivery_mode(PERSISTENT)
                    .with_content_type("application/json".into()),
            )
            .await
            .map_err(|source| QueueError::Broker {
                what: "a message",
                source,
            })?
            .await
            .map_err(|source| QueueError::Broker {
                what: "a message",
                source,
            })?;
        if confirm.is_ack() {
            Ok(())
        } else {
            Err(QueueError::NotConfirmed)
        }
    }

    /// Starts consuming with at most `prefetch` unacknowledged deliveries
    /// in hand (a worker's concurrency).
    pub async fn consume(&self, tag: &str, prefetch: u16) -> Result<Deliveries, QueueError> {
        let channel = channel(&self.connection).await?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(|source| QueueError::Broker {
                what: "the prefetch limit",
                source,
            })?;
        let consumer = channel
            .basic_consume(
                self.queue.as_str().into(),
                tag.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|source| QueueError::Broker {
                what: "consuming",
                source,
            })?;
        Ok(Deliveries {
            _channel: channel,
            consumer,
        })
    }

    /// Drops every waiting message (tests and benchmarks start clean).
    pub async fn purge(&self) -> Result<u32, QueueError> {
        self.publisher
            .queue_purge(self.queue.as_str().into(), QueuePurgeOptions::default())
            .await
            .map_err(|source| QueueError::Broker {
                what: "purging the queue",
                source,
            })
    }

    /// Deletes the queue and what it holds (tests and benchmarks clean up).
    pub async fn delete(&self) -> Result<u32, QueueError> {
        self.publisher
            .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .map_err(|source| QueueError::Broker {
                what: "deleting the queue",
                source,
            })
    }

    /// Closes the connection; unacknowledged deliveries go back to the
    /// queue.
    pub async fn close(&self) {
        let _ = self.connection.close(200, "bye".into()).await;
    }
}

async fn channel(connection: &Connection) -> Result<Channel, QueueError> {
    connection
        .create_channel()
        .await
        .map_err(|source| QueueError::Broker {
            what: "a channel",
            source,
        })
}

/// `amqp://user:secret@host/vhost` → `amqp://host/vhost`, for messages.
fn without_credentials(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://{host}"),
        _ => url.to_owned(),
    }
}

/// The stream of deliveries of [`WorkQueue::consume`].
pub struct Deliveries {
    _channel: Channel,
    consumer: lapin::Consumer,
}

impl Deliveries {
    /// The next delivery; `None` when the consumer was cancelled or the
    /// connection closed.
    pub async fn next(&mut self) -> Option<Result<Delivery, QueueError>> {
        let delivery = self.consumer.next().await?;
        Some(
            delivery
                .map(|inner| Delivery { inner })
                .map_err(|source| QueueError::Broker {
                    what: "a delivery",
                    source,
                }),
        )
    }
}

/// One message in hand; acknowledge it once its effect is committed.
pub struct Delivery {
    inner: lapin::message::Delivery,
}

impl Delivery {
    /// The message body.
    pub fn payload(&self) -> &[u8] {
        &self.inner.data
    }

    /// Whether RabbitMQ delivered it before (to a consumer that died or
    /// gave it back).
    pub fn redelivered(&self) -> bool {
        self.inner.redelivered
    }

    /// Done with it: RabbitMQ forgets it.
    pub async fn ack(&self) -> Result<(), QueueError> {
        self.inner
            .ack(BasicAckOptions::default())
            .await
            .map(drop)
            .map_err(|source| QueueError::Broker {
                what: "an acknowledgement",
                source,
            })
    }

    /// Gives it back for another consumer.
    pub async fn requeue(&self) -> Result<(), QueueError> {
        self.inner
            .reject(BasicRejectOptions { requeue: true })
            .await
            .map(drop)
            .map_err(|source| QueueError::Broker {
                what: "a requeue",
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    fn amqp_url() -> String {
        std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
    }

    fn queue_name() -> String {
        format!("trellis-test-{}", uuid::Uuid::new_v4().simple())
    }

    #[tokio::test]
    async fn a_published_message_is_delivered_and_an_unacked_one_comes_back() {
        let name = queue_name();
        let queue = WorkQueue::connect(&amqp_url(), &name).await.unwrap();
        queue.publish(b"{\"run\":1}").await.unwrap();

        // A consumer that dies without acking: the broker redelivers.
        let first = WorkQueue::connect(&amqp_url(), &name).await.unwrap();
        let mut deliveries = first.consume("first", 1).await.unwrap();
        let delivery = deliveries.next().await.unwrap().unwrap();
        assert_eq!(delivery.payload(), b"{\"run\":1}");
        assert!(!delivery.redelivered());
        first.close().await;

        let second = WorkQueue::connect(&amqp_url(), &name).await.unwrap();
        let mut deliveries = second.consume("second", 1).await.unwrap();
        let again = tokio::time::timeout(std::time::Duration::from_secs(10), deliveries.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(again.payload(), b"{\"run\":1}");
        assert!(again.redelivered());
        again.ack().await.unwrap();
        assert_eq!(queue.purge().await.unwrap(), 0, "the ack removed it");
        queue.delete().await.unwrap();
        second.close().await;
        queue.close().await;
    }

    #[tokio::test]
    async fn an_unreachable_broker_is_a_clear_error_without_credentials() {
        let error = WorkQueue::connect("amqp://guest:secret@127.0.0.1:1/%2f", "x")
            .await
            .err()
            .unwrap();
        let text = error.to_string();
        assert!(text.contains("127.0.0.1:1"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
}
