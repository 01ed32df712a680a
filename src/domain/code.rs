//! The registration code aggregate (ZITADEL's "passwordless init code"): one code's lifecycle —
//! issued, delivered, failed checks, consumed, revoked — and the rule that says whether a
//! presented code is usable. A *code* is the id and secret; a *link* is the URL that carries it.
//!
//! Rule-relevant times live in the payload: `issuedAt` and `expiresAt` are fixed by the issuing
//! event, so no later event can extend a code's life (ZITADEL CVE-2026-32132).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::CheckFailure;
use super::credential::CredentialId;
use super::org::OrgState;
use super::user::UserState;
use crate::ids::{OrgId, UserId};
use crate::secret::{Secret, SecretDigest};

/// The facts fixed when a code is issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
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
    /// Version of the org stream when the code was issued (a later stop of the org kills it).
    /// Codes stored before this field existed read as 0: any org stop kills them.
    #[serde(default)]
    pub org_version: u64,
    /// Failed checks after which the code is exhausted.
    pub max_failed_checks: u32,
}

impl Issued {
    /// The issuance facts of a new code.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        user_id: UserId,
        org_id: OrgId,
        secret_digest: SecretDigest,
        issued_at: DateTime<Utc>,
        lifetime: Duration,
        user_version: u64,
        org_version: u64,
        max_failed_checks: u32,
    ) -> Self {
        Self {
            user_id,
            org_id,
            secret_digest,
            issued_at,
            expires_at: issued_at + lifetime,
            user_version,
            org_version,
            max_failed_checks,
        }
    }
}

/// Why delivery failed (stored; no notifier text, which could carry anything).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeliveryFailure {
    /// The notifier was unreachable or failed transiently.
    #[error("the notifier was unavailable")]
    Unavailable,
    /// The notifier refused the message.
    #[error("the notifier rejected the message")]
    Rejected,
    /// The code expired before it could be delivered (the outbox never sends after expiry).
    #[error("the code expired before it was delivered")]
    Expired,
    /// The code died before it was delivered: its user or org stopped, its user's email
    /// changed, or a newer link superseded it.
    #[error("the code could no longer be used when its turn to be delivered came")]
    NoLongerUsable,
    /// Its link could not be rendered (a url template no longer allowed by the configuration).
    #[error("the link could not be rendered")]
    Unrenderable,
}

impl DeliveryFailure {
    /// Its stored name (`unavailable`, `rejected`, `expired`, `no_longer_usable`,
    /// `unrenderable`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::NoLongerUsable => "no_longer_usable",
            Self::Unrenderable => "unrenderable",
        }
    }
}

/// Events of a code stream. Type names are a storage format: never rename.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all_fields = "camelCase")]
#[non_exhaustive]
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
        /// Whether the code supersedes the user's earlier codes once it is sent.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        supersedes_when_usable: bool,
        /// Whether the delivery outbox sends it, rather than the request that issued it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        outbox: bool,
        /// The deployment key its secret derives from (with its id): the same link for every
        /// process holding that key (none: the delivery key of a release that had one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_id: Option<String>,
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
    /// A code whose delivery failed is to be delivered again (the same link): not usable until
    /// sent.
    #[serde(rename = "user.human.passwordless.initialization.code.redelivery.requested")]
    RedeliveryRequested {
        /// Whether the delivery outbox sends it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        outbox: bool,
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

impl CodeEvent {
    /// The stored type names, in declaration order.
    pub const TYPES: &'static [&'static str] = &[
        "user.human.passwordless.initialization.code.added",
        "user.human.passwordless.initialization.code.requested",
        "user.human.passwordless.initialization.code.sent",
        "user.human.passwordless.initialization.code.delivery.failed",
        "user.human.passwordless.initialization.code.check.failed",
        "user.human.passwordless.initialization.code.check.succeeded",
        "user.human.passwordless.initialization.code.revoked",
        "user.human.passwordless.initialization.code.redelivery.requested",
    ];
}

