//! The read side's storage port: durable checkpoints for projections over the global feed, and
//! the tables of the read models the crate ships (a user's live links, the audit trail per user
//! and per org). Both shipped stores implement it (adapters import the port they implement); a
//! third-party event store that does not only loses the read side.
//!
//! Every change names the feed position of the event it comes from, and applying one is
//! idempotent by that position: a projection runs at least once per event.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain::code::{CodeEvent, CodeState, Issued};
use crate::domain::{CheckFailure, DeliveryFailure};
use crate::ids::{CodeRef, OrgId, StreamId, UserId};
use crate::ports::forward_port;
use crate::store::StoreError;

/// Where a code's delivery stands in the live-links read model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeliveryState {
    /// Returned to the caller at issuance (no delivery).
    Returned,
    /// Waiting for the notifier.
    Requested,
    /// The notifier accepted it.
    Sent,
    /// Delivery failed: the code is never usable.
    Failed,
}

impl DeliveryState {
    /// The stored and wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Returned => "RETURNED",
            Self::Requested => "REQUESTED",
            Self::Sent => "SENT",
            Self::Failed => "FAILED",
        }
    }

    /// The state named `name` by [`DeliveryState::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Returned, Self::Requested, Self::Sent, Self::Failed]
            .into_iter()
            .find(|state| state.as_str() == name)
    }
}

/// One audit-trail entry: an event as an admin may see it — never a secret, a secret's digest,
/// key material or ceremony state.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AuditEntry {
    /// The event's feed position (entries sort by it, newest first).
    pub feed_position: u64,
    /// The event's stream.
    pub stream: StreamId,
    /// The event's version in its stream.
    pub version: u64,
    /// The stored event type.
    pub event_type: String,
    /// When it happened.
    pub recorded_at: DateTime<Utc>,
    /// The payload's fields an admin may see.
    pub detail: Value,
}

impl AuditEntry {
    /// An entry.
    pub fn new(
        feed_position: u64,
        stream: StreamId,
        version: u64,
        event_type: String,
        recorded_at: DateTime<Utc>,
        detail: Value,
    ) -> Self {
        Self {
            feed_position,
            stream,
            version,
            event_type,
            recorded_at,
            detail,
        }
    }
}

/// Whose audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditScope {
    /// A user's: their own stream and their codes' and credentials' streams.
    User(UserId),
    /// An org's: its stream and every stream its users own.
    Org(OrgId),
}

/// A code as the live-links read model holds it, named by its reference (never its id: the id
/// leaves the library only inside the link). Ended codes — consumed, revoked — are not listed;
/// a code whose delivery failed is, with the reason, until it expires (it can be redelivered).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkRow {
    /// The code's reference.
    pub code: CodeRef,
    /// Its issuance facts (its user and org among them).
    pub issued: Issued,
    /// Where its delivery stands.
    pub delivery: DeliveryState,
    /// Why its delivery failed, while it stands failed.
    pub failure: Option<DeliveryFailure>,
    /// Failed checks recorded so far.
    pub failed_checks: u32,
}

impl LinkRow {
    /// A row.
    pub fn new(
        code: CodeRef,
        issued: Issued,
        delivery: DeliveryState,
        failure: Option<DeliveryFailure>,
        failed_checks: u32,
    ) -> Self {
        Self {
            code,
            issued,
            delivery,
            failure,
            failed_checks,
        }
    }

    /// The code's state rebuilt through the code fold from what the read model holds.
    pub fn code_state(&self) -> CodeState {
        let mut code = CodeState::default();
        let issued = self.issued.clone();
        code.apply(&match self.delivery {
            DeliveryState::Returned => CodeEvent::Added { issued },
            _ => CodeEvent::Requested {
                issued,
                url_template: None,
                supersedes_when_usable: false,
                outbox: false,
                key_id: None,
            },
        });
        match self.delivery {
            DeliveryState::Sent => code.apply(&CodeEvent::Sent {
                message_id: String::new(),
            }),
            DeliveryState::Failed => code.apply(&CodeEvent::DeliveryFailed {
                reason: self.failure.unwrap_or(DeliveryFailure::Unavailable),
            }),
            DeliveryState::Returned | DeliveryState::Requested => {}
        }
        for _ in 0..self.failed_checks {
            code.apply(&CodeEvent::CheckFailed {
                reason: CheckFailure::WrongSecret,
            });
        }
        code
    }
}

/// A change to the shipped read models, computed from one feed event. Applying a change twice,
/// or an older one after a newer one, leaves the tables as applying it once in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ReadChange {
    /// `stream` belongs to `user_id` (if any) in `org_id`: its audit entries list under both.
    Owner {
        /// The stream.
        stream: StreamId,
        /// Its user (none for an org's own stream).
        user_id: Option<UserId>,
        /// Its org.
        org_id: OrgId,
    },
    /// An audit entry for the owners of its stream (recorded before: an event's owner is
    /// always known by its stream's first event).
    Audit(AuditEntry),
    /// A code was issued.
    LinkIssued {
        /// Its row (delivery `Returned` or `Requested`, no failed checks).
        row: LinkRow,
        /// The event's feed position.
        feed_position: u64,
    },
    /// A code's delivery moved on: sent, failed (with why), or requested again.
    LinkDelivered {
        /// The code.
        code: CodeRef,
        /// `Sent`, `Failed` or `Requested`.
        state: DeliveryState,
        /// Why it failed, for `Failed`.
        failure: Option<DeliveryFailure>,
        /// The event's feed position.
        feed_position: u64,
    },
    /// A check of the code failed.
    LinkCheckFailed {
        /// The code.
        code: CodeRef,
        /// The event's feed position (counted once).
        feed_position: u64,
    },
    /// The code was consumed or revoked.
    LinkEnded {
        /// The code.
        code: CodeRef,
        /// The event's feed position.
        feed_position: u64,
    },
}

