//! Folded states of growing streams (orgs, users) by stream, so a load reads only the last cached
//! event and the events after it. Bounded: when full it starts over, which costs one full read per
//! stream, never correctness: every load checks that the store still holds the cached last event
//! (same position and time), so a database restored to an earlier point drops the entry.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::{AnyState, StreamMeta};
use crate::ids::{AggregateKind, StreamId};

#[derive(Debug, Default)]
pub(crate) struct StateCache {
    entries: Mutex<HashMap<StreamId, (AnyState, StreamMeta)>>,
}

impl StateCache {
    /// Codes and credential claims are short streams read rarely twice: not worth caching.
    pub(crate) fn cacheable(stream: &StreamId) -> bool {
        matches!(stream.kind(), AggregateKind::Org | AggregateKind::User)
    }

    pub(crate) fn get(&self, stream: &StreamId) -> Option<(AnyState, StreamMeta)> {
        if !Self::cacheable(stream) {
            return None;
        }
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(stream)
            .cloned()
    }

    /// Forgets `stream`.
    pub(crate) fn evict(&self, stream: &StreamId) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(stream);
    }

    /// Replaces the cached state of `stream` (every load validates what it takes from here).
    pub(crate) fn put(
        &self,
        stream: &StreamId,
        state: &AnyState,
        meta: StreamMeta,
        capacity: usize,
    ) {
        if !Self::cacheable(stream) || capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = entries.get_mut(stream) {
            *entry = (state.clone(), meta);
            return;
        }
        if entries.len() >= capacity {
            entries.clear();
        }
        entries.insert(stream.clone(), (state.clone(), meta));
    }
}
