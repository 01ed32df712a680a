//! The one public error type, its kinds and its wire body.
//!
//! Every failure an embedder sees is an [`Error`]: a [`ErrorKind`] (which maps to a gRPC code and
//! to the HTTP status grpc-gateway uses), a stable error id, a ZITADEL-style message key and a
//! human message. None of them ever contains a secret.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::{DeliveryFailure, DomainError};
use crate::ids::IdError;
use crate::ports::authorizer::AccessError;
use crate::ports::relying_party::RelyingPartyError;
use crate::store::StoreError;

/// The class of an error, with its gRPC code and HTTP status. Each variant's documentation says
/// how a caller handles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is malformed (bad id, template, email, or a wrong/unusable code). Fix the
    /// request; do not retry it unchanged.
    InvalidArgument,
    /// The user, org or code does not exist (or is outside the caller's org context).
    NotFound,
    /// The thing to create exists already (org, user, claimed passkey credential id).
    AlreadyExists,
    /// The caller lacks the permission in the target user's org.
    PermissionDenied,
    /// A rate limit was hit; retry after the window has passed.
    ResourceExhausted,
    /// The target is in the wrong state (inactive, locked, machine user, unverified email).
    FailedPrecondition,
    /// Concurrent writers kept conflicting beyond the retry budget; retrying is safe.
    Aborted,
    /// A bug or corrupted stored data; needs an operator.
    Internal,
    /// A dependency (store, notifier) is unreachable; retrying later is safe.
    Unavailable,
    /// No authenticated caller.
    Unauthenticated,
}

impl ErrorKind {
    /// The gRPC status code.
    pub const fn grpc_code(self) -> i32 {
        match self {
            Self::InvalidArgument => 3,
            Self::NotFound => 5,
            Self::AlreadyExists => 6,
            Self::PermissionDenied => 7,
            Self::ResourceExhausted => 8,
            Self::FailedPrecondition => 9,
            Self::Aborted => 10,
            Self::Internal => 13,
            Self::Unavailable => 14,
            Self::Unauthenticated => 16,
        }
    }

    /// The HTTP status grpc-gateway answers with for this gRPC code.
    pub const fn http_status(self) -> u16 {
        match self {
            Self::InvalidArgument | Self::FailedPrecondition => 400,
            Self::Unauthenticated => 401,
            Self::PermissionDenied => 403,
            Self::NotFound => 404,
            Self::AlreadyExists | Self::Aborted => 409,
            Self::ResourceExhausted => 429,
            Self::Internal => 500,
            Self::Unavailable => 503,
        }
    }

    /// Whether retrying the same request later may succeed.
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::Aborted | Self::Unavailable | Self::ResourceExhausted
        )
    }
}

/// The typed cause behind an [`Error`], when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// A broken domain rule or bad input.
    Domain(DomainError),
    /// The event store failed.
    Store(StoreError),
    /// The notifier failed (its class only: the notifier's own text is not ours to return).
    Delivery(DeliveryFailure),
    /// The authorizer could not decide.
    Access(AccessError),
    /// The relying party failed.
    RelyingParty(RelyingPartyError),
}

/// The public error: kind, stable id, message key, message and, where there is one, the typed
/// cause ([`Error::cause`], [`std::error::Error::source`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    id: &'static str,
    key: &'static str,
    message: Cow<'static, str>,
    cause: Option<Box<Cause>>,
}

