//! Data-layer errors. HTTP statuses are decided by the callers.

/// What went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A unique constraint refused the write (a duplicate name, say).
    #[error("a row with the same key already exists")]
    Conflict,
    /// A stored value does not parse (a corrupted or hand-edited row).
    #[error("stored {column} is invalid: {message}")]
    Corrupt {
        column: &'static str,
        message: String,
    },
    #[error(transparent)]
    Sqlx(sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => DbError::Conflict,
            _ => DbError::Sqlx(error),
        }
    }
}

/// Result of a data-layer call.
pub type DbResult<T> = Result<T, DbError>;
