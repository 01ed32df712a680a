//! The read side: projections over the global feed, run at least once per event from a durable
//! checkpoint, and what the crate ships on top — its read models ([`ReadModels`]: a user's live
//! links, the audit trail per user and per org). The delivery outbox's worker
//! ([`crate::DeliveryWorker`]) reads the same feed, with a checkpoint of its own.
//!
//! ```
//! use passkey_links::prelude::*;
//! use passkey_links::read::{ProjectionRunner, ReadModels};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = InMemoryStore::new();
//! let links = LinkConfig::new(BaseUrl::parse("https://id.example.com").unwrap());
//! let service = PasskeyLinks::new(&store, RecordingNotifier::new(), StaticGrants::new(), Config::new(links));
//! service
//!     .add_org(&Caller::System, AddOrgRequest { name: "ACME".into(), ..Default::default() })
//!     .await
//!     .unwrap();
//! let runner = ProjectionRunner::new(&store, ReadModels::new(&store));
//! assert_eq!(runner.catch_up().await.unwrap(), 1);
//! assert_eq!(runner.catch_up().await.unwrap(), 0);
//! # });
//! ```

mod models;
pub(crate) mod store;

pub use models::{AUDIT_FIELDS, READ_MODELS, ReadModels, changes_for};
pub use store::{AuditEntry, AuditScope, DeliveryState, LinkRow, ProjectionStore, ReadChange};

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use crate::error::Error;
use crate::store::{EventStore, FeedEvent};

/// A projection over the global feed: it applies events in feed order and keeps its own
/// checkpoint (the feed position it has applied through) durably — where it can, in the same
/// transaction as its effects. It may be handed events it applied already (at least once), so
/// applying must be idempotent by feed position.
pub trait Projection: Send + Sync {
    /// Its name (the key of its checkpoint).
    fn name(&self) -> &str;

    /// The feed position it has applied through (0: nothing yet).
    fn checkpoint(&self) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Applies `events` (in feed order, never empty) and records the last one's feed position
    /// as its checkpoint.
    fn apply(&self, events: &[FeedEvent]) -> impl Future<Output = Result<(), Error>> + Send;
}

impl<T: Projection + ?Sized> Projection for &T {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn checkpoint(&self) -> impl Future<Output = Result<u64, Error>> + Send {
        (**self).checkpoint()
    }

    fn apply(&self, events: &[FeedEvent]) -> impl Future<Output = Result<(), Error>> + Send {
        (**self).apply(events)
    }
}

/// Runs a projection: catches up with the feed from its checkpoint, batch by batch, then
/// follows it by polling. Polling needs no database notification, so any store works; several
/// runners of one projection are safe (at least once), if wasteful.
#[derive(Debug, Clone)]
pub struct ProjectionRunner<S, P> {
    store: S,
    projection: P,
    batch_size: usize,
    poll_interval: Duration,
}

/// How far a projection is behind the feed (for an operator: alert on a `lag` that grows).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProjectionHealth {
    /// The projection's name.
    pub name: String,
    /// The newest feed position.
    pub feed_head: u64,
    /// The position the projection has applied through.
    pub checkpoint: u64,
    /// Events it has still to apply.
    pub lag: u64,
}

/// Events per batch unless configured otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 500;
/// How long a following runner waits when it finds nothing new, unless configured otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(250);

impl<S: EventStore, P: Projection> ProjectionRunner<S, P> {
    /// A runner of `projection` over `store`'s feed.
    pub fn new(store: S, projection: P) -> Self {
        Self {
            store,
            projection,
            batch_size: DEFAULT_BATCH_SIZE,
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }

    /// Events read and applied per batch (at least 1).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// How long [`ProjectionRunner::follow`] waits when it finds nothing new.
    pub fn poll_interval(mut self, poll_interval: Duration) -> Self {
        self.poll_interval = poll_interval;
        self
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// Applies every event after the projection's checkpoint, batch by batch; answers how many
    /// it applied. A failed batch stops the run with its error; its events are applied again
    /// by the next run.
    ///
    /// # Errors
    /// The store's or the projection's error.
    pub async fn catch_up(&self) -> Result<u64, Error> {
        let mut applied = 0;
        let mut after = self.projection.checkpoint().await?;
        loop {
            let events = self.store.read_feed(after, self.batch_size).await?;
            let Some(last) = events.last().map(|event| event.feed_position) else {
                return Ok(applied);
            };
            self.projection.apply(&events).await?;
            applied += events.len() as u64;
            after = last;
            if events.len() < self.batch_size {
                return Ok(applied);
            }
        }
    }

    /// How far the projection is behind the feed (a store that keeps projections knows its
    /// head). Sets the `passkey_links_projection_lag` gauge when the `metrics` feature is on.
    ///
    /// # Errors
    /// The store's or the projection's error.
    pub async fn health(&self) -> Result<ProjectionHealth, Error>
    where
        S: ProjectionStore,
    {
        let feed_head = self.store.feed_head().await?;
        let checkpoint = self.projection.checkpoint().await?;
        let lag = feed_head.saturating_sub(checkpoint);
        crate::metrics::projection_lag(self.projection.name(), lag);
        Ok(ProjectionHealth {
            name: self.projection.name().to_owned(),
            feed_head,
            checkpoint,
            lag,
        })
    }

    /// Catches up, then keeps following the feed — polling every poll interval when idle —
    /// until `stop` completes. A failure that retrying can cure (an unavailable store) is
    /// retried after the poll interval; any other failure ends the run with its error.
    ///
    /// # Errors
    /// A failure retrying cannot cure (a misconfigured store, an event that cannot be decoded).
    pub async fn follow(&self, stop: impl Future<Output = ()>) -> Result<(), Error> {
        let mut stop = pin!(stop);
        loop {
            let idle = match self.catch_up().await {
                Ok(applied) => applied == 0,
                Err(err) if err.kind().is_retryable() => true,
                Err(err) => return Err(err),
            };
            if idle {
                let mut delay = pin!(self.store.sleep(self.poll_interval));
                let stopped = std::future::poll_fn(|cx| {
                    if stop.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(true);
                    }
                    delay.as_mut().poll(cx).map(|()| false)
                })
                .await;
                if stopped {
                    return Ok(());
                }
            } else if std::future::poll_fn(|cx| Poll::Ready(stop.as_mut().poll(cx).is_ready()))
                .await
            {
                return Ok(());
            }
        }
    }
}
