//! How states come and go: loading the streams a decision asks for — from the process cache
//! without a read (warm), or from the store (cold: cached starts and snapshots validated, the
//! rest folded page by page) — and committing what it decided, under the read set it was
//! decided on. The engine sees two steps, [`Repository::load`] and [`Repository::commit`]; how
//! fast they are (cache, snapshots, one round trip for several streams) is decided here, from
//! the [`LoadHints`] the service gives per decision and the one table of
//! [`cache::keeping`].
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`Repository`]: load, commit, replay |
//! | `loaded.rs` | [`Loaded`], what a decision's streams are loaded as |
//! | `fold.rs` | folding pages of events onto validated starts |
//! | `cache.rs` | the process cache, and which kinds are cached and snapshotted |
//! | `snapshot.rs` | the snapshot format |
//!
//! "Still last" has one definition, [`crate::store::LastEvent`]: the cache, snapshots and every
//! commit's read set use it, and every store checks it the same way.

mod cache;
mod fold;
mod loaded;
mod snapshot;

pub(crate) use loaded::{Loaded, StreamMeta};

use chrono::{DateTime, Utc};

use self::cache::{StateCache, keeping};
use self::fold::Cursor;
use crate::domain::{AnyState, Change, SCHEMA_VERSION};
use crate::error::Error;
use crate::ids::{AggregateKind, StreamId};
use crate::personal::{KeyCache, personal_fields, seal_payload};
use crate::store::{
    AppendBatch, EventStore, ExpectedVersion, Follow, IdempotencyRecord, LastEvent, NewEvent,
    ReadFrom, StoreError, StoredKey, StreamAppend, StreamRead, load_by_reads,
};

/// Events read per stream per store call while loading: the most a load holds at once.
pub(crate) const LOAD_PAGE: usize = 1_000;

/// What the service knows about how a decision loads, so the repository can fetch faster. Only
/// ever guesses: what the decision asks for is what counts.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoadHints {
    /// Streams the decision will probably ask for once its first ones are loaded (the org a
    /// caller names): read with the first ones, in the same round trip.
    pub(crate) prefetch: Vec<StreamId>,
    /// Streams named by an event of a stream the decision asks for (the code of a passkey
    /// ceremony, named by the user event that started it), read in the same round trip as
    /// their source when the source is read ([`Follow`]; `from` is set when asked).
    pub(crate) follow: Vec<(StreamId, Follow)>,
    /// For every stream of a kind read without a cached state: the stream its events name
    /// (a user's first event names its org).
    pub(crate) follow_kind: Vec<(AggregateKind, Follow)>,
    /// Streams the decision creates whenever it accepts (a code under an id it drew, a
    /// credential id's first claim): a warm load presumes them empty without a lookup — their
    /// append expects no stream, so one that exists after all is a conflict.
    pub(crate) fresh: Vec<StreamId>,
    /// Written streams the same command reads again right after (a code mailed now, whose
    /// delivery is recorded next): cached once written, whatever their kind.
    pub(crate) read_again: Vec<StreamId>,
    /// The decision only reads, and what it reads is validated by the commit of the decision it
    /// feeds (the ceremony a registration's finish checks again): it may stand on the cache.
    pub(crate) read_for_commit: bool,
}

/// Where a load takes its states from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The process cache, without a read; falls back to the store when a stream is not cached.
    Cache,
    /// The store (cached starts validated against it).
    Store,
}

/// Loading, caching, snapshotting and committing, for one service.
#[derive(Debug)]
pub(crate) struct Repository {
    cache: StateCache,
    /// The users' personal data keys this process has looked up.
    keys: KeyCache,
    capacity: usize,
    snapshot_every: u64,
    decide_from_cache: bool,
}

