//! The queries of the read side: which of a user's not-ended codes are live (the same rule a
//! check applies), and reading an org for its audit trail.

use chrono::{DateTime, Duration};

use crate::domain::code::{CodeEvent, CodeState, Presented, refusal};
use crate::domain::org::OrgState;
use crate::domain::user::UserState;
use crate::domain::{CheckFailure, Ctx, Decide, DomainError, Missing, Outcome, View};
use crate::ids::{OrgId, UserId};
use crate::store::{DeliveryState, LinkRow};

/// Read a user and their org as seen from an org context (appends nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadUserAndOrg {
    /// The user.
    pub user_id: UserId,
    /// Org context of an admin call; `None`: any org.
    pub org_context: Option<OrgId>,
}

impl Decide for ReadUserAndOrg {
    type State<'a> = (&'a UserState, Option<&'a OrgState>);

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        let user = view.user(&self.user_id)?;
        Ok((user, view.org_of(user)?))
    }

    fn decide(&self, (user, _): Self::State<'_>, _: &Ctx<'_>) -> Outcome {
        match user.locate(self.org_context.as_ref()) {
            Ok(_) => Outcome::Accept(Vec::new()),
            Err(err) => Outcome::Reject(err),
        }
    }
}

/// Read an org (appends nothing): NotFound unless it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOrg {
    /// The org.
    pub org_id: OrgId,
}

impl Decide for ReadOrg {
    type State<'a> = &'a OrgState;

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        view.org(&self.org_id)
    }

    fn decide(&self, org: &OrgState, _: &Ctx<'_>) -> Outcome {
        if org.exists() {
            Outcome::Accept(Vec::new())
        } else {
            Outcome::Reject(DomainError::OrgNotFound)
        }
    }
}

/// Whether a code the read model lists is live now: usable by its user under every rule a
/// check applies (expiry, supersession, the user's and org's state, failed checks), or waiting
/// for delivery and live otherwise.
pub fn is_live(
    row: &LinkRow,
    user: &UserState,
    org: Option<&OrgState>,
    now: DateTime<chrono::Utc>,
    skew_tolerance: Duration,
) -> bool {
    let code = code_state(row);
    let presented = Presented {
        user_id: &row.issued.user_id,
        secret: None,
    };
    matches!(
        refusal(&presented, &code, user, org, now, skew_tolerance),
        None | Some(CheckFailure::NotDelivered)
    )
}

/// The code's state rebuilt through the code fold from what the read model holds.
fn code_state(row: &LinkRow) -> CodeState {
    let mut code = CodeState::default();
    let issued = row.issued.clone();
    code.apply(&match row.delivery {
        DeliveryState::Returned => CodeEvent::Added { issued },
        _ => CodeEvent::Requested {
            issued,
            url_template: None,
            supersedes_when_usable: false,
            outbox: false,
        },
    });
    match row.delivery {
        DeliveryState::Sent => code.apply(&CodeEvent::Sent {
            message_id: String::new(),
        }),
        DeliveryState::Failed => code.apply(&CodeEvent::DeliveryFailed {
            reason: crate::domain::DeliveryFailure::Unavailable,
        }),
        DeliveryState::Returned | DeliveryState::Requested => {}
    }
    for _ in 0..row.failed_checks {
        code.apply(&CodeEvent::CheckFailed {
            reason: CheckFailure::WrongSecret,
        });
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_support::*;
    use crate::domain::{Event, Issued};
    use crate::secret::Secret;

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
        LinkRow::new(code(1), issued, delivery, failed_checks)
    }

    #[test]
    fn a_fresh_returned_code_is_live_and_an_expired_one_is_not() {
        let (user, org) = active_user_and_org();
        let row = link_row(DeliveryState::Returned, 0);
        let issued_at = row.issued.issued_at;
        assert!(is_live(
            &row,
            &user,
            Some(&org),
            issued_at,
            Duration::zero()
        ));
        let expired = row.issued.expires_at;
        assert!(!is_live(&row, &user, Some(&org), expired, Duration::zero()));
    }

    #[test]
    fn a_code_waiting_for_delivery_is_live_and_an_exhausted_one_is_not() {
        let (user, org) = active_user_and_org();
        let waiting = link_row(DeliveryState::Requested, 0);
        let now = waiting.issued.issued_at;
        assert!(is_live(&waiting, &user, Some(&org), now, Duration::zero()));
        let max = waiting.issued.max_failed_checks;
        let exhausted = link_row(DeliveryState::Sent, max);
        assert!(!is_live(
            &exhausted,
            &user,
            Some(&org),
            now,
            Duration::zero()
        ));
        let failed_once = link_row(DeliveryState::Sent, 1);
        assert!(is_live(
            &failed_once,
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
        assert!(!is_live(&row, &user, Some(&org), now, Duration::zero()));
    }
}
