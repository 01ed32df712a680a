//! Event ids and the one definition of "the event I saw is still the last of its stream".
//!
//! Every event carries an id its writer drew at random ([`EventId`]). A reader that folded a
//! stream remembers its last event as a [`LastEvent`]: the stream's version and that event's id.
//! The stream still ends with it when the event at that version has that id and nothing follows
//! it. Versions alone do not say so, nor do global positions: a database restored to an earlier
//! point hands out the same versions and positions again, to other events. Ids are never reused.
//!
//! Everyone who asks the question asks it this way: the process cache and snapshots (a start is
//! trusted only if [`LastEvent::is`] holds for the event the store holds at its version), and
//! every store when a batch carries a read set ([`super::ReadStream`]).

use std::fmt;
use std::str::FromStr;

use super::RecordedEvent;

/// The id of one stored event: 128 random bits drawn by its writer, unique for good.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(uuid::Uuid);

impl EventId {
    /// A fresh random id (version-4 UUID from the thread's CSPRNG). Not a secret: it only
    /// needs to differ from every other event's.
    pub fn random() -> Self {
        Self(uuid::Builder::from_random_bytes(rand::random()).into_uuid())
    }

    /// The id of a UUID.
    pub fn from_uuid(uuid: uuid::Uuid) -> Self {
        Self(uuid)
    }

    /// As a UUID.
    pub fn as_uuid(&self) -> &uuid::Uuid {
        &self.0
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.0.hyphenated())
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for EventId {
    type Err = uuid::Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(text).map(Self)
    }
}

/// The last event a reader saw of a stream: the stream's version and the id of the event at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LastEvent {
    /// The stream's version (the event's).
    pub version: u64,
    /// The event's id.
    pub id: EventId,
}

impl LastEvent {
    /// The event `event` as a stream's last.
    pub fn of(event: &RecordedEvent) -> Self {
        Self {
            version: event.version,
            id: event.id,
        }
    }

    /// Whether `event` is this event: same version, same id. (That nothing follows it is the
    /// other half of "still last", which the reader checks by reading on.)
    pub fn is(&self, event: &RecordedEvent) -> bool {
        event.version == self.version && event.id == self.id
    }
}
