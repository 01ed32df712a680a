//! Service-level scenarios, generic over the event store, so that every backend runs the same
//! suite (in memory in `main.rs`, PostgreSQL in `service_postgres.rs`).
#![allow(dead_code)]

use std::future::Future;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chrono::{Duration, TimeZone, Utc};
use passkey_links::prelude::*;
use passkey_links::store::RecordedEvent;
use passkey_links::{RegistrationRequest, RelyingPartyError, StartedRegistration, Verification};
use serde_json::{Value, json};

/// A secret in every form a leak could take: raw, base64 (4 alphabets/paddings), hex.
pub fn forms(secret: &str) -> Vec<String> {
    let bytes = secret.as_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        secret.to_owned(),
        STANDARD.encode(bytes),
        STANDARD_NO_PAD.encode(bytes),
        URL_SAFE.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
        hex.clone(),
        hex.to_uppercase(),
    ]
}

/// Panics when `text` holds any form of any of `secrets`.
pub fn assert_clean(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        for form in forms(secret) {
            assert!(!text.contains(&form), "{what} leaks a secret: {text}");
        }
    }
}

/// Read access to everything a store holds, for assertions.
pub trait Inspect {
    /// Every stored event, in append order.
    fn all_events(&self) -> impl Future<Output = Vec<RecordedEvent>> + Send;
}

impl Inspect for InMemoryStore {
    fn all_events(&self) -> impl Future<Output = Vec<RecordedEvent>> + Send {
        std::future::ready(InMemoryStore::all_events(self))
    }
}

pub type Service<S> = PasskeyLinks<
    S,
    RecordingNotifier,
    StaticGrants,
    ManualClock,
    SeededRandom,
    WebauthnRelyingParty,
>;
pub use crate::authenticator::{Authenticator, ORIGIN, RP_ID};
pub use passkey_links::webauthn::WebauthnRelyingParty;

/// The relying party of the fixtures.
pub fn relying_party() -> WebauthnRelyingParty {
    WebauthnRelyingParty::new(RP_ID, "Example ID", &[ORIGIN]).unwrap()
}
pub use passkey_links::SeededRandom;

pub struct Fixture<S> {
    pub service: Service<S>,
    pub store: S,
    pub notifier: RecordingNotifier,
    pub clock: ManualClock,
    pub org_a: String,
    pub org_b: String,
    /// Verified human in org A.
    pub ada: String,
    /// Unverified human in org A.
    pub bob: String,
    /// Verified human in org B.
    pub carol: String,
    /// Machine user in org A.
    pub bot: String,
    /// Holds every permission in org A.
    pub admin_a: Caller,
    /// Holds every permission in org B only.
    pub admin_b: Caller,
    /// Holds only `user.read` in org A: some grant, but none that writes.
    pub reader_a: Caller,
    /// Holds no permission.
    pub nobody: Caller,
}

pub const ALL: [Permission; 7] = Permission::ALL;

/// The scenarios' configuration. Their manual clock stands in 2026 on purpose: it is not
/// corrected to the store's clock (`tests/it/clocks.rs` tests that correction).
pub fn config() -> Config {
    Config::new(
        LinkConfig::new(BaseUrl::parse("https://id.example.com").unwrap())
            .allow_origin("https://app.example.com")
            .unwrap(),
    )
    .with_store_clock(false)
}

fn human(name: &str, verified: bool) -> AddHumanUserRequest {
    AddHumanUserRequest {
        user_name: name.into(),
        display_name: name.to_uppercase(),
        email: format!("{name}@example.com"),
        is_email_verified: verified,
        preferred_language: Some("en".into()),
        ..Default::default()
    }
}

impl<S: EventStore + Clone> Fixture<S> {
    pub async fn new(store: S) -> Self {
        Self::with_config(store, config()).await
    }

