//! A given/when/then harness for the pure domain: `given(history)`, `when(&decision, at)`, then
//! `then(events)`, `then_error(error)`, `then_refused(events, error)` or `then_any()`. It
//! compares typed events and typed errors, never strings, and reports failures at the caller's
//! line.
//!
//! It loads exactly as the service does: the history plays the event store, and a decision sees
//! only the streams its [`Decide::state`] asks for (a stream absent from the history is empty).
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use passkey_links::domain::{AddOrg, Change, ChangeOrg, DomainError, OrgChange, OrgEvent};
//! use passkey_links::ids::OrgId;
//! use passkey_links::testing::given;
//!
//! let org = OrgId::new("o1").unwrap();
//! let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
//! let deactivate = ChangeOrg { org_id: org.clone(), change: OrgChange::Deactivate };
//! given([Change::org(&org, OrgEvent::Added { name: "ACME".into() })])
//!     .when(&deactivate, at)
//!     .then([Change::org(&org, OrgEvent::Deactivated {})]);
//!
//! given([])
//!     .when(&deactivate, at)
//!     .then_error(DomainError::OrgNotFound);
//! ```

// A test harness reports failures by panicking, like `assert_eq!`.
#![allow(clippy::panic, clippy::expect_used)]

use chrono::{DateTime, Utc};

use crate::domain::{
    AnyState, Change, CodeState, Ctx, Decide, DomainError, OrgState, Outcome, States, UserState,
    decide_loaded, resolve,
};
use crate::ids::{CodeId, OrgId, StreamId, UserId};
use crate::link::{BaseUrl, LinkConfig};
use crate::policy::Policy;

/// Starts a scenario from earlier events.
pub fn given(history: impl IntoIterator<Item = Change>) -> Given {
    let links = BaseUrl::parse("https://id.example.com")
        .map(LinkConfig::new)
        .expect("a valid default base URL");
    let mut given = Given {
        store: Streams::default(),
        policy: Policy::default(),
        links,
    };
    for change in history {
        given.record(&change);
    }
    given
}

/// States by stream, in the order first seen.
#[derive(Debug, Clone, Default, PartialEq)]
struct Streams(Vec<(StreamId, AnyState)>);

impl States for Streams {
    fn state(&self, kind: crate::ids::AggregateKind, id: &str) -> Option<&AnyState> {
        self.0.as_slice().state(kind, id)
    }
}

impl Streams {
    fn get(&self, stream: &StreamId) -> Option<&AnyState> {
        self.state(stream.kind(), stream.id())
    }

    fn insert(&mut self, stream: StreamId, state: AnyState) {
        match self.0.iter_mut().find(|(s, _)| *s == stream) {
            Some((_, slot)) => *slot = state,
            None => self.0.push((stream, state)),
        }
    }

    fn apply(&mut self, change: &Change) {
        let stream = change.stream();
        let mut state = self
            .get(stream)
            .cloned()
            .unwrap_or_else(|| AnyState::empty(stream.kind()));
        state.apply(change.event());
        self.insert(stream.clone(), state);
    }
}

/// A scenario's history, folded per stream (it plays the event store).
#[derive(Debug, Clone)]
pub struct Given {
    store: Streams,
    policy: Policy,
    links: LinkConfig,
}

impl PartialEq for Given {
    /// Two scenarios are equal when every stream folded to the same state.
    fn eq(&self, other: &Self) -> bool {
        let contains_all = |a: &Streams, b: &Streams| {
            a.0.iter()
                .all(|(stream, state)| b.get(stream) == Some(state))
        };
        contains_all(&self.store, &other.store) && contains_all(&other.store, &self.store)
    }
}

impl Given {
    /// Decides under `policy` instead of the default.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Renders and checks links against `links` instead of `https://id.example.com`.
    pub fn with_links(mut self, links: LinkConfig) -> Self {
        self.links = links;
        self
    }

    fn record(&mut self, change: &Change) {
        // Event timestamps are the envelope's business; rules read payload times only.
        self.store.apply(change);
    }

    /// The state of a user stream (empty when the history has none of its events).
    pub fn user(&self, id: &UserId) -> UserState {
        match self.store.get(&StreamId::user(id)) {
            Some(AnyState::User(state)) => state.as_ref().clone(),
            _ => UserState::default(),
        }
    }

