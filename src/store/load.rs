//! The optional load extension of the store port: snapshots ([`Capabilities::snapshots`]) and
//! loading several streams — from snapshots, with the streams their events name — in one round
//! trip ([`Capabilities::batched_load`]). A store without them still serves every load through
//! [`super::EventStore::read_many`] ([`load_by_reads`]).

use std::sync::Arc;

use serde_json::Value;

use super::{EventStore, RecordedEvent, StoreError, StoredKey};
use crate::ids::{AggregateKind, StreamId};

/// What a store does beyond the required methods of [`super::EventStore`]. A store declares
/// what it implements; a wrapper (metrics, fault injection) declares what it forwards. A
/// capability declared whose method is left at its default answers
/// [`StoreError::Unsupported`] — loudly, never by silently taking a slower path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Capabilities {
    /// [`super::EventStore::read_snapshots`] and [`super::EventStore::write_snapshot`] keep
    /// snapshots.
    pub snapshots: bool,
    /// [`super::EventStore::load_many`] answers several streams, their snapshots and the streams
    /// they [`Follow`], in one call.
    pub batched_load: bool,
    /// [`super::EventStore::store_time`] tells the store's own clock: the reference every
    /// node's clock is measured against.
    pub store_time: bool,
}

impl Capabilities {
    /// Nothing beyond the required methods.
    pub const NONE: Self = Self {
        snapshots: false,
        batched_load: false,
        store_time: false,
    };

    /// Every capability.
    pub const ALL: Self = Self {
        snapshots: true,
        batched_load: true,
        store_time: true,
    };

    /// With snapshots or without.
    pub const fn snapshots(mut self, snapshots: bool) -> Self {
        self.snapshots = snapshots;
        self
    }

    /// With batched loads or without.
    pub const fn batched_load(mut self, batched_load: bool) -> Self {
        self.batched_load = batched_load;
        self
    }

    /// With the store's clock or without.
    pub const fn store_time(mut self, store_time: bool) -> Self {
        self.store_time = store_time;
        self
    }
}

/// A stream's folded state as of one version, stored so that a load need not read the events
/// before it. Opaque to stores. Whoever reads it checks that the store still holds the event it
/// was taken at (a database restored to an earlier point must not revive a later state).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Snapshot {
    /// The stream.
    pub stream: StreamId,
    /// The version it was taken at.
    pub version: u64,
    /// The state, in the writer's format.
    pub state: Value,
}

impl Snapshot {
    /// A snapshot of `stream` at `version`.
    pub fn new(stream: StreamId, version: u64, state: Value) -> Self {
        Self {
            stream,
            version,
            state,
        }
    }
}

/// Where [`super::EventStore::load_many`] starts reading one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadFrom {
    /// After this version.
    After(u64),
    /// At the newest snapshot's version (its last event again, so the reader can check that
    /// the store still holds it), or at the first event when there is none.
    Snapshot,
}

/// A stream for [`super::EventStore::load_many`] to read along with the streams asked, whose id
/// the caller does not know yet: the stream of `kind` named by the text field `field` of an
/// event of the stream asked at index `from` — its first event (a user's org), or the newest of
/// its recent events that matches ([`Naming::Latest`]: the code of a user's passkey ceremony) —,
/// read from its newest snapshot. It saves the round trip of reading the first stream before
/// naming the second; what it reads is only a prediction until the caller checks the name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Follow {
    /// The index, in the streams asked, of the stream whose event names the stream.
    pub from: usize,
    /// The top-level text field of that event's payload holding the id.
    pub field: &'static str,
    /// The kind of the stream named.
    pub kind: AggregateKind,
    /// Which event of the stream at `from` names it.
    pub naming: Naming,
}

/// How many of a stream's last events a [`Naming::Latest`] follow looks through: a follow is
/// a prediction, and a bounded one costs the same whatever a stream's length or a caller's
/// guess.
pub const FOLLOW_WINDOW: u64 = 64;