    pub async fn with_config(store: S, config: Config) -> Self {
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap());
        let notifier = RecordingNotifier::new();
        let random = SeededRandom::new(42);
        let setup = PasskeyLinks::new(
            store.clone(),
            notifier.clone(),
            StaticGrants::new(),
            config.clone(),
        )
        .with_clock(clock.clone())
        .with_random(random.clone());
        let sys = Caller::System;
        let org = |name: &str| AddOrgRequest {
            name: name.into(),
            ..Default::default()
        };
        let org_a = setup.add_org(&sys, org("A")).await.unwrap().org_id;
        let org_b = setup.add_org(&sys, org("B")).await.unwrap().org_id;
        let add = |org: &str, request| {
            let org = org.to_owned();
            let setup = &setup;
            async move {
                setup
                    .add_human_user(&Caller::System, Some(&org), request)
                    .await
                    .unwrap()
                    .user_id
            }
        };
        let ada = add(&org_a, human("ada", true)).await;
        let bob = add(&org_a, human("bob", false)).await;
        let carol = add(&org_b, human("carol", true)).await;
        let bot = setup
            .add_machine_user(
                &sys,
                Some(&org_a),
                AddMachineUserRequest {
                    user_name: "bot".into(),
                    name: "Bot".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .user_id;
        let oa = OrgId::new(&org_a).unwrap();
        let ob = OrgId::new(&org_b).unwrap();
        let admin_a = UserId::new("admin-a").unwrap();
        let admin_b = UserId::new("admin-b").unwrap();
        let reader_a = UserId::new("reader-a").unwrap();
        let grants = StaticGrants::new()
            .grant(&admin_a, &oa, ALL)
            .grant(&admin_b, &ob, ALL)
            .grant(&reader_a, &oa, [Permission::UserRead]);
        let service = PasskeyLinks::new(store.clone(), notifier.clone(), grants, config)
            .with_clock(clock.clone())
            .with_random(random)
            .with_relying_party(relying_party());
        Self {
            service,
            store,
            notifier,
            clock,
            admin_a: Caller::user(admin_a, oa.clone()),
            admin_b: Caller::user(admin_b, ob),
            reader_a: Caller::user(reader_a, oa.clone()),
            nobody: Caller::user(UserId::new("nobody").unwrap(), oa),
            org_a,
            org_b,
            ada,
            bob,
            carol,
            bot,
        }
    }

    /// Adds a verified human named `name` to org A; answers its id.
    pub async fn add_verified_user(&self, name: &str) -> String {
        self.service
            .add_human_user(&Caller::System, Some(&self.org_a), human(name, true))
            .await
            .unwrap()
            .user_id
    }

    /// Registers a passkey with a link's code, as the login UI does: RegisterPasskey, a fresh
    /// software authenticator answers the creation options, VerifyPasskeyRegistration.
    pub async fn enroll(&self, user: &str, code_id: &str, code: &str) -> Result<Enrolled, Error> {
        self.enroll_with(&mut Authenticator::new(), user, code_id, code)
            .await
    }

    /// As [`Fixture::enroll`], with `authenticator` (kept, to log in with).
    pub async fn enroll_with(
        &self,
        authenticator: &mut Authenticator,
        user: &str,
        code_id: &str,
        code: &str,
    ) -> Result<Enrolled, Error> {
        let started = self
            .service
            .register_passkey(register_request(user, code_id, code))
            .await?;
        let response = authenticator.create(&started.public_key_credential_creation_options);
        let verified = self
            .service
            .verify_passkey_registration(verify_request(user, &started, &response))
            .await?;
        Ok(Enrolled {
            passkey_id: started.passkey_id.clone(),
            response,
            details: verified.details,
            started,
        })
    }

    /// The user as a self-service caller.
    /// AddPasswordlessRegistration by the admin of org A for `user`.
    pub async fn admin_link(
        &self,
        user: &str,
    ) -> Result<AddPasswordlessRegistrationResponse, Error> {
        self.service
            .add_passwordless_registration(
                &self.admin_a,
                None,
                AddPasswordlessRegistrationRequest {
                    user_id: user.to_owned(),
                },
            )
            .await
    }

    pub fn me(&self, user: &str) -> Caller {
        let org = if user == self.carol {
            &self.org_b
        } else {
            &self.org_a
        };
        Caller::user(UserId::new(user).unwrap(), OrgId::new(org).unwrap())
    }
}

/// A registered passkey: its id, the browser's response, and VerifyPasskeyRegistration's
/// details.
pub struct Enrolled {
    pub passkey_id: String,
    pub response: Value,
    pub details: Details,
    /// The start's answer (with the ceremony's secret).
    pub started: RegisterPasskeyResponse,
}

pub fn register_request(user: &str, code_id: &str, code: &str) -> RegisterPasskeyRequest {
    serde_json::from_value(json!({"userId": user, "code": {"id": code_id, "code": code}})).unwrap()
}

/// The finish of a registration: the start's passkey id and ceremony secret, and the browser's
/// response.
pub fn verify_request(
    user: &str,
    started: &RegisterPasskeyResponse,
    response: &Value,
) -> VerifyPasskeyRegistrationRequest {
    serde_json::from_value(json!({
        "userId": user,
        "passkeyId": started.passkey_id,
        "publicKeyCredential": response,
        "passkeyName": "iPhone",
        "ceremonySecret": started.ceremony_secret,
    }))
    .unwrap()
}

/// The finish of a login: its state and the browser's assertion.
pub fn finish_request(
    login: &StartPasskeyLoginResponse,
    assertion: &Value,
) -> FinishPasskeyLoginRequest {
    serde_json::from_value(json!({
        "loginState": login.login_state,
        "publicKeyCredential": assertion,
    }))
    .unwrap()
}

/// The query parameters of a default link.
pub fn link_params(link: &str) -> (String, String, String, String) {
    let url = url::Url::parse(link).unwrap();
    let get = |key: &str| {
        url.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    (get("userID"), get("orgID"), get("codeID"), get("code"))
}

pub fn check_request(user: &str, code_id: &str, code: &str) -> CheckCodeRequest {
    serde_json::from_value(json!({"userId": user, "codeId": code_id, "code": code})).unwrap()
}

pub fn types(events: &[RecordedEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

pub fn assert_error(
    result: Result<impl std::fmt::Debug, Error>,
    kind: ErrorKind,
    key: &str,
) -> Error {
    let err = result.expect_err("expected an error");
    assert_eq!(err.kind(), kind, "{err:?}");
    assert_eq!(err.message_key(), key, "{err:?}");
    err
}

// ---- success of every entry point ----------------------------------------------------------

pub async fn add_passwordless_registration_returns_a_working_link<
    S: EventStore + Clone + Inspect,
>(
    store: S,
) {
    let f = Fixture::new(store).await;
    let before = f.store.all_events().await.len();
    let response = f.admin_link(&f.ada).await.unwrap();
    let now = f.clock.now();
    assert_eq!(response.details.sequence, 1);
    assert_eq!(response.details.creation_date, now);
    assert_eq!(response.details.change_date, now);
    assert_eq!(response.details.resource_owner, f.org_a);
    assert_eq!(response.expiration.to_string(), "3600s");
    assert!(
        response
            .link
            .starts_with("https://id.example.com/ui/login/login/passwordless/init?userID=")
    );
    let (user, org, code_id, code) = link_params(&response.link);
    assert_eq!(
        (user.as_str(), org.as_str()),
        (f.ada.as_str(), f.org_a.as_str())
    );
    let events = f.store.all_events().await;
    assert_eq!(
        types(&events[before..]),
        [
            "user.human.passwordless.link.issued",
            "user.human.passwordless.initialization.code.added"
        ]
    );
    let checked = f
        .service
        .check_code(check_request(&user, &code_id, &code))
        .await
        .unwrap();
    assert_eq!(checked.org_id, f.org_a);
    assert_eq!(checked.expiration_date, now + Duration::hours(1));
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(json["details"]["sequence"], json!("1"));
    assert_eq!(json["expiration"], json!("3600s"));
}

pub async fn send_passwordless_registration_emails_a_working_link<
    S: EventStore + Clone + Inspect,
>(
    store: S,
) {
    let f = Fixture::new(store).await;
    let response = f
        .service
        .send_passwordless_registration(
            &f.admin_a,
            Some(&f.org_a),
            SendPasswordlessRegistrationRequest {
                user_id: f.ada.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(response.details.sequence, 2);
    assert_eq!(response.details.resource_owner, f.org_a);
    let delivered = f.notifier.delivered();
    let Message::RegistrationLink {
        recipient, link, ..
    } = &delivered.last().unwrap().message
    else {
        panic!("expected a link message");
    };
    assert_eq!(recipient.as_str(), "ada@example.com");
    let (user, _, code_id, code) = link_params(link.expose());
    f.service
        .check_code(check_request(&user, &code_id, &code))
        .await
        .unwrap();
}

pub async fn self_service_add_and_send<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store).await;
    let me = f.me(&f.ada);
    let added = f.service.add_my_passwordless_link(&me).await.unwrap();
    assert_eq!(added.details.sequence, 1);
    let sent = f.service.send_my_passwordless_link(&me).await.unwrap();
    assert_eq!(sent.details.sequence, 2);
    // One live link: the returned link was superseded by the sent one.
    let (user, _, code_id, code) = link_params(&added.link);
    assert_error(
        f.service
            .check_code(check_request(&user, &code_id, &code))
            .await,
        ErrorKind::InvalidArgument,
        "Errors.User.Code.Invalid",
    );
    let link = f.notifier.last_link(&UserId::new(&f.ada).unwrap()).unwrap();
    let (user, _, code_id, code) = link_params(link.expose());
    f.service
        .check_code(check_request(&user, &code_id, &code))
        .await
        .unwrap();
}

pub async fn v2_return_code_and_send_link_with_template<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store).await;
    let returned = f
        .service
        .create_passkey_registration_link(
            &f.admin_a,
            CreatePasskeyRegistrationLinkRequest {
                user_id: f.ada.clone(),
                send_link: None,
                return_code: Some(ReturnCode {}),
            },
        )
        .await
        .unwrap();
    assert_eq!(returned.details.sequence, 1);
    let code = returned.code.clone().unwrap();
    f.service
        .check_code(check_request(&f.ada, &code.id, &code.code))
        .await
        .unwrap();
    let json = serde_json::to_value(&returned).unwrap();
    assert_eq!(json["code"]["id"], json!(code.id));

    let sent = f
        .service
        .create_passkey_registration_link(
            &f.admin_a,
            CreatePasskeyRegistrationLinkRequest {
                user_id: f.ada.clone(),
                send_link: Some(SendLink {
                    url_template: Some(
                        "https://app.example.com/passkey/set?userId={{.UserID}}&orgId={{.OrgID}}&codeId={{.CodeID}}&code={{.Code}}"
                            .into(),
                    ),
                }),
                return_code: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(sent.details.sequence, 2);
    assert!(sent.code.is_none());
    let link = f.notifier.last_link(&UserId::new(&f.ada).unwrap()).unwrap();
    let url = url::Url::parse(link.expose()).unwrap();
    assert_eq!(
        url.origin().ascii_serialization(),
        "https://app.example.com"
    );
    let param = |k: &str| {
        url.query_pairs()
            .find(|(key, _)| key == k)
            .unwrap()
            .1
            .into_owned()
    };
    assert_eq!(param("orgId"), f.org_a);
    f.service
        .check_code(check_request(
            &param("userId"),
            &param("codeId"),
            &param("code"),
        ))
        .await
        .unwrap();
}

/// The whole journey with a real (software) authenticator: link → RegisterPasskey →
/// authenticator → VerifyPasskeyRegistration → listed → login assertion verified with the
/// stored credential → use recorded; the code is consumed and the user notified.
pub async fn a_real_ceremony_registers_a_passkey_that_logs_in<S: EventStore + Clone + Inspect>(
    store: S,
) {
    let f = Fixture::new(store).await;
    let added = f
        .service
        .add_my_passwordless_link(&f.me(&f.ada))
        .await
        .unwrap();
    let (user, _, code_id, code) = link_params(&added.link);
    let started = f
        .service
        .register_passkey(register_request(&user, &code_id, &code))
        .await
        .unwrap();
    let options = &started.public_key_credential_creation_options["publicKey"];
    assert_eq!(options["rp"]["id"], json!(RP_ID));
    assert_eq!(
        options["authenticatorSelection"]["residentKey"],
        json!("required")
    );
    assert_eq!(
        options["authenticatorSelection"]["userVerification"],
        json!("preferred")
    );
    assert_eq!(started.details.resource_owner, f.org_a);
    let listed = f
        .service
        .list_passkeys(
            &f.me(&f.ada),
            None,
            ListPasskeysRequest {
                user_id: user.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        listed.result[0].state,
        passkey_links::domain::PasskeyState::NotReady
    );

    let mut authenticator = Authenticator::new();
    let response = authenticator.create(&started.public_key_credential_creation_options);
    let verified = f
        .service
        .verify_passkey_registration(verify_request(&user, &started, &response))
        .await
        .unwrap();
    assert_eq!(verified.details.resource_owner, f.org_a);
    let notice = f.notifier.delivered().last().unwrap().message.clone();
    assert!(
        matches!(notice, Message::PasskeyAdded { ref passkey_name, .. } if passkey_name == "iPhone")
    );

    let listed = f
        .service
        .list_passkeys(
            &f.admin_a,
            None,
            ListPasskeysRequest {
                user_id: user.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.details.total_result, 1);
    assert_eq!(listed.result[0].id, started.passkey_id);
    assert_eq!(
        listed.result[0].state,
        passkey_links::domain::PasskeyState::Ready
    );
    assert_eq!(listed.result[0].name, "iPhone");
    let json = serde_json::to_value(&listed).unwrap();
    assert_eq!(json["result"][0]["state"], json!("AUTH_FACTOR_STATE_READY"));

    // The stored credential is the authenticator's: it logs in with it.
    let login = f
        .service
        .start_passkey_login(StartPasskeyLoginRequest {
            user_id: Some(user.clone()),
        })
        .await
        .unwrap();
    let assertion = authenticator.get(&login.public_key_credential_request_options);
    let logged_in = f
        .service
        .finish_passkey_login(finish_request(&login, &assertion))
        .await
        .unwrap();
    assert_eq!(logged_in.user_id, user);
    assert_eq!(logged_in.passkey_id, started.passkey_id);

    // The code is consumed: it starts no further ceremony.
    let again = assert_error(
        f.service
            .register_passkey(register_request(&user, &code_id, &code))
            .await,
        ErrorKind::InvalidArgument,
        "Errors.User.Code.Invalid",
    );
    let body = serde_json::to_value(again.to_body()).unwrap();
    assert_eq!(body["code"], json!(3));
    let events = f.store.all_events().await;
    let registered = events
        .iter()
        .filter(|e| e.event_type == "user.human.passwordless.token.verified")
        .count();
    assert_eq!(registered, 1);
}

/// Refused with nothing registered, each with a real, tampered or replayed response: a replay
/// of a verified response, a response to another user's or another code's ceremony, a foreign
/// origin, another rp id, a stale (expired) ceremony.
pub async fn bad_responses_register_nothing<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store).await;
    let link = |user: String| {
        let f = &f;
        async move {
            f.clock.advance(Duration::minutes(13)); // stay under the rate limit
            let added = f
                .service
                .add_passwordless_registration(
                    &Caller::System,
                    None,
                    AddPasswordlessRegistrationRequest { user_id: user },
                )
                .await
                .unwrap();
            link_params(&added.link)
        }
    };
    let registered = || async {
        f.store
            .all_events()
            .await
            .iter()
            .filter(|e| e.event_type == "user.human.passwordless.token.verified")
            .count()
    };
    let failure = |reason: &'static str| {
        let f = &f;
        async move {
            let events = f.store.all_events().await;
            let last = events
                .iter()
                .rev()
                .find(|e| e.event_type == "user.human.passwordless.token.check.failed")
                .unwrap()
                .clone();
            assert_eq!(last.payload["reason"], json!(reason));
        }
    };

    // A verified response replayed to its own ceremony: the ceremony is single-use.
    let (user, _, code_id, code) = link(f.ada.clone()).await;
    let enrolled = f.enroll(&user, &code_id, &code).await.unwrap();
    assert_eq!(registered().await, 1);
    assert_error(
        f.service
            .verify_passkey_registration(verify_request(
                &user,
                &enrolled.started,
                &enrolled.response,
            ))
            .await,
        ErrorKind::NotFound,
        "Errors.User.Passkey.NotFound",
    );

    // The same response to another user's ceremony, and to another code's: challenge mismatch,
    // recorded, that ceremony killed.
    for target in [f.carol.clone(), f.ada.clone()] {
        let (user, _, code_id, code) = link(target).await;
        let started = f
            .service
            .register_passkey(register_request(&user, &code_id, &code))
            .await
            .unwrap();
        assert_error(
            f.service
                .verify_passkey_registration(verify_request(&user, &started, &enrolled.response))
                .await,
            ErrorKind::InvalidArgument,
            "Errors.User.Passkey.VerificationFailed",
        );
        failure("challenge_mismatch").await;
        // Killed: the right response to it is refused too.
        let right = Authenticator::new().create(&started.public_key_credential_creation_options);
        assert_error(
            f.service
                .verify_passkey_registration(verify_request(&user, &started, &right))
                .await,
            ErrorKind::NotFound,
            "Errors.User.Passkey.NotFound",
        );
    }

    // A foreign origin, another rp id, a stale ceremony.
    type Tamper = Box<dyn FnOnce(&mut webauthn_rs_proto::CreationChallengeResponse)>;
    let cases: Vec<(&str, &str, Tamper, Duration)> = vec![
        (
            "origin_mismatch",
            "https://login.id.example.com",
            Box::new(|_| {}),
            Duration::zero(),
        ),
        (
            "rp_id_mismatch",
            ORIGIN,
            Box::new(|options| options.public_key.rp.id = "example.com".into()),
            Duration::zero(),
        ),
        ("expired", ORIGIN, Box::new(|_| {}), Duration::minutes(6)),
    ];
    for (reason, origin, tamper, wait) in cases {
        let (user, _, code_id, code) = link(f.carol.clone()).await;
        let started = f
            .service
            .register_passkey(register_request(&user, &code_id, &code))
            .await
            .unwrap();
        let response = Authenticator::on(origin)
            .create_with(&started.public_key_credential_creation_options, tamper);
        f.clock.advance(wait);
        let err = f
            .service
            .verify_passkey_registration(verify_request(&user, &started, &response))
            .await
            .expect_err(reason);
        assert_eq!(
            err.message_key(),
            "Errors.User.Passkey.VerificationFailed",
            "{reason}"
        );
        failure(reason).await;
    }
    assert_eq!(registered().await, 1, "only the first ceremony registered");

    // Bad input is not a verification: a response that is not a registration response at all,
    // or is larger than the limit, is InvalidArgument, nothing is recorded, and the ceremony
    // stays open for the genuine response.
    let (user, _, code_id, code) = link(f.ada.clone()).await;
    let started = f
        .service
        .register_passkey(register_request(&user, &code_id, &code))
        .await
        .unwrap();
    let before = f.store.all_events().await.len();
    let huge = json!({"id": "x", "rawId": "x", "type": "public-key", "blob": "A".repeat(1 << 20)});
    for garbage in [
        json!("not a credential"),
        json!({}),
        json!({"id": 5, "type": ["public-key"], "response": "nope"}),
        huge,
    ] {
        let err = f
            .service
            .verify_passkey_registration(verify_request(&user, &started, &garbage))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err:?}");
    }
    assert_eq!(f.store.all_events().await.len(), before, "nothing recorded");
    let response = Authenticator::new().create(&started.public_key_credential_creation_options);
    f.service
        .verify_passkey_registration(verify_request(&user, &started, &response))
        .await
        .expect("the ceremony was still open");
    assert_eq!(registered().await, 2);
}

/// A credential id claimed by another user: refused, nothing registered, that ceremony closed,
/// the code not burned. Authenticators mint a fresh credential id per registration, so a relying
/// party that always verifies the same credential stands in for a cloned or rogue authenticator.
pub async fn a_credential_claimed_by_another_user_registers_nothing<
    S: EventStore + Clone + Inspect,
>(
    store: S,
) {
    let f = Fixture::new(store.clone()).await;
    let service = PasskeyLinks::new(store, f.notifier.clone(), StaticGrants::new(), config())
        .with_clock(f.clock.clone())
        .with_relying_party(SameCredential);
    let enroll = |user: String| {
        let service = &service;
        async move {
            let added = service
                .add_passwordless_registration(
                    &Caller::System,
                    None,
                    AddPasswordlessRegistrationRequest { user_id: user },
                )
                .await
                .unwrap();
            let (user, _, code_id, code) = link_params(&added.link);
            let started = service
                .register_passkey(register_request(&user, &code_id, &code))
                .await
                .unwrap();
            let verified = service
                .verify_passkey_registration(verify_request(&user, &started, &json!({})))
                .await;
            (verified, user, code_id, code)
        }
    };
    let (first, ..) = enroll(f.ada.clone()).await;
    first.unwrap();
    let (second, user, code_id, code) = enroll(f.carol.clone()).await;
    let err = assert_error(
        second,
        ErrorKind::AlreadyExists,
        "Errors.User.Passkey.AlreadyExists",
    );
    assert_eq!(
        err.domain_error(),
        Some(&passkey_links::domain::DomainError::CredentialAlreadyClaimed)
    );
    let listed = service
        .list_passkeys(
            &Caller::System,
            None,
            ListPasskeysRequest {
                user_id: user.clone(),
            },
        )
        .await
        .unwrap();
    assert!(
        listed.result.is_empty(),
        "nothing registered, the ceremony closed"
    );
    service
        .check_code(check_request(&user, &code_id, &code))
        .await
        .unwrap();
}

/// The bench's relying party, except that another writer revokes `code` while a ceremony
/// starts: between the code's check and the ceremony's record.
pub struct RevokesOnStart<S> {
    store: S,
    code: passkey_links::ids::StreamId,
}

impl<S: EventStore> RelyingParty for RevokesOnStart<S> {
    async fn start_registration(
        &self,
        request: &RegistrationRequest,
    ) -> Result<StartedRegistration, RelyingPartyError> {
        use passkey_links::domain::{CodeEvent, Event};
        use passkey_links::store::{AppendBatch, ExpectedVersion, NewEvent, StreamAppend};
        let version = self.store.read(&self.code, 0).await.unwrap().len() as u64;
        let (event_type, payload) = Event::Code(CodeEvent::Revoked {}).encode().unwrap();
        let revoked = NewEvent::new(
            event_type,
            passkey_links::domain::SCHEMA_VERSION,
            &payload,
            Utc::now(),
        )
        .unwrap();
        let batch = AppendBatch::new(vec![StreamAppend {
            stream: self.code.clone(),
            expected: ExpectedVersion::Exact(version),
            events: vec![revoked],
        }])
        .unwrap();
        self.store.append(batch).await.unwrap();
        relying_party().start_registration(request).await
    }

    async fn finish_registration(
        &self,
        ceremony: &passkey_links::domain::CeremonyState,
        response: &Value,
    ) -> Result<Verification, RelyingPartyError> {
        relying_party()
            .finish_registration(ceremony, response)
            .await
    }

    async fn start_authentication(
        &self,
        request: &passkey_links::AuthenticationRequest,
    ) -> Result<passkey_links::StartedAuthentication, RelyingPartyError> {
        relying_party().start_authentication(request).await
    }

    fn identify_assertion(
        &self,
        response: &Value,
    ) -> Result<passkey_links::AssertionClaim, passkey_links::domain::CeremonyFailure> {
        relying_party().identify_assertion(response)
    }

    async fn finish_authentication(
        &self,
        state: &Value,
        response: &Value,
        credential: &passkey_links::domain::VerifiedCredential,
    ) -> Result<passkey_links::AssertionVerification, RelyingPartyError> {
        relying_party()
            .finish_authentication(state, response, credential)
            .await
    }
}

/// A relying party that verifies every response as the same credential.
pub struct SameCredential;

impl RelyingParty for SameCredential {
    async fn start_registration(
        &self,
        _: &RegistrationRequest,
    ) -> Result<StartedRegistration, RelyingPartyError> {
        Ok(StartedRegistration::new(
            json!({"publicKey": {}}),
            passkey_links::domain::CeremonyState::new(json!({})),
        ))
    }

    async fn finish_registration(
        &self,
        _: &passkey_links::domain::CeremonyState,
        _: &Value,
    ) -> Result<Verification, RelyingPartyError> {
        Ok(Ok(passkey_links::domain::VerifiedCredential::new(
            passkey_links::domain::CredentialId::new(b"cloned-credential".to_vec()).unwrap(),
            passkey_links::domain::PublicKey::new(vec![0xa5]),
            0,
            Value::Null,
        )))
    }

    async fn start_authentication(
        &self,
        request: &passkey_links::AuthenticationRequest,
    ) -> Result<passkey_links::StartedAuthentication, RelyingPartyError> {
        relying_party().start_authentication(request).await
    }

    fn identify_assertion(
        &self,
        response: &Value,
    ) -> Result<passkey_links::AssertionClaim, passkey_links::domain::CeremonyFailure> {
        relying_party().identify_assertion(response)
    }

    async fn finish_authentication(
        &self,
        state: &Value,
        response: &Value,
        credential: &passkey_links::domain::VerifiedCredential,
    ) -> Result<passkey_links::AssertionVerification, RelyingPartyError> {
        relying_party()
            .finish_authentication(state, response, credential)
            .await
    }
}

/// Removing a passkey (the user, or `user.passkey.write` in the user's org): it leaves the
/// list and logins, and its credential id stays claimed.
pub async fn remove_passkey<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store).await;
    let added = f
        .service
        .add_my_passwordless_link(&f.me(&f.ada))
        .await
        .unwrap();
    let (user, _, code_id, code) = link_params(&added.link);
    let enrolled = f.enroll(&user, &code_id, &code).await.unwrap();
    let remove = RemovePasskeyRequest {
        user_id: user.clone(),
        passkey_id: enrolled.passkey_id.clone(),
    };
    assert_error(
        f.service
            .remove_passkey(&f.reader_a, None, remove.clone())
            .await,
        ErrorKind::PermissionDenied,
        "Errors.PermissionDenied",
    );
    assert_error(
        f.service
            .remove_passkey(&f.admin_b, None, remove.clone())
            .await,
        ErrorKind::NotFound,
        "Errors.User.NotFound",
    );
    f.service
        .remove_passkey(&f.admin_a, None, remove.clone())
        .await
        .unwrap();
    assert_error(
        f.service.remove_passkey(&f.me(&f.ada), None, remove).await,
        ErrorKind::NotFound,
        "Errors.User.Passkey.NotFound",
    );
    let listed = f
        .service
        .list_passkeys(&f.me(&f.ada), None, ListPasskeysRequest { user_id: user })
        .await
        .unwrap();
    assert!(listed.result.is_empty());
}

