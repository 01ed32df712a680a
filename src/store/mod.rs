//! The event store port — read one stream, append to several streams atomically, each with an
//! expected version, read the global feed — and its adapters: [`InMemoryStore`] in the default build, PostgreSQL
//! behind the `postgres` feature, and the conformance suite every store must pass (feature
//! `testing`).

mod memory;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
mod projections;

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod conformance;

pub use memory::InMemoryStore;
pub use projections::{
    AuditEntry, AuditScope, DeliveryState, LinkRow, ProjectionStore, ReadChange,
};

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::ids::{AggregateKind, StreamId};
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

/// An event's JSON payload as the text a store writes: serde_json's compact form of a value
/// (object keys in order), made only from a value, so it is always JSON. Written once, by the
/// writer: a store keeps or sends it as it is, and a [`Seen`] event is compared by it.
#[derive(Clone, PartialEq, Eq)]
pub struct Payload(Vec<u8>);

impl Payload {
    /// The text of `value`. (A value cannot fail to write; if it did, the text would be `null`.)
    pub fn new(value: &Value) -> Self {
        // Room for an event's payload (a few hundred bytes) at once: no regrowth while writing.
        let mut text = Vec::with_capacity(512);
        match serde_json::to_writer(&mut text, value) {
            Ok(()) => Self(text),
            Err(_) => Self(b"null".to_vec()),
        }
    }

    /// The same text, holding no more memory than it needs (for a payload kept long).
    fn compact(mut self) -> Self {
        self.0.shrink_to_fit();
        self
    }

    /// The JSON text, as bytes (UTF-8: serde_json writes nothing else).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        // Checked only where text is asked for: serde_json writes UTF-8.
        std::str::from_utf8(&self.0).unwrap_or("null")
    }

    /// The value again (parsed).
    pub fn to_value(&self) -> Value {
        serde_json::from_slice(&self.0).unwrap_or(Value::Null)
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Payload").field(&self.as_str()).finish()
    }
}

impl From<Value> for Payload {
    fn from(value: Value) -> Self {
        Self::new(&value)
    }
}

impl From<&Value> for Payload {
    fn from(value: &Value) -> Self {
        Self::new(value)
    }
}

/// An event to append. `recorded_at` comes from the injected clock, never from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Event type name.
    pub event_type: String,
    /// Payload schema version.
    pub schema_version: u16,
    /// JSON payload, as written.
    pub payload: Payload,
    /// When it happened (microsecond precision).
    pub recorded_at: DateTime<Utc>,
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
/// last event (what a cache compares to tell the same history from a restored one).
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

/// A stream's folded state as of one version, stored so that a load need not read the events
/// before it. Opaque to stores. Whoever reads it checks that the store still holds the event it
/// was taken at (a database restored to an earlier point must not revive a later state).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Snapshot {
    /// The stream.
    pub stream: StreamId,
    /// The version it was taken at.
    pub version: u64,
    /// The state, in the writer's format.
    pub state: Value,
}

impl Snapshot {
    /// A snapshot of `stream` at `version`.
    pub fn new(stream: StreamId, version: u64, state: Value) -> Self {
        Self {
            stream,
            version,
            state,
        }
    }
}

/// Where [`EventStore::load_many`] starts reading one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadFrom {
    /// After this version.
    After(u64),
    /// At the newest snapshot's version (its last event again, so the reader can check that
    /// the store still holds it), or at the first event when there is none.
    Snapshot,
}

/// A stream for [`EventStore::load_many`] to read along with the streams asked, whose id the
/// caller does not know yet: the stream of `kind` named by the text field `field` of an event
/// of the stream asked at index `from` — its first event (a user's org), or the newest of its
/// recent events that matches ([`Naming::Latest`]: the code of a user's passkey ceremony) —,
/// read from its newest snapshot. It saves the round trip of reading the first stream before
/// naming the second; what it reads is only a prediction until the caller checks the name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Follow {
    /// The index, in the streams asked, of the stream whose event names the stream.
    pub from: usize,
    /// The top-level text field of that event's payload holding the id.
    pub field: &'static str,
    /// The kind of the stream named.
    pub kind: AggregateKind,
    /// Which event of the stream at `from` names it.
    pub naming: Naming,
}

/// How many of a stream's last events a [`Naming::Latest`] follow looks through: a follow is
/// a prediction, and a bounded one costs the same whatever a stream's length or a caller's
/// guess.
pub const FOLLOW_WINDOW: u64 = 64;

