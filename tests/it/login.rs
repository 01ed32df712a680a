//! Logging in with an enrolled passkey, on every store, with a real software authenticator
//! (webauthn-authenticator-rs's `SoftPasskey`: real keys, real signatures): discoverable and
//! named logins succeed; every refusal answers only "login failed" and records its reason;
//! nothing is granted without the relying party's verification.
#![allow(dead_code)]

use chrono::Duration;
use passkey_links::prelude::*;
use passkey_links::store::RecordedEvent;
use serde_json::{Value, json};

use crate::scenarios::{Authenticator, Fixture, Inspect, finish_request, link_params};

/// A fixture where `user` enrolled a passkey with `authenticator`.
async fn enrolled<S: EventStore + Clone>(
    f: &Fixture<S>,
    user: &str,
    authenticator: &mut Authenticator,
) -> String {
    let link = f
        .service
        .add_passwordless_registration(
            &Caller::System,
            None,
            AddPasswordlessRegistrationRequest {
                user_id: user.to_owned(),
            },
        )
        .await
        .unwrap()
        .link;
    let (user, _, code_id, code) = link_params(&link);
    f.enroll_with(authenticator, &user, &code_id, &code)
        .await
        .unwrap()
        .passkey_id
}

async fn start<S: EventStore + Clone>(
    f: &Fixture<S>,
    user: Option<&str>,
) -> StartPasskeyLoginResponse {
    f.service
        .start_passkey_login(StartPasskeyLoginRequest {
            user_id: user.map(str::to_owned),
        })
        .await
        .unwrap()
}

/// Asserts the generic refusal, and that it told nothing more.
#[track_caller]
fn assert_login_failed<T: std::fmt::Debug>(result: Result<T, passkey_links::Error>) {
    let err = result.expect_err("the login was refused");
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err:?}");
    assert_eq!(err.id(), "PKL-LOGIN-01");
    assert_eq!(err.message_key(), "Errors.User.Passkey.LoginFailed");
    assert_eq!(err.message(), "login failed");
}

fn of_type<'a>(events: &'a [RecordedEvent], event_type: &str) -> Vec<&'a RecordedEvent> {
    events
        .iter()
        .filter(|e| e.event_type == event_type)
        .collect()
}

const SUCCEEDED: &str = "user.human.passwordless.token.check.succeeded";
const FAILED: &str = "user.human.passwordless.login.check.failed";

/// The last login failure recorded: its reason.
async fn last_failure<S: Inspect>(store: &S) -> String {
    let events = store.all_events().await;
    let failed = of_type(&events, FAILED);
    failed.last().expect("a recorded failure").payload["reason"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A discoverable login (no user named: the authenticator picks its passkey and returns its
/// user handle) and a login for a named user both succeed, name the user, org and passkey, and
/// record the new signature counter.
pub async fn discoverable_and_named_logins_succeed<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store).await;
    let mut authenticator = Authenticator::new();
    let passkey_id = enrolled(&f, &f.ada, &mut authenticator).await;

    let discoverable = start(&f, None).await;
    assert_eq!(
        discoverable.public_key_credential_request_options["publicKey"]["allowCredentials"],
        json!([])
    );
    let assertion = authenticator.get(&discoverable.public_key_credential_request_options);
    assert!(assertion["response"]["userHandle"].is_string());
    let logged_in = f
        .service
        .finish_passkey_login(finish_request(&discoverable, &assertion))
        .await
        .unwrap();
    assert_eq!(logged_in.user_id, f.ada);
    assert_eq!(logged_in.org_id, f.org_a);
    assert_eq!(logged_in.passkey_id, passkey_id);
    assert_eq!(logged_in.details.resource_owner, f.org_a);

    let named = start(&f, Some(&f.ada)).await;
    let allowed = &named.public_key_credential_request_options["publicKey"]["allowCredentials"];
    assert_eq!(allowed.as_array().unwrap().len(), 1);
    assert!(authenticator.holds_one_of(&named.public_key_credential_request_options));
    assert!(named.expires_at <= f.clock.now() + Duration::minutes(5));
    let assertion = authenticator.get(&named.public_key_credential_request_options);
    let again = f
        .service
        .finish_passkey_login(finish_request(&named, &assertion))
        .await
        .unwrap();
    assert_eq!(again.user_id, f.ada);
    assert_eq!(again.details.sequence, logged_in.details.sequence + 1);

    let events = f.store.all_events().await;
    let succeeded = of_type(&events, SUCCEEDED);
    assert_eq!(succeeded.len(), 2);
    let counts: Vec<u64> = succeeded
        .iter()
        .map(|e| e.payload["signCount"].as_u64().unwrap())
        .collect();
    assert!(counts[1] > counts[0], "{counts:?}");
    assert!(of_type(&events, FAILED).is_empty());
    // The login state is not in any event.
    for event in &events {
        assert!(!event.payload.to_string().contains(&named.login_state));
    }
}

/// A login that names a user without passkeys, or no user at all, answers in the same shape as
/// one naming a user with passkeys (one credential allowed, a state): the start is no oracle.
pub async fn a_start_tells_nothing_about_users<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store).await;
    let mut authenticator = Authenticator::new();
    enrolled(&f, &f.ada, &mut authenticator).await;
    let before = f.store.all_events().await.len();
    let shape = |login: &StartPasskeyLoginResponse| {
        let allowed = login.public_key_credential_request_options["publicKey"]["allowCredentials"]
            .as_array()
            .unwrap()
            .clone();
        allowed
            .iter()
            .map(|c| (c["type"].clone(), c["id"].as_str().unwrap().len()))
            .collect::<Vec<_>>()
    };
    let real = start(&f, Some(&f.ada)).await;
    let unknown = start(&f, Some("nobody-by-that-name")).await;
    let without = start(&f, Some(&f.carol)).await;
    assert_eq!(shape(&unknown).len(), shape(&real).len());
    assert_eq!(shape(&without).len(), shape(&real).len());
    assert_eq!(shape(&unknown)[0].0, json!("public-key"));
    // A stand-in stays the same from one start to the next (it cannot be told by changing).
    assert_eq!(
        start(&f, Some("nobody-by-that-name"))
            .await
            .public_key_credential_request_options["publicKey"]["allowCredentials"],
        unknown.public_key_credential_request_options["publicKey"]["allowCredentials"]
    );
    assert!(!authenticator.holds_one_of(&unknown.public_key_credential_request_options));
    assert_eq!(
        f.store.all_events().await.len(),
        before,
        "a start writes nothing"
    );
}

