//! For testers and adapter authors: the given/when/then harness (default build: it has no
//! dependencies, and embedders unit-test their policies with it), the store conformance suite
//! (feature `testing`), and a prelude with the types both need.

mod harness;

pub use harness::{Given, Then, given};

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod conformance;

/// The names harness users, store authors and notifier authors need, in one import.
pub mod prelude {
    pub use super::{Given, Then, given};
    pub use crate::domain::{
        Change, CheckFailure, CodeEvent, CredentialEvent, CredentialId, Decide, DomainError, Email,
        Event, OrgEvent, Outcome, PublicKey, UserEvent, VerifiedCredential,
    };
    pub use crate::ports::clock::ManualClock;
    pub use crate::ports::notifier::{Envelope, Message, NotifyError, Receipt};
    #[cfg(feature = "testing")]
    pub use crate::ports::random::SeededRandom;
    pub use crate::store::{
        AppendBatch, EventStore, ExpectedVersion, NewEvent, RecordedEvent, StoreError, StreamAppend,
    };
}
