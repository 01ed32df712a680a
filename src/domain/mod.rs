//! The pure, synchronous domain: aggregates as event streams, states as folds of their events,
//! and decisions as functions from loaded states and injected inputs to new events.
//!
//! Every command goes through one mechanism: [`Command::streams`] names the streams it needs
//! (asked again as states load, since a user's org is known only once the user is loaded),
//! [`decide`] turns the loaded [`World`] into a [`Decision`], and the caller appends the
//! decision's changes with the versions it decided on.

pub mod code;
pub mod credential;
mod error;
pub mod org;
pub mod text;
pub mod user;

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use error::{CheckFailure, DomainError};

use self::code::{CodeEvent, CodeState, DeliveryOutcome, IssueLink, PresentCode};
use self::credential::{CredentialEvent, CredentialState};
use self::org::{OrgCommand, OrgEvent, OrgState, OrgStatus};
use self::user::{NewPasskey, UserCommand, UserEvent, UserState, UserStatus};
use crate::ids::{AggregateKind, CodeId, OrgId, StreamId, UserId};
use crate::policy::Policy;

/// The schema version every event of this release is written with.
pub const SCHEMA_VERSION: u16 = 1;

/// An event of any aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Of an org stream.
    Org(OrgEvent),
    /// Of a user stream.
    User(UserEvent),
    /// Of a code stream.
    Code(CodeEvent),
    /// Of a credential claim stream.
    Credential(CredentialEvent),
}

macro_rules! event_from {
    ($($variant:ident($ty:ty)),*) => {$(
        impl From<$ty> for Event {
            fn from(event: $ty) -> Self {
                Event::$variant(event)
            }
        }
    )*};
}
event_from!(
    Org(OrgEvent),
    User(UserEvent),
    Code(CodeEvent),
    Credential(CredentialEvent)
);

/// A stored event could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The event type is unknown for the stream kind.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    /// Written by a newer release.
    #[error("unsupported schema version {0}")]
    UnsupportedSchema(u16),
    /// The payload does not match the event type.
    #[error("malformed payload: {0}")]
    Payload(String),
}

impl Event {
    /// The aggregate kind the event belongs to.
    pub fn kind(&self) -> AggregateKind {
        match self {
            Self::Org(_) => AggregateKind::Org,
            Self::User(_) => AggregateKind::User,
            Self::Code(_) => AggregateKind::Code,
            Self::Credential(_) => AggregateKind::Credential,
        }
    }

    /// Encodes to the stored form: the event type name and the JSON payload.
    ///
    /// # Errors
    /// Only if serde_json fails, which the event types make impossible in practice.
    pub fn encode(&self) -> Result<(String, Value), serde_json::Error> {
        let tagged = match self {
            Self::Org(event) => serde_json::to_value(event)?,
            Self::User(event) => serde_json::to_value(event)?,
            Self::Code(event) => serde_json::to_value(event)?,
            Self::Credential(event) => serde_json::to_value(event)?,
        };
        let Value::Object(mut map) = tagged else {
            return Err(serde::ser::Error::custom("events encode to objects"));
        };
        let event_type = match map.remove("type") {
            Some(Value::String(name)) => name,
            _ => return Err(serde::ser::Error::custom("events carry a type name")),
        };
        let payload = map
            .remove("payload")
            .unwrap_or_else(|| Value::Object(Default::default()));
        Ok((event_type, payload))
    }

    /// Decodes a stored event of a stream of `kind`.
    ///
    /// # Errors
    /// [`DecodeError`] for an unknown type, a newer schema or a malformed payload.
    pub fn decode(
        kind: AggregateKind,
        event_type: &str,
        schema_version: u16,
        payload: Value,
    ) -> Result<Self, DecodeError> {
        if schema_version == 0 || schema_version > SCHEMA_VERSION {
            return Err(DecodeError::UnsupportedSchema(schema_version));
        }
        let mut tagged = serde_json::Map::with_capacity(2);
        tagged.insert("type".to_owned(), Value::String(event_type.to_owned()));
        tagged.insert("payload".to_owned(), payload);
        let tagged = Value::Object(tagged);
        let result = match kind {
            AggregateKind::Org => serde_json::from_value(tagged).map(Self::Org),
            AggregateKind::User => serde_json::from_value(tagged).map(Self::User),
            AggregateKind::Code => serde_json::from_value(tagged).map(Self::Code),
            AggregateKind::Credential => serde_json::from_value(tagged).map(Self::Credential),
        };
        result.map_err(|err| {
            let text = err.to_string();
            if text.starts_with("unknown variant") {
                DecodeError::UnknownType(event_type.to_owned())
            } else {
                DecodeError::Payload(text)
            }
        })
    }
}

