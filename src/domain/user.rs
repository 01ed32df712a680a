//! The user aggregate: kind, lifecycle status, email, passkeys and the links issued to it.
//!
//! The state stays bounded however long the history: links are remembered only as the version
//! that superseded earlier ones and the last [`MAX_RATE_LIMIT`] issuance times, passkeys only as
//! a count.

use std::collections::VecDeque;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::text::{Email, MAX_NAME_LEN, validate_text};
use super::{Change, DomainError};
use crate::ids::{CodeId, OrgId, StreamId, UserId};
use crate::policy::MAX_RATE_LIMIT;

/// Longest accepted preferred-language tag.
pub const MAX_LANGUAGE_LEN: usize = 35;

/// Bytes serialized as standard base64 (public keys).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Bytes(pub Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bytes({})", STANDARD.encode(&self.0))
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD
            .decode(text.as_bytes())
            .map(Bytes)
            .map_err(serde::de::Error::custom)
    }
}

/// A WebAuthn credential id: 1..=1023 opaque bytes, serialized as unpadded base64url (as
/// WebAuthn JSON does).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CredentialId(Vec<u8>);

/// Longest WebAuthn credential id.
pub const MAX_CREDENTIAL_ID_LEN: usize = 1023;
/// Longest accepted public key.
pub const MAX_PUBLIC_KEY_LEN: usize = 4096;

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

    /// The claim stream of this credential id (SHA-256 of the bytes keeps the id short).
    pub fn stream(&self) -> StreamId {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(&self.0);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        StreamId {
            kind: crate::ids::AggregateKind::Credential,
            id: hex,
        }
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

/// A passkey to register: opaque to this crate (the WebAuthn ceremony happens elsewhere).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewPasskey {
    /// The credential id.
    pub credential_id: CredentialId,
    /// The public key bytes (COSE), base64 on the wire.
    pub public_key: Bytes,
    /// A name for the device.
    pub name: String,
}

impl NewPasskey {
    /// Validates the public key and the name.
    ///
    /// # Errors
    /// [`DomainError::InvalidPasskey`] or [`DomainError::InvalidText`].
    pub fn validate(&self) -> Result<(), DomainError> {
        if self.public_key.0.is_empty() || self.public_key.0.len() > MAX_PUBLIC_KEY_LEN {
            return Err(DomainError::InvalidPasskey(
                "public key must be 1..=4096 bytes",
            ));
        }
        validate_text("passkey name", &self.name, MAX_NAME_LEN)
    }
}

/// Events of a user stream. Type names are a storage format: never rename.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all_fields = "camelCase")]
pub enum UserEvent {
    /// A human user was created, in state initial.
    #[serde(rename = "user.human.added")]
    HumanAdded {
        /// Owning org.
        org_id: OrgId,
        /// Login name.
        user_name: String,
        /// Display name.
        display_name: String,
        /// Email address.
        email: Email,
        /// Whether the email is verified already.
        email_verified: bool,
        /// Preferred language tag (e.g. `en`), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preferred_language: Option<String>,
    },
    /// A machine user was created (never gets links).
    #[serde(rename = "user.machine.added")]
    MachineAdded {
        /// Owning org.
        org_id: OrgId,
        /// Login name.
        user_name: String,
        /// Display name.
        name: String,
    },
    /// The email changed; it is unverified now and earlier links die.
    #[serde(rename = "user.human.email.changed")]
    EmailChanged {
        /// New address.
        email: Email,
    },
    /// The email was verified.
    #[serde(rename = "user.human.email.verified")]
    EmailVerified {},
    /// The user was deactivated.
    #[serde(rename = "user.deactivated")]
    Deactivated {},
    /// The user was reactivated.
    #[serde(rename = "user.reactivated")]
    Reactivated {},
    /// The user was locked.
    #[serde(rename = "user.locked")]
    Locked {},
    /// The user was unlocked.
    #[serde(rename = "user.unlocked")]
    Unlocked {},
    /// The user was removed.
    #[serde(rename = "user.removed")]
    Removed {},
    /// A registration link was issued to the user (one live link and rate limit).
    #[serde(rename = "user.human.passwordless.link.issued")]
    LinkIssued {
        /// The code of the link.
        code_id: CodeId,
        /// Issuance time.
        issued_at: DateTime<Utc>,
        /// Whether this link supersedes the user's earlier links.
        supersedes_earlier: bool,
    },
    /// A passkey was registered through a link.
    #[serde(rename = "user.human.passkey.added")]
    PasskeyAdded {
        /// The code it was registered with.
        code_id: CodeId,
        /// Credential id.
        credential_id: CredentialId,
        /// Public key.
        public_key: Bytes,
        /// Device name.
        name: String,
    },
}

/// Human or machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKind {
    /// A person: may get links.
    Human,
    /// A service account: never gets links.
    Machine,
}

/// Lifecycle status of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserStatus {
    /// No events yet.
    #[default]
    Missing,
    /// Created, setup not finished (first passkey or verified email makes it active).
    Initial,
    /// Active.
    Active,
    /// Deactivated.
    Inactive,
    /// Locked.
    Locked,
    /// Removed.
    Removed,
}

