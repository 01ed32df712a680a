//! Delivery: handing a code's link to the notifier and recording the outcome — inside the
//! request (the synchronous send), or later by a [`crate::DeliveryWorker`] from the outbox,
//! each code on its own retry schedule and never after its expiry — and delivering again a
//! code whose delivery failed ([`PasskeyLinks::redeliver_code`]).

use std::time::Duration;

use rand::Rng;

use super::access::{Guard, admin_context};
use super::engine::Executed;
use super::operation::Op;
use super::redeem::named_code;
use super::{PasskeyLinks, within_deadline};
use crate::domain::code::{CodeState, DeliveryFailure, Issued};
use crate::domain::org::OrgState;
use crate::domain::user::UserState;
use crate::domain::{
    DeliveryOutcome, DomainError, Email, PendingDelivery, ReadDelivery, RecordDelivery,
    RedeliverCode, pending_delivery,
};
use crate::error::{Cause, Error};
use crate::ids::{CodeId, StreamId, UserId};
use crate::link::{Link, LinkValues, UrlTemplate};
use crate::ports::authorizer::{Authorizer, Caller, Permission};
use crate::ports::clock::Clock;
use crate::ports::notifier::{Addressee, Envelope, Message, Notifier, NotifyError, Receipt};
use crate::ports::random::RandomSource;
use crate::ports::relying_party::RelyingParty;
use crate::store::{EventStore, StoreError};
use crate::wire::{DetailsResponse, RedeliverCodeRequest};

/// How long recording a delivery outcome keeps trying a store that fails transiently: the
/// message is out, so its link must become usable (or the answer must say it may not be).
const RECORD_PATIENCE: Duration = Duration::from_secs(4);

/// How the outbox retries one code whose notifier fails transiently: capped exponential
/// backoff with jitter — `first_delay`, then twice as long each time up to `max_delay`, each
/// wait drawn between half and all of that — for `attempts` notifier calls at most, or (by
/// default) until the code expires. Every code has its own schedule: one waiting for its next
/// try holds up no other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryRetry {
    /// Notifier calls per code at most; `None`: until the code expires.
    pub attempts: Option<u32>,
    /// The wait after the first failure.
    pub first_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
    /// Whether waits are drawn between half and all of the backoff (so that codes which failed
    /// together are not all tried again at the same instant).
    pub jitter: bool,
}

impl Default for DeliveryRetry {
    /// Until the code expires, waiting 1 s, 2 s, 4 s … up to 15 s, with jitter: a relay that
    /// comes back is used within 15 s.
    fn default() -> Self {
        Self {
            attempts: None,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15),
            jitter: true,
        }
    }
}

impl DeliveryRetry {
    /// Until the code expires, the first wait `first_delay`, doubling up to `max_delay`, with
    /// jitter.
    pub fn until_expiry(first_delay: Duration, max_delay: Duration) -> Self {
        Self {
            attempts: None,
            first_delay,
            max_delay: max_delay.max(first_delay),
            jitter: true,
        }
    }

    /// At most `attempts` notifier calls per code (at least 1); the last failure is recorded.
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = Some(attempts.max(1));
        self
    }

    /// Waits exactly the backoff (tests and single-code deployments).
    pub fn without_jitter(mut self) -> Self {
        self.jitter = false;
        self
    }

    /// The backoff after failed attempt `attempt` (1-based), before jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.first_delay
            .checked_mul(1 << attempt.saturating_sub(1).min(20))
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// The wait after failed attempt `attempt`: the backoff, jittered if configured.
    pub fn delay(&self, attempt: u32) -> Duration {
        let backoff = self.backoff(attempt);
        if !self.jitter || backoff.is_zero() {
            return backoff;
        }
        let half = backoff / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }

    /// Whether attempt `attempt` (1-based) is the last one allowed.
    pub(crate) fn is_last(&self, attempt: u32) -> bool {
        self.attempts.is_some_and(|attempts| attempt >= attempts)
    }
}

/// The message carrying a code's link to its user.
pub(super) fn registration_envelope(
    code_id: &CodeId,
    code: &CodeState,
    issued: &Issued,
    (user, org): (&UserState, Option<&OrgState>),
    recipient: Email,
    link: Link,
) -> Envelope {
    let reference = code_id.reference();
    // One key per delivery of a code: a delivery retried (or repeated by a worker that crashed
    // before recording it) carries the same key and the same link; a redelivery asked for after
    // a failure is a new message.
    let idempotency_key = match code.redeliveries() {
        0 => format!("registration-link:{reference}"),
        round => format!("registration-link:{reference}:{round}"),
    };
    Envelope {
        idempotency_key,
        message: Message::RegistrationLink {
            recipient,
            user_id: issued.user_id.clone(),
            org_id: issued.org_id.clone(),
            addressee: addressee(user, org),
            code: reference,
            link,
            expires_at: issued.expires_at,
        },
    }
}

