#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(feature = "testing")]
pub mod conformance;
pub mod domain;
pub mod error;
pub mod harness;
pub mod ids;
pub mod link;
pub mod policy;
pub mod ports;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod secret;
pub mod service;
pub mod wire;

pub use error::{Error, ErrorBody, ErrorKind};
pub use service::{Config, PasskeyLinks};

/// The names most embedders need, in one import.
pub mod prelude {
    pub use crate::domain::org::OrgCommand;
    pub use crate::domain::user::{CredentialId, NewPasskey, UserCommand};
    pub use crate::error::{Error, ErrorBody, ErrorKind};
    pub use crate::ids::{CodeId, OrgId, UserId};
    pub use crate::link::{BaseUrl, LinkConfig};
    pub use crate::policy::{Policy, RateLimit};
    pub use crate::ports::authorizer::{Authorizer, Caller, Permission, Principal, StaticGrants};
    pub use crate::ports::clock::{Clock, ManualClock, SystemClock};
    pub use crate::ports::memory_store::InMemoryStore;
    pub use crate::ports::notifier::{Envelope, Message, Notifier, RecordingNotifier};
    pub use crate::ports::random::{OsRandom, RandomSource, SeededRandom};
    pub use crate::ports::store::EventStore;
    pub use crate::secret::{Secret, SecretConfig};
    pub use crate::service::{Config, PasskeyLinks};
    pub use crate::wire::*;
}
