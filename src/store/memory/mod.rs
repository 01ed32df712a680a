//! The in-memory event store of the default build. It enforces what real stores enforce:
//! expected versions, gapless versions and all-or-nothing batches. Like a real store it keeps
//! each payload as JSON text (one compact allocation instead of a tree of values), so what is read
//! back went through the same serialization a database would apply.

// foldhash: the streams are hashed on every append and read; SipHash was a tenth of an issuance.
use foldhash::HashMap;
use std::future::{Future, ready};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

mod read;

use super::projections::{AuditEntry, AuditScope, LinkRow, ProjectionStore, ReadChange};
use super::{
    AppendBatch, Appended, EventStore, FeedEvent, Recalled, RecordedEvent, Seen, Snapshot,
    StoreError,
};
use crate::ids::{StreamId, UserId};

/// One stored event; its stream is the map key.
#[derive(Clone)]
struct Stored {
    position: u64,
    /// Shared with every event of the same type (a handful of types, millions of events).
    event_type: Arc<str>,
    schema_version: u16,
    payload: Box<str>,
    recorded_at: DateTime<Utc>,
}

impl Stored {
    /// Whether this is the event `seen` (at `seen`'s version): compared in place, the payload
    /// by writing the seen one out against the stored text (both are serde_json's compact
    /// form, so equal payloads write equal text) — no parse, no allocation.
    fn is(&self, seen: &Seen) -> bool {
        let mut same = SameText {
            rest: self.payload.as_bytes(),
            same: true,
        };
        self.position == seen.position
            && *self.event_type == *seen.event_type
            && self.recorded_at == seen.recorded_at
            && serde_json::to_writer(&mut same, &seen.payload).is_ok()
            && same.same
            && same.rest.is_empty()
    }

    fn recorded(&self, stream: &StreamId, version: u64) -> Result<RecordedEvent, StoreError> {
        let payload = serde_json::from_str(&self.payload).map_err(|err| StoreError::Corrupt {
            stream: stream.clone(),
            version,
            reason: format!("payload is not JSON: {err}"),
        })?;
        Ok(RecordedEvent {
            stream: stream.clone(),
            version,
            position: self.position,
            event_type: self.event_type.to_string(),
            schema_version: self.schema_version,
            payload,
            recorded_at: self.recorded_at,
        })
    }
}

/// A writer that only checks that what is written is `rest`, piece by piece.
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

fn recorded_from(
    stream: &StreamId,
    events: &[Stored],
    after: usize,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    events
        .get(after..)
        .unwrap_or_default()
        .iter()
        .take(limit)
        .enumerate()
        .map(|(i, event)| event.recorded(stream, (after + i + 1) as u64))
        .collect()
}

#[derive(Default)]
struct Inner {
    streams: HashMap<StreamId, Vec<Stored>>,
    /// Events appended so far: the next global position is `appended + 1`.
    appended: u64,
    /// Idempotency records by key.
    keys: HashMap<String, Recalled>,
    /// Every event's stream and version, in append order: the feed (position `i + 1`).
    feed: Vec<(StreamId, u64)>,
    /// Projection checkpoints and the read models' tables.
    read: read::ReadTables,
    /// The newest snapshot of each stream.
    snapshots: HashMap<StreamId, Snapshot>,
    /// Each event type once, shared by the events of that type.
    event_types: foldhash::HashSet<Arc<str>>,
    /// Where payloads are written out before they are stored (reused: one exact allocation per
    /// stored payload, none while writing).
    scratch: Vec<u8>,
}

/// An in-memory event store. Cloning shares the same events.
#[derive(Clone, Default)]
pub struct InMemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryStore")
            .field("events", &self.lock().appended)
            .finish()
    }
}