/// State folded from a user stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserState {
    /// Stream version.
    pub version: u64,
    /// Owning org (set by the added event).
    pub org_id: Option<OrgId>,
    /// Human or machine.
    pub kind: Option<UserKind>,
    /// Status.
    pub status: UserStatus,
    /// Email address (humans).
    pub email: Option<Email>,
    /// Whether the email is verified.
    pub email_verified: bool,
    /// Version of the last email change (links issued before it are dead).
    pub email_changed_version: u64,
    /// Version of the last link that superseded earlier ones.
    pub superseding_link_version: u64,
    /// Issuance times of the most recent links, newest last, at most [`MAX_RATE_LIMIT`].
    pub recent_links: VecDeque<DateTime<Utc>>,
    /// Number of passkeys registered through links (the credentials themselves live in their
    /// claim streams; keeping only a count keeps the state bounded).
    pub passkeys: u32,
}

impl UserState {
    /// Applies one event (total).
    pub fn apply(&mut self, event: &UserEvent) {
        self.version += 1;
        match event {
            UserEvent::HumanAdded {
                org_id,
                email,
                email_verified,
                ..
            } => {
                self.org_id = Some(org_id.clone());
                self.kind = Some(UserKind::Human);
                self.status = UserStatus::Initial;
                self.email = Some(email.clone());
                self.email_verified = *email_verified;
            }
            UserEvent::MachineAdded { org_id, .. } => {
                self.org_id = Some(org_id.clone());
                self.kind = Some(UserKind::Machine);
                self.status = UserStatus::Active;
            }
            UserEvent::EmailChanged { email } => {
                self.email = Some(email.clone());
                self.email_verified = false;
                self.email_changed_version = self.version;
            }
            UserEvent::EmailVerified {} => {
                self.email_verified = true;
                self.activate_if_initial();
            }
            UserEvent::Deactivated {} => self.status = UserStatus::Inactive,
            UserEvent::Reactivated {} | UserEvent::Unlocked {} => self.status = UserStatus::Active,
            UserEvent::Locked {} => self.status = UserStatus::Locked,
            UserEvent::Removed {} => self.status = UserStatus::Removed,
            UserEvent::LinkIssued {
                issued_at,
                supersedes_earlier,
                ..
            } => {
                if *supersedes_earlier {
                    self.superseding_link_version = self.version;
                }
                if self.recent_links.len() == MAX_RATE_LIMIT as usize {
                    self.recent_links.pop_front();
                }
                self.recent_links.push_back(*issued_at);
            }
            UserEvent::PasskeyAdded { .. } => {
                self.passkeys = self.passkeys.saturating_add(1);
                self.activate_if_initial();
            }
        }
    }

    fn activate_if_initial(&mut self) {
        if self.status == UserStatus::Initial {
            self.status = UserStatus::Active;
        }
    }

    /// Whether the user exists and is not removed.
    pub fn exists(&self) -> bool {
        !matches!(self.status, UserStatus::Missing | UserStatus::Removed)
    }

    /// The verified email, if any.
    pub fn verified_email(&self) -> Option<&Email> {
        self.email.as_ref().filter(|_| self.email_verified)
    }

    /// Finds the user for a caller working in `org_context`: a missing or removed user, or one of
    /// another org, is [`DomainError::UserNotFound`] (never reveal users of other orgs).
    ///
    /// # Errors
    /// [`DomainError::UserNotFound`].
    pub fn locate(&self, org_context: Option<&OrgId>) -> Result<&OrgId, DomainError> {
        let org = self
            .org_id
            .as_ref()
            .filter(|_| self.exists())
            .ok_or(DomainError::UserNotFound)?;
        match org_context {
            Some(context) if context != org => Err(DomainError::UserNotFound),
            _ => Ok(org),
        }
    }

    /// The user may get and redeem links: human, initial or active.
    ///
    /// # Errors
    /// [`DomainError::UserNotFound`], [`DomainError::UserNotHuman`],
    /// [`DomainError::UserInactive`] or [`DomainError::UserLocked`].
    pub fn require_link_eligible(&self) -> Result<(), DomainError> {
        if !self.exists() {
            return Err(DomainError::UserNotFound);
        }
        if self.kind != Some(UserKind::Human) {
            return Err(DomainError::UserNotHuman);
        }
        match self.status {
            UserStatus::Initial | UserStatus::Active => Ok(()),
            UserStatus::Locked => Err(DomainError::UserLocked),
            _ => Err(DomainError::UserInactive),
        }
    }
}

/// A new human user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddHuman {
    /// Owning org.
    pub org_id: OrgId,
    /// Login name.
    pub user_name: String,
    /// Display name.
    pub display_name: String,
    /// Email address (unvalidated text; validated by the decision).
    pub email: String,
    /// Whether the email is verified already.
    pub email_verified: bool,
    /// Preferred language tag.
    pub preferred_language: Option<String>,
}