/// Every refusal of a login is the same "login failed" to the caller, grants nothing, and — where
/// the credential names a user — records the precise reason on that user.
pub async fn every_refused_login_is_recorded_and_says_only_login_failed<
    S: EventStore + Clone + Inspect,
>(
    store: S,
) {
    let f = Fixture::new(store).await;
    let mut ada_key = Authenticator::new();
    let ada_passkey = enrolled(&f, &f.ada, &mut ada_key).await;
    let mut carol_key = Authenticator::new();
    enrolled(&f, &f.carol, &mut carol_key).await;
    let finish = |login: &StartPasskeyLoginResponse, assertion: &Value| {
        f.service
            .finish_passkey_login(finish_request(login, assertion))
    };

    // An authenticator whose credential is registered nowhere: nothing to record on.
    let before = f.store.all_events().await.len();
    let mut stranger = Authenticator::new();
    stranger.create(&json!({"publicKey": {
        "rp": {"id": crate::scenarios::RP_ID, "name": "x"},
        "user": {"id": "AAECAw", "name": "x", "displayName": "x"},
        "challenge": "AAECAwQFBgcICQoLDA0ODw",
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
    }}));
    let login = start(&f, None).await;
    assert_login_failed(
        finish(
            &login,
            &stranger.get(&login.public_key_credential_request_options),
        )
        .await,
    );
    assert_eq!(f.store.all_events().await.len(), before, "nothing recorded");

    // A replayed assertion under another login: its challenge is the old login's.
    let first = start(&f, Some(&f.ada)).await;
    let assertion = ada_key.get(&first.public_key_credential_request_options);
    finish(&first, &assertion).await.unwrap();
    let second = start(&f, Some(&f.ada)).await;
    assert_login_failed(finish(&second, &assertion).await);
    assert_eq!(last_failure(&f.store).await, "assertion_rejected");
    // The same login state and assertion again: the state is used.
    assert_login_failed(finish(&first, &assertion).await);
    assert_eq!(last_failure(&f.store).await, "state_used");

    // A discoverable assertion whose user handle is another user's.
    let login = start(&f, None).await;
    let mut assertion = ada_key.get(&login.public_key_credential_request_options);
    let carols = passkey_links::user_handle(&UserId::new(&f.carol).unwrap());
    assertion["response"]["userHandle"] = json!(base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        carols
    ));
    assert_login_failed(finish(&login, &assertion).await);
    assert_eq!(last_failure(&f.store).await, "user_handle_mismatch");

    // A login started for carol, finished with ada's passkey.
    let login = start(&f, Some(&f.carol)).await;
    let mut named_ada = start(&f, Some(&f.ada)).await;
    named_ada.login_state = login.login_state.clone();
    let assertion = ada_key.get(&named_ada.public_key_credential_request_options);
    assert_login_failed(finish(&named_ada, &assertion).await);
    let failure = last_failure(&f.store).await;
    assert!(
        ["not_the_named_user", "assertion_rejected"].contains(&failure.as_str()),
        "{failure}"
    );

    // An expired login state.
    let login = start(&f, Some(&f.ada)).await;
    let assertion = ada_key.get(&login.public_key_credential_request_options);
    f.clock.advance(Duration::minutes(5));
    assert_login_failed(finish(&login, &assertion).await);
    assert_eq!(last_failure(&f.store).await, "state_expired");

    // A login state that was tampered with (or made for another deployment): nothing recorded.
    let login = start(&f, Some(&f.ada)).await;
    let assertion = ada_key.get(&login.public_key_credential_request_options);
    let before = f.store.all_events().await.len();
    let mut forged = login.clone();
    forged.login_state.push('A');
    assert_login_failed(finish(&forged, &assertion).await);
    assert_eq!(f.store.all_events().await.len(), before);

    // Stopped users and orgs: locked, deactivated, removed; an org deactivated.
    for (change, reason) in [
        (UserChange::Lock, "user_locked"),
        (UserChange::Deactivate, "user_inactive"),
    ] {
        f.service
            .update_user(&Caller::System, None, &f.ada, change)
            .await
            .unwrap();
        let login = start(&f, None).await;
        let assertion = ada_key.get(&login.public_key_credential_request_options);
        assert_login_failed(finish(&login, &assertion).await);
        assert_eq!(last_failure(&f.store).await, reason);
        let undo = match reason {
            "user_locked" => UserChange::Unlock,
            _ => UserChange::Reactivate,
        };
        f.service
            .update_user(&Caller::System, None, &f.ada, undo)
            .await
            .unwrap();
    }
    f.service
        .update_org(&Caller::System, &f.org_a, OrgChange::Deactivate)
        .await
        .unwrap();
    let login = start(&f, None).await;
    let assertion = ada_key.get(&login.public_key_credential_request_options);
    assert_login_failed(finish(&login, &assertion).await);
    assert_eq!(last_failure(&f.store).await, "org_not_active");
    f.service
        .update_org(&Caller::System, &f.org_a, OrgChange::Reactivate)
        .await
        .unwrap();

    // Unlocked and reactivated, ada logs in again: the stops were refusals, not a lockout.
    let login = start(&f, None).await;
    let assertion = ada_key.get(&login.public_key_credential_request_options);
    finish(&login, &assertion).await.unwrap();

    // A removed passkey.
    f.service
        .remove_passkey(
            &Caller::System,
            None,
            RemovePasskeyRequest {
                user_id: f.ada.clone(),
                passkey_id: ada_passkey,
            },
        )
        .await
        .unwrap();
    let login = start(&f, None).await;
    let assertion = ada_key.get(&login.public_key_credential_request_options);
    assert_login_failed(finish(&login, &assertion).await);
    assert_eq!(last_failure(&f.store).await, "passkey_removed");

    // A removed user.
    let login = start(&f, None).await;
    let assertion = carol_key.get(&login.public_key_credential_request_options);
    f.service
        .update_user(&Caller::System, None, &f.carol, UserChange::Remove)
        .await
        .unwrap();
    assert_login_failed(finish(&login, &assertion).await);
    assert_eq!(last_failure(&f.store).await, "user_removed");

    // Only the two logins that stood succeeded.
    let events = f.store.all_events().await;
    assert_eq!(of_type(&events, SUCCEEDED).len(), 2);
}

