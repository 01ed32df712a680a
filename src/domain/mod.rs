//! The pure, synchronous domain: aggregates as event streams, states as folds of their events,
//! and decisions as functions from loaded states and injected inputs to new events.
//!
//! Every decision is one type implementing [`Decide`]. Its [`Decide::state`] is the only way it
//! sees any stream: it asks a [`View`] for the states it needs, and the view answers
//! [`Missing`] for a stream that is not loaded yet. The service loads what is missing and asks
//! again (a user's org is known only once the user is loaded); the given/when/then harness does
//! the same from its history. So what a decision reads and what is loaded for it are one
//! declaration, and a stream it did not ask for can never reach [`Decide::decide`].

pub(crate) mod code;
mod codec;
pub(crate) mod credential;
mod decisions;
mod error;
pub(crate) mod org;
pub(crate) mod passkey;
#[cfg(test)]
mod test_support;
pub(crate) mod text;
pub(crate) mod user;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::ids::{AggregateKind, CodeId, OrgId, StreamId, UserId};
use crate::link::LinkConfig;
use crate::policy::Policy;
pub use code::{CodeEvent, CodeState, CodeStatus, DeliveryFailure, Issued};
pub use codec::{DecodeError, Event, SCHEMA_VERSION};
pub use credential::{
    CredentialEvent, CredentialId, CredentialState, MAX_CREDENTIAL_ID_LEN, MAX_PUBLIC_KEY_LEN,
    PublicKey,
};
pub use decisions::{
    AddHuman, AddMachine, AddOrg, ChangeOrg, ChangeUser, CheckCode, Delivery, DeliveryOutcome,
    FinishPasskeyRegistration, IssueCode, LookUpCredential, OrgChange, PendingDelivery,
    PresentCode, ReadCeremony, ReadCode, ReadDelivery, ReadOrg, ReadUser, ReadUserAndOrg,
    RecordDelivery, RecordPasskeyUse, RemovePasskey, RevokeCode, StartPasskeyRegistration,
    UserChange, is_live, pending_delivery,
};
pub use error::{CheckFailure, DomainError};
pub use org::{OrgEvent, OrgState, OrgStatus};
pub use passkey::{
    CEREMONY_LIFETIME, Ceremony, CeremonyFailure, CeremonyState, MAX_OPEN_CEREMONIES, MAX_PASSKEYS,
    Passkey, PasskeyState, RegisteredPasskey, VerifiedCredential,
};
pub use text::{Email, MAX_EMAIL_LEN, MAX_NAME_LEN, validate_text};
pub use user::{
    CEREMONY_CODE_FIELD, CEREMONY_PASSKEY_FIELD, CEREMONY_STARTED, MAX_LANGUAGE_LEN,
    USER_ORG_FIELD, UserEvent, UserKind, UserState, UserStatus,
};

/// One new event for one stream. Built only through the typed constructors, so the stream's
/// kind always matches the event's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    stream: StreamId,
    event: Event,
}

impl Change {
    /// An event of an org stream.
    pub fn org(id: &OrgId, event: OrgEvent) -> Self {
        Self {
            stream: StreamId::org(id),
            event: Event::Org(event),
        }
    }

    /// An event of a user stream.
    pub fn user(id: &UserId, event: UserEvent) -> Self {
        Self {
            stream: StreamId::user(id),
            event: Event::User(event),
        }
    }

    /// An event of a code stream.
    pub fn code(id: &CodeId, event: CodeEvent) -> Self {
        Self {
            stream: StreamId::code(id),
            event: Event::Code(event),
        }
    }

    /// An event of a credential claim stream.
    pub fn credential(id: &CredentialId, event: CredentialEvent) -> Self {
        Self {
            stream: id.stream(),
            event: Event::Credential(event),
        }
    }

    /// The stream.
    pub fn stream(&self) -> &StreamId {
        &self.stream
    }

