//! Passkeys: what a relying party verified, the ceremonies that lead there, and the passkeys a
//! user holds. The user aggregate is their single source of truth.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::credential::{CredentialId, PublicKey};
use crate::ids::{CodeId, PasskeyId};
use crate::secret::{Secret, SecretDigest};

/// How long a started ceremony stays open (never past its code's expiry).
pub const CEREMONY_LIFETIME: chrono::Duration = chrono::Duration::minutes(5);
/// The most passkeys one user may hold.
pub const MAX_PASSKEYS: usize = 32;
/// The most open ceremonies a user has at once; starting one more closes the oldest.
pub const MAX_OPEN_CEREMONIES: usize = 4;

/// The opaque, serializable state of one started ceremony (challenge, policy, excluded
/// credentials — whatever the adapter needs to verify the response). Recorded on the user
/// stream; only the adapter that made it reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CeremonyState(Value);

impl CeremonyState {
    /// Wraps an adapter's state.
    pub fn new(state: Value) -> Self {
        Self(state)
    }

    /// The adapter's state.
    pub fn as_value(&self) -> &Value {
        &self.0
    }
}

/// A credential the relying party verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct VerifiedCredential {
    /// The credential id.
    pub credential_id: CredentialId,
    /// The COSE public key, as the authenticator encoded it.
    pub public_key: PublicKey,
    /// The signature counter at registration.
    pub sign_count: u32,
    /// The authenticator model (AAGUID, hyphenated; all zeros when not disclosed).
    pub aaguid: String,
    /// Whether the credential may be backed up or synced (multi-device).
    pub backup_eligible: bool,
    /// Whether it is backed up now.
    pub backup_state: bool,
    /// Transport hints (`internal`, `usb`, `hybrid`, …).
    pub transports: Vec<String>,
    /// The attestation statement format (`none`, `packed`, …).
    pub attestation_format: String,
    /// Whether the authenticator verified the user.
    pub user_verified: bool,
    /// The adapter's own serialized credential, to run logins with the same library (for the
    /// webauthn-rs adapter: a `webauthn_rs::prelude::Passkey`).
    pub adapter_credential: Value,
}

impl VerifiedCredential {
    /// A verified credential with the mandatory facts; the others start empty or false.
    pub fn new(
        credential_id: CredentialId,
        public_key: PublicKey,
        sign_count: u32,
        adapter_credential: Value,
    ) -> Self {
        Self {
            credential_id,
            public_key,
            sign_count,
            aaguid: "00000000-0000-0000-0000-000000000000".to_owned(),
            backup_eligible: false,
            backup_state: false,
            transports: Vec::new(),
            attestation_format: "none".to_owned(),
            user_verified: false,
            adapter_credential,
        }
    }
}

/// Why a registration ceremony failed: the relying party's rejection of the response, or a
/// rule of the domain. Stored (snake_case names are a storage format).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CeremonyFailure {
    /// The response answers another challenge (a replayed, stale or foreign ceremony).
    #[error("the response answers another challenge")]
    ChallengeMismatch,
    /// The response comes from an origin not in the allow-list.
    #[error("the response comes from a foreign origin")]
    OriginMismatch,
    /// The authenticator data names another relying party.
    #[error("the response is for another relying party")]
    RpIdMismatch,
    /// The user was not present.
    #[error("the user was not present")]
    UserNotPresent,
    /// The policy required user verification and there was none.
    #[error("the user was not verified")]
    UserNotVerified,
    /// The credential's algorithm is not allowed.
    #[error("the credential's algorithm is not allowed")]
    AlgorithmNotAllowed,
    /// The credential is one the ceremony excluded.
    #[error("the credential was excluded")]
    CredentialExcluded,
    /// The response is malformed or its signature or attestation is invalid.
    #[error("the response is invalid")]
    InvalidResponse,
    /// The ceremony expired before the response arrived.
    #[error("the ceremony expired")]
    Expired,
    /// The credential id is registered already (to this or another user).
    #[error("the credential is registered already")]
    CredentialClaimed,
    /// The code the ceremony was started with is no longer usable.
    #[error("the code is no longer usable")]
    CodeUnusable,
}

/// Whether a passkey can be used (ZITADEL's `AUTH_FACTOR_STATE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PasskeyState {
    /// Registered and usable.
    #[serde(rename = "AUTH_FACTOR_STATE_READY")]
    Ready,
    /// Registration started, not verified yet.
    #[serde(rename = "AUTH_FACTOR_STATE_NOT_READY")]
    NotReady,
}

/// A passkey of a user, as the user state keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Passkey {
    /// Its id.
    pub id: PasskeyId,
    /// Its name.
    pub name: String,
    /// The code it was registered with.
    pub code_id: CodeId,
    /// The verified credential, with the latest sign count and backup state.
    pub credential: VerifiedCredential,
}

/// An open registration ceremony.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Ceremony {
    /// The passkey it registers.
    pub passkey_id: PasskeyId,
    /// The code it was started with.
    pub code_id: CodeId,
    /// The relying party's state.
    pub state: CeremonyState,
    /// When it closes.
    pub expires_at: DateTime<Utc>,
    /// The digest of the secret its start answered the browser with: only who holds that
    /// secret finishes it (the stored state alone — a challenge — would let any reader answer
    /// with an authenticator of their own). `None` for a ceremony started by a release without
    /// ceremony secrets: it cannot be finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_digest: Option<SecretDigest>,
}

impl Ceremony {
    /// Whether `secret` is this ceremony's secret (compared in constant time).
    pub fn answered_by(&self, secret: &Secret) -> bool {
        self.secret_digest
            .as_ref()
            .is_some_and(|digest| secret.matches(digest))
    }
}

/// The facts of a verified registration, as stored in `user.human.passwordless.token.verified`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredPasskey {
    /// The passkey.
    pub passkey_id: PasskeyId,
    /// The code it was registered with.
    pub code_id: CodeId,
    /// Its name.
    pub name: String,
    /// What the relying party verified.
    #[serde(flatten)]
    pub credential: VerifiedCredential,
}
