//! The in-memory event store of the default build. It enforces what real stores enforce:
//! expected versions, gapless versions and all-or-nothing batches.

use std::collections::{HashMap, HashSet};
use std::future::{Future, ready};
use std::sync::{Arc, Mutex, MutexGuard};

use super::store::{EventStore, RecordedEvent, StoreError, StreamAppend};
use crate::ids::StreamId;

#[derive(Default)]
struct Inner {
    streams: HashMap<StreamId, Vec<Arc<RecordedEvent>>>,
    log: Vec<Arc<RecordedEvent>>,
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

    /// Every event in the store, in append order.
    pub fn all_events(&self) -> Vec<RecordedEvent> {
        self.lock()
            .log
            .iter()
            .map(|e| RecordedEvent::clone(e))
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

    /// Replaces the payload of one stored event (to test how readers handle corrupted data).
    /// Returns whether the event existed.
    pub fn corrupt_payload(
        &self,
        stream: &StreamId,
        version: u64,
        payload: serde_json::Value,
    ) -> bool {
        let mut inner = self.lock();
        let Some(events) = inner.streams.get_mut(stream) else {
            return false;
        };
        let Some(slot) = version
            .checked_sub(1)
            .and_then(|i| events.get_mut(usize::try_from(i).ok()?))
        else {
            return false;
        };
        let mut changed = RecordedEvent::clone(slot);
        changed.payload = payload;
        let position = changed.position;
        let changed = Arc::new(changed);
        *slot = Arc::clone(&changed);
        if let Some(entry) = inner.log.iter_mut().find(|e| e.position == position) {
            *entry = changed;
        }
        true
    }

    fn append_now(&self, batch: Vec<StreamAppend>) -> Result<Vec<u64>, StoreError> {
        let mut inner = self.lock();
        let mut seen = HashSet::with_capacity(batch.len());
        // Validate every stream before writing any, so a conflict writes nothing.
        for append in &batch {
            if !seen.insert(&append.stream) {
                return Err(StoreError::Internal(format!(
                    "stream {} appears twice in one batch",
                    append.stream
                )));
            }
            let actual = inner.streams.get(&append.stream).map_or(0, Vec::len) as u64;
            if !append.expected.matches(actual) {
                return Err(StoreError::Conflict {
                    stream: append.stream.clone(),
                    expected: append.expected,
                    actual,
                });
            }
        }
        let mut versions = Vec::with_capacity(batch.len());
        for append in batch {
            let Inner { streams, log } = &mut *inner;
            let events = streams.entry(append.stream.clone()).or_default();
            for event in append.events {
                let recorded = Arc::new(RecordedEvent {
                    stream: append.stream.clone(),
                    version: events.len() as u64 + 1,
                    position: log.len() as u64 + 1,
                    event_type: event.event_type,
                    schema_version: event.schema_version,
                    payload: event.payload,
                    recorded_at: event.recorded_at,
                });
                events.push(Arc::clone(&recorded));
                log.push(recorded);
            }
            versions.push(events.len() as u64);
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
        let inner = self.lock();
        let events = inner.streams.get(stream).map_or_else(Vec::new, |events| {
            let skip = usize::try_from(after_version).unwrap_or(usize::MAX);
            events
                .iter()
                .skip(skip)
                .map(|e| RecordedEvent::clone(e))
                .collect()
        });
        ready(Ok(events))
    }

    fn append(
        &self,
        batch: Vec<StreamAppend>,
    ) -> impl Future<Output = Result<Vec<u64>, StoreError>> + Send {
        ready(self.append_now(batch))
    }
}