    /// The event.
    pub fn event(&self) -> &Event {
        &self.event
    }
}

/// What a decision concluded.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// Append these events (possibly none: a check that passed).
    Accept(Vec<Change>),
    /// Refuse; append nothing.
    Reject(DomainError),
    /// Append these events (the record of a refused attempt), then refuse.
    RecordAndRefuse(Vec<Change>, DomainError),
}

impl From<Result<Vec<Change>, DomainError>> for Outcome {
    fn from(result: Result<Vec<Change>, DomainError>) -> Self {
        match result {
            Ok(changes) => Self::Accept(changes),
            Err(error) => Self::Reject(error),
        }
    }
}

/// The injected inputs of every decision.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The time of the decision (from the injected clock).
    pub now: DateTime<Utc>,
    /// Issuance and check rules.
    pub policy: &'a Policy,
    /// Where links may point.
    pub links: &'a LinkConfig,
}

/// A stream as a decision names it: kind and id, borrowed, so asking for a loaded stream
/// allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamKey<'a> {
    /// An org's stream.
    Org(&'a OrgId),
    /// A user's stream.
    User(&'a UserId),
    /// A code's stream.
    Code(&'a CodeId),
    /// A stream whose id is computed (credential claims).
    Owned(StreamId),
}

impl<'a> StreamKey<'a> {
    /// The stream of an org.
    pub fn org(id: &'a OrgId) -> Self {
        Self::Org(id)
    }

    /// The stream of a user.
    pub fn user(id: &'a UserId) -> Self {
        Self::User(id)
    }

    /// The stream of a code.
    pub fn code(id: &'a CodeId) -> Self {
        Self::Code(id)
    }

    /// The claim stream of a credential id.
    pub fn credential(id: &CredentialId) -> Self {
        Self::Owned(id.stream())
    }

    fn parts(&self) -> (AggregateKind, &str) {
        match self {
            Self::Org(id) => (AggregateKind::Org, id.as_str()),
            Self::User(id) => (AggregateKind::User, id.as_str()),
            Self::Code(id) => (AggregateKind::Code, id.as_str()),
            Self::Owned(stream) => (stream.kind(), stream.id()),
        }
    }

    fn to_stream(&self) -> StreamId {
        match self {
            Self::Org(id) => StreamId::org(id),
            Self::User(id) => StreamId::user(id),
            Self::Code(id) => StreamId::code(id),
            Self::Owned(stream) => stream.clone(),
        }
    }
}

/// Streams a decision asked for that are not loaded yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing(Vec<StreamId>);

impl Missing {
    /// The streams to load.
    pub fn streams(&self) -> &[StreamId] {
        &self.0
    }

    /// The streams to load, consumed.
    pub fn into_streams(self) -> Vec<StreamId> {
        self.0
    }
}

/// A decision: which states it reads ([`Decide::state`]) and what it decides over exactly those
/// ([`Decide::decide`]).
pub trait Decide {
    /// The states the decision reads, borrowed from what was loaded.
    type State<'a>;

    /// Asks `view` for every state the decision needs. A stream that is not loaded yet answers
    /// [`Missing`]; return it (with `?`) and the caller loads it and asks again.
    ///
    /// # Errors
    /// [`Missing`] while a needed stream is not loaded.
    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing>;

    /// Decides over the declared states. Pure: no I/O, no clock, no randomness beyond `ctx`.
    fn decide(&self, state: Self::State<'_>, ctx: &Ctx<'_>) -> Outcome;

    /// Streams the decision will probably ask for once its first ones are loaded (say, the
    /// org of a user, when the caller names it): read with the first ones, in the same round
    /// trip. Only a guess: what [`Decide::state`] asks for is what counts. Default: none.
    fn prefetch(&self) -> Vec<StreamId> {
        Vec::new()
    }

    /// Streams the decision will probably ask for once a stream it asks for first is read,
    /// named by an event of that stream (the code of a passkey ceremony, named by the user
    /// event that started it): each read in the same round trip as its source when the source
    /// is read, as the store follows it ([`crate::store::Follow`], whose `from` the reader
    /// points at the source). Only a guess, like [`Decide::prefetch`]. Default: none.
    fn follow(&self) -> Vec<(StreamId, crate::store::Follow)> {
        Vec::new()
    }

    /// Whether `stream` is one the decision expects not to exist yet and creates whenever it
    /// accepts — a code under an id it drew itself, a credential id's first claim: a caller
    /// that decides without reading may presume it empty, because writing it expects no
    /// stream (a stream that exists after all is then a conflict, decided again on what is
    /// stored; an outcome that does not write it is never taken on the presumption).
    /// Default: none is.
    fn is_fresh(&self, stream: &StreamId) -> bool {
        let _ = stream;
        false
    }

    /// Streams the same command reads again right after this decision (a code issued for
    /// mailing, whose delivery is recorded next): a caller that caches states keeps them once
    /// written, whatever their kind, so that the next decision needs no read. Default: none.
    fn read_again(&self) -> Vec<StreamId> {
        Vec::new()
    }
}

/// The state of one stream of any kind, as loaded. Behind an `Arc`: the few streams of a
/// decision fit in one small allocation (a list of large inline states crossed into the
/// allocator's large-request path, which consolidated its free lists on every decision), and a
/// state shared with the cache is copied only when an event changes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AnyState {
    Org(Arc<OrgState>),
    User(Arc<UserState>),
    Code(Arc<CodeState>),
    Credential(Arc<CredentialState>),
}

impl AnyState {
    /// The state of a stream with no events.
    pub(crate) fn empty(kind: AggregateKind) -> Self {
        match kind {
            AggregateKind::Org => Self::Org(Arc::default()),
            AggregateKind::User => Self::User(Arc::default()),
            AggregateKind::Code => Self::Code(Arc::default()),
            AggregateKind::Credential => Self::Credential(Arc::default()),
        }
    }

    /// Applies an event; an event of another kind changes nothing (total fold). Stream kinds
    /// and event kinds cannot mismatch in practice: [`Change`] and the decoder tie them.
    pub(crate) fn apply(&mut self, event: &Event) {
        match (self, event) {
            (Self::Org(state), Event::Org(event)) => Arc::make_mut(state).apply(event),
            (Self::User(state), Event::User(event)) => Arc::make_mut(state).apply(event),
            (Self::Code(state), Event::Code(event)) => Arc::make_mut(state).apply(event),
            (Self::Credential(state), Event::Credential(event)) => {
                Arc::make_mut(state).apply(event)
            }
            _ => {}
        }
    }

    /// The number of events folded in (the stream version).
    pub(crate) fn version(&self) -> u64 {
        match self {
            Self::Org(state) => state.version(),
            Self::User(state) => state.version(),
            Self::Code(state) => state.version(),
            Self::Credential(state) => state.version(),
        }
    }

    /// The org owning the aggregate (`resourceOwner`), once known.
    pub(crate) fn resource_owner(&self) -> Option<&OrgId> {
        match self {
            Self::User(state) => state.org_id(),
            Self::Code(state) => state.org_id(),
            Self::Org(_) | Self::Credential(_) => None,
        }
    }
}

/// Timestamps of a stream's first and last events and the global position of its last event,
/// for `details` and for validating cached states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct StreamMeta {
    pub(crate) created_at: Option<DateTime<Utc>>,
    pub(crate) changed_at: Option<DateTime<Utc>>,
    /// Which event is the last: `None` until the store has told where it sits.
    pub(crate) last_event: Option<EventStamp>,
    /// The version of the newest snapshot known to be stored (0: none).
    pub(crate) snapshot_version: u64,
}

