//! Domain errors: small, `PartialEq`, one variant per broken rule. The public
//! [`Error`](crate::Error) maps each to a kind and a stable id in its one catalogue; the domain
//! knows nothing of transports.

use serde::{Deserialize, Serialize};

use crate::domain::login::LoginFailure;
use crate::domain::passkey::CeremonyFailure;
use crate::ids::IdError;
use crate::link::LinkError;

/// Why a check of a presented code failed. Stored in `check.failed` events (snake_case names are
/// a storage format: never rename). Callers only ever see the generic
/// `Errors.User.Code.Invalid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
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
    /// The code was issued more than the clock-skew tolerance in this node's future.
    IssuedInFuture,
    /// The user was locked, deactivated or removed after the code was issued (unlocking or
    /// reactivating never revives it).
    UserStopped,
    /// The user's org was deactivated or removed after the code was issued.
    OrgStopped,
}

/// A broken domain rule or bad input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
    /// A request is contradictory or incomplete (e.g. both v2 media at once).
    #[error("{0}")]
    InvalidArgument(&'static str),
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
    /// The user's personal data was erased: it gets no links and no new personal data.
    #[error("the user's personal data was erased")]
    PersonalDataErased,
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
    /// No such passkey, or no open ceremony for it (unknown, finished, or another user's).
    #[error("passkey not found")]
    PasskeyNotFound,
    /// The relying party refused the ceremony's response (or it came too late); the ceremony
    /// is closed.
    #[error("the passkey registration could not be verified")]
    PasskeyVerificationFailed(CeremonyFailure),
    /// The user holds the most passkeys allowed.
    #[error("the user holds the most passkeys allowed")]
    TooManyPasskeys,
    /// The passkey id is taken.
    #[error("passkey exists already")]
    PasskeyAlreadyExists,
    /// A login presented a signature counter that did not grow: possibly a cloned
    /// authenticator.
    #[error("the passkey's signature counter went backwards")]
    PasskeyCloned,
    /// A login was refused; the reason is recorded, never shown.
    #[error("login failed")]
    LoginFailed(LoginFailure),
}