/// One new event for one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The stream.
    pub stream: StreamId,
    /// The event.
    pub event: Event,
}

impl Change {
    /// A change of `stream`.
    pub fn new(stream: StreamId, event: impl Into<Event>) -> Self {
        Self {
            stream,
            event: event.into(),
        }
    }
}

/// What a command decided: events to append and, for a refused code, the refusal to return
/// after the failure is recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Events to append, in order.
    pub changes: Vec<Change>,
    /// Returned to the caller after the changes are appended.
    pub refusal: Option<DomainError>,
}

impl Decision {
    fn accept(changes: Vec<Change>) -> Self {
        Self {
            changes,
            refusal: None,
        }
    }
}

/// The state of any aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// An org.
    Org(OrgState),
    /// A user.
    User(UserState),
    /// A code.
    Code(CodeState),
    /// A credential claim.
    Credential(CredentialState),
}

impl State {
    /// The state of a stream with no events.
    pub fn empty(kind: AggregateKind) -> Self {
        match kind {
            AggregateKind::Org => Self::Org(OrgState::default()),
            AggregateKind::User => Self::User(UserState::default()),
            AggregateKind::Code => Self::Code(CodeState::default()),
            AggregateKind::Credential => Self::Credential(CredentialState::default()),
        }
    }

    /// Applies an event; an event of another aggregate kind is ignored (total fold).
    pub fn apply(&mut self, event: &Event) {
        match (self, event) {
            (Self::Org(state), Event::Org(event)) => state.apply(event),
            (Self::User(state), Event::User(event)) => state.apply(event),
            (Self::Code(state), Event::Code(event)) => state.apply(event),
            (Self::Credential(state), Event::Credential(event)) => state.apply(event),
            _ => {}
        }
    }

    /// The stream version the state was folded to.
    pub fn version(&self) -> u64 {
        match self {
            Self::Org(state) => state.version,
            Self::User(state) => state.version,
            Self::Code(state) => state.version,
            Self::Credential(state) => state.version,
        }
    }
}

static EMPTY_ORG: OrgState = OrgState {
    version: 0,
    status: OrgStatus::Missing,
    name: String::new(),
};
static EMPTY_USER: UserState = UserState {
    version: 0,
    org_id: None,
    kind: None,
    status: UserStatus::Missing,
    email: None,
    email_verified: false,
    email_changed_version: 0,
    superseding_link_version: 0,
    recent_links: VecDeque::new(),
    passkeys: 0,
};
static EMPTY_CODE: CodeState = CodeState {
    version: 0,
    status: code::CodeStatus::Missing,
    issued: None,
    url_template: None,
    failed_checks: 0,
};
static EMPTY_CREDENTIAL: CredentialState = CredentialState {
    version: 0,
    claimed_by: None,
};

/// Streams of one kind by id. A command touches a handful of streams, so a short list with a
/// linear scan beats hashing; equality ignores order.
#[derive(Debug, Clone)]
struct Streams<S>(Vec<(String, S)>);

impl<S> Default for Streams<S> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<S: PartialEq> PartialEq for Streams<S> {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .all(|(id, state)| other.get(id) == Some(state))
    }
}

impl<S: Eq> Eq for Streams<S> {}

impl<S> Streams<S> {
    fn get(&self, id: &str) -> Option<&S> {
        self.0
            .iter()
            .find(|(key, _)| key == id)
            .map(|(_, state)| state)
    }

    fn contains_key(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    fn insert(&mut self, id: String, state: S) {
        match self.0.iter_mut().find(|(key, _)| *key == id) {
            Some(entry) => entry.1 = state,
            None => self.0.push((id, state)),
        }
    }

    fn entry(&mut self, id: &str) -> &mut S
    where
        S: Default,
    {
        let index = match self.0.iter().position(|(key, _)| key == id) {
            Some(index) => index,
            None => {
                self.0.push((id.to_owned(), S::default()));
                self.0.len() - 1
            }
        };
        &mut self.0[index].1
    }
}

/// The loaded states a decision sees, by aggregate kind. A stream that is not present has no
/// events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct World {
    orgs: Streams<OrgState>,
    users: Streams<UserState>,
    codes: Streams<CodeState>,
    credentials: Streams<CredentialState>,
}

