//! Passkey credentials: their value types, and the credential-id claim — one stream per
//! credential id, so that a credential id can be registered to one user only, ever. Claiming
//! appends with "no stream" as the expected version, which makes the uniqueness hold under
//! concurrency in every store.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use super::DomainError;
use crate::ids::{AggregateKind, CodeId, OrgId, PasskeyId, StreamId, UserId};

/// Longest WebAuthn credential id.
pub const MAX_CREDENTIAL_ID_LEN: usize = 1023;
/// Longest accepted public key.
pub const MAX_PUBLIC_KEY_LEN: usize = 4096;

/// A public key (COSE), serialized as standard base64.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey(Vec<u8>);

impl PublicKey {
    /// Wraps key bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", STANDARD.encode(&self.0))
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD
            .decode(text.as_bytes())
            .map(PublicKey)
            .map_err(serde::de::Error::custom)
    }
}

/// A WebAuthn credential id: 1..=1023 opaque bytes, serialized as unpadded base64url (as
/// WebAuthn JSON does).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CredentialId(Vec<u8>);

impl CredentialId {
    /// Validates a credential id.
    ///
    /// # Errors
    /// [`DomainError::InvalidPasskey`] when empty or longer than 1023 bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Self, DomainError> {
        if bytes.is_empty() || bytes.len() > MAX_CREDENTIAL_ID_LEN {
            return Err(DomainError::InvalidPasskey(
                "credential id must be 1..=1023 bytes",
            ));
        }
        Ok(Self(bytes))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Unpadded base64url text.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.0)
    }

    /// The claim stream of this credential id (the SHA-256 of the bytes, in hex, keeps the id
    /// short and valid).
    pub fn stream(&self) -> StreamId {
        let digest = Sha256::digest(&self.0);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        StreamId::from_valid(AggregateKind::Credential, &hex)
    }
}

impl std::fmt::Debug for CredentialId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CredentialId({})", self.to_base64url())
    }
}

impl Serialize for CredentialId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64url())
    }
}

impl<'de> Deserialize<'de> for CredentialId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('=').as_bytes())
            .map_err(serde::de::Error::custom)?;
        Self::new(bytes).map_err(serde::de::Error::custom)
    }
}

/// Events of a credential claim stream. Type names are a storage format: never rename.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all_fields = "camelCase")]
#[non_exhaustive]
pub enum CredentialEvent {
    /// The credential id was registered to a user.
    #[serde(rename = "passkey.credential.claimed")]
    Claimed {
        /// The owner.
        user_id: UserId,
        /// The owner's org.
        org_id: OrgId,
        /// The code it was registered with.
        code_id: CodeId,
        /// The passkey it was registered as (absent in claims of releases before the WebAuthn
        /// ceremony).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        passkey_id: Option<PasskeyId>,
    },
}

impl CredentialEvent {
    /// The stored type names, in declaration order.
    pub const TYPES: &'static [&'static str] = &["passkey.credential.claimed"];
}

/// State of a credential claim.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CredentialState {
    version: u64,
    claimed_by: Option<UserId>,
    passkey_id: Option<PasskeyId>,
}

impl CredentialState {
    /// Applies one event (total; the first claim wins).
    pub fn apply(&mut self, event: &CredentialEvent) {
        self.version += 1;
        match event {
            CredentialEvent::Claimed {
                user_id,
                passkey_id,
                ..
            } => {
                if self.claimed_by.is_none() {
                    self.claimed_by = Some(user_id.clone());
                    self.passkey_id.clone_from(passkey_id);
                }
            }
        }
    }

    /// Number of events folded in.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The user holding the credential id, if claimed.
    pub fn claimed_by(&self) -> Option<&UserId> {
        self.claimed_by.as_ref()
    }

    /// The passkey the credential id was registered as.
    pub fn passkey_id(&self) -> Option<&PasskeyId> {
        self.passkey_id.as_ref()
    }
}
