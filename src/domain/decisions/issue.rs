//! Issuing a code: the user must be a code-eligible human in the org context, its org active, a
//! verified email present for delivery, the rate limit not hit, the code id fresh and a v2
//! template's link pointing at an allowed origin.

use crate::domain::code::{CodeEvent, CodeState, Issued};
use crate::domain::org::OrgState;
use crate::domain::user::{UserEvent, UserState};
use crate::domain::{Change, Ctx, Decide, DomainError, Missing, Outcome, StreamKey, View};
use crate::ids::{CodeId, OrgId, UserId};
use crate::link::UrlTemplate;
use crate::secret::SecretDigest;

/// How an issued code reaches the user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// Returned to the caller (usable at once): v1 Add, v2 `returnCode`.
    Returned,
    /// Emailed to the user's verified address (usable once sent): v1 Send, v2 `sendLink`.
    Email {
        /// A v2 url template, if any.
        url_template: Option<UrlTemplate>,
    },
    /// Emailed later by the delivery outbox's worker (usable once sent).
    Outbox {
        /// A v2 url template, if any.
        url_template: Option<UrlTemplate>,
    },
}

impl Delivery {
    /// For an emailed code (now or by the outbox): its url template, if any.
    pub fn emailed(&self) -> Option<Option<&UrlTemplate>> {
        match self {
            Self::Returned => None,
            Self::Email { url_template } | Self::Outbox { url_template } => {
                Some(url_template.as_ref())
            }
        }
    }
}

/// Issue a new code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueCode {
    /// Target user.
    pub user_id: UserId,
    /// Org context of an admin call (`x-zitadel-orgid`); `None` resolves the user's own org.
    pub org_context: Option<OrgId>,
    /// The fresh code id.
    pub code_id: CodeId,
    /// Digest of the fresh secret.
    pub secret_digest: SecretDigest,
    /// Returned or emailed.
    pub delivery: Delivery,
    /// Whether the per-user rate limit applies to this caller.
    pub rate_limited: bool,
    /// For an emailed code: the id of the deployment key its secret derives from.
    pub key_id: Option<String>,
}

impl IssueCode {
    fn events(
        &self,
        user: &UserState,
        org: &OrgState,
        org_id: OrgId,
        ctx: &Ctx<'_>,
    ) -> Vec<Change> {
        let one_live = ctx.policy.one_live_link();
        let issued = Issued::new(
            self.user_id.clone(),
            org_id,
            self.secret_digest,
            ctx.now,
            ctx.policy.lifetime(),
            user.version() + 1,
            org.version(),
            ctx.policy.max_failed_checks(),
        );
        // A code supersedes the user's earlier ones when it becomes usable: a returned one now,
        // a delivered one once its delivery is recorded (a failed mail never kills a working
        // link).
        let (supersedes_now, code_event) = match self.delivery.emailed() {
            None => (one_live, CodeEvent::Added { issued }),
            Some(url_template) => (
                false,
                CodeEvent::Requested {
                    issued,
                    url_template: url_template.map(|t| t.as_str().to_owned()),
                    supersedes_when_usable: one_live,
                    outbox: matches!(self.delivery, Delivery::Outbox { .. }),
                    key_id: self.key_id.clone(),
                },
            ),
        };
        vec![
            Change::user(
                &self.user_id,
                UserEvent::CodeIssued {
                    code_id: self.code_id.clone(),
                    issued_at: ctx.now,
                    supersedes_earlier: supersedes_now,
                },
            ),
            Change::code(&self.code_id, code_event),
        ]
    }

    fn check(
        &self,
        user: &UserState,
        org: Option<&OrgState>,
        code: &CodeState,
        ctx: &Ctx<'_>,
    ) -> Result<Vec<Change>, DomainError> {
        let org_id = user.locate(self.org_context.as_ref())?.clone();
        user.require_code_eligible()?;
        let org = org.ok_or(DomainError::OrgNotFound)?;
        org.require_active()?;
        if self.delivery.emailed().is_some() && user.verified_email().is_none() {
            return Err(DomainError::EmailNotVerified);
        }
        if let Some(limit) = ctx.policy.rate_limit().filter(|_| self.rate_limited) {
            let window_start = ctx.now - limit.window();
            // An entry from the future (a node whose clock runs fast) counts as now.
            let recent = user
                .recent_codes()
                .filter(|issued_at| (*issued_at).min(ctx.now) > window_start)
                .count();
            if recent >= limit.max() as usize {
                return Err(DomainError::RateLimited);
            }
        }
        if code.version() != 0 {
            return Err(DomainError::CodeAlreadyExists);
        }
        if let Some(Some(template)) = self.delivery.emailed() {
            ctx.links
                .check_template(template, &self.user_id, &org_id, &self.code_id)
                .map_err(DomainError::InvalidUrlTemplate)?;
        }
        Ok(self.events(user, org, org_id, ctx))
    }
}

