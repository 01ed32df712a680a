//! The in-memory event store of the default build. It enforces what real stores enforce:
//! expected versions, gapless versions and all-or-nothing batches. Like a real store it keeps
//! each payload as JSON text, so what is read back went through the same serialization a
//! database would apply.
//!
//! Layout: one log of every event in position order (it is the feed), each stream the positions
//! of its events, the payload texts back to back in large chunks. An issuance adds two log
//! entries, one stream and its texts — no allocation of its own per event or per stream.

// foldhash: the streams are hashed on every append and read; SipHash was a tenth of an issuance.
use foldhash::HashMap;
use std::future::{Future, ready};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

mod read;
mod streams;
mod texts;

use super::projections::{AuditEntry, AuditScope, LinkRow, ProjectionStore, ReadChange};
use super::{
    AppendBatch, Appended, EventStore, FeedEvent, Recalled, RecordedEvent, Seen, Snapshot,
    StoreError,
};
use crate::ids::{StreamId, UserId};
use streams::Streams;
use texts::{TextRef, Texts};

/// One stored event, at its place in the log.
struct Stored {
    /// Index of its stream in [`Streams`].
    stream: usize,
    version: u64,
    /// Index into the store's event types (a handful of types, millions of events).
    event_type: u16,
    schema_version: u16,
    payload: TextRef,
    recorded_at: DateTime<Utc>,
}

#[derive(Default)]
struct Inner {
    /// Every event in append order: position `i + 1` is `log[i]`.
    log: Vec<Stored>,
    streams: Streams,
    /// The payload texts of the log.
    texts: Texts,
    /// Each event type once, indexed by [`Stored::event_type`].
    event_types: Vec<Arc<str>>,
    /// Idempotency records by key.
    keys: HashMap<String, Recalled>,
    /// Projection checkpoints and the read models' tables.
    read: read::ReadTables,
    /// The newest snapshot of each stream.
    snapshots: HashMap<StreamId, Snapshot>,
    /// Where an append notes the type and text of each of its events before it writes any
    /// (reused: no allocation per append).
    kept: Vec<(u16, TextRef)>,
}

/// An in-memory event store. Cloning shares the same events.
#[derive(Clone, Default)]
pub struct InMemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryStore")
            .field("events", &self.lock().log.len())
            .finish()
    }
}

impl Inner {
    fn at(&self, position: u64) -> Option<&Stored> {
        self.log
            .get(usize::try_from(position.checked_sub(1)?).ok()?)
    }

    fn recorded(&self, position: u64) -> Result<RecordedEvent, StoreError> {
        let missing = || StoreError::Internal("a stream names a missing event".into());
        let stored = self.at(position).ok_or_else(missing)?;
        let stream = self.streams.stream(stored.stream).ok_or_else(missing)?;
        let corrupt = |reason: String| StoreError::Corrupt {
            stream: stream.clone(),
            version: stored.version,
            reason,
        };
        let text = self
            .texts
            .get(stored.payload)
            .ok_or_else(|| corrupt("payload text missing".into()))?;
        let payload = serde_json::from_slice(text)
            .map_err(|err| corrupt(format!("payload is not JSON: {err}")))?;
        let event_type = self
            .event_types
            .get(usize::from(stored.event_type))
            .ok_or_else(|| corrupt("unknown event type".into()))?;
        Ok(RecordedEvent {
            stream: stream.clone(),
            version: stored.version,
            position,
            event_type: event_type.to_string(),
            schema_version: stored.schema_version,
            payload,
            recorded_at: stored.recorded_at,
        })
    }

    fn read(
        &self,
        stream: &StreamId,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let after = usize::try_from(after_version).unwrap_or(usize::MAX);
        self.streams
            .positions(stream)
            .get(after..)
            .unwrap_or_default()
            .iter()
            .take(limit)
            .map(|position| self.recorded(*position))
            .collect()
    }

    /// Whether `seen` is still the last event of its stream: compared in place, the payload as
    /// text (both are serde_json's compact form, so equal payloads are equal text) — no parse,
    /// no allocation.
    fn ends_with(&self, seen: &Seen) -> bool {
        let positions = self.streams.positions(&seen.stream);
        let Some(stored) = positions.last().and_then(|last| self.at(*last)) else {
            return false;
        };
        let Some(text) = self.texts.get(stored.payload) else {
            return false;
        };
        positions.len() as u64 == seen.version
            && positions.last() == Some(&seen.position)
            && self
                .event_types
                .get(usize::from(stored.event_type))
                .is_some_and(|event_type| **event_type == *seen.event_type)
            && stored.recorded_at == seen.recorded_at
            && text == seen.payload.as_bytes()
    }

