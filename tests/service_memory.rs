//! The service scenarios against the in-memory store.

mod scenarios;

use passkey_links::prelude::InMemoryStore;

async fn memory() -> Option<InMemoryStore> {
    Some(InMemoryStore::new())
}

service_scenarios!(memory);
