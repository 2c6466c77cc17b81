//! The distributed roles: `trellis scheduler` and `trellis worker`.
//!
//! Both connect to the shared database (migrating it if needed), the
//! RabbitMQ work queue and, when configured, Redis for live events; both
//! stop cleanly on SIGTERM or Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use trellis_queue::WorkQueue;
use trellis_services::Services;
use trellis_services::execution::Executors;
use trellis_services::execution::local::{LocalConfig, LocalExecutor};
use trellis_services::execution::workers::WorkQueueExecutor;
use trellis_services::scheduler::{Scheduler, SchedulerConfig};
use trellis_services::worker::{Worker, relay};

use crate::cli::{BrokerArgs, DatabaseArgs, SchedulerArgs, WorkerArgs};
use crate::startup::{connect, events, host_name, signal_shutdown, store_missing_specs};

/// What both roles open.
struct Wiring {
    services: Services,
    queue: Arc<WorkQueue>,
    shutdown: CancellationToken,
    db: trellis_db::Db,
}

async fn wire(role: &str, database: &DatabaseArgs, brokers: &BrokerArgs) -> anyhow::Result<Wiring> {
    let amqp = brokers.require_amqp(role)?;
    let settings = database.database()?;
    let db = connect(&settings).await?;
    db.migrate()
        .await
        .with_context(|| format!("migrating {}", settings.describe()))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_shutdown(shutdown.clone()));
    let events = events(
        brokers.redis_url.as_deref().filter(|u| !u.is_empty()),
        &brokers.redis_prefix(),
        shutdown.clone(),
    )
    .await?;
    let queue = WorkQueue::connect(&amqp, &brokers.work_queue()).await?;
    tracing::info!(
        "trellis {role} uses {} and the work queue `{}`",
        settings.describe(),
        brokers.work_queue()
    );
    let services = Services::new(db.clone()).with_events(events);
    store_missing_specs(&services).await?;
    Ok(Wiring {
        services,
        queue: Arc::new(queue),
        shutdown,
        db,
    })
}

/// `trellis scheduler`: queues, plans and dispatches runs through the
/// outbox, relays the outbox to RabbitMQ, and re-queues runs whose worker
/// went silent.
pub async fn scheduler(args: SchedulerArgs) -> anyhow::Result<()> {
    let wiring = wire("scheduler", &args.database, &args.brokers).await?;
    let config = SchedulerConfig {
        concurrency: args.concurrency,
        queues: args.queues.into_iter().collect(),
        lost_after: Duration::from_secs(args.heartbeat.lost_after_secs),
        ..SchedulerConfig::default()
    };
    let services = wiring
        .services
        .clone()
        .with_configured_queues(config.configured_queues());
    let written = Arc::new(tokio::sync::Notify::new());
    let relaying = tokio::spawn(relay(
        services.clone(),
        wiring.queue.clone(),
        written.clone(),
        wiring.shutdown.clone(),
    ));
    // Queues go to the workers unless bound to `local` (processes on this
    // host).
    let local = LocalExecutor::new(
        services.clone(),
        LocalConfig {
            heartbeat: Duration::from_secs(args.heartbeat.heartbeat_secs),
            system_metrics: args.heartbeat.system_metrics(),
            ..LocalConfig::new(
                args.database.data_dir.clone(),
                args.api_url.trim_end_matches('/').to_owned(),
                format!("local:{}", host_name()),
            )
        },
        wiring.shutdown.clone(),
    );
    let executors = Executors::new(Arc::new(WorkQueueExecutor::new(services.clone(), written)))
        .with(Arc::new(local));
    Scheduler::new(services, config, executors, wiring.shutdown.clone())
        .run_until_stopped()
        .await;
    let _ = relaying.await;
    wiring.queue.close().await;
    wiring.db.close().await;
    Ok(())
}

/// `trellis worker`: executes runs from the work queue on this host.
pub async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    let wiring = wire("worker", &args.database, &args.brokers).await?;
    std::fs::create_dir_all(&args.database.data_dir).with_context(|| {
        format!(
            "creating the data directory {}",
            args.database.data_dir.display()
        )
    })?;
    let name = args
        .name
        .unwrap_or_else(|| format!("{}-{}", host_name(), std::process::id()));
    let config = LocalConfig {
        heartbeat: Duration::from_secs(args.heartbeat.heartbeat_secs),
        system_metrics: args.heartbeat.system_metrics(),
        advertise_host: args.advertise_host.clone(),
        ..LocalConfig::new(
            args.database.data_dir.clone(),
            args.api_url.trim_end_matches('/').to_owned(),
            format!("worker:{name}"),
        )
    };
    let outcome = Worker::new(
        wiring.services.clone(),
        config,
        args.concurrency,
        wiring.queue.clone(),
        wiring.shutdown.clone(),
    )
    .run()
    .await;
    wiring.queue.close().await;
    wiring.db.close().await;
    Ok(outcome?)
}
