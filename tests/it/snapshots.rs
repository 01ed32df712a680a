//! Long streams on every store: a cold load starts from the newest snapshot, reads the rest in
//! pages (never a whole long history at once), and does not trust a snapshot of a history the
//! store no longer holds.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use passkey_links::ids::StreamId;
use passkey_links::prelude::*;
use passkey_links::store::{
    AppendBatch, Appended, Capabilities, FeedEvent, Recalled, RecordedEvent, Snapshot, StoreError,
};

use crate::scenarios::{Fixture, Inspect, config};

/// A store that counts what loads read: events in all, the most in one call.
#[derive(Clone)]
pub struct Counting<S> {
    inner: S,
    events: Arc<AtomicU64>,
    largest: Arc<AtomicU64>,
}

impl<S> Counting<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            events: Arc::default(),
            largest: Arc::default(),
        }
    }

    /// (events read, most events in one call) since the last reset.
    pub fn take(&self) -> (u64, u64) {
        (
            self.events.swap(0, Ordering::SeqCst),
            self.largest.swap(0, Ordering::SeqCst),
        )
    }
}

forward_personal_keys!(impl<S: EventStore> for Counting<S>);

impl<S: EventStore> EventStore for Counting<S> {
    async fn prune_idempotency(
        &self,
        older_than: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        self.inner.prune_idempotency(older_than).await
    }

    async fn store_time(&self) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
        self.inner.store_time().await
    }

    /// The inner store's, but loads go through the reads this wrapper counts.
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities().batched_load(false)
    }

    fn sleep(&self, duration: std::time::Duration) -> impl std::future::Future<Output = ()> + Send {
        self.inner.sleep(duration)
    }

    async fn read_many(
        &self,
        streams: &[(StreamId, u64)],
        limit: usize,
    ) -> Result<Vec<Vec<RecordedEvent>>, StoreError> {
        let reads = self.inner.read_many(streams, limit).await?;
        let n: u64 = reads.iter().map(|r| r.len() as u64).sum();
        self.events.fetch_add(n, Ordering::SeqCst);
        self.largest.fetch_max(n, Ordering::SeqCst);
        Ok(reads)
    }

    async fn read_snapshots(
        &self,
        streams: &[StreamId],
    ) -> Result<Vec<Option<Snapshot>>, StoreError> {
        self.inner.read_snapshots(streams).await
    }

    async fn write_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.inner.write_snapshot(snapshot).await
    }

    async fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>, StoreError> {
        self.inner.append(batch).await
    }

    async fn read_feed(&self, after: u64, limit: usize) -> Result<Vec<FeedEvent>, StoreError> {
        self.inner.read_feed(after, limit).await
    }

    async fn recall(&self, key: &str) -> Result<Option<Recalled>, StoreError> {
        self.inner.recall(key).await
    }
}

impl<S: Inspect + Sync> Inspect for Counting<S> {
    async fn all_events(&self) -> Vec<RecordedEvent> {
        self.inner.all_events().await
    }
}

fn cold<S: EventStore + Clone>(
    f: &Fixture<Counting<S>>,
    snapshot_every: u64,
) -> PasskeyLinks<Counting<S>, RecordingNotifier, StaticGrants, ManualClock> {
    let config = config();
    let config = config.with_snapshot_every(snapshot_every);
    PasskeyLinks::new(
        f.store.clone(),
        RecordingNotifier::new(),
        StaticGrants::new(),
        config,
    )
    .with_clock(f.clock.clone())
}

/// A fixture whose process snapshots every `snapshot_every` events (0: never) and has locked and
/// unlocked ada `pairs` times: a long stream, written by a warm process.
async fn long_history<S: EventStore + Clone + Inspect + Sync>(
    store: S,
    snapshot_every: u64,
    pairs: usize,
) -> Fixture<Counting<S>> {
    let config = config();
    let config = config.with_snapshot_every(snapshot_every);
    let f = Fixture::with_config(Counting::new(store), config).await;
    for i in 0..pairs {
        for change in [UserChange::Lock, UserChange::Unlock] {
            f.service
                .update_user(&Caller::System, None, &f.ada, change)
                .await
                .unwrap_or_else(|err| panic!("{i}: {err:?}"));
        }
    }
    f
}

pub async fn a_cold_load_reads_from_the_snapshot_in_pages<
    S: EventStore + Clone + Inspect + Sync,