    /// The index of `event_type`, added the first time it is seen (a handful of types: a scan
    /// beats hashing a long name).
    fn event_type(&mut self, event_type: &str) -> Result<u16, StoreError> {
        let index = match self
            .event_types
            .iter()
            .position(|known| **known == *event_type)
        {
            Some(index) => index,
            None => {
                self.event_types.push(event_type.into());
                self.event_types.len() - 1
            }
        };
        u16::try_from(index).map_err(|_| StoreError::Internal("too many event types".into()))
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
        (1..=inner.log.len() as u64)
            .filter_map(|position| inner.recorded(position).ok())
            .collect()
    }

    /// Number of events stored.
    pub fn len(&self) -> usize {
        self.lock().log.len()
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
        let positions = inner.streams.positions(stream);
        let Some(position) = version
            .checked_sub(1)
            .and_then(|index| usize::try_from(index).ok())
            .and_then(|index| positions.get(index).copied())
        else {
            return false;
        };
        let Some(text) = inner.texts.push(payload.as_bytes()) else {
            return false;
        };
        match usize::try_from(position - 1)
            .ok()
            .and_then(|index| inner.log.get_mut(index))
        {
            Some(stored) => {
                stored.payload = text;
                true
            }
            None => false,
        }
    }

    fn append_now(&self, batch: AppendBatch) -> Result<Vec<Appended>, StoreError> {
        let (batch, record, seen) = batch.into_parts();
        let mut inner = self.lock();
        for seen in &seen {
            if !inner.ends_with(seen) {
                return Err(StoreError::Conflict {
                    stream: seen.stream.clone(),
                    expected: super::ExpectedVersion::Exact(seen.version),
                    actual: inner.streams.version(&seen.stream),
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
            let actual = inner.streams.version(&append.stream);
            if !append.expected.matches(actual) {
                return Err(StoreError::Conflict {
                    stream: append.stream.clone(),
                    expected: append.expected,
                    actual,
                });
            }
        }
        // Keep every payload and type before any event, so a failure writes no event (a text
        // kept before the failure is never named).
        let mut kept = std::mem::take(&mut inner.kept);
        kept.clear();
        let noted = batch
            .iter()
            .flat_map(|append| &append.events)
            .try_for_each(|event| {
                let payload = inner
                    .texts
                    .push(event.payload.as_bytes())
                    .ok_or_else(|| StoreError::Internal("payload text too large".into()))?;
                kept.push((inner.event_type(&event.event_type)?, payload));
                Ok(())
            });
        if let Err(err) = noted {
            inner.kept = kept;
            return Err(err);
        }
        let mut next = kept.iter().copied();
        let mut versions = Vec::with_capacity(batch.len());
        // What the idempotency record names: only kept when there is a record.
        let mut written = Vec::with_capacity(if record.is_some() { batch.len() } else { 0 });
        for append in batch {
            let Inner { log, streams, .. } = &mut *inner;
            let count = append.events.len() as u64;
            // No stream is created for no events: it stays at version 0, and no event names it.
            let (index, mut version) = streams
                .extend(&append.stream, log.len() as u64 + 1, count)
                .unwrap_or_default();
            for (event, (event_type, payload)) in append.events.into_iter().zip(next.by_ref()) {
                version += 1;
                log.push(Stored {
                    stream: index,
                    version,
                    event_type,
                    schema_version: event.schema_version,
                    payload,
                    recorded_at: event.recorded_at,
                });
            }
            versions.push(Appended::new(version, log.len() as u64));
            if record.is_some() {
                written.push((append.stream, version));
            }
        }
        inner.kept = kept;
        if let Some(record) = record {
            inner
                .keys
                .insert(record.key, Recalled::new(record.outcome, written));
        }
        Ok(versions)
    }
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
        // Appends hold the lock while they write: the log is the append order, gap-free.
        let inner = self.lock();
        let last = (inner.log.len() as u64).min(after.saturating_add(limit as u64));
        ready(
            (after.saturating_add(1)..=last)
                .map(|position| Ok(FeedEvent::new(position, inner.recorded(position)?)))
                .collect(),
        )
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
