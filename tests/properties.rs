//! Property tests: random command sequences against one code and its user never get a code
//! accepted once it is dead (consumed, exhausted, expired, revoked, superseded, failed delivery,
//! email changed) or while its user/org is not active; folding the recorded events again rebuilds
//! the same state; every event survives its stored round trip.

mod common;

use chrono::Duration;
use common::*;
use passkey_links::domain::code::{Delivery, DeliveryFailure, DeliveryOutcome};
use passkey_links::domain::org::OrgCommand;
use passkey_links::domain::user::UserCommand;
use passkey_links::domain::{self, Change, Command, Event, SCHEMA_VERSION, World};
use passkey_links::harness::given;
use passkey_links::policy::Policy;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Check {
        right: bool,
    },
    Consume {
        right: bool,
        credential: u8,
    },
    Advance {
        minutes: i64,
    },
    /// Jump to exactly the expiry instant (the boundary is the interesting point).
    ToExpiry,
    Deliver {
        ok: bool,
    },
    Revoke,
    IssueAnother,
    User(UserCommand),
    Org(OrgCommand),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<bool>().prop_map(|right| Op::Check { right }),
        3 => (any::<bool>(), 0u8..4).prop_map(|(right, credential)| Op::Consume { right, credential }),
        2 => (0i64..40).prop_map(|minutes| Op::Advance { minutes }),
        1 => Just(Op::ToExpiry),
        1 => any::<bool>().prop_map(|ok| Op::Deliver { ok }),
        1 => Just(Op::Revoke),
        1 => Just(Op::IssueAnother),
        1 => prop_oneof![
            Just(UserCommand::Deactivate),
            Just(UserCommand::Reactivate),
            Just(UserCommand::Lock),
            Just(UserCommand::Unlock),
            Just(UserCommand::Remove),
            Just(UserCommand::ChangeEmail { email: "ada@new.example.com".into() }),
        ]
        .prop_map(Op::User),
        1 => prop_oneof![Just(OrgCommand::Deactivate), Just(OrgCommand::Reactivate), Just(OrgCommand::Remove)]
            .prop_map(Op::Org),
    ]
}

/// What the oracle knows about code 1, independently of the domain's own state.
#[derive(Debug, Default)]
struct Oracle {
    consumed: bool,
    revoked: bool,
    superseded: bool,
    delivery_failed: bool,
    delivered: bool,
    email_changed: bool,
    user_removed: bool,
    recorded_failures: u32,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn dead_codes_are_never_accepted(for_delivery in any::<bool>(), ops in prop::collection::vec(op(), 1..40)) {
        let policy = Policy::default().with_rate_limit(None);
        let delivery = if for_delivery {
            Delivery::Email { url_template: None }
        } else {
            Delivery::Returned
        };
        let mut history = world();
        history.extend(issued_events(1, t0(), 1, delivery));
        let mut world: World = given(history.clone()).world().clone();
        let mut now = t0();
        let mut oracle = Oracle { delivered: !for_delivery, ..Oracle::default() };
        let mut next_code = 2;
        let expires_at = t0() + Duration::hours(1);

        for op in ops {
            let command = match &op {
                Op::Advance { minutes } => {
                    now += Duration::minutes(*minutes);
                    continue;
                }
                Op::ToExpiry => {
                    now = now.max(expires_at);
                    continue;
                }
                Op::Check { right } => check(1, if *right { secret(1) } else { secret(99) }),
                Op::Consume { right, credential } => Command::ConsumeCode {
                    presented: present(1, if *right { secret(1) } else { secret(99) }),
                    passkey: passkey(&[*credential, 7, 7]),
                },
                Op::Deliver { ok } => Command::RecordDelivery {
                    code_id: code(1),
                    outcome: if *ok {
                        DeliveryOutcome::Sent { message_id: "m".into() }
                    } else {
                        DeliveryOutcome::Failed(DeliveryFailure::Rejected)
                    },
                },
                Op::Revoke => Command::RevokeCode { user_id: user(), code_id: code(1), org_context: None },
                Op::IssueAnother => {
                    next_code += 1;
                    issue(next_code, Delivery::Returned)
                }
                Op::User(command) => Command::User { user_id: user(), command: command.clone() },
                Op::Org(command) => Command::Org { org_id: org(), command: command.clone() },
            };
            let user_state = world.user(&user());
            let user_active = user_state.require_link_eligible().is_ok();
            let org_active = world.org(&org()).require_active().is_ok();
            let dead = oracle.consumed
                || oracle.revoked
                || oracle.superseded
                || oracle.delivery_failed
                || oracle.email_changed
                || oracle.user_removed
                || oracle.recorded_failures >= 3
                || now >= expires_at;
            let Ok(decision) = domain::decide(&world, &command, &policy, now) else { continue };
            let presents_right = matches!(op, Op::Check { right: true } | Op::Consume { right: true, .. });
            let accepted = decision.refusal.is_none();
            if matches!(op, Op::Check { .. } | Op::Consume { .. }) {
                if accepted {
                    prop_assert!(presents_right, "a wrong secret was accepted");
                    prop_assert!(!dead, "a dead code was accepted: {oracle:?} at {now}");
                    prop_assert!(oracle.delivered, "an undelivered code was accepted");
                    prop_assert!(user_active && org_active, "accepted for an inactive user/org");
                } else if presents_right && !dead && oracle.delivered && user_active && org_active {
                    // Liveness: a live code with the right secret must work.
                    prop_assert!(false, "a live code was refused: {:?}", decision.refusal);
                }
            }
            for change in &decision.changes {
                // Every event survives its stored round trip.
                let (event_type, payload) = change.event.encode().unwrap();
                let back = Event::decode(change.stream.kind, &event_type, SCHEMA_VERSION, payload).unwrap();
                prop_assert_eq!(&back, &change.event);
                world.apply(change);
                history.push(change.clone());
                observe(&mut oracle, change);
            }
        }
        // Folding the recorded events again rebuilds the same state.
        let refolded = given(history);
        prop_assert_eq!(refolded.world(), &world);
    }
}

fn observe(oracle: &mut Oracle, change: &Change) {
    use passkey_links::domain::code::CodeEvent;
    use passkey_links::domain::user::UserEvent;
    match &change.event {
        Event::Code(event) if change.stream.id == code(1).as_str() => match event {
            CodeEvent::CheckSucceeded { .. } => oracle.consumed = true,
            CodeEvent::Revoked {} => oracle.revoked = true,
            CodeEvent::DeliveryFailed { .. } => oracle.delivery_failed = true,
            CodeEvent::Sent { .. } => oracle.delivered = true,
            CodeEvent::CheckFailed { .. } => oracle.recorded_failures += 1,
            _ => {}
        },
        Event::User(UserEvent::LinkIssued { code_id, .. }) if *code_id != code(1) => {
            oracle.superseded = true;
        }
        Event::User(UserEvent::EmailChanged { .. }) => oracle.email_changed = true,
        Event::User(UserEvent::Removed {}) => oracle.user_removed = true,
        _ => {}
    }
}
