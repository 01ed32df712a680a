//! The event store port — read streams, append to several streams atomically (each with an
//! expected version, under the read set the batch was decided on), read the global feed,
//! recall idempotency records — and its adapters: [`InMemoryStore`] in the default build,
//! PostgreSQL on tokio-postgres and deadpool behind the `postgres` feature, PostgreSQL on an
//! `sqlx::PgPool` behind `sqlx-postgres` (one schema, one dialect: `sql/`). Every store passes one conformance suite
//! (`testing::conformance`, feature `testing`).
//!
//! The port is plain data in and out: it knows streams, events and JSON payloads, never the
//! domain's types or the read side's (those import it, not the other way round).
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`EventStore`], the events as written and read, [`StoreError`] |
//! | `last_event.rs` | [`EventId`], [`LastEvent`]: the one definition of "still last" |
//! | `batch.rs` | [`AppendBatch`] and its parts |
//! | `load.rs` | the optional capabilities: snapshots, loading in one round trip |
//! | `personal_keys.rs` | [`PersonalKeyStore`]: a key per user, outside the streams, for erasure |

mod batch;
mod last_event;
mod load;
mod memory;
mod personal_keys;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
#[cfg(any(feature = "postgres", feature = "sqlx-postgres"))]
mod sql;
#[cfg(feature = "sqlx-postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlx-postgres")))]
pub mod sqlx;

pub use batch::{AppendBatch, IdempotencyRecord, NewEvent, Payload, ReadStream, StreamAppend};
pub use last_event::{EventId, LastEvent};
pub use load::{
    Capabilities, FOLLOW_WINDOW, Follow, Naming, ReadFrom, Snapshot, StreamRead, load_by_reads,
};
pub use memory::InMemoryStore;
pub use personal_keys::{PERSONAL_KEY_LEN, PersonalKey, PersonalKeyStore, StoredKey};

use std::fmt;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::ids::StreamId;
use crate::ports::forward_port;

/// What the writer believes the stream's version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExpectedVersion {
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be at exactly this version (≥ 1).
    Exact(u64),
    /// No check.
    Any,
}

impl ExpectedVersion {
    /// `NoStream` for version 0, else `Exact(version)`.
    pub fn from_loaded(version: u64) -> Self {
        if version == 0 {
            Self::NoStream
        } else {
            Self::Exact(version)
        }
    }

    /// Whether a stream at `actual` satisfies the expectation.
    pub fn matches(self, actual: u64) -> bool {
        match self {
            Self::NoStream => actual == 0,
            Self::Exact(expected) => expected == actual,
            Self::Any => true,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(version) => write!(f, "version {version}"),
            Self::Any => f.write_str("any version"),
        }
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// Its stream.
    pub stream: StreamId,
    /// Its version in the stream (1-based, gapless).
    pub version: u64,
    /// Its position in the whole store (increasing; may have gaps).
    pub position: u64,
    /// Its id, as its writer drew it.
    pub id: EventId,
    /// Event type name.
    pub event_type: String,
    /// Payload schema version.
    pub schema_version: u16,
    /// JSON payload.
    pub payload: Value,
    /// When it happened.
    pub recorded_at: DateTime<Utc>,
}

/// Where one stream of an appended batch stands: its new version and the global position of its
/// last event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Appended {
    /// The stream's version after the append.
    pub version: u64,
    /// The global position of the stream's last appended event.
    pub position: u64,
}

impl Appended {
    /// A stream now at `version`, its last event at `position`.
    pub fn new(version: u64, position: u64) -> Self {
        Self { version, position }
    }
}

/// An event in the global feed: every stream's events in one order, each at its feed position.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FeedEvent {
    /// Its place in the feed: increasing in the order events became visible, so a reader that
    /// has seen position P never afterwards finds a new event at or below P.
    pub feed_position: u64,
    /// The event.
    pub event: RecordedEvent,
}

impl FeedEvent {
    /// An event at `feed_position`.
    pub fn new(feed_position: u64, event: RecordedEvent) -> Self {
        Self {
            feed_position,
            event,
        }
    }
}

/// What a batch recorded under an idempotency key wrote.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Recalled {
    /// The outcome recorded with the batch.
    pub outcome: Value,
    /// Each stream the batch wrote, with its version right after it, in batch order.
    pub streams: Vec<(StreamId, u64)>,
}

impl Recalled {
    /// A recalled batch.
    pub fn new(outcome: Value, streams: Vec<(StreamId, u64)>) -> Self {
        Self { outcome, streams }
    }
}

