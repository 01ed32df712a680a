//! Every link rule of SPEC §3, decided by the pure domain through the given/when/then harness.

mod common;

use chrono::Duration;
use common::*;
use passkey_links::domain::code::{CodeEvent, Delivery, DeliveryFailure, DeliveryOutcome};
use passkey_links::domain::credential::CredentialEvent;
use passkey_links::domain::org::{OrgCommand, OrgEvent};
use passkey_links::domain::text::Email;
use passkey_links::domain::user::{UserCommand, UserEvent};
use passkey_links::domain::{Change, CheckFailure, Command, DomainError};
use passkey_links::harness::given;
use passkey_links::ids::StreamId;
use passkey_links::policy::{Policy, RateLimit};

fn returned_code_history() -> Vec<Change> {
    let mut history = world();
    history.extend(issued_events(1, t0(), 1, Delivery::Returned));
    history
}

fn failed(n: u32, reason: CheckFailure) -> Change {
    code_event(&code(n), CodeEvent::CheckFailed { reason })
}

#[test]
fn issuing_a_returned_link_records_it_on_user_and_code() {
    given(world())
        .when(issue(1, Delivery::Returned), t0())
        .then(issued_events(1, t0(), 1, Delivery::Returned));
}

#[test]
fn a_returned_code_is_usable_at_once() {
    given(returned_code_history())
        .when(check(1, secret(1)), t0())
        .then([]);
}

#[test]
fn expiry_boundary_now_equal_to_expires_at_is_expired() {
    let expires_at = t0() + Duration::hours(1);
    given(returned_code_history())
        .when(check(1, secret(1)), expires_at - Duration::microseconds(1))
        .then([]);
    given(returned_code_history())
        .when(check(1, secret(1)), expires_at)
        .then_refused(
            [failed(1, CheckFailure::Expired)],
            DomainError::CodeInvalid(CheckFailure::Expired),
        );
}

#[test]
fn expiry_is_measured_from_issuance_never_from_later_events() {
    // ZITADEL CVE-2026-32132: issued, sent, one failed check, then the right code after expiry.
    let mut history = world();
    history.extend(issued_events(
        1,
        t0(),
        1,
        Delivery::Email { url_template: None },
    ));
    let later = t0() + Duration::minutes(59);
    given(history)
        .when(
            Command::RecordDelivery {
                code_id: code(1),
                outcome: DeliveryOutcome::Sent {
                    message_id: "m1".into(),
                },
            },
            t0() + Duration::minutes(30),
        )
        .then([code_event(
            &code(1),
            CodeEvent::Sent {
                message_id: "m1".into(),
            },
        )])
        .when(check(1, secret(2)), later)
        .then_refused(
            [failed(1, CheckFailure::WrongSecret)],
            DomainError::CodeInvalid(CheckFailure::WrongSecret),
        )
        .when(check(1, secret(1)), t0() + Duration::minutes(61))
        .then_refused(
            [failed(1, CheckFailure::Expired)],
            DomainError::CodeInvalid(CheckFailure::Expired),
        );
}

#[test]
fn the_third_failed_check_exhausts_the_code_forever() {
    given(returned_code_history())
        .when(check(1, secret(9)), t0())
        .then_refused(
            [failed(1, CheckFailure::WrongSecret)],
            DomainError::CodeInvalid(CheckFailure::WrongSecret),
        )
        .when(check(1, secret(9)), t0())
        .then_refused(
            [failed(1, CheckFailure::WrongSecret)],
            DomainError::CodeInvalid(CheckFailure::WrongSecret),
        )
        .when(check(1, secret(9)), t0())
        .then_refused(
            [failed(1, CheckFailure::WrongSecret)],
            DomainError::CodeInvalid(CheckFailure::WrongSecret),
        )
        // Exhausted: the right secret is refused and nothing more is recorded.
        .when(check(1, secret(1)), t0())
        .then_refused([], DomainError::CodeInvalid(CheckFailure::Exhausted));
}

