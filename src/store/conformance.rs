//! The event store conformance suite (feature `testing`): every store, built in or third-party,
//! must pass it. Each check takes a fresh, empty store and panics with a description when the
//! store misbehaves.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use passkey_links::store::InMemoryStore;
//! passkey_links::store::conformance::run_all(|| async { InMemoryStore::new() }).await;
//! # });
//! ```

// A conformance suite reports failures by panicking, like `assert!`.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::future::Future;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use crate::ids::{AggregateKind, StreamId};
use crate::store::{
    AppendBatch, Appended, EventStore, ExpectedVersion, FeedEvent, IdempotencyRecord, NewEvent,
    StoreError, StreamAppend,
};

fn versions_of(appended: &[Appended]) -> Vec<u64> {
    appended.iter().map(|a| a.version).collect()
}

fn batch(appends: Vec<StreamAppend>) -> AppendBatch {
    AppendBatch::new(appends).expect("one append per stream")
}

fn stream(kind: AggregateKind, id: &str) -> StreamId {
    StreamId::new(kind, id).expect("valid test stream id")
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0)
        .single()
        .expect("valid date")
        + chrono::Duration::microseconds(123_456)
}

fn event(n: u64) -> NewEvent {
    NewEvent {
        event_type: format!("test.event.{n}"),
        schema_version: 1,
        payload: json!({ "n": n }).into(),
        recorded_at: at() + chrono::Duration::microseconds(n as i64),
    }
}

fn append(stream: &StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> StreamAppend {
    StreamAppend {
        stream: stream.clone(),
        expected,
        events,
    }
}

/// Runs every check, each against a fresh store from `make`.
pub async fn run_all<S, F, Fut>(make: F)
where
    S: EventStore + Clone + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    append_to_new_stream(make().await).await;
    no_stream_on_existing_stream_conflicts(make().await).await;
    exact_version_mismatch_conflicts(make().await).await;
    any_appends_whatever_the_version(make().await).await;
    reads_are_ordered_and_start_after_a_version(make().await).await;
    read_many_answers_each_stream_after_its_version(make().await).await;
    snapshots_keep_the_newest_per_stream(make().await).await;
    load_many_starts_at_the_snapshot_or_the_version_asked(make().await).await;
    load_many_reads_the_streams_first_events_name(make().await).await;
    load_many_follows_the_newest_matching_event(make().await).await;
    a_batch_is_written_only_while_the_events_seen_are_last(make().await).await;
    a_conflicting_batch_writes_nothing(make().await).await;
    a_stream_twice_in_one_batch_is_refused(make().await).await;
    concurrent_appenders_have_one_winner_per_version(make().await, 16, 5).await;
    large_and_unicode_payloads_round_trip(make().await).await;
    timestamps_round_trip_to_the_microsecond(make().await).await;
    an_idempotency_key_is_recorded_once_with_its_batch(make().await).await;
    the_feed_lists_every_event_once_in_order(make().await).await;
    a_tailing_feed_reader_misses_nothing(make().await, 8, 25).await;
    concurrent_batches_with_one_key_have_one_winner(make().await).await;
}

/// Reads the whole feed after `after`, `page` events at a time.
async fn read_whole_feed<S: EventStore>(store: &S, after: u64, page: usize) -> Vec<FeedEvent> {
    let mut all = Vec::new();
    let mut last = after;
    loop {
        let read = store.read_feed(last, page).await.expect("read the feed");
        let Some(end) = read.last() else {
            return all;
        };
        last = end.feed_position;
        all.extend(read);
    }
}

