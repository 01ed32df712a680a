//! The one execution mechanism: *load → authorize → decide → commit*, and on a conflict decide
//! again on fresh state, a bounded number of times. Loading and committing are the
//! repository's ([`crate::repo`]); idempotency keys are recorded with the commit and answered
//! from it ([`super::idempotency`]).

use super::PasskeyLinks;
use super::access::Guard;
use super::hints::Hinted;
use super::idempotency::{self, Call, FirstRun, Recorded};
use crate::domain::{Change, Ctx, Decide, Outcome, View, decide_loaded};
use crate::error::{Error, catalogue};
use crate::ids::{AggregateKind, StreamId};
use crate::ports::authorizer::Authorizer;
use crate::ports::clock::Clock;
use crate::ports::notifier::Notifier;
use crate::ports::random::RandomSource;
use crate::ports::relying_party::RelyingParty;
use crate::repo::{Loaded, Source};
use crate::store::{EventStore, StoreError};
use crate::wire::{Details, DetailsResponse};

/// The states after a decision was appended.
pub(crate) struct Executed {
    pub(crate) loaded: Loaded,
    /// Under an idempotency key the store had recorded already: the first run (the states are
    /// as of its events).
    pub(crate) first_run: Option<FirstRun>,
    /// Events this run appended (a retry: the streams its first run wrote).
    pub(crate) appended: usize,
}

impl Executed {
    /// `details` of `stream`, from its last applied event.
    pub(crate) fn details(&self, stream: &StreamId) -> Result<Details, Error> {
        let entry = self.loaded.get(stream).ok_or_else(|| {
            if self.first_run.is_some() {
                // The first run wrote other streams: its answer depended on values this
                // process cannot reproduce.
                idempotency::result_gone()
            } else {
                Error::internal(format!("no details for stream {stream}"))
            }
        })?;
        let resource_owner = match stream.kind() {
            AggregateKind::Org => Some(stream.id().to_owned()),
            _ => entry
                .state
                .resource_owner()
                .map(|org| org.as_str().to_owned()),
        };
        match (entry.meta.created_at, entry.meta.changed_at, resource_owner) {
            (Some(creation_date), Some(change_date), Some(resource_owner)) => Ok(Details {
                sequence: entry.state.version(),
                creation_date,
                change_date,
                resource_owner,
            }),
            _ => Err(Error::internal(format!("no details for stream {stream}"))),
        }
    }

    pub(crate) fn view(&self) -> View<'_> {
        View::new(&self.loaded)
    }

    /// What the first run recorded, on a retry.
    pub(crate) fn recalled(&self) -> Option<&Recorded> {
        self.first_run.as_ref().map(|first| &first.outcome)
    }
}

/// What one decision concluded, as the commit sees it.
struct Decided {
    changes: Vec<Change>,
    refusal: Option<crate::domain::DomainError>,
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
    /// Loads, authorizes, decides and commits `decision`; conflicts are decided again.
    pub(crate) async fn execute<D: Decide + Hinted>(
        &self,
        decision: &D,
        guard: &Guard,
    ) -> Result<Executed, Error> {
        self.execute_recording(decision, guard, || Recorded::Nothing)
            .await
    }

