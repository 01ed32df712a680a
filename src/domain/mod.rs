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
pub(crate) mod login;
pub(crate) mod org;
pub(crate) mod passkey;
#[cfg(test)]
pub(crate) mod test_support;
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
    DirectoryState, EnsureHuman, EnsureMachine, EnsureOrg, ErasePersonalData, FinishPasskeyLogin,
    FinishPasskeyRegistration, IssueCode, NamedCode, OrgChange, PendingDelivery, PresentCode,
    ReadCeremony, ReadCode, ReadDeadLink, ReadDelivery, ReadLogin, ReadLoginUser, ReadOrg,
    ReadUser, ReadUserAndOrg, RecordDelivery, RedeliverCode, RemovePasskey, RevokeCode,
    StartPasskeyRegistration, UserChange, is_live, pending_delivery,
};
pub use error::{CheckFailure, DomainError};
pub use login::{
    AssertionVerification, LOGIN_LIFETIME, LoginFailure, LoginId, MAX_RECENT_LOGINS,
    VerifiedAssertion, user_handle,
};
pub use org::{OrgEvent, OrgState, OrgStatus};
pub use passkey::{
    CEREMONY_LIFETIME, Ceremony, CeremonyFailure, CeremonyState, MAX_OPEN_CEREMONIES, MAX_PASSKEYS,
    Passkey, PasskeyState, RegisteredPasskey, VerifiedCredential,
};
pub use text::{ERASED, Email, MAX_EMAIL_LEN, MAX_NAME_LEN, display_text, validate_text};
pub use user::{MAX_LANGUAGE_LEN, UserEvent, UserKind, UserState, UserStatus};

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

/// The states a decision may read, by stream: what the service loaded for it, or the harness's
/// history. [`View`] is the only way a decision sees them.
pub(crate) trait States {
    /// The state of the stream of `kind` and `id`, if loaded.
    fn state(&self, kind: AggregateKind, id: &str) -> Option<&AnyState>;
}

/// A short list of streams: a decision touches a handful, so a linear scan beats hashing.
impl States for [(StreamId, AnyState)] {
    fn state(&self, kind: AggregateKind, id: &str) -> Option<&AnyState> {
        self.iter()
            .find(|(stream, _)| stream.kind() == kind && stream.id() == id)
            .map(|(_, state)| state)
    }
}

/// Read access to loaded states for [`Decide::state`]: each accessor answers the state or
/// [`Missing`].
#[derive(Clone, Copy)]
pub struct View<'a> {
    states: &'a (dyn States + Sync),
}

impl std::fmt::Debug for View<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View").finish_non_exhaustive()
    }
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
            match self.states.state(kind, stream_id) {
                Some(AnyState::$variant(state)) => Ok(state.as_ref()),
                _ => Err(Missing(vec![key.to_stream()])),
            }
        }
    };
}

impl<'a> View<'a> {
    pub(crate) fn new(states: &'a (dyn States + Sync)) -> Self {
        Self { states }
    }

    /// Asks for several streams at once, so that they load together; answers which are missing.
    ///
    /// # Errors
    /// [`Missing`] naming every stream of `streams` not loaded yet.
    pub fn require(&self, streams: &[StreamKey<'_>]) -> Result<(), Missing> {
        let absent = |key: &&StreamKey<'_>| {
            let (kind, id) = key.parts();
            self.states.state(kind, id).is_none()
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
pub(crate) fn resolve<D: Decide, S: States + Sync>(
    decision: &D,
    loaded: &mut S,
    mut load: impl FnMut(&mut S, Vec<StreamId>),
) {
    loop {
        let missing = match decision.state(&View::new(&*loaded)) {
            Ok(_) => return,
            Err(missing) => missing,
        };
        load(loaded, missing.into_streams());
    }
}

/// Decides `decision` over `loaded` (which must hold every stream it asks for).
pub(crate) fn decide_loaded<D: Decide>(
    decision: &D,
    states: &(dyn States + Sync),
    ctx: &Ctx<'_>,
) -> Result<Outcome, Missing> {
    let state = decision.state(&View::new(states))?;
    Ok(decision.decide(state, ctx))
}
