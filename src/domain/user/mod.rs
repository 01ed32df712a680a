//! The user aggregate: kind, lifecycle status, email, passkeys and the codes issued to it; its
//! creation and lifecycle decisions are in `decisions.rs` beside this file.
//!
//! The state stays bounded however long the history: codes are remembered only as the version
//! that superseded earlier ones and the last [`MAX_RATE_LIMIT`] issuance times; passkeys are at
//! most [`MAX_PASSKEYS`](super::passkey::MAX_PASSKEYS), open ceremonies at most
//! [`MAX_OPEN_CEREMONIES`].

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod decisions;
mod ensure;

pub use decisions::{AddHuman, AddMachine, ChangeUser, ErasePersonalData, UserChange};
pub use ensure::{EnsureHuman, EnsureMachine};

use super::DomainError;
use super::credential::{CredentialId, PublicKey};
use super::login::{LOGIN_LIFETIME, LoginFailure, LoginId};
use super::passkey::{
    Ceremony, CeremonyFailure, CeremonyState, MAX_OPEN_CEREMONIES, Passkey, RegisteredPasskey,
};
use super::text::{ERASED, Email};
use crate::ids::{CodeId, CodeRef, OrgId, PasskeyId};
use crate::policy::MAX_RATE_LIMIT;
use crate::secret::SecretDigest;

/// The longest lifetime a code can have (policy bounds it to 24 hours).
const MAX_CODE_LIFETIME: chrono::Duration = chrono::Duration::hours(24);
/// Codes a user's state names by reference at most (older ones fall out first).
const MAX_ISSUED_CODES: usize = 1_024;

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
    /// A passkey registration ceremony started with a code (ZITADEL's
    /// `user.human.passwordless.token.added`).
    #[serde(rename = "user.human.passwordless.token.added")]
    PasskeyRegistrationStarted {
        /// The passkey being registered.
        passkey_id: PasskeyId,
        /// The code it was started with.
        code_id: CodeId,
        /// The relying party's ceremony state.
        ceremony: CeremonyState,
        /// When the ceremony closes.
        expires_at: DateTime<Utc>,
        /// The digest of the ceremony's secret (what finishing it requires).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret_digest: Option<SecretDigest>,
    },
    /// The relying party verified the ceremony's response: the passkey is registered.
    #[serde(rename = "user.human.passwordless.token.verified")]
    PasskeyRegistered(RegisteredPasskey),
    /// A ceremony failed; it is closed.
    #[serde(rename = "user.human.passwordless.token.check.failed")]
    PasskeyRegistrationFailed {
        /// The passkey that was being registered.
        passkey_id: PasskeyId,
        /// Why.
        reason: CeremonyFailure,
    },
    /// A passkey was removed (its credential id stays claimed).
    #[serde(rename = "user.human.passwordless.token.removed")]
    PasskeyRemoved {
        /// The passkey.
        passkey_id: PasskeyId,
    },
    /// A passkey was used to log in.
    #[serde(rename = "user.human.passwordless.token.used")]
    PasskeyUsed {
        /// The passkey.
        passkey_id: PasskeyId,
        /// The authenticator's signature counter.
        sign_count: u32,
        /// Whether the credential is backed up now.
        backup_state: bool,
    },
    /// A login presented a signature counter that did not grow: possibly a cloned
    /// authenticator. The use was refused.
    #[serde(rename = "user.human.passwordless.token.sign_count.regressed")]
    PasskeySignCountRegressed {
        /// The passkey.
        passkey_id: PasskeyId,
        /// The counter on record.
        stored: u32,
        /// The counter presented.
        presented: u32,
    },
    /// A login with a passkey succeeded (ZITADEL's name for a passwordless check): the
    /// assertion's counter and backup state are the passkey's now, and the login's state can
    /// never be used again.
    #[serde(rename = "user.human.passwordless.token.check.succeeded")]
    LoginSucceeded {
        /// The passkey.
        passkey_id: PasskeyId,
        /// The authenticator's signature counter.
        sign_count: u32,
        /// Whether the credential is backed up now.
        backup_state: bool,
        /// The login.
        login_id: LoginId,
        /// When the login's state expired (it is kept as used until then).
        login_expires_at: DateTime<Utc>,
    },
    /// A login with one of the user's passkeys was refused. (ZITADEL's name for a failed
    /// passwordless check was taken by [`UserEvent::PasskeyRegistrationFailed`].)
    #[serde(rename = "user.human.passwordless.login.check.failed")]
    LoginFailed {
        /// The passkey, when the credential still names one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        passkey_id: Option<PasskeyId>,
        /// Why.
        reason: LoginFailure,
        /// How the relying party rejected the assertion, when it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rejection: Option<CeremonyFailure>,
    },
    /// A passkey registered with caller-supplied key bytes by releases before the WebAuthn
    /// ceremony existed. Read for old streams, never written.
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
    /// The user's personal data was erased: the key it was sealed under is destroyed, so every
    /// earlier event still folds, with its names, email and passkey names erased; earlier links
    /// die, and the user gets no links and logs in no more.
    #[serde(rename = "user.personal_data.erased")]
    PersonalDataErased {},
    /// The user's profile changed (its directory renamed it or changed its language).
    #[serde(rename = "user.profile.changed")]
    ProfileChanged {
        /// Login name.
        user_name: String,
        /// Display name (a machine's name).
        display_name: String,
        /// Preferred language tag, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preferred_language: Option<String>,
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
        "user.human.passwordless.token.added",
        "user.human.passwordless.token.verified",
        "user.human.passwordless.token.check.failed",
        "user.human.passwordless.token.removed",
        "user.human.passwordless.token.used",
        "user.human.passwordless.token.sign_count.regressed",
        "user.human.passwordless.token.check.succeeded",
        "user.human.passwordless.login.check.failed",
        "user.human.passkey.added",
        "user.profile.changed",
        "user.personal_data.erased",
    ];
}