/// User lifecycle commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    /// Create a human user.
    AddHuman(AddHuman),
    /// Create a machine user.
    AddMachine {
        /// Owning org.
        org_id: OrgId,
        /// Login name.
        user_name: String,
        /// Display name.
        name: String,
    },
    /// Change the email (unverifies it, kills earlier links).
    ChangeEmail {
        /// New address (unvalidated text).
        email: String,
    },
    /// Verify the current email.
    VerifyEmail,
    /// Deactivate.
    Deactivate,
    /// Reactivate.
    Reactivate,
    /// Lock.
    Lock,
    /// Unlock.
    Unlock,
    /// Remove.
    Remove,
}

impl UserCommand {
    /// A short name for logs (never the command's data).
    pub fn name(&self) -> &'static str {
        match self {
            Self::AddHuman(_) => "add_human",
            Self::AddMachine { .. } => "add_machine",
            Self::ChangeEmail { .. } => "change_email",
            Self::VerifyEmail => "verify_email",
            Self::Deactivate => "deactivate",
            Self::Reactivate => "reactivate",
            Self::Lock => "lock",
            Self::Unlock => "unlock",
            Self::Remove => "remove",
        }
    }

    /// The org a creating command names.
    pub fn creates_in(&self) -> Option<&OrgId> {
        match self {
            Self::AddHuman(add) => Some(&add.org_id),
            Self::AddMachine { org_id, .. } => Some(org_id),
            _ => None,
        }
    }
}

/// Decides a user lifecycle command. `org` is the state of the org the user is (to be) in.
///
/// # Errors
/// [`DomainError`] for invalid input or a status that forbids the command.
pub fn decide(
    id: &UserId,
    user: &UserState,
    org: &super::org::OrgState,
    command: &UserCommand,
) -> Result<Vec<Change>, DomainError> {
    use UserStatus::*;
    let event = match command {
        UserCommand::AddHuman(add) => {
            validate_text("user name", &add.user_name, MAX_NAME_LEN)?;
            validate_text("display name", &add.display_name, MAX_NAME_LEN)?;
            if let Some(language) = &add.preferred_language {
                validate_text("preferred language", language, MAX_LANGUAGE_LEN)?;
            }
            let email = Email::parse(add.email.clone())?;
            require_new(user, org)?;
            UserEvent::HumanAdded {
                org_id: add.org_id.clone(),
                user_name: add.user_name.clone(),
                display_name: add.display_name.clone(),
                email,
                email_verified: add.email_verified,
                preferred_language: add.preferred_language.clone(),
            }
        }
        UserCommand::AddMachine {
            org_id,
            user_name,
            name,
        } => {
            validate_text("user name", user_name, MAX_NAME_LEN)?;
            validate_text("name", name, MAX_NAME_LEN)?;
            require_new(user, org)?;
            UserEvent::MachineAdded {
                org_id: org_id.clone(),
                user_name: user_name.clone(),
                name: name.clone(),
            }
        }
        UserCommand::ChangeEmail { email } => {
            let email = Email::parse(email.clone())?;
            require_human(user)?;
            if user.email.as_ref() == Some(&email) {
                return Err(DomainError::EmailUnchanged);
            }
            UserEvent::EmailChanged { email }
        }
        UserCommand::VerifyEmail => {
            require_human(user)?;
            if user.email_verified {
                return Err(DomainError::EmailUnchanged);
            }
            UserEvent::EmailVerified {}
        }
        UserCommand::Deactivate => match require_existing(user)? {
            Initial | Active | Locked => UserEvent::Deactivated {},
            _ => return Err(DomainError::UserStateConflict("deactivate")),
        },
        UserCommand::Reactivate => match require_existing(user)? {
            Inactive => UserEvent::Reactivated {},
            _ => return Err(DomainError::UserStateConflict("reactivate")),
        },
        UserCommand::Lock => match require_existing(user)? {
            Initial | Active => UserEvent::Locked {},
            _ => return Err(DomainError::UserStateConflict("lock")),
        },
        UserCommand::Unlock => match require_existing(user)? {
            Locked => UserEvent::Unlocked {},
            _ => return Err(DomainError::UserStateConflict("unlock")),
        },
        UserCommand::Remove => {
            require_existing(user)?;
            UserEvent::Removed {}
        }
    };
    Ok(vec![Change::new(StreamId::user(id), event)])
}

fn require_new(user: &UserState, org: &super::org::OrgState) -> Result<(), DomainError> {
    if user.status != UserStatus::Missing {
        return Err(DomainError::UserAlreadyExists);
    }
    org.require_active()
}

fn require_existing(user: &UserState) -> Result<UserStatus, DomainError> {
    if !user.exists() {
        return Err(DomainError::UserNotFound);
    }
    Ok(user.status)
}

fn require_human(user: &UserState) -> Result<(), DomainError> {
    require_existing(user)?;
    if user.kind != Some(UserKind::Human) {
        return Err(DomainError::UserNotHuman);
    }
    Ok(())
}
