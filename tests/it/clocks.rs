//! Lifetimes by the store's clock: nodes whose clocks run two hours fast or slow issue and
//! check links as if their clocks were right, because each measures its offset to the store's
//! clock and tells time by it. In memory (a store whose clock a test moves) and on PostgreSQL
//! (the server's clock).

use chrono::{DateTime, Duration, Utc};
use passkey_links::ids::StreamId;
use passkey_links::prelude::*;
use passkey_links::store::{
    AppendBatch, Appended, Capabilities, FeedEvent, Follow, ReadFrom, Recalled, RecordedEvent,
    Snapshot, StoreError, StreamRead,
};

use crate::scenarios::{Fixture, Inspect, check_request, config, link_params};

/// The in-memory store with a clock of its own (the in-memory store has none: it lives in one
/// process).
#[derive(Clone)]
struct Clocked {
    inner: InMemoryStore,
    clock: ManualClock,
}

impl Inspect for Clocked {
    async fn all_events(&self) -> Vec<RecordedEvent> {
        self.inner.all_events()
    }
}

forward_personal_keys!(impl for Clocked);

impl EventStore for Clocked {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities().store_time(true)
    }
    async fn read_many(
        &self,
        streams: &[(StreamId, u64)],
        limit: usize,
    ) -> Result<Vec<Vec<RecordedEvent>>, StoreError> {
        self.inner.read_many(streams, limit).await
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
    async fn prune_idempotency(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
        self.inner.prune_idempotency(older_than).await
    }
    fn sleep(&self, duration: std::time::Duration) -> impl Future<Output = ()> + Send {
        self.inner.sleep(duration)
    }
    async fn load_many(
        &self,
        streams: &[(StreamId, ReadFrom)],
        follow: &[Follow],
        limit: usize,
    ) -> Result<Vec<StreamRead>, StoreError> {
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
    async fn store_time(&self) -> Result<DateTime<Utc>, StoreError> {
        Ok(self.clock.now())
    }
}

type Node<S> = PasskeyLinks<S, RecordingNotifier, StaticGrants, ManualClock>;

/// A node whose clock is `off` from `store_now`, and its clock.
fn node<S: EventStore + Clone>(
    store: &S,
    store_now: DateTime<Utc>,
    off: Duration,
) -> (Node<S>, ManualClock) {
    let clock = ManualClock::new(store_now + off);
    let node = PasskeyLinks::new(
        store.clone(),
        RecordingNotifier::new(),
        StaticGrants::new(),
        config().with_store_clock(true),
    )
    .with_clock(clock.clone());
    (node, clock)
}

/// Issues a link on a node two hours fast; it carries the store's time, and nodes two hours
/// fast, two hours slow and a lifetime and a half late all accept it. Answers the link.
async fn issue_and_check_across_wrong_clocks<S: EventStore + Clone + Inspect>(
    f: &Fixture<S>,
    store_now: DateTime<Utc>,
) -> (String, Vec<(Node<S>, ManualClock)>) {
    let hours = Duration::hours(2);
    let lifetime = Duration::hours(1);
    let fast = node(&f.store, store_now, hours);
    let slow = node(&f.store, store_now, -hours);
    let late = node(&f.store, store_now, lifetime + lifetime / 2);
    let link = fast
        .0
        .add_passwordless_registration(
            &Caller::System,
            None,
            AddPasswordlessRegistrationRequest {
                user_id: f.ada.clone(),
            },
        )
        .await
        .unwrap()
        .link;
    let offset = fast.0.clock_offset().expect("measured");
    assert!((offset + hours).num_seconds().abs() <= 5, "{offset}");
    // Stamped by the store's clock, not the node's.
    let events = f.store.all_events().await;
    let issued = events
        .iter()
        .rev()
        .find(|e| e.event_type == "user.human.passwordless.initialization.code.added")
        .unwrap();
    let issued_at: DateTime<Utc> = issued.payload["issuedAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (issued_at - store_now).num_seconds().abs() <= 5,
        "{issued_at} vs {store_now}"
    );
    let (user, _, code_id, code) = link_params(&link);
    for (name, (node, _)) in [("fast", &fast), ("slow", &slow), ("late", &late)] {
        node.check_code(check_request(&user, &code_id, &code))
            .await
            .unwrap_or_else(|err| panic!("a node {name} refused a live link: {err:?}"));
    }
    (link, vec![fast, slow, late])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifetimes_hold_by_the_stores_clock_in_memory() {
    let store_clock = ManualClock::new(Utc::now());
    let store = Clocked {
        inner: InMemoryStore::new(),
        clock: store_clock.clone(),
    };
    let f = Fixture::new(store).await;
    let store_now = store_clock.now();
    let (link, nodes) = issue_and_check_across_wrong_clocks(&f, store_now).await;
    // The lifetime runs out by the store's clock: every node refuses the link then, whatever
    // its own clock says (each moves on with the store's; their offsets stay).
    let past = Duration::hours(1) + Duration::seconds(1);
    store_clock.advance(past);
    let (user, _, code_id, code) = link_params(&link);
    for (node, clock) in &nodes {
        clock.advance(past);
        let err = node
            .check_code(check_request(&user, &code_id, &code))
            .await
            .unwrap_err();
        assert_eq!(err.message_key(), "Errors.User.Code.Invalid", "{err:?}");
    }
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifetimes_hold_by_the_stores_clock_on_postgres() {
    let Some(store) = crate::pg::store().await else {
        return;
    };
    let f = Fixture::new(store).await;
    issue_and_check_across_wrong_clocks(&f, Utc::now()).await;
}
