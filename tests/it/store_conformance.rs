//! Every built-in store passes the public conformance suite.

use crate::pg;

#[cfg(not(feature = "testing"))]
#[test]
fn conformance_suite() {
    pg::skipped(
        "store conformance: built without the `testing` feature (scripts/test-all.sh runs it)",
    );
}

#[cfg(feature = "testing")]
use passkey_links::store::InMemoryStore;
#[cfg(feature = "testing")]
use passkey_links::testing::conformance;

#[cfg(feature = "testing")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_store_conforms() {
    conformance::run_all(|| async { InMemoryStore::new() }).await;
    conformance::run_projection_store(|| async { InMemoryStore::new() }).await;
}

#[cfg(all(feature = "testing", feature = "postgres"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_conforms() {
    if pg::store().await.is_none() {
        return;
    }
    conformance::run_all(|| async { pg::store().await.expect("database reachable") }).await;
    conformance::run_projection_store(|| async { pg::store().await.expect("database reachable") })
        .await;
}