pub async fn revoke_and_lifecycle<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store).await;
    let added = f
        .service
        .add_my_passwordless_link(&f.me(&f.ada))
        .await
        .unwrap();
    let (user, _, code_id, code) = link_params(&added.link);
    let revoked = f
        .service
        .revoke_code(
            &f.admin_a,
            None,
            RevokeCodeRequest {
                user_id: user.clone(),
                code_id: Some(code_id.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(revoked.details.sequence, 2);
    assert_error(
        f.service
            .check_code(check_request(&user, &code_id, &code))
            .await,
        ErrorKind::InvalidArgument,
        "Errors.User.Code.Invalid",
    );
    let locked = f
        .service
        .update_user(&f.admin_a, None, &f.ada, UserChange::Lock)
        .await
        .unwrap();
    assert_eq!(locked.details.resource_owner, f.org_a);
    assert_error(
        f.service.add_my_passwordless_link(&f.me(&f.ada)).await,
        ErrorKind::FailedPrecondition,
        "Errors.User.Locked",
    );
    f.service
        .update_org(&f.admin_b, &f.org_b, OrgChange::Deactivate)
        .await
        .unwrap();
    assert_error(
        f.service.add_my_passwordless_link(&f.me(&f.carol)).await,
        ErrorKind::FailedPrecondition,
        "Errors.Org.NotActive",
    );
}

// ---- every error class -------------------------------------------------------------------

pub async fn not_found_for_unknown_users_and_users_of_other_orgs<
    S: EventStore + Clone + Inspect,
>(
    store: S,
) {
    let f = Fixture::new(store).await;
    let before = f.store.all_events().await.len();
    for (user, context) in [("nobody-here", None), (f.carol.as_str(), None)] {
        assert_error(
            f.service
                .add_passwordless_registration(
                    &f.admin_a,
                    context,
                    AddPasswordlessRegistrationRequest {
                        user_id: user.into(),
                    },
                )
                .await,
            ErrorKind::NotFound,
            "Errors.User.NotFound",
        );
    }
    assert_eq!(f.store.all_events().await.len(), before);
}

pub async fn permission_is_checked_in_the_users_actual_org<S: EventStore + Clone + Inspect>(
    store: S,
) {
    let f = Fixture::new(store).await;
    let before = f.store.all_events().await.len();
    // ZITADEL's cross-org bug: admin of B names org A as context for a user of A. Holding
    // nothing in A, it learns nothing either: the answer is the nonexistent user's.
    assert_error(
        f.service
            .add_passwordless_registration(
                &f.admin_b,
                Some(&f.org_a),
                AddPasswordlessRegistrationRequest {
                    user_id: f.ada.clone(),
                },
            )
            .await,
        ErrorKind::NotFound,
        "Errors.User.NotFound",
    );
    // Admin of B with its own org as context does not even see the user.
    assert_error(
        f.service
            .send_passwordless_registration(
                &f.admin_b,
                Some(&f.org_b),
                SendPasswordlessRegistrationRequest {
                    user_id: f.ada.clone(),
                },
            )
            .await,
        ErrorKind::NotFound,
        "Errors.User.NotFound",
    );
    // A caller acting inside A with some grant there, but not the one needed, is denied.
    let err = assert_error(
        f.service
            .create_passkey_registration_link(
                &f.reader_a,
                CreatePasskeyRegistrationLinkRequest {
                    user_id: f.ada.clone(),
                    send_link: None,
                    return_code: Some(ReturnCode {}),
                },
            )
            .await,
        ErrorKind::PermissionDenied,
        "Errors.PermissionDenied",
    );
    assert_eq!(err.kind().http_status(), 403);
    assert_error(
        f.service
            .add_passwordless_registration(
                &f.reader_a,
                None,
                AddPasswordlessRegistrationRequest {
                    user_id: f.ada.clone(),
                },
            )
            .await,
        ErrorKind::PermissionDenied,
        "Errors.PermissionDenied",
    );
    assert_eq!(f.store.all_events().await.len(), before);
    assert!(f.notifier.delivered().is_empty());
}

/// A caller without any grant in a user's org gets, on every entry point that names a user,
/// exactly the body a nonexistent user gets.
pub async fn no_existence_oracle_across_orgs<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store).await;
    let before = f.store.all_events().await.len();
    let s = &f.service;
    // Every entry point naming `user`, as `caller` with org context `context`.
    async fn answers<S: EventStore + Clone>(
        f: &Fixture<S>,
        caller: &Caller,
        context: Option<&str>,
        user: &str,
    ) -> Vec<(&'static str, serde_json::Value)> {
        let s = &f.service;
        let body = |result: Result<(), Error>| {
            serde_json::to_value(result.expect_err("must fail").to_body()).unwrap()
        };
        fn ok<T>(result: Result<T, Error>) -> Result<(), Error> {
            result.map(|_| ())
        }
        vec![
            (
                "v1 add",
                body(ok(s
                    .add_passwordless_registration(
                        caller,
                        context,
                        AddPasswordlessRegistrationRequest {
                            user_id: user.into(),
                        },
                    )
                    .await)),
            ),
            (
                "v1 send",
                body(ok(s
                    .send_passwordless_registration(
                        caller,
                        context,
                        SendPasswordlessRegistrationRequest {
                            user_id: user.into(),
                        },
                    )
                    .await)),
            ),
            (
                "v2 link",
                body(ok(s
                    .create_passkey_registration_link(
                        caller,
                        CreatePasskeyRegistrationLinkRequest {
                            user_id: user.into(),
                            send_link: None,
                            return_code: Some(ReturnCode {}),
                        },
                    )
                    .await)),
            ),
            (
                "revoke",
                body(ok(s
                    .revoke_code(
                        caller,
                        context,
                        RevokeCodeRequest {
                            user_id: user.into(),
                            code_id: Some("some-code".into()),
                            ..Default::default()
                        },
                    )
                    .await)),
            ),
            (
                "lifecycle",
                body(ok(s
                    .update_user(caller, context, user, UserChange::Lock)
                    .await)),
            ),
        ]
    }
    let _ = s;
    for (caller, context) in [
        (&f.admin_b, Some(f.org_a.as_str())),
        (&f.admin_b, None),
        (&f.nobody, None),
        (&f.nobody, Some(f.org_a.as_str())),
    ] {
        let existing = answers(&f, caller, context, &f.ada).await;
        let missing = answers(&f, caller, context, &f.ada.replace(|_: char| true, "z")).await;
        for ((entry, got), (_, nonexistent)) in existing.iter().zip(&missing) {
            assert_eq!(
                got["details"][0]["message"],
                json!("Errors.User.NotFound"),
                "{entry}"
            );
            assert_eq!(
                got, nonexistent,
                "{entry}: {caller} with context {context:?}"
            );
        }
    }
    assert_eq!(f.store.all_events().await.len(), before);
    assert!(f.notifier.delivered().is_empty());
}

