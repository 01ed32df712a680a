//! The one execution mechanism: load what a decision (and its guard) asks for, authorize,
//! decide, append with the versions decided on; on a conflict, yield and decide again on fresh
//! state, a bounded number of times.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use serde_json::{Value, json};

use super::PasskeyLinks;
use super::access::Guard;
use super::cache::{CacheEntry, StateCache};
use super::idempotency;
use super::snapshot;
use crate::domain::{
    AnyState, Change, Ctx, Decide, Event, EventStamp, Loaded, Outcome, SCHEMA_VERSION, StreamMeta,
    USER_ORG_FIELD, UserState, View, decide_loaded,
};
use crate::error::{Error, catalogue};
use crate::ids::{AggregateKind, StreamId};
use crate::ports::authorizer::Authorizer;
use crate::ports::clock::Clock;
use crate::ports::notifier::Notifier;
use crate::ports::random::RandomSource;
use crate::ports::relying_party::RelyingParty;
use crate::store::{
    AppendBatch, EventStore, ExpectedVersion, Follow, IdempotencyRecord, NewEvent, Payload,
    ReadFrom, RecordedEvent, Seen, StoreError, StreamAppend,
};
use crate::wire::{Details, DetailsResponse};

pub(crate) fn internal(message: impl Into<String>) -> Error {
    Error::catalogued(catalogue::INTERNAL, message.into())
}

/// A retry under an idempotency key whose first run drew ids or a secret this process cannot
/// reproduce.
pub(crate) fn result_gone() -> Error {
    Error::catalogued(
        catalogue::IDEMPOTENT_RESULT_GONE,
        "the first run under this idempotency key succeeded in another process; its answer \
         (a new id or a link) cannot be shown again: run the command again with a new key",
    )
}

/// The states after a decision was appended.
pub(crate) struct Executed {
    pub(crate) loaded: Loaded,
    /// Under an idempotency key the store had recorded already: what the first run recorded
    /// (the states are as of its events).
    pub(crate) recalled: Option<Value>,
}

impl Executed {
    /// `details` of `stream`, from its last applied event.
    pub(crate) fn details(&self, stream: &StreamId) -> Result<Details, Error> {
        let entry = self.loaded.get(stream).ok_or_else(|| {
            if self.recalled.is_some() {
                // The first run wrote other streams: its answer depended on values this
                // process cannot reproduce.
                result_gone()
            } else {
                internal(format!("no details for stream {stream}"))
            }
        })?;
        let resource_owner = match stream.kind() {
            AggregateKind::Org => Some(stream.id().to_owned()),
            _ => entry
                .state
                .resource_owner()
                .map(|org| org.as_str().to_owned()),
        };
        match (entry.meta.created_at, entry.meta.changed_at, resource_owner) {
            (Some(creation_date), Some(change_date), Some(resource_owner)) => Ok(Details {
                sequence: entry.state.version(),
                creation_date,
                change_date,
                resource_owner,
            }),
            _ => Err(internal(format!("no details for stream {stream}"))),
        }
    }

    pub(crate) fn view(&self) -> View<'_> {
        View::new(&self.loaded)
    }

    /// A text the first run recorded in its outcome (on a retry under an idempotency key).
    pub(crate) fn recalled_text(&self, field: &str) -> Option<&str> {
        self.recalled.as_ref()?.get(field)?.as_str()
    }
}

