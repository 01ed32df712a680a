//! The delivery outbox's worker. It reads the feed from its checkpoint for codes the outbox is
//! to deliver (`requested` and `redelivery requested` events), keeps them in a queue of its
//! own, and delivers the ones that are due, several at once — each code on its own retry
//! schedule, so a code waiting for its next try holds up nobody. A code whose secret derives
//! from a key this process lacks waits for a process that holds it (and shows in
//! [`DeliveryWorker::health`]). The checkpoint never passes a code still pending, so a worker
//! killed at any point loses nothing: its successor finds the code again and delivers it with
//! the same notifier idempotency key and the same link, or finds it delivered already.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::pin;
use std::sync::{Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};

use super::deliver::{Attempt, Deliverer, is_configuration_fault};
use super::{DeliveryRetry, PasskeyLinks};
use crate::domain::Event;
use crate::domain::code::CodeEvent;
use crate::error::Error;
use crate::ids::{AggregateKind, CodeId};
use crate::ports::authorizer::Authorizer;
use crate::ports::clock::{Clock, SystemClock};
use crate::ports::notifier::Notifier;
use crate::ports::random::{OsRandom, RandomSource};
use crate::ports::relying_party::{NoRelyingParty, RelyingParty};
use crate::read::store::ProjectionStore;
use crate::store::{EventStore, FeedEvent, StoreError};

/// The checkpoint name of the delivery worker.
pub const DELIVERY_WORKER: &str = "passkey_links.delivery";

/// Codes delivered at once unless configured otherwise.
pub const DEFAULT_DELIVERY_CONCURRENCY: usize = 8;
/// Codes a worker keeps queued at most: past this it reads no further into the feed until
/// the queue shrinks.
pub const MAX_PENDING: usize = 10_000;
/// How long the worker remembers what it sent and failed (for [`OutboxHealth`]).
const RECENT: chrono::Duration = chrono::Duration::hours(1);
/// The stored types of the events that put a code in the outbox.
const OUTBOX_EVENTS: [&str; 2] = [
    "user.human.passwordless.initialization.code.requested",
    "user.human.passwordless.initialization.code.redelivery.requested",
];

/// Delivers the codes of a service configured with [`crate::Config::with_outbox`]. Run it with
/// [`DeliveryWorker::run`] (until told to stop), or step it with [`DeliveryWorker::run_once`].
/// Several workers over one store are safe: a code is delivered by whichever gets to it first,
/// its `sent` recorded once.
#[derive(Debug)]
pub struct DeliveryWorker<'s, S, N, A, C = SystemClock, R = OsRandom, P = NoRelyingParty> {
    service: &'s PasskeyLinks<S, N, A, C, R, P>,
    retry: DeliveryRetry,
    concurrency: usize,
    batch_size: usize,
    poll_interval: Duration,
    queue: Mutex<Queue>,
}

/// A code waiting for delivery.
#[derive(Debug)]
struct Pending {
    code_id: CodeId,
    /// When the event that queued it was recorded.
    queued_at: DateTime<Utc>,
    /// Attempts so far.
    attempts: u32,
    /// Not to be tried before.
    due: DateTime<Utc>,
    /// The key it waits for, if that is why it waits.
    waiting_for_key: Option<String>,
}

/// What a worker holds in memory (never across an await).
#[derive(Debug, Default)]
struct Queue {
    /// The feed position read through (`None`: not yet loaded from the checkpoint).
    scanned: Option<u64>,
    /// The checkpoint last saved.
    saved: u64,
    /// Pending codes by the feed position that queued them.
    pending: BTreeMap<u64, Pending>,
    /// The codes in `pending` (a code queued twice is delivered once).
    queued: HashSet<CodeId>,
    /// When codes were sent (`true`) or their failure recorded (`false`), the last hour.
    recent: VecDeque<(DateTime<Utc>, bool)>,
    /// The last failure that kept a code (or the queue) from moving, as text.
    last_error: Option<String>,
}

impl Queue {
    fn forget_before(&mut self, now: DateTime<Utc>) {
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| *at < now - RECENT)
        {
            self.recent.pop_front();
        }
    }
}

/// What [`DeliveryWorker::run_once`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryRound {
    /// Codes newly queued from the feed.
    pub queued: usize,
    /// Codes sent (and recorded so).
    pub sent: usize,
    /// Codes whose failure was recorded.
    pub failed: usize,
    /// Codes tried that stay queued (a transient failure, a missing key, a store failure).
    pub deferred: usize,
}