pub async fn failed_preconditions<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store).await;
    let before = f.store.all_events().await.len();
    assert_error(
        f.service.send_my_passwordless_link(&f.me(&f.bob)).await,
        ErrorKind::FailedPrecondition,
        "Errors.User.Email.NotVerified",
    );
    assert_error(
        f.admin_link(&f.bot).await,
        ErrorKind::FailedPrecondition,
        "Errors.User.NotHuman",
    );
    assert_eq!(f.store.all_events().await.len(), before);
    assert!(f.notifier.delivered().is_empty());
}

pub async fn invalid_arguments_append_nothing<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store).await;
    let before = f.store.all_events().await.len();
    assert_error(
        f.service
            .add_passwordless_registration(
                &f.admin_a,
                None,
                AddPasswordlessRegistrationRequest {
                    user_id: String::new(),
                },
            )
            .await,
        ErrorKind::InvalidArgument,
        "Errors.IDMissing",
    );
    for template in [
        "https://app.example.com/{{.Nope}}",
        "https://evil.example/{{.Code}}",
        "javascript:alert({{.Code}})",
    ] {
        assert_error(
            f.service
                .create_passkey_registration_link(
                    &f.admin_a,
                    CreatePasskeyRegistrationLinkRequest {
                        user_id: f.ada.clone(),
                        send_link: Some(SendLink {
                            url_template: Some(template.into()),
                        }),
                        return_code: None,
                    },
                )
                .await,
            ErrorKind::InvalidArgument,
            "Errors.User.InvalidURLTemplate",
        );
    }
    assert_eq!(f.store.all_events().await.len(), before);
    assert!(f.notifier.delivered().is_empty());
    // A wrong code is InvalidArgument and is recorded with its reason.
    let added = f
        .service
        .add_my_passwordless_link(&f.me(&f.ada))
        .await
        .unwrap();
    let (user, _, code_id, _) = link_params(&added.link);
    assert_error(
        f.service
            .check_code(check_request(&user, &code_id, "wrong"))
            .await,
        ErrorKind::InvalidArgument,
        "Errors.User.Code.Invalid",
    );
    let events = f.store.all_events().await;
    let last = events.last().unwrap();
    assert_eq!(
        last.event_type,
        "user.human.passwordless.initialization.code.check.failed"
    );
    assert_eq!(last.payload, json!({"reason": "wrong_secret"}));
}

pub async fn rate_limit_is_resource_exhausted<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store).await;
    let me = f.me(&f.ada);
    for _ in 0..5 {
        f.service.add_my_passwordless_link(&me).await.unwrap();
    }
    let before = f.store.all_events().await.len();
    let err = assert_error(
        f.service.send_my_passwordless_link(&me).await,
        ErrorKind::ResourceExhausted,
        "Errors.User.Code.TooManyRequests",
    );
    assert_eq!(err.kind().http_status(), 429);
    assert_eq!(f.store.all_events().await.len(), before);
    assert!(f.notifier.delivered().is_empty());
    f.clock.advance(Duration::hours(1));
    f.service.add_my_passwordless_link(&me).await.unwrap();
}

pub async fn a_failing_notifier_is_unavailable_and_the_code_never_works<
    S: EventStore + Clone + Inspect,
>(
    store: S,
) {
    let f = Fixture::new(store).await;
    f.notifier.set_failing(true);
    let err = assert_error(
        f.service.send_my_passwordless_link(&f.me(&f.ada)).await,
        ErrorKind::Unavailable,
        "Errors.Notification.Failed",
    );
    assert_eq!(err.kind().http_status(), 503);
    let events = f.store.all_events().await;
    let tail: Vec<&str> = types(&events).into_iter().rev().take(2).collect();
    assert_eq!(
        tail,
        [
            "user.human.passwordless.initialization.code.delivery.failed",
            "user.human.passwordless.initialization.code.requested",
        ]
    );
    let failed = events.last().unwrap();
    assert_eq!(failed.payload, json!({"reason": "unavailable"}));
    assert!(!events.iter().any(|e| e.event_type.ends_with("code.sent")));
}

pub async fn unauthenticated_self_service<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store).await;
    let err = assert_error(
        f.service.add_my_passwordless_link(&Caller::System).await,
        ErrorKind::Unauthenticated,
        "Errors.Token.Invalid",
    );
    assert_eq!(err.kind().grpc_code(), 16);
}

pub async fn details_follow_the_last_event<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store).await;
    let added = f
        .service
        .add_my_passwordless_link(&f.me(&f.ada))
        .await
        .unwrap();
    let created = added.details.creation_date;
    f.clock.advance(Duration::milliseconds(1500));
    let (user, _, code_id, _) = link_params(&added.link);
    let consumed = f
        .service
        .revoke_code(
            &f.me(&f.ada),
            None,
            RevokeCodeRequest {
                user_id: user,
                code_id: Some(code_id),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(consumed.details.creation_date, created);
    assert_eq!(
        consumed.details.change_date,
        created + Duration::milliseconds(1500)
    );
    let json: Value = serde_json::to_value(&consumed).unwrap();
    assert_eq!(json["details"]["sequence"], json!("2"));
    assert_eq!(
        json["details"]["creationDate"],
        json!("2026-03-01T09:00:00Z")
    );
    assert_eq!(
        json["details"]["changeDate"],
        json!("2026-03-01T09:00:01.500Z")
    );
}

// ---- concurrency -----------------------------------------------------------------------

pub async fn parallel_wrong_guesses_record_exactly_the_cap<S>(store: S)
where
    S: EventStore + Clone + Inspect + 'static,
{
    let f = std::sync::Arc::new(Fixture::new(store).await);
    let added = f
        .service
        .add_my_passwordless_link(&f.me(&f.ada))
        .await
        .unwrap();
    let (user, _, code_id, code) = link_params(&added.link);
    let mut tasks = Vec::new();
    for guess in 0..50 {
        let f = f.clone();
        let (user, code_id) = (user.clone(), code_id.clone());
        tasks.push(tokio::spawn(async move {
            f.service
                .check_code(check_request(&user, &code_id, &format!("guess-{guess}")))
                .await
        }));
    }
    for task in tasks {
        let err = task.await.unwrap().expect_err("a wrong guess succeeded");
        assert!(
            matches!(err.kind(), ErrorKind::InvalidArgument | ErrorKind::Aborted),
            "{err:?}"
        );
    }
    let events = f.store.all_events().await;
    let failures = events
        .iter()
        .filter(|e| e.stream.id() == code_id && e.event_type.ends_with("check.failed"))
        .count();
    assert_eq!(failures, 3, "exactly the cap is recorded");
    assert_error(
        f.service
            .check_code(check_request(&user, &code_id, &code))
            .await,
        ErrorKind::InvalidArgument,
        "Errors.User.Code.Invalid",
    );
}

/// Contenders racing one code, each with its own ceremony and a valid response (two tabs on
/// one link): exactly one passkey is registered.
pub async fn parallel_verifications_have_exactly_one_winner<S>(store: S)
where
    S: EventStore + Clone + Inspect + 'static,
{
    let f = std::sync::Arc::new(Fixture::new(store).await);
    for contenders in [2usize, 4, 8] {
        f.clock.advance(Duration::hours(1)); // stay under the rate limit
        let added = f
            .service
            .add_my_passwordless_link(&f.me(&f.ada))
            .await
            .unwrap();
        let (user, _, code_id, code) = link_params(&added.link);
        let mut requests = Vec::new();
        for _ in 0..contenders {
            let started = f
                .service
                .register_passkey(register_request(&user, &code_id, &code))
                .await
                .unwrap();
            let response =
                Authenticator::new().create(&started.public_key_credential_creation_options);
            requests.push(verify_request(&user, &started, &response));
        }
        let mut tasks = Vec::new();
        for request in requests {
            let f = f.clone();
            tasks.push(tokio::spawn(async move {
                f.service.verify_passkey_registration(request).await
            }));
        }
        let mut winners = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => winners += 1,
                Err(err) => assert!(
                    matches!(
                        err.kind(),
                        ErrorKind::InvalidArgument | ErrorKind::Aborted | ErrorKind::NotFound
                    ),
                    "{err:?}"
                ),
            }
        }
        assert_eq!(winners, 1, "{contenders} contenders");
        let events = f.store.all_events().await;
        let passkeys = events
            .iter()
            .filter(|e| {
                e.event_type == "user.human.passwordless.token.verified"
                    && e.payload["codeId"] == json!(code_id)
            })
            .count();
        assert_eq!(passkeys, 1, "{contenders} contenders, one passkey");
    }
}