/// Names one stored event: its global position and a digest of its type and payload. Positions
/// alone can repeat after a database is restored (its counter is restored too); a different
/// event at the same position has, but for a 64-bit collision, another digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventStamp {
    pub(crate) position: u64,
    pub(crate) digest: u64,
}

impl EventStamp {
    pub(crate) fn new(position: u64, event_type: &str, payload: &serde_json::Value) -> Self {
        Self {
            position,
            digest: Self::digest(event_type, payload),
        }
    }

    /// The digest of an event's type and payload: the first 8 bytes of a SHA-256 over a
    /// canonical walk of the JSON (object keys in order, each value tagged with its kind and
    /// length), stable across processes and releases — snapshots keep it — without printing
    /// the payload first.
    pub(crate) fn digest(event_type: &str, payload: &serde_json::Value) -> u64 {
        use sha2::Digest as _;
        fn walk(hasher: &mut sha2::Sha256, value: &serde_json::Value) {
            use serde_json::Value;
            let text = |hasher: &mut sha2::Sha256, tag: u8, text: &str| {
                hasher.update([tag]);
                hasher.update((text.len() as u64).to_le_bytes());
                hasher.update(text.as_bytes());
            };
            match value {
                Value::Null => hasher.update([0]),
                Value::Bool(b) => hasher.update([1, u8::from(*b)]),
                Value::Number(n) => text(hasher, 2, &n.to_string()),
                Value::String(s) => text(hasher, 3, s),
                Value::Array(items) => {
                    hasher.update([4]);
                    hasher.update((items.len() as u64).to_le_bytes());
                    for item in items {
                        walk(hasher, item);
                    }
                }
                Value::Object(fields) => {
                    // serde_json's map keeps keys sorted: equal payloads walk equally.
                    hasher.update([5]);
                    hasher.update((fields.len() as u64).to_le_bytes());
                    for (key, item) in fields {
                        text(hasher, 6, key);
                        walk(hasher, item);
                    }
                }
            }
        }
        let mut hasher = sha2::Sha256::new();
        hasher.update(event_type.as_bytes());
        hasher.update([0xff]);
        walk(&mut hasher, payload);
        let sum = hasher.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&sum[..8]);
        u64::from_le_bytes(first)
    }
}

