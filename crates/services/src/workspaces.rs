//! Workspaces: service runs as the proxy and the dashboard see them.
//!
//! The proxy asks [`Workspaces::target`] where a declared port of a run is
//! served. The answer comes from what the run's executor recorded
//! ([`crate::execution::RunHandle::record_endpoints`]: the local executor
//! records `127.0.0.1:port`, a worker its advertised host, the Kubernetes
//! agent a Service's address), so the proxy never knows which executor
//! runs the service. The proxy marks traffic on the [`ActivityBoard`]; the
//! culler reads it to stop idle services.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use trellis_api_types as api;
use trellis_db::runs::{self, RunRow};
use trellis_domain::lifecycle::RunStatus;
use trellis_domain::proxy::{PrefixMode, ServicePath};
use trellis_domain::spec::StoredSpec;
use uuid::Uuid;

use crate::runs::{decode_spec, to_dto};
use crate::{ServiceError, ServiceResult, Services};

/// Where a proxied request goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The service answers at `authority` (`host:port`).
    Serving { authority: String },
    /// The run declares the port but does not serve it now.
    NotServing { run: Box<api::Run> },
}

/// The services of one project (or all), as the Workspaces view lists them.
pub struct Workspaces<'a> {
    pub(crate) services: &'a Services,
}

/// How many services a listing reads at most.
const MAX_LISTED: u32 = 500;

impl Workspaces<'_> {
    /// Where `path`'s port is served. Not found (a 404) when the run is
    /// not in that project or does not declare the port.
    pub async fn target(&self, path: &ServicePath) -> ServiceResult<Target> {
        let not_found = || ServiceError::NotFound {
            entity: "run",
            id: path.uuid.simple().to_string(),
        };
        let (row, compiled, endpoints) = runs::service_target(&self.services.db, path.uuid)
            .await?
            .ok_or_else(not_found)?;
        if row.owner != path.owner || row.project != path.project {
            return Err(not_found());
        }
        let endpoints = read_endpoints(&row, endpoints.as_deref())?;
        let declared = match compiled.as_deref().map(decode_spec).transpose()? {
            Some(spec) if !spec.run.ports.is_empty() => spec.run.ports.contains(&path.port),
            // A service that declares no ports gets one; its number is the
            // port it was given.
            _ => endpoints.contains_key(&path.port),
        };
        if !declared {
            return Err(ServiceError::NotFound {
                entity: "port",
                id: format!("{} of run {}", path.port, row.uuid.simple()),
            });
        }
        Ok(match endpoints.get(&path.port) {
            Some(authority) if row.status == RunStatus::Running => Target::Serving {
                authority: authority.clone(),
            },
            _ => Target::NotServing {
                run: Box::new(to_dto(row)),
            },
        })
    }

    /// Project `owner/project`'s service runs that are active, newest
    /// first, with their proxied addresses and idle times.
    pub async fn list(&self, owner: &str, project: &str) -> ServiceResult<Vec<api::Workspace>> {
        let project = crate::projects::load(self.services, owner, project).await?;
        let rows = runs::services_in(
            &self.services.db,
            Some(project.id),
            &RunStatus::active(),
            MAX_LISTED,
        )
        .await?;
        let now = self.services.now();
        rows.into_iter()
            .map(|(row, compiled, endpoints)| {
                let service = Service::read(row, compiled.as_deref(), endpoints.as_deref())?;
                Ok(service.to_workspace(&self.services.activity, now))
            })
            .collect()
    }

    /// Run `at` as a workspace; `None` when it is not a service.
    pub async fn get(&self, at: crate::runs::RunRef<'_>) -> ServiceResult<Option<api::Workspace>> {
        let uuid: trellis_domain::run::RunId = at
            .uuid
            .parse()
            .map_err(|e| ServiceError::invalid("uuid", e))?;
        let found = runs::service_target(&self.services.db, uuid.0)
            .await?
            .filter(|(row, ..)| row.owner == at.owner && row.project == at.project);
        let Some((row, compiled, endpoints)) = found else {
            return Err(ServiceError::NotFound {
                entity: "run",
                id: at.uuid.to_owned(),
            });
        };
        if row.kind != Some(trellis_domain::run::RunKind::Service) {
            return Ok(None);
        }
        let service = Service::read(row, compiled.as_deref(), endpoints.as_deref())?;
        Ok(Some(service.to_workspace(
            &self.services.activity,
            self.services.now(),
        )))
    }

    /// Starts built-in component `hub` (`jupyterlab`, ...) in
    /// `owner/project`, named `name`, with `params` for its inputs.
    pub async fn start(
        &self,
        owner: &str,
        project: &str,
        hub: &str,
        name: Option<String>,
        params: serde_json::Map<String, serde_json::Value>,
    ) -> ServiceResult<api::Run> {
        let component =
            trellis_domain::spec::hub::find(hub).map_err(|e| ServiceError::invalid("hub", e))?;
        let input = api::CreateRun {
            name,
            content: Some(trellis_domain::spec::hub::operation(component.name, &[])),
            params: (!params.is_empty()).then_some(params),
            ..api::CreateRun::default()
        };
        self.services.runs().create(owner, project, input).await
    }

    /// Every running service, for the culler.
    pub async fn running(&self) -> ServiceResult<Vec<Service>> {
        let rows =
            runs::services_in(&self.services.db, None, &[RunStatus::Running], MAX_LISTED).await?;
        rows.into_iter()
            .map(|(row, compiled, endpoints)| {
                Service::read(row, compiled.as_deref(), endpoints.as_deref())
            })
            .collect()
    }

    /// Stops `service` as idle: `stopping` with reason `Culled`; its
    /// executor then stops the process and records `stopped` / `Culled`.
    /// `false` when it was no longer running.
    pub async fn cull(&self, service: &Service, message: &str) -> ServiceResult<bool> {
        let changed = self
            .services
            .runs()
            .stop_as(
                service.run.uuid,
                trellis_domain::execution::Reason::Culled,
                message,
            )
            .await?;
        if changed {
            self.services.activity.forget(service.run.uuid);
        }
        Ok(changed)
    }
}