/// What the browser sends that is not an assertion at all, or is too large, is bad input: the
/// caller learns that, and nothing is recorded.
pub async fn a_malformed_assertion_is_bad_input<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store).await;
    let mut key = Authenticator::new();
    enrolled(&f, &f.ada, &mut key).await;
    let login = start(&f, None).await;
    let before = f.store.all_events().await.len();
    let huge = json!({"id": "x", "padding": "a".repeat(70 * 1024)});
    for bad in [json!("not a credential"), json!({}), json!({"id": 7}), huge] {
        let err = f
            .service
            .finish_passkey_login(finish_request(&login, &bad))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad}: {err:?}");
    }
    assert_eq!(f.store.all_events().await.len(), before);
    // The login itself is still good.
    let assertion = key.get(&login.public_key_credential_request_options);
    f.service
        .finish_passkey_login(finish_request(&login, &assertion))
        .await
        .unwrap();
}

/// An older assertion presented after a newer one — what a cloned authenticator produces — has
/// a signature counter that went backwards: refused and recorded as a possible clone; with the
/// policy accepting regressions, let through and still recorded.
pub async fn a_signature_counter_going_backwards_is_refused<S: EventStore + Clone + Inspect>(
    store: S,
) {
    let f = Fixture::new(store).await;
    let mut key = Authenticator::new();
    enrolled(&f, &f.ada, &mut key).await;
    // The same store, under a policy that accepts regressions.
    let accepting = PasskeyLinks::new(
        f.store.clone(),
        RecordingNotifier::new(),
        StaticGrants::new(),
        crate::scenarios::config()
            .with_policy(Policy::default().with_sign_count_regression_accepted(true)),
    )
    .with_clock(f.clock.clone())
    .with_relying_party(crate::scenarios::relying_party());
    let regressions = || async {
        let events = f.store.all_events().await;
        (
            of_type(
                &events,
                "user.human.passwordless.token.sign_count.regressed",
            )
            .len(),
            of_type(&events, SUCCEEDED).len(),
        )
    };
    // Two assertions made in order, presented in reverse.
    let pair = |key: &mut Authenticator,
                older: &StartPasskeyLoginResponse,
                newer: &StartPasskeyLoginResponse| {
        (
            key.get(&older.public_key_credential_request_options),
            key.get(&newer.public_key_credential_request_options),
        )
    };
    let (older, newer) = (start(&f, Some(&f.ada)).await, start(&f, Some(&f.ada)).await);
    let (older_assertion, newer_assertion) = pair(&mut key, &older, &newer);
    f.service
        .finish_passkey_login(finish_request(&newer, &newer_assertion))
        .await
        .unwrap();
    assert_login_failed(
        f.service
            .finish_passkey_login(finish_request(&older, &older_assertion))
            .await,
    );
    assert_eq!(regressions().await, (1, 1), "refused, recorded");

    let older = accepting
        .start_passkey_login(StartPasskeyLoginRequest { user_id: None })
        .await
        .unwrap();
    let newer = accepting
        .start_passkey_login(StartPasskeyLoginRequest { user_id: None })
        .await
        .unwrap();
    let (older_assertion, newer_assertion) = pair(&mut key, &older, &newer);
    accepting
        .finish_passkey_login(finish_request(&newer, &newer_assertion))
        .await
        .unwrap();
    accepting
        .finish_passkey_login(finish_request(&older, &older_assertion))
        .await
        .expect("the policy lets a regression through");
    assert_eq!(
        regressions().await,
        (2, 3),
        "let through, recorded all the same"
    );
}

