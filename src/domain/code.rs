//! The passwordless init code aggregate: one registration link's lifecycle, and the
//! cross-aggregate decisions that issue, deliver, check, consume and revoke it.
//!
//! Rule-relevant times live in the payload: `issuedAt` and `expiresAt` are fixed by the issuing
//! event, so no later event can extend a code's life (ZITADEL CVE-2026-32132).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::credential::{CredentialEvent, CredentialState};
use super::org::OrgState;
use super::user::{CredentialId, NewPasskey, UserEvent, UserState};
use super::{Change, CheckFailure, Decision, DomainError};
use crate::ids::{CodeId, OrgId, StreamId, UserId};
use crate::policy::Policy;
use crate::secret::{Secret, SecretDigest};

/// The facts fixed when a code is issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Issued {
    /// The user the code registers a passkey for.
    pub user_id: UserId,
    /// The user's org (resource owner of the code).
    pub org_id: OrgId,
    /// SHA-256 of the secret; the plaintext is never stored.
    pub secret_digest: SecretDigest,
    /// Issuance time.
    pub issued_at: DateTime<Utc>,
    /// Absolute expiry: expired when `now >= expires_at`.
    pub expires_at: DateTime<Utc>,
    /// Version of the user stream's `link.issued` event for this code.
    pub user_version: u64,
    /// Failed checks after which the code is exhausted.
    pub max_failed_checks: u32,
}

/// Why delivery failed (stored; no notifier text, which could carry anything).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryFailure {
    /// The notifier was unreachable or failed transiently.
    Unavailable,
    /// The notifier refused the message.
    Rejected,
}

/// Events of a code stream. Type names are a storage format: never rename.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all_fields = "camelCase")]
pub enum CodeEvent {
    /// Issued and returned to the caller: usable at once.
    #[serde(rename = "user.human.passwordless.initialization.code.added")]
    Added {
        /// The issuance facts.
        #[serde(flatten)]
        issued: Issued,
    },
    /// Issued for delivery: usable only once sent.
    #[serde(rename = "user.human.passwordless.initialization.code.requested")]
    Requested {
        /// The issuance facts.
        #[serde(flatten)]
        issued: Issued,
        /// The v2 url template to render the mailed link with, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url_template: Option<String>,
    },
    /// The notifier accepted the message: the code is usable.
    #[serde(rename = "user.human.passwordless.initialization.code.sent")]
    Sent {
        /// The notifier's receipt id.
        message_id: String,
    },
    /// Delivery failed: the code is never usable.
    #[serde(rename = "user.human.passwordless.initialization.code.delivery.failed")]
    DeliveryFailed {
        /// The failure class.
        reason: DeliveryFailure,
    },
    /// A presented code was refused.
    #[serde(rename = "user.human.passwordless.initialization.code.check.failed")]
    CheckFailed {
        /// The precise reason.
        reason: CheckFailure,
    },
    /// The code was consumed registering a passkey.
    #[serde(rename = "user.human.passwordless.initialization.code.check.succeeded")]
    CheckSucceeded {
        /// The credential registered with it.
        credential_id: CredentialId,
    },
    /// The code was revoked.
    #[serde(rename = "user.human.passwordless.initialization.code.revoked")]
    Revoked {},
}

/// Lifecycle status of a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CodeStatus {
    /// No events yet.
    #[default]
    Missing,
    /// Waiting for delivery.
    Requested,
    /// Usable (returned, or sent).
    Usable,
    /// Delivery failed.
    DeliveryFailed,
    /// Consumed.
    Consumed,
    /// Revoked.
    Revoked,
}

/// State folded from a code stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CodeState {
    /// Stream version.
    pub version: u64,
    /// Status.
    pub status: CodeStatus,
    /// Issuance facts (from the first issuing event; later ones are ignored).
    pub issued: Option<Issued>,
    /// The v2 url template, if any.
    pub url_template: Option<String>,
    /// Failed checks so far.
    pub failed_checks: u32,
}

impl CodeState {
    /// Applies one event (total).
    pub fn apply(&mut self, event: &CodeEvent) {
        self.version += 1;
        match event {
            CodeEvent::Added { issued } if self.issued.is_none() => {
                self.issued = Some(issued.clone());
                self.status = CodeStatus::Usable;
            }
            CodeEvent::Requested {
                issued,
                url_template,
            } if self.issued.is_none() => {
                self.issued = Some(issued.clone());
                self.url_template.clone_from(url_template);
                self.status = CodeStatus::Requested;
            }
            CodeEvent::Sent { .. } if self.status == CodeStatus::Requested => {
                self.status = CodeStatus::Usable;
            }
            CodeEvent::DeliveryFailed { .. } if self.status == CodeStatus::Requested => {
                self.status = CodeStatus::DeliveryFailed;
            }
            CodeEvent::CheckFailed { .. } => self.failed_checks += 1,
            CodeEvent::CheckSucceeded { .. } if self.issued.is_some() => {
                self.status = CodeStatus::Consumed;
            }
            CodeEvent::Revoked {} if self.issued.is_some() => self.status = CodeStatus::Revoked,
            _ => {}
        }
    }