impl World {
    /// An empty world.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts a loaded state (a state of another kind than the stream's is ignored).
    pub fn insert(&mut self, stream: StreamId, state: State) {
        let id = stream.id;
        match (stream.kind, state) {
            (AggregateKind::Org, State::Org(state)) => {
                self.orgs.insert(id, state);
            }
            (AggregateKind::User, State::User(state)) => {
                self.users.insert(id, state);
            }
            (AggregateKind::Code, State::Code(state)) => {
                self.codes.insert(id, state);
            }
            (AggregateKind::Credential, State::Credential(state)) => {
                self.credentials.insert(id, state);
            }
            _ => {}
        }
    }

    /// Whether `stream` was loaded.
    pub fn contains(&self, stream: &StreamId) -> bool {
        let id = stream.id.as_str();
        match stream.kind {
            AggregateKind::Org => self.orgs.contains_key(id),
            AggregateKind::User => self.users.contains_key(id),
            AggregateKind::Code => self.codes.contains_key(id),
            AggregateKind::Credential => self.credentials.contains_key(id),
        }
    }

    /// A copy of the state of `stream`, if loaded.
    pub fn state(&self, stream: &StreamId) -> Option<State> {
        let id = stream.id.as_str();
        match stream.kind {
            AggregateKind::Org => self.orgs.get(id).cloned().map(State::Org),
            AggregateKind::User => self.users.get(id).cloned().map(State::User),
            AggregateKind::Code => self.codes.get(id).cloned().map(State::Code),
            AggregateKind::Credential => self.credentials.get(id).cloned().map(State::Credential),
        }
    }

    /// Applies a change, creating the stream's state if needed.
    pub fn apply(&mut self, change: &Change) {
        let id = change.stream.id.as_str();
        match &change.event {
            Event::Org(event) => self.orgs.entry(id).apply(event),
            Event::User(event) => self.users.entry(id).apply(event),
            Event::Code(event) => self.codes.entry(id).apply(event),
            Event::Credential(event) => self.credentials.entry(id).apply(event),
        }
    }

    /// The version of `stream` (0 when absent).
    pub fn version(&self, stream: &StreamId) -> u64 {
        let id = stream.id.as_str();
        match stream.kind {
            AggregateKind::Org => self.orgs.get(id).map_or(0, |s| s.version),
            AggregateKind::User => self.users.get(id).map_or(0, |s| s.version),
            AggregateKind::Code => self.codes.get(id).map_or(0, |s| s.version),
            AggregateKind::Credential => self.credentials.get(id).map_or(0, |s| s.version),
        }
    }

    /// The org owning `stream`'s aggregate (`resourceOwner`), once known.
    pub fn resource_owner(&self, stream: &StreamId) -> Option<&OrgId> {
        let id = stream.id.as_str();
        match stream.kind {
            AggregateKind::Org | AggregateKind::Credential => None,
            AggregateKind::User => self.users.get(id).and_then(|s| s.org_id.as_ref()),
            AggregateKind::Code => self.codes.get(id).and_then(CodeState::org_id),
        }
    }

    /// The state of an org.
    pub fn org(&self, id: &OrgId) -> &OrgState {
        self.orgs.get(id.as_str()).unwrap_or(&EMPTY_ORG)
    }

    /// The state of a user.
    pub fn user(&self, id: &UserId) -> &UserState {
        self.users.get(id.as_str()).unwrap_or(&EMPTY_USER)
    }

    /// The state of a code.
    pub fn code(&self, id: &CodeId) -> &CodeState {
        self.codes.get(id.as_str()).unwrap_or(&EMPTY_CODE)
    }

    /// The state of a credential claim stream.
    pub fn credential(&self, stream: &StreamId) -> &CredentialState {
        self.credentials
            .get(stream.id.as_str())
            .unwrap_or(&EMPTY_CREDENTIAL)
    }

    /// The state of the org `user_id` belongs to.
    fn org_of(&self, user_id: &UserId) -> &OrgState {
        match &self.user(user_id).org_id {
            Some(org_id) => self.org(org_id),
            None => &EMPTY_ORG,
        }
    }
}

/// Every command of the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// An org lifecycle command.
    Org {
        /// The org.
        org_id: OrgId,
        /// The command.
        command: OrgCommand,
    },
    /// A user lifecycle command.
    User {
        /// The user.
        user_id: UserId,
        /// The command.
        command: UserCommand,
    },
    /// Issue a link.
    IssueLink(IssueLink),
    /// Record the notifier's outcome for a requested code.
    RecordDelivery {
        /// The code.
        code_id: CodeId,
        /// The outcome.
        outcome: DeliveryOutcome,
    },
    /// Check a presented code without consuming it.
    CheckCode(PresentCode),
    /// Consume a presented code, registering a passkey.
    ConsumeCode {
        /// The presented code.
        presented: PresentCode,
        /// The passkey to register.
        passkey: NewPasskey,
    },
    /// Revoke a code.
    RevokeCode {
        /// The code's user.
        user_id: UserId,
        /// The code.
        code_id: CodeId,
        /// Org context of the admin call.
        org_context: Option<OrgId>,
    },
}