impl Error {
    /// Builds an error. `id` must be stable across releases; `key` is a ZITADEL-style message
    /// key such as `Errors.User.NotFound`. The message must never contain a secret.
    pub fn new(
        kind: ErrorKind,
        id: &'static str,
        key: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            kind,
            id,
            key,
            message: message.into(),
            cause: None,
        }
    }

    fn from_entry(entry: Entry, message: impl Into<Cow<'static, str>>, cause: Cause) -> Self {
        Self {
            kind: entry.kind,
            id: entry.id,
            key: entry.key,
            message: message.into(),
            cause: Some(Box::new(cause)),
        }
    }

    /// Whether this answer says nothing was written (a transient store failure, a lost race), so
    /// the request may be retried without an idempotency key; an operation that wrote
    /// something never answers so.
    pub fn claims_nothing_written(&self) -> bool {
        [
            catalogue::STORE_UNAVAILABLE.id,
            catalogue::STORE_CONFLICT.id,
            catalogue::TOO_MANY_CONFLICTS.id,
        ]
        .contains(&self.id)
    }

    /// An unexpected state of the service (`PKL-SVC-01`).
    pub(crate) fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::catalogued(catalogue::INTERNAL, message)
    }

    pub(crate) fn catalogued(entry: Entry, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(entry.kind, entry.id, entry.key, message)
    }

    /// The caller is not authenticated.
    pub fn unauthenticated() -> Self {
        Self::catalogued(catalogue::UNAUTHENTICATED, "no authenticated caller")
    }

    /// The caller lacks a permission.
    pub fn permission_denied(permission: &str) -> Self {
        Self::catalogued(
            catalogue::PERMISSION_DENIED,
            format!("permission {permission} missing in the user's organization"),
        )
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The stable error id.
    pub fn id(&self) -> &'static str {
        self.id
    }

    /// The message key (`Errors.…`).
    pub fn message_key(&self) -> &'static str {
        self.key
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The typed cause, if any.
    pub fn cause(&self) -> Option<&Cause> {
        self.cause.as_deref()
    }

    /// The broken domain rule behind this error, if that is what it is.
    pub fn domain_error(&self) -> Option<&DomainError> {
        match self.cause() {
            Some(Cause::Domain(err)) => Some(err),
            _ => None,
        }
    }

    /// The store failure behind this error, if that is what it is.
    pub fn store_error(&self) -> Option<&StoreError> {
        match self.cause() {
            Some(Cause::Store(err)) => Some(err),
            _ => None,
        }
    }

    /// The wire body of SPEC §5.
    pub fn to_body(&self) -> ErrorBody {
        ErrorBody {
            code: self.kind.grpc_code(),
            message: format!("{} ({})", self.message, self.id),
            details: vec![ErrorDetail {
                type_url: ERROR_DETAIL_TYPE.to_owned(),
                id: self.id.to_owned(),
                message: self.key.to_owned(),
            }],
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("key", &self.key)
            .field("message", &self.message)
            .field("cause", &self.cause)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (kind {:?}, {}, {})",
            self.message, self.kind, self.key, self.id
        )
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self.cause()? {
            Cause::Domain(err) => Some(err),
            Cause::Store(err) => Some(err),
            Cause::Delivery(err) => Some(err),
            Cause::Access(err) => Some(err),
            Cause::RelyingParty(err) => Some(err),
        }
    }
}

impl From<DomainError> for Error {
    fn from(err: DomainError) -> Self {
        // The check failure reason is deliberately not part of the message: callers only ever
        // learn that the code is invalid.
        let message = err.to_string();
        Self::from_entry(catalogue::domain(&err), message, Cause::Domain(err))
    }
}

impl From<IdError> for Error {
    fn from(err: IdError) -> Self {
        DomainError::from(err).into()
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        let message = err.to_string();
        Self::from_entry(catalogue::store(&err), message, Cause::Store(err))
    }
}

impl From<RelyingPartyError> for Error {
    fn from(err: RelyingPartyError) -> Self {
        let entry = match err {
            RelyingPartyError::NotConfigured => catalogue::RP_NOT_CONFIGURED,
            RelyingPartyError::MalformedResponse(_) => catalogue::RP_MALFORMED,
            _ => catalogue::RP_INTERNAL,
        };
        let message = err.to_string();
        Self::from_entry(entry, message, Cause::RelyingParty(err))
    }
}

impl From<AccessError> for Error {
    fn from(err: AccessError) -> Self {
        let message = err.to_string();
        Self::from_entry(catalogue::ACCESS_UNAVAILABLE, message, Cause::Access(err))
    }
}

impl Error {
    /// Delivery of a code failed: it will never work.
    pub(crate) fn delivery_failed(failure: DeliveryFailure) -> Self {
        Self::from_entry(
            catalogue::DELIVERY_FAILED,
            "the link could not be delivered; it does not work unless redelivered \
             (redeliver_code) — or request a new one",
            Cause::Delivery(failure),
        )
    }
}

