//! Recording the notifier's outcome for a code that waits for delivery. A sent code becomes
//! usable and, under one live link per user, supersedes the user's earlier codes at that moment.

use chrono::{DateTime, Duration, Utc};

use crate::domain::code::{CodeEvent, CodeState, CodeStatus, DeliveryFailure, Presented, refusal};
use crate::domain::org::OrgState;
use crate::domain::user::{UserEvent, UserState};
use crate::domain::{
    Change, CheckFailure, Ctx, Decide, DomainError, Missing, Outcome, StreamKey, View,
};
use crate::ids::{CodeId, UserId};

/// The outcome of handing a code to the notifier.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryOutcome {
    /// Accepted, with the notifier's receipt id.
    Sent {
        /// Receipt id.
        message_id: String,
    },
    /// Failed.
    Failed(DeliveryFailure),
}

/// Read a code's state (nothing appended): where its delivery stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadCode {
    /// The code.
    pub code_id: CodeId,
}

impl Decide for ReadCode {
    type State<'a> = &'a CodeState;

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        view.code(&self.code_id)
    }

    fn decide(&self, code: Self::State<'_>, _: &Ctx<'_>) -> Outcome {
        match code.status() {
            CodeStatus::Missing => Outcome::Reject(DomainError::CodeNotFound),
            _ => Outcome::Accept(Vec::new()),
        }
    }
}

/// Read a code waiting for delivery with its user and org (nothing appended): what a delivery
/// worker needs to decide whether to send it, and to whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadDelivery {
    /// The code.
    pub code_id: CodeId,
}

impl Decide for ReadDelivery {
    type State<'a> = (&'a CodeState, Option<&'a UserState>, Option<&'a OrgState>);

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        let code = view.code(&self.code_id)?;
        let user = code.issued().map(|i| view.user(&i.user_id)).transpose()?;
        let org = code.issued().map(|i| view.org(&i.org_id)).transpose()?;
        Ok((code, user, org))
    }

    fn decide(&self, (code, _, _): Self::State<'_>, _: &Ctx<'_>) -> Outcome {
        match code.status() {
            CodeStatus::Missing => Outcome::Reject(DomainError::CodeNotFound),
            _ => Outcome::Accept(Vec::new()),
        }
    }
}

/// What a delivery worker does with a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PendingDelivery {
    /// Send it: it waits for delivery and would work once sent.
    Send,
    /// Nothing: its delivery is recorded already (or it was revoked).
    Done,
    /// Record that it cannot be delivered any more.
    Fail(DeliveryFailure),
}

/// Whether a code waiting for delivery should be sent now: only if it would work once sent —
/// the rule a check applies (expiry, supersession, the user's and org's state).
pub fn pending_delivery(
    code: &CodeState,
    user: Option<&UserState>,
    org: Option<&OrgState>,
    now: DateTime<Utc>,
    skew_tolerance: Duration,
) -> PendingDelivery {
    let (CodeStatus::Requested, Some(issued), Some(user)) = (code.status(), code.issued(), user)
    else {
        return PendingDelivery::Done;
    };
    let mut sent = code.clone();
    sent.apply(&CodeEvent::Sent {
        message_id: String::new(),
    });
    let presented = Presented {
        user_id: &issued.user_id,
        secret: None,
    };
    match refusal(&presented, &sent, user, org, now, skew_tolerance) {
        None => PendingDelivery::Send,
        Some(CheckFailure::Expired) => PendingDelivery::Fail(DeliveryFailure::Expired),
        Some(_) => PendingDelivery::Fail(DeliveryFailure::NoLongerUsable),
    }
}

/// Record the delivery outcome of a requested code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordDelivery {
    /// The code.
    pub code_id: CodeId,
    /// The code's user (read with the code in one go; a code of another user is not found).
    pub user_id: UserId,
    /// The outcome.
    pub outcome: DeliveryOutcome,
}

impl Decide for RecordDelivery {
    type State<'a> = (&'a CodeState, &'a UserState);

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        view.require(&[
            StreamKey::code(&self.code_id),
            StreamKey::user(&self.user_id),
        ])?;
        Ok((view.code(&self.code_id)?, view.user(&self.user_id)?))
    }

    fn decide(&self, (code, user): Self::State<'_>, _: &Ctx<'_>) -> Outcome {
        let owner = code.issued().map(|issued| &issued.user_id);
        if code.status() == CodeStatus::Missing || owner != Some(&self.user_id) {
            return Outcome::Reject(DomainError::CodeNotFound);
        }
        if code.status() != CodeStatus::Requested {
            return Outcome::Reject(DomainError::CodeNotRequested);
        }
        let mut changes = Vec::with_capacity(2);
        match &self.outcome {
            DeliveryOutcome::Sent { message_id } => {
                changes.push(Change::code(
                    &self.code_id,
                    CodeEvent::Sent {
                        message_id: message_id.clone(),
                    },
                ));
                if let (true, Some(issued), true) =
                    (code.supersedes_when_usable(), code.issued(), user.exists())
                {
                    changes.push(Change::user(
                        &issued.user_id,
                        UserEvent::CodeUsable {
                            code_id: self.code_id.clone(),
                            issued_version: issued.user_version,
                        },
                    ));
                }
            }
            DeliveryOutcome::Failed(reason) => changes.push(Change::code(
                &self.code_id,
                CodeEvent::DeliveryFailed { reason: *reason },
            )),
        }
        Outcome::Accept(changes)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::domain::Delivery;
    use crate::domain::test_support::*;
    use crate::testing::given;

    fn outbox_history() -> Vec<Change> {
        let mut history = world();
        history.extend(issued_events(
            1,
            t0(),
            1,
            Delivery::Outbox { url_template: None },
        ));
        history
    }

    #[test]
    fn a_waiting_code_is_sent_only_while_it_would_work() {
        let given = given(outbox_history());
        let (code, user, org) = (given.code(&code(1)), given.user(&user()), given.org(&org()));
        let skew = Duration::zero();
        let pending = |now| pending_delivery(&code, Some(&user), Some(&org), now, skew);
        assert_eq!(pending(t0()), PendingDelivery::Send);
        assert_eq!(
            pending(t0() + Duration::hours(1)),
            PendingDelivery::Fail(DeliveryFailure::Expired),
            "never after expiry"
        );
        let mut locked = user.clone();
        locked.apply(&UserEvent::Locked {});
        assert_eq!(
            pending_delivery(&code, Some(&locked), Some(&org), t0(), skew),
            PendingDelivery::Fail(DeliveryFailure::NoLongerUsable)
        );
        let mut delivered = code.clone();
        delivered.apply(&CodeEvent::Sent {
            message_id: "m".into(),
        });
        assert_eq!(
            pending_delivery(&delivered, Some(&user), Some(&org), t0(), skew),
            PendingDelivery::Done
        );
    }

    #[test]
    fn a_delivery_recorded_for_another_users_code_is_not_found() {
        let other = UserId::new("user-2").unwrap();
        let mut history = outbox_history();
        history.push(human_added(&other, &org(), true));
        given(history)
            .when(
                &RecordDelivery {
                    code_id: code(1),
                    user_id: other,
                    outcome: DeliveryOutcome::Sent {
                        message_id: "m".into(),
                    },
                },
                t0(),
            )
            .then_error(DomainError::CodeNotFound);
    }
}