/// The feed holds every event once, in append order across streams (batch order within a
/// batch), with increasing positions; paging changes nothing.
pub async fn the_feed_lists_every_event_once_in_order<S: EventStore>(store: S) {
    let a = stream(AggregateKind::User, "feed-a");
    let b = stream(AggregateKind::Code, "feed-b");
    assert!(
        store.read_feed(0, 10).await.unwrap().is_empty(),
        "empty store"
    );
    store
        .append(batch(vec![append(
            &a,
            ExpectedVersion::NoStream,
            vec![event(1), event(2)],
        )]))
        .await
        .unwrap();
    store
        .append(batch(vec![
            append(&b, ExpectedVersion::NoStream, vec![event(1)]),
            append(&a, ExpectedVersion::Exact(2), vec![event(3)]),
        ]))
        .await
        .unwrap();
    let all = store.read_feed(0, 100).await.unwrap();
    let order: Vec<(StreamId, u64)> = all
        .iter()
        .map(|e| (e.event.stream.clone(), e.event.version))
        .collect();
    assert_eq!(
        order,
        vec![
            (a.clone(), 1),
            (a.clone(), 2),
            (b.clone(), 1),
            (a.clone(), 3)
        ]
    );
    assert!(
        all.windows(2)
            .all(|w| w[0].feed_position < w[1].feed_position),
        "positions increase"
    );
    assert_eq!(
        all[3].event.payload,
        event(3).payload.to_value(),
        "the events themselves"
    );
    assert_eq!(
        read_whole_feed(&store, 0, 1).await,
        all,
        "paging changes nothing"
    );
    assert_eq!(
        store.read_feed(all[1].feed_position, 100).await.unwrap(),
        all[2..].to_vec(),
        "reading after a position starts after it"
    );
    assert!(
        store
            .read_feed(all[3].feed_position, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Writers append concurrently while a reader tails the feed a few events at a time: what the
/// reader saw, in order, equals the final full read — nothing skipped, nothing twice.
pub async fn a_tailing_feed_reader_misses_nothing<S>(store: S, writers: u64, per_writer: u64)
where
    S: EventStore + Clone + 'static,
{
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut handles = Vec::new();
    for writer in 0..writers {
        let store = store.clone();
        let done = done.clone();
        handles.push(tokio::spawn(async move {
            for n in 0..per_writer {
                // Two streams per batch, one of them shared: batches of different sizes,
                // contention, retries.
                let own = stream(AggregateKind::User, &format!("tail-{writer}"));
                let shared = stream(AggregateKind::Org, "tail-shared");
                loop {
                    let shared_version = store.read(&shared, 0).await.unwrap().len() as u64;
                    let result = store
                        .append(batch(vec![
                            append(&own, ExpectedVersion::Any, vec![event(n)]),
                            append(
                                &shared,
                                ExpectedVersion::from_loaded(shared_version),
                                vec![event(n)],
                            ),
                        ]))
                        .await;
                    match result {
                        Ok(_) => break,
                        Err(StoreError::Conflict { .. }) => tokio::task::yield_now().await,
                        Err(other) => panic!("unexpected store error: {other}"),
                    }
                }
            }
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
    }
    let reader = {
        let store = store.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen: Vec<FeedEvent> = Vec::new();
            let mut last = 0;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst) == writers;
                let page = store.read_feed(last, 7).await.expect("tail the feed");
                if page.is_empty() {
                    if finished {
                        return seen;
                    }
                    tokio::task::yield_now().await;
                    continue;
                }
                last = page.last().map_or(last, |e| e.feed_position);
                seen.extend(page);
            }
        })
    };
    for handle in handles {
        handle.await.expect("writer");
    }
    let seen = reader.await.expect("reader");
    let full = read_whole_feed(&store, 0, 1000).await;
    assert_eq!(
        full.len() as u64,
        writers * per_writer * 2,
        "every event in the feed"
    );
    assert_eq!(
        seen, full,
        "the tailing reader saw exactly the full feed, in order"
    );
}

/// A key is recorded atomically with its batch: recall answers the outcome and each stream's
/// version after the batch; a second batch with the key writes nothing; a batch that conflicts
/// records no key.
pub async fn an_idempotency_key_is_recorded_once_with_its_batch<S: EventStore>(store: S) {
    let a = stream(AggregateKind::User, "keyed-a");
    let b = stream(AggregateKind::Code, "keyed-b");
    let outcome = json!({"command": "test", "answer": [1, "two"]});
    let record = |key: &str| IdempotencyRecord {
        key: key.to_owned(),
        outcome: outcome.clone(),
    };
    assert_eq!(store.recall("k-1").await.unwrap(), None, "unknown key");
    // A conflicting batch records nothing, its key included.
    let err = store
        .append(
            batch(vec![append(&a, ExpectedVersion::Exact(3), vec![event(1)])])
                .with_idempotency(record("k-1")),
        )
        .await
        .expect_err("conflict");
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(
        store.recall("k-1").await.unwrap(),
        None,
        "a failed batch keeps no key"
    );
    store
        .append(
            batch(vec![
                append(&a, ExpectedVersion::NoStream, vec![event(1), event(2)]),
                append(&b, ExpectedVersion::Any, vec![event(1)]),
            ])
            .with_idempotency(record("k-1")),
        )
        .await
        .expect("keyed batch");
    let recalled = store.recall("k-1").await.unwrap().expect("recorded");
    assert_eq!(recalled.outcome, outcome);
    assert_eq!(recalled.streams, vec![(a.clone(), 2), (b.clone(), 1)]);
    // The same key again: nothing written, whatever the batch.
    let err = store
        .append(
            batch(vec![append(&b, ExpectedVersion::Exact(1), vec![event(2)])])
                .with_idempotency(record("k-1")),
        )
        .await
        .expect_err("a repeated key");
    assert_eq!(err, StoreError::DuplicateKey);
    assert_eq!(store.read(&b, 0).await.unwrap().len(), 1, "nothing written");
    // Unkeyed batches and other keys are unaffected.
    store
        .append(batch(vec![append(
            &b,
            ExpectedVersion::Exact(1),
            vec![event(2)],
        )]))
        .await
        .unwrap();
    store
        .append(
            batch(vec![append(&b, ExpectedVersion::Exact(2), vec![event(3)])])
                .with_idempotency(record("k-2")),
        )
        .await
        .unwrap();
    assert_eq!(
        store.recall("k-2").await.unwrap().unwrap().streams,
        vec![(b, 3)]
    );
}

/// Concurrent batches under one key on different streams: exactly one is written.
pub async fn concurrent_batches_with_one_key_have_one_winner<S>(store: S)
where
    S: EventStore + Clone + 'static,
{
    let mut handles = Vec::new();
    for task in 0..8u32 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let s = stream(AggregateKind::Code, &format!("race-{task}"));
            store
                .append(
                    batch(vec![append(&s, ExpectedVersion::NoStream, vec![event(1)])])
                        .with_idempotency(IdempotencyRecord {
                            key: "raced".into(),
                            outcome: json!(task),
                        }),
                )
                .await
        }));
    }
    let mut won = 0;
    for handle in handles {
        match handle.await.expect("task") {
            Ok(_) => won += 1,
            Err(StoreError::DuplicateKey) => {}
            Err(other) => panic!("unexpected store error: {other}"),
        }
    }
    assert_eq!(won, 1, "one batch per key");
    let recalled = store.recall("raced").await.unwrap().expect("recorded");
    let winner = recalled.outcome.as_u64().expect("the winner's outcome");
    let s = stream(AggregateKind::Code, &format!("race-{winner}"));
    assert_eq!(recalled.streams, vec![(s, 1)]);
    for task in (0..8u64).filter(|t| *t != winner) {
        let other = stream(AggregateKind::Code, &format!("race-{task}"));
        assert!(
            store.read(&other, 0).await.unwrap().is_empty(),
            "loser wrote nothing"
        );
    }
}