impl StreamMeta {
    /// Records the next event, recorded at `at`; which event it is is known only when read back
    /// or once the append answers.
    pub(crate) fn touch(&mut self, at: DateTime<Utc>, stamp: Option<EventStamp>) {
        self.created_at.get_or_insert(at);
        self.changed_at = Some(at);
        self.last_event = stamp;
    }
}

/// One loaded stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) stream: StreamId,
    pub(crate) state: AnyState,
    pub(crate) meta: StreamMeta,
}

/// The streams loaded for one decision. A decision touches a handful of streams, so a short list
/// with a linear scan beats hashing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Loaded(Vec<Entry>);

impl Loaded {
    pub(crate) fn get(&self, stream: &StreamId) -> Option<&Entry> {
        self.find(stream.kind(), stream.id())
    }

    /// The entry of a stream named by kind and id (no allocation).
    pub(crate) fn find(&self, kind: AggregateKind, id: &str) -> Option<&Entry> {
        self.0
            .iter()
            .find(|entry| entry.stream.kind() == kind && entry.stream.id() == id)
    }

    /// Puts a loaded stream (replacing an earlier load of it).
    pub(crate) fn insert(&mut self, stream: StreamId, state: AnyState, meta: StreamMeta) {
        match self.0.iter_mut().find(|entry| entry.stream == stream) {
            Some(entry) => {
                entry.state = state;
                entry.meta = meta;
            }
            None => self.0.push(Entry {
                stream,
                state,
                meta,
            }),
        }
    }