impl Repository {
    /// A repository caching up to `capacity` states, snapshotting every `snapshot_every` events
    /// (0: never), deciding on cached states first when `decide_from_cache`.
    pub(crate) fn new(capacity: usize, snapshot_every: u64, decide_from_cache: bool) -> Self {
        Self {
            cache: StateCache::default(),
            keys: KeyCache::default(),
            capacity,
            snapshot_every,
            decide_from_cache,
        }
    }

    /// Where a command's first load comes from.
    pub(crate) fn first_source(&self) -> Source {
        if self.decide_from_cache && self.capacity > 0 {
            Source::Cache
        } else {
            Source::Store
        }
    }

    fn snapshots<S: EventStore>(&self, store: &S) -> bool {
        self.snapshot_every > 0 && store.capabilities().snapshots
    }

    /// Every stream `asks` names (the decision's and its guard's next asks on what is loaded;
    /// `None` once they have all they need), from `source`.
    pub(crate) async fn load<S: EventStore, A: Fn(&Loaded) -> Option<Vec<StreamId>>>(
        &self,
        store: &S,
        source: Source,
        asks: &A,
        hints: &LoadHints,
    ) -> Result<Loaded, Error> {
        if source == Source::Cache
            && let Some(loaded) = self.warm(asks, hints)
        {
            return Ok(loaded);
        }
        self.cold(store, asks, hints).await
    }

    /// Every stream asked for from the cache alone (fresh streams presumed empty); `None` when
    /// one is not cached.
    fn warm<A: Fn(&Loaded) -> Option<Vec<StreamId>>>(
        &self,
        asks: &A,
        hints: &LoadHints,
    ) -> Option<Loaded> {
        let cache = self.cache.held();
        let mut loaded = Loaded::warm();
        for stream in &hints.prefetch {
            if let Some((state, meta)) = cache.get(stream) {
                loaded.insert(stream.clone(), state, meta);
            }
        }
        let complete = walk(asks, &mut loaded, |stream| {
            if hints.fresh.contains(stream) {
                Some((AnyState::empty(stream.kind()), StreamMeta::default()))
            } else {
                cache.get(stream)
            }
        });
        complete.then_some(loaded)
    }

    /// Every stream asked for from the store, asking again as states arrive.
    async fn cold<S: EventStore, A: Fn(&Loaded) -> Option<Vec<StreamId>>>(
        &self,
        store: &S,
        asks: &A,
        hints: &LoadHints,
    ) -> Result<Loaded, Error> {
        let mut loaded = Loaded::default();
        let mut prefetch = hints.prefetch.clone();
        let mut follow = hints.follow.clone();
        loop {
            let Some(mut missing) = asks(&loaded) else {
                return Ok(loaded);
            };
            // What the decision will ask for next, as far as cached states tell (the org of a
            // cached user, the code of its ceremony), rides along with this read — a stream
            // not cached counts as empty for the guess —; so do the hints' guesses.
            let mut guessed = loaded.clone();
            walk(asks, &mut guessed, |stream| {
                Some(
                    self.cache
                        .get(stream)
                        .unwrap_or_else(|| (AnyState::empty(stream.kind()), StreamMeta::default())),
                )
            });
            let ahead = guessed
                .entries()
                .filter(|entry| loaded.get(&entry.stream).is_none())
                .map(|entry| entry.stream.clone());
            for stream in ahead.chain(prefetch.drain(..)) {
                if !missing.contains(&stream) {
                    missing.push(stream);
                }
            }
            let follow = std::mem::take(&mut follow);
            for cursor in self
                .read_streams(store, missing, follow, &loaded, hints)
                .await?
            {
                loaded.insert(cursor.stream, cursor.state, cursor.meta);
            }
        }
    }