/// Appending to a new stream with `NoStream` yields versions 1..=n, read back as written.
pub async fn append_to_new_stream<S: EventStore>(store: S) {
    let s = stream(AggregateKind::User, "new-stream");
    assert!(
        store.read(&s, 0).await.unwrap().is_empty(),
        "unknown stream reads empty"
    );
    let versions = store
        .append(batch(vec![append(
            &s,
            ExpectedVersion::NoStream,
            vec![event(1), event(2)],
        )]))
        .await
        .expect("append to a new stream");
    assert_eq!(versions_of(&versions), [2], "new version after two events");
    let read = store.read(&s, 0).await.unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(
        versions[0].position, read[1].position,
        "the append answers the position its last event is read back at"
    );
    assert!(read[0].position < read[1].position, "positions increase");
    for (i, recorded) in read.iter().enumerate() {
        let n = i as u64 + 1;
        let written = event(n);
        assert_eq!(recorded.stream, s);
        assert_eq!(recorded.version, n);
        assert_eq!(recorded.event_type, written.event_type);
        assert_eq!(recorded.schema_version, 1);
        assert_eq!(recorded.payload, written.payload.to_value());
        assert_eq!(recorded.recorded_at, written.recorded_at);
    }
}

/// `NoStream` on an existing stream is a conflict carrying the actual version.
pub async fn no_stream_on_existing_stream_conflicts<S: EventStore>(store: S) {
    let s = stream(AggregateKind::Org, "exists");
    store
        .append(batch(vec![append(
            &s,
            ExpectedVersion::NoStream,
            vec![event(1)],
        )]))
        .await
        .unwrap();
    let err = store
        .append(batch(vec![append(
            &s,
            ExpectedVersion::NoStream,
            vec![event(2)],
        )]))
        .await
        .expect_err("no-stream on an existing stream must conflict");
    assert_eq!(
        err,
        StoreError::Conflict {
            stream: s.clone(),
            expected: ExpectedVersion::NoStream,
            actual: 1
        }
    );
    assert_eq!(store.read(&s, 0).await.unwrap().len(), 1, "nothing written");
}

/// `Exact(n)` on a stream at another version is a conflict carrying expected and actual.
pub async fn exact_version_mismatch_conflicts<S: EventStore>(store: S) {
    let s = stream(AggregateKind::Code, "exact");
    store
        .append(batch(vec![append(
            &s,
            ExpectedVersion::NoStream,
            vec![event(1), event(2)],
        )]))
        .await
        .unwrap();
    for wrong in [1, 3] {
        let err = store
            .append(batch(vec![append(
                &s,
                ExpectedVersion::Exact(wrong),
                vec![event(3)],
            )]))
            .await
            .expect_err("a wrong exact version must conflict");
        assert_eq!(
            err,
            StoreError::Conflict {
                stream: s.clone(),
                expected: ExpectedVersion::Exact(wrong),
                actual: 2
            }
        );
    }
    let versions = store
        .append(batch(vec![append(
            &s,
            ExpectedVersion::Exact(2),
            vec![event(3)],
        )]))
        .await
        .unwrap();
    assert_eq!(versions_of(&versions), [3]);
}

/// `Any` appends to new and existing streams.
pub async fn any_appends_whatever_the_version<S: EventStore>(store: S) {
    let s = stream(AggregateKind::User, "any");
    assert_eq!(
        store
            .append(batch(vec![append(
                &s,
                ExpectedVersion::Any,
                vec![event(1)]
            )]))
            .await
            .map(|appended| versions_of(&appended))
            .unwrap(),
        [1]
    );
    assert_eq!(
        store
            .append(batch(vec![append(
                &s,
                ExpectedVersion::Any,
                vec![event(2), event(3)]
            )]))
            .await
            .map(|appended| versions_of(&appended))
            .unwrap(),
        [3]
    );
    // With everything a batch can carry: an `Any` stream next to an exact one, an event seen
    // and an idempotency key.
    let exact = stream(AggregateKind::Code, "any-exact");
    let seen = std::sync::Arc::new(crate::store::Seen::of(
        &store.read(&s, 2).await.unwrap().remove(0),
    ));
    let full = batch(vec![
        append(&s, ExpectedVersion::Any, vec![event(4), event(5)]),
        append(&exact, ExpectedVersion::NoStream, vec![event(1)]),
    ])
    .with_seen(vec![seen.clone()])
    .with_idempotency(IdempotencyRecord {
        key: "any-full".into(),
        outcome: json!({"ok": true}),
    });
    assert_eq!(
        versions_of(&store.append(full).await.unwrap()),
        [5, 1],
        "Any counts from the stream's end beside a seen event and a key"
    );
    assert!(store.recall("any-full").await.unwrap().is_some());
    // The event seen is no longer last: the same batch shape writes nothing.
    let stale = batch(vec![
        append(&s, ExpectedVersion::Any, vec![event(6)]),
        append(&exact, ExpectedVersion::Exact(1), vec![event(2)]),
    ])
    .with_seen(vec![seen])
    .with_idempotency(IdempotencyRecord {
        key: "any-stale".into(),
        outcome: json!({"ok": false}),
    });
    let result = store.append(stale).await;
    assert!(
        matches!(result, Err(StoreError::Conflict { .. })),
        "{result:?}"
    );
    assert_eq!(store.read(&s, 0).await.unwrap().len(), 5, "nothing written");
    assert_eq!(store.recall("any-stale").await.unwrap(), None);
}

/// Reads return events in version order, only after the given version, and positions grow in
/// append order across streams.
pub async fn reads_are_ordered_and_start_after_a_version<S: EventStore>(store: S) {
    let a = stream(AggregateKind::User, "order-a");
    let b = stream(AggregateKind::User, "order-b");
    for n in 1..=4 {
        for s in [&a, &b] {
            let expected = ExpectedVersion::from_loaded(n - 1);
            store
                .append(batch(vec![append(s, expected, vec![event(n)])]))
                .await
                .unwrap();
        }
    }
    let tail = store.read(&a, 2).await.unwrap();
    assert_eq!(
        tail.iter().map(|e| e.version).collect::<Vec<_>>(),
        [3, 4],
        "read after version 2"
    );
    assert!(store.read(&a, 4).await.unwrap().is_empty());
    let all_a = store.read(&a, 0).await.unwrap();
    let all_b = store.read(&b, 0).await.unwrap();
    for (x, y) in all_a.iter().zip(&all_b) {
        assert!(x.position < y.position, "positions follow append order");
    }
    for pair in all_a.windows(2) {
        assert!(pair[0].position < pair[1].position);
    }
}