>(
    store: S,
) {
    // 1,250 events on ada's stream: longer than a page (1,000).
    let f = long_history(store, 100, 625).await;
    let me = f.me(&f.ada);
    f.store.take();

    // Without snapshots: the whole stream, a page at a time.
    let full = cold(&f, 0).add_my_passwordless_link(&me).await.unwrap();
    let (events, largest) = f.store.take();
    assert!(events > 1_250, "{events}");
    assert!(largest <= 1_000 + 2, "one call returned {largest} events");

    // With snapshots: only what follows the newest one (taken every 100 events).
    let cold_service = cold(&f, 100);
    let started = cold_service.add_my_passwordless_link(&me).await.unwrap();
    let (events, _) = f.store.take();
    assert!(events <= 110, "a cold load read {events} events");
    assert_eq!(started.details.resource_owner, full.details.resource_owner);

    // A snapshot of a history the store does not hold (as after restoring the database to an
    // earlier point): a later version, taken at an event the store never had. It is not
    // trusted: the stream is folded from its first event.
    let ada = StreamId::user(&UserId::new(&f.ada).unwrap());
    let stored = f
        .store
        .read_snapshots(std::slice::from_ref(&ada))
        .await
        .unwrap();
    let Some(real) = stored.into_iter().next().flatten() else {
        return; // a store without snapshots
    };
    let mut state = real.state.clone();
    assert!(
        state["state"].is_string(),
        "a user's snapshot is sealed: {state}"
    );
    let version = real.version + 1_000;
    state["lastVersion"] = version.into();
    state["lastEventId"] = "67e55044-10b1-426f-9247-bb680e5fe0c8".into();
    f.store
        .write_snapshot(Snapshot::new(ada, version, state))
        .await
        .unwrap();
    f.store.take();
    let after_restore = cold(&f, 100).add_my_passwordless_link(&me).await;
    assert!(after_restore.is_ok(), "{after_restore:?}");
    let (events, _) = f.store.take();
    assert!(
        events > 1_250,
        "a snapshot naming an event the store does not hold was trusted ({events} events read)"
    );
}

/// A process whose cached user is stale (another process wrote to her since) decides again
/// from the cached state: it re-reads only the event the cache kept and what follows it, not her
/// history — with no snapshot to start from.
pub async fn a_stale_cache_reads_only_what_follows_its_last_event<
    S: EventStore + Clone + Inspect + Sync,
>(
    store: S,
) {
    let f = long_history(store, 0, 600).await;
    let me = f.me(&f.ada);
    // Another process writes to ada: the first process's cache no longer ends her stream.
    let other = cold(&f, 0);
    other.add_my_passwordless_link(&me).await.unwrap();
    f.store.take();

    f.service.add_my_passwordless_link(&me).await.unwrap();
    // Read at all: the append guarded by the stale cache was refused. Read little: the load
    // started from the cached state, validated by the event the cache kept.
    let (events, _) = f.store.take();
    assert!(
        (1..=10).contains(&events),
        "a stale cache made the load read {events} events"
    );
}

/// A store whose every read waits first, as over a slow network; everything else forwarded.
#[derive(Clone)]
struct Slow<S> {
    inner: S,
    delay: std::time::Duration,
}

forward_personal_keys!(impl<S: EventStore> for Slow<S>);

impl<S: EventStore> EventStore for Slow<S> {
    async fn prune_idempotency(
        &self,
        older_than: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        self.inner.prune_idempotency(older_than).await
    }

    async fn store_time(&self) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
        self.inner.store_time().await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn read_many(
        &self,
        streams: &[(StreamId, u64)],
        limit: usize,
    ) -> Result<Vec<Vec<RecordedEvent>>, StoreError> {
        self.inner.sleep(self.delay).await;
        self.inner.read_many(streams, limit).await
    }

    async fn load_many(
        &self,
        streams: &[(StreamId, passkey_links::store::ReadFrom)],
        follow: &[passkey_links::store::Follow],
        limit: usize,
    ) -> Result<Vec<passkey_links::store::StreamRead>, StoreError> {
        self.inner.sleep(self.delay).await;
        self.inner.load_many(streams, follow, limit).await
    }

    async fn read_snapshots(
        &self,
        streams: &[StreamId],
    ) -> Result<Vec<Option<Snapshot>>, StoreError> {
        self.inner.read_snapshots(streams).await
    }