/// Who a message to `user` addresses.
pub(super) fn addressee(user: &UserState, org: Option<&OrgState>) -> Addressee {
    Addressee::new(
        user.display_name(),
        user.preferred_language(),
        org.map(OrgState::name).unwrap_or_default(),
    )
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// The notifier accepted it, and `sent` is recorded.
    Sent,
    /// `delivery failed` is recorded, with why.
    Failed(DeliveryFailure),
    /// Nothing left to do: delivered, failed or ended already (maybe by another worker), or
    /// not the outbox's to deliver.
    Done,
    /// The notifier failed transiently: try again later.
    Transient,
    /// Its secret derives from a key this process does not hold (named by its id): left for
    /// a process that holds it.
    WaitingForKey(String),
}

/// Who delivers: the outbox's worker, or the request that asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deliverer {
    /// A delivery worker.
    Outbox {
        /// Whether a transient failure now is recorded as the code's failure.
        last: bool,
    },
    /// The request itself: a transient failure is recorded at once.
    Request,
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
    /// Deliver again a code whose delivery failed (permission `user.write` in the user's org,
    /// like a send): the same link, to the user's verified address — if it would still work
    /// once sent. With the outbox the answer comes once the redelivery is recorded; otherwise
    /// once the notifier answered.
    ///
    /// # Errors
    /// NotFound (no such code of the user), FailedPrecondition (`PKL-CODE-…`: the code did not
    /// fail, or would not work once sent), PermissionDenied, Unavailable (the notifier failed
    /// again; the code stays failed and can be redelivered later).
    pub async fn redeliver_code(
        &self,
        caller: &Caller,
        org_context: Option<&str>,
        request: RedeliverCodeRequest,
    ) -> Result<DetailsResponse, Error> {
        let op = Op::new("passkey_links.redeliver_code")
            .caller(caller)
            .user(&request.user_id)
            .input(&request.code_reference)
            .input(org_context.unwrap_or_default());
        self.traced(op, async {
            let user_id = UserId::new(request.user_id)?;
            let code = named_code(Some(request.code_reference), None)?;
            let org_context = admin_context(caller, org_context)?;
            let guard = Guard::on_user(caller, Permission::UserWrite, &user_id, &org_context);
            let outbox = self.config.delivers_from_outbox();
            let decision = RedeliverCode {
                user_id: user_id.clone(),
                code: code.clone(),
                org_context,
                outbox,
            };
            let executed = self.execute(&decision, &guard).await?;
            let code_id = super::redeem::named_id(&executed, &user_id, &code)?;
            if outbox {
                return Ok(DetailsResponse {
                    details: executed.details(&StreamId::code(&code_id))?,
                });
            }
            match self.delivery_attempt(&code_id, Deliverer::Request).await? {
                Attempt::Sent | Attempt::Done => {}
                Attempt::Failed(reason) => return Err(Error::delivery_failed(reason)),
                Attempt::Transient | Attempt::WaitingForKey(_) => {
                    return Err(Error::internal(
                        "this instance does not hold the key the code was issued under",
                    ));
                }
            }
            let read = crate::domain::ReadCode {
                code_id: code_id.clone(),
            };
            let current = self.execute(&read, &Guard::Open).await?;
            Ok(DetailsResponse {
                details: current.details(&StreamId::code(&code_id))?,
            })
        })
        .await
    }

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

    /// Records a delivery outcome, trying a store that fails transiently again for a while
    /// (a mailed link must become usable); `None` when the code's delivery was recorded
    /// already (by another worker, or a retried request).
    pub(super) async fn record_delivery(
        &self,
        code_id: &CodeId,
        user_id: &UserId,
        outcome: DeliveryOutcome,
    ) -> Result<Option<Executed>, Error> {
        let decision = RecordDelivery {
            code_id: code_id.clone(),
            user_id: user_id.clone(),
            outcome,
        };
        let mut wait = Duration::from_millis(50);
        loop {
            match self.execute(&decision, &Guard::Open).await {
                Ok(executed) => return Ok(Some(executed)),
                Err(err) if err.domain_error() == Some(&DomainError::CodeNotRequested) => {
                    return Ok(None);
                }
                Err(err) if err.kind().is_retryable() && wait < RECORD_PATIENCE => {
                    self.store.sleep(wait).await;
                    wait *= 2;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Records a failure and says so (or that another recorded the outcome first).
    async fn record_failure(
        &self,
        code_id: &CodeId,
        user_id: &UserId,
        reason: DeliveryFailure,
    ) -> Result<Attempt, Error> {
        #[cfg(feature = "tracing")]
        tracing::warn!(code = %code_id.reference(), ?reason, "delivery failed");
        let recorded = self
            .record_delivery(code_id, user_id, DeliveryOutcome::Failed(reason))
            .await?;
        Ok(if recorded.is_some() {
            crate::metrics::delivery(reason.name());
            Attempt::Failed(reason)
        } else {
            Attempt::Done
        })
    }

    /// One try at delivering a code waiting for delivery: sends it if it would work once sent
    /// and records `sent`, or records why it cannot be delivered (expired, no longer usable,
    /// unrenderable, rejected — or a transient failure on the last allowed attempt).
    ///
    /// # Errors
    /// Store failures only: nothing is recorded twice, so the caller tries again later.
    pub(crate) async fn delivery_attempt(
        &self,
        code_id: &CodeId,
        deliverer: Deliverer,
    ) -> Result<Attempt, Error> {
        let read = ReadDelivery {
            code_id: code_id.clone(),
        };
        let executed = self.execute(&read, &Guard::Open).await?;
        let view = executed.view();
        let code = view
            .code(code_id)
            .map_err(|_| Error::internal("a read code without its state"))?;
        let Some(issued) = code.issued() else {
            return Ok(Attempt::Done);
        };
        if code.outbox() != matches!(deliverer, Deliverer::Outbox { .. }) {
            // The request that asked for it delivers it (or, if it crashed, nobody: the code
            // never works) — or the outbox does, and not this request.
            return Ok(Attempt::Done);
        }
        let user = view.user(&issued.user_id).ok();
        let org = view.org(&issued.org_id).ok();
        let skew = self.config.policy().clock_skew_tolerance();
        match pending_delivery(code, user, org, self.now(), skew) {
            PendingDelivery::Send => {}
            PendingDelivery::Done => return Ok(Attempt::Done),
            PendingDelivery::Fail(reason) => {
                return self.record_failure(code_id, &issued.user_id, reason).await;
            }
        }
        let (Some(user), Some(recipient)) = (user, user.and_then(|user| user.verified_email()))
        else {
            return self
                .record_failure(code_id, &issued.user_id, DeliveryFailure::NoLongerUsable)
                .await;
        };
        let recipient = recipient.clone();
        let Some(secret) = self.delivery_secret(code_id, code) else {
            // Mailing a link under another key would send a dead one.
            let key_id = code.key_id().unwrap_or("(not recorded)").to_owned();
            return Ok(Attempt::WaitingForKey(key_id));
        };
        let values = LinkValues {
            user_id: &issued.user_id,
            org_id: &issued.org_id,
            code_id,
            secret: &secret,
        };
        let link = code
            .url_template()
            .map(UrlTemplate::parse)
            .transpose()
            .ok()
            .and_then(|template| self.config.links().render(template.as_ref(), &values).ok());
        let Some(link) = link else {
            // A template the configuration no longer allows (or no longer parses).
            return self
                .record_failure(code_id, &issued.user_id, DeliveryFailure::Unrenderable)
                .await;
        };
        let envelope = registration_envelope(code_id, code, issued, (user, org), recipient, link);
        let failure = match self.notify(&envelope).await {
            Ok(receipt) => {
                let sent = DeliveryOutcome::Sent {
                    message_id: receipt.message_id,
                };
                let recorded = self.record_delivery(code_id, &issued.user_id, sent).await?;
                if recorded.is_none() {
                    return Ok(Attempt::Done);
                }
                crate::metrics::delivery("sent");
                return Ok(Attempt::Sent);
            }
            Err(err) => err.failure(),
        };
        let last = match deliverer {
            Deliverer::Outbox { last } => last,
            Deliverer::Request => true,
        };
        if failure == DeliveryFailure::Rejected || last {
            self.record_failure(code_id, &issued.user_id, failure).await
        } else {
            Ok(Attempt::Transient)
        }
    }
}

/// Whether `err` is a configuration fault (retrying cannot cure it) rather than a failure of
/// one code or a passing one of the store.
pub(crate) fn is_configuration_fault(err: &Error) -> bool {
    matches!(
        err.cause(),
        Some(Cause::Store(StoreError::Misconfigured(_)))
    )
}
