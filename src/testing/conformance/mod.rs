//! The event store conformance suite (feature `testing`): every store, built in or third-party,
//! must pass it. Each check takes a fresh, empty store and panics with a description when the
//! store misbehaves.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use passkey_links::store::InMemoryStore;
//! passkey_links::testing::conformance::run_all(|| async { InMemoryStore::new() }).await;
//! # });
//! ```
//!
//! | file | what it checks |
//! |---|---|
//! | `core.rs` | appends and reads: versions, atomic batches, concurrency, payloads, times |
//! | `read_set.rs` | a batch is written only while what it was decided on still stands |
//! | `load.rs` | several streams at once, snapshots, follows |
//! | `feed.rs` | the global feed |
//! | `keys.rs` | idempotency keys |
//! | `personal_keys.rs` | the users' personal data keys |
//! | `capabilities.rs` | every declared capability answers |
//! | `projections.rs` | the read side's storage port |

// A conformance suite reports failures by panicking, like `assert!`.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::future::Future;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

mod capabilities;
mod core;
mod feed;
mod keys;
mod load;
mod personal_keys;
mod projections;
mod read_set;

pub use self::core::{
    a_conflicting_batch_writes_nothing, a_stream_twice_in_one_batch_is_refused,
    any_appends_whatever_the_version, append_to_new_stream,
    concurrent_appenders_have_one_winner_per_version, exact_version_mismatch_conflicts,
    large_and_unicode_payloads_round_trip, no_stream_on_existing_stream_conflicts,
    reads_are_ordered_and_start_after_a_version, timestamps_round_trip_to_the_microsecond,
};
pub use capabilities::every_declared_capability_answers;
pub use feed::{a_tailing_feed_reader_misses_nothing, the_feed_lists_every_event_once_in_order};
pub use keys::{
    an_idempotency_key_is_recorded_once_with_its_batch,
    concurrent_batches_with_one_key_have_one_winner, idempotency_records_are_pruned_by_age,
};
pub use load::{
    load_many_follows_the_newest_matching_event, load_many_reads_the_streams_first_events_name,
    load_many_starts_at_the_snapshot_or_the_version_asked,
    read_many_answers_each_stream_after_its_version, snapshots_keep_the_newest_per_stream,
};
pub use personal_keys::{
    a_load_brings_each_users_personal_key, a_personal_key_is_made_once_and_erased_for_good,
    racing_writers_get_one_personal_key,
};
pub use projections::{
    checkpoints_never_move_back, read_changes_apply_once_whatever_the_repeats,
    the_feed_head_is_the_newest_feed_position,
};
pub use read_set::{a_batch_is_written_only_while_its_read_set_stands, event_ids_round_trip};

use crate::ids::{AggregateKind, StreamId};
use crate::store::{
    AppendBatch, Appended, EventStore, ExpectedVersion, FeedEvent, Follow, IdempotencyRecord,
    LastEvent, NewEvent, ReadFrom, ReadStream, StoreError, StreamAppend, StreamRead,
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
    NewEvent::new(
        format!("test.event.{n}"),
        1,
        &json!({ "n": n }),
        at() + chrono::Duration::microseconds(n as i64),
    )
    .expect("a JSON payload")
}

/// `load_many` as the store declares it: its own, or built from its reads.
async fn load<S: EventStore>(
    store: &S,
    streams: &[(StreamId, ReadFrom)],
    follow: &[Follow],
    limit: usize,
) -> Vec<StreamRead> {
    let capabilities = store.capabilities();
    let read = if capabilities.batched_load {
        store.load_many(streams, follow, limit).await
    } else {
        crate::store::load_by_reads(store, capabilities.snapshots, streams, follow, limit).await
    };
    read.expect("load")
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
    a_batch_is_written_only_while_its_read_set_stands(make().await).await;
    event_ids_round_trip(make().await).await;
    every_declared_capability_answers(make().await).await;
    a_conflicting_batch_writes_nothing(make().await).await;
    a_stream_twice_in_one_batch_is_refused(make().await).await;
    concurrent_appenders_have_one_winner_per_version(make().await, 16, 5).await;
    large_and_unicode_payloads_round_trip(make().await).await;
    timestamps_round_trip_to_the_microsecond(make().await).await;
    an_idempotency_key_is_recorded_once_with_its_batch(make().await).await;
    the_feed_lists_every_event_once_in_order(make().await).await;
    a_tailing_feed_reader_misses_nothing(make().await, 8, 25).await;
    concurrent_batches_with_one_key_have_one_winner(make().await).await;
    idempotency_records_are_pruned_by_age(make().await).await;
    a_personal_key_is_made_once_and_erased_for_good(make().await).await;
    racing_writers_get_one_personal_key(make().await).await;
    a_load_brings_each_users_personal_key(make().await).await;
}

/// Runs every check of the projection store port (the feed head, checkpoints and the shipped
/// read models' tables), each against a fresh store from `make`.
pub async fn run_projection_store<S, F, Fut>(make: F)
where
    S: EventStore + crate::read::ProjectionStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    the_feed_head_is_the_newest_feed_position(make().await).await;
    checkpoints_never_move_back(make().await).await;
    read_changes_apply_once_whatever_the_repeats(make().await).await;
}
