//! Typed settings, built once from the command line and the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Where the metadata lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseSettings {
    /// The embedded default: a SQLite file.
    Sqlite { path: PathBuf },
    /// A PostgreSQL server, from `DATABASE_URL`.
    Postgres { url: String },
}

impl DatabaseSettings {
    /// A description safe to log (no password).
    pub fn describe(&self) -> String {
        match self {
            DatabaseSettings::Sqlite { path } => format!("sqlite at {}", path.display()),
            DatabaseSettings::Postgres { url } => {
                let without_credentials =
                    url.rsplit_once('@').map_or(url.as_str(), |(_, host)| host);
                format!("postgres at {without_credentials}")
            }
        }
    }
}

/// Everything `trellis server` needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The data directory (SQLite file, and later artifacts and logs).
    pub data_dir: PathBuf,
    /// The metadata store.
    pub database: DatabaseSettings,
    /// The compiled dashboard (`pkg/` with the WASM, JS and CSS).
    pub site_root: PathBuf,
    /// The local executor, or `None` to only track runs.
    pub executor: Option<ExecutorSettings>,
    /// Redis for live events across processes; `None`: in-process only.
    pub redis_url: Option<String>,
    /// Prefix of the Redis channels.
    pub redis_prefix: String,
    /// When idle services are stopped.
    pub culling: CullingSettings,
}

/// When idle services are stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CullingSettings {
    /// How often services are checked.
    pub every: std::time::Duration,
    /// The idle timeout of built-in workspaces whose spec sets none.
    pub hub_default: Option<std::time::Duration>,
}

/// The local executor's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorSettings {
    /// At most this many runs at once.
    pub concurrency: u32,
    /// Named queues beyond `default`.
    pub queues: std::collections::BTreeMap<String, trellis_domain::scheduling::QueueLimits>,
    pub heartbeat: std::time::Duration,
    pub lost_after: std::time::Duration,
    /// How often runs' resource use is sampled; `None`: never.
    pub system_metrics: Option<std::time::Duration>,
}