/// A store failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A stream was not at the expected version, or no longer stood as the batch's read set
    /// says; nothing of the batch was written.
    #[error("stream {stream} expected {expected} but is at version {actual}")]
    Conflict {
        /// The stream.
        stream: StreamId,
        /// What the writer expected.
        expected: ExpectedVersion,
        /// The stream's actual version.
        actual: u64,
    },
    /// The store is unreachable or failed transiently; nothing was written. Retrying is safe.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// The store is misconfigured (credentials, missing database or schema, TLS required):
    /// retrying will not help until an operator acts.
    #[error("event store misconfigured: {0}")]
    Misconfigured(String),
    /// A write was sent and the connection failed before its result arrived: it may or may not
    /// have been committed.
    #[error("event store write outcome unknown (it may have been committed): {0}")]
    OutcomeUnknown(String),
    /// The batch's idempotency key is already recorded (by an earlier batch): nothing was written.
    #[error("idempotency key already recorded; nothing written")]
    DuplicateKey,
    /// A stored event cannot be decoded.
    #[error("corrupted event {stream} version {version}: {reason}")]
    Corrupt {
        /// The stream.
        stream: StreamId,
        /// The event's version.
        version: u64,
        /// What is wrong.
        reason: String,
    },
    /// A stored row names no valid stream (unknown stream type or invalid id).
    #[error("corrupted row {stream_type}/{stream_id:?} version {version}: {reason}")]
    CorruptRow {
        /// The stored stream type.
        stream_type: String,
        /// The stored stream id.
        stream_id: String,
        /// The row's version.
        version: u64,
        /// What is wrong.
        reason: String,
    },
    /// A method of a capability the store does not declare ([`EventStore::capabilities`]) was
    /// called, or a declared one was left at its default (a wrapper that forgot to forward it).
    #[error("event store does not implement {0}")]
    Unsupported(&'static str),
    /// Misuse or an unexpected store state.
    #[error("event store error: {0}")]
    Internal(String),
}

/// An event store.
///
/// **Required** — what every backend provides: [`EventStore::capabilities`],
/// [`EventStore::read_many`], [`EventStore::append`], [`EventStore::read_feed`],
/// [`EventStore::recall`], [`EventStore::prune_idempotency`] and [`EventStore::sleep`]. **Optional capabilities** — snapshots and
/// loading in one round trip — are declared by [`EventStore::capabilities`]: the service uses
/// exactly what a store declares, so a wrapper must forward a capability or declare it away
/// (one left at its default answers [`StoreError::Unsupported`], never a silent fallback).
///
/// Every event store keeps the users' personal data keys too ([`PersonalKeyStore`], outside
/// the streams).
///
/// Implementations must enforce expected versions and read sets and write a batch atomically:
/// either every stream's events are appended or none. Run `testing::conformance::run_all`
/// (feature `testing`) against an implementation to check it.
pub trait EventStore: PersonalKeyStore + Send + Sync {
    /// What the store does beyond the required methods.
    fn capabilities(&self) -> Capabilities;