/// Which event of the stream followed names the stream to read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Naming {
    /// Its first event (version 1).
    First,
    /// The newest event of `event_type` among its last [`FOLLOW_WINDOW`] events whose
    /// top-level text field `key` is `value`.
    Latest {
        /// The event type.
        event_type: &'static str,
        /// The payload field compared.
        key: &'static str,
        /// The text it must hold.
        value: Arc<str>,
    },
}

impl Follow {
    /// The stream of `kind` named by `field` of the first event of the stream asked at `from`.
    pub fn new(from: usize, field: &'static str, kind: AggregateKind) -> Self {
        Self {
            from,
            field,
            kind,
            naming: Naming::First,
        }
    }

    /// The stream of `kind` named by `field` of the newest event of `event_type` (among the
    /// last [`FOLLOW_WINDOW`]) of the stream asked at `from` whose field `key` is `value`.
    pub fn latest(
        from: usize,
        field: &'static str,
        kind: AggregateKind,
        event_type: &'static str,
        key: &'static str,
        value: impl Into<Arc<str>>,
    ) -> Self {
        Self {
            from,
            field,
            kind,
            naming: Naming::Latest {
                event_type,
                key,
                value: value.into(),
            },
        }
    }

    /// The stream `events` name, if they name a valid one: `events` are the followed stream's
    /// events in version order — from its first for [`Naming::First`], through its last for
    /// [`Naming::Latest`] (of which only the last [`FOLLOW_WINDOW`] count).
    pub fn named_by(&self, events: &[RecordedEvent]) -> Option<StreamId> {
        let naming = match &self.naming {
            Naming::First => events.first().filter(|first| first.version == 1),
            Naming::Latest {
                event_type,
                key,
                value,
            } => {
                let last = events.last()?.version;
                events
                    .iter()
                    .rev()
                    .take_while(|e| e.version.saturating_add(FOLLOW_WINDOW) > last)
                    .find(|e| {
                        e.event_type == *event_type
                            && e.payload.get(*key).and_then(Value::as_str) == Some(&**value)
                    })
            }
        }?;
        let id = naming.payload.get(self.field)?.as_str()?;
        StreamId::new(self.kind, id).ok()
    }
}

/// One stream's answer to [`EventStore::load_many`].
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct StreamRead {
    /// The newest snapshot, when asked for and stored.
    pub snapshot: Option<Snapshot>,
    /// The events from where the read started, at most the limit.
    pub events: Vec<RecordedEvent>,
}

impl StreamRead {
    /// An answer.
    pub fn new(snapshot: Option<Snapshot>, events: Vec<RecordedEvent>) -> Self {
        Self { snapshot, events }
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

/// Events for one stream within an atomic batch.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamAppend {
    /// The stream.
    pub stream: StreamId,
    /// The version the writer decided on.
    pub expected: ExpectedVersion,
    /// The events, in order.
    pub events: Vec<NewEvent>,
}

/// An idempotency key recorded atomically with a batch: a second batch with the same key writes
/// nothing and fails with [`StoreError::DuplicateKey`], and [`EventStore::recall`] answers what the
/// first one wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    /// The caller's key (never a secret).
    pub key: String,
    /// What the writer needs to answer a retry the same way (never a secret).
    pub outcome: Value,
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

/// The last event a writer saw of a stream its decision read: the batch is written only if the
/// stream still ends with exactly this event (same version, position, type, payload and time).
/// So a decision taken on a cached state — without reading — cannot outlive a change to any
/// stream it read, written or not, nor a database restored to an earlier point (positions repeat
/// after a restore; contents do not).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Seen {
    /// The stream.
    pub stream: StreamId,
    /// Its version (the last event's).
    pub version: u64,
    /// The last event's global position.
    pub position: u64,
    /// The last event's type.
    pub event_type: String,
    /// The last event's payload as written: a store compares it with what it holds as text.
    pub payload: Payload,
    /// The last event's time.
    pub recorded_at: DateTime<Utc>,
}

impl Seen {
    /// The last event `event` of its stream, as seen.
    pub fn of(event: &RecordedEvent) -> Self {
        Self {
            stream: event.stream.clone(),
            version: event.version,
            position: event.position,
            event_type: event.event_type.clone(),
            // Kept as long as the cache keeps the event: no room beyond its text.
            payload: Payload::new(&event.payload).compact(),
            recorded_at: event.recorded_at,
        }
    }