/// `read_many` answers each stream exactly as `read` does, in the order asked, unknown streams
/// empty, at most `limit` events per stream.
pub async fn read_many_answers_each_stream_after_its_version<S: EventStore>(store: S) {
    let a = stream(AggregateKind::User, "many-a");
    let b = stream(AggregateKind::Org, "many-b");
    let unknown = stream(AggregateKind::Code, "many-unknown");
    store
        .append(batch(vec![
            append(
                &a,
                ExpectedVersion::NoStream,
                vec![event(1), event(2), event(3)],
            ),
            append(&b, ExpectedVersion::NoStream, vec![event(1)]),
        ]))
        .await
        .unwrap();
    let asked = [(b.clone(), 0), (unknown.clone(), 0), (a.clone(), 1)];
    let reads = store.read_many(&asked, 100).await.unwrap();
    assert_eq!(reads.len(), 3, "one answer per stream");
    for ((stream, after), read) in asked.iter().zip(&reads) {
        assert_eq!(read, &store.read(stream, *after).await.unwrap(), "{stream}");
    }
    assert_eq!(
        reads[2].iter().map(|e| e.version).collect::<Vec<_>>(),
        [2, 3]
    );
    assert!(store.read_many(&[], 100).await.unwrap().is_empty());
    let paged = store
        .read_many(&[(a.clone(), 0), (b.clone(), 0)], 2)
        .await
        .unwrap();
    let versions = |events: &[crate::store::RecordedEvent]| -> Vec<u64> {
        events.iter().map(|e| e.version).collect()
    };
    assert_eq!(versions(&paged[0]), [1, 2], "the first page of a");
    assert_eq!(versions(&paged[1]), [1], "all of b");
    let rest = store.read_many(&[(a.clone(), 2)], 2).await.unwrap();
    assert_eq!(versions(&rest[0]), [3], "the next page of a");
}

/// `load_many` reads each stream from where it is asked: after a version, or at its newest
/// snapshot's version (that event again), or from the start when it has none.
pub async fn load_many_starts_at_the_snapshot_or_the_version_asked<S: EventStore>(store: S) {
    use crate::store::{ReadFrom, Snapshot};
    let a = stream(AggregateKind::User, "load-a");
    let b = stream(AggregateKind::User, "load-b");
    let c = stream(AggregateKind::Code, "load-c");
    store
        .append(batch(vec![
            append(&a, ExpectedVersion::NoStream, (1..=5).map(event).collect()),
            append(&b, ExpectedVersion::NoStream, vec![event(1), event(2)]),
            append(
                &c,
                ExpectedVersion::NoStream,
                vec![event(1), event(2), event(3)],
            ),
        ]))
        .await
        .unwrap();
    store
        .write_snapshot(Snapshot::new(a.clone(), 3, json!({"at": 3})))
        .await
        .unwrap();
    let kept = store
        .read_snapshots(std::slice::from_ref(&a))
        .await
        .unwrap()[0]
        .is_some();
    let asked = [
        (a.clone(), ReadFrom::Snapshot),
        (b.clone(), ReadFrom::Snapshot),
        (c.clone(), ReadFrom::After(1)),
    ];
    let reads = store.load_many(&asked, &[], 100).await.unwrap();
    let versions = |i: usize| -> Vec<u64> { reads[i].events.iter().map(|e| e.version).collect() };
    if kept {
        assert_eq!(reads[0].snapshot.as_ref().map(|s| s.version), Some(3));
        assert_eq!(versions(0), [3, 4, 5], "from the snapshot's own event on");
    } else {
        assert_eq!(versions(0), [1, 2, 3, 4, 5]);
    }
    assert_eq!(reads[1].snapshot, None);
    assert_eq!(versions(1), [1, 2], "no snapshot: from the start");
    assert_eq!(reads[2].snapshot, None);
    assert_eq!(versions(2), [2, 3]);
    let paged = store.load_many(&asked[..1], &[], 2).await.unwrap();
    assert_eq!(paged[0].events.len(), 2, "at most the limit");
}