    /// The events of several streams, each after its version, at most `limit` per stream, in
    /// one call: `reads[i]` answers `streams[i]` (a stream with more events answers exactly
    /// `limit`: read on from its last).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] and the other failure classes.
    fn read_many(
        &self,
        streams: &[(StreamId, u64)],
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Vec<RecordedEvent>>, StoreError>> + Send;

    /// Appends a batch atomically, with its idempotency record if it has one, if every stream
    /// is at its expected version and every stream of the read set stands as read
    /// ([`LastEvent`]). Returns where each stream now stands, in batch order.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when a stream's version or a read stream does not match, or
    /// [`StoreError::DuplicateKey`] when the key is already recorded (nothing written either way).
    fn append(
        &self,
        batch: AppendBatch,
    ) -> impl Future<Output = Result<Vec<Appended>, StoreError>> + Send;

    /// Up to `limit` events of the global feed after `after` (0: from the start), in feed
    /// order. Gap-free for readers: an event that becomes visible later never gets a position
    /// below one already read, so a reader that keeps its last position misses nothing.
    ///
    /// # Errors
    /// As [`EventStore::read_many`].
    fn read_feed(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<FeedEvent>, StoreError>> + Send;

    /// What the batch recorded under `key` wrote, or `None` if no batch was.
    ///
    /// # Errors
    /// As [`EventStore::read_many`].
    fn recall(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Recalled>, StoreError>> + Send;

    /// Forgets the idempotency records made before `older_than` (a retry with their keys then
    /// runs anew); answers how many. Keep records longer than any client retries.
    ///
    /// # Errors
    /// As [`EventStore::append`].
    fn prune_idempotency(
        &self,
        older_than: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// A timer on the runtime this store's calls run on: the service's deadlines, the outbox's
    /// retry delays and the projection runner's polling wait on it. A store bound to a runtime
    /// gives that runtime's timer; others [`portable_sleep`].
    fn sleep(&self, duration: std::time::Duration) -> impl Future<Output = ()> + Send;

    /// The events of `stream` after `after_version`, in order ([`EventStore::read_many`] for
    /// one stream).
    ///
    /// # Errors
    /// As [`EventStore::read_many`].
    fn read(
        &self,
        stream: &StreamId,
        after_version: u64,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send {
        async move {
            Ok(self
                .read_many(&[(stream.clone(), after_version)], usize::MAX)
                .await?
                .into_iter()
                .flatten()
                .collect())
        }
    }

    /// Capability [`Capabilities::batched_load`]: several streams in one call, each from where
    /// `streams` says — after a version, or from its newest snapshot — at most `limit` events
    /// per stream, and then each [`Follow`]ed stream: `reads[i]` answers `streams[i]`,
    /// `reads[streams.len() + j]` answers `follow[j]` (empty when nothing names a stream; else
    /// its snapshot's or events' stream is the one named). Answers exactly as
    /// [`load_by_reads`] does, in one round trip.
    ///
    /// # Errors
    /// As [`EventStore::read_many`]; [`StoreError::Unsupported`] by default.
    fn load_many(
        &self,
        streams: &[(StreamId, ReadFrom)],
        follow: &[Follow],
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StreamRead>, StoreError>> + Send {
        let _ = (streams, follow, limit);
        std::future::ready(Err(StoreError::Unsupported("load_many")))
    }

    /// Capability [`Capabilities::snapshots`]: the newest stored snapshot of each stream
    /// (`None`: none stored).
    ///
    /// # Errors
    /// As [`EventStore::read_many`]; [`StoreError::Unsupported`] by default.
    fn read_snapshots(
        &self,
        streams: &[StreamId],
    ) -> impl Future<Output = Result<Vec<Option<Snapshot>>, StoreError>> + Send {
        let _ = streams;
        std::future::ready(Err(StoreError::Unsupported("read_snapshots")))
    }

    /// Capability [`Capabilities::store_time`]: the store's own clock, now. Every node measures
    /// its clock's offset to it (a node whose clock runs hours fast or slow would otherwise
    /// issue links that live hours too long or too short); a store shared by processes on
    /// several machines should have it.
    ///
    /// # Errors
    /// As [`EventStore::read_many`]; [`StoreError::Unsupported`] by default.
    fn store_time(&self) -> impl Future<Output = Result<DateTime<Utc>, StoreError>> + Send {
        std::future::ready(Err(StoreError::Unsupported("store_time")))
    }

    /// Capability [`Capabilities::snapshots`]: stores `snapshot`, unless one of a later version
    /// of its stream is stored already.
    ///
    /// # Errors
    /// As [`EventStore::append`] (a snapshot is only ever an optimization: callers may ignore
    /// a failure); [`StoreError::Unsupported`] by default.
    fn write_snapshot(
        &self,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = snapshot;
        std::future::ready(Err(StoreError::Unsupported("write_snapshot")))
    }
}

/// A runtime-agnostic timer for [`EventStore::sleep`] (`futures-timer`: a thread of its own,
/// woken whenever a timer is set or dropped), for stores not bound to a runtime.
pub fn portable_sleep(duration: std::time::Duration) -> impl Future<Output = ()> + Send {
    futures_timer::Delay::new(duration)
}

forward_port!(EventStore {
    fn capabilities(&self) -> Capabilities;
    fn read_many(&self, streams: &[(StreamId, u64)], limit: usize) -> impl Future<Output = Result<Vec<Vec<RecordedEvent>>, StoreError>> + Send;
    fn append(&self, batch: AppendBatch) -> impl Future<Output = Result<Vec<Appended>, StoreError>> + Send;
    fn read_feed(&self, after: u64, limit: usize) -> impl Future<Output = Result<Vec<FeedEvent>, StoreError>> + Send;
    fn recall(&self, key: &str) -> impl Future<Output = Result<Option<Recalled>, StoreError>> + Send;
    fn prune_idempotency(&self, older_than: DateTime<Utc>) -> impl Future<Output = Result<u64, StoreError>> + Send;
    fn sleep(&self, duration: std::time::Duration) -> impl Future<Output = ()> + Send;
    fn read(&self, stream: &StreamId, after_version: u64) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;
    fn load_many(&self, streams: &[(StreamId, ReadFrom)], follow: &[Follow], limit: usize) -> impl Future<Output = Result<Vec<StreamRead>, StoreError>> + Send;
    fn read_snapshots(&self, streams: &[StreamId]) -> impl Future<Output = Result<Vec<Option<Snapshot>>, StoreError>> + Send;
    fn write_snapshot(&self, snapshot: Snapshot) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn store_time(&self) -> impl Future<Output = Result<DateTime<Utc>, StoreError>> + Send;
});
