//! Read sets: a batch is written only while every stream it was decided on still ends with the
//! event read ([`crate::store::LastEvent`]: same version, same id) — or, read empty, still has
//! none. Positions and versions alone do not say so: a database restored to an earlier point
//! hands them out again, to other events.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// Every event reads back with the id its writer drew.
pub async fn event_ids_round_trip<S: EventStore>(store: S) {
    let s = stream(AggregateKind::User, "ids");
    let written = vec![event(1), event(2)];
    let ids: Vec<_> = written.iter().map(|e| e.id).collect();
    store
        .append(batch(vec![append(&s, ExpectedVersion::NoStream, written)]))
        .await
        .unwrap();
    let read: Vec<_> = store
        .read(&s, 0)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(read, ids, "event ids as written");
    assert_ne!(ids[0], ids[1]);
}

/// A batch is written only while each stream of its read set stands as read: a later event, or
/// another event at the version read (a database restored to an earlier point and written
/// differently), or an event in a stream read empty, is a conflict naming that stream, and
/// nothing is written. Streams read and written, and read only, are held to the same rule.
pub async fn a_batch_is_written_only_while_its_read_set_stands<S: EventStore>(store: S) {
    read_set_checks(&store, "read-set", 0).await;
    // With more rows and more streams read than a store may treat as small.
    read_set_checks(&store, "read-set-large", 5).await;
}

/// The checks of [`a_batch_is_written_only_while_its_read_set_stands`]; with `padding`, each
/// batch also writes `padding` events to a fresh stream and reads `padding` more streams as
/// they stand.
async fn read_set_checks<S: EventStore>(store: &S, name: &str, padding: u64) {
    let read_only = stream(AggregateKind::Org, &format!("{name}-org"));
    let written = stream(AggregateKind::User, &format!("{name}-user"));
    let empty = stream(AggregateKind::Code, &format!("{name}-empty"));
    let mut padded_reads = Vec::new();
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
        padded_reads.push(ReadStream {
            stream: other,
            last: Some(LastEvent::of(&last)),
        });
    }
    let batches = std::sync::atomic::AtomicU64::new(0);
    let padded = |mut appends: Vec<StreamAppend>, mut reads: Vec<ReadStream>| {
        if padding > 0 {
            let n = batches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let fresh = stream(AggregateKind::Code, &format!("{name}-fresh-{n}"));
            appends.push(append(
                &fresh,
                ExpectedVersion::NoStream,
                (1..=padding).map(event).collect(),
            ));
            reads.extend(padded_reads.iter().cloned());
        }
        batch(appends)
            .with_read_set(reads)
            .expect("each stream once")
    };
    store
        .append(batch(vec![append(
            &read_only,
            ExpectedVersion::NoStream,
            vec![event(1), event(2)],
        )]))
        .await
        .unwrap();
    let read = |last: &crate::store::RecordedEvent| ReadStream {
        stream: last.stream.clone(),
        last: Some(LastEvent::of(last)),
    };
    let org_end = store.read(&read_only, 1).await.unwrap().remove(0);
    let still_empty = ReadStream {
        stream: empty.clone(),
        last: None,
    };
    let appended = store
        .append(padded(
            vec![append(&written, ExpectedVersion::NoStream, vec![event(1)])],
            vec![read(&org_end), still_empty.clone()],
        ))
        .await
        .unwrap();
    assert_eq!(
        versions_of(&appended[..1]),
        [1],
        "every stream read stands: written"
    );
    // A stream read and written: the batch stands on the event read at its expected version.
    let user_end = store.read(&written, 0).await.unwrap().remove(0);
    let appended = store
        .append(padded(
            vec![append(&written, ExpectedVersion::Exact(1), vec![event(2)])],
            vec![read(&user_end), read(&org_end)],
        ))
        .await
        .unwrap();
    assert_eq!(versions_of(&appended[..1]), [2]);
    // The stream read only moves on: a batch decided on its older end writes nothing.
    store
        .append(batch(vec![append(
            &read_only,
            ExpectedVersion::Exact(2),
            vec![event(3)],
        )]))
        .await
        .unwrap();
    let user_end = store.read(&written, 1).await.unwrap().remove(0);
    match store
        .append(padded(
            vec![append(&written, ExpectedVersion::Exact(2), vec![event(3)])],
            vec![read(&user_end), read(&org_end)],
        ))
        .await
    {
        Err(StoreError::Conflict { stream, actual, .. }) => {
            assert_eq!(stream, read_only);
            assert_eq!(actual, 3);
        }
        other => panic!("a batch decided on an older end was written: {other:?}"),
    }
    // Another event at the version read: same stream and version, another id (what a restored
    // database written differently holds).
    let org_end = store.read(&read_only, 2).await.unwrap().remove(0);
    let mut restored = read(&org_end);
    restored.last = Some(LastEvent {
        version: org_end.version,
        id: crate::store::EventId::random(),
    });
    assert!(
        matches!(
            store
                .append(padded(
                    vec![append(&written, ExpectedVersion::Exact(2), vec![event(3)])],
                    vec![read(&user_end), restored],
                ))
                .await,
            Err(StoreError::Conflict { .. })
        ),
        "a batch decided on another event at the same version was written"
    );
    // The same for a stream read and written.
    let mut restored_user = read(&user_end);
    restored_user.last = Some(LastEvent {
        version: user_end.version,
        id: crate::store::EventId::random(),
    });
    assert!(
        matches!(
            store
                .append(padded(
                    vec![append(&written, ExpectedVersion::Exact(2), vec![event(3)])],
                    vec![restored_user, read(&org_end)],
                ))
                .await,
            Err(StoreError::Conflict { .. })
        ),
        "a batch decided on another event of the stream it writes was written"
    );
    // A stream read empty that has an event now.
    store
        .append(batch(vec![append(
            &empty,
            ExpectedVersion::NoStream,
            vec![event(1)],
        )]))
        .await
        .unwrap();
    match store
        .append(padded(
            vec![append(&written, ExpectedVersion::Exact(2), vec![event(3)])],
            vec![read(&user_end), read(&org_end), still_empty],
        ))
        .await
    {
        Err(StoreError::Conflict { stream, actual, .. }) => {
            assert_eq!(stream, empty);
            assert_eq!(actual, 1);
        }
        other => panic!("a batch decided on an empty stream that is not was written: {other:?}"),
    }
    assert_eq!(
        store.read(&written, 0).await.unwrap().len(),
        2,
        "nothing written by the refused batches"
    );
    if padding > 0 {
        let mut fresh = 0;
        for n in 0..batches.load(std::sync::atomic::Ordering::Relaxed) {
            let stream = stream(AggregateKind::Code, &format!("{name}-fresh-{n}"));
            fresh += store.read(&stream, 0).await.unwrap().len() as u64;
        }
        assert_eq!(
            fresh,
            2 * padding,
            "only the batches that stood were written"
        );
    }
}
