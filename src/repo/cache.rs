//! The process cache of folded states, and the one table of which stream kinds are cached and
//! snapshotted.
//!
//! Every entry keeps the last event its state was folded up to, so a load reads only that event
//! again (to check the store still holds it: [`crate::store::LastEvent`]) and the events after
//! it — and a decision can be taken without reading at all, its commit requiring every event it
//! saw to still be last. Bounded: when full it starts over, which costs one full read per
//! stream, never correctness.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::loaded::{Entry, StreamMeta};
use crate::domain::AnyState;
use crate::ids::{AggregateKind, StreamId};

/// How the repository keeps the streams of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Keeping {
    /// A state folded from the store is cached.
    pub(crate) when_read: bool,
    /// A state just written is cached (whatever it was before): otherwise it is dropped, unless
    /// the decision says it is read again right after.
    pub(crate) when_written: bool,
    /// States are snapshotted as they grow.
    pub(crate) snapshotted: bool,
}

/// The one table: orgs and users are read by almost every decision and grow long; a code is read
/// by the check of its link and again by the passkey ceremony that link starts, but one just
/// written is opened somewhere else, much later, if at all; a credential claim is written once
/// (at registration, when nobody reads it next) and read by every login with its passkey.
pub(crate) const fn keeping(kind: AggregateKind) -> Keeping {
    match kind {
        AggregateKind::Org | AggregateKind::User => Keeping {
            when_read: true,
            when_written: true,
            snapshotted: true,
        },
        AggregateKind::Code => Keeping {
            when_read: true,
            when_written: false,
            snapshotted: false,
        },
        AggregateKind::Credential => Keeping {
            when_read: true,
            when_written: false,
            snapshotted: false,
        },
    }
}

/// A cached state with its meta; only states whose last event is known are cached.
pub(crate) type Cached = (AnyState, StreamMeta);

#[derive(Debug, Default)]
pub(crate) struct StateCache {
    entries: Mutex<HashMap<StreamId, Cached>>,
}

impl StateCache {
    fn lock(&self) -> MutexGuard<'_, HashMap<StreamId, Cached>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A cached state.
    pub(crate) fn get(&self, stream: &StreamId) -> Option<Cached> {
        self.lock().get(stream).cloned()
    }

    /// The cache held for several lookups in a row (one lock for a decision's streams).
    pub(crate) fn held(&self) -> Held<'_> {
        Held(self.lock())
    }

    /// Forgets `stream` (its start no longer matches the store).
    pub(crate) fn evict(&self, stream: &StreamId) {
        self.lock().remove(stream);
    }

    /// Records that a snapshot of `stream` at `version` is stored.
    pub(crate) fn mark_snapshot(&self, stream: &StreamId, version: u64) {
        if let Some((state, meta)) = self.lock().get_mut(stream)
            && state.version() >= version
        {
            meta.snapshot_version = meta.snapshot_version.max(version);
        }
    }

    /// Forgets `streams` ahead of a [`Self::put_all`] of their new states, so that the cache
    /// holds no second reference to a state about to change (which would make the change copy
    /// it), and a written state that is not kept is not kept stale.
    pub(crate) fn release<'a>(&self, streams: impl IntoIterator<Item = &'a StreamId>) {
        let mut entries = self.lock();
        for stream in streams {
            entries.remove(stream);
        }
    }

    /// Caches `entries` (those with a known last event), under one lock.
    pub(crate) fn put_all<'a>(
        &self,
        entries: impl IntoIterator<Item = &'a Entry>,
        capacity: usize,
    ) {
        if capacity == 0 {
            return;
        }
        let mut cached = self.lock();
        for entry in entries {
            if entry.meta.last.is_none() {
                continue;
            }
            let value = (entry.state.clone(), entry.meta);
            if let Some(slot) = cached.get_mut(&entry.stream) {
                *slot = value;
                continue;
            }
            if cached.len() >= capacity {
                cached.clear();
            }
            cached.insert(entry.stream.clone(), value);
        }
    }
}

/// The cache, locked: see [`StateCache::held`].
pub(crate) struct Held<'a>(MutexGuard<'a, HashMap<StreamId, Cached>>);

impl Held<'_> {
    /// A cached state, when its last event is known.
    pub(crate) fn get(&self, stream: &StreamId) -> Option<Cached> {
        self.0.get(stream).cloned()
    }
}
