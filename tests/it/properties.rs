//! Property tests: random decision sequences against one code and its user never get a code
//! accepted once it is dead (consumed, exhausted, expired, revoked, superseded, failed delivery,
//! email changed, user or org stopped — even after a reactivation) or while its user/org is not
//! active; a live code with the right secret always works; folding the recorded events again
//! rebuilds the same states; every event survives its stored round trip.

use chrono::Duration;
use passkey_links::domain::{
    CeremonyState, Change, ChangeOrg, ChangeUser, CodeEvent, CredentialId, Decide, Delivery,
    DeliveryFailure, DeliveryOutcome, Event, FinishPasskeyRegistration, NamedCode, OrgChange,
    OrgEvent, Outcome, PublicKey, RecordDelivery, RevokeCode, SCHEMA_VERSION,
    StartPasskeyRegistration, UserChange, UserEvent, VerifiedCredential,
};
use passkey_links::ids::PasskeyId;
use passkey_links::policy::Policy;
use passkey_links::testing::{Given, given};
use proptest::prelude::*;

use crate::common::*;

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
    User(UserChange),
    Org(OrgChange),
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
            Just(UserChange::Deactivate),
            Just(UserChange::Reactivate),
            Just(UserChange::Lock),
            Just(UserChange::Unlock),
            Just(UserChange::Remove),
            Just(UserChange::ChangeEmail { email: "ada@new.example.com".into() }),
        ]
        .prop_map(Op::User),
        1 => prop_oneof![Just(OrgChange::Deactivate), Just(OrgChange::Reactivate), Just(OrgChange::Remove)]
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
    /// The user was locked, deactivated or removed, or the org deactivated or removed.
    stopped: bool,
    recorded_failures: u32,
}

/// Decides `decision` on `scenario`, returning the outcome and the scenario after it.
fn step<D: Decide>(
    scenario: Given,
    decision: &D,
    at: chrono::DateTime<chrono::Utc>,
) -> (Outcome, Given) {
    let then = scenario.when(decision, at);
    let outcome = then.outcome().clone();
    (outcome, then.record())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn dead_codes_are_never_accepted(for_delivery in any::<bool>(), ops in prop::collection::vec(op(), 1..40)) {
        let policy = Policy::default().with_rate_limit(None);
        let mut history = world();
        if for_delivery {
            history.push(Change::user(&user(), UserEvent::CodeIssued { code_id: code(1), issued_at: t0(), supersedes_earlier: false }));
            history.push(Change::code(&code(1), CodeEvent::Requested { issued: issued(1, t0(), 1), url_template: None, supersedes_when_usable: true, outbox: false, key_id: None }));
        } else {
            history.extend(returned_code(1, t0(), 1));
        }
        let mut scenario = given(history.clone()).with_policy(policy.clone());
        let mut now = t0();
        let mut oracle = Oracle { delivered: !for_delivery, ..Oracle::default() };
        let mut next_code = 2;
        let expires_at = t0() + Duration::hours(1);

        for op in ops {
            let user_active = scenario.user(&user()).require_code_eligible().is_ok();
            let org_active = scenario.org(&org()).require_active().is_ok();
            let dead = oracle.consumed
                || oracle.revoked
                || oracle.superseded
                || oracle.delivery_failed
                || oracle.email_changed
                || oracle.stopped
                || oracle.recorded_failures >= 3
                || now >= expires_at;
            let (outcome, next) = match &op {
                Op::Advance { minutes } => {
                    now += Duration::minutes(*minutes);
                    continue;
                }
                Op::ToExpiry => {
                    now = now.max(expires_at);
                    continue;
                }
                Op::Check { right } => step(scenario, &check(1, if *right { secret(1) } else { secret(99) }), now),
                Op::Consume { right, credential } => {
                    // A whole ceremony: start with the presented code, finish with a verified
                    // credential. It is accepted when the finish registers the passkey.
                    next_code += 1;
                    let passkey_id = PasskeyId::new(format!("passkey-{next_code}")).unwrap();
                    let ceremony_secret = passkey_links::Secret::presented(format!("ceremony-{next_code}"));
                    let start = StartPasskeyRegistration {
                        presented: present(1, if *right { secret(1) } else { secret(99) }),
                        passkey_id: passkey_id.clone(),
                        ceremony: CeremonyState::new(serde_json::json!({"n": next_code})),
                        secret_digest: ceremony_secret.digest(),
                    };
                    let (started, next) = step(scenario, &start, now);
                    scenario = next;
                    match started {
                        Outcome::Accept(_) => {
                            record(&mut history, &mut oracle, &started)?;
                            let verified = VerifiedCredential::new(
                                CredentialId::new(vec![*credential, 7, 7]).unwrap(),
                                PublicKey::new(vec![1, 2, 3]),
                                0,
                                serde_json::Value::Null,
                            );
                            step(scenario, &FinishPasskeyRegistration {
                                user_id: user(),
                                passkey_id,
                                name: "key".into(),
                                verification: Ok(verified),
                                ceremony_secret: ceremony_secret.clone(),
                            }, now)
                        }
                        refused => (refused, scenario),
                    }
                }
                Op::Deliver { ok } => step(scenario, &RecordDelivery {
                    code_id: code(1),
                    user_id: user(),
                    outcome: if *ok {
                        DeliveryOutcome::Sent { message_id: "m".into() }
                    } else {
                        DeliveryOutcome::Failed(DeliveryFailure::Rejected)
                    },
                }, now),
                Op::Revoke => step(scenario, &RevokeCode { user_id: user(), code: NamedCode::Id(code(1)), org_context: None }, now),
                Op::IssueAnother => {
                    next_code += 1;
                    step(scenario, &issue(next_code, Delivery::Returned), now)
                }
                Op::User(change) => step(scenario, &ChangeUser { user_id: user(), org_context: None, change: change.clone() }, now),
                Op::Org(change) => step(scenario, &ChangeOrg { org_id: org(), change: *change }, now),
            };
            scenario = next;
            let presents_right = matches!(op, Op::Check { right: true } | Op::Consume { right: true, .. });
            if matches!(op, Op::Check { .. } | Op::Consume { .. }) {
                match &outcome {
                    Outcome::Accept(_) => {
                        prop_assert!(presents_right, "a wrong secret was accepted");
                        prop_assert!(!dead, "a dead code was accepted: {oracle:?} at {now}");
                        prop_assert!(oracle.delivered, "an undelivered code was accepted");
                        prop_assert!(user_active && org_active, "accepted for an inactive user/org");
                    }
                    refused if presents_right && !dead && oracle.delivered && user_active && org_active => {
                        // Liveness: a live code with the right secret must work (a ceremony may
                        // only fail on a credential id claimed by an earlier one).
                        prop_assert!(matches!(op, Op::Consume { .. }) && matches!(refused, Outcome::Reject(_)),
                            "a live code was refused: {refused:?}");
                    }
                    _ => {}
                }
            }
            record(&mut history, &mut oracle, &outcome)?;
        }
        // Folding the recorded events again rebuilds the same states.
        prop_assert_eq!(given(history), scenario);
    }
}