pub async fn parallel_issuance_keeps_one_live_link_and_the_rate_limit<S>(store: S)
where
    S: EventStore + Clone + Inspect + 'static,
{
    let f = std::sync::Arc::new(Fixture::new(store).await);
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            f.service.add_my_passwordless_link(&f.me(&f.ada)).await
        }));
    }
    let mut links = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(response) => links.push(response.link),
            Err(err) => assert!(
                matches!(
                    err.kind(),
                    ErrorKind::ResourceExhausted | ErrorKind::Aborted
                ),
                "{err:?}"
            ),
        }
    }
    assert!(
        !links.is_empty() && links.len() <= 5,
        "{} issued",
        links.len()
    );
    let mut live = 0;
    for link in &links {
        let (user, _, code_id, code) = link_params(link);
        if f.service
            .check_code(check_request(&user, &code_id, &code))
            .await
            .is_ok()
        {
            live += 1;
        }
    }
    assert_eq!(live, 1, "exactly one live link");
}

// ---- security rules of SPEC §3 ----------------------------------------------------------

/// Lock→unlock, deactivate→reactivate (user and org) kill every earlier link for good.
pub async fn lifecycle_stops_kill_links_for_good<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store).await;
    let sys = Caller::System;
    let stops: [(&str, UserChange, UserChange); 2] = [
        ("lock", UserChange::Lock, UserChange::Unlock),
        ("deactivate", UserChange::Deactivate, UserChange::Reactivate),
    ];
    for (name, stop, resume) in stops {
        f.clock.advance(Duration::hours(1)); // stay under the rate limit
        let added = f
            .service
            .add_my_passwordless_link(&f.me(&f.ada))
            .await
            .unwrap();
        let (user, _, code_id, code) = link_params(&added.link);
        f.service
            .update_user(&sys, None, &f.ada, stop)
            .await
            .unwrap();
        f.service
            .update_user(&sys, None, &f.ada, resume)
            .await
            .unwrap();
        assert_error(
            f.service
                .check_code(check_request(&user, &code_id, &code))
                .await,
            ErrorKind::InvalidArgument,
            "Errors.User.Code.Invalid",
        );
        let events = f.store.all_events().await;
        let last = events
            .iter()
            .rev()
            .find(|e| e.stream.id() == code_id)
            .unwrap();
        assert_eq!(last.payload, json!({"reason": "user_stopped"}), "{name}");
        // A link issued afterwards works.
        let fresh = f
            .service
            .add_my_passwordless_link(&f.me(&f.ada))
            .await
            .unwrap();
        let (user, _, code_id, code) = link_params(&fresh.link);
        f.service
            .check_code(check_request(&user, &code_id, &code))
            .await
            .unwrap();
    }
    let added = f
        .service
        .add_my_passwordless_link(&f.me(&f.carol))
        .await
        .unwrap();
    let (user, _, code_id, code) = link_params(&added.link);
    f.service
        .update_org(&sys, &f.org_b, OrgChange::Deactivate)
        .await
        .unwrap();
    f.service
        .update_org(&sys, &f.org_b, OrgChange::Reactivate)
        .await
        .unwrap();
    assert_error(
        f.service
            .check_code(check_request(&user, &code_id, &code))
            .await,
        ErrorKind::InvalidArgument,
        "Errors.User.Code.Invalid",
    );
}

/// A resend whose mail fails leaves the earlier, working link alive; a resend that is sent
/// supersedes it.
pub async fn a_failed_resend_keeps_the_working_link<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store).await;
    let me = f.me(&f.ada);
    f.service.send_my_passwordless_link(&me).await.unwrap();
    let first = f.notifier.last_link(&UserId::new(&f.ada).unwrap()).unwrap();
    let (user, _, code_id, code) = link_params(first.expose());
    f.notifier.set_failing(true);
    assert_error(
        f.service.send_my_passwordless_link(&me).await,
        ErrorKind::Unavailable,
        "Errors.Notification.Failed",
    );
    f.service
        .check_code(check_request(&user, &code_id, &code))
        .await
        .unwrap();
    f.notifier.set_failing(false);
    f.service.send_my_passwordless_link(&me).await.unwrap();
    assert_error(
        f.service
            .check_code(check_request(&user, &code_id, &code))
            .await,
        ErrorKind::InvalidArgument,
        "Errors.User.Code.Invalid",
    );
    let latest = f.notifier.last_link(&UserId::new(&f.ada).unwrap()).unwrap();
    let (user, _, code_id, code) = link_params(latest.expose());
    f.service
        .check_code(check_request(&user, &code_id, &code))
        .await
        .unwrap();
}

/// The code id is confidential: the notifier gets a derived id as idempotency key and message
/// reference, never the code id itself (it appears only inside the link).
pub async fn third_parties_get_a_derived_id_never_the_code_id<S: EventStore + Clone + Inspect>(
    store: S,
) {
    let f = Fixture::new(store).await;
    f.service
        .send_my_passwordless_link(&f.me(&f.ada))
        .await
        .unwrap();
    let envelope = f.notifier.delivered().last().unwrap().clone();
    let Message::RegistrationLink { link, code, .. } = &envelope.message else {
        panic!("a link message");
    };
    let (user, _, code_id, secret) = link_params(link.expose());
    assert!(!envelope.idempotency_key.contains(&code_id), "{envelope:?}");
    assert_eq!(code, &CodeId::new(&code_id).unwrap().reference());
    assert!(!format!("{envelope:?}").contains(&code_id), "{envelope:?}");
    f.enroll(&user, &code_id, &secret).await.unwrap();
    let notice = f.notifier.delivered().last().unwrap().clone();
    assert!(matches!(notice.message, Message::PasskeyAdded { .. }));
    assert!(!format!("{notice:?}").contains(&code_id), "{notice:?}");
}

/// A code id the random source repeats is AlreadyExists, decided on the code stream the issuing
/// decision declares (not an endless conflict).
pub async fn a_colliding_code_id_is_already_exists<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store.clone()).await;
    let service = PasskeyLinks::new(
        store,
        RecordingNotifier::new(),
        StaticGrants::new(),
        config().with_policy(Policy::default().with_rate_limit(None)),
    )
    .with_random(Repeating);
    service
        .add_my_passwordless_link(&f.me(&f.ada))
        .await
        .unwrap();
    let before = f.store.all_events().await.len();
    let err = assert_error(
        service.add_my_passwordless_link(&f.me(&f.ada)).await,
        ErrorKind::AlreadyExists,
        "Errors.User.Code.AlreadyExists",
    );
    assert_eq!(
        err.domain_error(),
        Some(&passkey_links::domain::DomainError::CodeAlreadyExists)
    );
    assert_eq!(f.store.all_events().await.len(), before, "nothing appended");
}

/// Random bytes that are always the same: every fresh id collides with the last.
pub struct Repeating;

impl RandomSource for Repeating {
    fn fill_bytes(&self, dest: &mut [u8]) {
        dest.fill(7);
    }
}

/// The rate limit's scope is per caller kind: by default the system (a seeding job) is not
/// limited, users are; both can be changed.
pub async fn rate_limit_scope_is_per_caller_kind<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store.clone()).await;
    let sys = Caller::System;
    let add = |user: &str| AddPasswordlessRegistrationRequest {
        user_id: user.into(),
    };
    for _ in 0..8 {
        f.service
            .add_passwordless_registration(&sys, None, add(&f.ada))
            .await
            .unwrap();
    }
    assert_error(
        f.service.add_my_passwordless_link(&f.me(&f.ada)).await,
        ErrorKind::ResourceExhausted,
        "Errors.User.Code.TooManyRequests",
    );
    let strict = PasskeyLinks::new(
        store,
        RecordingNotifier::new(),
        StaticGrants::new(),
        config().with_policy(Policy::default().with_rate_limit_scope(RateLimitScope {
            users: true,
            system: true,
        })),
    )
    .with_clock(f.clock.clone());
    for _ in 0..5 {
        strict
            .add_passwordless_registration(&sys, None, add(&f.carol))
            .await
            .unwrap();
    }
    assert_error(
        strict
            .add_passwordless_registration(&sys, None, add(&f.carol))
            .await,
        ErrorKind::ResourceExhausted,
        "Errors.User.Code.TooManyRequests",
    );
}

/// A node whose clock runs two hours fast cannot stretch a link's life on a correct node, and
/// event times never go backwards within a stream.
pub async fn clock_skew_cannot_stretch_a_lifetime<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store.clone()).await;
    let fast_clock = ManualClock::new(f.clock.now() + Duration::hours(2));
    let fast = PasskeyLinks::new(
        store,
        RecordingNotifier::new(),
        StaticGrants::new(),
        config(),
    )
    .with_clock(fast_clock);
    let added = fast.add_my_passwordless_link(&f.me(&f.ada)).await.unwrap();
    let (user, _, code_id, code) = link_params(&added.link);
    // The correct node, 30 minutes later: the code claims to be issued 1.5 h from now.
    f.clock.advance(Duration::minutes(30));
    assert_error(
        f.service
            .check_code(check_request(&user, &code_id, &code))
            .await,
        ErrorKind::InvalidArgument,
        "Errors.User.Code.Invalid",
    );
    let events = f.store.all_events().await;
    let last = events
        .iter()
        .rev()
        .find(|e| e.stream.id() == code_id)
        .unwrap();
    assert_eq!(last.payload, json!({"reason": "issued_in_future"}));
    // The check.failed event written by the correct node is not stamped before the code's
    // first event: stream time never goes backwards.
    let times: Vec<_> = events
        .iter()
        .filter(|e| e.stream.id() == code_id)
        .map(|e| e.recorded_at)
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

