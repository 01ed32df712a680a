//! The user aggregate: kind, lifecycle status, email, passkeys and the codes issued to it; its
//! creation and lifecycle decisions are in `decisions.rs` beside this file.
//!
//! The state stays bounded however long the history: codes are remembered only as the version
//! that superseded earlier ones and the last [`MAX_RATE_LIMIT`] issuance times, passkeys only as
//! a count.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod decisions;

pub use decisions::{AddHuman, AddMachine, ChangeUser, UserChange};

use super::DomainError;
use super::credential::{CredentialId, PublicKey};
use super::text::Email;
use crate::ids::{CodeId, OrgId};
use crate::policy::MAX_RATE_LIMIT;

/// Longest accepted preferred-language tag.
pub const MAX_LANGUAGE_LEN: usize = 35;

/// Events of a user stream. Type names are a storage format: never rename.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all_fields = "camelCase")]
#[non_exhaustive]
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
    /// A machine user was created (never gets codes).
    #[serde(rename = "user.machine.added")]
    MachineAdded {
        /// Owning org.
        org_id: OrgId,
        /// Login name.
        user_name: String,
        /// Display name.
        name: String,
    },
    /// The email changed; it is unverified now and earlier codes die.
    #[serde(rename = "user.human.email.changed")]
    EmailChanged {
        /// New address.
        email: Email,
    },
    /// The email was verified.
    #[serde(rename = "user.human.email.verified")]
    EmailVerified {},
    /// The user was deactivated (earlier codes die for good).
    #[serde(rename = "user.deactivated")]
    Deactivated {},
    /// The user was reactivated.
    #[serde(rename = "user.reactivated")]
    Reactivated {},
    /// The user was locked (earlier codes die for good).
    #[serde(rename = "user.locked")]
    Locked {},
    /// The user was unlocked.
    #[serde(rename = "user.unlocked")]
    Unlocked {},
    /// The user was removed.
    #[serde(rename = "user.removed")]
    Removed {},
    /// A registration code was issued to the user (rate limit; supersession when it is usable
    /// at once).
    #[serde(rename = "user.human.passwordless.link.issued")]
    CodeIssued {
        /// The code.
        code_id: CodeId,
        /// Issuance time.
        issued_at: DateTime<Utc>,
        /// Whether this code superseded the user's earlier codes at issuance (returned codes).
        supersedes_earlier: bool,
    },
    /// A delivered code became usable (its delivery was recorded) and superseded the codes
    /// issued to the user before it.
    #[serde(rename = "user.human.passwordless.link.usable")]
    CodeUsable {
        /// The code.
        code_id: CodeId,
        /// The version of this stream's `link.issued` event for the code.
        issued_version: u64,
    },
    /// A passkey was registered with a code.
    #[serde(rename = "user.human.passkey.added")]
    PasskeyAdded {
        /// The code it was registered with.
        code_id: CodeId,
        /// Credential id.
        credential_id: CredentialId,
        /// Public key.
        public_key: PublicKey,
        /// Device name.
        name: String,
    },
}

impl UserEvent {
    /// The stored type names, in declaration order.
    pub const TYPES: &'static [&'static str] = &[
        "user.human.added",
        "user.machine.added",
        "user.human.email.changed",
        "user.human.email.verified",
        "user.deactivated",
        "user.reactivated",
        "user.locked",
        "user.unlocked",
        "user.removed",
        "user.human.passwordless.link.issued",
        "user.human.passwordless.link.usable",
        "user.human.passkey.added",
    ];
}

/// Human or machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserKind {
    /// A person: may get codes.
    Human,
    /// A service account: never gets codes.
    Machine,
}

/// Lifecycle status of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
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
    version: u64,
    org_id: Option<OrgId>,
    kind: Option<UserKind>,
    status: UserStatus,
    email: Option<Email>,
    email_verified: bool,
    email_changed_version: u64,
    stopped_version: u64,
    /// The newest issuance (stream version) among codes that became usable under one live link:
    /// every code issued before it is superseded.
    superseding_version: u64,
    recent_codes: VecDeque<DateTime<Utc>>,
    passkeys: u32,
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
            UserEvent::Deactivated {} => self.stop(UserStatus::Inactive),
            UserEvent::Locked {} => self.stop(UserStatus::Locked),
            UserEvent::Removed {} => self.stop(UserStatus::Removed),
            UserEvent::Reactivated {} | UserEvent::Unlocked {} => self.status = UserStatus::Active,
            UserEvent::CodeIssued {
                issued_at,
                supersedes_earlier,
                ..
            } => {
                if *supersedes_earlier {
                    self.supersede(self.version);
                }
                if self.recent_codes.len() == MAX_RATE_LIMIT as usize {
                    self.recent_codes.pop_front();
                }
                self.recent_codes.push_back(*issued_at);
            }
            UserEvent::CodeUsable { issued_version, .. } => self.supersede(*issued_version),
            UserEvent::PasskeyAdded { .. } => {
                self.passkeys = self.passkeys.saturating_add(1);
                self.activate_if_initial();
            }
        }
    }

    fn stop(&mut self, status: UserStatus) {
        self.status = status;
        self.stopped_version = self.version;
    }

    fn supersede(&mut self, issued_version: u64) {
        self.superseding_version = self.superseding_version.max(issued_version);
    }

    fn activate_if_initial(&mut self) {
        if self.status == UserStatus::Initial {
            self.status = UserStatus::Active;
        }
    }

    /// Number of events folded in.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Owning org, once created.
    pub fn org_id(&self) -> Option<&OrgId> {
        self.org_id.as_ref()
    }

    /// Human or machine, once created.
    pub fn kind(&self) -> Option<UserKind> {
        self.kind
    }

    /// Status.
    pub fn status(&self) -> UserStatus {
        self.status
    }

    /// Passkeys registered so far.
    pub fn passkeys(&self) -> u32 {
        self.passkeys
    }

    /// Issuance times of the most recent codes, oldest first, at most [`MAX_RATE_LIMIT`].
    pub fn recent_codes(&self) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        self.recent_codes.iter().copied()
    }

    /// Whether the user exists and is not removed.
    pub fn exists(&self) -> bool {
        !matches!(self.status, UserStatus::Missing | UserStatus::Removed)
    }

    /// The verified email, if any.
    pub fn verified_email(&self) -> Option<&Email> {
        self.email.as_ref().filter(|_| self.email_verified)
    }

    /// Whether a code issued at `issued_version` was superseded: a code issued after it became
    /// usable (a code that becomes usable late never supersedes newer ones).
    pub fn superseded(&self, issued_version: u64) -> bool {
        self.superseding_version > issued_version
    }

    /// Whether a lock, deactivation or removal after `issued_version` killed the code.
    pub fn stopped_since(&self, issued_version: u64) -> bool {
        self.stopped_version > issued_version
    }

    /// Whether the email changed after `issued_version`.
    pub fn email_changed_since(&self, issued_version: u64) -> bool {
        self.email_changed_version > issued_version
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

    /// The user may get and redeem codes: human, initial or active.
    ///
    /// # Errors
    /// [`DomainError::UserNotFound`], [`DomainError::UserNotHuman`],
    /// [`DomainError::UserInactive`] or [`DomainError::UserLocked`].
    pub fn require_code_eligible(&self) -> Result<(), DomainError> {
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