#[test]
fn the_failed_check_cap_is_configurable() {
    let policy = Policy::default().with_max_failed_checks(1).unwrap();
    let mut history = world();
    let mut events = issued_events(1, t0(), 1, Delivery::Returned);
    if let Change {
        event: passkey_links::domain::Event::Code(CodeEvent::Added { issued }),
        ..
    } = &mut events[1]
    {
        issued.max_failed_checks = 1;
    }
    history.extend(events);
    given(history)
        .with_policy(policy)
        .when(check(1, secret(9)), t0())
        .then_refused(
            [failed(1, CheckFailure::WrongSecret)],
            DomainError::CodeInvalid(CheckFailure::WrongSecret),
        )
        .when(check(1, secret(1)), t0())
        .then_refused([], DomainError::CodeInvalid(CheckFailure::Exhausted));
}

#[test]
fn a_consumed_code_is_never_accepted_again() {
    let key = passkey(b"cred-1");
    given(returned_code_history())
        .when(
            Command::ConsumeCode {
                presented: present(1, secret(1)),
                passkey: key.clone(),
            },
            t0(),
        )
        .then([
            code_event(
                &code(1),
                CodeEvent::CheckSucceeded {
                    credential_id: key.credential_id.clone(),
                },
            ),
            user_event(
                &user(),
                UserEvent::PasskeyAdded {
                    code_id: code(1),
                    credential_id: key.credential_id.clone(),
                    public_key: key.public_key.clone(),
                    name: key.name.clone(),
                },
            ),
            Change::new(
                key.credential_id.stream(),
                CredentialEvent::Claimed {
                    user_id: user(),
                    org_id: org(),
                    code_id: code(1),
                },
            ),
        ])
        .when(check(1, secret(1)), t0())
        .then_refused(
            [failed(1, CheckFailure::Consumed)],
            DomainError::CodeInvalid(CheckFailure::Consumed),
        )
        .when(
            Command::ConsumeCode {
                presented: present(1, secret(1)),
                passkey: passkey(b"cred-2"),
            },
            t0(),
        )
        .then_refused(
            [failed(1, CheckFailure::Consumed)],
            DomainError::CodeInvalid(CheckFailure::Consumed),
        );
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
        .when(check(1, secret(1)), t0() + Duration::minutes(2))
        .then_refused(
            [failed(1, CheckFailure::Superseded)],
            DomainError::CodeInvalid(CheckFailure::Superseded),
        );
    given(history)
        .when(check(2, secret(2)), t0() + Duration::minutes(2))
        .then([]);
}

#[test]
fn many_live_links_when_one_live_link_is_off() {
    let policy = Policy::default().with_one_live_link(false);
    let mut first = issued_events(1, t0(), 1, Delivery::Returned);
    let mut second = issued_events(2, t0(), 2, Delivery::Returned);
    for events in [&mut first, &mut second] {
        if let passkey_links::domain::Event::User(UserEvent::LinkIssued {
            supersedes_earlier,
            ..
        }) = &mut events[0].event
        {
            *supersedes_earlier = false;
        }
    }
    given(world())
        .with_policy(policy.clone())
        .when(issue(1, Delivery::Returned), t0())
        .then(first)
        .when(issue(2, Delivery::Returned), t0())
        .then(second)
        .when(check(1, secret(1)), t0())
        .then([])
        .when(check(2, secret(2)), t0())
        .then([]);
}

