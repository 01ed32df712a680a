//! The in-memory event store of the default build: the readable reference implementation of the
//! port, and the oracle tests compare other stores with. It enforces what real stores enforce —
//! expected versions, read sets, gapless versions, all-or-nothing batches — and, like a real
//! store, keeps each payload as JSON text, so what is read back went through the same
//! serialization a database would apply.
//!
//! Layout: one log of every event in append order (it is the feed: position `i + 1` is
//! `log[i]`), and per stream the places of its events in the log.

use std::collections::HashMap;
use std::future::{Future, ready};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

mod read;

use super::{
    AppendBatch, Appended, Capabilities, EventId, EventStore, ExpectedVersion, FeedEvent, Follow,
    PersonalKey, PersonalKeyStore, ReadFrom, ReadStream, Recalled, RecordedEvent, Snapshot,
    StoreError, StoredKey, StreamRead, load_by_reads,
};
use crate::ids::{StreamId, UserId};
use crate::read::store::{AuditEntry, AuditScope, LinkRow, ProjectionStore, ReadChange};

/// One stored event.
#[derive(Debug, Clone)]
struct Stored {
    stream: StreamId,
    version: u64,
    id: EventId,
    event_type: String,
    schema_version: u16,
    /// The payload as JSON text.
    payload: String,
    recorded_at: DateTime<Utc>,
}

#[derive(Default)]
struct Inner {
    /// Every event in append order.
    log: Vec<Stored>,
    /// Each stream's events, as indexes into `log`, in version order.
    streams: HashMap<StreamId, Vec<usize>>,
    /// Idempotency records by key, with when each was recorded.
    keys: HashMap<String, (Recalled, DateTime<Utc>)>,
    /// The newest snapshot of each stream.
    snapshots: HashMap<StreamId, Snapshot>,
    /// Projection checkpoints and the read models' tables.
    read: read::ReadTables,
    /// Each user's personal data key; `None` once destroyed.
    personal_keys: HashMap<String, Option<PersonalKey>>,
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
    fn version(&self, stream: &StreamId) -> u64 {
        self.streams
            .get(stream)
            .map_or(0, |events| events.len() as u64)
    }