/// Which event of the stream followed names the stream to read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Naming {
    /// Its first event (version 1).
    First,
    /// The newest event of `event_type` among its last [`FOLLOW_WINDOW`] events whose
    /// top-level text field `key` is `value`.
    Latest {
        /// The event type.
        event_type: &'static str,
        /// The payload field compared.
        key: &'static str,
        /// The text it must hold.
        value: Arc<str>,
    },
}

impl Follow {
    /// The stream of `kind` named by `field` of the first event of the stream asked at `from`.
    pub fn new(from: usize, field: &'static str, kind: AggregateKind) -> Self {
        Self {
            from,
            field,
            kind,
            naming: Naming::First,
        }
    }

    /// The stream of `kind` named by `field` of the newest event of `event_type` (among the
    /// last [`FOLLOW_WINDOW`]) of the stream asked at `from` whose field `key` is `value`.
    pub fn latest(
        from: usize,
        field: &'static str,
        kind: AggregateKind,
        event_type: &'static str,
        key: &'static str,
        value: impl Into<Arc<str>>,
    ) -> Self {
        Self {
            from,
            field,
            kind,
            naming: Naming::Latest {
                event_type,
                key,
                value: value.into(),
            },
        }
    }

    /// The same follow from the stream asked at `from`.
    pub fn from_index(mut self, from: usize) -> Self {
        self.from = from;
        self
    }

    /// The stream `events` name, if they name a valid one: `events` are the followed stream's
    /// events in version order — from its first for [`Naming::First`], through its last for
    /// [`Naming::Latest`] (of which only the last [`FOLLOW_WINDOW`] count).
    pub fn named_by(&self, events: &[RecordedEvent]) -> Option<StreamId> {
        let naming = match &self.naming {
            Naming::First => events.first().filter(|first| first.version == 1),
            Naming::Latest {
                event_type,
                key,
                value,
            } => {
                let last = events.last()?.version;
                events
                    .iter()
                    .rev()
                    .take_while(|e| e.version.saturating_add(FOLLOW_WINDOW) > last)
                    .find(|e| {
                        e.event_type == *event_type
                            && e.payload.get(*key).and_then(Value::as_str) == Some(&**value)
                    })
            }
        }?;
        let id = naming.payload.get(self.field)?.as_str()?;
        StreamId::new(self.kind, id).ok()
    }
}

/// One stream's answer to [`super::EventStore::load_many`].
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct StreamRead {
    /// The newest snapshot, when asked for and stored.
    pub snapshot: Option<Snapshot>,
    /// The events from where the read started, at most the limit.
    pub events: Vec<RecordedEvent>,
    /// A user stream's personal data key, when the user has (or had) one
    /// ([`super::PersonalKeyStore::personal_key`]): what opens its sealed events, in the same
    /// round trip.
    pub personal_key: Option<StoredKey>,
}

impl StreamRead {
    /// An answer.
    pub fn new(snapshot: Option<Snapshot>, events: Vec<RecordedEvent>) -> Self {
        Self {
            snapshot,
            events,
            personal_key: None,
        }
    }

    /// The answer with the user's personal data key.
    pub fn with_personal_key(mut self, key: Option<StoredKey>) -> Self {
        self.personal_key = key;
        self
    }
}