#[test]
fn issuance_requires_a_link_eligible_human() {
    let cases: Vec<(Vec<UserEvent>, DomainError)> = vec![
        (vec![UserEvent::Deactivated {}], DomainError::UserInactive),
        (vec![UserEvent::Locked {}], DomainError::UserLocked),
        (vec![UserEvent::Removed {}], DomainError::UserNotFound),
    ];
    for (events, expected) in cases {
        let mut history = world();
        history.extend(events.into_iter().map(|e| user_event(&user(), e)));
        given(history)
            .when(issue(1, Delivery::Returned), t0())
            .then_error(expected);
    }
    let machine = vec![
        org_added(&org()),
        user_event(
            &user(),
            UserEvent::MachineAdded {
                org_id: org(),
                user_name: "bot".into(),
                name: "Bot".into(),
            },
        ),
    ];
    given(machine)
        .when(issue(1, Delivery::Returned), t0())
        .then_error(DomainError::UserNotHuman);
    given([org_added(&org())])
        .when(issue(1, Delivery::Returned), t0())
        .then_error(DomainError::UserNotFound);
}

#[test]
fn issuance_requires_an_active_org() {
    let mut inactive = world();
    inactive.push(Change::new(StreamId::org(&org()), OrgEvent::Deactivated {}));
    given(inactive)
        .when(issue(1, Delivery::Returned), t0())
        .then_error(DomainError::OrgNotActive);
    let mut removed = world();
    removed.push(Change::new(StreamId::org(&org()), OrgEvent::Removed {}));
    given(removed)
        .when(issue(1, Delivery::Returned), t0())
        .then_error(DomainError::OrgNotFound);
}

#[test]
fn a_user_of_another_org_is_not_found() {
    let Command::IssueLink(mut command) = issue(1, Delivery::Returned) else {
        unreachable!()
    };
    command.org_context = Some(other_org());
    given(world())
        .when(Command::IssueLink(command), t0())
        .then_error(DomainError::UserNotFound);
}

#[test]
fn redemption_stops_when_the_user_or_org_stops_being_active() {
    let cases: Vec<(Change, CheckFailure)> = vec![
        (
            user_event(&user(), UserEvent::Deactivated {}),
            CheckFailure::UserNotActive,
        ),
        (
            user_event(&user(), UserEvent::Locked {}),
            CheckFailure::UserNotActive,
        ),
        (
            user_event(&user(), UserEvent::Removed {}),
            CheckFailure::UserNotActive,
        ),
        (
            Change::new(StreamId::org(&org()), OrgEvent::Deactivated {}),
            CheckFailure::OrgNotActive,
        ),
        (
            Change::new(StreamId::org(&org()), OrgEvent::Removed {}),
            CheckFailure::OrgNotActive,
        ),
    ];
    for (event, reason) in cases {
        let mut history = returned_code_history();
        history.push(event);
        given(history)
            .when(check(1, secret(1)), t0())
            .then_refused([failed(1, reason)], DomainError::CodeInvalid(reason));
    }
}

#[test]
fn an_email_change_after_issuance_invalidates_the_link() {
    let mut history = returned_code_history();
    history.push(user_event(
        &user(),
        UserEvent::EmailChanged {
            email: Email::parse("ada@new.example.com").unwrap(),
        },
    ));
    given(history).when(check(1, secret(1)), t0()).then_refused(
        [failed(1, CheckFailure::EmailChanged)],
        DomainError::CodeInvalid(CheckFailure::EmailChanged),
    );
}

#[test]
fn a_credential_id_claimed_by_another_user_is_rejected() {
    let key = passkey(b"shared-credential");
    let mut history = returned_code_history();
    history.push(Change::new(
        key.credential_id.stream(),
        CredentialEvent::Claimed {
            user_id: passkey_links::ids::UserId::new("someone-else").unwrap(),
            org_id: other_org(),
            code_id: code(77),
        },
    ));
    given(history)
        .when(
            Command::ConsumeCode {
                presented: present(1, secret(1)),
                passkey: key,
            },
            t0(),
        )
        .then_error(DomainError::CredentialAlreadyClaimed);
}

