//! tokio-postgres and deadpool errors as store failures: database errors by their SQLSTATE
//! ([`crate::store::sql::failure`]), plus the driver's own kinds — a failed TLS setup, a
//! connection lost after a write was sent, a pool that gave no connection in time.

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use crate::store::StoreError;
use crate::store::sql::failure::{database_error, describe, tls_failure};

/// A driver error as a store failure. `write_sent`: the statement was a write that may have
/// reached the server, so a lost connection leaves its commit outcome unknown.
pub(super) fn store_error(err: &tokio_postgres::Error, write_sent: bool) -> StoreError {
    if let Some(db) = err.as_db_error() {
        return database_error(db.code().code(), db.message());
    }
    if is_tls_failure(err) {
        return tls_failure(&describe(err));
    }
    if write_sent && (err.is_closed() || std::error::Error::source(err).is_some()) {
        return StoreError::OutcomeUnknown(format!(
            "the connection failed after the write was sent: {err}"
        ));
    }
    StoreError::Unavailable(format!("the connection failed: {err}"))
}

/// The SQLSTATE of a database error.
pub(super) fn sqlstate(err: &tokio_postgres::Error) -> Option<&str> {
    err.code().map(SqlState::code)
}

/// Whether a database error violated the constraint named `constraint`.
pub(super) fn violated(err: &tokio_postgres::Error, constraint: &str) -> bool {
    err.as_db_error().is_some_and(|db| {
        db.code() == &SqlState::UNIQUE_VIOLATION && db.constraint() == Some(constraint)
    })
}

/// The driver's TLS error kind (not exposed as an accessor; its fixed message names it).
fn is_tls_failure(err: &tokio_postgres::Error) -> bool {
    err.to_string()
        .starts_with("error performing TLS handshake")
}

/// A pool error as a store failure: connecting keeps its SQLSTATE (a wrong password is not
/// retryable), waiting past the deadline is transient.
pub(super) fn pool_error(err: PoolError) -> StoreError {
    match err {
        PoolError::Backend(err) => store_error(&err, false),
        PoolError::Timeout(kind) => StoreError::Unavailable(format!(
            "no database connection within the deadline ({kind:?})"
        )),
        PoolError::Closed => StoreError::Unavailable("the connection pool is closed".into()),
        other => StoreError::Misconfigured(format!("connection pool: {other}")),
    }
}
