//! The global feed: every event once, in order, even for a reader tailing concurrent writers.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use super::*;

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
        event(3).payload.to_value().unwrap(),
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