/// Durable projection checkpoints and the shipped read models' tables.
///
/// Run `testing::conformance::run_projection_store` (feature `testing`) against an
/// implementation to check it.
pub trait ProjectionStore: Send + Sync {
    /// The feed position of the newest event (0: none yet) — what a caught-up projection's
    /// checkpoint reaches; events committed but not yet given a position count as if they had
    /// one. Health queries measure lag against it.
    fn feed_head(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The feed position `projection` has applied through (0: nothing yet).
    fn checkpoint(&self, projection: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Records that `projection` has applied through `position` (a lower position than the
    /// recorded one is ignored: checkpoints never move back).
    fn save_checkpoint(
        &self,
        projection: &str,
        position: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Applies `changes` (in order) to the read models and records `through` as the checkpoint
    /// of `projection`, atomically: either both or neither.
    fn apply_read_changes(
        &self,
        projection: &str,
        through: u64,
        changes: Vec<ReadChange>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The codes of `user_id` that have not ended (neither consumed nor revoked; a failed
    /// delivery is listed), newest first. Whether each is still usable (expiry, supersession,
    /// the user's and org's state) is the domain's rule, applied by the caller.
    fn link_rows(
        &self,
        user_id: &UserId,
    ) -> impl Future<Output = Result<Vec<LinkRow>, StoreError>> + Send;

    /// Up to `limit` audit entries of `scope`, newest first, with a feed position below
    /// `before` (`None`: from the newest).
    fn audit_page(
        &self,
        scope: &AuditScope,
        before: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, StoreError>> + Send;
}

forward_port!(ProjectionStore {
    fn feed_head(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
    fn checkpoint(&self, projection: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;
    fn save_checkpoint(&self, projection: &str, position: u64) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn apply_read_changes(&self, projection: &str, through: u64, changes: Vec<ReadChange>) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn link_rows(&self, user_id: &UserId) -> impl Future<Output = Result<Vec<LinkRow>, StoreError>> + Send;
    fn audit_page(&self, scope: &AuditScope, before: Option<u64>, limit: usize) -> impl Future<Output = Result<Vec<AuditEntry>, StoreError>> + Send;
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_support::*;
    use crate::domain::{Event, Issued};
    use crate::domain::{OrgState, UserState, is_live};
    use crate::secret::Secret;
    use chrono::Duration;

    fn active_user_and_org() -> (UserState, OrgState) {
        let (mut user, mut org) = (UserState::default(), OrgState::default());
        for change in world() {
            match change.event() {
                Event::User(event) => user.apply(event),
                Event::Org(event) => org.apply(event),
                _ => {}
            }
        }
        (user, org)
    }

    fn link_row(delivery: DeliveryState, failed_checks: u32) -> LinkRow {
        let issued = Issued::new(
            user(),
            org(),
            Secret::presented("a-secret-of-enough-length-000000").digest(),
            t0(),
            Duration::hours(1),
            2,
            1,
            5,
        );
        LinkRow::new(code(1).reference(), issued, delivery, None, failed_checks)
    }

    #[test]
    fn a_fresh_returned_code_is_live_and_an_expired_one_is_not() {
        let (user, org) = active_user_and_org();
        let row = link_row(DeliveryState::Returned, 0);
        let issued_at = row.issued.issued_at;
        assert!(is_live(
            &row.code_state(),
            &user,
            Some(&org),
            issued_at,
            Duration::zero()
        ));
        let expired = row.issued.expires_at;
        assert!(!is_live(
            &row.code_state(),
            &user,
            Some(&org),
            expired,
            Duration::zero()
        ));
    }

    #[test]
    fn a_code_waiting_for_delivery_is_live_and_an_exhausted_one_is_not() {
        let (user, org) = active_user_and_org();
        let waiting = link_row(DeliveryState::Requested, 0);
        let now = waiting.issued.issued_at;
        assert!(is_live(
            &waiting.code_state(),
            &user,
            Some(&org),
            now,
            Duration::zero()
        ));
        let max = waiting.issued.max_failed_checks;
        let exhausted = link_row(DeliveryState::Sent, max);
        assert!(!is_live(
            &exhausted.code_state(),
            &user,
            Some(&org),
            now,
            Duration::zero()
        ));
        let failed_once = link_row(DeliveryState::Sent, 1);
        assert!(is_live(
            &failed_once.code_state(),
            &user,
            Some(&org),
            now,
            Duration::zero()
        ));
    }

    #[test]
    fn a_locked_user_has_no_live_code() {
        let (mut user, org) = active_user_and_org();
        let row = link_row(DeliveryState::Returned, 0);
        user.apply(&crate::domain::UserEvent::Locked {});
        let now = row.issued.issued_at;
        assert!(!is_live(
            &row.code_state(),
            &user,
            Some(&org),
            now,
            Duration::zero()
        ));
    }
}