    /// As [`Self::execute`]; under an idempotency key not used yet, the commit records the key
    /// with `outcome` (what the command needs to answer a retry, never a secret), and a key
    /// the store holds already answers from the first run instead of deciding again.
    pub(crate) async fn execute_recording<D: Decide + Hinted>(
        &self,
        decision: &D,
        guard: &Guard,
        outcome: impl Fn() -> Recorded,
    ) -> Result<Executed, Error> {
        let call = idempotency::pending();
        let hints = decision.hints();
        let asks = |loaded: &Loaded| next_ask(decision, guard, loaded);
        let mut source = self.repo.first_source();
        let mut attempts = 0;
        loop {
            if source == Source::Store {
                if attempts == self.config.max_attempts().max(1) {
                    return Err(Error::catalogued(
                        catalogue::TOO_MANY_CONFLICTS,
                        "too many concurrent changes, retry",
                    ));
                }
                attempts += 1;
            }
            let mut loaded = self.repo.load(&self.store, source, &asks, &hints).await?;
            // Whatever happens next, the next try reads the store.
            source = Source::Store;
            if let Err(err) = self.authorize(guard, &loaded).await {
                if loaded.is_warm() {
                    // A refusal must stand on what the store holds.
                    continue;
                }
                return Err(err);
            }
            let Decided { changes, refusal } = self.decide(decision, &loaded)?;
            // A warm decision stands only if its commit validates it: changes that go through.
            if loaded.is_warm()
                && (refusal.is_some() || (changes.is_empty() && !hints.read_for_commit))
            {
                continue;
            }
            if changes.is_empty() {
                return match refusal {
                    None => Ok(Executed {
                        loaded,
                        first_run: None,
                        appended: 0,
                    }),
                    // A retry finds its own first run's effects (a used code, a locked user):
                    // answer as the first run did.
                    Some(refusal) => match self.replay(call.as_ref()).await? {
                        Some(first) => first,
                        None => Err(refusal.into()),
                    },
                };
            }
            let now = self.now();
            let record = call
                .as_ref()
                .map(|call| call.record(outcome(), refusal.as_ref(), now))
                .transpose()?;
            let recording = record.is_some();
            match self
                .repo
                .commit(&self.store, &mut loaded, &changes, now, record, &hints)
                .await
            {
                Ok(()) => super::operation::mark_written(),
                Err(StoreError::OutcomeUnknown(message)) => {
                    // It may have been written: so the answer must not claim otherwise.
                    super::operation::mark_written();
                    return Err(StoreError::OutcomeUnknown(message).into());
                }
                Err(StoreError::Conflict { .. }) => {
                    // Decide again on fresh state; let the writer that won finish first.
                    YieldNow(false).await;
                    continue;
                }
                Err(StoreError::DuplicateKey) => {
                    return self.replay(call.as_ref()).await?.unwrap_or_else(|| {
                        Err(Error::internal("a repeated key without its record"))
                    });
                }
                Err(other) => return Err(other.into()),
            }
            if recording {
                idempotency::mark_used();
            }
            return match refusal {
                Some(refusal) => Err(refusal.into()),
                None => Ok(Executed {
                    loaded,
                    first_run: None,
                    appended: changes.len(),
                }),
            };
        }
    }

    fn decide<D: Decide>(&self, decision: &D, loaded: &Loaded) -> Result<Decided, Error> {
        let ctx = Ctx {
            now: self.now(),
            policy: self.config.policy(),
            links: self.config.links(),
        };
        let outcome = decide_loaded(decision, loaded, &ctx)
            .map_err(|_| Error::internal("a decision asked for a stream after loading"))?;
        Ok(match outcome {
            Outcome::Accept(changes) => Decided {
                changes,
                refusal: None,
            },
            Outcome::Reject(error) => Decided {
                changes: Vec::new(),
                refusal: Some(error),
            },
            Outcome::RecordAndRefuse(changes, error) => Decided {
                changes,
                refusal: Some(error),
            },
        })
    }

    /// What the first run under `call`'s key did, if the store recorded it: its refusal, or the
    /// states of the streams it wrote as of its events, with its outcome.
    async fn replay(&self, call: Option<&Call>) -> Result<Option<Result<Executed, Error>>, Error> {
        let Some(call) = call else {
            return Ok(None);
        };
        let Some(recalled) = self.store.recall(call.stored_key()).await? else {
            return Ok(None);
        };
        idempotency::mark_used();
        let first = match call.first_run(&recalled.outcome) {
            Ok(first) => first,
            Err(err) => return Ok(Some(Err(err))),
        };
        if let Some(refusal) = first.refusal.clone() {
            return Ok(Some(Err(refusal.into())));
        }
        let appended = recalled.streams.len();
        let loaded = self.repo.replay(&self.store, recalled.streams).await?;
        Ok(Some(Ok(Executed {
            loaded,
            first_run: Some(first),
            appended,
        })))
    }

    /// Runs a decision whose answer is the `details` of `stream`.
    pub(crate) async fn execute_for_details<D: Decide + Hinted>(
        &self,
        decision: &D,
        guard: &Guard,
        stream: &StreamId,
    ) -> Result<DetailsResponse, Error> {
        let executed = self.execute(decision, guard).await?;
        Ok(DetailsResponse {
            details: executed.details(stream)?,
        })
    }
}

/// The streams `decision` or its guard asks for next on `loaded`; `None` once both have all
/// they need.
fn next_ask<D: Decide>(decision: &D, guard: &Guard, loaded: &Loaded) -> Option<Vec<StreamId>> {
    let view = View::new(loaded);
    match (decision.state(&view), guard.state(&view)) {
        (Ok(_), Ok(())) => None,
        (Err(missing), _) | (Ok(_), Err(missing)) => Some(missing.into_streams()),
    }
}

/// Yields to the executor once (runtime-agnostic): a retry after a conflict must not starve the
/// task that won, which may share this worker thread.
struct YieldNow(bool);

impl std::future::Future for YieldNow {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}