    /// Whether `event` is the event seen (its stream and version included).
    pub fn matches(&self, event: &RecordedEvent) -> bool {
        event.stream == self.stream
            && event.version == self.version
            && event.position == self.position
            && event.event_type == self.event_type
            && event.recorded_at == self.recorded_at
            && writes_as(&event.payload, self.payload.as_bytes())
    }
}

/// Whether `payload` is written as `text`: compared piece by piece as serde_json writes it, with
/// no text of its own.
fn writes_as(payload: &Value, text: &[u8]) -> bool {
    /// A writer that only checks that what is written is `rest`.
    struct SameText<'a> {
        rest: &'a [u8],
        same: bool,
    }

    impl std::io::Write for SameText<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            match self.rest.strip_prefix(buf) {
                Some(rest) if self.same => self.rest = rest,
                _ => self.same = false,
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let mut same = SameText {
        rest: text,
        same: true,
    };
    serde_json::to_writer(&mut same, payload).is_ok() && same.same && same.rest.is_empty()
}

/// An atomic batch: one [`StreamAppend`] per stream, each stream at most once (a stream twice
/// would make its expectations ambiguous), optionally under an idempotency key, optionally only
/// if streams still end with the events seen ([`Seen`]). Validated once here, so adapters need
/// not re-check.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendBatch(Vec<StreamAppend>, Option<IdempotencyRecord>, Vec<Arc<Seen>>);

impl AppendBatch {
    /// Validates a batch.
    ///
    /// # Errors
    /// [`StoreError::Internal`] when a stream appears twice.
    pub fn new(appends: Vec<StreamAppend>) -> Result<Self, StoreError> {
        for (i, append) in appends.iter().enumerate() {
            if appends[..i]
                .iter()
                .any(|other| other.stream == append.stream)
            {
                return Err(StoreError::Internal(format!(
                    "stream {} appears twice in one batch",
                    append.stream
                )));
            }
        }
        Ok(Self(appends, None, Vec::new()))
    }

    /// Writes the batch only if each stream of `seen` still ends with the event seen;
    /// otherwise [`StoreError::Conflict`] names the first that does not, and nothing is written.
    /// Shared: a caller keeps the events it saw, and a batch only reads them.
    pub fn with_seen(mut self, seen: Vec<Arc<Seen>>) -> Self {
        self.2 = seen;
        self
    }

    /// The events the batch must find still last in their streams.
    pub fn seen(&self) -> &[Arc<Seen>] {
        &self.2
    }

    /// Records `record` with the batch, atomically.
    pub fn with_idempotency(mut self, record: IdempotencyRecord) -> Self {
        self.1 = Some(record);
        self
    }

    /// The idempotency record, if any.
    pub fn idempotency(&self) -> Option<&IdempotencyRecord> {
        self.1.as_ref()
    }

    /// The appends, in batch order.
    pub fn appends(&self) -> &[StreamAppend] {
        &self.0
    }

    /// The appends and the idempotency record, consumed.
    pub fn into_parts(self) -> (Vec<StreamAppend>, Option<IdempotencyRecord>, Vec<Arc<Seen>>) {
        (self.0, self.1, self.2)
    }

    /// Whether the batch holds no append.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A store failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A stream was not at the expected version; nothing of the batch was written.
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
    /// Misuse or an unexpected store state.
    #[error("event store error: {0}")]
    Internal(String),
}