    /// The state of an org stream.
    pub fn org(&self, id: &OrgId) -> OrgState {
        match self.store.get(&StreamId::org(id)) {
            Some(AnyState::Org(state)) => state.as_ref().clone(),
            _ => OrgState::default(),
        }
    }

    /// The state of a code stream.
    pub fn code(&self, id: &CodeId) -> CodeState {
        match self.store.get(&StreamId::code(id)) {
            Some(AnyState::Code(state)) => state.as_ref().clone(),
            _ => CodeState::default(),
        }
    }

    /// Decides `decision` at `at`, loading through its own [`Decide::state`].
    pub fn when<D: Decide>(self, decision: &D, at: DateTime<Utc>) -> Then {
        let mut loaded = Streams::default();
        resolve(decision, &mut loaded, |loaded, streams| {
            for stream in streams {
                let state = self
                    .store
                    .get(&stream)
                    .cloned()
                    .unwrap_or_else(|| AnyState::empty(stream.kind()));
                loaded.insert(stream, state);
            }
        });
        let ctx = Ctx {
            now: at,
            policy: &self.policy,
            links: &self.links,
        };
        let outcome =
            decide_loaded(decision, &loaded, &ctx).expect("every asked-for stream is loaded");
        Then {
            given: self,
            outcome,
        }
    }
}

/// A decided scenario, to assert on.
#[derive(Debug, Clone)]
pub struct Then {
    given: Given,
    outcome: Outcome,
}

impl Then {
    /// The outcome.
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    fn advance(mut self, changes: &[Change]) -> Given {
        for change in changes {
            self.given.record(change);
        }
        self.given
    }

    /// Asserts the decision was accepted with exactly `expected`. Returns the scenario after
    /// them, to chain further steps.
    ///
    /// # Panics
    /// When the outcome differs (this is a test helper).
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = Change>) -> Given {
        let expected: Vec<Change> = expected.into_iter().collect();
        match self.outcome.clone() {
            Outcome::Accept(changes) => {
                assert_eq!(changes, expected, "the decision produced other events");
                self.advance(&changes)
            }
            other => panic!("expected events {expected:?}, got {other:?}"),
        }
    }

    /// Asserts the decision was accepted, whatever it appended. Returns the scenario after it.
    ///
    /// # Panics
    /// When the decision was refused.
    #[track_caller]
    pub fn then_any(self) -> Given {
        match self.outcome.clone() {
            Outcome::Accept(changes) => self.advance(&changes),
            other => panic!("expected acceptance, got {other:?}"),
        }
    }

    /// Asserts the decision was rejected with `expected` and appends nothing. Returns the
    /// unchanged scenario.
    ///
    /// # Panics
    /// When the outcome differs.
    #[track_caller]
    pub fn then_error(self, expected: DomainError) -> Given {
        match &self.outcome {
            Outcome::Reject(error) => assert_eq!(error, &expected, "rejected otherwise"),
            other => panic!("expected error {expected:?}, got {other:?}"),
        }
        self.given
    }

    /// Asserts the decision recorded `expected` and refused with `error` (a refused code).
    /// Returns the scenario after the recorded events.
    ///
    /// # Panics
    /// When the outcome differs.
    #[track_caller]
    pub fn then_refused(
        self,
        expected: impl IntoIterator<Item = Change>,
        error: DomainError,
    ) -> Given {
        let expected: Vec<Change> = expected.into_iter().collect();
        match self.outcome.clone() {
            Outcome::RecordAndRefuse(changes, refusal) => {
                assert_eq!(refusal, error, "refused for another reason");
                assert_eq!(changes, expected, "the refusal recorded other events");
                self.advance(&changes)
            }
            other => panic!("expected refusal {error:?}, got {other:?}"),
        }
    }

    /// Records whatever the decision appended (accepted or refused) and returns the scenario
    /// after it: for property tests that drive random sequences.
    pub fn record(self) -> Given {
        match self.outcome.clone() {
            Outcome::Accept(changes) | Outcome::RecordAndRefuse(changes, _) => {
                self.advance(&changes)
            }
            Outcome::Reject(_) => self.given,
        }
    }
}