// ---- idempotency keys ----------------------------------------------------------------------

fn key(name: &str) -> IdempotencyKey {
    IdempotencyKey::new(name).unwrap()
}

fn add_request(user: &str) -> AddPasswordlessRegistrationRequest {
    AddPasswordlessRegistrationRequest {
        user_id: user.to_owned(),
    }
}

/// A retry with the key of a run that succeeded (its answer lost on the way) answers as that
/// run did and appends nothing: the same link, the same refusal for a wrong code (one failed
/// attempt, not two), the same ceremony, success for a verified passkey, the same details for a
/// lifecycle change, one email for a send. The key on another command is refused; a process
/// that never saw the key cannot show a link again and says so instead of issuing a second one.
/// A process whose cache holds a user decides without reading; another process changes the
/// user (or the org) meanwhile: the first process's append finds the events it saw no longer
/// last, decides again on what is stored, and refuses exactly as a fresh process would.
pub async fn a_warm_decision_never_outlives_another_process_change<
    S: EventStore + Clone + Inspect,
>(
    store: S,
) {
    let f = Fixture::new(store).await;
    let me = f.me(&f.ada);
    // Warm: ada and her org are cached with their last events.
    f.service.add_my_passwordless_link(&me).await.unwrap();
    f.clock.advance(Duration::minutes(1));
    let other = PasskeyLinks::new(
        f.store.clone(),
        RecordingNotifier::new(),
        StaticGrants::new(),
        config(),
    )
    .with_clock(f.clock.clone());
    other
        .update_user(&Caller::System, None, &f.ada, UserChange::Lock)
        .await
        .unwrap();
    let before = f.store.all_events().await.len();
    let err = f.service.add_my_passwordless_link(&me).await.unwrap_err();
    assert_eq!(err.message_key(), "Errors.User.Locked", "{err:?}");
    assert_eq!(f.store.all_events().await.len(), before, "nothing appended");
    other
        .update_user(&Caller::System, None, &f.ada, UserChange::Unlock)
        .await
        .unwrap();
    f.service.add_my_passwordless_link(&me).await.unwrap();
    // A read-only stream too: the org deactivated elsewhere.
    other
        .update_org(&Caller::System, &f.org_a, OrgChange::Deactivate)
        .await
        .unwrap();
    let before = f.store.all_events().await.len();
    let err = f.service.add_my_passwordless_link(&me).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err:?}");
    assert_eq!(f.store.all_events().await.len(), before, "nothing appended");
}

/// The ceremony decides on what the process knows — the code its check read, the user its
/// start wrote — without reading again; a change another writer made meanwhile still wins:
/// a code revoked between the check and the start starts no ceremony, and a code revoked
/// between the start and the verification registers no passkey.
pub async fn a_warm_ceremony_never_outlives_another_process_change<
    S: EventStore + Clone + Inspect,
>(
    store: S,
) {
    let f = Fixture::new(store).await;
    let other = PasskeyLinks::new(
        f.store.clone(),
        RecordingNotifier::new(),
        StaticGrants::new(),
        config(),
    )
    .with_clock(f.clock.clone());
    let revoke = |user: String, code_id: String| {
        let other = &other;
        async move {
            other
                .revoke_code(
                    &Caller::System,
                    None,
                    RevokeCodeRequest {
                        user_id: user,
                        code_id: Some(code_id),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
        }
    };
    let of_type = |events: &[RecordedEvent], event_type: &str| {
        events.iter().filter(|e| e.event_type == event_type).count()
    };
    const STARTED: &str = "user.human.passwordless.token.added";
    const REGISTERED: &str = "user.human.passwordless.token.verified";

    // Revoked between the check (whose read this process keeps) and the start: the relying
    // party's start runs in between, and another writer revokes the code there.
    let (user, _, code_id, code) = link_params(&f.admin_link(&f.ada).await.unwrap().link);
    let revoking = PasskeyLinks::new(
        f.store.clone(),
        RecordingNotifier::new(),
        StaticGrants::new(),
        config(),
    )
    .with_clock(f.clock.clone())
    .with_relying_party(RevokesOnStart {
        store: f.store.clone(),
        code: passkey_links::ids::StreamId::code(&CodeId::new(code_id.clone()).unwrap()),
    });
    let before = of_type(&f.store.all_events().await, STARTED);
    let err = revoking
        .register_passkey(register_request(&user, &code_id, &code))
        .await
        .unwrap_err();
    assert_eq!(err.message_key(), "Errors.User.Code.Invalid", "{err:?}");
    let events = f.store.all_events().await;
    assert_eq!(
        of_type(
            &events,
            "user.human.passwordless.initialization.code.revoked"
        ),
        1
    );
    assert_eq!(of_type(&events, STARTED), before, "no ceremony started");

    // Revoked between the start and the verification.
    let (user, _, code_id, code) = link_params(&f.admin_link(&f.ada).await.unwrap().link);
    let started = f
        .service
        .register_passkey(register_request(&user, &code_id, &code))
        .await
        .unwrap();
    let response = Authenticator::new().create(&started.public_key_credential_creation_options);
    revoke(user.clone(), code_id.clone()).await;
    let err = f
        .service
        .verify_passkey_registration(verify_request(&user, &started, &response))
        .await
        .unwrap_err();
    assert_eq!(err.message_key(), "Errors.User.Code.Invalid", "{err:?}");
    assert_eq!(
        of_type(&f.store.all_events().await, REGISTERED),
        0,
        "no passkey registered"
    );

    // Unchanged elsewhere: the same path registers.
    let (user, _, code_id, code) = link_params(&f.admin_link(&f.ada).await.unwrap().link);
    f.enroll(&user, &code_id, &code).await.unwrap();
    assert_eq!(of_type(&f.store.all_events().await, REGISTERED), 1);
}

/// Nothing stored finishes a ceremony: a reader of the events (or of a backup) learns the
/// ceremony's passkey id and challenge and answers them with an authenticator of their own —
/// without the ceremony secret only the registering browser holds, that registers nothing,
/// records nothing and leaves the ceremony open; the browser then finishes it.
pub async fn nothing_stored_finishes_a_ceremony<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store).await;
    let (user, _, code_id, code) = link_params(&f.admin_link(&f.ada).await.unwrap().link);
    let started = f
        .service
        .register_passkey(register_request(&user, &code_id, &code))
        .await
        .unwrap();
    // What a reader of the store has: the ceremony as recorded — never its secret.
    let events = f.store.all_events().await;
    let recorded = events
        .iter()
        .find(|e| e.event_type == "user.human.passwordless.token.added")
        .unwrap();
    assert_eq!(recorded.payload["passkeyId"], json!(started.passkey_id));
    let stored =
        serde_json::to_string(&events.iter().map(|e| &e.payload).collect::<Vec<_>>()).unwrap();
    assert_clean(
        "stored events",
        &stored,
        std::slice::from_ref(&started.ceremony_secret),
    );
    // The reader answers the recorded challenge with their own authenticator.
    let forged = Authenticator::new().create(&started.public_key_credential_creation_options);
    let digest = recorded.payload["secretDigest"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = events.len();
    let attempt = |secret: Option<&str>| {
        let mut request = verify_request(&user, &started, &forged);
        request.ceremony_secret = secret.map(Secret::presented);
        f.service.verify_passkey_registration(request)
    };
    let err = attempt(None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err:?}");
    for guess in [digest.as_str(), "", "not-the-secret"] {
        let err = attempt(Some(guess)).await.unwrap_err();
        assert_eq!(
            err.message_key(),
            "Errors.User.Passkey.NotFound",
            "{guess}: {err:?}"
        );
    }
    assert_eq!(f.store.all_events().await.len(), before, "nothing recorded");
    // The browser that started it finishes it.
    let response = Authenticator::new().create(&started.public_key_credential_creation_options);
    f.service
        .verify_passkey_registration(verify_request(&user, &started, &response))
        .await
        .unwrap();
    let passkeys = f
        .service
        .list_passkeys(&f.me(&f.ada), None, ListPasskeysRequest { user_id: user })
        .await
        .unwrap();
    assert_eq!(passkeys.result.len(), 1);
}

/// Names are shown to people (passkey lists, security notices): one that could be spoofed is
/// refused with nothing recorded — the ceremony stays open — and one in another Unicode
/// spelling is stored in NFC.
pub async fn passkey_names_cannot_be_spoofed<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store).await;
    let (user, _, code_id, code) = link_params(&f.admin_link(&f.ada).await.unwrap().link);
    let started = f
        .service
        .register_passkey(register_request(&user, &code_id, &code))
        .await
        .unwrap();
    let response = Authenticator::new().create(&started.public_key_credential_creation_options);
    let named = |name: &str| {
        let mut request = verify_request(&user, &started, &response);
        request.passkey_name = name.to_owned();
        request
    };
    let before = f.store.all_events().await.len();
    for spoof in ["Key\u{202E}1", "Ke\u{200B}y", " Key", "Key\u{FEFF}"] {
        let err = f
            .service
            .verify_passkey_registration(named(spoof))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{spoof:?}: {err:?}");
    }
    assert_eq!(f.store.all_events().await.len(), before, "nothing recorded");
    f.service
        .verify_passkey_registration(named("Cle\u{301}"))
        .await
        .unwrap();
    let passkeys = f
        .service
        .list_passkeys(&f.me(&f.ada), None, ListPasskeysRequest { user_id: user })
        .await
        .unwrap();
    assert_eq!(passkeys.result[0].name, "Cl\u{e9}", "stored in NFC");
}

