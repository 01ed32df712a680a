//! Quickstart: issue, deliver, check and consume passkey registration links in memory.
//!
//! Prints JSON Lines, one object per step. Run with `cargo run --example quickstart`.

mod support;

use passkey_links::prelude::InMemoryStore;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = InMemoryStore::new();
    let events = store.clone();
    support::run(store, || {
        let events = events.clone();
        async move { Ok(events.all_events()) }
    })
    .await
}
