//! Appends and reads: expected versions, atomic batches, concurrent writers, payloads and times
//! as written.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use super::*;

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
        assert_eq!(recorded.payload, written.payload.to_value().unwrap());
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
    // With everything a batch can carry: an `Any` stream next to an exact one, a stream read
    // and an idempotency key.
    let exact = stream(AggregateKind::Code, "any-exact");
    let seen = ReadStream {
        stream: s.clone(),
        last: Some(LastEvent::of(&store.read(&s, 2).await.unwrap().remove(0))),
    };
    let full = batch(vec![
        append(&s, ExpectedVersion::Any, vec![event(4), event(5)]),
        append(&exact, ExpectedVersion::NoStream, vec![event(1)]),
    ])
    .with_read_set(vec![seen.clone()])
    .unwrap()
    .with_idempotency(IdempotencyRecord {
        key: "any-full".into(),
        outcome: json!({"ok": true}),
        recorded_at: at(),
    });
    assert_eq!(
        versions_of(&store.append(full).await.unwrap()),
        [5, 1],
        "Any counts from the stream's end beside a read set and a key"
    );
    assert!(store.recall("any-full").await.unwrap().is_some());
    // The stream read moved on: the same batch shape writes nothing.
    let stale = batch(vec![
        append(&s, ExpectedVersion::Any, vec![event(6)]),
        append(&exact, ExpectedVersion::Exact(1), vec![event(2)]),
    ])
    .with_read_set(vec![seen])
    .unwrap()
    .with_idempotency(IdempotencyRecord {
        key: "any-stale".into(),
        outcome: json!({"ok": false}),
        recorded_at: at(),
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
                e.payload = crate::store::Payload::new(&json!({ "task": task })).unwrap();
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
    events[0].payload = crate::store::Payload::new(&large).unwrap();
    events[1].payload = crate::store::Payload::new(&unicode).unwrap();
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
