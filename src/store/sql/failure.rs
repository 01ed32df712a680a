//! Failure classes of PostgreSQL errors (SPEC §5), by SQLSTATE class (each driver adds its own
//! error kinds: connection, pool, TLS):
//! transient server states are [`StoreError::Unavailable`] (retryable); configuration faults
//! are [`StoreError::Misconfigured`] (never retryable: an operator must act); a write whose
//! connection died after the statement was sent is [`StoreError::OutcomeUnknown`]; anything else
//! is [`StoreError::Internal`]. Every message names the SQLSTATE and a plain cause.

use crate::store::StoreError;

/// What a caller can do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Retry later: the server is restarting, failing over, full, or out of connections.
    Transient,
    /// An operator must fix the configuration (credentials, database, schema, TLS).
    Configuration,
    /// A bug or an unexpected server state.
    Other,
}

/// The class of a SQLSTATE, with a plain cause.
pub(crate) fn class_of(sqlstate: &str) -> (Class, &'static str) {
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
        "3F000" => (
            Configuration,
            "the schema does not exist: it is not migrated (run the migrations, which create \
             it, or configure the schema that holds the store)",
        ),
        "42P01" => (
            Configuration,
            "a table of the store does not exist: its schema is not migrated (run the \
             migrations, in the schema the store is configured with)",
        ),
        "42883" => (
            Configuration,
            "a function of the store does not exist: its schema is not migrated to this \
             version (run the migrations, in the schema the store is configured with)",
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

/// A database error (its SQLSTATE and the server's message) as a store failure of its class.
pub(crate) fn database_error(sqlstate: &str, server_message: &str) -> StoreError {
    let (class, cause) = class_of(sqlstate);
    let message = format!("SQLSTATE {sqlstate}: {cause} ({server_message})");
    match class {
        Class::Transient => StoreError::Unavailable(message),
        Class::Configuration => StoreError::Misconfigured(message),
        Class::Other => StoreError::Internal(message),
    }
}

/// Whether a SQLSTATE says a concurrent writer touched the same rows and the statement was
/// rolled back (a serialization failure or a deadlock: the isolation CockroachDB and
/// YugabyteDB force, or `default_transaction_isolation = serializable`): nothing was written;
/// look again.
pub(crate) fn lost_to_a_concurrent_writer(sqlstate: &str) -> bool {
    matches!(sqlstate, "40001" | "40P01")
}

/// The message of a feed read on a read-only server (SQLSTATE 25006).
pub(crate) const FEED_ON_A_STANDBY: &str = "SQLSTATE 25006: the feed was read on a read-only \
     server (a standby); reading the feed gives events their positions, so projection runners \
     and the delivery worker need the primary (read models can be queried on a standby)";

/// The message of a failed TLS setup, with the driver's account of it.
pub(crate) fn tls_failure(account: &str) -> StoreError {
    StoreError::Misconfigured(format!(
        "TLS could not be set up (TLS required without a TLS connector, a server without TLS, \
         or a certificate the configured roots do not trust): {account}"
    ))
}

/// The error with its chain of causes.
pub(crate) fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Runs one store call within `deadline`: a server that stops answering is a typed error, never
/// a hang. A write cut off by the deadline may still commit: its outcome is unknown.
pub(crate) async fn within<T>(
    deadline: std::time::Duration,
    write: bool,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(deadline, call).await {
        Ok(result) => result,
        Err(_) if write => Err(StoreError::OutcomeUnknown(format!(
            "no answer within the deadline of {deadline:?}"
        ))),
        Err(_) => Err(StoreError::Unavailable(format!(
            "no answer within the deadline of {deadline:?}"
        ))),
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
            ("42883", Class::Configuration),
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