    /// Loads several streams in one store call: each from its cached state, else from its
    /// stored snapshot (kinds that are snapshotted), else from its first event; then the rest
    /// page by page. The streams the hints follow from a stream read here come along.
    async fn read_streams<S: EventStore>(
        &self,
        store: &S,
        mut streams: Vec<StreamId>,
        follows: Vec<(StreamId, Follow)>,
        loaded: &Loaded,
        hints: &LoadHints,
    ) -> Result<Vec<Cursor>, Error> {
        let mut starts: Vec<Option<(AnyState, StreamMeta)>> = streams
            .iter()
            .map(|stream| {
                self.cache
                    .get(stream)
                    .filter(|(state, meta)| state.version() > 0 && meta.last.is_some())
            })
            .collect();
        let snapshots = self.snapshots(store);
        let wanted: Vec<(StreamId, ReadFrom)> = streams
            .iter()
            .zip(&starts)
            .map(|(stream, start)| {
                let from = match start {
                    Some((state, _)) => ReadFrom::After(state.version() - 1),
                    None if snapshots && keeping(stream.kind()).snapshotted => ReadFrom::Snapshot,
                    None => ReadFrom::After(0),
                };
                (stream.clone(), from)
            })
            .collect();
        let uncached_at = |stream: &StreamId| {
            streams
                .iter()
                .zip(&starts)
                .position(|(s, start)| s == stream && start.is_none())
        };
        let mut follow = Vec::new();
        for (kind, by_kind) in &hints.follow_kind {
            // Only when nothing of the kind it names is asked or loaded already.
            let known = streams.iter().any(|s| s.kind() == by_kind.kind)
                || loaded.entries().any(|e| e.stream.kind() == by_kind.kind);
            let source = streams
                .iter()
                .zip(&starts)
                .position(|(s, start)| s.kind() == *kind && start.is_none());
            if let (false, Some(from)) = (known, source) {
                follow.push(by_kind.clone().from_index(from));
            }
        }
        for (source, by_stream) in follows {
            if let Some(from) = uncached_at(&source) {
                follow.push(by_stream.from_index(from));
            }
        }
        let mut reads = if store.capabilities().batched_load {
            store.load_many(&wanted, &follow, LOAD_PAGE).await?
        } else {
            load_by_reads(store, snapshots, &wanted, &follow, LOAD_PAGE).await?
        };
        for read in reads.split_off(streams.len().min(reads.len())) {
            let named = read
                .snapshot
                .as_ref()
                .map(|snapshot| &snapshot.stream)
                .or_else(|| read.events.first().map(|event| &event.stream))
                .cloned();
            if let Some(stream) = named.filter(|named| !streams.contains(named)) {
                streams.push(stream);
                starts.push(None);
                reads.push(read);
            }
        }
        // The users' keys came along: their sealed events open without another round trip.
        for (stream, read) in streams.iter().zip(&reads) {
            if let Some(key) = &read.personal_key {
                self.keys.remember(stream.id(), key);
            }
        }
        let mut cursors = Vec::with_capacity(streams.len());
        let mut pages = Vec::with_capacity(streams.len());
        let mut again = Vec::new();
        for ((stream, start), read) in streams.into_iter().zip(starts).zip(reads) {
            let StreamRead {
                snapshot, events, ..
            } = read;
            let start = match (start, snapshot) {
                (Some(cached), _) => Some(cached),
                (None, Some(stored)) => match self.open_snapshot(store, &stored).await? {
                    Some(start) => Some(start),
                    None => {
                        // Another format, or sealed under a key since destroyed: the page
                        // read starts mid-stream; read it all.
                        again.push(Cursor::new(stream, None, u64::MAX));
                        continue;
                    }
                },
                (None, None) => None,
            };
            cursors.push(Cursor::new(stream, start, u64::MAX));
            pages.push(events);
        }
        let mut done = self.fold_pages(store, cursors, Some(pages)).await?;
        done.extend(self.fold_pages(store, again, None).await?);
        for cursor in &mut done {
            self.snapshot_if_due(store, &cursor.stream, &cursor.state, &mut cursor.meta)
                .await;
        }
        self.remember(done.iter().filter(|c| keeping(c.stream.kind()).when_read));
        Ok(done)
    }

