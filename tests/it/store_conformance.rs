//! Every built-in store passes the public conformance suite.

#[cfg(any(feature = "postgres", feature = "sqlx-postgres"))]
use crate::pg;

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

#[cfg(all(feature = "testing", feature = "sqlx-postgres"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx_store_conforms() {
    if pg::sqlx_store().await.is_none() {
        return;
    }
    conformance::run_all(|| async { pg::sqlx_store().await.expect("database reachable") }).await;
    conformance::run_projection_store(|| async {
        pg::sqlx_store().await.expect("database reachable")
    })
    .await;
}

/// A wrapper an outsider writes (metrics, fault injection): it counts calls per method and
/// forwards every method and every capability. Through it nothing degrades: the conformance
/// suite passes, and a service on it loads in one call per round and keeps snapshots exactly as
/// on the bare store.
#[cfg(feature = "testing")]
mod wrapped {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use passkey_links::ids::StreamId;
    use passkey_links::prelude::*;
    use passkey_links::store::{
        AppendBatch, Appended, Capabilities, FeedEvent, Follow, ReadFrom, Recalled, RecordedEvent,
        Snapshot, StoreError, StreamRead,
    };
    use passkey_links::testing::conformance;

    use crate::scenarios::Fixture;

    #[derive(Clone)]
    pub struct PassThrough<S> {
        inner: S,
        calls: Arc<Mutex<BTreeMap<&'static str, u64>>>,
        /// Declare the capabilities but leave `load_many` at its default (a forgotten method).
        forget_load_many: bool,
    }

    impl<S> PassThrough<S> {
        pub fn new(inner: S) -> Self {
            Self {
                inner,
                calls: Arc::default(),
                forget_load_many: false,
            }
        }

        fn count(&self, method: &'static str) {
            *self.calls.lock().unwrap().entry(method).or_default() += 1;
        }

        pub fn calls(&self, method: &str) -> u64 {
            self.calls.lock().unwrap().get(method).copied().unwrap_or(0)
        }

        pub fn reset(&self) {
            self.calls.lock().unwrap().clear();
        }
    }

    forward_personal_keys!(impl<S: EventStore> for PassThrough<S>);

    impl<S: EventStore> EventStore for PassThrough<S> {
        async fn prune_idempotency(
            &self,
            older_than: chrono::DateTime<chrono::Utc>,
        ) -> Result<u64, StoreError> {
            self.inner.prune_idempotency(older_than).await
        }

        fn capabilities(&self) -> Capabilities {
            self.inner.capabilities()
        }

        async fn read_many(
            &self,
            streams: &[(StreamId, u64)],
            limit: usize,
        ) -> Result<Vec<Vec<RecordedEvent>>, StoreError> {
            self.count("read_many");
            self.inner.read_many(streams, limit).await
        }

        async fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>, StoreError> {
            self.count("append");
            self.inner.append(batch).await
        }

        async fn read_feed(&self, after: u64, limit: usize) -> Result<Vec<FeedEvent>, StoreError> {
            self.count("read_feed");
            self.inner.read_feed(after, limit).await
        }

        async fn recall(&self, key: &str) -> Result<Option<Recalled>, StoreError> {
            self.count("recall");
            self.inner.recall(key).await
        }

        fn sleep(
            &self,
            duration: std::time::Duration,
        ) -> impl std::future::Future<Output = ()> + Send {
            self.inner.sleep(duration)
        }

        async fn load_many(
            &self,
            streams: &[(StreamId, ReadFrom)],
            follow: &[Follow],
            limit: usize,
        ) -> Result<Vec<StreamRead>, StoreError> {
            self.count("load_many");
            if self.forget_load_many {
                return Err(StoreError::Unsupported("load_many"));
            }
            self.inner.load_many(streams, follow, limit).await
        }

        async fn read_snapshots(
            &self,
            streams: &[StreamId],
        ) -> Result<Vec<Option<Snapshot>>, StoreError> {
            self.count("read_snapshots");
            self.inner.read_snapshots(streams).await
        }

        async fn write_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
            self.count("write_snapshot");
            self.inner.write_snapshot(snapshot).await
        }

        async fn store_time(&self) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
            self.count("store_time");
            self.inner.store_time().await
        }
    }

    impl<S: crate::scenarios::Inspect + Sync> crate::scenarios::Inspect for PassThrough<S> {
        async fn all_events(&self) -> Vec<RecordedEvent> {
            self.inner.all_events().await
        }
    }

    /// On `store` wrapped: the suite passes; a cold process loads a user, her org and a
    /// code in one `load_many` call (no stream-by-stream reads); a stream grown past the
    /// snapshot interval is snapshotted; a wrapper that declares a capability but forgets its
    /// method fails loudly, not slowly.
    pub async fn nothing_degrades_through_a_pass_through_wrapper<S, F, Fut>(make: F)
    where
        S: EventStore + Clone + crate::scenarios::Inspect + Sync + 'static,
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = S>,
    {
        conformance::run_all(|| async { PassThrough::new(make().await) }).await;
        let wrapped = PassThrough::new(make().await);
        let config = crate::scenarios::config().with_snapshot_every(10);
        let f = Fixture::with_config(wrapped.clone(), config.clone()).await;
        for _ in 0..6 {
            for change in [UserChange::Lock, UserChange::Unlock] {
                f.service
                    .update_user(&Caller::System, None, &f.ada, change)
                    .await
                    .unwrap();
            }
        }
        assert!(
            wrapped.calls("write_snapshot") > 0,
            "no snapshot written through the wrapper"
        );
        wrapped.reset();
        let cold = PasskeyLinks::new(
            wrapped.clone(),
            RecordingNotifier::new(),
            StaticGrants::new(),
            config.clone(),
        )
        .with_clock(f.clock.clone());
        cold.add_my_passwordless_link(&f.me(&f.ada)).await.unwrap();
        assert_eq!(wrapped.calls("load_many"), 1, "one batched load");
        assert_eq!(wrapped.calls("read_many"), 0, "no stream-by-stream reads");

        let forgetful = PassThrough {
            forget_load_many: true,
            ..PassThrough::new(f.store.inner.clone())
        };
        let cold = PasskeyLinks::new(
            forgetful,
            RecordingNotifier::new(),
            StaticGrants::new(),
            config,
        )
        .with_clock(f.clock.clone());
        let err = cold
            .add_my_passwordless_link(&f.me(&f.ada))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("load_many"), "{err}");
    }
}

#[cfg(feature = "testing")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_degrades_through_a_pass_through_wrapper_of_the_memory_store() {
    wrapped::nothing_degrades_through_a_pass_through_wrapper(|| async { InMemoryStore::new() })
        .await;
}

#[cfg(all(feature = "testing", feature = "postgres"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_degrades_through_a_pass_through_wrapper_of_the_postgres_store() {
    if pg::store().await.is_none() {
        return;
    }
    wrapped::nothing_degrades_through_a_pass_through_wrapper(|| async {
        pg::store().await.expect("database reachable")
    })
    .await;
}
