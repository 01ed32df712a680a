//! Domain errors: small, `PartialEq`, one variant per broken rule, each mapped to the public
//! [`Error`](crate::Error) with a stable id.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};
use crate::ids::IdError;
use crate::link::LinkError;

/// Why a check of a presented code failed. Stored in `check.failed` events (snake_case names are
/// a storage format: never rename). Callers only ever see the generic
/// `Errors.User.Code.Invalid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckFailure {
    /// No code with that id exists (nothing is recorded).
    UnknownCode,
    /// The code belongs to another user.
    UserMismatch,
    /// A code to be delivered was not sent yet.
    NotDelivered,
    /// Delivery of the code failed; it is never usable.
    DeliveryFailed,
    /// `now >= expires_at`.
    Expired,
    /// The code was consumed already.
    Consumed,
    /// The code was revoked.
    Revoked,
    /// A newer link was issued for the user.
    Superseded,
    /// The failed-check cap was reached (nothing more is recorded).
    Exhausted,
    /// The user no longer exists, is not human, or is inactive/locked.
    UserNotActive,
    /// The user's org no longer exists or is inactive.
    OrgNotActive,
    /// The user's email changed after the code was issued.
    EmailChanged,
    /// The presented secret is wrong.
    WrongSecret,
}

/// A broken domain rule or bad input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainError {
    /// An id was refused.
    #[error(transparent)]
    InvalidId(#[from] IdError),
    /// A text field (name, language) was refused.
    #[error("{field} is empty, longer than {max} characters or holds control characters")]
    InvalidText {
        /// The field.
        field: &'static str,
        /// Its limit.
        max: usize,
    },
    /// An email address was refused.
    #[error("the email address is invalid")]
    InvalidEmail,
    /// A URL template or link was refused.
    #[error("invalid url template: {0}")]
    InvalidUrlTemplate(LinkError),
    /// A passkey to register was refused.
    #[error("invalid passkey: {0}")]
    InvalidPasskey(&'static str),
    /// The org does not exist (or was removed).
    #[error("organization not found")]
    OrgNotFound,
    /// The org exists already.
    #[error("organization exists already")]
    OrgAlreadyExists,
    /// The org is not active.
    #[error("organization is not active")]
    OrgNotActive,
    /// The org is active already.
    #[error("organization is active already")]
    OrgAlreadyActive,
    /// The user does not exist, was removed, or is outside the org context.
    #[error("user not found")]
    UserNotFound,
    /// The user exists already.
    #[error("user exists already")]
    UserAlreadyExists,
    /// The user is a machine user.
    #[error("user is not a human user")]
    UserNotHuman,
    /// The user is inactive.
    #[error("user is inactive")]
    UserInactive,
    /// The user is locked.
    #[error("user is locked")]
    UserLocked,
    /// The user's state does not allow this command.
    #[error("user state does not allow {0}")]
    UserStateConflict(&'static str),
    /// The user has no verified email to deliver to.
    #[error("user has no verified email")]
    EmailNotVerified,
    /// The email is unchanged or verified already.
    #[error("email unchanged")]
    EmailUnchanged,
    /// Too many links were issued for the user in the window.
    #[error("too many links issued for this user, try again later")]
    RateLimited,
    /// A presented code was refused; the reason is recorded, never shown.
    #[error("the code is invalid")]
    CodeInvalid(CheckFailure),
    /// The code does not exist (or belongs to another user).
    #[error("code not found")]
    CodeNotFound,
    /// The code id is taken already.
    #[error("code exists already")]
    CodeAlreadyExists,
    /// The code is not waiting for delivery.
    #[error("code is not waiting for delivery")]
    CodeNotRequested,
    /// The code was consumed, revoked or failed delivery already.
    #[error("code is closed already")]
    CodeClosed,
    /// The passkey credential id is registered already.
    #[error("passkey credential id is registered already")]
    CredentialAlreadyClaimed,
}

impl DomainError {
    fn parts(&self) -> (ErrorKind, &'static str, &'static str) {
        use ErrorKind::*;
        match self {
            Self::InvalidId(IdError::Empty { .. }) => {
                (InvalidArgument, "PKL-INPUT-01", "Errors.IDMissing")
            }
            Self::InvalidId(_) => (InvalidArgument, "PKL-INPUT-02", "Errors.Invalid.ID"),
            Self::InvalidText { .. } => (InvalidArgument, "PKL-INPUT-03", "Errors.User.Invalid"),
            Self::InvalidEmail => (InvalidArgument, "PKL-INPUT-04", "Errors.User.Email.Invalid"),
            Self::InvalidUrlTemplate(_) => (
                InvalidArgument,
                "PKL-INPUT-05",
                "Errors.User.InvalidURLTemplate",
            ),
            Self::InvalidPasskey(_) => (
                InvalidArgument,
                "PKL-INPUT-06",
                "Errors.User.Passkey.Invalid",
            ),
            Self::OrgNotFound => (NotFound, "PKL-ORG-01", "Errors.Org.NotFound"),
            Self::OrgAlreadyExists => (AlreadyExists, "PKL-ORG-02", "Errors.Org.AlreadyExists"),
            Self::OrgNotActive => (FailedPrecondition, "PKL-ORG-03", "Errors.Org.NotActive"),
            Self::OrgAlreadyActive => {
                (FailedPrecondition, "PKL-ORG-04", "Errors.Org.AlreadyActive")
            }
            Self::UserNotFound => (NotFound, "PKL-USER-01", "Errors.User.NotFound"),
            Self::UserAlreadyExists => {
                (AlreadyExists, "PKL-USER-02", "Errors.User.AlreadyExisting")
            }
            Self::UserNotHuman => (FailedPrecondition, "PKL-USER-03", "Errors.User.NotHuman"),
            Self::UserInactive => (FailedPrecondition, "PKL-USER-04", "Errors.User.NotActive"),
            Self::UserLocked => (FailedPrecondition, "PKL-USER-05", "Errors.User.Locked"),
            Self::UserStateConflict(_) => (
                FailedPrecondition,
                "PKL-USER-06",
                "Errors.User.State.Invalid",
            ),
            Self::EmailNotVerified => (
                FailedPrecondition,
                "PKL-USER-07",
                "Errors.User.Email.NotVerified",
            ),
            Self::EmailUnchanged => (
                FailedPrecondition,
                "PKL-USER-08",
                "Errors.User.Email.NotChanged",
            ),
            Self::RateLimited => (
                ResourceExhausted,
                "PKL-CODE-01",
                "Errors.User.Code.TooManyRequests",
            ),
            Self::CodeInvalid(_) => (InvalidArgument, "PKL-CODE-02", "Errors.User.Code.Invalid"),
            Self::CodeNotFound => (NotFound, "PKL-CODE-03", "Errors.User.Code.NotFound"),
            Self::CodeAlreadyExists => (
                AlreadyExists,
                "PKL-CODE-04",
                "Errors.User.Code.AlreadyExists",
            ),
            Self::CodeNotRequested => (
                FailedPrecondition,
                "PKL-CODE-05",
                "Errors.User.Code.NotRequested",
            ),
            Self::CodeClosed => (FailedPrecondition, "PKL-CODE-06", "Errors.User.Code.Closed"),
            Self::CredentialAlreadyClaimed => (
                AlreadyExists,
                "PKL-PASSKEY-01",
                "Errors.User.Passkey.AlreadyExists",
            ),
        }
    }
}

impl From<DomainError> for Error {
    fn from(err: DomainError) -> Self {
        let (kind, id, key) = err.parts();
        // The check failure reason is deliberately not part of the message: callers only ever
        // learn that the code is invalid.
        Error::new(kind, id, key, err.to_string())
    }
}

impl From<IdError> for Error {
    fn from(err: IdError) -> Self {
        DomainError::from(err).into()
    }
}
