//! Fixtures for the tests that drive the pure domain through its public API.
#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use passkey_links::Secret;
use passkey_links::domain::{
    Change, CheckCode, CodeEvent, Delivery, Email, IssueCode, Issued, OrgEvent, PresentCode,
    UserEvent,
};
use passkey_links::ids::{CodeId, OrgId, UserId};

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()
}

pub fn org() -> OrgId {
    OrgId::new("org-1").unwrap()
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

/// An org with one verified human user.
pub fn world() -> Vec<Change> {
    vec![
        Change::org(
            &org(),
            OrgEvent::Added {
                name: "ACME".into(),
            },
        ),
        Change::user(
            &user(),
            UserEvent::HumanAdded {
                org_id: org(),
                user_name: "ada".into(),
                display_name: "Ada Lovelace".into(),
                email: Email::parse("ada@example.com").unwrap(),
                email_verified: true,
                preferred_language: Some("en".into()),
            },
        ),
    ]
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

/// The facts of code `n` issued at `at` when the user stream was at `user_version`.
pub fn issued(n: u32, at: DateTime<Utc>, user_version: u64) -> Issued {
    Issued::new(
        user(),
        org(),
        secret(n).digest(),
        at,
        Duration::hours(1),
        user_version + 1,
        1,
        3,
    )
}

/// The two events of a returned code `n`.
pub fn returned_code(n: u32, at: DateTime<Utc>, user_version: u64) -> Vec<Change> {
    vec![
        Change::user(
            &user(),
            UserEvent::CodeIssued {
                code_id: code(n),
                issued_at: at,
                supersedes_earlier: true,
            },
        ),
        Change::code(
            &code(n),
            CodeEvent::Added {
                issued: issued(n, at, user_version),
            },
        ),
    ]
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

/// Forwards a store wrapper's personal data keys to the store it wraps (`self.inner`).
macro_rules! forward_personal_keys {
    (impl$(<$g:ident: $bound:path>)? for $ty:ty) => {
        impl$(<$g: $bound>)? passkey_links::store::PersonalKeyStore for $ty {
            async fn personal_key(
                &self,
                user_id: &str,
            ) -> Result<Option<passkey_links::store::StoredKey>, passkey_links::store::StoreError> {
                passkey_links::store::PersonalKeyStore::personal_key(&self.inner, user_id).await
            }

            async fn create_personal_key(
                &self,
                user_id: &str,
                key: passkey_links::store::PersonalKey,
            ) -> Result<passkey_links::store::StoredKey, passkey_links::store::StoreError> {
                passkey_links::store::PersonalKeyStore::create_personal_key(&self.inner, user_id, key)
                    .await
            }

            async fn erase_personal_key(
                &self,
                user_id: &str,
            ) -> Result<(), passkey_links::store::StoreError> {
                passkey_links::store::PersonalKeyStore::erase_personal_key(&self.inner, user_id).await
            }
        }
    };
}