    async fn write_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.inner.write_snapshot(snapshot).await
    }

    async fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>, StoreError> {
        self.inner.append(batch).await
    }

    async fn read_feed(&self, after: u64, limit: usize) -> Result<Vec<FeedEvent>, StoreError> {
        self.inner.read_feed(after, limit).await
    }

    async fn recall(&self, key: &str) -> Result<Option<Recalled>, StoreError> {
        self.inner.recall(key).await
    }

    fn sleep(&self, duration: std::time::Duration) -> impl std::future::Future<Output = ()> + Send {
        self.inner.sleep(duration)
    }
}

/// A user whose history (written before snapshots existed, or restored) is too long to fold
/// within one operation's deadline still loads: folding keeps its progress as snapshots while
/// it pages, so every retry starts further on and one gets through. Without snapshots every
/// retry starts over and runs out of time.
pub async fn a_history_too_long_for_one_deadline_loads_over_retries<
    S: EventStore + Clone + Inspect + Sync,
>(
    store: S,
) {
    use passkey_links::domain::{Event, UserEvent};
    use passkey_links::store::{ExpectedVersion, NewEvent, StreamAppend};
    let f = Fixture::new(store.clone()).await;
    let ada = StreamId::user(&UserId::new(&f.ada).unwrap());
    // 20,000 more events, written straight to the store: no snapshot of them exists.
    let mut version = store.read(&ada, 0).await.unwrap().len() as u64;
    for page in 0..20 {
        let events = (0..1_000)
            .map(|i| {
                let event = if i % 2 == 0 {
                    UserEvent::Locked {}
                } else {
                    UserEvent::Unlocked {}
                };
                let (event_type, payload) = Event::User(event).encode().unwrap();
                NewEvent::new(event_type, 1, &payload, chrono::Utc::now()).unwrap()
            })
            .collect();
        let append = StreamAppend {
            stream: ada.clone(),
            expected: ExpectedVersion::from_loaded(version),
            events,
        };
        store
            .append(AppendBatch::new(vec![append]).unwrap())
            .await
            .unwrap_or_else(|err| panic!("page {page}: {err}"));
        version += 1_000;
    }
    let slow = Slow {
        inner: store,
        delay: std::time::Duration::from_millis(10),
    };
    // Time for a few pages, never for the whole history (20 pages): measured here, so that a
    // busy machine, where a page takes longer, gets a deadline to match.
    let mut page = std::time::Duration::ZERO;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        slow.read_many(&[(ada.clone(), 0)], 1_000).await.unwrap();
        page = page.max(started.elapsed());
    }
    let deadline = Some((page * 5).max(std::time::Duration::from_millis(100)));
    let service = |snapshot_every: u64| {
        PasskeyLinks::new(
            slow.clone(),
            RecordingNotifier::new(),
            StaticGrants::new(),
            config()
                .with_snapshot_every(snapshot_every)
                .with_deadline(deadline),
        )
        .with_clock(f.clock.clone())
    };
    let me = f.me(&f.ada);
    let out_of_time = |err: &passkey_links::Error| err.id() == "PKL-SVC-03";
    let without = service(0);
    for _ in 0..3 {
        let err = without.add_my_passwordless_link(&me).await.unwrap_err();
        assert!(out_of_time(&err), "{err:?}");
    }
    let with = service(1_000);
    let mut tries = 0;
    loop {
        tries += 1;
        match with.add_my_passwordless_link(&me).await {
            Ok(_) => break,
            Err(err) if out_of_time(&err) => assert!(tries < 60, "no progress in {tries} tries"),
            Err(err) => panic!("{err:?}"),
        }
    }
    assert!(
        tries > 1,
        "one deadline sufficed: the history is not long enough to test this"
    );
}

/// One `#[tokio::test]` per snapshot scenario for a backend (as `service_scenarios!`).
#[macro_export]
macro_rules! snapshot_scenarios {
    ($store:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_cold_load_reads_from_the_snapshot_in_pages() {
            let Some(store) = $store().await else { return };
            $crate::snapshots::a_cold_load_reads_from_the_snapshot_in_pages(store).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_stale_cache_reads_only_what_follows_its_last_event() {
            let Some(store) = $store().await else { return };
            $crate::snapshots::a_stale_cache_reads_only_what_follows_its_last_event(store).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_history_too_long_for_one_deadline_loads_over_retries() {
            let Some(store) = $store().await else { return };
            $crate::snapshots::a_history_too_long_for_one_deadline_loads_over_retries(store).await;
        }
    };
}