impl Inner {
    fn read(
        &self,
        stream: &StreamId,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let after = usize::try_from(after_version).unwrap_or(usize::MAX);
        match self.streams.get(stream) {
            Some(events) => recorded_from(stream, events, after, limit),
            None => Ok(Vec::new()),
        }
    }
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied batch (appends validate
        // before they write), so a poisoned lock is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Every event in the store, in append (position) order. Events whose payload is no longer
    /// JSON (corrupted on purpose by a test) are left out.
    pub fn all_events(&self) -> Vec<RecordedEvent> {
        let inner = self.lock();
        let mut all: Vec<RecordedEvent> = inner
            .streams
            .iter()
            .flat_map(|(stream, events)| {
                events
                    .iter()
                    .enumerate()
                    .filter_map(move |(i, event)| event.recorded(stream, i as u64 + 1).ok())
            })
            .collect();
        all.sort_by_key(|event| event.position);
        all
    }

    /// Number of events stored.
    pub fn len(&self) -> usize {
        usize::try_from(self.lock().appended).unwrap_or(usize::MAX)
    }

    /// Whether the store holds no events.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces the stored payload text of one event (to test how readers handle corrupted
    /// data; the text need not be JSON). Returns whether the event existed.
    #[cfg(feature = "testing")]
    #[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
    pub fn corrupt_payload(&self, stream: &StreamId, version: u64, payload: &str) -> bool {
        let mut inner = self.lock();
        let slot = inner.streams.get_mut(stream).and_then(|events| {
            let index = usize::try_from(version.checked_sub(1)?).ok()?;
            events.get_mut(index)
        });
        match slot {
            Some(event) => {
                event.payload = payload.into();
                true
            }
            None => false,
        }
    }

    fn append_now(&self, batch: AppendBatch) -> Result<Vec<Appended>, StoreError> {
        let (batch, record, seen) = batch.into_parts();
        let mut inner = self.lock();
        for seen in &seen {
            let events = inner.streams.get(&seen.stream);
            let actual = events.map_or(0, Vec::len) as u64;
            let holds = events
                .and_then(|events| events.last())
                .filter(|_| actual == seen.version)
                .is_some_and(|last| last.is(seen));
            if !holds {
                return Err(StoreError::Conflict {
                    stream: seen.stream.clone(),
                    expected: super::ExpectedVersion::Exact(seen.version),
                    actual,
                });
            }
        }
        if record
            .as_ref()
            .is_some_and(|record| inner.keys.contains_key(&record.key))
        {
            return Err(StoreError::DuplicateKey);
        }
        // Validate every stream before writing any, so a conflict writes nothing.
        for append in &batch {
            let actual = inner.streams.get(&append.stream).map_or(0, Vec::len) as u64;
            if !append.expected.matches(actual) {
                return Err(StoreError::Conflict {
                    stream: append.stream.clone(),
                    expected: append.expected,
                    actual,
                });
            }
        }
        // Serialize before writing anything, so a failure writes nothing either: each payload
        // into one reused buffer, then copied into an allocation of its exact size.
        let mut texts: Vec<Box<str>> =
            Vec::with_capacity(batch.iter().map(|a| a.events.len()).sum());
        let mut scratch = std::mem::take(&mut inner.scratch);
        for event in batch.iter().flat_map(|append| &append.events) {
            scratch.clear();
            serde_json::to_writer(&mut scratch, &event.payload)
                .map_err(|err| StoreError::Internal(err.to_string()))?;
            let text = std::str::from_utf8(&scratch)
                .map_err(|err| StoreError::Internal(err.to_string()))?;
            texts.push(text.into());
        }
        inner.scratch = scratch;
        let mut texts = texts.into_iter();
        let mut versions = Vec::with_capacity(batch.len());
        // What the idempotency record names: only kept when there is a record.
        let mut written = Vec::with_capacity(if record.is_some() { batch.len() } else { 0 });
        for append in batch {
            let Inner {
                streams,
                appended,
                feed,
                event_types,
                ..
            } = &mut *inner;
            let events = match streams.get_mut(&append.stream) {
                Some(events) => events,
                // Sized for what is written now: most streams (codes, claims) stay that short.
                None => streams
                    .entry(append.stream.clone())
                    .or_insert_with(|| Vec::with_capacity(append.events.len())),
            };
            for (event, payload) in append.events.into_iter().zip(texts.by_ref()) {
                *appended += 1;
                feed.push((append.stream.clone(), events.len() as u64 + 1));
                events.push(Stored {
                    position: *appended,
                    event_type: shared_type(event_types, event.event_type),
                    schema_version: event.schema_version,
                    payload,
                    recorded_at: event.recorded_at,
                });
            }
            versions.push(Appended::new(events.len() as u64, *appended));
            if record.is_some() {
                written.push((append.stream, events.len() as u64));
            }
        }
        if let Some(record) = record {
            inner
                .keys
                .insert(record.key, Recalled::new(record.outcome, written));
        }
        Ok(versions)
    }
}

/// The shared text of `event_type`, added to `types` the first time it is seen.
fn shared_type(types: &mut foldhash::HashSet<Arc<str>>, event_type: String) -> Arc<str> {
    if let Some(shared) = types.get(event_type.as_str()) {
        return shared.clone();
    }
    let shared: Arc<str> = event_type.into();
    types.insert(shared.clone());
    shared
}

impl EventStore for InMemoryStore {
    fn read(
        &self,
        stream: &StreamId,
        after_version: u64,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send {
        ready(self.lock().read(stream, after_version, usize::MAX))
    }

    fn read_many(
        &self,
        streams: &[(StreamId, u64)],
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Vec<RecordedEvent>>, StoreError>> + Send {
        let inner = self.lock();
        ready(
            streams
                .iter()
                .map(|(stream, after)| inner.read(stream, *after, limit))
                .collect(),
        )
    }

    fn read_snapshots(
        &self,
        streams: &[StreamId],
    ) -> impl Future<Output = Result<Vec<Option<Snapshot>>, StoreError>> + Send {
        let inner = self.lock();
        ready(Ok(streams
            .iter()
            .map(|stream| inner.snapshots.get(stream).cloned())
            .collect()))
    }

    fn write_snapshot(
        &self,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let mut inner = self.lock();
        let newer = inner
            .snapshots
            .get(&snapshot.stream)
            .is_none_or(|stored| stored.version < snapshot.version);
        if newer {
            inner.snapshots.insert(snapshot.stream.clone(), snapshot);
        }
        ready(Ok(()))
    }

    fn append(
        &self,
        batch: AppendBatch,
    ) -> impl Future<Output = Result<Vec<Appended>, StoreError>> + Send {
        ready(self.append_now(batch))
    }

    fn read_feed(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<FeedEvent>, StoreError>> + Send {
        // Appends hold the lock while they write: the feed is the append order, gap-free.
        let inner = self.lock();
        let start = usize::try_from(after).unwrap_or(usize::MAX);
        let page = inner
            .feed
            .get(start..)
            .unwrap_or_default()
            .iter()
            .take(limit)
            .enumerate()
            .map(|(i, (stream, version))| {
                let stored = inner
                    .streams
                    .get(stream)
                    .and_then(|events| events.get(usize::try_from(*version - 1).ok()?))
                    .ok_or_else(|| StoreError::Internal("feed names a missing event".into()))?;
                let event = stored.recorded(stream, *version)?;
                Ok(FeedEvent::new(after + i as u64 + 1, event))
            })
            .collect();
        ready(page)
    }

    fn recall(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Recalled>, StoreError>> + Send {
        ready(Ok(self.lock().keys.get(key).cloned()))
    }
}

impl ProjectionStore for InMemoryStore {
    fn checkpoint(&self, projection: &str) -> impl Future<Output = Result<u64, StoreError>> + Send {
        ready(Ok(self.lock().read.checkpoint(projection)))
    }

    fn save_checkpoint(
        &self,
        projection: &str,
        position: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.lock().read.save_checkpoint(projection, position);
        ready(Ok(()))
    }

    fn apply_read_changes(
        &self,
        projection: &str,
        through: u64,
        changes: Vec<ReadChange>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        // One lock: the changes and the checkpoint land together.
        self.lock().read.apply(projection, through, changes);
        ready(Ok(()))
    }

    fn link_rows(
        &self,
        user_id: &UserId,
    ) -> impl Future<Output = Result<Vec<LinkRow>, StoreError>> + Send {
        ready(Ok(self.lock().read.link_rows(user_id)))
    }

    fn audit_page(
        &self,
        scope: &AuditScope,
        before: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, StoreError>> + Send {
        ready(Ok(self.lock().read.audit_page(scope, before, limit)))
    }
}
