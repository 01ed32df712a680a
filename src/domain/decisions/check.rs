//! Checking a presented code without consuming it. Starting a passkey registration
//! (`register.rs`) checks the same way.
//!
//! Every refusal of an existing code is recorded with its precise reason (until the failure cap)
//! and answered with the same generic invalid-code error.

use crate::domain::code::{CodeEvent, CodeState, Presented, refusal};
use crate::domain::org::OrgState;
use crate::domain::user::UserState;
use crate::domain::{
    Change, CheckFailure, Ctx, Decide, DomainError, Missing, Outcome, StreamKey, View,
};
use crate::ids::{CodeId, UserId};
use crate::secret::Secret;

/// A code as presented by whoever opened a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentCode {
    /// The user from the link.
    pub user_id: UserId,
    /// The code id from the link.
    pub code_id: CodeId,
    /// The secret from the link.
    pub secret: Secret,
}

impl PresentCode {
    /// The refusal of this presentation, if any: the failure to record (none for an unknown or
    /// exhausted code) and the generic error.
    pub(super) fn refuse(
        &self,
        code: &CodeState,
        user: &UserState,
        org: Option<&OrgState>,
        ctx: &Ctx<'_>,
    ) -> Option<Outcome> {
        let presented = Presented {
            user_id: &self.user_id,
            secret: Some(&self.secret),
        };
        let reason = refusal(
            &presented,
            code,
            user,
            org,
            ctx.now,
            ctx.policy.clock_skew_tolerance(),
        )?;
        let recordable = !matches!(reason, CheckFailure::UnknownCode | CheckFailure::Exhausted);
        let changes = if recordable {
            vec![Change::code(
                &self.code_id,
                CodeEvent::CheckFailed { reason },
            )]
        } else {
            Vec::new()
        };
        Some(Outcome::RecordAndRefuse(
            changes,
            DomainError::CodeInvalid(reason),
        ))
    }

    pub(super) fn streams(&self) -> [StreamKey<'_>; 2] {
        [
            StreamKey::code(&self.code_id),
            StreamKey::user(&self.user_id),
        ]
    }
}

/// Check a presented code without consuming it (a link may be opened many times: mail scanners
/// prefetch links).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckCode(pub PresentCode);