/// `load_many` reads a stream named by the newest event of a type whose field matches, among
/// the last [`crate::store::FOLLOW_WINDOW`] events of the stream followed — whether that is
/// read from a later version or from its snapshot —; an older match, another type, a match
/// beyond the window or no match at all is not followed.
pub async fn load_many_follows_the_newest_matching_event<S: EventStore>(store: S) {
    use crate::store::{FOLLOW_WINDOW, Follow, ReadFrom, Snapshot};
    let user = stream(AggregateKind::User, "latest-user");
    let old = stream(AggregateKind::User, "latest-old");
    let code = |n: u64| stream(AggregateKind::Code, &format!("latest-code-{n}"));
    let started = |n: u64, event_type: &str, passkey: &str, code_n: u64| NewEvent {
        event_type: event_type.to_owned(),
        payload: json!({ "n": n, "passkeyId": passkey, "codeId": code(code_n).id() }).into(),
        ..event(n)
    };
    let fillers = |from: u64, to: u64| (from..=to).map(event).collect::<Vec<_>>();
    let mut history = vec![
        started(1, "test.started", "old", 5),
        started(2, "test.started", "edge", 6),
    ];
    history.extend(fillers(3, FOLLOW_WINDOW + 1));
    let mut appends = vec![
        append(
            &user,
            ExpectedVersion::NoStream,
            vec![
                event(1),
                started(2, "test.started", "a", 1),
                started(3, "test.started", "b", 2),
                started(4, "test.started", "a", 3),
                started(5, "test.other", "b", 4),
            ],
        ),
        append(&old, ExpectedVersion::NoStream, history),
    ];
    appends.extend((1..=6).map(|n| append(&code(n), ExpectedVersion::NoStream, fillers(1, n))));
    store.append(batch(appends)).await.unwrap();
    store
        .write_snapshot(Snapshot::new(old.clone(), 10, json!({"at": 10})))
        .await
        .unwrap();
    let asked = [
        (user.clone(), ReadFrom::After(3)),
        (old.clone(), ReadFrom::Snapshot),
    ];
    let latest = |from: usize, field: &'static str, passkey: &str| {
        Follow::latest(
            from,
            field,
            AggregateKind::Code,
            "test.started",
            "passkeyId",
            passkey,
        )
    };
    let follow = [
        latest(0, "codeId", "a"),
        latest(0, "codeId", "b"),
        latest(0, "codeId", "none"),
        latest(1, "codeId", "old"),
        latest(1, "codeId", "edge"),
        latest(0, "noSuchField", "a"),
    ];
    let reads = store.load_many(&asked, &follow, 100).await.unwrap();
    assert_eq!(reads.len(), asked.len() + follow.len());
    let user_versions: Vec<u64> = reads[0].events.iter().map(|e| e.version).collect();
    assert_eq!(user_versions, [4, 5], "the streams asked are read as asked");
    for (i, expected, why) in [
        (2, Some(3), "the newest of two matches"),
        (3, Some(2), "a match, a newer event of another type ignored"),
        (4, None, "no match"),
        (5, None, "a match beyond the last events"),
        (6, Some(6), "the oldest match within the last events"),
        (7, None, "no such field"),
    ] {
        match expected {
            Some(n) => {
                let versions: Vec<u64> = reads[i].events.iter().map(|e| e.version).collect();
                assert!(
                    reads[i].events.iter().all(|e| e.stream == code(n)),
                    "{why}: {:?}",
                    reads[i].events.first().map(|e| &e.stream)
                );
                assert_eq!(versions, (1..=n).collect::<Vec<_>>(), "{why}");
            }
            None => assert_eq!(reads[i], crate::store::StreamRead::default(), "{why}"),
        }
    }
}

/// `load_many` reads a [`crate::store::Follow`]ed stream — named by a field of another
/// stream's first event — from its snapshot, in the same call; a stream whose first event
/// names nothing (no such field, not text, no events at all) follows to nothing.
pub async fn load_many_reads_the_streams_first_events_name<S: EventStore>(store: S) {
    use crate::store::{Follow, ReadFrom, Snapshot};
    let org = stream(AggregateKind::Org, "follow-org");
    let user = stream(AggregateKind::User, "follow-user");
    let unnamed = stream(AggregateKind::User, "follow-unnamed");
    let absent = stream(AggregateKind::User, "follow-absent");
    let named = |n: u64, field: serde_json::Value| NewEvent {
        payload: json!({ "n": n, "orgId": field }).into(),
        ..event(n)
    };
    store
        .append(batch(vec![
            append(
                &org,
                ExpectedVersion::NoStream,
                (1..=4).map(event).collect(),
            ),
            append(
                &user,
                ExpectedVersion::NoStream,
                vec![named(1, json!(org.id())), event(2), event(3)],
            ),
            append(
                &unnamed,
                ExpectedVersion::NoStream,
                vec![named(1, json!(7)), named(2, json!(org.id()))],
            ),
        ]))
        .await
        .unwrap();
    store
        .write_snapshot(Snapshot::new(org.clone(), 3, json!({"at": 3})))
        .await
        .unwrap();
    let kept = store
        .read_snapshots(std::slice::from_ref(&org))
        .await
        .unwrap()[0]
        .is_some();
    let asked = [
        (unnamed.clone(), ReadFrom::After(0)),
        // Read from its last event: the first is read for the follow all the same.
        (user.clone(), ReadFrom::After(2)),
        (absent.clone(), ReadFrom::Snapshot),
    ];
    let follow = [
        Follow::new(1, "orgId", AggregateKind::Org),
        Follow::new(0, "orgId", AggregateKind::Org),
        Follow::new(2, "orgId", AggregateKind::Org),
        Follow::new(1, "noSuchField", AggregateKind::Org),
    ];
    let reads = store.load_many(&asked, &follow, 100).await.unwrap();
    assert_eq!(reads.len(), asked.len() + follow.len());
    let versions = |i: usize| -> Vec<u64> { reads[i].events.iter().map(|e| e.version).collect() };
    assert_eq!(versions(0), [1, 2]);
    assert_eq!(versions(1), [3], "the streams asked are read as asked");
    assert!(versions(2).is_empty());
    let followed = &reads[3];
    assert!(followed.events.iter().all(|e| e.stream == org));
    if kept {
        assert_eq!(
            followed.snapshot.as_ref().map(|s| (&s.stream, s.version)),
            Some((&org, 3))
        );
        assert_eq!(versions(3), [3, 4], "from the snapshot's own event on");
    } else {
        assert_eq!(versions(3), [1, 2, 3, 4]);
    }
    for (i, why) in [
        (4, "a first event whose field is not text"),
        (5, "no first event"),
        (6, "no such field"),
    ] {
        assert_eq!(reads[i], crate::store::StreamRead::default(), "{why}");
    }
    let paged = store
        .load_many(
            &asked[1..2],
            &[Follow::new(0, "orgId", AggregateKind::Org)],
            1,
        )
        .await
        .unwrap();
    assert_eq!(paged[1].events.len(), 1, "at most the limit");
}

/// A batch with events seen ([`crate::store::Seen`]) is written only while each of those
/// streams still ends with the event seen: a later event, or another event at the same version
/// (a database restored to an earlier point and written differently), is a conflict, and
/// nothing is written.
pub async fn a_batch_is_written_only_while_the_events_seen_are_last<S: EventStore>(store: S) {
    // Small batches, and batches with more rows and more events seen than a store may treat
    // as small, are held to the same rules.
    seen_checks(&store, "seen", 0).await;
    seen_checks(&store, "seen-large", 5).await;
}