impl Decide for IssueCode {
    type State<'a> = (&'a UserState, Option<&'a OrgState>, &'a CodeState);

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        view.require(&[
            StreamKey::user(&self.user_id),
            StreamKey::code(&self.code_id),
        ])?;
        let user = view.user(&self.user_id)?;
        Ok((user, view.org_of(user)?, view.code(&self.code_id)?))
    }

    fn decide(&self, (user, org, code): Self::State<'_>, ctx: &Ctx<'_>) -> Outcome {
        self.check(user, org, code, ctx).into()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::domain::org::OrgEvent;
    use crate::domain::test_support::*;
    use crate::domain::{ChangeUser, UserChange};
    use crate::link::LinkError;
    use crate::policy::{Policy, RateLimit};
    use crate::testing::given;

    #[test]
    fn issuing_a_returned_code_records_it_on_user_and_code() {
        given(world())
            .when(&issue(1, Delivery::Returned), t0())
            .then(issued_events(1, t0(), 1, Delivery::Returned));
    }

    #[test]
    fn a_colliding_code_id_is_already_exists() {
        given(returned_code_history())
            .when(&issue(1, Delivery::Returned), t0())
            .then_error(DomainError::CodeAlreadyExists);
    }

    #[test]
    fn many_live_codes_when_one_live_link_is_off() {
        let policy = Policy::default().with_one_live_link(false);
        let first = issued_events_with(1, t0(), 1, Delivery::Returned, false);
        let second = issued_events_with(2, t0(), 2, Delivery::Returned, false);
        given(world())
            .with_policy(policy)
            .when(&issue(1, Delivery::Returned), t0())
            .then(first)
            .when(&issue(2, Delivery::Returned), t0())
            .then(second)
            .when(&check(1, secret(1)), t0())
            .then([])
            .when(&check(2, secret(2)), t0())
            .then([]);
    }

    #[test]
    fn issuance_requires_a_code_eligible_human() {
        for (change, expected) in [
            (UserChange::Deactivate, DomainError::UserInactive),
            (UserChange::Lock, DomainError::UserLocked),
            (UserChange::Remove, DomainError::UserNotFound),
        ] {
            let lifecycle = ChangeUser {
                user_id: user(),
                org_context: None,
                change,
            };
            given(world())
                .when(&lifecycle, t0())
                .then_any()
                .when(&issue(1, Delivery::Returned), t0())
                .then_error(expected);
        }
        given(vec![
            org_added(&org()),
            Change::user(
                &user(),
                UserEvent::MachineAdded {
                    org_id: org(),
                    user_name: "bot".into(),
                    name: "Bot".into(),
                },
            ),
        ])
        .when(&issue(1, Delivery::Returned), t0())
        .then_error(DomainError::UserNotHuman);
        given([org_added(&org())])
            .when(&issue(1, Delivery::Returned), t0())
            .then_error(DomainError::UserNotFound);
    }

    #[test]
    fn issuance_requires_an_active_org() {
        let mut inactive = world();
        inactive.push(Change::org(&org(), OrgEvent::Deactivated {}));
        given(inactive)
            .when(&issue(1, Delivery::Returned), t0())
            .then_error(DomainError::OrgNotActive);
        let mut removed = world();
        removed.push(Change::org(&org(), OrgEvent::Removed {}));
        given(removed)
            .when(&issue(1, Delivery::Returned), t0())
            .then_error(DomainError::OrgNotFound);
    }

    #[test]
    fn a_user_of_another_org_is_not_found() {
        let mut command = issue(1, Delivery::Returned);
        command.org_context = Some(other_org());
        given(world())
            .when(&command, t0())
            .then_error(DomainError::UserNotFound);
    }

    #[test]
    fn delivery_needs_a_verified_email() {
        given([org_added(&org()), human_added(&user(), &org(), false)])
            .when(&issue(1, Delivery::Email { url_template: None }), t0())
            .then_error(DomainError::EmailNotVerified);
    }

    #[test]
    fn issuance_is_rate_limited_per_user() {
        let policy = Policy::default()
            .with_rate_limit(Some(RateLimit::new(2, Duration::hours(1)).unwrap()))
            .with_one_live_link(true);
        let after_two = given(world())
            .with_policy(policy)
            .when(&issue(1, Delivery::Returned), t0())
            .then(issued_events(1, t0(), 1, Delivery::Returned))
            .when(&issue(2, Delivery::Returned), t0() + Duration::minutes(1))
            .then(issued_events(
                2,
                t0() + Duration::minutes(1),
                2,
                Delivery::Returned,
            ));
        after_two
            .clone()
            .when(&issue(3, Delivery::Returned), t0() + Duration::minutes(59))
            .then_error(DomainError::RateLimited);
        // A caller kind the limit does not apply to (the system, by default) is not limited.
        let mut unlimited = issue(3, Delivery::Returned);
        unlimited.rate_limited = false;
        after_two
            .clone()
            .when(&unlimited, t0() + Duration::minutes(59))
            .then_any();
        // Once the first issuance leaves the window, one more is allowed.
        after_two
            .when(&issue(3, Delivery::Returned), t0() + Duration::minutes(60))
            .then(issued_events(
                3,
                t0() + Duration::minutes(60),
                3,
                Delivery::Returned,
            ));
    }

    #[test]
    fn rate_limit_entries_from_the_future_count_as_now() {
        let policy =
            Policy::default().with_rate_limit(Some(RateLimit::new(1, Duration::hours(1)).unwrap()));
        // A node two hours fast issued a code: its entry counts now, not as not-yet-happened.
        let fast = t0() + Duration::hours(2);
        given(world())
            .with_policy(policy)
            .when(&issue(1, Delivery::Returned), fast)
            .then_any()
            .when(&issue(2, Delivery::Returned), t0())
            .then_error(DomainError::RateLimited);
    }

    #[test]
    fn a_template_pointing_elsewhere_appends_nothing() {
        let template = UrlTemplate::parse("https://evil.example/{{.Code}}").unwrap();
        given(world())
            .when(
                &issue(
                    1,
                    Delivery::Email {
                        url_template: Some(template),
                    },
                ),
                t0(),
            )
            .then_error(DomainError::InvalidUrlTemplate(LinkError::ForeignOrigin));
    }
}
