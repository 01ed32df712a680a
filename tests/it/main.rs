//! The integration tests, in one binary: service scenarios on every store, faults, bad input,
//! secret hygiene, stored-event and wire golden tests, properties, real HTTP, the store
//! conformance suite and the public harness. (Log hygiene has its own binary: it installs a
//! global tracing subscriber.)

#[macro_use]
mod common;
mod authenticator;
mod bad_input;
mod clocks;
mod directory_sync;
mod erasure;
mod faults;
mod golden_events;
mod golden_wire;
mod harness_example;
mod http_server;
mod login;
mod outbox;
mod own_server;
mod pg;
mod postgres_tls;
mod properties;
mod proxy;
mod read_side;
mod scenarios;
mod secret_hygiene;
mod service_postgres;
mod service_sqlx;
mod snapshots;
mod standby;
mod store_conformance;

/// The service scenarios against the in-memory store.
mod service_memory {
    use passkey_links::store::InMemoryStore;

    async fn memory() -> Option<InMemoryStore> {
        Some(InMemoryStore::new())
    }

    crate::service_scenarios!(memory);
    crate::read_side_scenarios!(memory);
    crate::outbox_scenarios!(memory);
    crate::snapshot_scenarios!(memory);
    crate::login_scenarios!(memory);
    crate::erasure_scenarios!(memory);
}
