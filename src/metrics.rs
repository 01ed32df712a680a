//! Counters and gauges through the `metrics` facade (feature `metrics`; nothing otherwise), so
//! any Prometheus or OpenTelemetry exporter the embedder installs picks them up:
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `passkey_links_operations_total` | counter | `op` (e.g. `passkey_links.check_code`), `outcome` (`ok` or an error id) |
//! | `passkey_links_deliveries_total` | counter | `outcome` (`sent`, or the failure: `unavailable`, `rejected`, `expired`, `no_longer_usable`, `unrenderable`) |
//! | `passkey_links_outbox_pending` | gauge | — |
//! | `passkey_links_outbox_waiting_for_key` | gauge | — |
//! | `passkey_links_outbox_oldest_pending_seconds` | gauge | — |
//! | `passkey_links_projection_lag` | gauge | `projection` |
//!
//! Issued links, checks, registrations and logins are the operations of those names.

/// One public operation finished.
pub(crate) fn operation(_op: &'static str, _outcome: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("passkey_links_operations_total", "op" => _op, "outcome" => _outcome)
        .increment(1);
}

/// One delivery attempt ended a code's delivery: `sent`, or the failure's name.
pub(crate) fn delivery(_outcome: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("passkey_links_deliveries_total", "outcome" => _outcome).increment(1);
}

/// The outbox's state (from its health query).
pub(crate) fn outbox(_pending: usize, _waiting_for_key: usize, _oldest_seconds: f64) {
    #[cfg(feature = "metrics")]
    {
        metrics::gauge!("passkey_links_outbox_pending").set(_pending as f64);
        metrics::gauge!("passkey_links_outbox_waiting_for_key").set(_waiting_for_key as f64);
        metrics::gauge!("passkey_links_outbox_oldest_pending_seconds").set(_oldest_seconds);
    }
}

/// A projection's lag behind the feed (from its health query).
pub(crate) fn projection_lag(_projection: &str, _lag: u64) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("passkey_links_projection_lag", "projection" => _projection.to_owned())
        .set(_lag as f64);
}
