//! Per-test databases, for this crate's tests and the server's.
//!
//! Every test gets its own database: a SQLite file in a temporary directory,
//! or a fresh PostgreSQL database on the server named by
//! `TRELLIS_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! created from scratch, migrated, and dropped when the [`TestDb`] is dropped
//! (also when the test panics).

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use uuid::Uuid;

use crate::Db;

/// Where test databases are created when `TRELLIS_TEST_POSTGRES_URL` is unset.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The PostgreSQL server used by tests.
pub fn postgres_admin_url() -> String {
    std::env::var("TRELLIS_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// A migrated database that exists as long as this value.
pub struct TestDb {
    /// The pool to use.
    pub db: Db,
    /// The URL of this database (`sqlite://...` or `postgres://...`).
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    /// Dropping the directory deletes the database file.
    Sqlite(#[expect(dead_code, reason = "held for its Drop")] tempfile::TempDir),
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl TestDb {
    /// A fresh SQLite database in a temporary directory.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let path = dir.path().join("trellis.db");
        let db = Db::connect_sqlite(&path)
            .await
            .expect("open the test SQLite database");
        db.migrate()
            .await
            .expect("migrate the test SQLite database");
        Self {
            db,
            url: format!("sqlite://{}", path.display()),
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    /// A fresh PostgreSQL database.
    pub async fn postgres() -> Self {
        let admin_url = postgres_admin_url();
        let name = format!("trellis_test_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("connect to PostgreSQL at {admin_url}: {e}"));
        // The name is generated above, never user text.
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        let url = database_url(&admin_url, &name);
        let db = Db::connect_postgres(&url)
            .await
            .expect("connect to the test database");
        db.migrate()
            .await
            .expect("migrate the test PostgreSQL database");
        Self {
            db,
            url,
            cleanup: Cleanup::Postgres { admin_url, name },
        }
    }
}

/// `admin_url` with its database replaced by `name`.
fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let path_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[path_start..].rfind('/') {
        Some(slash) => &base[..path_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Cleanup::Postgres { admin_url, name } = &self.cleanup else {
            return;
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop may run inside a runtime, where blocking on another is not
        // allowed; a short-lived thread with its own runtime does the work.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                sqlx::query(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await?;
                admin.close().await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop a test database");
        }
    }
}

/// Generates, for each named `async fn(Db)`, one test on SQLite and one on
/// PostgreSQL, so a data-layer or API behaviour is checked on both.
#[macro_export]
macro_rules! test_on_both_databases {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let test_db = $crate::testing::TestDb::sqlite().await;
                    super::$case(test_db.db.clone()).await;
                    test_db.db.close().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let test_db = $crate::testing::TestDb::postgres().await;
                    super::$case(test_db.db.clone()).await;
                    test_db.db.close().await;
                }
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn database_urls_swap_the_database_name() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(database_url("postgres://u@h", "t1"), "postgres://u@h/t1");
        assert_eq!(
            database_url("postgres://u@h/db?sslmode=disable", "t1"),
            "postgres://u@h/t1?sslmode=disable"
        );
    }
}

/// The shape of a migrated database, in terms both dialects share: each
/// table's column names, and each index's table, columns and uniqueness.
/// Types are left out (`INTEGER` / `BIGINT`, `REAL` / `DOUBLE PRECISION`
/// are the same column on purpose) and so are internal tables (sqlx's
/// `_sqlx_migrations`, SQLite's `sqlite_*`) and primary-key indexes, which
/// each database names its own way.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schema {
    /// Table name → its column names, sorted.
    pub tables: std::collections::BTreeMap<String, Vec<String>>,
    /// Index name → (table, indexed columns in order, unique).
    pub indexes: std::collections::BTreeMap<String, (String, Vec<String>, bool)>,
}

/// Reads the [`Schema`] of `db`.
pub async fn schema(db: &Db) -> crate::DbResult<Schema> {
    // (table, column) and (index, table, column or `None` for an
    // expression, unique), in column and index-key order.
    type Columns = Vec<(String, String)>;
    type IndexColumns = Vec<(String, String, Option<String>, bool)>;
    let (columns, indexed): (Columns, IndexColumns) = match db {
        Db::Sqlite(pool) => (
            sqlx::query_as(
                "SELECT m.name, c.name FROM sqlite_master m, pragma_table_info(m.name) c
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations'
                 ORDER BY m.name, c.name",
            )
            .fetch_all(pool)
            .await?,
            sqlx::query_as(
                "SELECT m.name, m.tbl_name, i.name, l.\"unique\"
                 FROM sqlite_master m
                 JOIN pragma_index_list(m.tbl_name) l ON l.name = m.name
                 JOIN pragma_index_info(m.name) i
                 WHERE m.type = 'index' AND l.origin = 'c'
                 ORDER BY m.name, i.seqno",
            )
            .fetch_all(pool)
            .await?,
        ),
        Db::Postgres(pool) => (
            sqlx::query_as(
                "SELECT table_name::text, column_name::text FROM information_schema.columns
                 WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'
                 ORDER BY table_name, column_name",
            )
            .fetch_all(pool)
            .await?,
            sqlx::query_as(
                "SELECT i.relname::text, t.relname::text, a.attname::text, x.indisunique
                 FROM pg_index x
                 JOIN pg_class i ON i.oid = x.indexrelid
                 JOIN pg_class t ON t.oid = x.indrelid
                 JOIN pg_namespace n ON n.oid = t.relnamespace
                 CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                 LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum AND k.attnum > 0
                 WHERE n.nspname = 'public' AND NOT x.indisprimary AND t.relname <> '_sqlx_migrations'
                   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
                 ORDER BY i.relname, k.ord",
            )
            .fetch_all(pool)
            .await?,
        ),
    };
    let mut schema = Schema::default();
    for (table, column) in columns {
        schema.tables.entry(table).or_default().push(column);
    }
    for (index, table, column, unique) in indexed {
        let entry = schema
            .indexes
            .entry(index)
            .or_insert_with(|| (table, Vec::new(), unique));
        entry
            .1
            .push(column.unwrap_or_else(|| "<expression>".to_owned()));
    }
    Ok(schema)
}
