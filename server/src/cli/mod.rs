//! The command line. Every option also reads an environment variable, so a
//! deployment configures Trellis through its environment alone.
//!
//! Server roles (`server`, `migrate`) are wired in `startup`; the user
//! commands (`projects`, `ops`, `run`, `check`) live in [`commands`] and talk
//! to a server over HTTP through [`client`], printing with [`output`].

pub mod client;
pub mod commands;
pub mod output;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

use trellis_domain::scheduling::QueueLimits;

use crate::config::{CullingSettings, DatabaseSettings, ExecutorSettings, Settings};

/// Trellis: an open-source machine-learning platform in one binary.
#[derive(Debug, Parser)]
#[command(
    name = "trellis",
    version,
    about = "Trellis: an open-source machine-learning platform in one binary",
    long_about = None
)]
pub struct Cli {
    /// Log format: human-readable text, or one JSON object per line.
    #[arg(long, global = true, env = "TRELLIS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the API and the dashboard (applies pending migrations first).
    Server(ServerArgs),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
    /// Manage projects on a Trellis server.
    Projects(commands::ProjectsArgs),
    /// List and manage runs (operations) on a Trellis server.
    Ops(commands::OpsArgs),
    /// Submit a Polyaxonfile as a new run.
    Run(commands::RunArgs),
    /// Check a Polyaxonfile without submitting it (no server needed).
    Check(commands::CheckArgs),
    /// The built-in components: ready-made workspaces (`trellis run --hub`).
    Hub(commands::HubArgs),
    /// Distributed mode: schedule queued runs onto the RabbitMQ work queue
    /// (needs AMQP_URL and a shared DATABASE_URL).
    Scheduler(SchedulerArgs),
    /// Distributed mode: execute runs from the RabbitMQ work queue on this
    /// host (needs AMQP_URL and a shared DATABASE_URL).
    Worker(WorkerArgs),
}

/// The brokers of distributed mode.
#[derive(Debug, Clone, Args)]
pub struct BrokerArgs {
    /// RabbitMQ for the work queue (`amqp://user:password@host:5672/%2f`).
    /// With it, `trellis server` only serves the API and dashboard, and
    /// `trellis scheduler` and `trellis worker` schedule and execute.
    #[arg(long, env = "AMQP_URL", hide_env_values = true)]
    pub amqp_url: Option<String>,
    /// Redis for live events (logs, statuses) across processes
    /// (`redis://host:6379`). Without it, streams poll the database.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of queue names and Redis channels, so several installations
    /// (or tests) can share one broker.
    #[arg(long, env = "TRELLIS_NAMESPACE", default_value = "trellis")]
    pub namespace: String,
}

impl BrokerArgs {
    /// The AMQP URL, required by the distributed roles.
    pub fn require_amqp(&self, role: &str) -> anyhow::Result<String> {
        self.amqp_url
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| anyhow::anyhow!("`trellis {role}` needs AMQP_URL (or --amqp-url): the RabbitMQ work queue it uses"))
    }

    /// The RabbitMQ queue of "start run" messages.
    pub fn work_queue(&self) -> String {
        format!("{}.runs", self.namespace)
    }

    /// The prefix of Redis channels.
    pub fn redis_prefix(&self) -> String {
        format!("{}:", self.namespace)
    }
}

/// How executors report that they are alive.
#[derive(Debug, Clone, Args)]
pub struct HeartbeatArgs {
    /// Seconds between an executing run's heartbeats.
    #[arg(long, env = "TRELLIS_HEARTBEAT_SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub heartbeat_secs: u64,
    /// Seconds of silence after which a run's executor counts as lost and
    /// the run is queued again.
    #[arg(long, env = "TRELLIS_LOST_AFTER_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub lost_after_secs: u64,
    /// Seconds between samples of an executing run's CPU, memory and GPU
    /// use, recorded as its `system/*` metrics; 0 records none.
    #[arg(long, env = "TRELLIS_SYSTEM_METRICS_SECS", default_value_t = 10)]
    pub system_metrics_secs: u64,
}

impl HeartbeatArgs {
    /// The system-metrics period, if sampling is on.
    pub fn system_metrics(&self) -> Option<Duration> {
        (self.system_metrics_secs > 0).then(|| Duration::from_secs(self.system_metrics_secs))
    }
}