impl Decide for CheckCode {
    type State<'a> = (&'a CodeState, &'a UserState, Option<&'a OrgState>);

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        view.require(&self.0.streams())?;
        let user = view.user(&self.0.user_id)?;
        Ok((view.code(&self.0.code_id)?, user, view.org_of(user)?))
    }

    fn decide(&self, (code, user, org): Self::State<'_>, ctx: &Ctx<'_>) -> Outcome {
        self.0
            .refuse(code, user, org, ctx)
            .unwrap_or(Outcome::Accept(Vec::new()))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::domain::code::DeliveryFailure;
    use crate::domain::org::OrgEvent;
    use crate::domain::test_support::*;
    use crate::domain::text::Email;
    use crate::domain::user::UserEvent;
    use crate::domain::{
        ChangeOrg, ChangeUser, Delivery, DeliveryOutcome, OrgChange, RecordDelivery, UserChange,
    };
    use crate::policy::Policy;
    use crate::testing::given;

    #[test]
    fn a_returned_code_is_usable_at_once() {
        given(returned_code_history())
            .when(&check(1, secret(1)), t0())
            .then([]);
    }

    #[test]
    fn expiry_boundary_now_equal_to_expires_at_is_expired() {
        let expires_at = t0() + Duration::hours(1);
        given(returned_code_history())
            .when(&check(1, secret(1)), expires_at - Duration::microseconds(1))
            .then([]);
        given(returned_code_history())
            .when(&check(1, secret(1)), expires_at)
            .then_refused(
                [failed(1, CheckFailure::Expired)],
                DomainError::CodeInvalid(CheckFailure::Expired),
            );
    }

    #[test]
    fn expiry_is_measured_from_issuance_never_from_later_events() {
        // ZITADEL CVE-2026-32132: issued, sent, one failed check, then the right code after
        // expiry.
        let mut history = world();
        history.extend(issued_events(
            1,
            t0(),
            1,
            Delivery::Email { url_template: None },
        ));
        given(history)
            .when(&sent(1, "m1"), t0() + Duration::minutes(30))
            .then_any()
            .when(&check(1, secret(2)), t0() + Duration::minutes(59))
            .then_refused(
                [failed(1, CheckFailure::WrongSecret)],
                DomainError::CodeInvalid(CheckFailure::WrongSecret),
            )
            .when(&check(1, secret(1)), t0() + Duration::minutes(61))
            .then_refused(
                [failed(1, CheckFailure::Expired)],
                DomainError::CodeInvalid(CheckFailure::Expired),
            );
    }

    #[test]
    fn a_code_issued_in_this_nodes_future_is_refused() {
        // Issued by a node two hours fast: a correct node refuses it instead of letting its
        // lifetime stretch by the skew; within the tolerance it is fine.
        let mut history = world();
        history.extend(issued_events(
            1,
            t0() + Duration::hours(2),
            1,
            Delivery::Returned,
        ));
        given(history.clone())
            .when(&check(1, secret(1)), t0() + Duration::minutes(30))
            .then_refused(
                [failed(1, CheckFailure::IssuedInFuture)],
                DomainError::CodeInvalid(CheckFailure::IssuedInFuture),
            );
        given(history)
            .when(
                &check(1, secret(1)),
                t0() + Duration::hours(2) - Duration::seconds(60),
            )
            .then([]);
    }

    #[test]
    fn the_third_failed_check_exhausts_the_code_forever() {
        given(returned_code_history())
            .when(&check(1, secret(9)), t0())
            .then_refused(
                [failed(1, CheckFailure::WrongSecret)],
                DomainError::CodeInvalid(CheckFailure::WrongSecret),
            )
            .when(&check(1, secret(9)), t0())
            .then_refused(
                [failed(1, CheckFailure::WrongSecret)],
                DomainError::CodeInvalid(CheckFailure::WrongSecret),
            )
            .when(&check(1, secret(9)), t0())
            .then_refused(
                [failed(1, CheckFailure::WrongSecret)],
                DomainError::CodeInvalid(CheckFailure::WrongSecret),
            )
            // Exhausted: the right secret is refused and nothing more is recorded.
            .when(&check(1, secret(1)), t0())
            .then_refused([], DomainError::CodeInvalid(CheckFailure::Exhausted));
    }

    #[test]
    fn the_failed_check_cap_is_configurable() {
        let policy = Policy::default().with_max_failed_checks(1).unwrap();
        given(world())
            .with_policy(policy)
            .when(&issue(1, Delivery::Returned), t0())
            .then_any()
            .when(&check(1, secret(9)), t0())
            .then_refused(
                [failed(1, CheckFailure::WrongSecret)],
                DomainError::CodeInvalid(CheckFailure::WrongSecret),
            )
            .when(&check(1, secret(1)), t0())
            .then_refused([], DomainError::CodeInvalid(CheckFailure::Exhausted));
    }

    #[test]
    fn a_superseded_code_is_rejected() {
        let mut history = returned_code_history();
        history.extend(issued_events(
            2,
            t0() + Duration::minutes(1),
            2,
            Delivery::Returned,
        ));
        given(history.clone())
            .when(&check(1, secret(1)), t0() + Duration::minutes(2))
            .then_refused(
                [failed(1, CheckFailure::Superseded)],
                DomainError::CodeInvalid(CheckFailure::Superseded),
            );
        given(history)
            .when(&check(2, secret(2)), t0() + Duration::minutes(2))
            .then([]);
    }

    #[test]
    fn a_delivered_code_supersedes_only_once_it_is_sent() {
        let email = || Delivery::Email { url_template: None };
        // A working returned code, then a resend whose mail fails: the first code still works.
        let after_resend = given(returned_code_history())
            .when(&issue(2, email()), t0())
            .then_any();
        after_resend
            .clone()
            .when(&check(1, secret(1)), t0())
            .then([])
            .when(
                &RecordDelivery {
                    code_id: code(2),
                    user_id: user(),
                    outcome: DeliveryOutcome::Failed(DeliveryFailure::Unavailable),
                },
                t0(),
            )
            .then_any()
            .when(&check(1, secret(1)), t0())
            .then([]);
        // Once the resent code is sent, it supersedes the first and is itself usable.
        after_resend
            .when(&sent(2, "m2"), t0())
            .then([
                Change::code(
                    &code(2),
                    CodeEvent::Sent {
                        message_id: "m2".into(),
                    },
                ),
                Change::user(
                    &user(),
                    UserEvent::CodeUsable {
                        code_id: code(2),
                        issued_version: 3,
                    },
                ),
            ])
            .when(&check(2, secret(2)), t0())
            .then([])
            .when(&check(1, secret(1)), t0())
            .then_refused(
                [failed(1, CheckFailure::Superseded)],
                DomainError::CodeInvalid(CheckFailure::Superseded),
            );
    }

    #[test]
    fn a_code_sent_late_never_supersedes_a_newer_one() {
        // Code 1 waits for delivery; code 2 is returned afterwards; then code 1 is sent.
        let mut history = world();
        history.extend(issued_events(
            1,
            t0(),
            1,
            Delivery::Email { url_template: None },
        ));
        history.extend(issued_events(2, t0(), 2, Delivery::Returned));
        given(history)
            .when(&sent(1, "m1"), t0())
            .then_any()
            .when(&check(2, secret(2)), t0())
            .then([])
            .when(&check(1, secret(1)), t0())
            .then_refused(
                [failed(1, CheckFailure::Superseded)],
                DomainError::CodeInvalid(CheckFailure::Superseded),
            );
    }

    #[test]
    fn redemption_stops_when_the_user_or_org_stops_being_active() {
        let cases: Vec<(Change, CheckFailure)> = vec![
            (
                Change::user(&user(), UserEvent::Deactivated {}),
                CheckFailure::UserNotActive,
            ),
            (
                Change::user(&user(), UserEvent::Locked {}),
                CheckFailure::UserNotActive,
            ),
            (
                Change::user(&user(), UserEvent::Removed {}),
                CheckFailure::UserNotActive,
            ),
            (
                Change::org(&org(), OrgEvent::Deactivated {}),
                CheckFailure::OrgNotActive,
            ),
            (
                Change::org(&org(), OrgEvent::Removed {}),
                CheckFailure::OrgNotActive,
            ),
        ];
        for (event, reason) in cases {
            let mut history = returned_code_history();
            history.push(event);
            given(history)
                .when(&check(1, secret(1)), t0())
                .then_refused([failed(1, reason)], DomainError::CodeInvalid(reason));
        }
    }

    #[test]
    fn lifecycle_stops_kill_earlier_codes_for_good() {
        let user_round_trips = [
            (UserChange::Lock, UserChange::Unlock),
            (UserChange::Deactivate, UserChange::Reactivate),
        ];
        for (stop, resume) in user_round_trips {
            let change = |change| ChangeUser {
                user_id: user(),
                org_context: None,
                change,
            };
            given(returned_code_history())
                .when(&change(stop), t0())
                .then_any()
                .when(&change(resume), t0())
                .then_any()
                .when(&check(1, secret(1)), t0())
                .then_refused(
                    [failed(1, CheckFailure::UserStopped)],
                    DomainError::CodeInvalid(CheckFailure::UserStopped),
                )
                // A code issued after the round trip works.
                .when(&issue(2, Delivery::Returned), t0())
                .then_any()
                .when(&check(2, secret(2)), t0())
                .then([]);
        }
        let org_change = |change| ChangeOrg {
            org_id: org(),
            change,
        };
        given(returned_code_history())
            .when(&org_change(OrgChange::Deactivate), t0())
            .then_any()
            .when(&org_change(OrgChange::Reactivate), t0())
            .then_any()
            .when(&check(1, secret(1)), t0())
            .then_refused(
                [failed(1, CheckFailure::OrgStopped)],
                DomainError::CodeInvalid(CheckFailure::OrgStopped),
            )
            .when(&issue(2, Delivery::Returned), t0())
            .then_any()
            .when(&check(2, secret(2)), t0())
            .then([]);
    }

    #[test]
    fn an_email_change_after_issuance_invalidates_the_code() {
        let mut history = returned_code_history();
        history.push(Change::user(
            &user(),
            UserEvent::EmailChanged {
                email: Email::parse("ada@new.example.com").unwrap(),
            },
        ));
        given(history)
            .when(&check(1, secret(1)), t0())
            .then_refused(
                [failed(1, CheckFailure::EmailChanged)],
                DomainError::CodeInvalid(CheckFailure::EmailChanged),
            );
    }

    #[test]
    fn a_wrong_user_id_in_the_link_is_refused_and_counted() {
        let mut presented = present(1, secret(1));
        presented.user_id = UserId::new("mallory").unwrap();
        given(returned_code_history())
            .when(&CheckCode(presented), t0())
            .then_refused(
                [failed(1, CheckFailure::UserMismatch)],
                DomainError::CodeInvalid(CheckFailure::UserMismatch),
            );
    }

    #[test]
    fn an_unknown_code_records_nothing() {
        given(world())
            .when(&check(42, secret(42)), t0())
            .then_refused([], DomainError::CodeInvalid(CheckFailure::UnknownCode));
    }

    #[test]
    fn a_code_for_delivery_is_unusable_until_sent_and_forever_after_a_failure() {
        let mut history = world();
        history.extend(issued_events(
            1,
            t0(),
            1,
            Delivery::Email { url_template: None },
        ));
        given(history.clone())
            .when(&check(1, secret(1)), t0())
            .then_refused(
                [failed(1, CheckFailure::NotDelivered)],
                DomainError::CodeInvalid(CheckFailure::NotDelivered),
            );
        given(history)
            .when(
                &RecordDelivery {
                    code_id: code(1),
                    user_id: user(),
                    outcome: DeliveryOutcome::Failed(DeliveryFailure::Unavailable),
                },
                t0(),
            )
            .then([Change::code(
                &code(1),
                CodeEvent::DeliveryFailed {
                    reason: DeliveryFailure::Unavailable,
                },
            )])
            .when(&check(1, secret(1)), t0())
            .then_refused(
                [failed(1, CheckFailure::DeliveryFailed)],
                DomainError::CodeInvalid(CheckFailure::DeliveryFailed),
            )
            .when(&sent(1, "late"), t0())
            .then_error(DomainError::CodeNotRequested);
    }

    #[test]
    fn folding_is_deterministic_and_total() {
        // Nonsense orders do not panic and fold the same twice.
        let mut history = returned_code_history();
        history.insert(
            0,
            Change::code(
                &code(1),
                CodeEvent::Sent {
                    message_id: "early".into(),
                },
            ),
        );
        assert_eq!(given(history.clone()), given(history));
    }
}