/// The checks of [`a_batch_is_written_only_while_the_events_seen_are_last`]; with `padding`,
/// each batch also writes `padding` events to a fresh stream and sees `padding` more streams
/// as they stand.
async fn seen_checks<S: EventStore>(store: &S, name: &str, padding: u64) {
    use crate::store::Seen;
    use std::sync::Arc;
    let read_only = stream(AggregateKind::Org, &format!("{name}-org"));
    let written = stream(AggregateKind::User, &format!("{name}-user"));
    let mut padded_seen = Vec::new();
    for k in 0..padding {
        let other = stream(AggregateKind::Org, &format!("{name}-pad-{k}"));
        store
            .append(batch(vec![append(
                &other,
                ExpectedVersion::NoStream,
                vec![event(1)],
            )]))
            .await
            .unwrap();
        let last = store.read(&other, 0).await.unwrap().remove(0);
        padded_seen.push(Arc::new(Seen::of(&last)));
    }
    let batches = std::sync::atomic::AtomicU64::new(0);
    let padded = |mut appends: Vec<StreamAppend>, mut seen: Vec<Arc<Seen>>| {
        if padding > 0 {
            let n = batches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let fresh = stream(AggregateKind::Code, &format!("{name}-fresh-{n}"));
            appends.push(append(
                &fresh,
                ExpectedVersion::NoStream,
                (1..=padding).map(event).collect(),
            ));
            seen.extend(padded_seen.iter().cloned());
        }
        batch(appends).with_seen(seen)
    };
    store
        .append(batch(vec![append(
            &read_only,
            ExpectedVersion::NoStream,
            vec![event(1), event(2)],
        )]))
        .await
        .unwrap();
    let last = store.read(&read_only, 1).await.unwrap().remove(0);
    let seen = Seen::of(&last);
    let write = |n: u64, expected| {
        padded(
            vec![append(&written, expected, vec![event(n)])],
            vec![Arc::new(seen.clone())],
        )
    };
    let appended = store
        .append(write(1, ExpectedVersion::NoStream))
        .await
        .unwrap();
    assert_eq!(
        versions_of(&appended[..1]),
        [1],
        "the event seen is still last: written"
    );
    // The read-only stream moves on: a batch that saw its older end writes nothing.
    store
        .append(batch(vec![append(
            &read_only,
            ExpectedVersion::Exact(2),
            vec![event(3)],
        )]))
        .await
        .unwrap();
    match store.append(write(2, ExpectedVersion::Exact(1))).await {
        Err(StoreError::Conflict { stream, actual, .. }) => {
            assert_eq!(stream, read_only);
            assert_eq!(actual, 3);
        }
        other => panic!("a batch that saw an older end was written: {other:?}"),
    }
    // Another event at the version seen: same stream, version and position, other content.
    let now_last = store.read(&read_only, 2).await.unwrap().remove(0);
    let mut other = Seen::of(&now_last);
    other.payload = json!({"n": "not what is stored"}).into();
    let stale = padded(
        vec![append(&written, ExpectedVersion::Exact(1), vec![event(2)])],
        vec![Arc::new(other)],
    );
    assert!(
        matches!(store.append(stale).await, Err(StoreError::Conflict { .. })),
        "a batch that saw another event at the same version was written"
    );
    assert_eq!(
        store.read(&written, 0).await.unwrap().len(),
        1,
        "nothing written"
    );
    if padding > 0 {
        let fresh: usize = {
            let mut total = 0;
            for n in 0..batches.load(std::sync::atomic::Ordering::Relaxed) {
                let fresh = stream(AggregateKind::Code, &format!("{name}-fresh-{n}"));
                total += store.read(&fresh, 0).await.unwrap().len();
            }
            total
        };
        assert_eq!(fresh as u64, padding, "only the first batch was written");
    }
}

/// Snapshots: none until written, the newest kept per stream, an older one never replacing
/// it. (A store without snapshots — the port's defaults — passes by keeping none.)
pub async fn snapshots_keep_the_newest_per_stream<S: EventStore>(store: S) {
    use crate::store::Snapshot;
    let a = stream(AggregateKind::User, "snap-a");
    let b = stream(AggregateKind::Org, "snap-b");
    let none = store.read_snapshots(&[a.clone(), b.clone()]).await.unwrap();
    assert_eq!(none, [None, None]);
    store
        .write_snapshot(Snapshot::new(a.clone(), 5, json!({"at": 5})))
        .await
        .unwrap();
    let kept = store
        .read_snapshots(std::slice::from_ref(&a))
        .await
        .unwrap();
    if kept[0].is_none() {
        return; // a store that keeps no snapshots
    }
    store
        .write_snapshot(Snapshot::new(a.clone(), 3, json!({"at": 3})))
        .await
        .unwrap();
    store
        .write_snapshot(Snapshot::new(b.clone(), 1, json!({"at": "b"})))
        .await
        .unwrap();
    let read = store.read_snapshots(&[b.clone(), a.clone()]).await.unwrap();
    assert_eq!(
        read[0],
        Some(Snapshot::new(b.clone(), 1, json!({"at": "b"})))
    );
    assert_eq!(
        read[1],
        Some(Snapshot::new(a.clone(), 5, json!({"at": 5}))),
        "an older snapshot replaced a newer one"
    );
    store
        .write_snapshot(Snapshot::new(a.clone(), 9, json!({"at": 9})))
        .await
        .unwrap();
    let read = store.read_snapshots(&[a]).await.unwrap();
    assert_eq!(read[0].as_ref().map(|s| s.version), Some(9));
}

