//! Whether a dead link may be traded for a fresh one: only a link that died of age — it expired,
//! or a newer link superseded it — presented with its secret, never one that was consumed,
//! revoked, exhausted by wrong guesses, failed delivery, or was killed by a stop of its user or
//! org or a change of its user's email. Appends nothing: the fresh link is issued (and mailed)
//! by the ordinary send, under its rules and its rate limit.

use chrono::Duration;

use super::check::PresentCode;
use crate::domain::code::{CodeState, CodeStatus, Presented, refusal};
use crate::domain::org::OrgState;
use crate::domain::user::UserState;
use crate::domain::{CheckFailure, Ctx, Decide, DomainError, Missing, Outcome, View};

/// Read a presented dead link and accept (appending nothing) only if it died of age.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadDeadLink(pub PresentCode);

impl Decide for ReadDeadLink {
    type State<'a> = (&'a CodeState, &'a UserState, Option<&'a OrgState>);

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        view.require(&self.0.streams())?;
        let user = view.user(&self.0.user_id)?;
        Ok((view.code(&self.0.code_id)?, user, view.org_of(user)?))
    }

    fn decide(&self, (code, user, org): Self::State<'_>, ctx: &Ctx<'_>) -> Outcome {
        let refuse = |reason| Outcome::Reject(DomainError::CodeInvalid(reason));
        let Some(issued) = code.issued() else {
            return refuse(CheckFailure::UnknownCode);
        };
        // The secret first: without it, nothing about the link is judged.
        if !self.0.secret.matches(&issued.secret_digest) {
            return refuse(CheckFailure::WrongSecret);
        }
        if code.status() != CodeStatus::Usable {
            return refuse(CheckFailure::Revoked);
        }
        let presented = Presented {
            user_id: &self.0.user_id,
            secret: Some(&self.0.secret),
        };
        let skew = ctx.policy.clock_skew_tolerance();
        // Judged as of just before its expiry, every other killer shows; judged now, it must be
        // dead (a live link is used, not renewed).
        let before_expiry = ctx.now.min(issued.expires_at - Duration::seconds(1));
        let died_of_age = match refusal(&presented, code, user, org, before_expiry, skew) {
            None => ctx.now >= issued.expires_at,
            Some(CheckFailure::Superseded) => !user.email_changed_since(issued.user_version),
            Some(_) => false,
        };
        if died_of_age {
            Outcome::Accept(Vec::new())
        } else {
            refuse(CheckFailure::Revoked)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::decisions::{ChangeUser, Delivery, UserChange};
    use crate::domain::test_support::*;
    use crate::domain::{NamedCode, RevokeCode};
    use crate::testing::given;

    fn dead_link(n: u32, secret: crate::secret::Secret) -> ReadDeadLink {
        ReadDeadLink(present(n, secret))
    }

    fn refused() -> DomainError {
        DomainError::CodeInvalid(CheckFailure::Revoked)
    }

    #[test]
    fn an_expired_or_superseded_link_with_its_secret_may_be_renewed() {
        let expired = t0() + Duration::hours(2);
        given(returned_code_history())
            // A live link is used, not renewed.
            .when(&dead_link(1, secret(1)), t0())
            .then_error(refused())
            .when(&dead_link(1, secret(1)), expired)
            .then([])
            // Without its secret, nothing.
            .when(&dead_link(1, secret(2)), expired)
            .then_error(DomainError::CodeInvalid(CheckFailure::WrongSecret))
            // Superseded by a newer link: renewable at once.
            .when(&issue(2, Delivery::Returned), t0())
            .then_any()
            .when(&dead_link(1, secret(1)), t0())
            .then([]);
    }

    #[test]
    fn a_link_killed_any_other_way_is_never_renewed() {
        let expired = t0() + Duration::hours(2);
        let change = |change| ChangeUser {
            user_id: user(),
            org_context: None,
            change,
        };
        // Killed by a lock (even after the unlock, and after it expired).
        given(returned_code_history())
            .when(&change(UserChange::Lock), t0())
            .then_any()
            .when(&change(UserChange::Unlock), t0())
            .then_any()
            .when(&dead_link(1, secret(1)), expired)
            .then_error(refused());
        // Revoked.
        given(returned_code_history())
            .when(
                &RevokeCode {
                    user_id: user(),
                    code: NamedCode::Id(code(1)),
                    org_context: None,
                },
                t0(),
            )
            .then_any()
            .when(&dead_link(1, secret(1)), expired)
            .then_error(refused());
        // Exhausted by wrong guesses.
        let mut exhausted = given(returned_code_history());
        for _ in 0..3 {
            exhausted = exhausted.when(&check(1, secret(9)), t0()).then_refused(
                [failed(1, CheckFailure::WrongSecret)],
                DomainError::CodeInvalid(CheckFailure::WrongSecret),
            );
        }
        exhausted
            .when(&dead_link(1, secret(1)), expired)
            .then_error(refused());
        // Killed by an email change (the new address gets links by the ordinary send).
        given(returned_code_history())
            .when(
                &change(UserChange::ChangeEmail {
                    email: "new@example.com".into(),
                }),
                t0(),
            )
            .then_any()
            .when(&dead_link(1, secret(1)), expired)
            .then_error(refused());
    }
}