/// One row of the catalogue: kind, stable id and message key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) kind: ErrorKind,
    pub(crate) id: &'static str,
    pub(crate) key: &'static str,
}

/// Every stable error id of the crate, in one place. Ids never change once released.
pub(crate) mod catalogue {
    use super::{Entry, ErrorKind::*};
    use crate::domain::DomainError;
    use crate::ids::IdError;
    use crate::store::StoreError;

    macro_rules! entries {
        ($($name:ident = $kind:ident, $id:literal, $key:literal;)*) => {
            $(pub(crate) const $name: Entry = Entry { kind: $kind, id: $id, key: $key };)*
            /// Every row.
            #[cfg(test)]
            pub(crate) const ALL: &[Entry] = &[$($name),*];
        };
    }

    entries! {
        ID_MISSING = InvalidArgument, "PKL-INPUT-01", "Errors.IDMissing";
        ID_INVALID = InvalidArgument, "PKL-INPUT-02", "Errors.Invalid.ID";
        TEXT_INVALID = InvalidArgument, "PKL-INPUT-03", "Errors.User.Invalid";
        EMAIL_INVALID = InvalidArgument, "PKL-INPUT-04", "Errors.User.Email.Invalid";
        URL_TEMPLATE_INVALID = InvalidArgument, "PKL-INPUT-05", "Errors.User.InvalidURLTemplate";
        PASSKEY_INVALID = InvalidArgument, "PKL-INPUT-06", "Errors.User.Passkey.Invalid";
        ARGUMENT_INVALID = InvalidArgument, "PKL-INPUT-07", "Errors.Invalid.Argument";
        ORG_NOT_FOUND = NotFound, "PKL-ORG-01", "Errors.Org.NotFound";
        ORG_EXISTS = AlreadyExists, "PKL-ORG-02", "Errors.Org.AlreadyExists";
        ORG_NOT_ACTIVE = FailedPrecondition, "PKL-ORG-03", "Errors.Org.NotActive";
        ORG_ACTIVE = FailedPrecondition, "PKL-ORG-04", "Errors.Org.AlreadyActive";
        USER_NOT_FOUND = NotFound, "PKL-USER-01", "Errors.User.NotFound";
        USER_EXISTS = AlreadyExists, "PKL-USER-02", "Errors.User.AlreadyExisting";
        USER_NOT_HUMAN = FailedPrecondition, "PKL-USER-03", "Errors.User.NotHuman";
        USER_INACTIVE = FailedPrecondition, "PKL-USER-04", "Errors.User.NotActive";
        USER_LOCKED = FailedPrecondition, "PKL-USER-05", "Errors.User.Locked";
        USER_STATE = FailedPrecondition, "PKL-USER-06", "Errors.User.State.Invalid";
        EMAIL_NOT_VERIFIED = FailedPrecondition, "PKL-USER-07", "Errors.User.Email.NotVerified";
        EMAIL_UNCHANGED = FailedPrecondition, "PKL-USER-08", "Errors.User.Email.NotChanged";
        USER_ERASED = FailedPrecondition, "PKL-USER-09", "Errors.User.PersonalDataErased";
        RATE_LIMITED = ResourceExhausted, "PKL-CODE-01", "Errors.User.Code.TooManyRequests";
        CODE_INVALID = InvalidArgument, "PKL-CODE-02", "Errors.User.Code.Invalid";
        CODE_NOT_FOUND = NotFound, "PKL-CODE-03", "Errors.User.Code.NotFound";
        CODE_EXISTS = AlreadyExists, "PKL-CODE-04", "Errors.User.Code.AlreadyExists";
        CODE_NOT_REQUESTED = FailedPrecondition, "PKL-CODE-05", "Errors.User.Code.NotRequested";
        CODE_CLOSED = FailedPrecondition, "PKL-CODE-06", "Errors.User.Code.Closed";
        CREDENTIAL_CLAIMED = AlreadyExists, "PKL-PASSKEY-01", "Errors.User.Passkey.AlreadyExists";
        PASSKEY_NOT_FOUND = NotFound, "PKL-PASSKEY-02", "Errors.User.Passkey.NotFound";
        PASSKEY_UNVERIFIED = InvalidArgument, "PKL-PASSKEY-03", "Errors.User.Passkey.VerificationFailed";
        TOO_MANY_PASSKEYS = FailedPrecondition, "PKL-PASSKEY-04", "Errors.User.Passkey.TooMany";
        PASSKEY_EXISTS = AlreadyExists, "PKL-PASSKEY-05", "Errors.User.Passkey.IDAlreadyExists";
        PASSKEY_CLONED = FailedPrecondition, "PKL-PASSKEY-06", "Errors.User.Passkey.SignCount";
        LOGIN_FAILED = Unauthenticated, "PKL-LOGIN-01", "Errors.User.Passkey.LoginFailed";
        RP_NOT_CONFIGURED = FailedPrecondition, "PKL-RP-01", "Errors.WebAuthN.NotConfigured";
        RP_INTERNAL = Internal, "PKL-RP-02", "Errors.WebAuthN.Internal";
        RP_MALFORMED = InvalidArgument, "PKL-RP-03", "Errors.WebAuthN.MalformedResponse";
        UNAUTHENTICATED = Unauthenticated, "PKL-AUTH-01", "Errors.Token.Invalid";
        PERMISSION_DENIED = PermissionDenied, "PKL-AUTH-02", "Errors.PermissionDenied";
        ACCESS_UNAVAILABLE = Unavailable, "PKL-AUTH-03", "Errors.Authorization.Unavailable";
        DELIVERY_FAILED = Unavailable, "PKL-NOTIFY-01", "Errors.Notification.Failed";
        INTERNAL = Internal, "PKL-SVC-01", "Errors.Internal";
        TOO_MANY_CONFLICTS = Aborted, "PKL-SVC-02", "Errors.Concurrency";
        DEADLINE_EXCEEDED = Unavailable, "PKL-SVC-03", "Errors.DeadlineExceeded";
        IDEMPOTENCY_KEY_REUSED = InvalidArgument, "PKL-SVC-04", "Errors.Idempotency.KeyReused";
        IDEMPOTENT_RESULT_GONE = FailedPrecondition, "PKL-SVC-05", "Errors.Idempotency.ResultUnavailable";
        PARTIALLY_RECORDED = Unavailable, "PKL-SVC-06", "Errors.PartiallyRecorded";
        STORE_CONFLICT = Aborted, "PKL-STORE-01", "Errors.Concurrency";
        STORE_UNAVAILABLE = Unavailable, "PKL-STORE-02", "Errors.Eventstore.Unavailable";
        STORE_CORRUPT = Internal, "PKL-STORE-03", "Errors.Eventstore.Corrupted";
        STORE_INTERNAL = Internal, "PKL-STORE-04", "Errors.Internal";
        STORE_MISCONFIGURED = FailedPrecondition, "PKL-STORE-05", "Errors.Eventstore.Misconfigured";
        STORE_OUTCOME_UNKNOWN = Unavailable, "PKL-STORE-06", "Errors.Eventstore.OutcomeUnknown";
    }