    /// Whether the failed-check cap is reached: the code is dead and no further failure is
    /// recorded.
    pub fn exhausted(&self) -> bool {
        self.issued
            .as_ref()
            .is_some_and(|issued| self.failed_checks >= issued.max_failed_checks)
    }

    /// The owner org of the code, for `details`.
    pub fn org_id(&self) -> Option<&OrgId> {
        self.issued.as_ref().map(|issued| &issued.org_id)
    }
}

/// How an issued code reaches the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Returned to the caller (usable at once): v1 Add, v2 `returnCode`.
    Returned,
    /// Emailed to the user's verified address (usable once sent): v1 Send, v2 `sendLink`.
    Email {
        /// A validated v2 url template, if any.
        url_template: Option<String>,
    },
}

/// Issue a new link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueLink {
    /// Target user.
    pub user_id: UserId,
    /// Org context of an admin call (`x-zitadel-orgid`); `None` resolves the user's own org.
    pub org_context: Option<OrgId>,
    /// The fresh code id.
    pub code_id: CodeId,
    /// Digest of the fresh secret.
    pub secret_digest: SecretDigest,
    /// Returned or emailed.
    pub delivery: Delivery,
}

/// Present a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentCode {
    /// The user from the link.
    pub user_id: UserId,
    /// The code id from the link.
    pub code_id: CodeId,
    /// The secret from the link.
    pub secret: Secret,
}

/// Decides issuance: the user must be a link-eligible human in the org context, its org active,
/// a verified email present for delivery, and the rate limit not hit.
///
/// # Errors
/// [`DomainError`] for every broken rule; nothing is appended.
pub fn issue(
    command: &IssueLink,
    user: &UserState,
    org: &OrgState,
    code: &CodeState,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<Vec<Change>, DomainError> {
    let org_id = user.locate(command.org_context.as_ref())?.clone();
    user.require_link_eligible()?;
    org.require_active()?;
    if matches!(command.delivery, Delivery::Email { .. }) && user.verified_email().is_none() {
        return Err(DomainError::EmailNotVerified);
    }
    if let Some(limit) = policy.rate_limit() {
        let window_start = now - limit.window();
        let recent = user
            .recent_links
            .iter()
            .filter(|issued_at| **issued_at > window_start)
            .count();
        if recent >= limit.max() as usize {
            return Err(DomainError::RateLimited);
        }
    }
    if code.version != 0 {
        return Err(DomainError::CodeAlreadyExists);
    }
    let issued = Issued {
        user_id: command.user_id.clone(),
        org_id,
        secret_digest: command.secret_digest,
        issued_at: now,
        expires_at: now + policy.lifetime(),
        user_version: user.version + 1,
        max_failed_checks: policy.max_failed_checks(),
    };
    let code_event = match &command.delivery {
        Delivery::Returned => CodeEvent::Added { issued },
        Delivery::Email { url_template } => CodeEvent::Requested {
            issued,
            url_template: url_template.clone(),
        },
    };
    Ok(vec![
        Change::new(
            StreamId::user(&command.user_id),
            UserEvent::LinkIssued {
                code_id: command.code_id.clone(),
                issued_at: now,
                supersedes_earlier: policy.one_live_link(),
            },
        ),
        Change::new(StreamId::code(&command.code_id), code_event),
    ])
}

/// Verifies a presented code without consuming it. `Ok` means usable; otherwise the decision
/// records `check.failed` (while under the cap) and refuses with the generic invalid-code error.
pub fn check(
    presented: &PresentCode,
    code: &CodeState,
    user: &UserState,
    org: &OrgState,
    now: DateTime<Utc>,
) -> Result<(), Decision> {
    match failure(presented, code, user, org, now) {
        None => Ok(()),
        Some(reason) => {
            let mut changes = Vec::new();
            let recordable = !matches!(reason, CheckFailure::UnknownCode | CheckFailure::Exhausted);
            if recordable {
                changes.push(Change::new(
                    StreamId::code(&presented.code_id),
                    CodeEvent::CheckFailed { reason },
                ));
            }
            Err(Decision {
                changes,
                refusal: Some(DomainError::CodeInvalid(reason)),
            })
        }
    }
}

fn failure(
    presented: &PresentCode,
    code: &CodeState,
    user: &UserState,
    org: &OrgState,
    now: DateTime<Utc>,
) -> Option<CheckFailure> {
    let Some(issued) = &code.issued else {
        return Some(CheckFailure::UnknownCode);
    };
    // Terminal states first: an exhausted code records nothing more, whatever else is wrong.
    if code.exhausted() {
        return Some(CheckFailure::Exhausted);
    }
    let by_status = match code.status {
        CodeStatus::Consumed => Some(CheckFailure::Consumed),
        CodeStatus::Revoked => Some(CheckFailure::Revoked),
        CodeStatus::DeliveryFailed => Some(CheckFailure::DeliveryFailed),
        CodeStatus::Requested => Some(CheckFailure::NotDelivered),
        CodeStatus::Usable | CodeStatus::Missing => None,
    };
    if by_status.is_some() {
        return by_status;
    }
    if issued.user_id != presented.user_id {
        return Some(CheckFailure::UserMismatch);
    }
    if now >= issued.expires_at {
        return Some(CheckFailure::Expired);
    }
    if user.require_link_eligible().is_err() || user.org_id.as_ref() != Some(&issued.org_id) {
        return Some(CheckFailure::UserNotActive);
    }
    if org.require_active().is_err() {
        return Some(CheckFailure::OrgNotActive);
    }
    if user.superseding_link_version > issued.user_version {
        return Some(CheckFailure::Superseded);
    }
    if user.email_changed_version > issued.user_version {
        return Some(CheckFailure::EmailChanged);
    }
    if !presented.secret.matches(&issued.secret_digest) {
        return Some(CheckFailure::WrongSecret);
    }
    None
}

/// Decides a consumption: verify as [`check`], then in one decision mark the code consumed, add
/// the passkey to the user and claim the credential id.
///
/// # Errors
/// [`DomainError::InvalidPasskey`]/[`DomainError::InvalidText`] for bad input and
/// [`DomainError::CredentialAlreadyClaimed`] for a taken credential id (nothing appended, code not
/// burned); a refused code is a [`Decision`] with a refusal.
pub fn consume(
    presented: &PresentCode,
    passkey: &NewPasskey,
    code: &CodeState,
    user: &UserState,
    org: &OrgState,
    credential: &CredentialState,
    now: DateTime<Utc>,
) -> Result<Decision, DomainError> {
    passkey.validate()?;
    if let Err(refused) = check(presented, code, user, org, now) {
        return Ok(refused);
    }
    if credential.claimed_by.is_some() {
        return Err(DomainError::CredentialAlreadyClaimed);
    }
    let org_id = code.org_id().cloned().ok_or(DomainError::CodeNotFound)?;
    Ok(Decision {
        changes: vec![
            Change::new(
                StreamId::code(&presented.code_id),
                CodeEvent::CheckSucceeded {
                    credential_id: passkey.credential_id.clone(),
                },
            ),
            Change::new(
                StreamId::user(&presented.user_id),
                UserEvent::PasskeyAdded {
                    code_id: presented.code_id.clone(),
                    credential_id: passkey.credential_id.clone(),
                    public_key: passkey.public_key.clone(),
                    name: passkey.name.clone(),
                },
            ),
            Change::new(
                passkey.credential_id.stream(),
                CredentialEvent::Claimed {
                    user_id: presented.user_id.clone(),
                    org_id,
                    code_id: presented.code_id.clone(),
                },
            ),
        ],
        refusal: None,
    })
}

/// The outcome of handing a code to the notifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Accepted, with the notifier's receipt id.
    Sent {
        /// Receipt id.
        message_id: String,
    },
    /// Failed.
    Failed(DeliveryFailure),
}

