//! The streams loaded for one decision: each stream's state with what the repository knows
//! about it (when it began and last changed, its last event, its newest snapshot).

use chrono::{DateTime, Utc};

use crate::domain::{AnyState, Change, States};
use crate::ids::{AggregateKind, StreamId};
use crate::store::{LastEvent, ReadStream};

/// What is known about a loaded stream besides its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct StreamMeta {
    /// Its first event's time (`details.creationDate`).
    pub(crate) created_at: Option<DateTime<Utc>>,
    /// Its last event's time (`details.changeDate`).
    pub(crate) changed_at: Option<DateTime<Utc>>,
    /// Its last event, once the store has said which it is (`None` for an empty stream).
    pub(crate) last: Option<LastEvent>,
    /// The version of the newest snapshot known to be stored (0: none).
    pub(crate) snapshot_version: u64,
}

impl StreamMeta {
    /// Records the next event, `last`, recorded at `at`.
    pub(crate) fn touch(&mut self, at: DateTime<Utc>, last: Option<LastEvent>) {
        self.created_at.get_or_insert(at);
        self.changed_at = Some(at);
        self.last = last;
    }
}

/// One loaded stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) stream: StreamId,
    pub(crate) state: AnyState,
    pub(crate) meta: StreamMeta,
}

/// The streams loaded for one decision, and whether they came from the process cache without a
/// read (warm): a decision on warm states stands only once a commit has validated them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Loaded {
    entries: Vec<Entry>,
    warm: bool,
}

impl States for Loaded {
    fn state(&self, kind: AggregateKind, id: &str) -> Option<&AnyState> {
        self.find(kind, id).map(|entry| &entry.state)
    }
}

impl Loaded {
    /// An empty set of states taken from the cache alone.
    pub(crate) fn warm() -> Self {
        Self {
            entries: Vec::new(),
            warm: true,
        }
    }

    /// Whether the states came from the cache without a read.
    pub(crate) fn is_warm(&self) -> bool {
        self.warm
    }

    pub(crate) fn get(&self, stream: &StreamId) -> Option<&Entry> {
        self.find(stream.kind(), stream.id())
    }

    pub(crate) fn entry_mut(&mut self, stream: &StreamId) -> Option<&mut Entry> {
        self.entries
            .iter_mut()
            .find(|entry| entry.stream == *stream)
    }

    /// The entry of a stream named by kind and id (no allocation).
    fn find(&self, kind: AggregateKind, id: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|entry| entry.stream.kind() == kind && entry.stream.id() == id)
    }

    /// Puts a loaded stream (replacing an earlier load of it).
    pub(crate) fn insert(&mut self, stream: StreamId, state: AnyState, meta: StreamMeta) {
        match self.entry_mut(&stream) {
            Some(entry) => {
                entry.state = state;
                entry.meta = meta;
            }
            None => self.entries.push(Entry {
                stream,
                state,
                meta,
            }),
        }
    }

    /// Applies a change recorded at `at` as event `last` of its stream, creating the stream's
    /// entry if needed.
    pub(crate) fn apply(&mut self, change: &Change, at: DateTime<Utc>, last: Option<LastEvent>) {
        if self.get(change.stream()).is_none() {
            self.entries.push(Entry {
                stream: change.stream().clone(),
                state: AnyState::empty(change.stream().kind()),
                meta: StreamMeta::default(),
            });
        }
        if let Some(entry) = self.entry_mut(change.stream()) {
            entry.state.apply(change.event());
            entry.meta.touch(at, last);
        }
    }

    /// The version of `stream` (0 when not loaded).
    pub(crate) fn version(&self, stream: &StreamId) -> u64 {
        self.get(stream).map_or(0, |entry| entry.state.version())
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// Every loaded stream as it was read: what a commit requires to still stand.
    pub(crate) fn read_set(&self) -> impl Iterator<Item = ReadStream> + '_ {
        self.entries.iter().map(|entry| ReadStream {
            stream: entry.stream.clone(),
            last: entry.meta.last,
        })
    }
}
