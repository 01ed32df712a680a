#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod domain;
mod error;
pub mod ids;
mod link;
mod metrics;
mod personal;
pub mod policy;
mod ports;
pub mod read;
mod repo;
mod secret;
mod service;
pub mod store;
pub mod testing;
#[cfg(feature = "webauthn")]
#[cfg_attr(docsrs, doc(cfg(feature = "webauthn")))]
pub mod webauthn;
pub mod wire;

pub use domain::user_handle;
pub use error::{Cause, ERROR_DETAIL_TYPE, Error, ErrorBody, ErrorDetail, ErrorKind};
pub use link::{
    BaseUrl, DEFAULT_LINK_PATH, Link, LinkConfig, LinkError, LinkValues, MAX_TEMPLATE_LEN,
    UrlTemplate,
};
pub use personal::PERSONAL_FIELDS;
pub use ports::authorizer::{
    AccessError, Authorizer, Caller, Permission, Permissions, Principal, StaticGrants,
};
pub use ports::clock::{Clock, ManualClock, SystemClock};
pub use ports::notifier::{
    Addressee, Envelope, Message, Notifier, NotifyError, Receipt, RecordingNotifier,
};
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub use ports::random::SeededRandom;
pub use ports::random::{OsRandom, RandomSource};
pub use ports::relying_party::{
    AssertionClaim, AssertionVerification, AuthenticationRequest, NoRelyingParty,
    RegistrationRequest, RelyingParty, RelyingPartyError, StartedAuthentication,
    StartedRegistration, UserVerification, Verification, VerifiedAssertion,
};
pub use secret::{
    DeliveryKey, DeliveryKeyError, Keyring, MAX_SECRET_LEN, MIN_SECRET_BITS, Secret, SecretConfig,
    SecretConfigError, SecretDigest,
};
pub use service::{
    CLOCK_REMEASURE, Config, DEFAULT_AUDIT_PAGE, DEFAULT_DEADLINE, DEFAULT_DELIVERY_CONCURRENCY,
    DEFAULT_IDEMPOTENCY_RETENTION, DELIVERY_WORKER, DeliveryRetry, DeliveryRound, DeliveryWorker,
    IdempotencyKey, MAX_AUDIT_PAGE, MAX_CREDENTIAL_JSON, MAX_KEY_LEN, MAX_PENDING, OutboxHealth,
    PasskeyLinks, Scoped,
};

/// The names most embedders need, in one import.
pub mod prelude {
    pub use crate::domain::{Email, OrgChange, UserChange};
    pub use crate::ids::{CodeId, OrgId, UserId};
    pub use crate::policy::{Policy, RateLimit, RateLimitScope};
    pub use crate::store::{EventStore, InMemoryStore};
    pub use crate::wire::*;
    pub use crate::{
        Authorizer, BaseUrl, Caller, Clock, Config, Envelope, Error, ErrorBody, ErrorKind,
        IdempotencyKey, LinkConfig, ManualClock, Message, Notifier, OsRandom, PasskeyLinks,
        Permission, Principal, RandomSource, Receipt, RecordingNotifier, RelyingParty, Secret,
        SecretConfig, StaticGrants, SystemClock, UserVerification,
    };
}
