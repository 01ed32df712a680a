//! Shared fixtures for the domain tests.
#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use passkey_links::domain::code::{CodeEvent, Delivery, IssueLink, Issued, PresentCode};
use passkey_links::domain::org::OrgEvent;
use passkey_links::domain::text::Email;
use passkey_links::domain::user::{Bytes, CredentialId, NewPasskey, UserEvent};
use passkey_links::domain::{Change, Command};
use passkey_links::ids::{CodeId, OrgId, StreamId, UserId};
use passkey_links::secret::Secret;

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
    Change::new(
        StreamId::org(org),
        OrgEvent::Added {
            name: "ACME".into(),
        },
    )
}

pub fn human_added(user: &UserId, org: &OrgId, verified: bool) -> Change {
    Change::new(
        StreamId::user(user),
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

pub fn user_event(user: &UserId, event: UserEvent) -> Change {
    Change::new(StreamId::user(user), event)
}

pub fn code_event(code: &CodeId, event: CodeEvent) -> Change {
    Change::new(StreamId::code(code), event)
}

/// An org with one verified human user.
pub fn world() -> Vec<Change> {
    vec![org_added(&org()), human_added(&user(), &org(), true)]
}

pub fn issue(n: u32, delivery: Delivery) -> Command {
    Command::IssueLink(IssueLink {
        user_id: user(),
        org_context: None,
        code_id: code(n),
        secret_digest: secret(n).digest(),
        delivery,
    })
}

/// The two events issuing code `n` at `at` appends when the user stream is at `user_version`.
pub fn issued_events(
    n: u32,
    at: DateTime<Utc>,
    user_version: u64,
    delivery: Delivery,
) -> Vec<Change> {
    let issued = Issued {
        user_id: user(),
        org_id: org(),
        secret_digest: secret(n).digest(),
        issued_at: at,
        expires_at: at + Duration::hours(1),
        user_version: user_version + 1,
        max_failed_checks: 3,
    };
    let first = match delivery {
        Delivery::Returned => CodeEvent::Added { issued },
        Delivery::Email { url_template } => CodeEvent::Requested {
            issued,
            url_template,
        },
    };
    vec![
        user_event(
            &user(),
            UserEvent::LinkIssued {
                code_id: code(n),
                issued_at: at,
                supersedes_earlier: true,
            },
        ),
        code_event(&code(n), first),
    ]
}

pub fn present(n: u32, secret: Secret) -> PresentCode {
    PresentCode {
        user_id: user(),
        code_id: code(n),
        secret,
    }
}

pub fn check(n: u32, secret: Secret) -> Command {
    Command::CheckCode(present(n, secret))
}

pub fn passkey(credential: &[u8]) -> NewPasskey {
    NewPasskey {
        credential_id: CredentialId::new(credential.to_vec()).unwrap(),
        public_key: Bytes(vec![1, 2, 3, 4]),
        name: "iPhone".into(),
    }
}