/// A fresh link from a dead one: only a link that died of age, presented with its secret,
/// has a new link mailed — to the address on file, as the user's own send, under the rate
/// limit — and every request gets the same empty answer, mailed or not.
pub async fn a_dead_link_can_be_traded_for_a_fresh_one<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store).await;
    let ada = UserId::new(&f.ada).unwrap();
    let renew = |link: &str, secret: Option<&str>| {
        let (user, _, code_id, code) = link_params(link);
        let request: RequestFreshLinkRequest = serde_json::from_value(json!({
            "userId": user, "codeId": code_id, "code": secret.unwrap_or(&code),
        }))
        .unwrap();
        f.service.request_fresh_link(request)
    };
    let mails = || f.notifier.delivered().len();
    let expired = f.admin_link(&f.ada).await.unwrap().link;

    // Live: used, not renewed. Wrong secret, unknown code: nothing. The same answer each time.
    for (link, secret) in [
        (expired.as_str(), None),
        (expired.as_str(), Some("not-the-secret-0000000000")),
    ] {
        let answer = renew(link, secret).await.unwrap();
        assert_eq!(serde_json::to_value(&answer).unwrap(), json!({}));
    }
    let unknown = expired.replace(&link_params(&expired).2, "no-such-code");
    renew(&unknown, None).await.unwrap();
    assert_eq!(mails(), 0);

    // Expired: a new link goes to the address on file and works.
    f.clock.advance(Duration::hours(2));
    let before = f.store.all_events().await.len();
    let answer = renew(&expired, None).await.unwrap();
    assert_eq!(serde_json::to_value(&answer).unwrap(), json!({}));
    assert_eq!(mails(), 1);
    let mail = &f.notifier.delivered()[0];
    let Message::RegistrationLink { recipient, .. } = &mail.message else {
        panic!("{mail:?}");
    };
    assert_eq!(recipient.as_str(), "ada@example.com");
    let fresh = f.notifier.last_link(&ada).unwrap();
    let (user, _, code_id, code) = link_params(fresh.expose());
    f.service
        .check_code(check_request(&user, &code_id, &code))
        .await
        .unwrap();
    assert!(f.store.all_events().await.len() > before);

    // Superseded (by the fresh link): renewable too — as often as the rate limit allows.
    let limit = f
        .service
        .config()
        .policy()
        .rate_limit()
        .map_or(5, |l| l.max());
    for _ in 0..limit + 3 {
        renew(&expired, None).await.unwrap();
    }
    assert!(
        mails() <= limit as usize,
        "{} mails, limit {limit}",
        mails()
    );

    // Killed by a revocation or a lock: never renewed.
    f.clock.advance(Duration::hours(2));
    let carol = f
        .service
        .add_passwordless_registration(
            &f.admin_b,
            None,
            AddPasswordlessRegistrationRequest {
                user_id: f.carol.clone(),
            },
        )
        .await
        .unwrap()
        .link;
    f.service
        .update_user(&f.admin_b, None, &f.carol, UserChange::Lock)
        .await
        .unwrap();
    f.service
        .update_user(&f.admin_b, None, &f.carol, UserChange::Unlock)
        .await
        .unwrap();
    let before = mails();
    f.clock.advance(Duration::hours(2));
    renew(&carol, None).await.unwrap();
    assert_eq!(mails(), before, "a link killed by a lock is never renewed");
    // Malformed input is the only error.
    let malformed = renew(&expired.replace(&link_params(&expired).0, "a b"), None).await;
    assert_eq!(malformed.unwrap_err().kind(), ErrorKind::InvalidArgument);
}

/// A directory sync: ensure every org and user as the directory has them. A second run of an
/// unchanged directory appends nothing; drift appends exactly the change events, and an email
/// change or a lock kills earlier links as the lifecycle rules say; the library's users read
/// back as the directory has them; the mail carries the user's name, language and org name.
pub async fn a_directory_sync_appends_only_what_differs<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store).await;
    let sys = Caller::System;
    let count = || async { f.store.all_events().await.len() };
    let org = EnsureOrgRequest {
        org_id: "directory-org".into(),
        name: "Directory Org".into(),
        ..Default::default()
    };
    let people: Vec<EnsureHumanUserRequest> = (0..25)
        .map(|n| EnsureHumanUserRequest {
            user_id: format!("dir-user-{n}"),
            user_name: format!("user{n}"),
            display_name: format!("User {n}"),
            email: format!("user{n}@example.com"),
            is_email_verified: true,
            preferred_language: Some(if n % 2 == 0 { "de" } else { "en" }.into()),
            ..Default::default()
        })
        .collect();
    let bot = EnsureMachineUserRequest {
        user_id: "dir-bot".into(),
        user_name: "bot".into(),
        name: "Build bot".into(),
        ..Default::default()
    };
    let sync = |people: Vec<EnsureHumanUserRequest>, org: EnsureOrgRequest| {
        let (f, bot) = (&f, bot.clone());
        async move {
            let sys = Caller::System;
            let mut changed = usize::from(f.service.ensure_org(&sys, org).await.unwrap().changed);
            for person in people {
                let ensured = f
                    .service
                    .ensure_human_user(&sys, Some("directory-org"), person)
                    .await
                    .unwrap();
                changed += usize::from(ensured.changed);
            }
            let ensured = f
                .service
                .ensure_machine_user(&sys, Some("directory-org"), bot)
                .await
                .unwrap();
            changed + usize::from(ensured.changed)
        }
    };
    assert_eq!(
        sync(people.clone(), org.clone()).await,
        27,
        "everything created"
    );
    let after_first = count().await;
    assert_eq!(sync(people.clone(), org.clone()).await, 0);
    assert_eq!(count().await, after_first, "a second sync appends nothing");

    // Read back as the directory has them.
    let read = f
        .service
        .get_user(
            &sys,
            None,
            GetUserRequest {
                user_id: "dir-user-2".into(),
            },
        )
        .await
        .unwrap();
    let shown = serde_json::to_value(&read.user).unwrap();
    assert_eq!(
        shown,
        json!({
            // Initial until its first passkey, as in ZITADEL.
            "userId": "dir-user-2", "state": "USER_STATE_INITIAL", "username": "user2",
            "organizationId": "directory-org",
            "human": {
                "profile": {"displayName": "User 2", "preferredLanguage": "de"},
                "email": {"email": "user2@example.com", "isVerified": true}
            }
        })
    );
    let org_read = f
        .service
        .get_org(
            &sys,
            GetOrgRequest {
                org_id: "directory-org".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (org_read.org.name.as_str(), org_read.org.state.as_str()),
        ("Directory Org", "ORG_STATE_ACTIVE")
    );
    // The no-oracle rule: another org's admin learns nothing.
    let err = f
        .service
        .get_user(
            &f.admin_b,
            None,
            GetUserRequest {
                user_id: "dir-user-2".into(),
            },
        )
        .await
        .unwrap_err();
    let ghost = f
        .service
        .get_user(
            &f.admin_b,
            None,
            GetUserRequest {
                user_id: "nobody-here".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.to_body(), ghost.to_body());

    // Links, mailed with the user's name, language and org name.
    let send = |user: &str| {
        f.service.send_passwordless_registration(
            &sys,
            None,
            SendPasswordlessRegistrationRequest {
                user_id: user.to_owned(),
            },
        )
    };
    send("dir-user-0").await.unwrap();
    send("dir-user-1").await.unwrap();
    send("dir-user-3").await.unwrap();
    let mail = f.notifier.delivered().last().unwrap().clone();
    let addressee = mail.message.addressee();
    assert_eq!(
        (
            addressee.display_name.as_str(),
            addressee.preferred_language.as_deref(),
            addressee.org_name.as_str()
        ),
        ("User 3", Some("en"), "Directory Org")
    );
    let link_of = |user: &str| {
        let link = f.notifier.last_link(&UserId::new(user).unwrap()).unwrap();
        let (user, _, code_id, code) = link_params(link.expose());
        check_request(&user, &code_id, &code)
    };

    // Drift: user 0 moved address, user 1 got locked, user 3 renamed; the org renamed.
    let mut drifted = people.clone();
    drifted[0].email = "user0@new.example.com".into();
    drifted[1].state = DirectoryState::Locked;
    drifted[3].display_name = "User Three".into();
    let renamed = EnsureOrgRequest {
        name: "Directory Org GmbH".into(),
        ..org.clone()
    };
    let before = f.store.all_events().await;
    assert_eq!(sync(drifted.clone(), renamed.clone()).await, 4);
    let appended: Vec<(String, String)> = f.store.all_events().await[before.len()..]
        .iter()
        .map(|e| (e.stream.id().to_owned(), e.event_type.clone()))
        .collect();
    let expected: Vec<(String, String)> = [
        ("directory-org", "org.changed"),
        ("dir-user-0", "user.human.email.changed"),
        ("dir-user-0", "user.human.email.verified"),
        ("dir-user-1", "user.locked"),
        ("dir-user-3", "user.profile.changed"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(appended, expected);
    // The email change and the lock killed those links; the rename did not.
    assert!(f.service.check_code(link_of("dir-user-0")).await.is_err());
    assert!(f.service.check_code(link_of("dir-user-1")).await.is_err());
    f.service.check_code(link_of("dir-user-3")).await.unwrap();
    assert_eq!(sync(drifted, renamed).await, 0, "in step again");
}

pub async fn idempotent_retries_answer_as_the_first_run<S: EventStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store.clone()).await;
    let me = f.me(&f.ada);
    let count = || async { f.store.all_events().await.len() };

    // Issuance: the same link.
    let first = key("issue-1")
        .scope(f.service.add_my_passwordless_link(&me))
        .await
        .unwrap();
    let before = count().await;
    let again = key("issue-1")
        .scope(f.service.add_my_passwordless_link(&me))
        .await
        .unwrap();
    assert_eq!(again.link, first.link, "the same link");
    assert_eq!(again.details, first.details);
    assert_eq!(count().await, before, "nothing appended by the retry");
    let (user, _, code_id, code) = link_params(&first.link);

    // A wrong code: the same refusal, one recorded failure.
    let wrong = || check_request(&user, &code_id, "not-the-code-0000000000");
    let refused = key("check-1").scope(f.service.check_code(wrong())).await;
    let before = count().await;
    let refused_again = key("check-1").scope(f.service.check_code(wrong())).await;
    assert_eq!(
        refused.unwrap_err().message_key(),
        refused_again.unwrap_err().message_key()
    );
    assert_eq!(count().await, before, "one failed attempt, not two");

    // RegisterPasskey: the same ceremony.
    let started = key("register-1")
        .scope(
            f.service
                .register_passkey(register_request(&user, &code_id, &code)),
        )
        .await
        .unwrap();
    let before = count().await;
    let started_again = key("register-1")
        .scope(
            f.service
                .register_passkey(register_request(&user, &code_id, &code)),
        )
        .await
        .unwrap();
    assert_eq!(started_again.passkey_id, started.passkey_id);
    assert_eq!(
        started_again.public_key_credential_creation_options,
        started.public_key_credential_creation_options
    );
    assert_eq!(count().await, before);

    // VerifyPasskeyRegistration: success again, not "no such ceremony".
    let response = Authenticator::new().create(&started.public_key_credential_creation_options);
    let verify = || verify_request(&user, &started, &response);
    let verified = key("verify-1")
        .scope(f.service.verify_passkey_registration(verify()))
        .await
        .unwrap();
    let before = count().await;
    let verified_again = key("verify-1")
        .scope(f.service.verify_passkey_registration(verify()))
        .await
        .unwrap();
    assert_eq!(verified_again.details, verified.details);
    assert_eq!(count().await, before);
    // Without the key the same request is what it is: the ceremony is closed.
    assert_error(
        f.service.verify_passkey_registration(verify()).await,
        ErrorKind::NotFound,
        "Errors.User.Passkey.NotFound",
    );

    // A lifecycle change: the same details, not "already locked".
    let lock = || {
        f.service
            .update_user(&Caller::System, None, &f.bob, UserChange::Lock)
    };
    let locked = key("lock-1").scope(lock()).await.unwrap();
    let locked_again = key("lock-1").scope(lock()).await.unwrap();
    assert_eq!(locked_again.details, locked.details);

    // Send: one email.
    f.clock.advance(Duration::hours(1));
    let mails = f.notifier.delivered().len();
    let sent = key("send-1")
        .scope(f.service.send_my_passwordless_link(&me))
        .await
        .unwrap();
    let sent_again = key("send-1")
        .scope(f.service.send_my_passwordless_link(&me))
        .await
        .unwrap();
    assert_eq!(sent_again.details, sent.details);
    assert_eq!(f.notifier.delivered().len(), mails + 1, "one email");

    // The key of another command.
    let err = key("issue-1")
        .scope(f.service.send_my_passwordless_link(&me))
        .await
        .unwrap_err();
    assert_eq!(err.id(), "PKL-SVC-04");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);

    // Another process cannot show the first run's link again, and issues no second one.
    let other = PasskeyLinks::new(
        store,
        RecordingNotifier::new(),
        StaticGrants::new(),
        config(),
    )
    .with_clock(f.clock.clone());
    let before = count().await;
    let err = key("issue-1")
        .scope(other.add_my_passwordless_link(&me))
        .await
        .unwrap_err();
    assert_eq!(err.id(), "PKL-SVC-05", "{err:?}");
    assert_eq!(count().await, before, "nothing appended");
    // Commands without randomness answer across processes.
    let locked_elsewhere = key("lock-1")
        .scope(other.update_user(&Caller::System, None, &f.bob, UserChange::Lock))
        .await
        .unwrap();
    assert_eq!(locked_elsewhere.details, locked.details);
}