    /// The state and meta a stored snapshot holds (a user's opened with the user's key);
    /// `None` for another format, or a user's sealed snapshot whose key is gone.
    async fn open_snapshot<S: EventStore>(
        &self,
        store: &S,
        stored: &crate::store::Snapshot,
    ) -> Result<Option<(AnyState, StreamMeta)>, StoreError> {
        let key = if snapshot::is_sealed(stored) {
            match self.keys.get(store, stored.stream.id()).await? {
                Some(StoredKey::Key(key)) => Some(key),
                _ => return Ok(None),
            }
        } else {
            None
        };
        Ok(snapshot::decode(stored, key.as_ref()))
    }

    /// Destroys a user's personal data key for good (after its erasure is recorded).
    pub(crate) async fn erase_personal_data<S: EventStore>(
        &self,
        store: &S,
        user_id: &str,
    ) -> Result<(), StoreError> {
        self.keys.erase(store, user_id).await
    }

    /// Caches folded streams.
    fn remember<'a>(&self, cursors: impl Iterator<Item = &'a Cursor>) {
        let entries: Vec<loaded::Entry> = cursors
            .map(|cursor| loaded::Entry {
                stream: cursor.stream.clone(),
                state: cursor.state.clone(),
                meta: cursor.meta,
            })
            .collect();
        self.cache.put_all(&entries, self.capacity);
    }

    /// The states of `streams`, each through the version given (what an idempotent first run
    /// left them at), from the store.
    pub(crate) async fn replay<S: EventStore>(
        &self,
        store: &S,
        streams: Vec<(StreamId, u64)>,
    ) -> Result<Loaded, Error> {
        let cursors = streams
            .into_iter()
            .map(|(stream, version)| Cursor::new(stream, None, version))
            .collect();
        let mut loaded = Loaded::default();
        for cursor in self.fold_pages(store, cursors, None).await? {
            loaded.insert(cursor.stream, cursor.state, cursor.meta);
        }
        Ok(loaded)
    }

    /// Appends `changes` (recorded at `now`, never before their stream's last event) with the
    /// versions and the read set `loaded` was decided on, and `record` if any; then applies
    /// them to `loaded` and caches and snapshots the written streams as [`cache::keeping`] and
    /// `hints` say.
    ///
    /// # Errors
    /// The store's: [`StoreError::Conflict`] when a stream moved since it was read,
    /// [`StoreError::DuplicateKey`] when `record`'s key is taken (nothing written either way).
    pub(crate) async fn commit<S: EventStore>(
        &self,
        store: &S,
        loaded: &mut Loaded,
        changes: &[Change],
        now: DateTime<Utc>,
        record: Option<IdempotencyRecord>,
        hints: &LoadHints,
    ) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let recorded_at = |stream: &StreamId| recorded_at(loaded, stream, now);
        let mut appends: Vec<StreamAppend> = Vec::new();
        for change in changes {
            let (event_type, mut payload) = change
                .event()
                .encode()
                .map_err(|err| StoreError::Internal(err.to_string()))?;
            let stream = change.stream();
            if stream.kind() == AggregateKind::User && !personal_fields(&event_type).is_empty() {
                match self.keys.get_or_create(store, stream.id()).await? {
                    StoredKey::Key(key) => {
                        seal_payload(&key, stream.id(), &event_type, &mut payload)
                    }
                    // The decisions refuse personal data for an erased user; never write it.
                    _ => {
                        return Err(StoreError::Internal(
                            "personal data for a user whose data was erased".into(),
                        ));
                    }
                }
            }
            let event = NewEvent::new(
                event_type,
                SCHEMA_VERSION,
                &payload,
                recorded_at(change.stream()),
            )?;
            match appends.iter_mut().find(|a| &a.stream == change.stream()) {
                Some(append) => append.events.push(event),
                None => appends.push(StreamAppend {
                    stream: change.stream().clone(),
                    expected: ExpectedVersion::from_loaded(loaded.version(change.stream())),
                    events: vec![event],
                }),
            }
        }
        // Every stream read must stand as read; a stream created here needs no more than its
        // expectation of no stream.
        let read_set = loaded
            .read_set()
            .filter(|read| {
                !appends.iter().any(|append| {
                    append.stream == read.stream && append.expected == ExpectedVersion::NoStream
                })
            })
            .collect();
        let lasts: Vec<(StreamId, Option<crate::store::EventId>, DateTime<Utc>)> = appends
            .iter()
            .map(|a| {
                (
                    a.stream.clone(),
                    a.events.last().map(|e| e.id),
                    recorded_at(&a.stream),
                )
            })
            .collect();
        let mut batch = AppendBatch::new(appends)?.with_read_set(read_set)?;
        if let Some(record) = record {
            batch = batch.with_idempotency(record);
        }
        let appended = store.append(batch).await?;
        // The cache's copies of the written streams are replaced below (or dropped): let go of
        // them first, so the changes apply to the loaded states in place instead of to copies.
        self.cache
            .release(lasts.iter().map(|(stream, _, _)| stream));
        for change in changes {
            loaded.apply(change, recorded_at_of(&lasts, change.stream(), now), None);
        }
        let mut kept = Vec::new();
        for ((stream, id, _), appended) in lasts.iter().zip(&appended) {
            let last = id.map(|id| LastEvent {
                version: appended.version,
                id,
            });
            let Some(entry) = loaded.entry_mut(stream) else {
                continue;
            };
            entry.meta.last = last.filter(|last| last.version == entry.state.version());
            if keeping(stream.kind()).when_written || hints.read_again.contains(stream) {
                kept.push(stream.clone());
            }
        }
        for stream in &kept {
            if let Some(entry) = loaded.entry_mut(stream) {
                let (stream, state, mut meta) =
                    (entry.stream.clone(), entry.state.clone(), entry.meta);
                self.snapshot_if_due(store, &stream, &state, &mut meta)
                    .await;
                if let Some(entry) = loaded.entry_mut(&stream) {
                    entry.meta.snapshot_version = meta.snapshot_version;
                }
            }
        }
        self.cache.put_all(
            loaded
                .entries()
                .filter(|entry| kept.contains(&entry.stream)),
            self.capacity,
        );
        Ok(())
    }
}