/// An event store.
///
/// Implementations must enforce expected versions and write a batch atomically: either every
/// stream's events are appended or none. Run `store::conformance::run_all` (feature `testing`)
/// against an implementation to check it.
pub trait EventStore: Send + Sync {
    /// The events of `stream` with a version greater than `after_version`, in order.
    fn read(
        &self,
        stream: &StreamId,
        after_version: u64,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// The events of several streams, each after its version, at most `limit` per stream, in
    /// one call: `reads[i]` answers `streams[i]` (a stream with more events answers exactly
    /// `limit`: read on from its last). Stores that can (PostgreSQL) answer in one round trip;
    /// the default reads one stream after the other.
    ///
    /// # Errors
    /// As [`EventStore::read`].
    fn read_many(
        &self,
        streams: &[(StreamId, u64)],
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Vec<RecordedEvent>>, StoreError>> + Send {
        async move {
            let mut reads = Vec::with_capacity(streams.len());
            for (stream, after_version) in streams {
                let mut events = self.read(stream, *after_version).await?;
                events.truncate(limit);
                reads.push(events);
            }
            Ok(reads)
        }
    }

    /// Several streams in one call, each from where `streams` says — after a version, or from
    /// its newest snapshot — at most `limit` events per stream, and then each [`Follow`]ed
    /// stream: `reads[i]` answers `streams[i]`, `reads[streams.len() + j]` answers `follow[j]`
    /// (empty when nothing names a stream; else its snapshot's or events' stream is the one
    /// named). Stores that can (PostgreSQL) answer in one round trip; the default reads the
    /// snapshots, then the events, then what they name.
    ///
    /// # Errors
    /// As [`EventStore::read`].
    fn load_many(
        &self,
        streams: &[(StreamId, ReadFrom)],
        follow: &[Follow],
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StreamRead>, StoreError>> + Send {
        async move {
            let mut reads = load_from(self, streams, limit).await?;
            let mut named = Vec::with_capacity(follow.len());
            for follow in follow {
                let source = streams.get(follow.from).zip(reads.get(follow.from));
                let events = match source {
                    Some(((stream, from), read)) => {
                        follow_source(self, stream, *from, read, &follow.naming, limit).await?
                    }
                    None => Vec::new(),
                };
                named.push(follow.named_by(&events));
            }
            let wanted: Vec<(StreamId, ReadFrom)> = named
                .iter()
                .flatten()
                .map(|stream| (stream.clone(), ReadFrom::Snapshot))
                .collect();
            let mut followed = load_from(self, &wanted, limit).await?.into_iter();
            for stream in named {
                reads.push(match stream {
                    Some(_) => followed.next().unwrap_or_default(),
                    None => StreamRead::default(),
                });
            }
            Ok(reads)
        }
    }

    /// The newest stored snapshot of each stream (`None`: none stored). The default stores
    /// none: every load then folds the whole stream, page by page.
    ///
    /// # Errors
    /// As [`EventStore::read`].
    fn read_snapshots(
        &self,
        streams: &[StreamId],
    ) -> impl Future<Output = Result<Vec<Option<Snapshot>>, StoreError>> + Send {
        std::future::ready(Ok(vec![None; streams.len()]))
    }

    /// Stores `snapshot`, unless one of a later version of its stream is stored already. The
    /// default stores nothing.
    ///
    /// # Errors
    /// As [`EventStore::append`] (a snapshot is only ever an optimization: callers may ignore
    /// a failure).
    fn write_snapshot(
        &self,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = snapshot;
        std::future::ready(Ok(()))
    }

    /// Appends a batch atomically, with its idempotency record if it has one. Returns where each
    /// stream now stands, in batch order.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when a stream's version does not match, or
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
    /// As [`EventStore::read`].
    fn read_feed(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<FeedEvent>, StoreError>> + Send;

    /// What the batch recorded under `key` wrote, or `None` if no batch was.
    fn recall(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Recalled>, StoreError>> + Send;

    /// A timer on the runtime this store's calls run on: the service's deadline around each
    /// operation (set only once the operation waits at all), the outbox's retry delays and the
    /// projection runner's polling wait on it. The default is
    /// runtime-agnostic (`futures-timer`: a thread of its own, woken whenever a timer is set or
    /// dropped); a store bound to a runtime gives that runtime's timer, which costs far less.
    fn sleep(&self, duration: std::time::Duration) -> impl Future<Output = ()> + Send {
        futures_timer::Delay::new(duration)
    }
}

/// The events of a followed stream that [`Follow::named_by`] needs, from what `load_many`
/// read of it (`read`, read from `from` with `limit`): its first event, or its last
/// [`FOLLOW_WINDOW`] events — none when the read stopped short of the stream's end.
async fn follow_source<S: EventStore + ?Sized>(
    store: &S,
    stream: &StreamId,
    from: ReadFrom,
    read: &StreamRead,
    naming: &Naming,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let events = &read.events;
    let start = events.first().map(|e| e.version);
    let after = match naming {
        Naming::First if start == Some(1) => return Ok(events.iter().take(1).cloned().collect()),
        Naming::First => 0,
        Naming::Latest { .. } if events.len() >= limit => return Ok(Vec::new()),
        Naming::Latest { .. } => {
            let last = match (events.last(), &read.snapshot, from) {
                (Some(event), _, _) => event.version,
                (None, Some(snapshot), _) => snapshot.version,
                (None, None, ReadFrom::After(after)) => after,
                (None, None, ReadFrom::Snapshot) => 0,
            };
            let after = last.saturating_sub(FOLLOW_WINDOW);
            if start.is_some_and(|start| start <= after + 1) {
                return Ok(events.clone());
            }
            after
        }
    };
    let wanted = usize::try_from(FOLLOW_WINDOW).unwrap_or(usize::MAX);
    let page = match naming {
        Naming::First => 1,
        Naming::Latest { .. } => wanted,
    };
    Ok(store
        .read_many(&[(stream.clone(), after)], page)
        .await?
        .into_iter()
        .flatten()
        .collect())
}

/// [`EventStore::load_many`] without follows, by [`EventStore::read_snapshots`] and
/// [`EventStore::read_many`]: what the default `load_many` is built on.
async fn load_from<S: EventStore + ?Sized>(
    store: &S,
    streams: &[(StreamId, ReadFrom)],
    limit: usize,
) -> Result<Vec<StreamRead>, StoreError> {
    let wanted: Vec<StreamId> = streams
        .iter()
        .filter(|(_, from)| *from == ReadFrom::Snapshot)
        .map(|(stream, _)| stream.clone())
        .collect();
    let mut snapshots = if wanted.is_empty() {
        Vec::new()
    } else {
        store.read_snapshots(&wanted).await?
    }
    .into_iter();
    let mut found = Vec::with_capacity(streams.len());
    let mut reads = Vec::with_capacity(streams.len());
    for (stream, from) in streams {
        let (snapshot, after) = match from {
            ReadFrom::After(after) => (None, *after),
            ReadFrom::Snapshot => {
                let snapshot = snapshots.next().flatten();
                let after = snapshot.as_ref().map_or(0, |s| s.version.saturating_sub(1));
                (snapshot, after)
            }
        };
        found.push(snapshot);
        reads.push((stream.clone(), after));
    }
    let events = store.read_many(&reads, limit).await?;
    Ok(found
        .into_iter()
        .zip(events)
        .map(|(snapshot, events)| StreamRead::new(snapshot, events))
        .collect())
}

forward_port!(EventStore {
    fn read(&self, stream: &StreamId, after_version: u64) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;
    fn read_many(&self, streams: &[(StreamId, u64)], limit: usize) -> impl Future<Output = Result<Vec<Vec<RecordedEvent>>, StoreError>> + Send;
    fn load_many(&self, streams: &[(StreamId, ReadFrom)], follow: &[Follow], limit: usize) -> impl Future<Output = Result<Vec<StreamRead>, StoreError>> + Send;
    fn read_snapshots(&self, streams: &[StreamId]) -> impl Future<Output = Result<Vec<Option<Snapshot>>, StoreError>> + Send;
    fn write_snapshot(&self, snapshot: Snapshot) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn append(&self, batch: AppendBatch) -> impl Future<Output = Result<Vec<Appended>, StoreError>> + Send;
    fn read_feed(&self, after: u64, limit: usize) -> impl Future<Output = Result<Vec<FeedEvent>, StoreError>> + Send;
    fn recall(&self, key: &str) -> impl Future<Output = Result<Option<Recalled>, StoreError>> + Send;
    fn sleep(&self, duration: std::time::Duration) -> impl Future<Output = ()> + Send;
});

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A payload is serde_json's compact text of its value (what a store writes and a seen
    /// event is compared by) and reads back as the same value, longer texts included.
    #[test]
    fn a_payload_is_the_compact_text_of_its_value() {
        let long = "é".repeat(600);
        for value in [
            json!({}),
            json!({"b": 1, "a": [true, null]}),
            json!({"text": long}),
        ] {
            let payload = Payload::new(&value);
            assert_eq!(payload.as_str(), serde_json::to_string(&value).unwrap());
            assert_eq!(payload.to_value(), value);
        }
    }

    /// A seen event is kept as long as the cache keeps it: its text holds no spare room.
    #[test]
    fn a_seen_event_keeps_no_room_beyond_its_text() {
        let event = RecordedEvent {
            stream: StreamId::new(crate::ids::AggregateKind::User, "u1").unwrap(),
            version: 1,
            position: 1,
            event_type: "test.event".into(),
            schema_version: 1,
            payload: json!({"n": 1}),
            recorded_at: chrono::Utc::now(),
        };
        let seen = Seen::of(&event);
        assert_eq!(seen.payload.as_str(), r#"{"n":1}"#);
        assert_eq!(seen.payload.0.capacity(), seen.payload.0.len());
        assert!(seen.matches(&event));
    }
}