#[test]
fn a_wrong_user_id_in_the_link_is_refused_and_counted() {
    let mut presented = present(1, secret(1));
    presented.user_id = passkey_links::ids::UserId::new("mallory").unwrap();
    given(returned_code_history())
        .when(Command::CheckCode(presented), t0())
        .then_refused(
            [failed(1, CheckFailure::UserMismatch)],
            DomainError::CodeInvalid(CheckFailure::UserMismatch),
        );
}

#[test]
fn an_unknown_code_records_nothing() {
    given(world())
        .when(check(42, secret(42)), t0())
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
        .when(check(1, secret(1)), t0())
        .then_refused(
            [failed(1, CheckFailure::NotDelivered)],
            DomainError::CodeInvalid(CheckFailure::NotDelivered),
        );
    let failed_delivery = code_event(
        &code(1),
        CodeEvent::DeliveryFailed {
            reason: DeliveryFailure::Unavailable,
        },
    );
    given(history)
        .when(
            Command::RecordDelivery {
                code_id: code(1),
                outcome: DeliveryOutcome::Failed(DeliveryFailure::Unavailable),
            },
            t0(),
        )
        .then([failed_delivery])
        .when(check(1, secret(1)), t0())
        .then_refused(
            [failed(1, CheckFailure::DeliveryFailed)],
            DomainError::CodeInvalid(CheckFailure::DeliveryFailed),
        )
        .when(
            Command::RecordDelivery {
                code_id: code(1),
                outcome: DeliveryOutcome::Sent {
                    message_id: "late".into(),
                },
            },
            t0(),
        )
        .then_error(DomainError::CodeNotRequested);
}

#[test]
fn delivery_needs_a_verified_email() {
    given([org_added(&org()), human_added(&user(), &org(), false)])
        .when(issue(1, Delivery::Email { url_template: None }), t0())
        .then_error(DomainError::EmailNotVerified);
}

#[test]
fn issuance_is_rate_limited_per_user() {
    let policy = Policy::default()
        .with_rate_limit(Some(RateLimit::new(2, Duration::hours(1)).unwrap()))
        .with_one_live_link(true);
    let after_two = given(world())
        .with_policy(policy.clone())
        .when(issue(1, Delivery::Returned), t0())
        .then(issued_events(1, t0(), 1, Delivery::Returned))
        .when(issue(2, Delivery::Returned), t0() + Duration::minutes(1))
        .then(issued_events(
            2,
            t0() + Duration::minutes(1),
            2,
            Delivery::Returned,
        ));
    after_two
        .clone()
        .when(issue(3, Delivery::Returned), t0() + Duration::minutes(59))
        .then_error(DomainError::RateLimited);
    // Once the first issuance leaves the window, one more is allowed.
    after_two
        .when(issue(3, Delivery::Returned), t0() + Duration::minutes(60))
        .then(issued_events(
            3,
            t0() + Duration::minutes(60),
            3,
            Delivery::Returned,
        ));
}

#[test]
fn revoked_codes_are_refused() {
    given(returned_code_history())
        .when(
            Command::RevokeCode {
                user_id: user(),
                code_id: code(1),
                org_context: Some(org()),
            },
            t0(),
        )
        .then([code_event(&code(1), CodeEvent::Revoked {})])
        .when(check(1, secret(1)), t0())
        .then_refused(
            [failed(1, CheckFailure::Revoked)],
            DomainError::CodeInvalid(CheckFailure::Revoked),
        );
    given(returned_code_history())
        .when(
            Command::RevokeCode {
                user_id: user(),
                code_id: code(1),
                org_context: Some(other_org()),
            },
            t0(),
        )
        .then_error(DomainError::UserNotFound);
}

