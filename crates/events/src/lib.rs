//! Live events: "a run's logs grew", "a run's status changed".
//!
//! Events are notifications, not data. The database stays the source of
//! truth: a reader that hears about new log lines re-reads them from its
//! cursor, so a lost or repeated event can delay a stream but never drop or
//! duplicate a line. That is what lets the same readers work over an
//! in-process broadcast (the embedded default) and over Redis pub/sub (when
//! a scheduler, workers and servers are separate processes).
//!
//! [`Events::local`] keeps events inside this process. [`Events::redis`]
//! publishes them to a Redis channel and relays the channel, from every
//! process, into the local broadcast its readers subscribe to.

use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use trellis_domain::lifecycle::RunStatus;
use uuid::Uuid;

/// How many events a slow subscriber may fall behind before it misses some
/// (and, being a cursor reader, catches up from the database instead).
const BACKLOG: usize = 4096;

/// Something that changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// Lines were appended to a run's logs, up to cursor `last`.
    Logs { run: Uuid, last: i64 },
    /// A run moved to `status`.
    Status {
        run: Uuid,
        project_id: i64,
        status: RunStatus,
    },
    /// Metric points were logged to a run of project `project_id`.
    Metrics { run: Uuid, project_id: i64 },
}

/// Failures to reach Redis.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("cannot use Redis at {url}: {source}")]
    Redis {
        url: String,
        #[source]
        source: redis::RedisError,
    },
}

/// The event bus; cheap to clone.
#[derive(Clone)]
pub struct Events {
    local: broadcast::Sender<Event>,
    redis: Option<RedisPublisher>,
}

#[derive(Clone)]
struct RedisPublisher {
    connection: redis::aio::MultiplexedConnection,
    channel: String,
}

impl Default for Events {
    fn default() -> Self {
        Self::local()
    }
}

impl Events {
    /// Events that stay inside this process.
    pub fn local() -> Self {
        let (local, _) = broadcast::channel(BACKLOG);
        Self { local, redis: None }
    }

    /// Events shared through Redis at `url` on the channel
    /// `<prefix>events`, relayed into this process until `shutdown`.
    /// Processes that should hear each other use the same prefix; tests use
    /// a prefix of their own.
    pub async fn redis(
        url: &str,
        prefix: &str,
        shutdown: CancellationToken,
    ) -> Result<Self, EventsError> {
        let failed = |source| EventsError::Redis {
            url: url.to_owned(),
            source,
        };
        let client = redis::Client::open(url).map_err(failed)?;
        let connection = client
            .get_multiplexed_async_connection()
            .await
            .map_err(failed)?;
        let channel = format!("{prefix}events");
        let mut pubsub = client.get_async_pubsub().await.map_err(failed)?;
        pubsub.subscribe(&channel).await.map_err(failed)?;
        let (local, _) = broadcast::channel(BACKLOG);
        tokio::spawn(relay(
            client,
            pubsub,
            channel.clone(),
            local.clone(),
            shutdown,
        ));
        Ok(Self {
            local,
            redis: Some(RedisPublisher {
                connection,
                channel,
            }),
        })
    }

    /// Announces `event` to every subscriber (in every process sharing the
    /// Redis channel). Never fails the caller: the change it announces is
    /// already committed, and readers also poll.
    pub async fn publish(&self, event: Event) {
        match &self.redis {
            None => {
                // No subscriber is not an error.
                let _ = self.local.send(event);
            }
            Some(redis) => {
                let Ok(payload) = serde_json::to_string(&event) else {
                    return;
                };
                let mut connection = redis.connection.clone();
                let sent: Result<i64, _> = redis::cmd("PUBLISH")
                    .arg(&redis.channel)
                    .arg(payload)
                    .query_async(&mut connection)
                    .await;
                if let Err(error) = sent {
                    tracing::warn!(error = %error, "cannot publish an event to Redis: {error}");
                    // Still tell this process's readers.
                    let _ = self.local.send(event);
                }
            }
        }
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.local.subscribe()
    }

    /// `redis` or `local`, for logs and health.
    pub fn transport(&self) -> &'static str {
        if self.redis.is_some() {
            "redis"
        } else {
            "local"
        }
    }
}

/// Copies the Redis channel into the local broadcast, reconnecting after a
/// lost connection.
async fn relay(
    client: redis::Client,
    mut pubsub: redis::aio::PubSub,
    channel: String,
    local: broadcast::Sender<Event>,
    shutdown: CancellationToken,
) {
    loop {
        {
            let mut messages = pubsub.on_message();
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    message = messages.next() => {
                        let Some(message) = message else { break };
                        let Ok(payload) = message.get_payload::<String>() else { continue };
                        match serde_json::from_str::<Event>(&payload) {
                            Ok(event) => { let _ = local.send(event); }
                            Err(error) => tracing::warn!(error = %error, "ignoring a malformed event from Redis: {error}"),
                        }
                    }
                }
            }
        }
        tracing::warn!("lost the Redis event subscription; reconnecting");
        pubsub = loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            match client.get_async_pubsub().await {
                Ok(mut fresh) => {
                    if fresh.subscribe(&channel).await.is_ok() {
                        break fresh;
                    }
                }
                Err(error) => tracing::warn!(error = %error, "cannot reach Redis: {error}"),
            }
        };
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    fn redis_url() -> String {
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
    }

    #[tokio::test]
    async fn local_events_reach_subscribers() {
        let events = Events::local();
        let mut heard = events.subscribe();
        let run = Uuid::new_v4();
        events.publish(Event::Logs { run, last: 7 }).await;
        assert_eq!(heard.recv().await.unwrap(), Event::Logs { run, last: 7 });
    }

    #[tokio::test]
    async fn redis_events_reach_another_process_bus_with_the_same_prefix_only() {
        let shutdown = CancellationToken::new();
        let prefix = format!("trellis-test-{}:", Uuid::new_v4().simple());
        let publisher = Events::redis(&redis_url(), &prefix, shutdown.clone())
            .await
            .unwrap();
        let listener = Events::redis(&redis_url(), &prefix, shutdown.clone())
            .await
            .unwrap();
        let stranger = Events::redis(&redis_url(), "trellis-test-other:", shutdown.clone())
            .await
            .unwrap();
        let mut heard = listener.subscribe();
        let mut not_heard = stranger.subscribe();
        let run = Uuid::new_v4();
        let event = Event::Status {
            run,
            project_id: 3,
            status: RunStatus::Running,
        };
        publisher.publish(event.clone()).await;
        let got = tokio::time::timeout(Duration::from_secs(5), heard.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, event);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), not_heard.recv())
                .await
                .is_err(),
            "a bus with another prefix heard the event"
        );
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_bad_redis_url_is_a_clear_error() {
        let error = Events::redis("redis://127.0.0.1:1", "x:", CancellationToken::new())
            .await
            .err()
            .unwrap();
        assert!(error.to_string().contains("127.0.0.1:1"), "{error}");
    }
}