/// Options of `trellis scheduler`.
#[derive(Debug, Clone, Args)]
pub struct SchedulerArgs {
    /// At most this many runs execute at once, across all workers.
    #[arg(long, env = "TRELLIS_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// A named queue, as for `trellis server --queue`. Queues go to the
    /// workers unless bound elsewhere: `name=2@local` runs them as processes
    /// on the scheduler's host, `name=2@kubernetes` leaves them to an agent.
    #[arg(long = "queue", env = "TRELLIS_QUEUES", value_delimiter = ',', value_parser = parse_queue_arg)]
    pub queues: Vec<(String, QueueLimits)>,
    /// The API's URL, given to runs of `@local` queues as TRELLIS_HOST and
    /// MLFLOW_TRACKING_URI.
    #[arg(long, env = "TRELLIS_HOST", default_value = "http://127.0.0.1:8000")]
    pub api_url: String,
    #[command(flatten)]
    pub heartbeat: HeartbeatArgs,
    #[command(flatten)]
    pub brokers: BrokerArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// Options of `trellis worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// At most this many runs at once on this worker.
    #[arg(long, env = "TRELLIS_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// The API's URL, given to runs as TRELLIS_HOST and MLFLOW_TRACKING_URI.
    #[arg(long, env = "TRELLIS_HOST", default_value = "http://127.0.0.1:8000")]
    pub api_url: String,
    /// This worker's name in run conditions (default: host name and pid).
    #[arg(long, env = "TRELLIS_WORKER_NAME")]
    pub name: Option<String>,
    /// The host name or address the server's workspace proxy reaches this
    /// worker's services at. With it, services listen on every interface;
    /// without, on 127.0.0.1 only (a worker on the server's host).
    #[arg(long, env = "TRELLIS_ADVERTISE_HOST")]
    pub advertise_host: Option<String>,
    #[command(flatten)]
    pub heartbeat: HeartbeatArgs,
    #[command(flatten)]
    pub brokers: BrokerArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// Where the metadata lives.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Data directory; holds the embedded SQLite database.
    #[arg(long, env = "TRELLIS_DATA_DIR", default_value = ".trellis")]
    pub data_dir: PathBuf,
    /// Use this PostgreSQL database instead of the embedded SQLite one
    /// (`postgres://user:password@host:5432/db`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl DatabaseArgs {
    /// The database these arguments select.
    pub fn database(&self) -> anyhow::Result<DatabaseSettings> {
        match self.database_url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(DatabaseSettings::Postgres {
                    url: url.to_owned(),
                })
            }
            Some(url) if url.starts_with("sqlite:") => {
                let path = url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:");
                Ok(DatabaseSettings::Sqlite {
                    path: PathBuf::from(path),
                })
            }
            Some(_) => {
                anyhow::bail!("DATABASE_URL must start with postgres://, postgresql:// or sqlite:")
            }
            None => Ok(DatabaseSettings::Sqlite {
                path: self.data_dir.join("trellis.db"),
            }),
        }
    }
}

fn parse_queue_arg(text: &str) -> Result<(String, QueueLimits), String> {
    trellis_domain::scheduling::parse_queue(text)
}

/// Where runs execute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecutorKind {
    /// Processes on this host.
    Local,
    /// None: the server only tracks what clients report.
    None,
}

/// Options of `trellis server`.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address to listen on. (`TRELLIS_HOST` is the URL clients and runs
    /// use to reach the server, so the listen address has its own variable.)
    #[arg(long, env = "TRELLIS_LISTEN_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on.
    #[arg(long, env = "TRELLIS_PORT", default_value_t = 8000)]
    pub port: u16,
    /// Where runs execute: `local` runs jobs as processes on this host;
    /// `none` only tracks (runs move when clients report statuses).
    #[arg(long, env = "TRELLIS_EXECUTOR", value_enum, default_value_t = ExecutorKind::Local)]
    pub executor: ExecutorKind,
    /// At most this many runs execute at once.
    #[arg(long, env = "TRELLIS_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// A named queue runs may ask for with `queue:`, as
    /// `name=concurrency[:priority][@executor]` (`gpu=2:10`); repeatable.
    /// Higher priorities start first. `default` always exists. The server
    /// executes its queues locally; a queue bound to `workers` or
    /// `kubernetes` waits for the process that hosts that executor.
    #[arg(long = "queue", env = "TRELLIS_QUEUES", value_delimiter = ',', value_parser = parse_queue_arg)]
    pub queues: Vec<(String, QueueLimits)>,
    /// The compiled dashboard built by cargo-leptos. Default:
    /// `target/site` when it exists (a build from source, run from the
    /// clone), else `site/` beside the executable (a release archive).
    #[arg(long, env = "LEPTOS_SITE_ROOT")]
    pub site_root: Option<PathBuf>,
    /// Built-in workspaces (`--hub jupyterlab`, ...) whose spec sets no
    /// `termination.culling.timeout` are stopped after this many seconds
    /// without traffic through the proxy; 0 never culls them.
    #[arg(long, env = "TRELLIS_WORKSPACE_IDLE_SECS", default_value_t = 3600)]
    pub workspace_idle_secs: u64,
    /// Seconds between checks for idle services.
    #[arg(long, env = "TRELLIS_CULL_EVERY_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub cull_every_secs: u64,
    #[command(flatten)]
    pub heartbeat: HeartbeatArgs,
    #[command(flatten)]
    pub brokers: BrokerArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