/// A lock that lands between a login's start and its finish refuses the login.
pub async fn a_lock_between_start_and_finish_refuses_the_login<S: EventStore + Clone + Inspect>(
    store: S,
) {
    let f = Fixture::new(store).await;
    let mut key = Authenticator::new();
    enrolled(&f, &f.ada, &mut key).await;
    let login = start(&f, Some(&f.ada)).await;
    let assertion = key.get(&login.public_key_credential_request_options);
    f.service
        .update_user(&Caller::System, None, &f.ada, UserChange::Lock)
        .await
        .unwrap();
    assert_login_failed(
        f.service
            .finish_passkey_login(finish_request(&login, &assertion))
            .await,
    );
    assert_eq!(last_failure(&f.store).await, "user_locked");
}

/// Two finishes racing with one login state and one assertion: exactly one logs in.
pub async fn racing_finishes_of_one_login_have_one_winner<
    S: EventStore + Clone + Inspect + 'static,
>(
    store: S,
) {
    let f = Fixture::new(store).await;
    let mut key = Authenticator::new();
    enrolled(&f, &f.ada, &mut key).await;
    let login = start(&f, None).await;
    let assertion = key.get(&login.public_key_credential_request_options);
    let finishes = (0..4).map(|_| {
        f.service
            .finish_passkey_login(finish_request(&login, &assertion))
    });
    let results = futures::future::join_all(finishes).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    let events = f.store.all_events().await;
    assert_eq!(of_type(&events, SUCCEEDED).len(), 1);
}

/// One `#[tokio::test]` per login scenario for a backend (as `service_scenarios!`).
#[macro_export]
macro_rules! login_scenarios {
    ($store:ident) => {
        $crate::login_scenarios!(@each $store,
            discoverable_and_named_logins_succeed,
            a_start_tells_nothing_about_users,
            every_refused_login_is_recorded_and_says_only_login_failed,
            a_malformed_assertion_is_bad_input,
            a_signature_counter_going_backwards_is_refused,
            a_lock_between_start_and_finish_refuses_the_login,
            racing_finishes_of_one_login_have_one_winner
        );
    };
    (@each $store:ident, $($name:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some(store) = $store().await else { return };
            $crate::login::$name(store).await;
        }
    )*};
}
