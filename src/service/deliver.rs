//! Delivery: handing a code's link to the notifier and recording the outcome — inside the
//! request (the synchronous send) or later, from the outbox, by a
//! [`crate::DeliveryWorker`] with bounded retries, never after the code's expiry.

use std::time::Duration;

use super::access::Guard;
use super::{PasskeyLinks, within_deadline};
use crate::domain::code::{DeliveryFailure, Issued};
use crate::domain::{DeliveryOutcome, DomainError, PendingDelivery, ReadDelivery, RecordDelivery};
use crate::domain::{Email, pending_delivery};
use crate::error::Error;
use crate::ids::{CodeId, UserId};
use crate::link::{Link, LinkValues, UrlTemplate};
use crate::ports::authorizer::Authorizer;
use crate::ports::clock::Clock;
use crate::ports::notifier::{Envelope, Message, Notifier, NotifyError, Receipt};
use crate::ports::random::RandomSource;
use crate::ports::relying_party::RelyingParty;
use crate::store::EventStore;

/// How a delivery worker retries a notifier that fails transiently: `attempts` calls at most,
/// waiting `first_delay`, then twice as long each time up to `max_delay` — and never past the
/// code's expiry (an expired code is recorded as such, not sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryRetry {
    /// Notifier calls per code at most (≥ 1).
    pub attempts: u32,
    /// The wait after the first failure.
    pub first_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
}

