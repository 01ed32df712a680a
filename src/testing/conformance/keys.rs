//! Idempotency keys: recorded once, atomically with their batch.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use super::*;

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
        recorded_at: at(),
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
        vec![(b.clone(), 3)]
    );
    // A batch of many events under a key: recorded the same way, once.
    let c = stream(AggregateKind::Code, "keyed-c");
    let many = |from: u64| (from..from + 12).map(event).collect::<Vec<_>>();
    store
        .append(
            batch(vec![
                append(&c, ExpectedVersion::NoStream, many(1)),
                append(&b, ExpectedVersion::Exact(3), many(4)),
            ])
            .with_idempotency(record("k-3")),
        )
        .await
        .expect("a large keyed batch");
    assert_eq!(
        store.recall("k-3").await.unwrap().unwrap().streams,
        vec![(c.clone(), 12), (b.clone(), 15)]
    );
    let err = store
        .append(
            batch(vec![append(&c, ExpectedVersion::Exact(12), many(13))])
                .with_idempotency(record("k-3")),
        )
        .await
        .expect_err("a repeated key");
    assert_eq!(err, StoreError::DuplicateKey);
    assert_eq!(
        store.read(&c, 0).await.unwrap().len(),
        12,
        "nothing written"
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
                            recorded_at: at(),
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

/// Pruning forgets the records made before a time (a retry with their keys runs anew) and keeps
/// the others.
pub async fn idempotency_records_are_pruned_by_age<S: EventStore>(store: S) {
    let s = stream(AggregateKind::User, "pruned");
    for (n, age) in [(1u64, 10i64), (2, 5), (3, 1)] {
        let batch = batch(vec![append(
            &s,
            ExpectedVersion::from_loaded(n - 1),
            vec![event(n)],
        )])
        .with_idempotency(IdempotencyRecord {
            key: format!("age-{age}"),
            outcome: json!({"n": n}),
            recorded_at: at() - chrono::Duration::days(age),
        });
        store.append(batch).await.unwrap();
    }
    let pruned = store
        .prune_idempotency(at() - chrono::Duration::days(4))
        .await
        .unwrap();
    assert_eq!(pruned, 2);
    assert!(store.recall("age-10").await.unwrap().is_none());
    assert!(store.recall("age-5").await.unwrap().is_none());
    assert!(store.recall("age-1").await.unwrap().is_some());
}
