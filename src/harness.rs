//! A given/when/then harness for the pure domain: `given(history)`, `when(command, at)`, then
//! `then(events)`, `then_error(error)` or `then_refused(events, error)`. It compares typed events
//! and typed errors, never strings, and reports failures at the caller's line.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use passkey_links::domain::org::{OrgCommand, OrgEvent};
//! use passkey_links::domain::{Change, Command, DomainError};
//! use passkey_links::harness::given;
//! use passkey_links::ids::{OrgId, StreamId};
//!
//! let org = OrgId::new("o1").unwrap();
//! let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
//! given([Change::new(StreamId::org(&org), OrgEvent::Added { name: "ACME".into() })])
//!     .when(Command::Org { org_id: org.clone(), command: OrgCommand::Deactivate }, at)
//!     .then([Change::new(StreamId::org(&org), OrgEvent::Deactivated {})]);
//!
//! given([])
//!     .when(Command::Org { org_id: org, command: OrgCommand::Deactivate }, at)
//!     .then_error(DomainError::OrgNotFound);
//! ```

// A test harness reports failures by panicking, like `assert_eq!`.
#![allow(clippy::panic)]

use chrono::{DateTime, Utc};

use crate::domain::{self, Change, Command, Decision, DomainError, World};
use crate::policy::Policy;

/// Starts a scenario from earlier events.
pub fn given(history: impl IntoIterator<Item = Change>) -> Given {
    let mut world = World::new();
    for change in history {
        world.apply(&change);
    }
    Given {
        world,
        policy: Policy::default(),
    }
}

/// A scenario's history.
#[derive(Debug, Clone)]
pub struct Given {
    world: World,
    policy: Policy,
}

impl Given {
    /// Decides under `policy` instead of the default.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The world folded from the history.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// Runs `command` at `at`.
    pub fn when(self, command: Command, at: DateTime<Utc>) -> Then {
        let result = domain::decide(&self.world, &command, &self.policy, at);
        Then {
            world: self.world,
            policy: self.policy,
            result,
        }
    }
}

/// A decided scenario, to assert on.
#[derive(Debug, Clone)]
pub struct Then {
    world: World,
    policy: Policy,
    result: Result<Decision, DomainError>,
}

impl Then {
    /// The raw result.
    pub fn result(&self) -> &Result<Decision, DomainError> {
        &self.result
    }

    /// Asserts the command was accepted with exactly `expected`. Returns the world after them,
    /// to chain further steps.
    ///
    /// # Panics
    /// When the result differs (this is a test helper).
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = Change>) -> Given {
        let expected: Vec<Change> = expected.into_iter().collect();
        let Then {
            world,
            policy,
            result,
        } = self;
        match result {
            Ok(Decision {
                changes,
                refusal: None,
            }) => {
                assert_eq!(changes, expected, "the command produced other events");
                advance(world, policy, &changes)
            }
            Ok(Decision {
                refusal: Some(refusal),
                changes,
            }) => panic!("expected acceptance, got refusal {refusal:?} with {changes:?}"),
            Err(error) => panic!("expected events {expected:?}, got error {error:?}"),
        }
    }

    /// Asserts the command was rejected with `expected` and appends nothing. Returns the
    /// unchanged world, to chain further steps.
    ///
    /// # Panics
    /// When the result differs.
    #[track_caller]
    pub fn then_error(self, expected: DomainError) -> Given {
        match self.result {
            Err(error) => assert_eq!(error, expected, "the command failed otherwise"),
            Ok(decision) => panic!("expected error {expected:?}, got {decision:?}"),
        }
        Given {
            world: self.world,
            policy: self.policy,
        }
    }

    /// Asserts the command recorded `expected` and was refused with `error` (a refused code).
    /// Returns the world after the recorded events.
    ///
    /// # Panics
    /// When the result differs.
    #[track_caller]
    pub fn then_refused(
        self,
        expected: impl IntoIterator<Item = Change>,
        error: DomainError,
    ) -> Given {
        let expected: Vec<Change> = expected.into_iter().collect();
        let Then {
            world,
            policy,
            result,
        } = self;
        match result {
            Ok(Decision {
                changes,
                refusal: Some(refusal),
            }) => {
                assert_eq!(refusal, error, "refused for another reason");
                assert_eq!(changes, expected, "the refusal recorded other events");
                advance(world, policy, &changes)
            }
            Ok(decision) => panic!("expected refusal {error:?}, got acceptance {decision:?}"),
            Err(other) => panic!("expected refusal {error:?}, got error {other:?}"),
        }
    }
}

fn advance(mut world: World, policy: Policy, changes: &[Change]) -> Given {
    for change in changes {
        world.apply(change);
    }
    Given { world, policy }
}