/// Records the delivery outcome of a requested code.
///
/// # Errors
/// [`DomainError::CodeNotFound`] or [`DomainError::CodeNotRequested`].
pub fn record_delivery(
    code_id: &CodeId,
    code: &CodeState,
    outcome: &DeliveryOutcome,
) -> Result<Vec<Change>, DomainError> {
    match code.status {
        CodeStatus::Missing => return Err(DomainError::CodeNotFound),
        CodeStatus::Requested => {}
        _ => return Err(DomainError::CodeNotRequested),
    }
    let event = match outcome {
        DeliveryOutcome::Sent { message_id } => CodeEvent::Sent {
            message_id: message_id.clone(),
        },
        DeliveryOutcome::Failed(reason) => CodeEvent::DeliveryFailed { reason: *reason },
    };
    Ok(vec![Change::new(StreamId::code(code_id), event)])
}

/// Revokes a code of `user_id`, as seen from `org_context`.
///
/// # Errors
/// [`DomainError::UserNotFound`], [`DomainError::CodeNotFound`] or [`DomainError::CodeClosed`].
pub fn revoke(
    user_id: &UserId,
    code_id: &CodeId,
    org_context: Option<&OrgId>,
    code: &CodeState,
    user: &UserState,
) -> Result<Vec<Change>, DomainError> {
    user.locate(org_context)?;
    match &code.issued {
        Some(issued) if &issued.user_id == user_id => {}
        _ => return Err(DomainError::CodeNotFound),
    }
    match code.status {
        CodeStatus::Requested | CodeStatus::Usable => Ok(vec![Change::new(
            StreamId::code(code_id),
            CodeEvent::Revoked {},
        )]),
        _ => Err(DomainError::CodeClosed),
    }
}
