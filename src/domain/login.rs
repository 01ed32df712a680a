//! Logging in with a passkey: what a login is (an id, a lifetime), why one is refused, and what
//! a relying party verified. The ceremony itself is `decisions/login.rs`.

use std::fmt;

use chrono::Duration;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::passkey::CeremonyFailure;
use crate::domain::CredentialId;
use crate::ids::UserId;

/// How long a started login may be finished: at most 5 minutes.
pub const LOGIN_LIFETIME: Duration = Duration::minutes(5);

/// Logins of one user finished within [`LOGIN_LIFETIME`] at most: the ids of unexpired logins
/// are kept on the user to refuse a login state used twice, and this bounds them.
pub const MAX_RECENT_LOGINS: usize = 256;

/// One login: drawn at random when it starts, recorded on the user when it succeeds, so that its
/// state can never be used twice.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LoginId(String);

impl LoginId {
    /// A login id from 16 random bytes (lowercase hex).
    pub fn from_random(bytes: [u8; 16]) -> Self {
        Self(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// A login id as carried in a login state.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LoginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LoginId({})", self.0)
    }
}

/// The WebAuthn user handle of a user: stable, opaque, and free of personal data (16 bytes of a
/// SHA-256 of the user id).
pub fn user_handle(user_id: &UserId) -> Vec<u8> {
    let digest = Sha256::new()
        .chain_update(b"passkey-links user handle v1\0")
        .chain_update(user_id.as_str().as_bytes())
        .finalize();
    digest.iter().take(16).copied().collect()
}

/// Why a login was refused. Recorded in `…login.check.failed` events (snake_case names are a
/// storage format: never rename); the caller only ever learns that the login failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LoginFailure {
    /// No registered passkey has the credential id (nothing is recorded: no user to record on).
    UnknownPasskey,
    /// The credential's passkey was removed from its user.
    PasskeyRemoved,
    /// The relying party rejected the assertion (the event names how).
    AssertionRejected,
    /// The user handle the authenticator returned is not the credential's user.
    UserHandleMismatch,
    /// The login was started for another user than the credential's.
    NotTheNamedUser,
    /// The login state expired before it was finished.
    StateExpired,
    /// The login state was used already.
    StateUsed,
    /// The user is not a human user.
    UserNotHuman,
    /// The user is locked.
    UserLocked,
    /// The user is deactivated.
    UserInactive,
    /// The user was removed.
    UserRemoved,
    /// The user's personal data was erased.
    UserErased,
    /// The user's org is deactivated or removed.
    OrgNotActive,
    /// The passkey presented a signature counter that did not grow (possibly cloned).
    SignCountRegressed,
    /// The user finished more logins within the login lifetime than are kept.
    TooManyLogins,
}

/// An assertion a relying party verified: the credential proved possession of its key for the
/// login's challenge, origin and relying party.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedAssertion {
    /// The credential it was made with.
    pub credential_id: CredentialId,
    /// The signature counter it carried.
    pub sign_count: u32,
    /// Whether the credential is backed up now.
    pub backup_state: bool,
    /// Whether the authenticator verified the user.
    pub user_verified: bool,
}

impl VerifiedAssertion {
    /// A verified assertion.
    pub fn new(
        credential_id: CredentialId,
        sign_count: u32,
        backup_state: bool,
        user_verified: bool,
    ) -> Self {
        Self {
            credential_id,
            sign_count,
            backup_state,
            user_verified,
        }
    }
}

/// The outcome of verifying an assertion: verified, or a typed rejection.
pub type AssertionVerification = Result<VerifiedAssertion, CeremonyFailure>;
