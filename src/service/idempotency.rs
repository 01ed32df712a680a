//! Idempotency keys: a command run inside [`IdempotencyKey::scope`] records the key atomically
//! with the events it appends, and a retry with the same key answers as the first run did
//! instead of acting twice (SPEC §5).
//!
//! The key travels with the future, not through every method's signature: the scope puts the
//! call's context in a thread-local slot for the duration of each poll (as task-local values do,
//! but for any executor), and the engine reads it there.
//!
//! A key is the caller's: it is stored scoped to the caller (another principal's identical key
//! is another key) and bound to a fingerprint of the request (command, target, body), as the
//! IETF Idempotency-Key draft and Stripe do.
//!
//! What a retry gets back:
//! - the first run's answer, from the states as of the events it recorded (the same `details`),
//!   or its recorded refusal (a wrong code stays one failed attempt);
//! - the same link: ids and secrets of a keyed command are derived from the deployment's keys
//!   ([`crate::Keyring`]) and the scoped key, so any instance holding the keys draws the same
//!   (a secret is stored nowhere). Without configured keys, a process derives from a key of its
//!   own, and another process answers a retry of a link-returning command with `PKL-SVC-05`;
//! - the same key for another command or another request: `PKL-SVC-04`, and nothing runs.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::operation::Op;
use crate::domain::{CeremonyFailure, CheckFailure, DomainError};
use crate::error::{Error, catalogue};
use crate::ids::{CodeId, IdError, OrgId, PasskeyId, UserId};
use crate::ports::random::RandomSource;
use crate::secret::Keyring;
use crate::store::IdempotencyRecord;

/// Longest accepted key, in bytes.
pub const MAX_KEY_LEN: usize = 255;

/// A caller's idempotency key: 1 to [`MAX_KEY_LEN`] printable ASCII characters (a UUID is a
/// good choice). Not a secret; it is stored with the events it covers.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Validates a key.
    ///
    /// # Errors
    /// [`IdError`] when empty, too long, or not printable ASCII.
    pub fn new(key: impl Into<String>) -> Result<Self, IdError> {
        let key = key.into();
        if key.is_empty() {
            return Err(IdError::Empty {
                kind: "idempotency key",
            });
        }
        if key.len() > MAX_KEY_LEN {
            return Err(IdError::TooLong {
                kind: "idempotency key",
                max: MAX_KEY_LEN,
            });
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(IdError::BadCharacter {
                kind: "idempotency key",
            });
        }
        Ok(Self(key))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Runs one command of the service under this key:
    /// `key.scope(service.check_code(request)).await`. Run one command per scope; a second
    /// command in the same scope reuses the key and is refused (`PKL-SVC-04`) once the first
    /// recorded it.
    ///
    /// ```
    /// use passkey_links::prelude::*;
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let links = LinkConfig::new(BaseUrl::parse("https://id.example.com").unwrap());
    /// # let service = PasskeyLinks::new(
    /// #     InMemoryStore::new(), RecordingNotifier::new(), StaticGrants::new(), Config::new(links),
    /// # );
    /// let add = || AddOrgRequest { name: "ACME".into(), ..Default::default() };
    /// let key = IdempotencyKey::new("6f1c0d7e-0b4e-4d8a-9a43-2f0e5f1b7c11").unwrap();
    /// let first = key.scope(service.add_org(&Caller::System, add())).await.unwrap();
    /// // The answer was lost on the way; the client retries with the same key.
    /// let retry = key.scope(service.add_org(&Caller::System, add())).await.unwrap();
    /// assert_eq!(retry.org_id, first.org_id); // one org, not two
    /// assert_eq!(retry.details, first.details);
    /// # });
    /// ```
    pub fn scope<F: Future>(&self, command: F) -> Scoped<F> {
        Scoped {
            context: Some(CallContext {
                key: self.clone(),
                call: None,
                used: false,
                rng: None,
            }),
            command: Box::pin(command),
        }
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({:?})", self.0)
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A command running under an idempotency key ([`IdempotencyKey::scope`]).
#[must_use = "a scoped command does nothing unless awaited"]
pub struct Scoped<F> {
    context: Option<CallContext>,
    command: Pin<Box<F>>,
}

impl<F> fmt::Debug for Scoped<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scoped").finish_non_exhaustive()
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let outer = CURRENT.with(|slot| slot.replace(this.context.take()));
        // Put the context back where it lives between polls, even if the command panics.
        struct Restore<'a> {
            home: &'a mut Option<CallContext>,
            outer: Option<Option<CallContext>>,
        }
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                let outer = self.outer.take().flatten();
                *self.home = CURRENT.with(|slot| slot.replace(outer));
            }
        }
        let _restore = Restore {
            home: &mut this.context,
            outer: Some(outer),
        };
        this.command.as_mut().poll(cx)
    }
}