    /// Applies a change at `at`, creating the stream's entry if needed.
    pub(crate) fn apply(&mut self, change: &Change, at: DateTime<Utc>) {
        let index = match self.0.iter().position(|e| e.stream == change.stream) {
            Some(index) => index,
            None => {
                self.0.push(Entry {
                    stream: change.stream.clone(),
                    state: AnyState::empty(change.stream.kind()),
                    meta: StreamMeta::default(),
                });
                self.0.len() - 1
            }
        };
        if let Some(entry) = self.0.get_mut(index) {
            entry.state.apply(&change.event);
            entry.meta.touch(at, None);
        }
    }

    /// The version of `stream` (0 when not loaded).
    pub(crate) fn version(&self, stream: &StreamId) -> u64 {
        self.get(stream).map_or(0, |entry| entry.state.version())
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.0.iter()
    }
}

/// Read access to loaded states for [`Decide::state`]: each accessor answers the state or
/// [`Missing`].
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    loaded: &'a Loaded,
}

macro_rules! view_accessor {
    ($(#[$doc:meta])* $name:ident, $id:ty, $variant:ident, $state:ty, $key:expr) => {
        $(#[$doc])*
        ///
        /// # Errors
        /// [`Missing`] while the stream is not loaded.
        pub fn $name(&self, id: &$id) -> Result<&'a $state, Missing> {
            let key: StreamKey<'_> = $key(id);
            let (kind, stream_id) = key.parts();
            match self.loaded.find(kind, stream_id).map(|entry| &entry.state) {
                Some(AnyState::$variant(state)) => Ok(state.as_ref()),
                _ => Err(Missing(vec![key.to_stream()])),
            }
        }
    };
}

impl<'a> View<'a> {
    pub(crate) fn new(loaded: &'a Loaded) -> Self {
        Self { loaded }
    }

    /// Asks for several streams at once, so that they load together; answers which are missing.
    ///
    /// # Errors
    /// [`Missing`] naming every stream of `streams` not loaded yet.
    pub fn require(&self, streams: &[StreamKey<'_>]) -> Result<(), Missing> {
        let absent = |key: &&StreamKey<'_>| {
            let (kind, id) = key.parts();
            self.loaded.find(kind, id).is_none()
        };
        if !streams.iter().any(|key| absent(&key)) {
            return Ok(());
        }
        Err(Missing(
            streams
                .iter()
                .filter(absent)
                .map(StreamKey::to_stream)
                .collect(),
        ))
    }

    view_accessor!(
        /// The state of an org.
        org, OrgId, Org, OrgState, StreamKey::org
    );
    view_accessor!(
        /// The state of a user.
        user, UserId, User, UserState, StreamKey::user
    );
    view_accessor!(
        /// The state of a code.
        code, CodeId, Code, CodeState, StreamKey::code
    );
    view_accessor!(
        /// The state of a credential-id claim.
        credential, CredentialId, Credential, CredentialState, StreamKey::credential
    );

    /// The state of the org a user belongs to; `None` when the user has no org (does not exist).
    ///
    /// # Errors
    /// [`Missing`] while the user or its org is not loaded.
    pub fn org_of(&self, user: &UserState) -> Result<Option<&'a OrgState>, Missing> {
        user.org_id().map(|org| self.org(org)).transpose()
    }
}

/// Runs `load` for every stream `decision` asks for until nothing is missing. The service and
/// the harness both resolve states through this one loop.
pub(crate) fn resolve<D: Decide>(
    decision: &D,
    loaded: &mut Loaded,
    mut load: impl FnMut(&mut Loaded, Vec<StreamId>),
) {
    loop {
        let missing = match decision.state(&View::new(loaded)) {
            Ok(_) => return,
            Err(missing) => missing,
        };
        load(loaded, missing.into_streams());
    }
}

/// Decides `decision` over `loaded` (which must hold every stream it asks for).
pub(crate) fn decide_loaded<D: Decide>(
    decision: &D,
    loaded: &Loaded,
    ctx: &Ctx<'_>,
) -> Result<Outcome, Missing> {
    let state = decision.state(&View::new(loaded))?;
    Ok(decision.decide(state, ctx))
}