/// Human or machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum UserKind {
    /// A person: may get codes.
    Human,
    /// A service account: never gets codes.
    Machine,
}

/// Lifecycle status of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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
/// Its serialized form is the snapshot format of org and user streams: changing its fields
/// changes that format (bump `SNAPSHOT_FORMAT` in `service/snapshot.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
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
    // Shared text: the state is copied whenever an event changes it.
    user_name: Arc<str>,
    display_name: Arc<str>,
    #[serde(default)]
    preferred_language: Option<Arc<str>>,
    passkeys: Vec<Passkey>,
    ceremonies: VecDeque<Ceremony>,
    legacy_passkeys: u32,
    /// Logins that succeeded and whose state has not expired yet (at the newest login's start):
    /// a login state is used once.
    #[serde(default)]
    recent_logins: VecDeque<(LoginId, DateTime<Utc>)>,
    /// The codes issued within the longest code lifetime (24 hours) before the newest, with
    /// when: what a code's reference names (revoking, redelivering).
    #[serde(default)]
    issued_codes: VecDeque<(CodeId, DateTime<Utc>)>,
    /// Whether the user's personal data was erased.
    #[serde(default)]
    erased: bool,
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
                user_name,
                display_name,
                preferred_language,
            } => {
                self.user_name = user_name.as_str().into();
                self.display_name = display_name.as_str().into();
                self.preferred_language = preferred_language.as_deref().map(Arc::from);
                self.org_id = Some(org_id.clone());
                self.kind = Some(UserKind::Human);
                self.status = UserStatus::Initial;
                self.email = Some(email.clone());
                self.email_verified = *email_verified;
            }
            UserEvent::MachineAdded {
                org_id,
                user_name,
                name,
            } => {
                self.user_name = user_name.as_str().into();
                self.display_name = name.as_str().into();
                self.org_id = Some(org_id.clone());
                self.kind = Some(UserKind::Machine);
                self.status = UserStatus::Active;
            }
            UserEvent::ProfileChanged {
                user_name,
                display_name,
                preferred_language,
            } => {
                self.user_name = user_name.as_str().into();
                self.display_name = display_name.as_str().into();
                self.preferred_language = preferred_language.as_deref().map(Arc::from);
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
                code_id,
                issued_at,
                supersedes_earlier,
            } => {
                if *supersedes_earlier {
                    self.supersede(self.version);
                }
                if self.recent_codes.len() == MAX_RATE_LIMIT as usize {
                    self.recent_codes.pop_front();
                }
                self.recent_codes.push_back(*issued_at);
                // No code outlives a day: older ones are named by no live reference.
                let oldest_live = *issued_at - MAX_CODE_LIFETIME;
                while self
                    .issued_codes
                    .front()
                    .is_some_and(|(_, at)| *at < oldest_live)
                    || self.issued_codes.len() >= MAX_ISSUED_CODES
                {
                    self.issued_codes.pop_front();
                }
                self.issued_codes.push_back((code_id.clone(), *issued_at));
            }
            UserEvent::CodeUsable { issued_version, .. } => self.supersede(*issued_version),
            UserEvent::PasskeyRegistrationStarted {
                passkey_id,
                code_id,
                ceremony,
                expires_at,
                secret_digest,
            } => {
                if self.ceremonies.len() == MAX_OPEN_CEREMONIES {
                    self.ceremonies.pop_front();
                }
                self.ceremonies.push_back(Ceremony {
                    passkey_id: passkey_id.clone(),
                    code_id: code_id.clone(),
                    state: ceremony.clone(),
                    expires_at: *expires_at,
                    secret_digest: *secret_digest,
                });
            }
            UserEvent::PasskeyRegistered(registered) => {
                self.close_ceremony(&registered.passkey_id);
                self.passkeys.push(Passkey {
                    id: registered.passkey_id.clone(),
                    name: registered.name.clone(),
                    code_id: registered.code_id.clone(),
                    credential: registered.credential.clone(),
                });
                self.activate_if_initial();
            }
            UserEvent::PasskeyRegistrationFailed { passkey_id, .. } => {
                self.close_ceremony(passkey_id);
            }
            UserEvent::PasskeyRemoved { passkey_id } => {
                self.passkeys.retain(|passkey| &passkey.id != passkey_id);
            }
            UserEvent::PasskeyUsed {
                passkey_id,
                sign_count,
                backup_state,
            } => {
                if let Some(passkey) = self.passkeys.iter_mut().find(|p| &p.id == passkey_id) {
                    passkey.credential.sign_count = *sign_count;
                    passkey.credential.backup_state = *backup_state;
                }
            }
            UserEvent::PasskeySignCountRegressed { .. } | UserEvent::LoginFailed { .. } => {}
            UserEvent::LoginSucceeded {
                passkey_id,
                sign_count,
                backup_state,
                login_id,
                login_expires_at,
            } => {
                if let Some(passkey) = self.passkeys.iter_mut().find(|p| &p.id == passkey_id) {
                    passkey.credential.sign_count = *sign_count;
                    passkey.credential.backup_state = *backup_state;
                }
                // Logins whose state expired before this one started need not be kept.
                let started = *login_expires_at - LOGIN_LIFETIME;
                self.recent_logins.retain(|(_, expires)| *expires > started);
                self.recent_logins
                    .push_back((login_id.clone(), *login_expires_at));
            }
            UserEvent::PasskeyAdded { .. } => {
                self.legacy_passkeys = self.legacy_passkeys.saturating_add(1);
                self.activate_if_initial();
            }
            UserEvent::PersonalDataErased {} => {
                // What the events said is unreadable now; the state forgets it too.
                self.erased = true;
                self.stopped_version = self.version;
                self.user_name = ERASED.into();
                self.display_name = ERASED.into();
                if self.email.is_some() {
                    self.email = Some(Email::erased());
                }
                for passkey in &mut self.passkeys {
                    passkey.name = ERASED.to_owned();
                }
            }
        }
    }

    fn close_ceremony(&mut self, passkey_id: &PasskeyId) {
        self.ceremonies.retain(|c| &c.passkey_id != passkey_id);
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

    /// The passkeys the user holds, oldest first.
    pub fn passkeys(&self) -> &[Passkey] {
        &self.passkeys
    }

    /// A passkey by id.
    pub fn passkey(&self, id: &PasskeyId) -> Option<&Passkey> {
        self.passkeys.iter().find(|passkey| &passkey.id == id)
    }

    /// A passkey by credential id.
    pub fn passkey_by_credential(&self, credential_id: &CredentialId) -> Option<&Passkey> {
        self.passkeys
            .iter()
            .find(|passkey| &passkey.credential.credential_id == credential_id)
    }

    /// The code of the user's (issued within the last day) whose reference is `reference`.
    pub fn code_by_reference(&self, reference: &CodeRef) -> Option<&CodeId> {
        self.issued_codes
            .iter()
            .map(|(code_id, _)| code_id)
            .find(|code_id| code_id.reference() == *reference)
    }

    /// Whether a login with this id succeeded (its state is kept as used until it expires).
    pub fn login_used(&self, login_id: &LoginId) -> bool {
        self.recent_logins.iter().any(|(id, _)| id == login_id)
    }

    /// Logins that succeeded whose state has not expired at `now`.
    pub fn recent_logins(&self, now: DateTime<Utc>) -> usize {
        self.recent_logins
            .iter()
            .filter(|(_, expires)| *expires > now)
            .count()
    }

    /// The open registration ceremonies, oldest first.
    pub fn ceremonies(&self) -> impl Iterator<Item = &Ceremony> {
        self.ceremonies.iter()
    }

    /// An open ceremony by the passkey it registers.
    pub fn ceremony(&self, passkey_id: &PasskeyId) -> Option<&Ceremony> {
        self.ceremonies.iter().find(|c| &c.passkey_id == passkey_id)
    }

    /// Passkeys registered with key bytes by releases before the WebAuthn ceremony (counted,
    /// not usable for logins).
    pub fn legacy_passkeys(&self) -> u32 {
        self.legacy_passkeys
    }

    /// The account name.
    pub fn user_name(&self) -> &str {
        &self.user_name
    }

    /// The preferred language tag, if any.
    pub fn preferred_language(&self) -> Option<&str> {
        self.preferred_language.as_deref()
    }

    /// The email address on file (verified or not).
    pub fn email(&self) -> Option<&Email> {
        self.email.as_ref()
    }

    /// Whether the email on file is verified.
    pub fn email_verified(&self) -> bool {
        self.email_verified
    }

    /// Display name.
    pub fn display_name(&self) -> &str {
        &self.display_name
    }

    /// Issuance times of the most recent codes, oldest first, at most [`MAX_RATE_LIMIT`].
    pub fn recent_codes(&self) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        self.recent_codes.iter().copied()
    }

    /// Whether the user's personal data was erased (its names and email read as [`ERASED`]).
    pub fn personal_data_erased(&self) -> bool {
        self.erased
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

    /// Whether a lock, deactivation, removal or erasure after `issued_version` killed the code.
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
    /// [`DomainError::UserInactive`], [`DomainError::UserLocked`] or
    /// [`DomainError::PersonalDataErased`].
    pub fn require_code_eligible(&self) -> Result<(), DomainError> {
        if !self.exists() {
            return Err(DomainError::UserNotFound);
        }
        if self.erased {
            return Err(DomainError::PersonalDataErased);
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
