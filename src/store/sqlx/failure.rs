//! sqlx errors as store failures — database errors by their SQLSTATE (shared with the
//! tokio-postgres store), plus sqlx's own kinds: TLS, configuration, the pool, a connection lost
//! after a write was sent — and sqlx rows read for the shared row functions.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::store::StoreError;
use crate::store::sql::failure::{database_error, describe, tls_failure};
use crate::store::sql::rows::SqlRow;

/// An sqlx error as a store failure. `write_sent`: the statement was a write that may have
/// reached the server, so a lost connection leaves its commit outcome unknown.
pub(super) fn store_error(err: &sqlx::Error, write_sent: bool) -> StoreError {
    match err {
        sqlx::Error::Database(db) => {
            database_error(db.code().as_deref().unwrap_or("XX000"), db.message())
        }
        sqlx::Error::Tls(_) => tls_failure(&describe(err)),
        sqlx::Error::Configuration(_) => {
            StoreError::Misconfigured(format!("database configuration: {}", describe(err)))
        }
        sqlx::Error::PoolTimedOut => StoreError::Unavailable(
            "no database connection within the pool's acquire timeout".into(),
        ),
        sqlx::Error::PoolClosed => StoreError::Unavailable("the connection pool is closed".into()),
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed
            if write_sent =>
        {
            StoreError::OutcomeUnknown(format!(
                "the connection failed after the write was sent: {}",
                describe(err)
            ))
        }
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => {
            StoreError::Unavailable(format!("the connection failed: {}", describe(err)))
        }
        other => StoreError::Internal(describe(other)),
    }
}

/// Classifies the error of a read (or of a write not yet sent).
pub(super) fn classify(err: sqlx::Error) -> StoreError {
    store_error(&err, false)
}

/// The SQLSTATE of a database error.
pub(super) fn sqlstate(err: &sqlx::Error) -> Option<Cow<'_, str>> {
    match err {
        sqlx::Error::Database(db) => db.code(),
        _ => None,
    }
}

/// Whether a database error violated the unique constraint named `constraint`.
pub(super) fn violated(err: &sqlx::Error, constraint: &str) -> bool {
    matches!(err, sqlx::Error::Database(db)
        if db.code().as_deref() == Some("23505") && db.constraint() == Some(constraint))
}

fn column<'r, T>(row: &'r PgRow, i: usize) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(i)
        .map_err(|err| StoreError::Internal(format!("column {i}: {}", describe(&err))))
}

impl SqlRow for PgRow {
    fn int8(&self, i: usize) -> Result<i64, StoreError> {
        column(self, i)
    }
    fn int2(&self, i: usize) -> Result<i16, StoreError> {
        column(self, i)
    }
    fn boolean(&self, i: usize) -> Result<bool, StoreError> {
        column(self, i)
    }
    fn text(&self, i: usize) -> Result<String, StoreError> {
        column(self, i)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        column(self, i)
    }
    fn opt_uuid(&self, i: usize) -> Result<Option<uuid::Uuid>, StoreError> {
        column(self, i)
    }
    fn json(&self, i: usize) -> Result<Value, StoreError> {
        column(self, i)
    }
    fn time(&self, i: usize) -> Result<DateTime<Utc>, StoreError> {
        column(self, i)
    }
    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        column(self, i)
    }
}