/// One service run with what its spec and executor recorded.
#[derive(Debug, Clone)]
pub struct Service {
    pub run: RunRow,
    pub spec: Option<StoredSpec>,
    /// Declared port → `host:port` where it is served.
    pub endpoints: BTreeMap<u16, String>,
}

impl Service {
    fn read(row: RunRow, compiled: Option<&str>, endpoints: Option<&str>) -> ServiceResult<Self> {
        Ok(Self {
            endpoints: read_endpoints(&row, endpoints)?,
            spec: compiled.map(decode_spec).transpose()?,
            run: row,
        })
    }

    /// The prefix a declared port is proxied under.
    pub fn prefix(&self, port: u16) -> String {
        let mode = if self.spec.as_ref().is_some_and(|s| s.run.rewrite_path) {
            PrefixMode::Stripped
        } else {
            PrefixMode::Kept
        };
        format!(
            "{}{}/{}/runs/{}/{port}",
            mode.root(),
            self.run.owner,
            self.run.project,
            self.run.uuid.simple()
        )
    }

    /// `termination.culling.timeout`, in seconds.
    pub fn culling(&self) -> Option<u64> {
        self.spec.as_ref().and_then(|s| s.run.culling)
    }

    /// The component it runs, such as `jupyterlab`.
    pub fn component(&self) -> Option<&str> {
        self.spec.as_ref().and_then(|s| s.run.component.as_deref())
    }