/// Where a delivery worker stands, for an operator: what to alert on is a growing
/// `oldest_pending`, any `waiting_for_key`, `failed_last_hour` against `sent_last_hour`, and a
/// `lag` that does not shrink.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutboxHealth {
    /// The newest feed position.
    pub feed_head: u64,
    /// The worker's durable checkpoint (it never passes a pending code).
    pub checkpoint: u64,
    /// Feed events not yet read by this worker.
    pub lag: u64,
    /// Codes queued for delivery.
    pub pending: usize,
    /// Of those, codes issued under a key this worker does not hold.
    pub waiting_for_key: usize,
    /// The ids of the keys they wait for.
    pub missing_keys: Vec<String>,
    /// How long the oldest pending code has waited.
    pub oldest_pending: Option<Duration>,
    /// Codes this worker sent in the last hour.
    pub sent_last_hour: usize,
    /// Codes whose failure this worker recorded in the last hour.
    pub failed_last_hour: usize,
    /// The last failure that held a code or the queue up, if any since the last success.
    pub last_error: Option<String>,
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
    /// A worker delivering for `service`: [`DeliveryRetry::default`],
    /// [`DEFAULT_DELIVERY_CONCURRENCY`] codes at once, polling the feed every 250 ms when idle.
    pub fn new(service: &'s PasskeyLinks<S, N, A, C, R, P>) -> Self {
        Self {
            service,
            retry: DeliveryRetry::default(),
            concurrency: DEFAULT_DELIVERY_CONCURRENCY,
            batch_size: crate::read::DEFAULT_BATCH_SIZE,
            poll_interval: crate::read::DEFAULT_POLL_INTERVAL,
            queue: Mutex::new(Queue::default()),
        }
    }

    /// Replaces how a transiently failing notifier is retried.
    pub fn with_retry(mut self, retry: DeliveryRetry) -> Self {
        self.retry = retry;
        self
    }

    /// Codes delivered at once (at least 1).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// How long [`DeliveryWorker::run`] waits when nothing is due.
    pub fn with_poll_interval(mut self, poll_interval: Duration) -> Self {
        self.poll_interval = poll_interval;
        self
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // A panic elsewhere while holding it leaves plain data: keep going.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads the feed past what it has read (from its checkpoint, the first time) and queues
    /// the codes the outbox is to deliver; answers how many it queued.
    async fn scan(&self) -> Result<usize, Error> {
        let store = self.service.store();
        let known = self.queue().scanned;
        let mut after = match known {
            Some(after) => after,
            None => {
                let checkpoint = store.checkpoint(DELIVERY_WORKER).await?;
                let mut queue = self.queue();
                queue.saved = checkpoint;
                queue.scanned = Some(checkpoint);
                checkpoint
            }
        };
        let mut queued = 0;
        loop {
            if self.queue().pending.len() >= MAX_PENDING {
                return Ok(queued);
            }
            let events = store.read_feed(after, self.batch_size).await?;
            let Some(last) = events.last().map(|event| event.feed_position) else {
                return Ok(queued);
            };
            let now = self.service.now();
            let mut queue = self.queue();
            for event in &events {
                let code_id = match outbox_code(event) {
                    Ok(Some(code_id)) => code_id,
                    Ok(None) => continue,
                    Err(err) => {
                        // One undecodable event must not hold up every code behind it.
                        queue.last_error = Some(err.to_string());
                        continue;
                    }
                };
                if !queue.queued.insert(code_id.clone()) {
                    continue;
                }
                queue.pending.insert(
                    event.feed_position,
                    Pending {
                        code_id,
                        queued_at: event.event.recorded_at,
                        attempts: 0,
                        due: now,
                        waiting_for_key: None,
                    },
                );
                queued += 1;
            }
            queue.scanned = Some(last);
            after = last;
            if events.len() < self.batch_size {
                return Ok(queued);
            }
        }
    }

    /// One round: queues what the feed added, tries every due code (several at once), then
    /// moves the checkpoint up to the oldest code still pending.
    ///
    /// # Errors
    /// Reading the feed or saving the checkpoint failed (the round's deliveries stand). A
    /// code's own failure is never an error here: it is recorded, or the code is tried again
    /// later.
    pub async fn run_once(&self) -> Result<DeliveryRound, Error> {
        // Expiry and backoff by the store's clock, like every other decision.
        self.service.sync_clock().await?;
        let mut round = DeliveryRound {
            queued: self.scan().await?,
            ..DeliveryRound::default()
        };
        let now = self.service.now();
        let due: Vec<(u64, CodeId, u32)> = self
            .queue()
            .pending
            .iter()
            .filter(|(_, pending)| pending.due <= now)
            .map(|(at, pending)| (*at, pending.code_id.clone(), pending.attempts + 1))
            .collect();
        let mut tries = stream::iter(due)
            .map(|(at, code_id, attempt)| async move {
                let last = self.retry.is_last(attempt);
                let deliverer = Deliverer::Outbox { last };
                let result = self.service.delivery_attempt(&code_id, deliverer).await;
                (at, attempt, result)
            })
            .buffer_unordered(self.concurrency);
        while let Some((at, attempt, result)) = tries.next().await {
            self.settle(at, attempt, result, &mut round);
        }
        drop(tries);
        self.save_checkpoint().await?;
        Ok(round)
    }

    /// Takes a try's result into the queue.
    fn settle(
        &self,
        at: u64,
        attempt: u32,
        result: Result<Attempt, Error>,
        round: &mut DeliveryRound,
    ) {
        let now = self.service.now();
        let mut queue = self.queue();
        let finished = match result {
            Ok(Attempt::Sent) => Some(true),
            Ok(Attempt::Failed(_)) => Some(false),
            Ok(Attempt::Done) => None,
            Ok(Attempt::Transient | Attempt::WaitingForKey(_)) | Err(_) => {
                round.deferred += 1;
                let wait = match &result {
                    // A foreign code is looked at again now and then: it may expire, or be
                    // delivered by a worker that holds its key.
                    Ok(Attempt::WaitingForKey(_)) => self.retry.max_delay,
                    _ => self.retry.delay(attempt),
                };
                let waited = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
                if let Err(err) = &result {
                    #[cfg(feature = "tracing")]
                    tracing::warn!(error = %err, "a delivery try failed; the code stays queued");
                    queue.last_error = Some(err.to_string());
                }
                if let Some(pending) = queue.pending.get_mut(&at) {
                    pending.attempts = attempt;
                    pending.due = now + waited;
                    pending.waiting_for_key = match result {
                        Ok(Attempt::WaitingForKey(key_id)) => Some(key_id),
                        _ => None,
                    };
                }
                return;
            }
        };
        if let Some(done) = queue.pending.remove(&at) {
            queue.queued.remove(&done.code_id);
        }
        if let Some(sent) = finished {
            if sent {
                round.sent += 1;
            } else {
                round.failed += 1;
            }
            queue.recent.push_back((now, sent));
            queue.forget_before(now);
        }
    }

    /// Saves the checkpoint just below the oldest pending code (or at what was read, with none
    /// pending), if that moved it.
    async fn save_checkpoint(&self) -> Result<(), Error> {
        let target = {
            let queue = self.queue();
            let Some(scanned) = queue.scanned else {
                return Ok(());
            };
            let target = match queue.pending.keys().next() {
                Some(oldest) => oldest.saturating_sub(1).min(scanned),
                None => scanned,
            };
            if target <= queue.saved {
                return Ok(());
            }
            target
        };
        self.service
            .store()
            .save_checkpoint(DELIVERY_WORKER, target)
            .await?;
        let mut queue = self.queue();
        queue.saved = queue.saved.max(target);
        Ok(())
    }

    /// Runs rounds until nothing is pending and the feed holds nothing new (tests, drains at
    /// shutdown); answers the rounds' sum. Codes that wait (for a retry or a key) end it too:
    /// it never sleeps.
    ///
    /// # Errors
    /// As [`DeliveryWorker::run_once`].
    pub async fn drain(&self) -> Result<DeliveryRound, Error> {
        let mut total = DeliveryRound::default();
        loop {
            let round = self.run_once().await?;
            total.queued += round.queued;
            total.sent += round.sent;
            total.failed += round.failed;
            total.deferred += round.deferred;
            if round.queued + round.sent + round.failed == 0 {
                return Ok(total);
            }
        }
    }

    /// Runs rounds until `stop` completes: between rounds it waits for the next due code or
    /// the poll interval, whichever comes first. A code's failure, an unavailable store or a
    /// notifier that is down never end it (they show in [`DeliveryWorker::health`]).
    ///
    /// # Errors
    /// A configuration fault: no deployment keys configured (this worker could deliver no
    /// other process's codes), or a misconfigured store.
    pub async fn run(&self, stop: impl Future<Output = ()>) -> Result<(), Error> {
        if self.service.keys.is_ephemeral() {
            return Err(Error::internal(
                "a delivery worker needs the deployment's keys (Config::with_outbox or \
                 Config::with_keyring): with a key of its own it could deliver no other \
                 process's codes",
            ));
        }
        let mut stop = pin!(stop);
        loop {
            match self.run_once().await {
                Ok(_) => self.queue().last_error = None,
                Err(err) if is_configuration_fault(&err) => return Err(err),
                Err(err) => {
                    #[cfg(feature = "tracing")]
                    tracing::warn!(error = %err, "the delivery worker's round failed; it goes on");
                    self.queue().last_error = Some(err.to_string());
                }
            }
            let mut wait = pin!(self.service.store().sleep(self.idle_wait()));
            let stopped = std::future::poll_fn(|cx| {
                if stop.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(true);
                }
                wait.as_mut().poll(cx).map(|()| false)
            })
            .await;
            if stopped {
                return Ok(());
            }
        }
    }

    /// Until the next code is due, at most the poll interval.
    fn idle_wait(&self) -> Duration {
        let now = self.service.now();
        let next_due = self.queue().pending.values().map(|p| p.due).min();
        next_due
            .and_then(|due| (due - now).to_std().ok())
            .map_or(self.poll_interval, |until| until.min(self.poll_interval))
    }

    /// Where this worker stands: its queue, its last hour, and its lag behind the feed (read
    /// from the store). Sets the outbox gauges when the `metrics` feature is on.
    ///
    /// # Errors
    /// The store failed.
    pub async fn health(&self) -> Result<OutboxHealth, Error> {
        let store = self.service.store();
        let feed_head = store.feed_head().await?;
        let checkpoint = store.checkpoint(DELIVERY_WORKER).await?;
        let now = self.service.now();
        let mut queue = self.queue();
        queue.forget_before(now);
        let scanned = queue.scanned.unwrap_or(checkpoint);
        let mut missing_keys: Vec<String> = queue
            .pending
            .values()
            .filter_map(|p| p.waiting_for_key.clone())
            .collect();
        let waiting_for_key = missing_keys.len();
        missing_keys.sort();
        missing_keys.dedup();
        let oldest_pending = queue
            .pending
            .values()
            .map(|p| p.queued_at)
            .min()
            .map(|at| (now - at).to_std().unwrap_or_default());
        let sent_last_hour = queue.recent.iter().filter(|(_, sent)| *sent).count();
        let health = OutboxHealth {
            feed_head,
            checkpoint,
            lag: feed_head.saturating_sub(scanned),
            pending: queue.pending.len(),
            waiting_for_key,
            missing_keys,
            oldest_pending,
            sent_last_hour,
            failed_last_hour: queue.recent.len() - sent_last_hour,
            last_error: queue.last_error.clone(),
        };
        crate::metrics::outbox(
            health.pending,
            health.waiting_for_key,
            health.oldest_pending.unwrap_or_default().as_secs_f64(),
        );
        Ok(health)
    }
}

/// The code a feed event puts in the outbox, if it does.
fn outbox_code(event: &FeedEvent) -> Result<Option<CodeId>, StoreError> {
    let recorded = &event.event;
    if recorded.stream.kind() != AggregateKind::Code
        || !OUTBOX_EVENTS.contains(&recorded.event_type.as_str())
    {
        return Ok(None);
    }
    let corrupt = |reason: String| StoreError::Corrupt {
        stream: recorded.stream.clone(),
        version: recorded.version,
        reason,
    };
    let decoded = Event::decode(
        AggregateKind::Code,
        &recorded.event_type,
        recorded.schema_version,
        recorded.payload.clone(),
    )
    .map_err(|err| corrupt(err.to_string()))?;
    let outbox = matches!(
        decoded,
        Event::Code(
            CodeEvent::Requested { outbox: true, .. }
                | CodeEvent::RedeliveryRequested { outbox: true }
        )
    );
    if !outbox {
        return Ok(None);
    }
    CodeId::new(recorded.stream.id())
        .map(Some)
        .map_err(|err| corrupt(err.to_string()))
}
