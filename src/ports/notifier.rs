//! The notifier port: delivers link emails and passkey-added notices.

use std::collections::HashMap;
use std::future::{Future, ready};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use super::forward_port;
use crate::domain::{DeliveryFailure, Email};
use crate::ids::{CodeRef, OrgId, UserId};
use crate::link::Link;

/// A message for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// A passkey registration link (message type `PasswordlessRegistration`).
    RegistrationLink {
        /// The user's verified email.
        recipient: Email,
        /// The user.
        user_id: UserId,
        /// The user's org.
        org_id: OrgId,
        /// Who the mail addresses: the user's display name, preferred language and org name,
        /// so a template needs no second lookup.
        addressee: Addressee,
        /// A derived reference to the code (never the code id, which is confidential).
        code: CodeRef,
        /// The link; it carries the secret (redacted in `Debug`).
        link: Link,
        /// When the link stops working.
        expires_at: DateTime<Utc>,
    },
    /// Security notice: a passkey was added to the account.
    PasskeyAdded {
        /// The user's verified email.
        recipient: Email,
        /// The user.
        user_id: UserId,
        /// The user's org.
        org_id: OrgId,
        /// Who the mail addresses.
        addressee: Addressee,
        /// The new passkey's name.
        passkey_name: String,
        /// When it was added.
        added_at: DateTime<Utc>,
    },
}

/// Who a message addresses, for the mail template: the user's display name and preferred
/// language (its tag, e.g. `de`), and the name of the user's org.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Addressee {
    /// The user's display name.
    pub display_name: String,
    /// The user's preferred language tag, if any.
    pub preferred_language: Option<String>,
    /// The user's org's name.
    pub org_name: String,
}

impl Addressee {
    /// An addressee.
    pub fn new(display_name: &str, preferred_language: Option<&str>, org_name: &str) -> Self {
        Self {
            display_name: display_name.to_owned(),
            preferred_language: preferred_language.map(str::to_owned),
            org_name: org_name.to_owned(),
        }
    }
}

impl Message {
    /// Who the message addresses.
    pub fn addressee(&self) -> &Addressee {
        match self {
            Self::RegistrationLink { addressee, .. } | Self::PasskeyAdded { addressee, .. } => {
                addressee
            }
        }
    }

    /// The recipient address.
    pub fn recipient(&self) -> &Email {
        match self {
            Self::RegistrationLink { recipient, .. } | Self::PasskeyAdded { recipient, .. } => {
                recipient
            }
        }
    }
}

/// A message with the key that makes redelivery idempotent (derived from the code, never the
/// code id itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Same key, same message: a notifier must not deliver twice.
    pub idempotency_key: String,
    /// The message.
    pub message: Message,
}

/// The notifier's receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The provider's message id.
    pub message_id: String,
}

/// A delivery failure. The text is for the notifier's own logs; it is never stored nor returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// Unreachable or transient failure.
    #[error("notifier unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the message.
    #[error("message rejected: {0}")]
    Rejected(String),
}

impl NotifyError {
    /// The failure class recorded for the code (never the notifier's text).
    pub fn failure(&self) -> DeliveryFailure {
        match self {
            Self::Unavailable(_) => DeliveryFailure::Unavailable,
            Self::Rejected(_) => DeliveryFailure::Rejected,
        }
    }
}

/// Delivers messages.
pub trait Notifier: Send + Sync {
    /// Delivers one message; the same idempotency key must not produce a second delivery.
    fn deliver(
        &self,
        envelope: &Envelope,
    ) -> impl Future<Output = Result<Receipt, NotifyError>> + Send;
}

forward_port!(Notifier {
    fn deliver(&self, envelope: &Envelope) -> impl Future<Output = Result<Receipt, NotifyError>> + Send;
});

#[derive(Default)]
struct Recorded {
    delivered: Vec<Envelope>,
    receipts: HashMap<String, Receipt>,
}

/// A notifier that records what it is given (default build, tests, examples). It can be told to
/// fail, to exercise delivery failures. Cloning shares the record.
#[derive(Clone, Default)]
pub struct RecordingNotifier {
    record: Arc<Mutex<Recorded>>,
    failing: Arc<AtomicBool>,
}

impl std::fmt::Debug for RecordingNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingNotifier")
            .field("delivered", &self.lock().delivered.len())
            .field("failing", &self.failing.load(Ordering::SeqCst))
            .finish()
    }
}

impl RecordingNotifier {
    /// A notifier that accepts everything.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Recorded> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From now on, fail (`true`) or accept (`false`) every delivery.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Everything delivered so far, in order.
    pub fn delivered(&self) -> Vec<Envelope> {
        self.lock().delivered.clone()
    }

    /// The most recent registration link delivered to `user_id`.
    pub fn last_link(&self, user_id: &UserId) -> Option<Link> {
        self.lock()
            .delivered
            .iter()
            .rev()
            .find_map(|envelope| match &envelope.message {
                Message::RegistrationLink {
                    user_id: to, link, ..
                } if to == user_id => Some(link.clone()),
                _ => None,
            })
    }

    fn deliver_now(&self, envelope: &Envelope) -> Result<Receipt, NotifyError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(NotifyError::Unavailable(
                "recording notifier set to fail".into(),
            ));
        }
        let mut record = self.lock();
        if let Some(receipt) = record.receipts.get(&envelope.idempotency_key) {
            return Ok(receipt.clone());
        }
        let receipt = Receipt {
            message_id: format!("msg-{}", record.delivered.len() + 1),
        };
        record.delivered.push(envelope.clone());
        record
            .receipts
            .insert(envelope.idempotency_key.clone(), receipt.clone());
        Ok(receipt)
    }
}

impl Notifier for RecordingNotifier {
    fn deliver(
        &self,
        envelope: &Envelope,
    ) -> impl Future<Output = Result<Receipt, NotifyError>> + Send {
        ready(self.deliver_now(envelope))
    }
}
