//! Fixtures shared by the rule tests of every decision.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::code::{CodeEvent, Issued};
use super::org::OrgEvent;
use super::text::Email;
use super::user::UserEvent;
use super::{
    Change, CheckCode, CheckFailure, Delivery, DeliveryOutcome, IssueCode, PresentCode,
    RecordDelivery,
};
use crate::ids::{CodeId, OrgId, UserId};
use crate::secret::Secret;

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()
}

pub fn org() -> OrgId {
    OrgId::new("org-1").unwrap()
}

pub fn other_org() -> OrgId {
    OrgId::new("org-2").unwrap()
}

pub fn user() -> UserId {
    UserId::new("user-1").unwrap()
}

pub fn code(n: u32) -> CodeId {
    CodeId::new(format!("code-{n}")).unwrap()
}

pub fn secret(n: u32) -> Secret {
    Secret::presented(format!("secret-number-{n}-abcdefghijklmnop"))
}

pub fn org_added(org: &OrgId) -> Change {
    Change::org(
        org,
        OrgEvent::Added {
            name: "ACME".into(),
        },
    )
}

pub fn human_added(user: &UserId, org: &OrgId, verified: bool) -> Change {
    Change::user(
        user,
        UserEvent::HumanAdded {
            org_id: org.clone(),
            user_name: "ada".into(),
            display_name: "Ada Lovelace".into(),
            email: Email::parse("ada@example.com").unwrap(),
            email_verified: verified,
            preferred_language: Some("en".into()),
        },
    )
}

/// An org with one verified human user.
pub fn world() -> Vec<Change> {
    vec![org_added(&org()), human_added(&user(), &org(), true)]
}

pub fn issue(n: u32, delivery: Delivery) -> IssueCode {
    IssueCode {
        user_id: user(),
        org_context: None,
        code_id: code(n),
        secret_digest: secret(n).digest(),
        delivery,
        rate_limited: true,
        key_id: None,
    }
}

/// The two events issuing code `n` at `at` appends when the user stream is at `user_version`
/// (one live link per user).
pub fn issued_events(
    n: u32,
    at: DateTime<Utc>,
    user_version: u64,
    delivery: Delivery,
) -> Vec<Change> {
    issued_events_with(n, at, user_version, delivery, true)
}

/// As [`issued_events`], with one live link per user on or off.
pub fn issued_events_with(
    n: u32,
    at: DateTime<Utc>,
    user_version: u64,
    delivery: Delivery,
    one_live: bool,
) -> Vec<Change> {
    let issued = Issued::new(
        user(),
        org(),
        secret(n).digest(),
        at,
        Duration::hours(1),
        user_version + 1,
        1,
        3,
    );
    let outbox = matches!(delivery, Delivery::Outbox { .. });
    let (supersedes_now, first) = match delivery.emailed() {
        None => (one_live, CodeEvent::Added { issued }),
        Some(url_template) => (
            false,
            CodeEvent::Requested {
                issued,
                url_template: url_template.map(|t| t.as_str().to_owned()),
                supersedes_when_usable: one_live,
                outbox,
                key_id: None,
            },
        ),
    };
    vec![
        Change::user(
            &user(),
            UserEvent::CodeIssued {
                code_id: code(n),
                issued_at: at,
                supersedes_earlier: supersedes_now,
            },
        ),
        Change::code(&code(n), first),
    ]
}

/// [`world`] plus code 1, returned at [`t0`].
pub fn returned_code_history() -> Vec<Change> {
    let mut history = world();
    history.extend(issued_events(1, t0(), 1, Delivery::Returned));
    history
}

pub fn failed(n: u32, reason: CheckFailure) -> Change {
    Change::code(&code(n), CodeEvent::CheckFailed { reason })
}

pub fn present(n: u32, secret: Secret) -> PresentCode {
    PresentCode {
        user_id: user(),
        code_id: code(n),
        secret,
    }
}

pub fn check(n: u32, secret: Secret) -> CheckCode {
    CheckCode(present(n, secret))
}

pub fn sent(n: u32, message_id: &str) -> RecordDelivery {
    RecordDelivery {
        code_id: code(n),
        user_id: user(),
        outcome: DeliveryOutcome::Sent {
            message_id: message_id.into(),
        },
    }
}