impl<S, N, A, C, R, P> PasskeyLinks<S, N, A, C, R, P>
where
    S: EventStore,
    N: Notifier,
    A: Authorizer,
    C: Clock,
    R: RandomSource,
    P: RelyingParty,
{
    /// Loads, authorizes, decides and appends `decision`; conflicts are decided again.
    pub(crate) async fn execute<D: Decide>(
        &self,
        decision: &D,
        guard: &Guard,
    ) -> Result<Executed, Error> {
        self.execute_recording(decision, guard, || Value::Null)
            .await
    }

    /// As [`Self::execute`]; under an idempotency key not used yet, the append records the key
    /// with `outcome` (what the command needs to answer a retry, never a secret; made only
    /// under a key), and a key the store holds already answers from the first run instead of
    /// deciding again.
    pub(crate) async fn execute_recording<D: Decide>(
        &self,
        decision: &D,
        guard: &Guard,
        outcome: impl Fn() -> Value,
    ) -> Result<Executed, Error> {
        let keyed = idempotency::pending();
        let attempts = self.config.max_attempts.max(1);
        // First, with a warm cache, decide on what is known without reading: the append then
        // requires every event seen to still be last. Anything but a change that goes through
        // is decided again on what the store holds.
        let mut warm = self.config.decide_from_cache;
        let mut attempt = 0;
        loop {
            let known = if warm {
                warm = false;
                self.known(decision, guard)
            } else {
                None
            };
            let from_cache = known.is_some();
            let (mut loaded, seen) = match known {
                Some(known) => known,
                None => {
                    if attempt == attempts {
                        break;
                    }
                    attempt += 1;
                    (Box::pin(self.load(decision, guard)).await?, Vec::new())
                }
            };
            let now = self.now();
            match self.authorize(guard, &loaded).await {
                Ok(()) => {}
                Err(_) if from_cache => continue,
                Err(err) => return Err(err),
            }
            let ctx = Ctx {
                now,
                policy: &self.config.policy,
                links: &self.config.links,
            };
            let decided = decide_loaded(decision, &loaded, &ctx)
                .map_err(|_| internal("a decision asked for a stream after loading"))?;
            let (changes, refusal) = match decided {
                // A refusal, or nothing to write (so nothing would check what was seen): ask
                // the store.
                Outcome::Accept(changes) if from_cache && changes.is_empty() => continue,
                Outcome::Reject(_) | Outcome::RecordAndRefuse(..) if from_cache => continue,
                Outcome::Accept(changes) => (changes, None),
                Outcome::Reject(error) => {
                    // A retry finds its own first run's effects (a used code, a locked user):
                    // answer as the first run did.
                    if let Some((key, op)) = &keyed
                        && let Some(replayed) = Box::pin(self.replay(key, op)).await?
                    {
                        return replayed;
                    }
                    return Err(error.into());
                }
                Outcome::RecordAndRefuse(changes, error) => (changes, Some(error)),
            };
            let record = keyed
                .as_ref()
                .filter(|_| !changes.is_empty())
                .map(|(key, op)| IdempotencyRecord {
                    key: key.clone(),
                    outcome: json!({
                        "op": op,
                        "outcome": outcome(),
                        "refusal": refusal.as_ref().map(|refusal| {
                            let error = Error::from(refusal.clone());
                            json!({"id": error.id(), "message": error.message()})
                        }),
                    }),
                });
            let recorded = record.is_some();
            let read_again = decision.read_again();
            // Decided once per written stream, under one lock.
            let kept: Vec<&StreamId> = {
                let cache = self.cache.held();
                let mut kept = Vec::with_capacity(changes.len());
                for stream in changes.iter().map(Change::stream) {
                    if !kept.contains(&stream)
                        && (read_again.contains(stream) || cache.keeps_written(stream))
                    {
                        kept.push(stream);
                    }
                }
                kept
            };
            let keeps = |stream: &StreamId| kept.contains(&stream);
            let appended = match self
                .append(&loaded, &changes, now, record, seen, &keeps)
                .await
            {
                Ok(appended) => appended,
                Err(StoreError::Conflict { .. }) => {
                    // Decide again on fresh state: the next load re-reads each cached state's
                    // last event and what follows it, so it catches up with the writer that won
                    // (and a state the store no longer holds is read afresh). Let that writer
                    // finish first.
                    YieldNow(false).await;
                    continue;
                }
                Err(StoreError::DuplicateKey) => {
                    let replayed = match &keyed {
                        Some((key, op)) => Box::pin(self.replay(key, op)).await?,
                        None => None,
                    };
                    return replayed
                        .unwrap_or_else(|| Err(internal("a repeated key without its record")));
                }
                Err(other) => return Err(other.into()),
            };
            if recorded {
                idempotency::mark_used();
            }
            // The cache's states of the written streams are replaced below: let go of them
            // first, so the changes apply to the loaded states in place instead of to copies.
            self.cache.release(&kept);
            for change in &changes {
                loaded.apply(change, recorded_at(&loaded, change.stream(), now));
            }
            let written = || {
                kept.iter().filter_map(|stream| {
                    let last = appended
                        .iter()
                        .flatten()
                        .find(|(written, _)| written == stream)
                        .map(|(_, seen)| seen);
                    Some((loaded.get(stream)?, last))
                })
            };
            self.cache.put_all(
                written()
                    .map(|(entry, last)| (&entry.stream, &entry.state, entry.meta, last.cloned())),
                self.config.state_cache_capacity,
            );
            for (entry, last) in written() {
                self.snapshot_if_due(&entry.stream, &entry.state, entry.meta, last.map(|l| &**l))
                    .await;
            }
            if let Some(refusal) = refusal {
                return Err(refusal.into());
            }
            return Ok(Executed {
                loaded,
                recalled: None,
            });
        }
        Err(Error::catalogued(
            catalogue::TOO_MANY_CONFLICTS,
            "too many concurrent changes, retry",
        ))
    }

    /// Every stream `decision` (and its guard) asks for, from the cache alone — streams the
    /// decision creates whenever it accepts ([`Decide::is_fresh`]) presumed empty — with the last
    /// events seen; `None` when something is not cached with its last event.
    fn known<D: Decide>(&self, decision: &D, guard: &Guard) -> Option<(Loaded, Vec<Arc<Seen>>)> {
        let mut seen = Vec::new();
        let cache = self.cache.held();
        // What the decision will probably ask for once its first streams are in (the org a
        // caller names), taken now when cached: one walk of its asks fewer.
        let mut loaded = Loaded::default();
        for stream in decision.prefetch() {
            if let Some((state, meta, last)) = cache.known(&stream) {
                seen.push(last);
                loaded.insert(stream, state, meta);
            }
        }
        let (loaded, complete) = asks(decision, guard, loaded, |stream| {
            // A stream the decision creates is presumed empty without a lookup: were it cached
            // after all, its append (expecting no stream) conflicts and is decided again.
            if decision.is_fresh(stream) {
                Some((AnyState::empty(stream.kind()), StreamMeta::default()))
            } else if let Some((state, meta, last)) = cache.known(stream) {
                seen.push(last);
                Some((state, meta))
            } else {
                None
            }
        });
        complete.then_some((loaded, seen))
    }

    /// The cached state of a user, with its last event known, when decisions may be taken on
    /// cached state at all ([`crate::Config::decide_from_cache`]).
    pub(crate) fn known_user(&self, user_id: &crate::ids::UserId) -> Option<Arc<UserState>> {
        if !self.config.decide_from_cache {
            return None;
        }
        match self.cache.known(&StreamId::user(user_id))? {
            (AnyState::User(user), _, _) => Some(user),
            _ => None,
        }
    }

    /// Under an idempotency key not used yet: the first run's answer, if the store recorded
    /// one (for commands that find out they are a retry before deciding anything).
    pub(crate) async fn recall_first_run(&self) -> Result<Option<Result<Executed, Error>>, Error> {
        match idempotency::pending() {
            Some((key, op)) => self.replay(&key, op).await,
            None => Ok(None),
        }
    }

    /// What the first run under `key` did, if the store recorded it: its refusal, or the states
    /// of the streams it wrote as of its events, with its outcome. `None` if the key is unknown.
    async fn replay(&self, key: &str, op: &str) -> Result<Option<Result<Executed, Error>>, Error> {
        let Some(recalled) = self.store.recall(key).await? else {
            return Ok(None);
        };
        idempotency::mark_used();
        let record = recalled.outcome;
        if record.get("op").and_then(Value::as_str) != Some(op) {
            return Ok(Some(Err(Error::catalogued(
                catalogue::IDEMPOTENCY_KEY_REUSED,
                "this idempotency key was used for another command",
            ))));
        }
        if let Some(refusal) = record.get("refusal").filter(|r| !r.is_null()) {
            let entry = refusal
                .get("id")
                .and_then(Value::as_str)
                .and_then(catalogue::by_id)
                .ok_or_else(|| internal("an idempotency record with an unknown refusal"))?;
            let message = refusal
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            return Ok(Some(Err(Error::catalogued(entry, message))));
        }
        // As of the first run: each stream it wrote, through the version it left it at.
        let cursors = recalled
            .streams
            .into_iter()
            .map(|(stream, version)| Cursor::new(stream, None, version))
            .collect();
        let mut loaded = Loaded::default();
        for (stream, state, meta) in self.fold_streams(cursors).await? {
            loaded.insert(stream, state, meta);
        }
        Ok(Some(Ok(Executed {
            loaded,
            recalled: Some(record.get("outcome").cloned().unwrap_or(Value::Null)),
        })))
    }

    /// Runs a decision whose answer is the `details` of `stream`.
    pub(crate) async fn execute_for_details<D: Decide>(
        &self,
        decision: &D,
        guard: &Guard,
        stream: &StreamId,
    ) -> Result<DetailsResponse, Error> {
        let executed = self.execute(decision, guard).await?;
        Ok(DetailsResponse {
            details: executed.details(stream)?,
        })
    }

    /// Loads every stream the decision and its guard ask for, asking again as states arrive.
    async fn load<D: Decide>(&self, decision: &D, guard: &Guard) -> Result<Loaded, Error> {
        let mut loaded = Loaded::default();
        let mut prefetch = decision.prefetch();
        let mut follow = decision.follow();
        loop {
            let Some(mut missing) = next_ask(decision, guard, &loaded) else {
                return Ok(loaded);
            };
            // What the decision will ask for next, as far as cached states tell (the org of a
            // cached user, the code of its ceremony), rides along with this read — a stream
            // not cached counts as empty for the guess —; so do the decision's own guesses.
            let (guessed, _) = asks(decision, guard, loaded.clone(), |stream| {
                Some(self.cache.get(stream).map_or_else(
                    || (AnyState::empty(stream.kind()), StreamMeta::default()),
                    |(state, meta, _)| (state, meta),
                ))
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
            for (stream, state, meta) in self.load_streams(missing, follow, &loaded).await? {
                loaded.insert(stream, state, meta);
            }
        }
    }

    /// Loads several streams in one store call: each from its cached state, else from its
    /// stored snapshot (org and user streams), else from its first event; a page of events per
    /// stream per call, so a long stream never sits in memory whole. A start is trusted only
    /// if the store still holds its last event (same version, position, time and content; a
    /// database restored to an earlier point fails this): a cache never trusts a version
    /// number alone.
    ///
    /// The org of a user the cache does not know is read in the same call, named by the
    /// user's first event (decisions that read a user read its org next), unless an org is
    /// asked for or loaded already; so is each stream the decision follows from a stream read
    /// here ([`Decide::follow`]). A prediction is only a read: the decision still asks for
    /// what it needs, and anything else is read then.
    async fn load_streams(
        &self,
        mut streams: Vec<StreamId>,
        decision_follows: Vec<(StreamId, Follow)>,
        loaded: &Loaded,
    ) -> Result<Vec<(StreamId, AnyState, StreamMeta)>, Error> {
        let cached = |stream: &StreamId| {
            self.cache.get(stream).filter(|(state, meta, last)| {
                state.version() > 0 && (last.is_some() || meta.last_event.is_some())
            })
        };
        let mut starts: Vec<Option<CacheEntry>> = streams.iter().map(cached).collect();
        let snapshots = self.config.snapshot_every > 0;
        let wanted: Vec<(StreamId, ReadFrom)> = streams
            .iter()
            .zip(&starts)
            .map(|(stream, start)| {
                let from = match start {
                    Some((state, _, _)) => ReadFrom::After(state.version() - 1),
                    None if snapshots && snapshot::taken_of(stream) => ReadFrom::Snapshot,
                    None => ReadFrom::After(0),
                };
                (stream.clone(), from)
            })
            .collect();
        // A user the cache does not know names its org in its first event: the store reads
        // that org in the same call.
        let org_asked = streams.iter().any(|s| s.kind() == AggregateKind::Org)
            || loaded
                .entries()
                .any(|e| e.stream.kind() == AggregateKind::Org);
        let uncached_at = |stream: &StreamId| {
            streams
                .iter()
                .zip(&starts)
                .position(|(s, start)| s == stream && start.is_none())
        };
        let users_org = streams
            .iter()
            .zip(&starts)
            .position(|(stream, start)| stream.kind() == AggregateKind::User && start.is_none())
            .filter(|_| !org_asked)
            .map(|user| Follow::new(user, USER_ORG_FIELD, AggregateKind::Org));
        let follow: Vec<Follow> = users_org
            .into_iter()
            .chain(decision_follows.into_iter().filter_map(|(source, follow)| {
                uncached_at(&source).map(|from| Follow { from, ..follow })
            }))
            .collect();
        let mut reads = self.store.load_many(&wanted, &follow, LOAD_PAGE).await?;
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
        let mut cursors = Vec::with_capacity(streams.len());
        let mut pages = Vec::with_capacity(streams.len());
        let mut again = Vec::new();
        for ((stream, start), read) in streams.into_iter().zip(starts).zip(reads) {
            let start = match (start, &read.snapshot) {
                (Some(cached), _) => Some(cached),
                (None, Some(stored)) => match snapshot::decode(stored) {
                    Some((state, meta)) => Some((state, meta, None)),
                    None => {
                        // Another format: the page read starts mid-stream; read it all.
                        again.push(Cursor::new(stream, None, u64::MAX));
                        continue;
                    }
                },
                (None, None) => None,
            };
            cursors.push(Cursor::new(stream, start, u64::MAX));
            pages.push(read.events);
        }
        let (mut done, mut next) = self.fold_round(cursors, pages)?;
        next.extend(again);
        done.extend(self.fold_streams(next).await?);
        for (stream, state, meta) in &done {
            self.snapshot_if_due(stream, state, *meta, None).await;
        }
        Ok(done)
    }

    /// Folds each cursor's stream from its start through its `until` version, a page of
    /// events per stream per store call.
    async fn fold_streams(
        &self,
        mut cursors: Vec<Cursor>,
    ) -> Result<Vec<(StreamId, AnyState, StreamMeta)>, Error> {
        let mut loaded = Vec::with_capacity(cursors.len());
        while !cursors.is_empty() {
            let wanted: Vec<(StreamId, u64)> = cursors
                .iter()
                .map(|cursor| (cursor.stream.clone(), cursor.read_after()))
                .collect();
            let reads = self.store.read_many(&wanted, LOAD_PAGE).await?;
            let (done, next) = self.fold_round(cursors, reads)?;
            loaded.extend(done);
            cursors = next;
        }
        Ok(loaded)
    }

    /// Folds one page of events onto each cursor: the streams done, and the cursors that need
    /// another page (or, their start no longer stored, a read from the first event).
    #[allow(clippy::type_complexity)]
    fn fold_round(
        &self,
        cursors: Vec<Cursor>,
        pages: Vec<Vec<RecordedEvent>>,
    ) -> Result<(Vec<(StreamId, AnyState, StreamMeta)>, Vec<Cursor>), Error> {
        let mut done = Vec::with_capacity(cursors.len());
        let mut next = Vec::new();
        for (mut cursor, mut events) in cursors.into_iter().zip(pages) {
            let more = events.len() == LOAD_PAGE;
            if cursor.validate {
                if !still_stored(&cursor, events.first()) {
                    // A restored database, or a stale cache: read it all again.
                    self.cache.evict(&cursor.stream);
                    next.push(Cursor::new(cursor.stream, None, cursor.until));
                    continue;
                }
                let validated = events.remove(0);
                cursor.validate = false;
                if events.is_empty() {
                    // The stamp a snapshot of this start would need (folding names the next
                    // last event itself).
                    cursor.meta.last_event = Some(EventStamp::new(
                        validated.position,
                        &validated.event_type,
                        &validated.payload,
                    ));
                    // Nothing to fold: keep the start (a snapshot's, say) cached with its event.
                    let seen = StateCache::cacheable(&cursor.stream)
                        .then(|| Arc::new(Seen::of(&validated)));
                    self.cache.put(
                        &cursor.stream,
                        &cursor.state,
                        cursor.meta,
                        seen,
                        self.config.state_cache_capacity,
                    );
                }
            }
            let until = cursor.until;
            let reached = events.last().is_some_and(|last| last.version >= until);
            events.retain(|event| event.version <= until);
            let (state, meta) = self.fold(&cursor.stream, cursor.state, cursor.meta, events)?;
            if more && !reached {
                next.push(Cursor {
                    state,
                    meta,
                    last: None,
                    ..cursor
                });
            } else {
                done.push((cursor.stream, state, meta));
            }
        }
        Ok((done, next))
    }

    /// Stores a snapshot of an org or user state that has grown by the configured number of
    /// events since the last one. Only ever an optimization: a failure is logged and ignored.
    /// `last` is the state's last event when only the event names it (after an append): the
    /// snapshot's stamp is taken from it.
    async fn snapshot_if_due(
        &self,
        stream: &StreamId,
        state: &AnyState,
        mut meta: StreamMeta,
        last: Option<&Seen>,
    ) {
        if !snapshot::due(state, &meta, self.config.snapshot_every) {
            return;
        }
        if let (None, Some(last)) = (meta.last_event, last) {
            // The stamp's digest walks the payload's value (as stored snapshots expect).
            let payload = last.payload.to_value();
            meta.last_event = Some(EventStamp::new(last.position, &last.event_type, &payload));
        }
        let Some(snapshot) = snapshot::encode(stream, state, &meta) else {
            return;
        };
        match self.store.write_snapshot(snapshot).await {
            Ok(()) => {
                meta.snapshot_version = state.version();
                self.cache.mark_snapshot(stream, meta.snapshot_version);
            }
            Err(_err) => {
                #[cfg(feature = "tracing")]
                tracing::warn!(stream = %stream, error = %_err, "snapshot not stored");
            }
        }
    }

    fn fold(
        &self,
        stream: &StreamId,
        mut state: AnyState,
        mut meta: StreamMeta,
        events: Vec<RecordedEvent>,
    ) -> Result<(AnyState, StreamMeta), Error> {
        if events.is_empty() {
            return Ok((state, meta));
        }
        let count = events.len();
        let mut seen = None;
        for (i, recorded) in events.into_iter().enumerate() {
            let last = i + 1 == count;
            if last && StateCache::cacheable(stream) {
                seen = Some(Arc::new(Seen::of(&recorded)));
            }
            let version = recorded.version;
            let corrupt = |reason: String| StoreError::Corrupt {
                stream: stream.clone(),
                version,
                reason,
            };
            if version != state.version() + 1 {
                return Err(corrupt(format!("expected version {}", state.version() + 1)).into());
            }
            let stamp = last.then(|| {
                EventStamp::new(recorded.position, &recorded.event_type, &recorded.payload)
            });
            let event = Event::decode(
                stream.kind(),
                &recorded.event_type,
                recorded.schema_version,
                recorded.payload,
            )
            .map_err(|err| corrupt(err.to_string()))?;
            state.apply(&event);
            meta.touch(recorded.recorded_at, stamp);
        }
        self.cache
            .put(stream, &state, meta, seen, self.config.state_cache_capacity);
        Ok((state, meta))
    }

    /// Appends the changes (with the idempotency record, if any); answers each written stream
    /// the cache `keeps` with its last event. The event itself names it, so no digest is taken
    /// here: a snapshot, the one place that needs the digest, takes it from that event.
    async fn append<'c>(
        &self,
        loaded: &Loaded,
        changes: &'c [Change],
        now: DateTime<Utc>,
        record: Option<IdempotencyRecord>,
        seen: Vec<Arc<Seen>>,
        keeps: &(dyn Fn(&StreamId) -> bool + Sync),
    ) -> Result<Vec<Option<(&'c StreamId, Arc<Seen>)>>, StoreError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let mut appends: Vec<StreamAppend> = Vec::with_capacity(changes.len());
        for change in changes {
            let (event_type, payload) = change
                .event()
                .encode()
                .map_err(|err| StoreError::Internal(err.to_string()))?;
            let event = NewEvent {
                event_type,
                schema_version: SCHEMA_VERSION,
                payload: Payload::new(&payload),
                recorded_at: recorded_at(loaded, change.stream(), now),
            };
            match appends.iter_mut().find(|a| &a.stream == change.stream()) {
                Some(append) => append.events.push(event),
                None => appends.push(StreamAppend {
                    stream: change.stream().clone(),
                    expected: ExpectedVersion::from_loaded(loaded.version(change.stream())),
                    events: vec![event],
                }),
            }
        }
        // The event that ends each stream the cache keeps, as the next decision will name it
        // (its version and position are the store's answer).
        let mut lasts: Vec<Option<(&StreamId, Arc<Seen>)>> = appends
            .iter()
            .map(|append| {
                if !keeps(&append.stream) {
                    return None;
                }
                let stream = changes
                    .iter()
                    .map(Change::stream)
                    .find(|s| **s == append.stream)?;
                let last = append.events.last()?;
                let seen = Seen {
                    stream: stream.clone(),
                    version: 0,
                    position: 0,
                    event_type: last.event_type.clone(),
                    payload: last.payload.clone(),
                    recorded_at: last.recorded_at,
                };
                Some((stream, Arc::new(seen)))
            })
            .collect();
        let mut batch = AppendBatch::new(appends)?.with_seen(seen);
        if let Some(record) = record {
            batch = batch.with_idempotency(record);
        }
        let appended = self.store.append(batch).await?;
        for (named, appended) in lasts.iter_mut().zip(appended) {
            // Not shared yet: named in place.
            if let Some(seen) = named.as_mut().and_then(|(_, seen)| Arc::get_mut(seen)) {
                seen.version = appended.version;
                seen.position = appended.position;
            }
        }
        Ok(lasts)
    }
}

/// The streams `decision` or its guard asks for next on `loaded`; `None` once both have all
/// they need.
fn next_ask<D: Decide>(decision: &D, guard: &Guard, loaded: &Loaded) -> Option<Vec<StreamId>> {
    let view = View::new(loaded);
    match (decision.state(&view), guard.state(&view)) {
        (Ok(_), Ok(())) => None,
        (Err(missing), _) | (Ok(_), Err(missing)) => Some(missing.into_streams()),
    }
}

/// Walks what `decision` and its guard ask for, from `loaded` on, answering each stream asked
/// with `resolve`: the states gathered (in the order asked), and whether the asks ended —
/// `false` when `resolve` had no answer for a stream, or a stream held already was asked for
/// again (the decision wants more than states).
fn asks<D: Decide>(
    decision: &D,
    guard: &Guard,
    mut loaded: Loaded,
    mut resolve: impl FnMut(&StreamId) -> Option<(AnyState, StreamMeta)>,
) -> (Loaded, bool) {
    loop {
        let Some(missing) = next_ask(decision, guard, &loaded) else {
            return (loaded, true);
        };
        let mut answered = true;
        for stream in missing {
            if loaded.get(&stream).is_some() {
                return (loaded, false);
            }
            match resolve(&stream) {
                Some((state, meta)) => loaded.insert(stream, state, meta),
                None => answered = false,
            }
        }
        if !answered {
            return (loaded, false);
        }
    }
}

/// Events read per stream per store call while loading: the most a load holds at once.
pub(crate) const LOAD_PAGE: usize = 1_000;

/// Where the fold of one stream stands while it loads.
struct Cursor {
    stream: StreamId,
    state: AnyState,
    meta: StreamMeta,
    /// Whether the state came from a cache or snapshot whose last event must be re-read and
    /// compared before anything is folded onto it.
    validate: bool,
    /// That last event, when the cache kept it (a snapshot names it by its stamp alone).
    last: Option<Arc<Seen>>,
    /// The last version to fold.
    until: u64,
}

impl Cursor {
    fn new(stream: StreamId, start: Option<CacheEntry>, until: u64) -> Self {
        let validate = start.is_some();
        let (state, meta, last) =
            start.unwrap_or_else(|| (AnyState::empty(stream.kind()), StreamMeta::default(), None));
        Self {
            stream,
            state,
            meta,
            validate,
            last,
            until,
        }
    }

    /// The version to read after: the start's own last event again when it must be validated.
    fn read_after(&self) -> u64 {
        if self.validate {
            self.state.version() - 1
        } else {
            self.state.version()
        }
    }
}

/// Whether the store still holds the last event of the cursor's start: same version, same
/// global position, same time, same content — compared whole when the cache kept the event, by
/// its stamp for a snapshot.
fn still_stored(cursor: &Cursor, first: Option<&RecordedEvent>) -> bool {
    first.is_some_and(|event| {
        event.version == cursor.state.version()
            && Some(event.recorded_at) == cursor.meta.changed_at
            && match &cursor.last {
                Some(last) => last.matches(event),
                None => {
                    cursor.meta.last_event
                        == Some(EventStamp::new(
                            event.position,
                            &event.event_type,
                            &event.payload,
                        ))
                }
            }
    })
}

/// The envelope time of a new event of `stream`: now, but never before the stream's last event
/// (a node whose clock lags must not make a stream's history go backwards).
fn recorded_at(loaded: &Loaded, stream: &StreamId, now: DateTime<Utc>) -> DateTime<Utc> {
    loaded
        .get(stream)
        .and_then(|entry| entry.meta.changed_at)
        .map_or(now, |last| last.max(now))
}

/// Yields to the executor once (runtime-agnostic): a retry after a conflict must not starve the
/// task that won, which may share this worker thread.
struct YieldNow(bool);

impl std::future::Future for YieldNow {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}
