//! One public operation as a future: it begins on its first poll, runs within the deadline, and
//! (feature `tracing`) inside its span, with its outcome logged — the one tracing and deadline
//! mechanism of the service.
//!
//! A future of its own rather than `async fn` wrappers: an `async fn` keeps a future it is given
//! twice, as its argument and as the value it polls, and each layer doubled an operation's
//! kilobytes that every call then copies.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::{Error, catalogue};
use crate::ports::authorizer::Caller;

/// What one public operation is: a name, who calls it, and a fingerprint of what it was asked —
/// what an idempotency key is scoped to and bound to — and, for its tracing span, ids (never a
/// secret, never a code id: only its derived reference; formatted only when a subscriber
/// listens).
#[derive(Debug, Clone, Default)]
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(super) struct Op {
    name: &'static str,
    enabled: bool,
    caller: Option<String>,
    user_id: Option<String>,
    code: Option<String>,
    /// The caller, as an idempotency key is scoped to it (`anonymous` without one).
    principal: String,
    /// What the request named and carried, each part length-prefixed.
    inputs: Vec<u8>,
}

impl Op {
    pub(super) fn new(name: &'static str) -> Self {
        #[cfg(feature = "tracing")]
        let enabled = tracing::enabled!(tracing::Level::INFO);
        #[cfg(not(feature = "tracing"))]
        let enabled = false;
        Self {
            name,
            enabled,
            principal: "anonymous".to_owned(),
            ..Self::default()
        }
    }

    /// The operation's name.
    pub(super) fn name(&self) -> &'static str {
        self.name
    }

    pub(super) fn caller(mut self, caller: &Caller) -> Self {
        self.principal = caller.to_string();
        if self.enabled {
            self.caller = Some(self.principal.clone());
        }
        self
    }

    pub(super) fn user(mut self, user_id: &str) -> Self {
        self = self.input(user_id);
        if self.enabled {
            self.user_id = Some(user_id.to_owned());
        }
        self
    }

    /// The derived reference of the code named by a request (ids are validated later; an
    /// invalid one gets no reference).
    pub(super) fn code(mut self, code_id: &str) -> Self {
        self = self.input(code_id);
        if self.enabled {
            self.code = crate::ids::CodeId::new(code_id)
                .ok()
                .map(|id| id.reference().to_string());
        }
        self
    }

    /// One more part of what the request asked (a name, a flag, a secret's digest — never the
    /// secret itself): a retry under the same idempotency key must ask the same.
    pub(super) fn input(mut self, part: impl AsRef<[u8]>) -> Self {
        let part = part.as_ref();
        self.inputs
            .extend_from_slice(&(part.len() as u64).to_be_bytes());
        self.inputs.extend_from_slice(part);
        self
    }

    /// As [`Op::input`], for a part that is a value (hashed as its JSON).
    pub(super) fn input_json(self, part: &impl serde::Serialize) -> Self {
        let text = serde_json::to_vec(part).unwrap_or_default();
        self.input(text)
    }

    /// Who calls, as an idempotency key is scoped to it.
    pub(super) fn principal(&self) -> &str {
        &self.principal
    }

    /// The request's fingerprint: a SHA-256 of the operation's name and every input.
    pub(super) fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(b"passkey-links request v1\0")
            .chain_update(self.name.as_bytes())
            .chain_update([0])
            .chain_update(&self.inputs)
            .finalize();
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// An operation's span and outcome log (feature `tracing`; nothing otherwise).
#[cfg(feature = "tracing")]
struct Trace {
    op: Op,
    span: Option<tracing::Span>,
}

/// An operation's span and outcome log (feature `tracing`; nothing otherwise).
#[cfg(not(feature = "tracing"))]
struct Trace {
    op: Op,
}

impl Trace {
    fn new(op: Op) -> Self {
        Self {
            op,
            #[cfg(feature = "tracing")]
            span: None,
        }
    }

    fn op(&self) -> &Op {
        &self.op
    }

    /// Runs `poll` inside the operation's span, opened on the first poll when a subscriber
    /// listens.
    fn in_span<R>(&mut self, poll: impl FnOnce() -> R) -> R {
        #[cfg(feature = "tracing")]
        if self.op.enabled {
            let op = &self.op;
            let span = self.span.get_or_insert_with(|| {
                tracing::info_span!(
                    "passkey_links",
                    op = op.name,
                    caller = op.caller.as_deref().unwrap_or("-"),
                    user_id = op.user_id.as_deref().unwrap_or("-"),
                    code = op.code.as_deref().unwrap_or("-"),
                )
            });
            return span.in_scope(poll);
        }
        poll()
    }

