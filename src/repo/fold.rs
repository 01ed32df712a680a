//! Folding streams from the store, a page of events per stream per store call, so a long
//! history is never in memory whole; a start (cached state or snapshot) is trusted only once its
//! last event is read again and found still stored ([`LastEvent::is`]). While a long stream
//! pages, its progress is snapshotted (at doubling intervals), so a load cut off by its
//! deadline is not lost: every retry starts further on, and one gets through.

use super::cache::keeping;
use super::loaded::StreamMeta;
use super::{LOAD_PAGE, Repository, snapshot};
use crate::domain::{AnyState, Event};
use crate::ids::{AggregateKind, StreamId};
use crate::personal::{self, Opening};
use crate::store::{EventStore, LastEvent, RecordedEvent, StoreError, StoredKey};

/// Where the fold of one stream stands while it loads.
pub(super) struct Cursor {
    pub(super) stream: StreamId,
    pub(super) state: AnyState,
    pub(super) meta: StreamMeta,
    /// Whether the state came from a cache or snapshot whose last event must be read again
    /// and compared before anything is folded onto it.
    validate: bool,
    /// The last version to fold.
    until: u64,
    /// Events folded by this load, and how many it will have folded when it next keeps its
    /// progress.
    folded: u64,
    keep_at: u64,
}

impl Cursor {
    /// A fold of `stream` from `start` (its first event when `None`) through version `until`.
    pub(super) fn new(stream: StreamId, start: Option<(AnyState, StreamMeta)>, until: u64) -> Self {
        let validate = start.is_some();
        let (state, meta) =
            start.unwrap_or_else(|| (AnyState::empty(stream.kind()), StreamMeta::default()));
        Self {
            stream,
            state,
            meta,
            validate,
            until,
            folded: 0,
            keep_at: 0,
        }
    }

    /// The version to read after: the start's own last event again when it must be validated.
    pub(super) fn read_after(&self) -> u64 {
        if self.validate {
            self.state.version().saturating_sub(1)
        } else {
            self.state.version()
        }
    }
}

/// Folds `events` (the next ones of `stream`, in order) onto `state`, sealed personal data
/// opened with `key` (a user's key; `None`: the stream has none).
fn fold(
    stream: &StreamId,
    state: &mut AnyState,
    meta: &mut StreamMeta,
    events: Vec<RecordedEvent>,
    key: Option<&StoredKey>,
) -> Result<(), StoreError> {
    for mut recorded in events {
        let version = recorded.version;
        let corrupt = |reason: String| StoreError::Corrupt {
            stream: stream.clone(),
            version,
            reason,
        };
        if version != state.version() + 1 {
            return Err(corrupt(format!("expected version {}", state.version() + 1)));
        }
        let last = LastEvent::of(&recorded);
        if personal::holds_sealed(&recorded.payload) {
            let Some(key) = key else {
                return Err(corrupt("sealed personal data, and no key for it".into()));
            };
            personal::open_fields(Opening::of(key), stream.id(), &mut recorded.payload)
                .map_err(|err| corrupt(err.to_string()))?;
        }
        let event = Event::decode(
            stream.kind(),
            &recorded.event_type,
            recorded.schema_version,
            recorded.payload,
        )
        .map_err(|err| corrupt(err.to_string()))?;
        state.apply(&event);
        meta.touch(recorded.recorded_at, Some(last));
    }
    Ok(())
}