/// What [`super::EventStore::load_many`] answers, built from [`super::EventStore::read_many`]
/// (and [`super::EventStore::read_snapshots`] when `snapshots`): the snapshots, then the events,
/// then what they name, then each user stream's personal data key — a round trip each. The
/// reference semantics of `load_many`, and how a
/// store without [`Capabilities::batched_load`] is loaded.
///
/// # Errors
/// The store's.
pub async fn load_by_reads<S: EventStore + ?Sized>(
    store: &S,
    snapshots: bool,
    streams: &[(StreamId, ReadFrom)],
    follow: &[Follow],
    limit: usize,
) -> Result<Vec<StreamRead>, StoreError> {
    let mut reads = read_from(store, snapshots, streams, limit).await?;
    let mut named = Vec::with_capacity(follow.len());
    for follow in follow {
        let source = streams.get(follow.from).zip(reads.get(follow.from));
        let events = match source {
            Some(((stream, from), read)) => {
                follow_source(store, stream, *from, read, &follow.naming, limit).await?
            }
            None => Vec::new(),
        };
        named.push(follow.named_by(&events));
    }
    let wanted: Vec<(StreamId, ReadFrom)> = named
        .iter()
        .flatten()
        .map(|stream| (stream.clone(), ReadFrom::Snapshot))
        .collect();
    let mut followed = read_from(store, snapshots, &wanted, limit)
        .await?
        .into_iter();
    for stream in &named {
        reads.push(match stream {
            Some(_) => followed.next().unwrap_or_default(),
            None => StreamRead::default(),
        });
    }
    let read_streams = streams
        .iter()
        .map(|(stream, _)| Some(stream))
        .chain(named.iter().map(Option::as_ref));
    for (read, stream) in reads.iter_mut().zip(read_streams) {
        if let Some(user) = stream.filter(|s| s.kind() == AggregateKind::User) {
            read.personal_key = store.personal_key(user.id()).await?;
        }
    }
    Ok(reads)
}

/// The events of a followed stream that [`Follow::named_by`] needs, from what was read of it
/// (`read`, from `from` with `limit`): its first event, or its last [`FOLLOW_WINDOW`] events —
/// none when the read stopped short of the stream's end.
async fn follow_source<S: EventStore + ?Sized>(
    store: &S,
    stream: &StreamId,
    from: ReadFrom,
    read: &StreamRead,
    naming: &Naming,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let events = &read.events;
    let start = events.first().map(|e| e.version);
    let after = match naming {
        Naming::First if start == Some(1) => return Ok(events.iter().take(1).cloned().collect()),
        Naming::First => 0,
        Naming::Latest { .. } if events.len() >= limit => return Ok(Vec::new()),
        Naming::Latest { .. } => {
            let last = match (events.last(), &read.snapshot, from) {
                (Some(event), _, _) => event.version,
                (None, Some(snapshot), _) => snapshot.version,
                (None, None, ReadFrom::After(after)) => after,
                (None, None, ReadFrom::Snapshot) => 0,
            };
            let after = last.saturating_sub(FOLLOW_WINDOW);
            if start.is_some_and(|start| start <= after + 1) {
                return Ok(events.clone());
            }
            after
        }
    };
    let page = match naming {
        Naming::First => 1,
        Naming::Latest { .. } => usize::try_from(FOLLOW_WINDOW).unwrap_or(usize::MAX),
    };
    Ok(store
        .read_many(&[(stream.clone(), after)], page)
        .await?
        .into_iter()
        .flatten()
        .collect())
}

/// `streams` each from where asked, without follows.
async fn read_from<S: EventStore + ?Sized>(
    store: &S,
    snapshots: bool,
    streams: &[(StreamId, ReadFrom)],
    limit: usize,
) -> Result<Vec<StreamRead>, StoreError> {
    let wanted: Vec<StreamId> = streams
        .iter()
        .filter(|(_, from)| snapshots && *from == ReadFrom::Snapshot)
        .map(|(stream, _)| stream.clone())
        .collect();
    let mut found = if wanted.is_empty() {
        Vec::new()
    } else {
        store.read_snapshots(&wanted).await?
    }
    .into_iter();
    let mut starts = Vec::with_capacity(streams.len());
    let mut reads = Vec::with_capacity(streams.len());
    for (stream, from) in streams {
        let (snapshot, after) = match from {
            ReadFrom::After(after) => (None, *after),
            ReadFrom::Snapshot if snapshots => {
                let snapshot = found.next().flatten();
                let after = snapshot.as_ref().map_or(0, |s| s.version.saturating_sub(1));
                (snapshot, after)
            }
            ReadFrom::Snapshot => (None, 0),
        };
        starts.push(snapshot);
        reads.push((stream.clone(), after));
    }
    let events = store.read_many(&reads, limit).await?;
    Ok(starts
        .into_iter()
        .zip(events)
        .map(|(snapshot, events)| StreamRead::new(snapshot, events))
        .collect())
}