/// Appends what an outcome recorded to the history and tells the oracle; every event must
/// survive its stored round trip.
fn record(
    history: &mut Vec<Change>,
    oracle: &mut Oracle,
    outcome: &Outcome,
) -> Result<(), TestCaseError> {
    let changes = match outcome {
        Outcome::Accept(changes) | Outcome::RecordAndRefuse(changes, _) => changes.as_slice(),
        _ => &[],
    };
    for change in changes {
        let (event_type, payload) = change.event().encode().unwrap();
        let back =
            Event::decode(change.stream().kind(), &event_type, SCHEMA_VERSION, payload).unwrap();
        prop_assert_eq!(&back, change.event());
        history.push(change.clone());
        observe(oracle, change);
    }
    Ok(())
}

fn observe(oracle: &mut Oracle, change: &Change) {
    match change.event() {
        Event::Code(event) if change.stream().id() == code(1).as_str() => match event {
            CodeEvent::CheckSucceeded { .. } => oracle.consumed = true,
            CodeEvent::Revoked {} => oracle.revoked = true,
            CodeEvent::DeliveryFailed { .. } => oracle.delivery_failed = true,
            CodeEvent::Sent { .. } => oracle.delivered = true,
            CodeEvent::CheckFailed { .. } => oracle.recorded_failures += 1,
            _ => {}
        },
        Event::User(UserEvent::CodeIssued { code_id, .. }) if *code_id != code(1) => {
            oracle.superseded = true;
        }
        Event::User(UserEvent::EmailChanged { .. }) => oracle.email_changed = true,
        Event::User(UserEvent::Removed {} | UserEvent::Locked {} | UserEvent::Deactivated {})
        | Event::Org(OrgEvent::Removed {} | OrgEvent::Deactivated {}) => oracle.stopped = true,
        _ => {}
    }
}