/// An idempotency key is its caller's and its request's: the same caller's key on another
/// user or another body is `PKL-SVC-04` and runs nothing; another caller's identical key runs
/// as that caller's own request and never sees the first answer; with the deployment's keys
/// configured, a retry reaching a second instance (its own cache, the same store) answers as
/// the first run did — the same link, the same send, in synchronous and in outbox mode.
pub async fn idempotency_keys_belong_to_their_caller_and_request<
    S: EventStore + Clone + Inspect,
>(
    store: S,
) {
    let keys = || {
        passkey_links::Keyring::new("deploy-1", passkey_links::DeliveryKey::new([5; 32])).unwrap()
    };
    let f = Fixture::with_config(store.clone(), config().with_keyring(keys())).await;
    let count = || async { f.store.all_events().await.len() };
    let human = |name: &str| AddHumanUserRequest {
        user_name: name.into(),
        display_name: name.into(),
        email: format!("{name}@example.com"),
        is_email_verified: true,
        ..Default::default()
    };

    // The same caller, the same key, another body: refused, nothing runs.
    let grace = key("new-user")
        .scope(f.service.add_human_user(&f.admin_a, None, human("grace")))
        .await
        .unwrap();
    let before = count().await;
    let err = key("new-user")
        .scope(f.service.add_human_user(&f.admin_a, None, human("hedy")))
        .await
        .unwrap_err();
    assert_eq!(
        (err.id(), err.kind()),
        ("PKL-SVC-04", ErrorKind::InvalidArgument)
    );
    assert_eq!(count().await, before, "hedy was not created");
    // The same caller, the same key, another target.
    let link = key("link")
        .scope(
            f.service
                .add_passwordless_registration(&f.admin_a, None, add_request(&f.ada)),
        )
        .await
        .unwrap();
    let err = key("link")
        .scope(f.service.add_passwordless_registration(
            &f.admin_a,
            None,
            add_request(&grace.user_id),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.id(), "PKL-SVC-04");

    // Another org's admin with the identical key: its own request, its own answer.
    let hedy = key("new-user")
        .scope(f.service.add_human_user(&f.admin_b, None, human("hedy")))
        .await
        .unwrap();
    assert_ne!(hedy.user_id, grace.user_id);
    let theirs = key("link")
        .scope(
            f.service
                .add_passwordless_registration(&f.admin_b, None, add_request(&f.carol)),
        )
        .await
        .unwrap();
    let (_, _, my_code_id, my_secret) = link_params(&link.link);
    let (their_user, _, their_code_id, their_secret) = link_params(&theirs.link);
    assert_eq!(their_user, f.carol);
    assert_ne!(their_code_id, my_code_id);
    assert_ne!(their_secret, my_secret);
    assert_clean(
        "another caller's answer",
        &theirs.link,
        &[my_code_id.clone(), my_secret.clone()],
    );
    // The user herself with the same key: another caller too.
    let mine = key("link")
        .scope(f.service.add_my_passwordless_link(&f.me(&f.ada)))
        .await
        .unwrap();
    assert_ne!(link_params(&mine.link).2, my_code_id);

    // A second instance with the deployment's keys answers a retry as the first run did.
    let second_notifier = RecordingNotifier::new();
    let grants = StaticGrants::new().grant(
        &UserId::new("admin-a").unwrap(),
        &OrgId::new(&f.org_a).unwrap(),
        ALL,
    );
    let second = PasskeyLinks::new(
        store.clone(),
        second_notifier.clone(),
        grants.clone(),
        config().with_keyring(keys()),
    )
    .with_clock(f.clock.clone());
    let again = key("link")
        .scope(second.add_passwordless_registration(&f.admin_a, None, add_request(&f.ada)))
        .await
        .unwrap();
    assert_eq!(again.link, link.link, "the same link from another instance");
    assert_eq!(again.details, link.details);
    let send = || SendPasswordlessRegistrationRequest {
        user_id: grace.user_id.clone(),
    };
    let mails = f.notifier.delivered().len();
    let sent = key("send")
        .scope(
            f.service
                .send_passwordless_registration(&f.admin_a, None, send()),
        )
        .await
        .unwrap();
    let before = count().await;
    let sent_again = key("send")
        .scope(second.send_passwordless_registration(&f.admin_a, None, send()))
        .await
        .unwrap();
    assert_eq!(sent_again.details, sent.details);
    assert_eq!(count().await, before, "the retry wrote nothing");
    assert_eq!(f.notifier.delivered().len(), mails + 1);
    assert!(second_notifier.delivered().is_empty(), "no second mail");

    // The same in outbox mode: the retry answers from the recorded request.
    let outbox = |notifier: RecordingNotifier| {
        PasskeyLinks::new(
            store.clone(),
            notifier,
            grants.clone(),
            config().with_outbox(keys()),
        )
        .with_clock(f.clock.clone())
    };
    f.clock.advance(Duration::minutes(5));
    let (first, other) = (
        outbox(RecordingNotifier::new()),
        outbox(RecordingNotifier::new()),
    );
    let queued = key("send-outbox")
        .scope(first.send_passwordless_registration(&f.admin_a, None, send()))
        .await
        .unwrap();
    let before = count().await;
    let queued_again = key("send-outbox")
        .scope(other.send_passwordless_registration(&f.admin_a, None, send()))
        .await
        .unwrap();
    assert_eq!(queued_again.details, queued.details);
    assert_eq!(count().await, before, "one code queued");
}

/// A ceremony finishes in a process that has never seen its user: that process reads the
/// user, its org and the code of the ceremony answered — not of the user's newer ceremony —
/// together (see the round-trip count on PostgreSQL); a ceremony older than the store's
/// follow window finishes all the same, with one more read.
pub async fn a_ceremony_finishes_in_a_process_that_never_saw_the_user<
    S: EventStore + Clone + Inspect,
>(
    store: S,
) {
    let f = Fixture::new(store).await;
    let process = || {
        PasskeyLinks::new(
            f.store.clone(),
            RecordingNotifier::new(),
            StaticGrants::new(),
            // Links issued back to back, each left live.
            config().with_policy(
                Policy::default()
                    .with_rate_limit(None)
                    .with_one_live_link(false),
            ),
        )
        .with_clock(f.clock.clone())
        .with_relying_party(relying_party())
    };
    let issuer = process();
    let link = || async {
        let response = issuer
            .add_passwordless_registration(
                &Caller::System,
                None,
                AddPasswordlessRegistrationRequest {
                    user_id: f.ada.clone(),
                },
            )
            .await
            .unwrap();
        link_params(&response.link)
    };
    let start = |(user, _, code_id, code): (String, String, String, String)| {
        let issuer = &issuer;
        async move {
            let started = issuer
                .register_passkey(register_request(&user, &code_id, &code))
                .await
                .unwrap();
            let response =
                Authenticator::new().create(&started.public_key_credential_creation_options);
            verify_request(&user, &started, &response)
        }
    };
    let first = start(link().await).await;
    let newer = start(link().await).await;
    process()
        .verify_passkey_registration(first)
        .await
        .expect("the first ceremony, with its own code");
    process()
        .verify_passkey_registration(newer)
        .await
        .expect("the newer ceremony: its code was not the one consumed");

    let old = start(link().await).await;
    let window = passkey_links::store::FOLLOW_WINDOW;
    for _ in 0..window {
        link().await;
    }
    process()
        .verify_passkey_registration(old)
        .await
        .expect("a ceremony started more than the follow window's events ago");
    let listed = f
        .service
        .list_passkeys(
            &Caller::System,
            None,
            ListPasskeysRequest {
                user_id: f.ada.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.result.len(), 3);
}

/// Generates one `#[tokio::test]` per scenario for a backend. `$store` is an async fn returning
/// `Option<store>` (`None`: the backend is not available; the test says so and returns).
#[macro_export]
macro_rules! service_scenarios {
    ($store:ident) => {
        $crate::service_scenarios!(@each $store,
            add_passwordless_registration_returns_a_working_link,
            send_passwordless_registration_emails_a_working_link,
            self_service_add_and_send,
            v2_return_code_and_send_link_with_template,
            a_real_ceremony_registers_a_passkey_that_logs_in,
            bad_responses_register_nothing,
            a_credential_claimed_by_another_user_registers_nothing,
            remove_passkey,
            revoke_and_lifecycle,
            not_found_for_unknown_users_and_users_of_other_orgs,
            permission_is_checked_in_the_users_actual_org,
            no_existence_oracle_across_orgs,
            failed_preconditions,
            invalid_arguments_append_nothing,
            rate_limit_is_resource_exhausted,
            a_failing_notifier_is_unavailable_and_the_code_never_works,
            unauthenticated_self_service,
            details_follow_the_last_event,
            parallel_wrong_guesses_record_exactly_the_cap,
            parallel_verifications_have_exactly_one_winner,
            parallel_issuance_keeps_one_live_link_and_the_rate_limit,
            lifecycle_stops_kill_links_for_good,
            a_failed_resend_keeps_the_working_link,
            third_parties_get_a_derived_id_never_the_code_id,
            a_colliding_code_id_is_already_exists,
            rate_limit_scope_is_per_caller_kind,
            clock_skew_cannot_stretch_a_lifetime,
            idempotent_retries_answer_as_the_first_run,
            idempotency_keys_belong_to_their_caller_and_request,
            nothing_stored_finishes_a_ceremony,
            a_dead_link_can_be_traded_for_a_fresh_one,
            a_directory_sync_appends_only_what_differs,
            passkey_names_cannot_be_spoofed,
            a_warm_decision_never_outlives_another_process_change,
            a_warm_ceremony_never_outlives_another_process_change,
            a_ceremony_finishes_in_a_process_that_never_saw_the_user
        );
    };
    (@each $store:ident, $($name:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some(store) = $store().await else { return };
            $crate::scenarios::$name(store).await;
        }
    )*};
}
