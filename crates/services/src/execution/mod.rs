//! The execution seam: where a planned run goes to execute.
//!
//! The scheduler ([`crate::scheduler`]) decides *which* queued runs start
//! ([`trellis_domain::scheduling::plan`]) and on *which* executor (the one
//! the run's queue is bound to). An [`Executor`] decides *how*:
//!
//! - **start**: it takes the run from `queued` to `scheduled` (with
//!   whatever makes the hand-over durable, such as an outbox message in the
//!   same transaction) and from there on executes it;
//! - **observe**: it reports what it sees through one [`RunHandle`] per run
//!   (statuses, logs, heartbeats, resource use, where a service listens),
//!   and asks [`trellis_domain::execution::conclude`] what an ending means;
//! - **stop**: a stop request is the run's `stopping` status, which reaches
//!   every executor as an event on the bus ([`crate::Services::events`]);
//!   executions listen for it (with a slow status read as the fallback for a
//!   missed event), so no executor polls the database for stops;
//! - **recover**: at start-up it settles the runs a previous process of
//!   this executor left active;
//! - **address**: where a service's declared port can be reached, read from
//!   what the execution recorded ([`RunHandle::record_endpoints`]).
//!
//! Implementations today: [`local::LocalExecutor`] (processes on this
//! host, used by the embedded server and by each `trellis worker`) and
//! [`workers::WorkQueueExecutor`] (hands runs to the workers through the
//! outbox and RabbitMQ). A Kubernetes agent is a third implementation
//! behind the same trait.

pub mod init;
pub mod local;
pub mod workers;

use std::collections::BTreeMap;
use std::sync::Arc;

use trellis_domain::scheduling::ExecutorName;
use uuid::Uuid;

use crate::ServiceResult;

pub(crate) use handle::assignment as assignment_of;
pub use handle::{Assignment, RunHandle};

mod handle;

/// Where runs execute; see the module documentation.
#[async_trait::async_trait]
pub trait Executor: Send + Sync {
    /// The name queues bind to.
    fn name(&self) -> ExecutorName;

    /// Starts `runs`, which the scheduler planned from `queued` in one
    /// tick, handing them over in one transaction: the runs started. A run
    /// that had left `queued` meanwhile (stopped, say) is not among them:
    /// nothing was started for it.
    async fn start(&self, runs: &[Uuid]) -> ServiceResult<Vec<Uuid>>;

    /// At start-up, before the first tick: settles `left`, the active runs
    /// bound to this executor that a previous process left behind. How
    /// many it changed.
    async fn recover(&self, left: Vec<Assignment>) -> ServiceResult<usize>;

    /// After shutdown was signalled: waits until the runs this process
    /// executes have stopped and recorded how they ended.
    async fn drain(&self);

    /// Where the service port `port` (as the spec declares it) of `run`
    /// can be reached (`host:port`), once the run listens. The proxy reads
    /// the same record through [`crate::workspaces::Workspaces::target`].
    async fn address(&self, run: &RunHandle, port: u16) -> ServiceResult<Option<String>> {
        Ok(run.endpoints().await?.get(&port).cloned())
    }
}

/// The executors one scheduler hosts, and the one a queue bound to no
/// executor uses.
#[derive(Clone)]
pub struct Executors {
    by_name: BTreeMap<ExecutorName, Arc<dyn Executor>>,
    default: ExecutorName,
}

impl Executors {
    /// `default` alone; queues bound to no executor use it.
    pub fn new(default: Arc<dyn Executor>) -> Self {
        let name = default.name();
        Self {
            by_name: BTreeMap::from([(name, default)]),
            default: name,
        }
    }

    /// These executors and `executor` (replacing one of the same name).
    pub fn with(mut self, executor: Arc<dyn Executor>) -> Self {
        self.by_name.insert(executor.name(), executor);
        self
    }

    pub fn default_name(&self) -> ExecutorName {
        self.default
    }

    /// The names of the executors hosted here.
    pub fn names(&self) -> std::collections::BTreeSet<ExecutorName> {
        self.by_name.keys().copied().collect()
    }

    pub fn get(&self, name: ExecutorName) -> Option<&Arc<dyn Executor>> {
        self.by_name.get(&name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Executor>> {
        self.by_name.values()
    }
}