/// A batch where one stream conflicts writes nothing to any stream.
pub async fn a_conflicting_batch_writes_nothing<S: EventStore>(store: S) {
    let fresh = stream(AggregateKind::Code, "batch-fresh");
    let existing = stream(AggregateKind::User, "batch-existing");
    store
        .append(batch(vec![append(
            &existing,
            ExpectedVersion::NoStream,
            vec![event(1)],
        )]))
        .await
        .unwrap();
    let err = store
        .append(batch(vec![
            append(&fresh, ExpectedVersion::NoStream, vec![event(1), event(2)]),
            append(&existing, ExpectedVersion::Exact(5), vec![event(2)]),
        ]))
        .await
        .expect_err("one conflicting stream fails the batch");
    assert_eq!(
        err,
        StoreError::Conflict {
            stream: existing.clone(),
            expected: ExpectedVersion::Exact(5),
            actual: 1
        }
    );
    assert!(
        store.read(&fresh, 0).await.unwrap().is_empty(),
        "nothing written"
    );
    assert_eq!(store.read(&existing, 0).await.unwrap().len(), 1);
    let versions = store
        .append(batch(vec![
            append(&fresh, ExpectedVersion::NoStream, vec![event(1), event(2)]),
            append(&existing, ExpectedVersion::Exact(1), vec![event(2)]),
        ]))
        .await
        .unwrap();
    assert_eq!(
        versions_of(&versions),
        [2, 2],
        "a valid batch writes every stream"
    );
}

/// The same stream twice in one batch is refused before it reaches any store (it would make
/// expectations ambiguous).
pub async fn a_stream_twice_in_one_batch_is_refused<S: EventStore>(store: S) {
    let s = stream(AggregateKind::User, "twice");
    let result = AppendBatch::new(vec![
        append(&s, ExpectedVersion::NoStream, vec![event(1)]),
        append(&s, ExpectedVersion::Exact(1), vec![event(2)]),
    ]);
    assert!(result.is_err(), "duplicate stream in a batch must fail");
    assert!(store.read(&s, 0).await.unwrap().is_empty());
}

/// `tasks` concurrent appenders each append `per_task` events to one stream with exact
/// versions, retrying on conflict: every version has exactly one winner and there are no gaps.
pub async fn concurrent_appenders_have_one_winner_per_version<S>(
    store: S,
    tasks: u64,
    per_task: u64,
) where
    S: EventStore + Clone + 'static,
{
    let s = stream(AggregateKind::User, "contended");
    let mut handles = Vec::new();
    for task in 0..tasks {
        let store = store.clone();
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let mut won = Vec::new();
            while (won.len() as u64) < per_task {
                let version = store.read(&s, 0).await.unwrap().len() as u64;
                let mut e = event(version + 1);
                e.payload = json!({ "task": task }).into();
                match store
                    .append(batch(vec![append(
                        &s,
                        ExpectedVersion::from_loaded(version),
                        vec![e],
                    )]))
                    .await
                {
                    Ok(appended) => won.push(appended[0].version),
                    Err(StoreError::Conflict { .. }) => tokio::task::yield_now().await,
                    Err(other) => panic!("unexpected store error: {other}"),
                }
            }
            won
        }));
    }
    let mut winners = BTreeSet::new();
    for handle in handles {
        for version in handle.await.expect("appender task") {
            assert!(winners.insert(version), "version {version} won twice");
        }
    }
    let total = tasks * per_task;
    assert_eq!(winners, (1..=total).collect::<BTreeSet<_>>(), "no gaps");
    let read = store.read(&s, 0).await.unwrap();
    assert_eq!(
        read.iter().map(|e| e.version).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
}

/// A 1 MiB payload and non-ASCII text round-trip exactly.
pub async fn large_and_unicode_payloads_round_trip<S: EventStore>(store: S) {
    let s = stream(AggregateKind::Org, "payloads");
    let large: Value = json!({ "blob": "x".repeat(1 << 20) });
    let unicode: Value = json!({
        "name": "Zoë 🔑 ключ 鍵 مفتاح",
        "nested": { "list": [1, 2.5, -3, true, null, "\u{1F600}"] },
        "quote": "\"'\\<>&"
    });
    let mut events = vec![event(1), event(2)];
    events[0].payload = large.clone().into();
    events[1].payload = unicode.clone().into();
    store
        .append(batch(vec![append(&s, ExpectedVersion::NoStream, events)]))
        .await
        .unwrap();
    let read = store.read(&s, 0).await.unwrap();
    assert_eq!(read[0].payload, large);
    assert_eq!(read[1].payload, unicode);
}

/// Timestamps round-trip to the microsecond.
pub async fn timestamps_round_trip_to_the_microsecond<S: EventStore>(store: S) {
    let s = stream(AggregateKind::Code, "timestamps");
    let stamps = [
        at(),
        Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59)
            .single()
            .unwrap()
            + chrono::Duration::microseconds(999_999),
        Utc.with_ymd_and_hms(2262, 1, 1, 0, 0, 0).single().unwrap()
            + chrono::Duration::microseconds(1),
    ];
    let events: Vec<NewEvent> = stamps
        .iter()
        .enumerate()
        .map(|(i, stamp)| NewEvent {
            recorded_at: *stamp,
            ..event(i as u64 + 1)
        })
        .collect();
    store
        .append(batch(vec![append(&s, ExpectedVersion::NoStream, events)]))
        .await
        .unwrap();
    let read = store.read(&s, 0).await.unwrap();
    let back: Vec<DateTime<Utc>> = read.iter().map(|e| e.recorded_at).collect();
    assert_eq!(back, stamps);
}

/// Runs every check of the projection store port (checkpoints and the shipped read models'
/// tables), each against a fresh store from `make`.
pub async fn run_projection_store<S, F, Fut>(make: F)
where
    S: crate::store::ProjectionStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    checkpoints_never_move_back(make().await).await;
    read_changes_apply_once_whatever_the_repeats(make().await).await;
}

