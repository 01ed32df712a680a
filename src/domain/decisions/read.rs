//! The queries of the read side: which of a user's not-ended codes are live (the same rule a
//! check applies), and reading an org for its audit trail.

use chrono::{DateTime, Duration};

use crate::domain::code::{CodeState, Presented, refusal};
use crate::domain::org::OrgState;
use crate::domain::user::UserState;
use crate::domain::{CheckFailure, Ctx, Decide, DomainError, Missing, Outcome, View};
use crate::ids::{OrgId, UserId};

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

/// Whether a code is live now: usable by its user under every rule a check applies (expiry,
/// supersession, the user's and org's state, failed checks), or waiting for delivery and live
/// otherwise. A code without issuance facts is not.
pub fn is_live(
    code: &CodeState,
    user: &UserState,
    org: Option<&OrgState>,
    now: DateTime<chrono::Utc>,
    skew_tolerance: Duration,
) -> bool {
    let Some(issued) = code.issued() else {
        return false;
    };
    let presented = Presented {
        user_id: &issued.user_id,
        secret: None,
    };
    matches!(
        refusal(&presented, code, user, org, now, skew_tolerance),
        None | Some(CheckFailure::NotDelivered)
    )
}