#[test]
fn org_lifecycle() {
    let id = org();
    let stream = StreamId::org(&id);
    given([])
        .when(
            Command::Org {
                org_id: id.clone(),
                command: OrgCommand::Add {
                    name: "ACME".into(),
                },
            },
            t0(),
        )
        .then([org_added(&id)])
        .when(
            Command::Org {
                org_id: id.clone(),
                command: OrgCommand::Reactivate,
            },
            t0(),
        )
        .then_error(DomainError::OrgAlreadyActive);
    given([org_added(&id)])
        .when(
            Command::Org {
                org_id: id.clone(),
                command: OrgCommand::Deactivate,
            },
            t0(),
        )
        .then([Change::new(stream.clone(), OrgEvent::Deactivated {})])
        .when(
            Command::Org {
                org_id: id.clone(),
                command: OrgCommand::Reactivate,
            },
            t0(),
        )
        .then([Change::new(stream.clone(), OrgEvent::Reactivated {})])
        .when(
            Command::Org {
                org_id: id.clone(),
                command: OrgCommand::Remove,
            },
            t0(),
        )
        .then([Change::new(stream, OrgEvent::Removed {})])
        .when(
            Command::Org {
                org_id: id,
                command: OrgCommand::Add {
                    name: "again".into(),
                },
            },
            t0(),
        )
        .then_error(DomainError::OrgAlreadyExists);
}

#[test]
fn user_lifecycle() {
    let u = user();
    let cmd = |command| Command::User {
        user_id: u.clone(),
        command,
    };
    given(world())
        .when(cmd(UserCommand::Lock), t0())
        .then([user_event(&u, UserEvent::Locked {})])
        .when(cmd(UserCommand::Lock), t0())
        .then_error(DomainError::UserStateConflict("lock"))
        .when(cmd(UserCommand::Unlock), t0())
        .then([user_event(&u, UserEvent::Unlocked {})])
        .when(cmd(UserCommand::Deactivate), t0())
        .then([user_event(&u, UserEvent::Deactivated {})])
        .when(cmd(UserCommand::Reactivate), t0())
        .then([user_event(&u, UserEvent::Reactivated {})])
        .when(
            cmd(UserCommand::ChangeEmail {
                email: "not an email".into(),
            }),
            t0(),
        )
        .then_error(DomainError::InvalidEmail)
        .when(
            cmd(UserCommand::ChangeEmail {
                email: "ada@example.com".into(),
            }),
            t0(),
        )
        .then_error(DomainError::EmailUnchanged)
        .when(
            cmd(UserCommand::ChangeEmail {
                email: "ada@new.example.com".into(),
            }),
            t0(),
        )
        .then([user_event(
            &u,
            UserEvent::EmailChanged {
                email: Email::parse("ada@new.example.com").unwrap(),
            },
        )])
        .when(cmd(UserCommand::VerifyEmail), t0())
        .then([user_event(&u, UserEvent::EmailVerified {})])
        .when(cmd(UserCommand::Remove), t0())
        .then([user_event(&u, UserEvent::Removed {})])
        .when(cmd(UserCommand::Remove), t0())
        .then_error(DomainError::UserNotFound);
}

#[test]
fn users_are_created_only_in_active_orgs() {
    let add = |org_id| Command::User {
        user_id: user(),
        command: UserCommand::AddHuman(passkey_links::domain::user::AddHuman {
            org_id,
            user_name: "ada".into(),
            display_name: "Ada Lovelace".into(),
            email: "ada@example.com".into(),
            email_verified: true,
            preferred_language: Some("en".into()),
        }),
    };
    given([org_added(&org())])
        .when(add(org()), t0())
        .then([human_added(&user(), &org(), true)])
        .when(add(org()), t0())
        .then_error(DomainError::UserAlreadyExists);
    given([])
        .when(add(org()), t0())
        .then_error(DomainError::OrgNotFound);
}

#[test]
fn folding_is_deterministic_and_total() {
    // Nonsense orders do not panic and fold the same twice.
    let mut history = returned_code_history();
    history.insert(
        0,
        code_event(
            &code(1),
            CodeEvent::Sent {
                message_id: "early".into(),
            },
        ),
    );
    let a = given(history.clone());
    let b = given(history);
    assert_eq!(a.world(), b.world());
}
