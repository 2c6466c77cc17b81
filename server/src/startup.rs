//! Wiring: connect the database, build the router, serve until a signal.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use leptos::config::{Env, LeptosOptions};
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;
use trellis_db::Db;
use trellis_events::Events;
use trellis_services::Services;
use trellis_services::execution::Executors;
use trellis_services::execution::local::{LocalConfig, LocalExecutor};
use trellis_services::scheduler::{Scheduler, SchedulerConfig};

use crate::config::{DatabaseSettings, Settings};
use crate::{api, streams};

/// State shared by every route: the services, and Leptos's options for
/// rendering pages and serving the compiled front end. Cloned for every
/// request (axum hands each handler its own copy), so it is one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

/// What [`AppState`] shares.
pub struct AppStateInner {
    /// Use cases, shared with the dashboard's server functions.
    pub services: Services,
    /// Where the compiled site lives and what it is called.
    pub leptos_options: LeptosOptions,
    /// The workspace proxy's client and address cache.
    pub proxy: crate::proxy::Proxy,
}

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// Opens the configured database.
pub async fn connect(database: &DatabaseSettings) -> anyhow::Result<Db> {
    let db = match database {
        DatabaseSettings::Sqlite { path } => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating the data directory {}", parent.display()))?;
            }
            Db::connect_sqlite(path).await
        }
        DatabaseSettings::Postgres { url } => Db::connect_postgres(url).await,
    };
    db.with_context(|| format!("connecting to {}", database.describe()))
}

/// `trellis migrate`: applies pending migrations and exits.
pub async fn migrate(database: &DatabaseSettings) -> anyhow::Result<()> {
    let db = connect(database).await?;
    db.migrate()
        .await
        .with_context(|| format!("migrating {}", database.describe()))?;
    tracing::info!("migrated {}", database.describe());
    db.close().await;
    Ok(())
}

/// Leptos options for a server listening on `settings.addr` and serving the
/// compiled site from `settings.site_root`.
pub fn leptos_options(settings: &Settings) -> LeptosOptions {
    // cargo-leptos names the compiled files after the site; it passes the
    // name at build time (a plain `cargo build` leaves it unset).
    let output_name = option_env!("LEPTOS_OUTPUT_NAME")
        .filter(|n| !n.is_empty())
        .unwrap_or("trellis");
    LeptosOptions::builder()
        .output_name(output_name)
        .site_root(settings.site_root.to_string_lossy().as_ref())
        .site_pkg_dir("pkg")
        .site_addr(settings.addr)
        .env(if cfg!(debug_assertions) {
            Env::DEV
        } else {
            Env::PROD
        })
        .build()
}

/// The whole HTTP surface: `/api/v1`, `/healthz`, the dashboard and its
/// server functions, and the compiled front end's files.
pub fn router(services: Services, leptos_options: LeptosOptions) -> Router {
    let state = AppState(Arc::new(AppStateInner {
        services: services.clone(),
        leptos_options: leptos_options.clone(),
        proxy: crate::proxy::Proxy::default(),
    }));
    let routes = generate_route_list(app::App);
    // The compiled front end is served before the dashboard's routes: its
    // paths (`/pkg/trellis.js`) would otherwise match `/{owner}/{project}`.
    let pkg_dir = std::path::Path::new(leptos_options.site_root.as_ref())
        .join(leptos_options.site_pkg_dir.as_ref());
    let pkg_route = format!("/{}", leptos_options.site_pkg_dir);
    Router::new()
        .nest_service(&pkg_route, ServeDir::new(pkg_dir))
        .nest("/api/v1", api::router())
        .nest("/streams/v1", streams::router())
        .nest("/api/2.0", crate::mlflow::router())
        .route("/healthz", get(api::health::health))
        .merge(crate::proxy::router())
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(services.clone()),
            move || app::shell(leptos_options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(
            app::shell,
        ))
        // 5xx answers are warnings here: a proxied service that is down is
        // not the server failing, and handlers log their own internal
        // errors as errors.
        .layer(
            TraceLayer::new_for_http()
                .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::WARN)),
        )
        .layer(CatchPanicLayer::custom(api::error::panic_response))
        .with_state(state)
}