/// The state of one keyed command, while it is polled.
struct CallContext {
    key: IdempotencyKey,
    /// Set when the command starts.
    call: Option<Call>,
    /// Whether the key is recorded (or recalled) already.
    used: bool,
    /// Randomness for ids and secrets, derived from the deployment's key and the scoped key.
    rng: Option<ChaCha20Rng>,
}

thread_local! {
    static CURRENT: RefCell<Option<CallContext>> = const { RefCell::new(None) };
}

/// What randomness of a keyed command is derived for.
const KEYED_COMMAND: &str = "passkey-links keyed command v1";

/// The randomness of a keyed command stored under `stored_key`, under `key_id` of `keys`.
fn keyed_rng(keys: &Keyring, key_id: &str, stored_key: &str) -> Option<ChaCha20Rng> {
    let key = keys.get(key_id)?;
    Some(ChaCha20Rng::from_seed(
        key.mac(KEYED_COMMAND, &[stored_key.as_bytes()]),
    ))
}

/// Marks the start of command `op`: the key (if any) is not yet used, scoped to the caller and
/// bound to the request; draws start from the randomness derived for it.
pub(crate) fn start(op: &Op, keys: &Keyring) {
    CURRENT.with(|slot| {
        if let Some(context) = slot.borrow_mut().as_mut() {
            let (key_id, _) = keys.current();
            let call = Call::new(&context.key, op, key_id);
            context.used = false;
            context.rng = keyed_rng(keys, key_id, &call.stored_key);
            context.call = Some(call);
        }
    });
}

/// The current command's key, while it is in scope and not used yet.
pub(crate) fn pending() -> Option<Call> {
    CURRENT.with(|slot| {
        slot.borrow()
            .as_ref()
            .filter(|context| !context.used)
            .and_then(|context| context.call.clone())
    })
}

/// A keyed command, as the engine records and recalls it.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// The key as stored: scoped to the caller.
    stored_key: String,
    op: &'static str,
    fingerprint: String,
    /// The deployment key its randomness is derived from.
    key_id: String,
}

impl Call {
    fn new(key: &IdempotencyKey, op: &Op, key_id: &str) -> Self {
        use sha2::{Digest, Sha256};
        let scoped = Sha256::new()
            .chain_update(b"passkey-links idempotency key v1\0")
            .chain_update(op.principal().as_bytes())
            .chain_update([0])
            .chain_update(key.as_str().as_bytes())
            .finalize();
        Self {
            stored_key: scoped.iter().map(|b| format!("{b:02x}")).collect(),
            op: op.name(),
            fingerprint: op.fingerprint(),
            key_id: key_id.to_owned(),
        }
    }
}

/// The randomness a keyed command's first run drew, when it ran under key `key_id` of `keys`
/// (a retry after the keys rotated re-derives with the first run's key).
pub(crate) fn first_run_rng(keys: &Keyring, key_id: &str) -> Option<ChaCha20Rng> {
    let stored_key = CURRENT.with(|slot| {
        slot.borrow()
            .as_ref()
            .and_then(|context| context.call.as_ref().map(|call| call.stored_key.clone()))
    })?;
    keyed_rng(keys, key_id, &stored_key)
}

/// What a keyed command's first run recorded to answer a retry the same way: never a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub(crate) enum Recorded {
    /// Nothing beyond the states it wrote.
    Nothing,
    /// The org it created.
    Org {
        /// Its id.
        org_id: OrgId,
    },
    /// The user it created.
    User {
        /// Its id.
        user_id: UserId,
    },
    /// The code it issued.
    Code {
        /// Its id.
        code_id: CodeId,
    },
    /// The passkey ceremony it started.
    #[serde(rename_all = "camelCase")]
    Ceremony {
        /// The passkey's id.
        passkey_id: PasskeyId,
        /// The options the browser was given.
        creation_options: Value,
    },
}

