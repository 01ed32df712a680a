//! Folded states by stream (orgs, users, codes), with the last event each was folded up to, so a load reads only that event again and the events after it — and a decision can be
//! taken without reading at all, its append requiring the events it saw to still be last.
//! Bounded: when full it starts over, which costs one full read per stream, never correctness:
//! every load checks that the store still holds the cached last event (same position, time and
//! content), so a database restored to an earlier point drops the entry.

// foldhash (seeded per process): looked up several times per decision.
use foldhash::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::{AnyState, StreamMeta};
use crate::ids::{AggregateKind, StreamId};
use crate::store::Seen;

/// A cached state, its meta, and its last event when known.
pub(crate) type CacheEntry = (AnyState, StreamMeta, Option<Arc<Seen>>);

#[derive(Debug, Default)]
pub(crate) struct StateCache {
    entries: Mutex<HashMap<StreamId, CacheEntry>>,
}

impl StateCache {
    /// Orgs and users are read by almost every decision; a code by the check of its link and
    /// again by the passkey ceremony that link starts. Credential claims are read once.
    pub(crate) fn cacheable(stream: &StreamId) -> bool {
        matches!(
            stream.kind(),
            AggregateKind::Org | AggregateKind::User | AggregateKind::Code
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StreamId, CacheEntry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A cached state, with its last event when known.
    pub(crate) fn get(&self, stream: &StreamId) -> Option<CacheEntry> {
        if !Self::cacheable(stream) {
            return None;
        }
        self.lock().get(stream).cloned()
    }

    /// A cached state with the last event it was folded up to, when that event is known.
    pub(crate) fn known(&self, stream: &StreamId) -> Option<(AnyState, StreamMeta, Arc<Seen>)> {
        self.held().known(stream)
    }

    /// The cache held for several lookups in a row (one lock for a decision's streams).
    pub(crate) fn held(&self) -> Held<'_> {
        Held(self.lock())
    }

    /// Forgets `stream`.
    pub(crate) fn evict(&self, stream: &StreamId) {
        self.lock().remove(stream);
    }

    /// Records that a snapshot of `stream` at `version` is stored.
    pub(crate) fn mark_snapshot(&self, stream: &StreamId, version: u64) {
        if let Some((state, meta, _)) = self.lock().get_mut(stream)
            && state.version() >= version
        {
            meta.snapshot_version = meta.snapshot_version.max(version);
        }
    }

    /// Replaces the cached state of `stream` (every load validates what it takes from here).
    pub(crate) fn put(
        &self,
        stream: &StreamId,
        state: &AnyState,
        meta: StreamMeta,
        last: Option<Arc<Seen>>,
        capacity: usize,
    ) {
        self.put_all([(stream, state, meta, last)], capacity);
    }

    /// [`Self::put`] for several streams, under one lock.
    pub(crate) fn put_all<'a>(
        &self,
        states: impl IntoIterator<Item = (&'a StreamId, &'a AnyState, StreamMeta, Option<Arc<Seen>>)>,
        capacity: usize,
    ) {
        if capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        for (stream, state, meta, last) in states {
            if !Self::cacheable(stream) {
                continue;
            }
            if let Some(entry) = entries.get_mut(stream) {
                *entry = (state.clone(), meta, last);
                continue;
            }
            if entries.len() >= capacity {
                entries.clear();
            }
            entries.insert(stream.clone(), (state.clone(), meta, last));
        }
    }

    /// Forgets `streams` ahead of a [`Self::put_all`] of their new states, so that the cache
    /// holds no second reference to a state about to change (which would make the change copy
    /// it).
    pub(crate) fn release(&self, streams: &[&StreamId]) {
        let mut entries = self.lock();
        for stream in streams {
            entries.remove(*stream);
        }
    }
}

/// The cache, locked: see [`StateCache::held`].
pub(crate) struct Held<'a>(std::sync::MutexGuard<'a, HashMap<StreamId, CacheEntry>>);

impl Held<'_> {
    /// Whether a write of `stream` is worth keeping: orgs and users always, a code only if it
    /// was read already — a code just issued is opened somewhere else, much later, if at all,
    /// and would only push the users out.
    pub(crate) fn keeps_written(&self, stream: &StreamId) -> bool {
        match stream.kind() {
            AggregateKind::Org | AggregateKind::User => true,
            AggregateKind::Code => self.0.contains_key(stream),
            AggregateKind::Credential => false,
        }
    }

    /// As [`StateCache::known`].
    pub(crate) fn known(&self, stream: &StreamId) -> Option<(AnyState, StreamMeta, Arc<Seen>)> {
        if !StateCache::cacheable(stream) {
            return None;
        }
        let (state, meta, last) = self.0.get(stream)?;
        Some((state.clone(), *meta, last.clone()?))
    }
}