/// The time of the changes to `stream` as the commit wrote them.
fn recorded_at_of(
    lasts: &[(StreamId, Option<crate::store::EventId>, DateTime<Utc>)],
    stream: &StreamId,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    lasts
        .iter()
        .find(|(s, _, _)| s == stream)
        .map_or(now, |(_, _, at)| *at)
}

/// The envelope time of a new event of `stream`: now, but never before the stream's last event
/// (a node whose clock lags must not make a stream's history go backwards).
fn recorded_at(loaded: &Loaded, stream: &StreamId, now: DateTime<Utc>) -> DateTime<Utc> {
    loaded
        .get(stream)
        .and_then(|entry| entry.meta.changed_at)
        .map_or(now, |last| last.max(now))
}

/// Walks what `asks` names from `loaded` on, answering each stream with `resolve`; whether the
/// asks ended — `false` when `resolve` had no answer for a stream, or a stream held already was
/// asked for again (the decision wants more than states).
fn walk<A: Fn(&Loaded) -> Option<Vec<StreamId>>>(
    asks: &A,
    loaded: &mut Loaded,
    mut resolve: impl FnMut(&StreamId) -> Option<(AnyState, StreamMeta)>,
) -> bool {
    loop {
        let Some(missing) = asks(loaded) else {
            return true;
        };
        let mut answered = true;
        for stream in missing {
            if loaded.get(&stream).is_some() {
                return false;
            }
            match resolve(&stream) {
                Some((state, meta)) => loaded.insert(stream, state, meta),
                None => answered = false,
            }
        }
        if !answered {
            return false;
        }
    }
}