/// A refusal recorded with the events of a first run (a failed check stays one failed attempt),
/// with its typed cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "reason", rename_all = "camelCase")]
enum Refusal {
    CodeInvalid(CheckFailure),
    PasskeyVerificationFailed(CeremonyFailure),
    PasskeyCloned,
}

impl Refusal {
    fn of(error: &DomainError) -> Option<Self> {
        match error {
            DomainError::CodeInvalid(reason) => Some(Self::CodeInvalid(*reason)),
            DomainError::PasskeyVerificationFailed(reason) => {
                Some(Self::PasskeyVerificationFailed(*reason))
            }
            DomainError::PasskeyCloned => Some(Self::PasskeyCloned),
            _ => None,
        }
    }

    fn error(self) -> DomainError {
        match self {
            Self::CodeInvalid(reason) => DomainError::CodeInvalid(reason),
            Self::PasskeyVerificationFailed(reason) => {
                DomainError::PasskeyVerificationFailed(reason)
            }
            Self::PasskeyCloned => DomainError::PasskeyCloned,
        }
    }
}

/// The stored record.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    op: String,
    fingerprint: String,
    key_id: String,
    outcome: Recorded,
    refusal: Option<Refusal>,
}

/// A first run as recalled.
#[derive(Debug, Clone)]
pub(crate) struct FirstRun {
    /// What it recorded.
    pub(crate) outcome: Recorded,
    /// The refusal it answered with, if any.
    pub(crate) refusal: Option<DomainError>,
    /// The deployment key its randomness was derived from.
    pub(crate) key_id: String,
}

impl Call {
    /// The key as the store keeps it: scoped to the caller.
    pub(crate) fn stored_key(&self) -> &str {
        &self.stored_key
    }

    /// The record of this call's first run.
    ///
    /// # Errors
    /// Internal for a refusal that is never recorded with events.
    pub(crate) fn record(
        &self,
        outcome: Recorded,
        refusal: Option<&DomainError>,
        at: DateTime<Utc>,
    ) -> Result<IdempotencyRecord, Error> {
        let refusal = match refusal {
            Some(error) => Some(Refusal::of(error).ok_or_else(|| {
                Error::internal("a refusal recorded with events that has no stored form")
            })?),
            None => None,
        };
        let stored = Stored {
            op: self.op.to_owned(),
            fingerprint: self.fingerprint.clone(),
            key_id: self.key_id.clone(),
            outcome,
            refusal,
        };
        Ok(IdempotencyRecord {
            key: self.stored_key().to_owned(),
            outcome: serde_json::to_value(stored)
                .map_err(|err| Error::internal(format!("idempotency record: {err}")))?,
            recorded_at: at,
        })
    }

    /// The first run `stored` recorded under this call's key.
    ///
    /// # Errors
    /// `PKL-SVC-04` when the key was used for another command or another request; Internal
    /// for a record this release cannot read.
    pub(crate) fn first_run(&self, stored: &Value) -> Result<FirstRun, Error> {
        let stored: Stored = serde_json::from_value(stored.clone())
            .map_err(|err| Error::internal(format!("unreadable idempotency record: {err}")))?;
        if stored.op != self.op || stored.fingerprint != self.fingerprint {
            return Err(Error::catalogued(
                catalogue::IDEMPOTENCY_KEY_REUSED,
                "this idempotency key was used for another request: use a new key for a new \
                 request",
            ));
        }
        Ok(FirstRun {
            outcome: stored.outcome,
            refusal: stored.refusal.map(Refusal::error),
            key_id: stored.key_id,
        })
    }
}

/// A retry under an idempotency key whose first run drew ids or a secret this process cannot
/// reproduce: it ran under deployment keys this process does not hold.
pub(crate) fn result_gone() -> Error {
    Error::catalogued(
        catalogue::IDEMPOTENT_RESULT_GONE,
        "the first run under this idempotency key ran in a process with other deployment keys; \
         its answer (a new id or a link) cannot be shown again: configure the same keys on \
         every instance (Config::with_keyring), or run the command again with a new key",
    )
}

/// How long idempotency records are kept unless an embedder prunes otherwise: a day, as
/// Stripe keeps its keys — longer than any client retries, and than any code lives.
pub const DEFAULT_IDEMPOTENCY_RETENTION: std::time::Duration =
    std::time::Duration::from_secs(24 * 60 * 60);