impl Repository {
    /// Folds each cursor's stream through its `until` version: `pages` are the first page of
    /// each (already read), the rest is read a page per stream per call. Answers the folded
    /// streams.
    pub(super) async fn fold_pages<S: EventStore>(
        &self,
        store: &S,
        mut cursors: Vec<Cursor>,
        mut pages: Option<Vec<Vec<RecordedEvent>>>,
    ) -> Result<Vec<Cursor>, StoreError> {
        let mut done = Vec::with_capacity(cursors.len());
        while !cursors.is_empty() {
            let reads = match pages.take() {
                Some(pages) => pages,
                None => {
                    let wanted: Vec<(StreamId, u64)> = cursors
                        .iter()
                        .map(|cursor| (cursor.stream.clone(), cursor.read_after()))
                        .collect();
                    store.read_many(&wanted, LOAD_PAGE).await?
                }
            };
            let mut next = Vec::new();
            for (mut cursor, mut events) in cursors.into_iter().zip(reads) {
                let more = events.len() == LOAD_PAGE;
                if cursor.validate {
                    let still = matches!(
                        (cursor.meta.last, events.first()),
                        (Some(last), Some(first)) if last.is(first)
                    );
                    if !still {
                        // A restored database, or a stale cache: read it all again.
                        self.cache.evict(&cursor.stream);
                        next.push(Cursor::new(cursor.stream, None, cursor.until));
                        continue;
                    }
                    events.remove(0);
                    cursor.validate = false;
                }
                let until = cursor.until;
                let reached = events.last().is_some_and(|last| last.version >= until);
                events.retain(|event| event.version <= until);
                cursor.folded += events.len() as u64;
                let key = self.key_for(store, &cursor.stream, &events).await?;
                fold(
                    &cursor.stream,
                    &mut cursor.state,
                    &mut cursor.meta,
                    events,
                    key.as_ref(),
                )?;
                if more && !reached {
                    // Progress of a long stream, kept at doubling intervals (after 1, 2, 4 …
                    // pages): a retry starts from at least half of what this load folded, and
                    // a million events cost ten snapshot writes, not a thousand durable ones.
                    if cursor.folded >= cursor.keep_at {
                        self.snapshot_if_due(
                            store,
                            &cursor.stream,
                            &cursor.state,
                            &mut cursor.meta,
                        )
                        .await;
                        cursor.keep_at = cursor.folded.saturating_mul(2);
                    }
                    next.push(cursor);
                } else {
                    done.push(cursor);
                }
            }
            cursors = next;
        }
        Ok(done)
    }

    /// The key a page of `stream`'s events needs opened, if it holds sealed personal data.
    async fn key_for<S: EventStore>(
        &self,
        store: &S,
        stream: &StreamId,
        events: &[RecordedEvent],
    ) -> Result<Option<StoredKey>, StoreError> {
        if stream.kind() != AggregateKind::User
            || !events.iter().any(|e| personal::holds_sealed(&e.payload))
        {
            return Ok(None);
        }
        self.keys.get(store, stream.id()).await
    }

    /// Stores a snapshot of a state that has grown by the configured number of events since the
    /// last one. Only ever an optimization: a failure is logged and ignored.
    pub(super) async fn snapshot_if_due<S: EventStore>(
        &self,
        store: &S,
        stream: &StreamId,
        state: &AnyState,
        meta: &mut StreamMeta,
    ) {
        if !self.snapshots(store) || !snapshot::due(stream, state, meta, self.snapshot_every) {
            return;
        }
        // A user's snapshot is sealed under the user's key. Unsealed only when nothing personal
        // can be in it: the user never had a key (events from before sealing, as readable as
        // the snapshot) or the state forgot it on erasure.
        let key = match state {
            AnyState::User(user) => match self.keys.get(store, stream.id()).await {
                Ok(Some(StoredKey::Key(key))) => Some(key),
                Ok(None) => None,
                Ok(Some(_)) if user.personal_data_erased() => None,
                _ => return,
            },
            _ => None,
        };
        let Some(snapshot) = snapshot::encode(stream, state, meta, key.as_ref()) else {
            return;
        };
        match store.write_snapshot(snapshot).await {
            Ok(()) => {
                meta.snapshot_version = state.version();
                if keeping(stream.kind()).when_read {
                    self.cache.mark_snapshot(stream, meta.snapshot_version);
                }
            }
            Err(_err) => {
                #[cfg(feature = "tracing")]
                tracing::warn!(stream = %stream, error = %_err, "snapshot not stored");
            }
        }
    }
}