    fn recorded(&self, index: usize) -> Result<RecordedEvent, StoreError> {
        let stored = self
            .log
            .get(index)
            .ok_or_else(|| StoreError::Internal("a stream names a missing event".into()))?;
        let payload = serde_json::from_str(&stored.payload).map_err(|err| StoreError::Corrupt {
            stream: stored.stream.clone(),
            version: stored.version,
            reason: format!("payload is not JSON: {err}"),
        })?;
        Ok(RecordedEvent {
            stream: stored.stream.clone(),
            version: stored.version,
            position: index as u64 + 1,
            id: stored.id,
            event_type: stored.event_type.clone(),
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
        let events = self.streams.get(stream).map_or(&[][..], Vec::as_slice);
        let after = usize::try_from(after_version).unwrap_or(usize::MAX);
        events
            .get(after..)
            .unwrap_or_default()
            .iter()
            .take(limit)
            .map(|index| self.recorded(*index))
            .collect()
    }

    /// Whether `read` still stands: the stream ends with the event read (same version, same
    /// id: [`super::LastEvent`]), or still has no event.
    fn stands(&self, read: &ReadStream) -> bool {
        let events = self
            .streams
            .get(&read.stream)
            .map_or(&[][..], Vec::as_slice);
        match (&read.last, events.last()) {
            (None, None) => true,
            (Some(last), Some(index)) => {
                events.len() as u64 == last.version
                    && self
                        .log
                        .get(*index)
                        .is_some_and(|stored| stored.id == last.id)
            }
            _ => false,
        }
    }

    fn append(&mut self, batch: AppendBatch) -> Result<Vec<Appended>, StoreError> {
        let (appends, read_set, record) = batch.into_parts();
        // Everything is checked before anything is written: a refused batch writes nothing.
        if let Some(read) = read_set.iter().find(|read| !self.stands(read)) {
            return Err(StoreError::Conflict {
                stream: read.stream.clone(),
                expected: read.last.map_or(ExpectedVersion::NoStream, |last| {
                    ExpectedVersion::Exact(last.version)
                }),
                actual: self.version(&read.stream),
            });
        }
        if record
            .as_ref()
            .is_some_and(|record| self.keys.contains_key(&record.key))
        {
            return Err(StoreError::DuplicateKey);
        }
        for append in &appends {
            let actual = self.version(&append.stream);
            if !append.expected.matches(actual) {
                return Err(StoreError::Conflict {
                    stream: append.stream.clone(),
                    expected: append.expected,
                    actual,
                });
            }
        }
        let mut appended = Vec::with_capacity(appends.len());
        let mut written = Vec::new();
        for append in appends {
            let mut version = self.version(&append.stream);
            for event in append.events {
                version += 1;
                self.log.push(Stored {
                    stream: append.stream.clone(),
                    version,
                    id: event.id,
                    event_type: event.event_type,
                    schema_version: event.schema_version,
                    payload: event.payload.as_str().to_owned(),
                    recorded_at: event.recorded_at,
                });
                let index = self.log.len() - 1;
                self.streams
                    .entry(append.stream.clone())
                    .or_default()
                    .push(index);
            }
            appended.push(Appended::new(version, self.log.len() as u64));
            written.push((append.stream, version));
        }
        if let Some(record) = record {
            let recalled = Recalled::new(record.outcome, written);
            self.keys.insert(record.key, (recalled, record.recorded_at));
        }
        Ok(appended)
    }
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied batch (appends check
        // everything before they write), so a poisoned lock is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Every event in the store, in append (position) order. Events whose payload is no longer
    /// JSON (corrupted on purpose by a test) are left out.
    pub fn all_events(&self) -> Vec<RecordedEvent> {
        let inner = self.lock();
        (0..inner.log.len())
            .filter_map(|index| inner.recorded(index).ok())
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
        let index = version
            .checked_sub(1)
            .and_then(|v| usize::try_from(v).ok())
            .and_then(|v| inner.streams.get(stream)?.get(v).copied());
        match index.and_then(|index| inner.log.get_mut(index)) {
            Some(stored) => {
                stored.payload = payload.to_owned();
                true
            }
            None => false,
        }
    }
}

impl PersonalKeyStore for InMemoryStore {
    fn personal_key(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<Option<StoredKey>, StoreError>> + Send {
        let stored = self.lock().personal_keys.get(user_id).cloned();
        ready(Ok(
            stored.map(|key| key.map_or(StoredKey::Erased, StoredKey::Key))
        ))
    }

    fn create_personal_key(
        &self,
        user_id: &str,
        key: PersonalKey,
    ) -> impl Future<Output = Result<StoredKey, StoreError>> + Send {
        let mut inner = self.lock();
        let stored = inner
            .personal_keys
            .entry(user_id.to_owned())
            .or_insert(Some(key))
            .clone();
        ready(Ok(stored.map_or(StoredKey::Erased, StoredKey::Key)))
    }

    fn erase_personal_key(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.lock().personal_keys.insert(user_id.to_owned(), None);
        ready(Ok(()))
    }
}

impl EventStore for InMemoryStore {
    fn capabilities(&self) -> Capabilities {
        // Its clock would be the process's own: nothing to measure against.
        Capabilities::ALL.store_time(false)
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

    fn append(
        &self,
        batch: AppendBatch,
    ) -> impl Future<Output = Result<Vec<Appended>, StoreError>> + Send {
        ready(self.lock().append(batch))
    }

    fn read_feed(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<FeedEvent>, StoreError>> + Send {
        // Appends hold the lock while they write: the log is the append order, gap-free.
        let inner = self.lock();
        let start = usize::try_from(after).unwrap_or(usize::MAX);
        let end = start.saturating_add(limit).min(inner.log.len());
        ready(
            (start..end)
                .map(|index| Ok(FeedEvent::new(index as u64 + 1, inner.recorded(index)?)))
                .collect(),
        )
    }

    fn recall(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Recalled>, StoreError>> + Send {
        ready(Ok(self
            .lock()
            .keys
            .get(key)
            .map(|(recalled, _)| recalled.clone())))
    }

    fn prune_idempotency(
        &self,
        older_than: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let mut inner = self.lock();
        let before = inner.keys.len();
        inner.keys.retain(|_, (_, at)| *at >= older_than);
        ready(Ok((before - inner.keys.len()) as u64))
    }

    fn sleep(&self, duration: std::time::Duration) -> impl Future<Output = ()> + Send {
        super::portable_sleep(duration)
    }

    /// The reference semantics, in one call: nothing is gained by batching in memory.
    fn load_many(
        &self,
        streams: &[(StreamId, ReadFrom)],
        follow: &[Follow],
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StreamRead>, StoreError>> + Send {
        load_by_reads(self, true, streams, follow, limit)
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
}

impl ProjectionStore for InMemoryStore {
    fn feed_head(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        ready(Ok(self.lock().log.len() as u64))
    }

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