impl<S, N, A, C, R, P> super::PasskeyLinks<S, N, A, C, R, P>
where
    S: crate::store::EventStore,
    N: crate::ports::notifier::Notifier,
    A: crate::ports::authorizer::Authorizer,
    C: crate::ports::clock::Clock,
    R: RandomSource,
    P: crate::ports::relying_party::RelyingParty,
{
    /// Deletes the idempotency records older than `older_than` (by when their first run was
    /// recorded); answers how many. A retry under a pruned key runs as a new request, so keep
    /// them longer than clients retry — [`DEFAULT_IDEMPOTENCY_RETENTION`] is a good floor. Run
    /// it from one instance now and then (hourly, say); the events stay.
    ///
    /// # Errors
    /// The store failed (nothing or part was deleted: run it again).
    pub async fn prune_idempotency_keys(
        &self,
        older_than: std::time::Duration,
    ) -> Result<u64, Error> {
        let age = chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
        let before = self
            .now()
            .checked_sub_signed(age)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        Ok(self.store.prune_idempotency(before).await?)
    }
}

/// The key is recorded (or was found recorded): later appends of the command run without it.
pub(crate) fn mark_used() {
    CURRENT.with(|slot| {
        if let Some(context) = slot.borrow_mut().as_mut() {
            context.used = true;
        }
    });
}

/// Random bytes for the current command: from the key's seed under a key, else from `random`.
pub(crate) struct CallRandom<'a, R: ?Sized>(pub(crate) &'a R);

impl<R: RandomSource + ?Sized> RandomSource for CallRandom<'_, R> {
    fn fill_bytes(&self, dest: &mut [u8]) {
        let seeded = CURRENT.with(|slot| {
            slot.borrow_mut()
                .as_mut()
                .and_then(|context| context.rng.as_mut())
                .map(|rng| rng.fill_bytes(dest))
                .is_some()
        });
        if !seeded {
            self.0.fill_bytes(dest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated() {
        assert!(IdempotencyKey::new("3f2b9c1e-7a4d-4e1b-9d7e-0c6a5b4f3e21").is_ok());
        assert!(IdempotencyKey::new("").is_err());
        assert!(IdempotencyKey::new("with space").is_err());
        assert!(IdempotencyKey::new("x".repeat(MAX_KEY_LEN + 1)).is_err());
        assert!(IdempotencyKey::new("ключ").is_err());
    }

    #[test]
    fn the_context_is_visible_only_inside_the_scope() {
        let key = IdempotencyKey::new("k").unwrap();
        let keys = Keyring::ephemeral();
        let op = Op::new("test.op");
        let seen = futures_ready(key.scope(async {
            start(&op, &keys);
            pending().map(|call| call.op)
        }));
        assert_eq!(seen, Some("test.op"));
        assert!(pending().is_none(), "nothing leaks out of the scope");
    }

    /// A key is stored scoped to the caller and bound to the request: another principal's
    /// identical key is another key; the same caller's key with another request is refused.
    #[test]
    fn a_key_is_scoped_to_its_caller_and_bound_to_its_request() {
        let key = IdempotencyKey::new("k").unwrap();
        let ada = crate::Caller::user(
            crate::ids::UserId::new("ada").unwrap(),
            crate::ids::OrgId::new("o").unwrap(),
        );
        let bob = crate::Caller::user(
            crate::ids::UserId::new("bob").unwrap(),
            crate::ids::OrgId::new("o").unwrap(),
        );
        let call = |caller: &crate::Caller, input: &str| {
            Call::new(&key, &Op::new("op").caller(caller).input(input), "k1")
        };
        assert_ne!(call(&ada, "x").stored_key, call(&bob, "x").stored_key);
        assert_eq!(call(&ada, "x").stored_key, call(&ada, "y").stored_key);
        let at = chrono::Utc::now();
        let first = call(&ada, "x").record(Recorded::Nothing, None, at).unwrap();
        assert!(call(&ada, "x").first_run(&first.outcome).is_ok());
        let reused = call(&ada, "y").first_run(&first.outcome).unwrap_err();
        assert_eq!(reused.id(), "PKL-SVC-04");
    }

    fn futures_ready<T>(future: impl Future<Output = T>) -> T {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(value) => value,
            Poll::Pending => panic!("the test future waits"),
        }
    }
}