impl Default for DeliveryRetry {
    /// 5 attempts, waiting 1 s, 2 s, 4 s, 8 s.
    fn default() -> Self {
        Self {
            attempts: 5,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl DeliveryRetry {
    /// `attempts` calls, the first wait `first_delay`, doubling up to `max_delay`.
    pub fn new(attempts: u32, first_delay: Duration, max_delay: Duration) -> Self {
        Self {
            attempts: attempts.max(1),
            first_delay,
            max_delay,
        }
    }

    /// The wait after failed attempt `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let doubled = self
            .first_delay
            .checked_mul(1 << attempt.saturating_sub(1).min(20))
            .unwrap_or(self.max_delay);
        doubled.min(self.max_delay)
    }
}

/// The message carrying a code's link to its user.
pub(super) fn registration_envelope(
    code_id: &CodeId,
    user_id: UserId,
    issued: &Issued,
    recipient: Email,
    link: Link,
) -> Envelope {
    let reference = code_id.reference();
    Envelope {
        // One key per code: a delivery retried (or repeated by a worker that crashed before
        // recording it) carries the same key and the same link.
        idempotency_key: format!("registration-link:{reference}"),
        message: Message::RegistrationLink {
            recipient,
            user_id,
            org_id: issued.org_id.clone(),
            code: reference,
            link,
            expires_at: issued.expires_at,
        },
    }
}

/// What one delivery attempt left to do.
enum Attempted {
    /// The outcome is recorded (or nothing was left to deliver).
    Finished,
    /// The notifier failed transiently: try again later.
    Transient,
}

impl<S, N, A, C, R, P> PasskeyLinks<S, N, A, C, R, P>
where
    S: EventStore,
    N: Notifier,
    A: Authorizer,
    C: Clock,
    R: RandomSource,
    P: RelyingParty,
{
    /// Hands `envelope` to the notifier within the service deadline (a notifier that does not
    /// answer is unavailable).
    pub(super) async fn notify(&self, envelope: &Envelope) -> Result<Receipt, NotifyError> {
        let call = async { Ok(self.notifier.deliver(envelope).await) };
        match within_deadline(self.config.deadline(), call, |left| self.store.sleep(left)).await {
            Ok(answer) => answer,
            Err(_) => Err(NotifyError::Unavailable(
                "the notifier did not answer within the deadline".into(),
            )),
        }
    }

    /// Records a delivery outcome; another worker having recorded one first is fine.
    pub(super) async fn record_delivery(
        &self,
        code_id: &CodeId,
        user_id: &UserId,
        outcome: DeliveryOutcome,
    ) -> Result<(), Error> {
        let decision = RecordDelivery {
            code_id: code_id.clone(),
            user_id: user_id.clone(),
            outcome,
        };
        match self.execute(&decision, &Guard::Open).await {
            Ok(_) => Ok(()),
            Err(err) if err.domain_error() == Some(&DomainError::CodeNotRequested) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Delivers a code from the outbox: sends it if it would work once sent, retrying a
    /// notifier that fails transiently as `retry` says, and records `sent` or `delivery
    /// failed`. A code delivered or failed already is left alone.
    ///
    /// # Errors
    /// Store failures (the caller tries again later: nothing is recorded twice), a service
    /// without a delivery key, or a key that does not derive the code's secret.
    pub(crate) async fn deliver_requested(
        &self,
        code_id: &CodeId,
        retry: &DeliveryRetry,
    ) -> Result<(), Error> {
        let attempts = retry.attempts.max(1);
        for attempt in 1..=attempts {
            match self.delivery_attempt(code_id, attempt == attempts).await? {
                Attempted::Finished => return Ok(()),
                Attempted::Transient => {
                    // The next attempt checks expiry before it sends.
                    self.store.sleep(retry.delay(attempt)).await;
                }
            }
        }
        Ok(())
    }

    async fn delivery_attempt(&self, code_id: &CodeId, last: bool) -> Result<Attempted, Error> {
        let key = self.config.outbox().ok_or_else(|| {
            Error::internal("delivering from the outbox needs a delivery key (Config::with_outbox)")
        })?;
        let read = ReadDelivery {
            code_id: code_id.clone(),
        };
        let executed = self.execute(&read, &Guard::Open).await?;
        let view = executed.view();
        let code = view
            .code(code_id)
            .map_err(|_| Error::internal("a read code without its state"))?;
        let issued = code
            .issued()
            .ok_or_else(|| Error::internal("a requested code without issuance facts"))?;
        if !code.outbox() {
            // The request that issued it delivers it (or, if it crashed, nobody: the code
            // never works).
            return Ok(Attempted::Finished);
        }
        let user = view.user(&issued.user_id).ok();
        let org = view.org(&issued.org_id).ok();
        let skew = self.config.policy().clock_skew_tolerance();
        match pending_delivery(code, user, org, self.now(), skew) {
            PendingDelivery::Send => {}
            PendingDelivery::Done => return Ok(Attempted::Finished),
            PendingDelivery::Fail(reason) => {
                self.record_delivery(code_id, &issued.user_id, DeliveryOutcome::Failed(reason))
                    .await?;
                return Ok(Attempted::Finished);
            }
        }
        let Some(recipient) = user.and_then(|user| user.verified_email()).cloned() else {
            let failed = DeliveryOutcome::Failed(DeliveryFailure::NoLongerUsable);
            self.record_delivery(code_id, &issued.user_id, failed)
                .await?;
            return Ok(Attempted::Finished);
        };
        let secret = key.derive(self.config.policy().secret(), code_id.as_str());
        if !secret.matches(&issued.secret_digest) {
            // Mailing this link would send a dead one; leave the code waiting for a worker
            // with the right key (until it expires).
            return Err(Error::internal(
                "the delivery key does not derive this code's secret: every process that sends \
                 or delivers needs the same key",
            ));
        }
        let template = code
            .url_template()
            .map(UrlTemplate::parse)
            .transpose()
            .map_err(|_| Error::internal("a stored url template no longer parses"))?;
        let values = LinkValues {
            user_id: &issued.user_id,
            org_id: &issued.org_id,
            code_id,
            secret: &secret,
        };
        let link = self
            .config
            .links()
            .render(template.as_ref(), &values)
            .map_err(|_| Error::internal("a checked template failed to render"))?;
        let envelope =
            registration_envelope(code_id, issued.user_id.clone(), issued, recipient, link);
        let outcome = match self.notify(&envelope).await {
            Ok(receipt) => DeliveryOutcome::Sent {
                message_id: receipt.message_id,
            },
            Err(err) if err.failure() == DeliveryFailure::Rejected || last => {
                #[cfg(feature = "tracing")]
                tracing::warn!(code = %code_id.reference(), reason = ?err.failure(), "delivery failed");
                DeliveryOutcome::Failed(err.failure())
            }
            Err(_) => return Ok(Attempted::Transient),
        };
        self.record_delivery(code_id, &issued.user_id, outcome)
            .await?;
        Ok(Attempted::Finished)
    }
}
