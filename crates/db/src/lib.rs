//! All of Trellis's SQL.
//!
//! [`Db`] holds either a SQLite pool (the embedded default, a file in the
//! data directory) or a PostgreSQL pool. Each data-layer function is written
//! once: the [`with_pool!`] macro expands the same body for both pools, so the
//! SQL text is shared and only the schema files differ
//! (`migrations/sqlite`, `migrations/postgres`, mirrored column for column).
//! Statements use `$1`-style placeholders, which both databases accept.
//!
//! Rules kept here: no business decisions (those are in `trellis-domain`),
//! every user value is a bound parameter, and multi-statement changes run in
//! one transaction.
//!
//! Layout: [`projects`]; [`runs`] (including the guarded status update with
//! its optional [`outbox`] message, and heartbeats, and
//! the append-only conditions); [`logs`] (run output, read by cursor);
//! [`queues`] (queues defined through the API); [`tracking`] (metrics,
//! params, key-value tags, soft deletion); [`mlflow`] (MLflow's run search); [`pql`] (the query language
//! compiled to SQL); [`error`]; and `testing`
//! (per-test databases).

pub mod error;
pub mod fields;
pub mod logs;
pub mod mlflow;
pub mod outbox;
pub mod pql;
pub mod projects;
pub mod queues;
pub mod runs;
#[cfg(feature = "testing")]
pub mod seed;
pub mod series;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tracking;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use error::{DbError, DbResult};

/// Migrations of the embedded SQLite database.
pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");
/// Migrations of a PostgreSQL database; the same schema as SQLite's.
pub static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A connection pool to the metadata store.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same body against whichever pool a [`Db`] holds. The body is
/// compiled once per backend, so it may only use types both drivers encode.
#[macro_export]
macro_rules! with_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::Db::Sqlite($pool) => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}

impl Db {
    /// Opens (creating if needed) the SQLite database at `path`.
    ///
    /// WAL lets readers proceed during writes; `synchronous = FULL` makes a
    /// committed transaction durable before we acknowledge it, so a crash of
    /// the server (or of the machine) never loses an acknowledged write.
    pub async fn connect_sqlite(path: &Path) -> DbResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(15))
            // Pooled connections are recycled (idle and lifetime limits),
            // so this keeps the planner's statistics fresh as data grows.
            .optimize_on_close(true, 1000);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        Ok(Db::Sqlite(pool))
    }

    /// Connects to PostgreSQL at `url` (`postgres://user@host:port/db`).
    pub async fn connect_postgres(url: &str) -> DbResult<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(15))
            .connect_with(options)
            .await?;
        Ok(Db::Postgres(pool))
    }

    /// Applies pending migrations of this backend.
    pub async fn migrate(&self) -> DbResult<()> {
        match self {
            Db::Sqlite(pool) => {
                SQLITE_MIGRATOR.run(pool).await?;
                // Statistics for the planner (SQLite keeps none unless
                // asked): ANALYZE, sampled, of the tables that changed.
                sqlx::query("PRAGMA optimize = 0x10002")
                    .execute(pool)
                    .await?;
            }
            Db::Postgres(pool) => POSTGRES_MIGRATOR.run(pool).await?,
        }
        Ok(())
    }

    /// The engine behind this pool.
    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> DbResult<()> {
        with_pool!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Waits for in-flight statements and closes every connection.
    pub async fn close(&self) {
        with_pool!(self, |pool| pool.close().await)
    }
}