/// Checkpoints start at 0, are kept per projection, and never move back.
pub async fn checkpoints_never_move_back<S: crate::store::ProjectionStore>(store: S) {
    assert_eq!(store.checkpoint("a").await.unwrap(), 0);
    store.save_checkpoint("a", 5).await.unwrap();
    store.save_checkpoint("a", 3).await.unwrap();
    assert_eq!(
        store.checkpoint("a").await.unwrap(),
        5,
        "a checkpoint moved back"
    );
    assert_eq!(store.checkpoint("b").await.unwrap(), 0);
    store.apply_read_changes("b", 9, Vec::new()).await.unwrap();
    assert_eq!(store.checkpoint("b").await.unwrap(), 9);
    assert_eq!(store.checkpoint("a").await.unwrap(), 5);
}

fn read_fixture() -> Vec<crate::store::ReadChange> {
    use crate::domain::code::Issued;
    use crate::ids::{CodeId, OrgId, UserId};
    use crate::store::{AuditEntry, DeliveryState, LinkRow, ReadChange};
    let org = OrgId::new("org-1").unwrap();
    let ada = UserId::new("ada").unwrap();
    let code = |n: u32| CodeId::new(format!("code-{n}")).unwrap();
    let issued = |n: i64| {
        Issued::new(
            ada.clone(),
            org.clone(),
            crate::secret::Secret::presented(format!("secret-{n}-of-some-length-000000")).digest(),
            at() + chrono::Duration::seconds(n),
            chrono::Duration::hours(1),
            2,
            1,
            5,
        )
    };
    let audit = |position: u64, stream: &StreamId, version: u64| {
        ReadChange::Audit(AuditEntry::new(
            position,
            stream.clone(),
            version,
            format!("test.event.{position}"),
            at() + chrono::Duration::seconds(position as i64),
            json!({ "n": position }),
        ))
    };
    let org_stream = StreamId::org(&org);
    let user_stream = StreamId::user(&ada);
    let code_stream = |n: u32| StreamId::code(&code(n));
    let owner = |stream: &StreamId, user: Option<&UserId>| ReadChange::Owner {
        stream: stream.clone(),
        user_id: user.cloned(),
        org_id: org.clone(),
    };
    vec![
        owner(&org_stream, None),
        audit(1, &org_stream, 1),
        owner(&user_stream, Some(&ada)),
        audit(2, &user_stream, 1),
        owner(&code_stream(1), Some(&ada)),
        audit(3, &code_stream(1), 1),
        ReadChange::LinkIssued {
            row: LinkRow::new(code(1), issued(3), DeliveryState::Requested, 0),
            feed_position: 3,
        },
        audit(4, &code_stream(1), 2),
        ReadChange::LinkDelivered {
            code_id: code(1),
            state: DeliveryState::Sent,
            feed_position: 4,
        },
        audit(5, &code_stream(1), 3),
        ReadChange::LinkCheckFailed {
            code_id: code(1),
            feed_position: 5,
        },
        audit(6, &code_stream(1), 4),
        ReadChange::LinkCheckFailed {
            code_id: code(1),
            feed_position: 6,
        },
        owner(&code_stream(2), Some(&ada)),
        audit(7, &code_stream(2), 1),
        ReadChange::LinkIssued {
            row: LinkRow::new(code(2), issued(7), DeliveryState::Returned, 0),
            feed_position: 7,
        },
        audit(8, &code_stream(2), 2),
        ReadChange::LinkEnded {
            code_id: code(2),
            feed_position: 8,
        },
        owner(&code_stream(3), Some(&ada)),
        audit(9, &code_stream(3), 1),
        ReadChange::LinkIssued {
            row: LinkRow::new(code(3), issued(9), DeliveryState::Returned, 0),
            feed_position: 9,
        },
    ]
}

async fn read_snapshot<S: crate::store::ProjectionStore>(
    store: &S,
) -> (Vec<crate::store::LinkRow>, Vec<u64>, Vec<u64>) {
    use crate::ids::{OrgId, UserId};
    use crate::store::AuditScope;
    let ada = UserId::new("ada").unwrap();
    let rows = store.link_rows(&ada).await.unwrap();
    let user = AuditScope::User(ada);
    let org = AuditScope::Org(OrgId::new("org-1").unwrap());
    let mut positions = Vec::new();
    let mut before = None;
    loop {
        let page = store.audit_page(&user, before, 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        positions.extend(page.iter().map(|entry| entry.feed_position));
        before = page.last().map(|entry| entry.feed_position);
    }
    let whole = store.audit_page(&org, None, 100).await.unwrap();
    (
        rows,
        positions,
        whole.iter().map(|e| e.feed_position).collect(),
    )
}

/// Applying read-model changes is idempotent by feed position: the same batch again, or an old
/// batch after newer ones, leaves the tables as applying each once in order.
pub async fn read_changes_apply_once_whatever_the_repeats<S: crate::store::ProjectionStore>(
    store: S,
) {
    use crate::store::DeliveryState;
    let changes = read_fixture();
    store
        .apply_read_changes("read", 9, changes.clone())
        .await
        .unwrap();
    let once = read_snapshot(&store).await;
    let (rows, user_trail, org_trail) = &once;
    let listed: Vec<(&str, DeliveryState, u32)> = rows
        .iter()
        .map(|row| (row.code_id.as_str(), row.delivery, row.failed_checks))
        .collect();
    assert_eq!(
        listed,
        [
            ("code-3", DeliveryState::Returned, 0),
            ("code-1", DeliveryState::Sent, 2)
        ],
        "link rows: newest first, ended codes left out, checks counted"
    );
    assert_eq!(
        user_trail,
        &[9, 8, 7, 6, 5, 4, 3, 2],
        "user trail, newest first"
    );
    assert_eq!(
        org_trail,
        &[9, 8, 7, 6, 5, 4, 3, 2, 1],
        "org trail, newest first"
    );
    // At least once: everything again, then the first half again.
    store
        .apply_read_changes("read", 9, changes.clone())
        .await
        .unwrap();
    store
        .apply_read_changes("read", 4, changes[..9].to_vec())
        .await
        .unwrap();
    assert_eq!(
        read_snapshot(&store).await,
        once,
        "a repeated change applied twice"
    );
    assert_eq!(store.checkpoint("read").await.unwrap(), 9);
}
