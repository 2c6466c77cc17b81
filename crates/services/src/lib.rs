//! Trellis use cases.
//!
//! [`Services`] is the application state shared by the REST handlers and the
//! dashboard's server functions. Each method validates input with the domain
//! rules, calls the data layer, and returns wire types, so the edges only
//! translate requests and errors.
//!
//! Layout: [`projects`], [`runs`], [`scheduler`] (which queued runs start,
//! and where), [`execution`] (the executor seam: the local process executor
//! and the work-queue executor), [`worker`] (the outbox relay and the
//! distributed worker), [`streams`] (live logs and statuses),
//! [`tracking`] (metrics, params, outputs, tags, artifacts), [`artifacts`]
//! (the local artifact store), [`mlflow`] (the MLflow tracking API),
//! [`error`] ([`ServiceError`], the one error
//! the edges map to HTTP statuses).

pub mod artifacts;
pub mod error;
pub mod execution;
pub mod mlflow;
pub mod pipelines;
pub mod projects;
pub mod queues;
pub mod runs;
pub mod scheduler;
pub mod streams;
pub mod tracking;
pub mod worker;
pub mod workspaces;

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use trellis_db::Db;
use trellis_events::Events;

pub use error::{ServiceError, ServiceResult};

/// Where services read the time; tests substitute a fixed clock.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The application state: the database and the clock.
#[derive(Clone)]
pub struct Services {
    /// The metadata store, SQLite or PostgreSQL.
    db: Db,
    /// The source of `now` for timestamps.
    clock: Clock,
    /// Where status changes and log appends are announced.
    events: Events,
    /// The queues this process was configured with (`--queue`, `default`).
    configured_queues:
        Arc<std::collections::BTreeMap<String, trellis_domain::scheduling::QueueLimits>>,
    /// Where run artifacts are kept; `None` in processes that serve none.
    artifacts: Option<artifacts::ArtifactStore>,
    /// Trials' metric series early stopping has read, per sweep, so a
    /// tick re-reads only the series that grew.
    stopping_series: pipelines::SeriesCache,
    /// Traffic the workspace proxy relayed, per run: what idle means.
    activity: Arc<workspaces::ActivityBoard>,
}

impl Services {
    /// Services over `db` using the system clock.
    pub fn new(db: Db) -> Self {
        Self::with_clock(db, Arc::new(Utc::now))
    }

    /// Services over `db` reading time from `clock`.
    pub fn with_clock(db: Db, clock: Clock) -> Self {
        Self {
            db,
            clock,
            events: Events::local(),
            configured_queues: Arc::default(),
            artifacts: None,
            stopping_series: pipelines::SeriesCache::default(),
            activity: Arc::default(),
        }
    }

    /// These services knowing the configured queues (listed by the API).
    pub fn with_configured_queues(
        mut self,
        queues: std::collections::BTreeMap<String, trellis_domain::scheduling::QueueLimits>,
    ) -> Self {
        self.configured_queues = Arc::new(queues);
        self
    }

    /// These services keeping run artifacts under `root`.
    pub fn with_artifacts(mut self, root: impl Into<std::path::PathBuf>) -> Self {
        self.artifacts = Some(artifacts::ArtifactStore::new(root));
        self
    }

    /// Tracking use cases: metrics, params, outputs, tags, artifacts.
    pub fn tracking(&self) -> tracking::Tracking<'_> {
        tracking::Tracking { services: self }
    }

    /// The MLflow tracking API's use cases.
    pub fn mlflow(&self) -> mlflow::Mlflow<'_> {
        mlflow::Mlflow { services: self }
    }

    /// Queue use cases.
    pub fn queues(&self) -> queues::Queues<'_> {
        queues::Queues { services: self }
    }

    /// These services announcing changes on `events` (Redis, say).
    pub fn with_events(mut self, events: Events) -> Self {
        self.events = events;
        self
    }

    /// The event bus, for live streams.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// The database, for health checks and shutdown.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Project use cases.
    pub fn projects(&self) -> projects::Projects<'_> {
        projects::Projects { services: self }
    }

    /// Service runs as workspaces: the proxy's lookup, listing, culling.
    pub fn workspaces(&self) -> workspaces::Workspaces<'_> {
        workspaces::Workspaces { services: self }
    }

    /// Proxied traffic per run, marked by the proxy.
    pub fn activity(&self) -> &workspaces::ActivityBoard {
        &self.activity
    }

    /// Run use cases.
    pub fn runs(&self) -> runs::Runs<'_> {
        runs::Runs { services: self }
    }

    /// Now, truncated to microseconds: both databases then store exactly the
    /// time we return to the caller (PostgreSQL keeps microseconds).
    fn now(&self) -> DateTime<Utc> {
        (self.clock)().trunc_subsecs(6)
    }
}