    /// Seconds without proxied traffic: since the last request or
    /// WebSocket frame, or since this attempt started serving.
    pub fn idle_secs(&self, board: &ActivityBoard, now: DateTime<Utc>) -> Option<u64> {
        // `started_at` is the first attempt's (a resumed run keeps it);
        // `updated_at` is when the run last changed status, which for a
        // running service is when this attempt began serving.
        let started = self
            .run
            .timing
            .started_at?
            .max(board.since)
            .max(self.run.updated_at);
        let last = board
            .last_millis(self.run.uuid)
            .and_then(DateTime::from_timestamp_millis)
            .map_or(started, |last| last.max(started));
        Some(u64::try_from((now - last).num_seconds()).unwrap_or(0))
    }

    fn to_workspace(&self, board: &ActivityBoard, now: DateTime<Utc>) -> api::Workspace {
        let ports = match &self.spec {
            Some(spec) if !spec.run.ports.is_empty() => spec.run.ports.clone(),
            _ => self.endpoints.keys().copied().collect(),
        };
        let serving = self.run.status == RunStatus::Running;
        api::Workspace {
            component: self.component().map(str::to_owned),
            url: ports
                .first()
                .filter(|port| serving && self.endpoints.contains_key(port))
                .map(|port| format!("{}/", self.prefix(*port))),
            uptime_secs: self
                .run
                .timing
                .started_at
                .filter(|_| serving)
                .map(|started| u64::try_from((now - started).num_seconds()).unwrap_or(0)),
            idle_secs: self.idle_secs(board, now).filter(|_| serving),
            culling_secs: self.culling(),
            ports,
            run: to_dto(self.run.clone()),
        }
    }
}

fn read_endpoints(row: &RunRow, text: Option<&str>) -> ServiceResult<BTreeMap<u16, String>> {
    match text {
        None => Ok(BTreeMap::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| {
            ServiceError::Dependency(format!(
                "the endpoints stored for run {} do not read: {e}",
                row.uuid.simple()
            ))
        }),
    }
}

/// Proxied traffic per run, in memory: what idle means. Shared by the
/// proxy (which marks it) and the culler and dashboard (which read it) of
/// one server process.
pub struct ActivityBoard {
    runs: Mutex<HashMap<Uuid, Arc<Activity>>>,
    /// When this process began watching: traffic before it is unknown, so
    /// a service is not counted idle from before a restart of the server.
    since: DateTime<Utc>,
}

impl Default for ActivityBoard {
    fn default() -> Self {
        Self {
            runs: Mutex::default(),
            since: Utc::now(),
        }
    }
}

/// One run's traffic: cheap to mark from every relayed frame.
#[derive(Default)]
pub struct Activity {
    last_millis: AtomicI64,
    open_sockets: AtomicUsize,
}

impl Activity {
    /// Traffic now.
    pub fn touch(&self) {
        self.last_millis
            .store(Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    /// A WebSocket opened; it counts as open until the guard drops.
    pub fn socket(self: &Arc<Self>) -> SocketGuard {
        self.open_sockets.fetch_add(1, Ordering::Relaxed);
        self.touch();
        SocketGuard(self.clone())
    }
}

/// Holds a WebSocket open on the board.
pub struct SocketGuard(Arc<Activity>);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        self.0.open_sockets.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

impl ActivityBoard {
    /// Run `uuid`'s activity, created on first use.
    pub fn of(&self, uuid: Uuid) -> Arc<Activity> {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.entry(uuid).or_default().clone()
    }

    fn last_millis(&self, uuid: Uuid) -> Option<i64> {
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.get(&uuid)
            .map(|a| a.last_millis.load(Ordering::Relaxed))
            .filter(|millis| *millis > 0)
    }

    /// How many WebSockets to run `uuid` are open now.
    pub fn open_sockets(&self, uuid: Uuid) -> usize {
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.get(&uuid)
            .map_or(0, |a| a.open_sockets.load(Ordering::Relaxed))
    }

    /// Drops a run that stopped, so the board does not grow.
    pub fn forget(&self, uuid: Uuid) {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.remove(&uuid);
    }
}
