//! The in-memory store's streams: each stream's event positions, found by stream id.
//!
//! Millions of code streams are probed at random, so the table that is probed holds only each
//! stream's hash and where its entry lies (16 bytes); the entries themselves are written one
//! after another, and an id's text is read only for the stream whose hash matches.

use std::hash::BuildHasher;

use crate::ids::StreamId;

/// The positions of a stream's events, in version order. Most streams (codes) hold one or two
/// events: the first is kept inline.
enum Positions {
    One(u64),
    Many(Vec<u64>),
}

impl Positions {
    fn as_slice(&self) -> &[u64] {
        match self {
            Self::One(position) => std::slice::from_ref(position),
            Self::Many(positions) => positions,
        }
    }

    fn push(&mut self, position: u64) {
        match self {
            Self::One(first) => *self = Self::Many(vec![*first, position]),
            Self::Many(positions) => positions.push(position),
        }
    }
}

struct Entry {
    stream: StreamId,
    positions: Positions,
}

/// Where a stream's entry lies, with the hash of its id (the table grows by stored hashes).
struct Slot {
    hash: u64,
    entry: usize,
}

/// Every stream, by id.
#[derive(Default)]
pub(super) struct Streams {
    entries: Vec<Entry>,
    table: hashbrown::HashTable<Slot>,
    hasher: foldhash::fast::RandomState,
}

impl Streams {
    /// The positions of `stream`'s events, in version order (empty for no stream).
    pub(super) fn positions(&self, stream: &StreamId) -> &[u64] {
        let hash = self.hasher.hash_one(stream);
        let entries = &self.entries;
        self.table
            .find(hash, |slot| {
                slot.hash == hash && entries.get(slot.entry).is_some_and(|e| e.stream == *stream)
            })
            .and_then(|slot| entries.get(slot.entry))
            .map_or(&[], |entry| entry.positions.as_slice())
    }

    /// The version of `stream` (0: no stream).
    pub(super) fn version(&self, stream: &StreamId) -> u64 {
        self.positions(stream).len() as u64
    }

    /// The stream at `index` (as [`Streams::extend`] answers it).
    pub(super) fn stream(&self, index: usize) -> Option<&StreamId> {
        self.entries.get(index).map(|entry| &entry.stream)
    }

    /// Adds the `count` positions from `first` on to the end of `stream` (creating it if
    /// `count > 0`); answers the stream's index and its version before (`None` for a stream
    /// that is not created).
    pub(super) fn extend(
        &mut self,
        stream: &StreamId,
        first: u64,
        count: u64,
    ) -> Option<(usize, u64)> {
        let hash = self.hasher.hash_one(stream);
        let Self { entries, table, .. } = self;
        let found = table.find(hash, |slot| {
            slot.hash == hash && entries.get(slot.entry).is_some_and(|e| e.stream == *stream)
        });
        let added = first..first.saturating_add(count);
        match found.and_then(|slot| Some((slot.entry, entries.get_mut(slot.entry)?))) {
            Some((index, entry)) => {
                let before = entry.positions.as_slice().len() as u64;
                added.for_each(|position| entry.positions.push(position));
                Some((index, before))
            }
            None if count == 0 => None,
            None => {
                let positions = if count == 1 {
                    Positions::One(first)
                } else {
                    Positions::Many(added.collect())
                };
                entries.push(Entry {
                    stream: stream.clone(),
                    positions,
                });
                let entry = entries.len() - 1;
                table.insert_unique(hash, Slot { hash, entry }, |slot| slot.hash);
                Some((entry, 0))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AggregateKind, StreamId};

    #[test]
    fn streams_keep_their_positions_apart() {
        let mut streams = Streams::default();
        let ids: Vec<StreamId> = (0..5_000)
            .map(|i| StreamId::new(AggregateKind::Code, format!("{i:032x}")).unwrap())
            .collect();
        let mut position = 0;
        for round in 0..3u64 {
            for (i, stream) in ids.iter().enumerate() {
                // Streams grow by one, two or none at a time.
                let count = (i as u64 + round) % 3;
                let before = streams.version(stream);
                match streams.extend(stream, position + 1, count) {
                    Some((index, version)) => {
                        assert_eq!(version, before);
                        assert_eq!(streams.stream(index), Some(stream));
                    }
                    None => assert_eq!((before, count), (0, 0)),
                }
                position += count;
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, stream) in ids.iter().enumerate() {
            let positions = streams.positions(stream);
            let expected: u64 = (0..3).map(|round| (i as u64 + round) % 3).sum();
            assert_eq!(positions.len() as u64, expected);
            assert!(positions.windows(2).all(|pair| pair[0] < pair[1]));
            assert!(positions.iter().all(|p| seen.insert(*p)));
        }
        assert_eq!(seen.len() as u64, position);
        let unknown = StreamId::new(AggregateKind::Code, "f".repeat(32)).unwrap();
        assert_eq!(streams.version(&unknown), 0);
        assert_eq!(streams.extend(&unknown, position + 1, 0), None);
        assert_eq!(streams.version(&unknown), 0);
    }
}