    /// The row of a domain error.
    pub(crate) fn domain(err: &DomainError) -> Entry {
        match err {
            DomainError::InvalidId(IdError::Empty { .. }) => ID_MISSING,
            DomainError::InvalidId(_) => ID_INVALID,
            DomainError::InvalidText { .. } => TEXT_INVALID,
            DomainError::InvalidEmail => EMAIL_INVALID,
            DomainError::InvalidUrlTemplate(_) => URL_TEMPLATE_INVALID,
            DomainError::InvalidPasskey(_) => PASSKEY_INVALID,
            DomainError::InvalidArgument(_) => ARGUMENT_INVALID,
            DomainError::OrgNotFound => ORG_NOT_FOUND,
            DomainError::OrgAlreadyExists => ORG_EXISTS,
            DomainError::OrgNotActive => ORG_NOT_ACTIVE,
            DomainError::OrgAlreadyActive => ORG_ACTIVE,
            DomainError::UserNotFound => USER_NOT_FOUND,
            DomainError::UserAlreadyExists => USER_EXISTS,
            DomainError::UserNotHuman => USER_NOT_HUMAN,
            DomainError::UserInactive => USER_INACTIVE,
            DomainError::UserLocked => USER_LOCKED,
            DomainError::PersonalDataErased => USER_ERASED,
            DomainError::UserStateConflict(_) => USER_STATE,
            DomainError::EmailNotVerified => EMAIL_NOT_VERIFIED,
            DomainError::EmailUnchanged => EMAIL_UNCHANGED,
            DomainError::RateLimited => RATE_LIMITED,
            DomainError::CodeInvalid(_) => CODE_INVALID,
            DomainError::CodeNotFound => CODE_NOT_FOUND,
            DomainError::CodeAlreadyExists => CODE_EXISTS,
            DomainError::CodeNotRequested => CODE_NOT_REQUESTED,
            DomainError::CodeClosed => CODE_CLOSED,
            DomainError::CredentialAlreadyClaimed => CREDENTIAL_CLAIMED,
            DomainError::PasskeyNotFound => PASSKEY_NOT_FOUND,
            DomainError::PasskeyVerificationFailed(_) => PASSKEY_UNVERIFIED,
            DomainError::TooManyPasskeys => TOO_MANY_PASSKEYS,
            DomainError::PasskeyAlreadyExists => PASSKEY_EXISTS,
            DomainError::PasskeyCloned => PASSKEY_CLONED,
            DomainError::LoginFailed(_) => LOGIN_FAILED,
        }
    }

