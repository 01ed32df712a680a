//! Reading several streams at once, snapshots, and loads that follow the streams events name
//! (each checked through the store's own `load_many` when it declares one, else through
//! [`crate::store::load_by_reads`]).

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use super::*;

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
    let kept = store.capabilities().snapshots;
    if kept {
        store
            .write_snapshot(Snapshot::new(a.clone(), 3, json!({"at": 3})))
            .await
            .unwrap();
    }
    let asked = [
        (a.clone(), ReadFrom::Snapshot),
        (b.clone(), ReadFrom::Snapshot),
        (c.clone(), ReadFrom::After(1)),
    ];
    let reads = load(&store, &asked, &[], 100).await;
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
    let paged = load(&store, &asked[..1], &[], 2).await;
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
        payload: crate::store::Payload::new(
            &json!({ "n": n, "passkeyId": passkey, "codeId": code(code_n).id() }),
        )
        .unwrap(),
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
    let reads = load(&store, &asked, &follow, 100).await;
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
        payload: crate::store::Payload::new(&json!({ "n": n, "orgId": field })).unwrap(),
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
    let kept = store.capabilities().snapshots;
    if kept {
        store
            .write_snapshot(Snapshot::new(org.clone(), 3, json!({"at": 3})))
            .await
            .unwrap();
    }
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
    let reads = load(&store, &asked, &follow, 100).await;
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
    let paged = load(
        &store,
        &asked[1..2],
        &[Follow::new(0, "orgId", AggregateKind::Org)],
        1,
    )
    .await;
    assert_eq!(paged[1].events.len(), 1, "at most the limit");
}

/// Snapshots (a store that declares them): none until written, the newest kept per stream, an
/// older one never replacing it.
pub async fn snapshots_keep_the_newest_per_stream<S: EventStore>(store: S) {
    use crate::store::Snapshot;
    if !store.capabilities().snapshots {
        return;
    }
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
    assert!(kept[0].is_some(), "a snapshot written is kept");
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
