//! The application service: the only place that does I/O. Every entry point names one
//! decision; the engine loads the streams that decision asks for, authorizes, decides (pure) and
//! appends with the versions it decided on, deciding again when a concurrent writer got there
//! first.
//!
//! One type, [`PasskeyLinks`], with its `impl` blocks split by concern: issuance
//! (`issue.rs`), redemption (`redeem.rs`), passkeys (`passkeys.rs`), delivery (`deliver.rs`),
//! org and user lifecycle (`admin.rs`), read-side queries (`read.rs`), on top of the engine
//! (`engine.rs`, with loading and committing in [`crate::repo`] and per-decision load hints in
//! `hints.rs`), idempotency keys (`idempotency.rs`), operations' deadlines and spans
//! (`operation.rs`) and access control (`access.rs`).

mod access;
mod admin;
mod clock;
mod config;
mod deliver;
mod directory;
mod engine;
mod hints;
mod idempotency;
mod issue;
mod login;
mod operation;
mod outbox;
mod passkeys;
mod read;
mod redeem;
mod renew;

pub use clock::REMEASURE as CLOCK_REMEASURE;
pub use config::{Config, DEFAULT_DEADLINE};
pub use deliver::DeliveryRetry;
pub use idempotency::{DEFAULT_IDEMPOTENCY_RETENTION, IdempotencyKey, MAX_KEY_LEN, Scoped};
pub use login::MAX_CREDENTIAL_JSON;
pub use outbox::{
    DEFAULT_DELIVERY_CONCURRENCY, DELIVERY_WORKER, DeliveryRound, DeliveryWorker, MAX_PENDING,
    OutboxHealth,
};
pub use read::{DEFAULT_AUDIT_PAGE, MAX_AUDIT_PAGE};

use std::future::Future;

use self::operation::{Op, operation, within_deadline};
use crate::error::Error;
use crate::ports::authorizer::Authorizer;
use crate::ports::clock::{Clock, SystemClock};
use crate::ports::notifier::Notifier;
use crate::ports::random::{OsRandom, RandomSource};
use crate::ports::relying_party::{NoRelyingParty, RelyingParty};
use crate::repo::Repository;
use crate::secret::Keyring;
use crate::store::EventStore;

/// The passkey registration link service.
///
/// Generic over its ports; `C` and `R` default to the system clock and the OS CSPRNG, `P` (the
/// WebAuthn relying party) to none: passkey registration needs
/// [`PasskeyLinks::with_relying_party`] (e.g. the webauthn-rs adapter of feature `webauthn`).
///
/// ```
/// use passkey_links::prelude::*;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let links = LinkConfig::new(BaseUrl::parse("https://id.example.com").unwrap());
/// let service = PasskeyLinks::new(
///     InMemoryStore::new(),
///     RecordingNotifier::new(),
///     StaticGrants::new(),
///     Config::new(links),
/// );
/// let org = service
///     .add_org(&Caller::System, AddOrgRequest { name: "ACME".into(), ..Default::default() })
///     .await
///     .unwrap();
/// let user = service
///     .add_human_user(
///         &Caller::System,
///         Some(&org.org_id),
///         AddHumanUserRequest {
///             user_name: "ada".into(),
///             display_name: "Ada".into(),
///             email: "ada@example.com".into(),
///             is_email_verified: true,
///             ..Default::default()
///         },
///     )
///     .await
///     .unwrap();
/// let me = Caller::user(
///     UserId::new(user.user_id).unwrap(),
///     OrgId::new(org.org_id).unwrap(),
/// );
/// let response = service.add_my_passwordless_link(&me).await.unwrap();
/// assert!(response.link.starts_with("https://id.example.com/ui/login/login/passwordless/init?"));
/// assert_eq!(response.expiration.to_string(), "3600s");
/// assert_eq!(response.details.sequence, 1);
/// # });
/// ```
pub struct PasskeyLinks<S, N, A, C = SystemClock, R = OsRandom, P = NoRelyingParty> {
    store: S,
    notifier: N,
    authorizer: A,
    clock: C,
    random: R,
    relying_party: P,
    config: Config,
    repo: Repository,
    /// The configured keys, or the outbox's, or one of this process's own.
    keys: Keyring,
    /// This node's clock's offset to the store's.
    store_clock: clock::StoreClock,
}

impl<S, N, A, C, R, P> std::fmt::Debug for PasskeyLinks<S, N, A, C, R, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasskeyLinks")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, N, A> PasskeyLinks<S, N, A>
where
    S: EventStore,
    N: Notifier,
    A: Authorizer,
{
    /// A service on the system clock and the OS CSPRNG.
    pub fn new(store: S, notifier: N, authorizer: A, config: Config) -> Self {
        Self {
            store,
            notifier,
            authorizer,
            clock: SystemClock,
            random: OsRandom,
            relying_party: NoRelyingParty,
            repo: Repository::new(
                config.state_cache_capacity(),
                config.snapshot_every(),
                config.decide_from_cache(),
            ),
            keys: config.keyring().cloned().unwrap_or_else(Keyring::ephemeral),
            store_clock: clock::StoreClock::default(),
            config,
        }
    }
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
    /// Replaces the clock.
    pub fn with_clock<C2: Clock>(self, clock: C2) -> PasskeyLinks<S, N, A, C2, R, P> {
        PasskeyLinks {
            store: self.store,
            notifier: self.notifier,
            authorizer: self.authorizer,
            clock,
            random: self.random,
            relying_party: self.relying_party,
            config: self.config,
            repo: self.repo,
            keys: self.keys,
            store_clock: self.store_clock,
        }
    }

    /// Replaces the id and secret source.
    pub fn with_random<R2: RandomSource>(self, random: R2) -> PasskeyLinks<S, N, A, C, R2, P> {
        PasskeyLinks {
            store: self.store,
            notifier: self.notifier,
            authorizer: self.authorizer,
            clock: self.clock,
            random,
            relying_party: self.relying_party,
            config: self.config,
            repo: self.repo,
            keys: self.keys,
            store_clock: self.store_clock,
        }
    }

    /// Sets the WebAuthn relying party that runs passkey registrations.
    pub fn with_relying_party<P2: RelyingParty>(
        self,
        relying_party: P2,
    ) -> PasskeyLinks<S, N, A, C, R, P2> {
        PasskeyLinks {
            store: self.store,
            notifier: self.notifier,
            authorizer: self.authorizer,
            clock: self.clock,
            random: self.random,
            relying_party,
            config: self.config,
            repo: self.repo,
            keys: self.keys,
            store_clock: self.store_clock,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The event store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The notifier.
    pub fn notifier(&self) -> &N {
        &self.notifier
    }

    /// Runs one public operation: its span, its outcome log and its deadline.
    fn traced<T>(
        &self,
        op: Op,
        work: impl Future<Output = Result<T, Error>>,
    ) -> impl Future<Output = Result<T, Error>> {
        operation(
            op,
            move |op: &Op| idempotency::start(op, &self.keys),
            self.config.deadline(),
            |left| self.store.sleep(left),
            async move {
                self.sync_clock().await?;
                work.await
            },
        )
    }

    /// The source of ids and secrets for the current command: under an idempotency key, the
    /// randomness derived from the deployment's keys for it, so that a retry draws the same.
    fn call_random(&self) -> idempotency::CallRandom<'_, R> {
        idempotency::CallRandom(&self.random)
    }
}