/// Lifecycle status of a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
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
    version: u64,
    status: CodeStatus,
    issued: Option<Issued>,
    url_template: Option<String>,
    supersedes_when_usable: bool,
    outbox: bool,
    key_id: Option<String>,
    delivery_failure: Option<DeliveryFailure>,
    redeliveries: u32,
    failed_checks: u32,
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
                supersedes_when_usable,
                outbox,
                key_id,
            } if self.issued.is_none() => {
                self.issued = Some(issued.clone());
                self.url_template.clone_from(url_template);
                self.supersedes_when_usable = *supersedes_when_usable;
                self.outbox = *outbox;
                self.key_id.clone_from(key_id);
                self.status = CodeStatus::Requested;
            }
            CodeEvent::Sent { .. } if self.status == CodeStatus::Requested => {
                self.status = CodeStatus::Usable;
            }
            CodeEvent::DeliveryFailed { reason } if self.status == CodeStatus::Requested => {
                self.status = CodeStatus::DeliveryFailed;
                self.delivery_failure = Some(*reason);
            }
            CodeEvent::RedeliveryRequested { outbox }
                if self.status == CodeStatus::DeliveryFailed =>
            {
                self.status = CodeStatus::Requested;
                self.outbox = *outbox;
                self.delivery_failure = None;
                self.redeliveries += 1;
            }
            CodeEvent::CheckFailed { .. } => self.failed_checks += 1,
            CodeEvent::CheckSucceeded { .. } if self.issued.is_some() => {
                self.status = CodeStatus::Consumed;
            }
            CodeEvent::Revoked {} if self.issued.is_some() => self.status = CodeStatus::Revoked,
            _ => {}
        }
    }

    /// Number of events folded in.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Status.
    pub fn status(&self) -> CodeStatus {
        self.status
    }

    /// Issuance facts (from the first issuing event; later ones are ignored).
    pub fn issued(&self) -> Option<&Issued> {
        self.issued.as_ref()
    }

    /// The v2 url template of a delivered code, if any.
    pub fn url_template(&self) -> Option<&str> {
        self.url_template.as_deref()
    }

    /// Whether a delivered code supersedes the user's earlier codes once sent.
    pub fn supersedes_when_usable(&self) -> bool {
        self.supersedes_when_usable
    }

    /// Whether the delivery outbox sends the code.
    pub fn outbox(&self) -> bool {
        self.outbox
    }

    /// The id of the deployment key an emailed code's secret derives from, if recorded.
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// Why its last delivery failed, while it stands failed.
    pub fn delivery_failure(&self) -> Option<DeliveryFailure> {
        self.delivery_failure
    }

    /// How many times its delivery was asked for again after failing (0: its first delivery).
    pub fn redeliveries(&self) -> u32 {
        self.redeliveries
    }

    /// Failed checks so far.
    pub fn failed_checks(&self) -> u32 {
        self.failed_checks
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

/// A presented code: its user and its secret. Without a secret (`None`), the presenter proved
/// it earlier: a ceremony started with the code finishes on its liveness alone.
pub(crate) struct Presented<'a> {
    pub(crate) user_id: &'a UserId,
    pub(crate) secret: Option<&'a Secret>,
}

/// Why a presented code cannot be used, or `None` when it can. Terminal states come first: an
/// exhausted code records nothing more, whatever else is wrong.
pub(crate) fn refusal(
    presented: &Presented<'_>,
    code: &CodeState,
    user: &UserState,
    org: Option<&OrgState>,
    now: DateTime<Utc>,
    skew_tolerance: Duration,
) -> Option<CheckFailure> {
    let Some(issued) = &code.issued else {
        return Some(CheckFailure::UnknownCode);
    };
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
    if &issued.user_id != presented.user_id {
        return Some(CheckFailure::UserMismatch);
    }
    // A node whose clock ran fast would otherwise stretch the lifetime by its skew.
    if issued.issued_at > now + skew_tolerance {
        return Some(CheckFailure::IssuedInFuture);
    }
    if now >= issued.expires_at {
        return Some(CheckFailure::Expired);
    }
    if user.require_code_eligible().is_err() || user.org_id() != Some(&issued.org_id) {
        return Some(CheckFailure::UserNotActive);
    }
    let Some(org) = org.filter(|org| org.require_active().is_ok()) else {
        return Some(CheckFailure::OrgNotActive);
    };
    if user.stopped_since(issued.user_version) {
        return Some(CheckFailure::UserStopped);
    }
    if org.stopped_links_issued_at(issued.org_version) {
        return Some(CheckFailure::OrgStopped);
    }
    if user.superseded(issued.user_version) {
        return Some(CheckFailure::Superseded);
    }
    if user.email_changed_since(issued.user_version) {
        return Some(CheckFailure::EmailChanged);
    }
    if presented
        .secret
        .is_some_and(|secret| !secret.matches(&issued.secret_digest))
    {
        return Some(CheckFailure::WrongSecret);
    }
    None
}