impl ServerArgs {
    /// Checks the arguments and builds the settings.
    pub fn into_settings(self) -> anyhow::Result<Settings> {
        let database = self.database.database()?;
        std::fs::create_dir_all(&self.database.data_dir).with_context(|| {
            format!(
                "creating the data directory {}",
                self.database.data_dir.display()
            )
        })?;
        Ok(Settings {
            addr: SocketAddr::new(self.host, self.port),
            data_dir: self.database.data_dir,
            database,
            site_root: self.site_root.unwrap_or_else(default_site_root),
            // With a work queue, scheduling and execution are the
            // `scheduler` and `worker` roles' job.
            executor: (self.executor == ExecutorKind::Local
                && self.brokers.amqp_url.as_deref().is_none_or(str::is_empty))
            .then(|| ExecutorSettings {
                concurrency: self.concurrency,
                queues: self.queues.into_iter().collect(),
                heartbeat: Duration::from_secs(self.heartbeat.heartbeat_secs),
                lost_after: Duration::from_secs(self.heartbeat.lost_after_secs),
                system_metrics: self.heartbeat.system_metrics(),
            }),
            redis_url: self.brokers.redis_url.clone().filter(|u| !u.is_empty()),
            redis_prefix: self.brokers.redis_prefix(),
            culling: CullingSettings {
                every: Duration::from_secs(self.cull_every_secs),
                hub_default: (self.workspace_idle_secs > 0)
                    .then(|| Duration::from_secs(self.workspace_idle_secs)),
            },
        })
    }
}

/// Where the dashboard's compiled files are when nothing says: the build
/// output of a source checkout, else the `site/` a release archive ships
/// beside the binary.
fn default_site_root() -> PathBuf {
    let built = PathBuf::from("target/site");
    if built.is_dir() {
        return built;
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("site")))
        .filter(|site| site.is_dir())
        .unwrap_or(built)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap()
    }

    #[test]
    fn the_server_defaults_to_the_embedded_database_on_localhost() {
        let Command::Server(args) = parse(&["trellis", "server"]).command else {
            panic!("expected the server command");
        };
        assert_eq!(args.port, 8000);
        assert_eq!(args.host.to_string(), "127.0.0.1");
        if std::env::var_os("DATABASE_URL").is_none()
            && std::env::var_os("TRELLIS_DATA_DIR").is_none()
        {
            assert_eq!(
                args.database.database().unwrap(),
                DatabaseSettings::Sqlite {
                    path: PathBuf::from(".trellis/trellis.db")
                }
            );
        }
    }

    #[test]
    fn a_postgres_url_selects_postgres() {
        let Command::Migrate(args) =
            parse(&["trellis", "migrate", "--database-url", "postgres://u@h/db"]).command
        else {
            panic!("expected the migrate command");
        };
        assert_eq!(
            args.database().unwrap(),
            DatabaseSettings::Postgres {
                url: "postgres://u@h/db".into()
            }
        );
    }

    #[test]
    fn other_database_urls_are_refused() {
        let Command::Migrate(args) =
            parse(&["trellis", "migrate", "--database-url", "mysql://h/db"]).command
        else {
            panic!("expected the migrate command");
        };
        assert!(args.database().is_err());
    }

    #[test]
    fn logged_postgres_urls_hide_credentials() {
        let db = DatabaseSettings::Postgres {
            url: "postgres://u:secret@h:5432/db".into(),
        };
        assert_eq!(db.describe(), "postgres at h:5432/db");
    }
}
