//! The application service: the only place that does I/O. Every entry point names one
//! decision; the engine loads the streams that decision asks for, authorizes, decides (pure) and
//! appends with the versions it decided on, deciding again when a concurrent writer got there
//! first.
//!
//! One type, [`PasskeyLinks`], with its `impl` blocks split by concern: issuance
//! (`issue.rs`), redemption (`redeem.rs`), org and user lifecycle (`admin.rs`), on top of the
//! engine (`engine.rs`), the state cache (`cache.rs`) and access control (`access.rs`).

mod access;
mod admin;
mod cache;
mod deliver;
mod engine;
mod idempotency;
mod issue;
mod operation;
mod passkeys;
mod read;
mod redeem;
mod snapshot;

pub use deliver::DeliveryRetry;
pub use idempotency::{IdempotencyKey, MAX_KEY_LEN, Scoped};
pub use passkeys::{StoredPasskey, user_handle};
pub use read::{DEFAULT_AUDIT_PAGE, MAX_AUDIT_PAGE};

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

use self::cache::StateCache;
use self::operation::{Op, operation, within_deadline};
use crate::error::Error;
use crate::link::LinkConfig;
use crate::policy::Policy;
use crate::ports::authorizer::Authorizer;
use crate::ports::clock::{Clock, SystemClock, truncate_to_micros};
use crate::ports::notifier::Notifier;
use crate::ports::random::{OsRandom, RandomSource};
use crate::ports::relying_party::{NoRelyingParty, RelyingParty, UserVerification};
use crate::secret::DeliveryKey;
use crate::store::EventStore;

/// The default bound on one public operation: longer than one store call's own deadline (5 s
/// for PostgreSQL), so that a store failure is reported with its own cause when it can be.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(8);

/// Service configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Where links point.
    pub links: LinkConfig,
    /// Issuance and check rules.
    pub policy: Policy,
    /// Attempts per command when concurrent writers conflict (≥ 1).
    pub max_attempts: u32,
    /// Folded states kept in memory (orgs, users, codes read), so loading reads only new
    /// events and a decision on known states reads nothing.
    pub state_cache_capacity: usize,
    /// Whether passkey registrations require user verification (default preferred).
    pub user_verification: UserVerification,
    /// How long one public operation may wait in all — every store call, the notifier and the
    /// relying party included — before it answers Unavailable (`PKL-SVC-03`), counted from the
    /// first time it waits. `None`: no bound beyond the ports' own.
    pub deadline: Option<Duration>,
    /// The delivery outbox: with a key, sends return once the code is recorded as waiting for
    /// delivery, and a [`crate::read::DeliveryWorker`] (which needs the same key) sends it.
    /// `None` (default): sends hand the link to the notifier inside the request.
    pub outbox: Option<DeliveryKey>,
    /// An org or user stream that has grown by this many events since its last snapshot gets a
    /// new one (stores that keep snapshots: both shipped ones), so a cold load reads only the
    /// events after it. 0: never.
    pub snapshot_every: u64,
    /// Whether a command whose streams are all cached decides without reading, its append
    /// requiring every event it saw to still be last (default: yes). Off: every command reads
    /// first.
    pub decide_from_cache: bool,
}

impl Config {
    /// Default policy, 8 attempts, 10,000 cached states, a deadline of [`DEFAULT_DEADLINE`],
    /// synchronous sends (no outbox), a snapshot every 1,000 events.
    pub fn new(links: LinkConfig) -> Self {
        Self {
            links,
            policy: Policy::default(),
            max_attempts: 8,
            state_cache_capacity: 10_000,
            user_verification: UserVerification::default(),
            deadline: Some(DEFAULT_DEADLINE),
            outbox: None,
            snapshot_every: 1_000,
            decide_from_cache: true,
        }
    }

    /// Sends through the delivery outbox, deriving emailed secrets from `key` (every process
    /// that sends or delivers needs the same key).
    pub fn with_outbox(mut self, key: DeliveryKey) -> Self {
        self.outbox = Some(key);
        self
    }

    /// Replaces the per-operation deadline (`None`: unbounded).
    pub fn with_deadline(mut self, deadline: Option<Duration>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Replaces the policy.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }
}

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
    cache: StateCache,
    seeds: idempotency::Seeds,
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
            config,
            cache: StateCache::default(),
            seeds: idempotency::Seeds::default(),
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
            cache: self.cache,
            seeds: self.seeds,
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
            cache: self.cache,
            seeds: self.seeds,
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
            cache: self.cache,
            seeds: self.seeds,
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

    /// Runs one public operation: its span, its outcome log and its deadline.
    fn traced<T>(
        &self,
        op: Op,
        work: impl Future<Output = Result<T, Error>>,
    ) -> impl Future<Output = Result<T, Error>> {
        let name = op.name();
        operation(
            op,
            move || idempotency::start(name, &self.seeds, &self.random),
            self.config.deadline,
            |left| self.store.sleep(left),
            work,
        )
    }

    /// The source of ids and secrets for the current command: under an idempotency key, the
    /// key's seed, so that a retry draws the same.
    fn call_random(&self) -> idempotency::CallRandom<'_, R> {
        idempotency::CallRandom(&self.random)
    }

    fn now(&self) -> DateTime<Utc> {
        truncate_to_micros(self.clock.now())
    }
}
