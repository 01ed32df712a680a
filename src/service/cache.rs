//! Folded states of growing streams (orgs, users) by stream, so a load reads only the events
//! after the cached version. Bounded: when full it starts over, which costs one full read per
//! stream, never correctness (stored events are immutable, and only states of stored prefixes
//! are ever cached).

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

    /// Keeps the newer of the cached and the given state.
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
            if entry.0.version() < state.version() {
                *entry = (state.clone(), meta);
            }
            return;
        }
        if entries.len() >= capacity {
            entries.clear();
        }
        entries.insert(stream.clone(), (state.clone(), meta));
    }
}