    /// The row of a store failure.
    pub(crate) fn store(err: &StoreError) -> Entry {
        match err {
            StoreError::Conflict { .. } => STORE_CONFLICT,
            StoreError::Unavailable(_) => STORE_UNAVAILABLE,
            StoreError::Corrupt { .. } | StoreError::CorruptRow { .. } => STORE_CORRUPT,
            StoreError::Internal(_) | StoreError::Unsupported(_) => STORE_INTERNAL,
            StoreError::Misconfigured(_) => STORE_MISCONFIGURED,
            StoreError::OutcomeUnknown(_) => STORE_OUTCOME_UNKNOWN,
            StoreError::DuplicateKey => IDEMPOTENCY_KEY_REUSED,
        }
    }
}

/// The `@type` of ZITADEL's error detail.
pub const ERROR_DETAIL_TYPE: &str = "type.googleapis.com/zitadel.v1.ErrorDetail";

/// The error body: `{"code":5,"message":"…","details":[{"@type":…,"id":…,"message":…}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The gRPC code.
    pub code: i32,
    /// Human-readable message.
    pub message: String,
    /// One ZITADEL error detail.
    pub details: Vec<ErrorDetail>,
}

/// One `zitadel.v1.ErrorDetail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Always [`ERROR_DETAIL_TYPE`].
    #[serde(rename = "@type")]
    pub type_url: String,
    /// The stable error id.
    pub id: String,
    /// The message key.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_seed_shape() {
        let err = Error::new(
            ErrorKind::NotFound,
            "PKL-USER-01",
            "Errors.User.NotFound",
            "user not found",
        );
        let json = serde_json::to_value(err.to_body()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "code": 5,
                "message": "user not found (PKL-USER-01)",
                "details": [{
                    "@type": "type.googleapis.com/zitadel.v1.ErrorDetail",
                    "id": "PKL-USER-01",
                    "message": "Errors.User.NotFound"
                }]
            })
        );
    }

    #[test]
    fn catalogue_ids_are_unique() {
        let mut ids: Vec<&str> = catalogue::ALL.iter().map(|entry| entry.id).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), before, "an error id is used twice");
    }

    #[test]
    fn the_domain_cause_is_kept() {
        let err = Error::from(DomainError::UserLocked);
        assert_eq!(err.domain_error(), Some(&DomainError::UserLocked));
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("user is locked"));
    }

    #[test]
    fn kinds_map_like_grpc_gateway() {
        assert_eq!(ErrorKind::FailedPrecondition.http_status(), 400);
        assert_eq!(ErrorKind::FailedPrecondition.grpc_code(), 9);
        assert_eq!(ErrorKind::ResourceExhausted.http_status(), 429);
        assert_eq!(ErrorKind::Unauthenticated.grpc_code(), 16);
    }
}