impl Command {
    /// The streams the decision reads, given what is loaded so far. Callers load them and ask
    /// again until nothing new is named.
    pub fn streams(&self, world: &World) -> Vec<StreamId> {
        let org_of = |user_id: &UserId| world.user(user_id).org_id.as_ref().map(StreamId::org);
        let mut streams = match self {
            Self::Org { org_id, .. } => vec![StreamId::org(org_id)],
            Self::User { user_id, command } => {
                let mut streams = vec![StreamId::user(user_id)];
                streams.extend(command.creates_in().map(StreamId::org));
                streams
            }
            Self::IssueLink(issue) => {
                let mut streams = vec![StreamId::user(&issue.user_id)];
                streams.extend(org_of(&issue.user_id));
                streams
            }
            Self::RecordDelivery { code_id, .. } => vec![StreamId::code(code_id)],
            Self::CheckCode(presented) => {
                let mut streams = vec![
                    StreamId::code(&presented.code_id),
                    StreamId::user(&presented.user_id),
                ];
                streams.extend(org_of(&presented.user_id));
                streams
            }
            Self::ConsumeCode { presented, passkey } => {
                let mut streams = vec![
                    StreamId::code(&presented.code_id),
                    StreamId::user(&presented.user_id),
                    passkey.credential_id.stream(),
                ];
                streams.extend(org_of(&presented.user_id));
                streams
            }
            Self::RevokeCode {
                user_id, code_id, ..
            } => vec![StreamId::code(code_id), StreamId::user(user_id)],
        };
        streams.dedup();
        streams
    }
}

/// Decides `command` over `world` at `now` under `policy`.
///
/// ```
/// use chrono::Utc;
/// use passkey_links::domain::code::{Delivery, IssueLink};
/// use passkey_links::domain::{decide, Command, DomainError, World};
/// use passkey_links::ids::{CodeId, UserId};
/// use passkey_links::policy::Policy;
/// use passkey_links::secret::Secret;
///
/// // Nothing loaded: the user does not exist, so nothing may be appended.
/// let command = Command::IssueLink(IssueLink {
///     user_id: UserId::new("u1").unwrap(),
///     org_context: None,
///     code_id: CodeId::new("c1").unwrap(),
///     secret_digest: Secret::presented("s").digest(),
///     delivery: Delivery::Returned,
/// });
/// let result = decide(&World::new(), &command, &Policy::default(), Utc::now());
/// assert_eq!(result, Err(DomainError::UserNotFound));
/// ```
///
/// # Errors
/// [`DomainError`] when the command breaks a rule or carries bad input; nothing may be appended.
pub fn decide(
    world: &World,
    command: &Command,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<Decision, DomainError> {
    match command {
        Command::Org { org_id, command } => {
            org::decide(org_id, world.org(org_id), command).map(Decision::accept)
        }
        Command::User { user_id, command } => {
            let org = match command.creates_in() {
                Some(org_id) => world.org(org_id),
                None => world.org_of(user_id),
            };
            user::decide(user_id, world.user(user_id), org, command).map(Decision::accept)
        }
        Command::IssueLink(issue) => code::issue(
            issue,
            world.user(&issue.user_id),
            world.org_of(&issue.user_id),
            world.code(&issue.code_id),
            policy,
            now,
        )
        .map(Decision::accept),
        Command::RecordDelivery { code_id, outcome } => {
            code::record_delivery(code_id, world.code(code_id), outcome).map(Decision::accept)
        }
        Command::CheckCode(presented) => Ok(code::check(
            presented,
            world.code(&presented.code_id),
            world.user(&presented.user_id),
            world.org_of(&presented.user_id),
            now,
        )
        .map_or_else(|refused| refused, |()| Decision::accept(Vec::new()))),
        Command::ConsumeCode { presented, passkey } => code::consume(
            presented,
            passkey,
            world.code(&presented.code_id),
            world.user(&presented.user_id),
            world.org_of(&presented.user_id),
            world.credential(&passkey.credential_id.stream()),
            now,
        ),
        Command::RevokeCode {
            user_id,
            code_id,
            org_context,
        } => code::revoke(
            user_id,
            code_id,
            org_context.as_ref(),
            world.code(code_id),
            world.user(user_id),
        )
        .map(Decision::accept),
    }
}