/// `trellis server`: migrates, then serves until SIGTERM or Ctrl-C, letting
/// in-flight requests finish.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let db = connect(&settings.database).await?;
    db.migrate()
        .await
        .with_context(|| format!("migrating {}", settings.database.describe()))?;
    let shutdown = CancellationToken::new();
    let events = events(
        settings.redis_url.as_deref(),
        &settings.redis_prefix,
        shutdown.clone(),
    )
    .await?;
    // The API lists the queues this server schedules with.
    let scheduling = settings.executor.as_ref().map(|executor| SchedulerConfig {
        concurrency: executor.concurrency,
        queues: executor.queues.clone(),
        lost_after: executor.lost_after,
        ..SchedulerConfig::default()
    });
    let configured = scheduling
        .as_ref()
        .map(SchedulerConfig::configured_queues)
        .unwrap_or_default();
    let services = Services::new(db.clone())
        .with_events(events)
        .with_artifacts(settings.data_dir.join("artifacts"))
        .with_configured_queues(configured);
    store_missing_specs(&services).await?;
    let services_for_scheduler = services.clone();
    let app = router(services, leptos_options(&settings));
    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .with_context(|| format!("listening on {}", settings.addr))?;
    tracing::info!(
        "Trellis is serving http://{} with {}",
        listener.local_addr()?,
        settings.database.describe()
    );
    tokio::spawn(signal_shutdown(shutdown.clone()));
    tokio::spawn(crate::proxy::cull_idle(
        services_for_scheduler.clone(),
        settings.culling.clone(),
        shutdown.clone(),
    ));
    let scheduler = settings.executor.zip(scheduling).map(|(executor, config)| {
        let local = LocalExecutor::new(
            services_for_scheduler.clone(),
            LocalConfig {
                heartbeat: executor.heartbeat,
                system_metrics: executor.system_metrics,
                ..LocalConfig::new(
                    settings.data_dir.clone(),
                    format!("http://{}", settings.addr),
                    format!("local:{}", host_name()),
                )
            },
            shutdown.clone(),
        );
        let executors = Executors::new(Arc::new(local));
        tokio::spawn(
            Scheduler::new(
                services_for_scheduler.clone(),
                config,
                executors,
                shutdown.clone(),
            )
            .run_until_stopped(),
        )
    });
    // Small answers (and proxied ones) go out at once, not after Nagle's
    // delay; the peer address goes to proxied services as X-Forwarded-For.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY not set: {error}");
        }
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned())
    .await
    .context("serving HTTP")?;
    if let Some(scheduler) = scheduler {
        // Running processes are stopped (SIGTERM, then SIGKILL) and marked.
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), scheduler)
            .await
            .ok();
    }
    tracing::info!("shutting down: closing the database");
    tokio::time::timeout(Duration::from_secs(10), db.close())
        .await
        .ok();
    Ok(())
}

/// Runs submitted before specs were stored get theirs (once, after the
/// migration that added them).
pub async fn store_missing_specs(services: &Services) -> anyhow::Result<()> {
    let stored = services
        .runs()
        .store_missing_specs()
        .await
        .context("storing the compiled specs of earlier runs")?;
    if stored > 0 {
        tracing::info!("stored the compiled spec of {stored} runs submitted by an earlier Trellis");
    }
    Ok(())
}

/// The event bus: Redis when configured, otherwise in-process.
pub async fn events(
    redis_url: Option<&str>,
    prefix: &str,
    shutdown: CancellationToken,
) -> anyhow::Result<Events> {
    match redis_url {
        Some(url) => {
            let events = Events::redis(url, prefix, shutdown).await?;
            tracing::info!("live events travel over Redis");
            Ok(events)
        }
        None => Ok(Events::local()),
    }
}

/// This host's name, for executor ids.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Cancels `token` on Ctrl-C or SIGTERM.
pub async fn signal_shutdown(token: CancellationToken) {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
    token.cancel();
}
