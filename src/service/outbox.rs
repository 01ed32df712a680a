//! The delivery outbox's worker: a projection over codes waiting for delivery. For each
//! `requested` event it delivers the code (if it is still waiting and would work once sent),
//! then moves its checkpoint past the batch. A worker killed at any point loses nothing: the
//! batch is handed over again and each code is delivered again with the same notifier
//! idempotency key and the same link, or found delivered already.

use super::{DeliveryRetry, PasskeyLinks};
use crate::domain::Event;
use crate::domain::code::CodeEvent;
use crate::error::Error;
use crate::ids::{AggregateKind, CodeId};
use crate::ports::authorizer::Authorizer;
use crate::ports::clock::Clock;
use crate::ports::notifier::Notifier;
use crate::ports::random::RandomSource;
use crate::ports::relying_party::RelyingParty;
use crate::read::Projection;
use crate::read::store::ProjectionStore;
use crate::store::{EventStore, FeedEvent};

/// The checkpoint name of the delivery worker.
pub const DELIVERY_WORKER: &str = "passkey_links.delivery";

/// Delivers codes from the outbox of a service configured with
/// [`crate::Config::with_outbox`]; run it with a [`crate::read::ProjectionRunner`] over the same
/// store (`follow` keeps it going).
#[derive(Debug)]
pub struct DeliveryWorker<'s, S, N, A, C, R, P> {
    service: &'s PasskeyLinks<S, N, A, C, R, P>,
    retry: DeliveryRetry,
}

impl<'s, S, N, A, C, R, P> DeliveryWorker<'s, S, N, A, C, R, P>
where
    S: EventStore + ProjectionStore,
    N: Notifier,
    A: Authorizer,
    C: Clock,
    R: RandomSource,
    P: RelyingParty,
{
    /// A worker delivering for `service`, retrying as [`DeliveryRetry::default`] says.
    pub fn new(service: &'s PasskeyLinks<S, N, A, C, R, P>) -> Self {
        Self {
            service,
            retry: DeliveryRetry::default(),
        }
    }

    /// Replaces how a transiently failing notifier is retried.
    pub fn with_retry(mut self, retry: DeliveryRetry) -> Self {
        self.retry = retry;
        self
    }
}

/// The code a feed event asks to deliver, if it is a `requested` event.
fn requested_code(event: &FeedEvent) -> Result<Option<CodeId>, Error> {
    let recorded = &event.event;
    if recorded.stream.kind() != AggregateKind::Code {
        return Ok(None);
    }
    let decoded = Event::decode(
        AggregateKind::Code,
        &recorded.event_type,
        recorded.schema_version,
        recorded.payload.clone(),
    )
    .map_err(|err| crate::store::StoreError::Corrupt {
        stream: recorded.stream.clone(),
        version: recorded.version,
        reason: err.to_string(),
    })?;
    match decoded {
        Event::Code(CodeEvent::Requested { outbox: true, .. }) => {
            Ok(Some(CodeId::new(recorded.stream.id())?))
        }
        _ => Ok(None),
    }
}

impl<S, N, A, C, R, P> Projection for DeliveryWorker<'_, S, N, A, C, R, P>
where
    S: EventStore + ProjectionStore,
    N: Notifier,
    A: Authorizer,
    C: Clock,
    R: RandomSource,
    P: RelyingParty,
{
    fn name(&self) -> &str {
        DELIVERY_WORKER
    }

    async fn checkpoint(&self) -> Result<u64, Error> {
        Ok(self.service.store().checkpoint(DELIVERY_WORKER).await?)
    }

    async fn apply(&self, events: &[FeedEvent]) -> Result<(), Error> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        for event in events {
            if let Some(code_id) = requested_code(event)? {
                self.service
                    .deliver_requested(&code_id, &self.retry)
                    .await?;
            }
        }
        // Only after every code of the batch is delivered (or recorded as failed): a crash
        // before this hands the batch over again.
        Ok(self
            .service
            .store()
            .save_checkpoint(DELIVERY_WORKER, last.feed_position)
            .await?)
    }
}
