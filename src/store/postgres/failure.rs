//! Failure classes of PostgreSQL errors (SPEC §5), by SQLSTATE class and driver error kind:
//! transient server states are [`StoreError::Unavailable`] (retryable); configuration faults
//! are [`StoreError::Misconfigured`] (never retryable: an operator must act); a write whose
//! connection died after the statement was sent is [`StoreError::OutcomeUnknown`]; anything else
//! is [`StoreError::Internal`]. Every message names the SQLSTATE and a plain cause.

use deadpool_postgres::PoolError;

use crate::store::StoreError;

/// What a caller can do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// Retry later: the server is restarting, failing over, full, or out of connections.
    Transient,
    /// An operator must fix the configuration (credentials, database, schema, TLS).
    Configuration,
    /// A bug or an unexpected server state.
    Other,
}

/// The class of a SQLSTATE, with a plain cause.
pub(super) fn class_of(sqlstate: &str) -> (Class, &'static str) {
    use Class::*;
    match sqlstate {
        "57P01" => (
            Transient,
            "the server is shutting down or the session was terminated",
        ),
        "57P02" => (Transient, "the server crashed"),
        "57P03" => (Transient, "the server is starting up or cannot connect now"),
        "25006" => (
            Transient,
            "the server is read-only (a standby, e.g. after a failover)",
        ),
        "40001" => (
            Transient,
            "serialization failure between concurrent transactions",
        ),
        "40P01" => (Transient, "deadlock between concurrent transactions"),
        "57014" => (Transient, "the statement was cancelled (statement timeout)"),
        "55P03" => (Transient, "a lock was not available in time"),
        "53100" => (Transient, "the server's disk is full"),
        "53200" => (Transient, "the server is out of memory"),
        "53300" => (Transient, "the server has too many connections"),
        "28P01" => (Configuration, "password authentication failed"),
        "3D000" => (Configuration, "the database does not exist"),
        "3F000" => (Configuration, "the schema does not exist"),
        "42P01" => (
            Configuration,
            "a table of the store does not exist: its schema is not migrated (run the \
             migrations, in the schema the store is configured with)",
        ),
        "42501" => (Configuration, "the database role lacks a privilege"),
        state if state.starts_with("08") => (Transient, "the connection failed"),
        state if state.starts_with("53") => (Transient, "the server ran out of a resource"),
        state if state.starts_with("28") => (
            Configuration,
            "the server refused the client's authorization (credentials, or TLS required)",
        ),
        _ => (Other, "unexpected database error"),
    }
}

/// A driver error as a store failure. `write_sent`: the statement was a write that may have
/// reached the server, so a lost connection leaves its commit outcome unknown.
pub(super) fn store_error(err: &tokio_postgres::Error, write_sent: bool) -> StoreError {
    if let Some(db) = err.as_db_error() {
        let code = db.code().code();
        let (class, cause) = class_of(code);
        let message = format!("SQLSTATE {code}: {cause} ({})", db.message());
        return match class {
            Class::Transient => StoreError::Unavailable(message),
            Class::Configuration => StoreError::Misconfigured(message),
            Class::Other => StoreError::Internal(message),
        };
    }
    if is_tls_failure(err) {
        return StoreError::Misconfigured(format!(
            "TLS could not be set up (TLS required without a TLS connector, a server without \
             TLS, or a certificate the configured roots do not trust): {}",
            describe(err)
        ));
    }
    if write_sent && (err.is_closed() || std::error::Error::source(err).is_some()) {
        return StoreError::OutcomeUnknown(format!(
            "the connection failed after the write was sent: {err}"
        ));
    }
    StoreError::Unavailable(format!("the connection failed: {err}"))
}

/// The driver's TLS error kind (not exposed as an accessor; its fixed message names it).
fn is_tls_failure(err: &tokio_postgres::Error) -> bool {
    err.to_string()
        .starts_with("error performing TLS handshake")
}

/// The error with its chain of causes.
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every class of SPEC §5, by SQLSTATE.
    #[test]
    fn sqlstates_map_to_their_failure_class() {
        let table = [
            // Transient: restart, terminated backend, failover, resources, conflicts, timeouts.
            ("57P01", Class::Transient),
            ("57P02", Class::Transient),
            ("57P03", Class::Transient),
            ("25006", Class::Transient),
            ("53100", Class::Transient),
            ("53200", Class::Transient),
            ("53300", Class::Transient),
            ("53400", Class::Transient),
            ("40001", Class::Transient),
            ("40P01", Class::Transient),
            ("57014", Class::Transient),
            ("08006", Class::Transient),
            ("08001", Class::Transient),
            // Configuration: authentication, missing database or schema, TLS required,
            // privileges.
            ("28P01", Class::Configuration),
            ("28000", Class::Configuration),
            ("3D000", Class::Configuration),
            ("3F000", Class::Configuration),
            ("42P01", Class::Configuration),
            ("42501", Class::Configuration),
            // Anything else.
            ("23505", Class::Other),
            ("22P02", Class::Other),
            ("XX000", Class::Other),
        ];
        for (state, class) in table {
            assert_eq!(class_of(state).0, class, "{state}");
            assert!(!class_of(state).1.is_empty());
        }
    }
}
