//! The service's configuration: every setting has a builder (`with_…`) and an accessor.

use std::time::Duration;

use crate::link::LinkConfig;
use crate::policy::Policy;
use crate::ports::relying_party::UserVerification;
use crate::secret::Keyring;

/// The default bound on one public operation: longer than one store call's own deadline (5 s
/// for PostgreSQL), so that a store failure is reported with its own cause when it can be.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(8);

/// Service configuration: [`Config::new`] with defaults, then a builder per setting.
#[derive(Debug, Clone)]
pub struct Config {
    links: LinkConfig,
    policy: Policy,
    max_attempts: u32,
    state_cache_capacity: usize,
    user_verification: UserVerification,
    deadline: Option<Duration>,
    outbox: bool,
    keyring: Option<Keyring>,
    snapshot_every: u64,
    decide_from_cache: bool,
    store_clock: bool,
}

impl Config {
    /// Default policy, 8 attempts, 10,000 cached states, a deadline of [`DEFAULT_DEADLINE`],
    /// synchronous sends (no outbox), a snapshot every 1,000 events, decisions on cached states
    /// first.
    pub fn new(links: LinkConfig) -> Self {
        Self {
            links,
            policy: Policy::default(),
            max_attempts: 8,
            state_cache_capacity: 10_000,
            user_verification: UserVerification::default(),
            deadline: Some(DEFAULT_DEADLINE),
            outbox: false,
            keyring: None,
            snapshot_every: 1_000,
            decide_from_cache: true,
            store_clock: true,
        }
    }

    /// Replaces where links point.
    pub fn with_links(mut self, links: LinkConfig) -> Self {
        self.links = links;
        self
    }

    /// Replaces the issuance and check rules.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Attempts per command when concurrent writers conflict (at least 1).
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    /// Folded states kept in memory (orgs, users, codes read), so loading reads only new
    /// events and a decision on known states reads nothing (0: none).
    pub fn with_state_cache_capacity(mut self, capacity: usize) -> Self {
        self.state_cache_capacity = capacity;
        self
    }

    /// Whether passkey registrations require user verification (default preferred).
    pub fn with_user_verification(mut self, user_verification: UserVerification) -> Self {
        self.user_verification = user_verification;
        self
    }

    /// How long one public operation may wait in all — every store call, the notifier and the
    /// relying party included — before it answers Unavailable (`PKL-SVC-03`), counted from the
    /// first time it waits. `None`: no bound beyond the ports' own.
    pub fn with_deadline(mut self, deadline: Option<Duration>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sends through the delivery outbox, with the deployment's `keys` (as
    /// [`Config::with_keyring`]; a single [`crate::DeliveryKey`] is a keyring of one): sends
    /// return once the code is recorded as waiting, and a [`crate::DeliveryWorker`] — any
    /// process holding the key a code was issued under — delivers it.
    pub fn with_outbox(mut self, keys: impl Into<Keyring>) -> Self {
        self.outbox = true;
        self.keyring = Some(keys.into());
        self
    }

    /// The deployment's keys, the same in every instance: emailed secrets derive from them
    /// (any instance renders the link of a code another issued: the outbox, a retried send),
    /// so do the ids and secrets of commands run under an idempotency key (any instance
    /// answers a retry as the first run did), and they seal login states. Without them the
    /// service uses a key of its own that no other process shares: one instance only, and a
    /// retry reaching another instance is `PKL-SVC-05`.
    pub fn with_keyring(mut self, keyring: Keyring) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// An org or user stream that has grown by this many events since its last snapshot gets a
    /// new one (stores that keep snapshots: both shipped ones), so a cold load reads only the
    /// events after it; a long history being folded is snapshotted as it pages. 0: never.
    pub fn with_snapshot_every(mut self, events: u64) -> Self {
        self.snapshot_every = events;
        self
    }

    /// Whether a command whose streams are all cached decides without reading, its commit
    /// requiring every event it saw to still be last (default: yes). Off: every command reads
    /// first.
    pub fn with_decide_from_cache(mut self, decide_from_cache: bool) -> Self {
        self.decide_from_cache = decide_from_cache;
        self
    }

    /// Where links point.
    pub fn links(&self) -> &LinkConfig {
        &self.links
    }

    /// The issuance and check rules.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Attempts per command when concurrent writers conflict.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// States kept in memory.
    pub fn state_cache_capacity(&self) -> usize {
        self.state_cache_capacity
    }

    /// Whether passkey registrations require user verification.
    pub fn user_verification(&self) -> UserVerification {
        self.user_verification
    }

    /// The per-operation deadline.
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// Whether this node tells time by the store's clock (its own plus its measured offset to
    /// the store's, with a store that has one: PostgreSQL's). On by default; turn it off only
    /// for a clock that is meant to differ (a test's manual clock on a real database).
    pub fn with_store_clock(mut self, store_clock: bool) -> Self {
        self.store_clock = store_clock;
        self
    }

    /// Whether this node tells time by the store's clock.
    pub fn store_clock(&self) -> bool {
        self.store_clock
    }

    /// Whether sends go through the delivery outbox.
    pub fn delivers_from_outbox(&self) -> bool {
        self.outbox
    }

    /// The deployment's keys, if configured.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.keyring.as_ref()
    }

    /// Events between snapshots (0: none).
    pub fn snapshot_every(&self) -> u64 {
        self.snapshot_every
    }

    /// Whether commands decide on cached states first.
    pub fn decide_from_cache(&self) -> bool {
        self.decide_from_cache
    }
}