    /// Counts the outcome and logs it, in the span.
    fn finish<T>(&self, _result: &Result<T, Error>) {
        if !self.op.name.is_empty() {
            let outcome = match _result {
                Ok(_) => "ok",
                Err(err) => err.id(),
            };
            crate::metrics::operation(self.op.name, outcome);
        }
        #[cfg(feature = "tracing")]
        if let Some(span) = &self.span {
            let name = self.op.name;
            // Levels an operator can alert on: ERROR is a bug or corrupted data, WARN a failing
            // dependency (store, notifier, deadline); a refusal the caller caused (a wrong code,
            // a user that exists already, a missing permission) is INFO, success DEBUG.
            span.in_scope(|| match _result {
                Ok(_) => tracing::debug!(op = name, "ok"),
                Err(err) => match err.kind() {
                    crate::error::ErrorKind::Internal => {
                        tracing::error!(op = name, kind = ?err.kind(), id = err.id(), "{err}");
                    }
                    crate::error::ErrorKind::Unavailable | crate::error::ErrorKind::Aborted => {
                        tracing::warn!(op = name, kind = ?err.kind(), id = err.id(), "{err}");
                    }
                    _ => tracing::info!(op = name, kind = ?err.kind(), id = err.id(), "{err}"),
                },
            });
        }
    }
}

pin_project_lite::pin_project! {
    /// `work` as one operation: see the module.
    pub(super) struct Operation<W, B, S, F> {
        #[pin]
        work: W,
        // Run on the first poll, inside the command's scope (its idempotency key).
        begin: Option<B>,
        deadline: Option<Duration>,
        sleep: Option<S>,
        // Boxed once set: a runtime's timer can be large, and every operation's future holds this.
        timer: Option<Pin<Box<F>>>,
        trace: Trace,
        // Whether the operation has committed anything yet (a public operation only).
        wrote: Option<bool>,
    }
}

thread_local! {
    /// Whether the public operation being polled on this thread has committed anything: set by
    /// every commit ([`mark_written`]), swapped in and out around each poll (like the
    /// idempotency scope), so that the operation knows what its answer may claim.
    static WROTE: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// Records that the operation being polled has committed something.
pub(super) fn mark_written() {
    WROTE.with(|wrote| {
        if wrote.get().is_some() {
            wrote.set(Some(true));
        }
    });
}

/// An answer that would claim nothing was written, for an operation that wrote something:
/// "part of it may be recorded — retry with the same idempotency key".
fn truthful<T>(result: Result<T, Error>, wrote: bool) -> Result<T, Error> {
    match result {
        Err(err) if wrote && err.claims_nothing_written() => Err(Error::catalogued(
            catalogue::PARTIALLY_RECORDED,
            format!(
                "part of this operation was recorded before it failed ({}): retry with the \
                 same idempotency key",
                err.message()
            ),
        )),
        other => other,
    }
}

/// Runs `work` as operation `op`: `begin` on its first poll, within `deadline` on timers from
/// `sleep`. The deadline counts from the first time the work waits (its first poll runs without
/// waiting, for microseconds), so operations that never wait (in memory) do not even read the
/// clock.
pub(super) fn operation<W, B, S, F>(
    op: Op,
    begin: B,
    deadline: Option<Duration>,
    sleep: S,
    work: W,
) -> Operation<W, B, S, F> {
    let wrote = (!op.name.is_empty()).then_some(false);
    Operation {
        work,
        begin: Some(begin),
        deadline,
        sleep: Some(sleep),
        timer: None,
        trace: Trace::new(op),
        wrote,
    }
}

/// Runs `work` within `deadline`, on timers from `sleep` (as [`operation`], without a span).
pub(super) fn within_deadline<W, S, F>(
    deadline: Option<Duration>,
    work: W,
    sleep: S,
) -> Operation<W, fn(&Op), S, F> {
    operation(Op::default(), |_: &Op| {}, deadline, sleep, work)
}

impl<T, W, B, S, F> Future for Operation<W, B, S, F>
where
    W: Future<Output = Result<T, Error>>,
    B: FnOnce(&Op),
    S: FnOnce(Duration) -> F,
    F: Future<Output = ()>,
{
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(begin) = this.begin.take() {
            begin(this.trace.op());
        }
        let mut work = this.work;
        let outer = this
            .wrote
            .map(|wrote| WROTE.with(|slot| slot.replace(Some(wrote))));
        let polled = this.trace.in_span(|| work.as_mut().poll(cx));
        if let Some(outer) = outer {
            *this.wrote = WROTE.with(|slot| slot.replace(outer));
        }
        if let Poll::Ready(result) = polled {
            let result = truthful(result, this.wrote.unwrap_or(false));
            this.trace.finish(&result);
            return Poll::Ready(result);
        }
        if let (Some(deadline), Some(sleep)) = (*this.deadline, this.sleep.take()) {
            *this.timer = Some(Box::pin(sleep(deadline)));
        }
        match this.timer.as_mut().map(|timer| timer.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => {
                let expired = Err(Error::catalogued(
                    catalogue::DEADLINE_EXCEEDED,
                    format!(
                        "no answer within the deadline of {:?}; a change may have been \
                         recorded (retry with the same idempotency key)",
                        this.deadline.unwrap_or_default()
                    ),
                ));
                this.trace.finish(&expired);
                Poll::Ready(expired)
            }
            _ => Poll::Pending,
        }
    }
}
