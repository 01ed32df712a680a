//! Capabilities: a store answers every method of each capability it declares
//! ([`crate::store::Capabilities`]), never [`StoreError::Unsupported`].

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// Each declared capability answers (a wrapper that declares one must forward its methods).
pub async fn every_declared_capability_answers<S: EventStore>(store: S) {
    let capabilities = store.capabilities();
    let s = stream(AggregateKind::User, "capable");
    if capabilities.batched_load {
        let read = store
            .load_many(&[(s.clone(), ReadFrom::After(0))], &[], 10)
            .await;
        assert!(read.is_ok(), "batched_load declared, load_many: {read:?}");
    }
    if capabilities.snapshots {
        let read = store.read_snapshots(std::slice::from_ref(&s)).await;
        assert!(read.is_ok(), "snapshots declared, read_snapshots: {read:?}");
        let write = store
            .write_snapshot(crate::store::Snapshot::new(s, 1, json!({})))
            .await;
        assert!(
            write.is_ok(),
            "snapshots declared, write_snapshot: {write:?}"
        );
    }
    if capabilities.store_time {
        let now = store.store_time().await;
        assert!(now.is_ok(), "store_time declared, store_time: {now:?}");
    } else {
        // A store without a clock says so; nodes then tell time by their own.
        assert!(
            store.store_time().await.is_err(),
            "store_time not declared yet answered"
        );
    }
}
