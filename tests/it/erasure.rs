//! Erasure of a person's data by crypto-shredding, on every store: what everything the store
//! holds (a `pg_dump` for PostgreSQL) and the audit trail show of the person before and after,
//! what another user keeps, and what an erased user can still do.

use std::future::Future;

use base64::Engine as _;
use chrono::Duration;
use passkey_links::ids::{StreamId, UserId};
use passkey_links::prelude::*;
use passkey_links::read::{AuditScope, ProjectionRunner, ProjectionStore, ReadModels};
use passkey_links::store::{EventStore, InMemoryStore};
use serde_json::json;

use crate::authenticator::Authenticator;
use crate::scenarios::{
    Fixture, Inspect, assert_error, config, finish_request, link_params, register_request,
};

/// Everything a store holds, as text: what an attacker with a copy of the database reads.
pub trait Dump {
    /// The store's whole content.
    fn dump(&self) -> impl Future<Output = String> + Send;
}

/// What a store holds for the scenario's people: every event, their snapshots and audit rows
/// as stored (not as the service shows them).
pub async fn stored_text<S: EventStore + ProjectionStore + Inspect>(store: &S) -> String {
    let mut text = String::new();
    for event in store.all_events().await {
        text.push_str(&event.event_type);
        text.push_str(&event.payload.to_string());
        text.push('\n');
    }
    for person in [&ERIN, &KEEPER] {
        let id = UserId::new(person.id).unwrap();
        let snapshots = store.read_snapshots(&[StreamId::user(&id)]).await.unwrap();
        text.push_str(&format!("{snapshots:?}\n"));
        let audit = store
            .audit_page(&AuditScope::User(id), None, 10_000)
            .await
            .unwrap();
        text.push_str(&format!("{audit:?}\n"));
    }
    text
}

impl Dump for InMemoryStore {
    async fn dump(&self) -> String {
        stored_text(self).await
    }
}

/// The ways a text can be hidden in a dump: plain, hex (either case), base64 (standard or
/// URL-safe, at each of the three alignments) and percent-encoded.
fn encodings(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut found = vec![
        text.to_owned(),
        hex.clone(),
        hex.to_uppercase(),
        percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string(),
    ];
    for engine in [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
    ] {
        for offset in 0..3usize {
            let mut shifted = vec![0u8; offset];
            shifted.extend_from_slice(bytes);
            let encoded = engine.encode(&shifted);
            // The characters that encode only the text's bytes, whatever surrounds it.
            let start = (offset * 4).div_ceil(3);
            let end = (shifted.len() / 3) * 4;
            if end > start + 8 {
                found.push(encoded[start..end].to_owned());
            }
        }
    }
    found
}

/// Where `text` (in any of its encodings) appears in `dump`.
fn leaks(dump: &str, text: &str) -> Vec<String> {
    encodings(text)
        .into_iter()
        .filter(|encoded| dump.contains(encoded.as_str()))
        .collect()
}

/// The person the scenario erases, and one it keeps.
struct Person {
    id: &'static str,
    user_name: &'static str,
    display_name: &'static str,
    email: &'static str,
    passkey_name: &'static str,
}

const ERIN: Person = Person {
    id: "erasure-erin",
    user_name: "erin.forgotten",
    display_name: "Erin Forgottenhalls",
    email: "erin.forgottenhalls@example.org",
    passkey_name: "Erin's Yubikey Nano",
};

const KEEPER: Person = Person {
    id: "erasure-keeper",
    user_name: "kim.keeper",
    display_name: "Kim Keepsakes",
    email: "kim.keepsakes@example.org",
    passkey_name: "Kim's Pixel",
};

impl Person {
    fn personal(&self) -> [&'static str; 4] {
        [
            self.user_name,
            self.display_name,
            self.email,
            self.passkey_name,
        ]
    }
}

/// The person's user, a registered passkey (named) and the authenticator that holds it.
async fn enroll<S: EventStore + Clone + Inspect>(f: &Fixture<S>, person: &Person) -> Authenticator {
    f.service
        .ensure_human_user(
            &Caller::System,
            Some(&f.org_a),
            EnsureHumanUserRequest {
                user_id: person.id.into(),
                user_name: person.user_name.into(),
                display_name: person.display_name.into(),
                email: person.email.into(),
                is_email_verified: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    f.clock.advance(Duration::minutes(13));
    let added = f
        .service
        .add_passwordless_registration(
            &Caller::System,
            None,
            AddPasswordlessRegistrationRequest {
                user_id: person.id.into(),
            },
        )
        .await
        .unwrap();
    let (user, _, code_id, code) = link_params(&added.link);
    let started = f
        .service
        .register_passkey(register_request(&user, &code_id, &code))
        .await
        .unwrap();
    let mut authenticator = Authenticator::new();
    let response = authenticator.create(&started.public_key_credential_creation_options);
    let verify: VerifyPasskeyRegistrationRequest = serde_json::from_value(json!({
        "userId": user,
        "passkeyId": started.passkey_id,
        "publicKeyCredential": response,
        "passkeyName": person.passkey_name,
        "ceremonySecret": started.ceremony_secret,
    }))
    .unwrap();
    f.service.verify_passkey_registration(verify).await.unwrap();
    authenticator
}

async fn audit<S: EventStore + ProjectionStore + Clone>(f: &Fixture<S>, user: &str) -> String {
    let trail = f
        .service
        .list_audit_trail(
            &Caller::System,
            None,
            ListAuditTrailRequest {
                user_id: Some(user.into()),
                page_size: Some(1000),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    serde_json::to_string(&trail).unwrap()
}

async fn log_in<S: EventStore + Clone>(
    f: &Fixture<S>,
    user: &str,
    authenticator: &mut Authenticator,
) -> Result<FinishPasskeyLoginResponse, Error> {
    let login = f
        .service
        .start_passkey_login(StartPasskeyLoginRequest {
            user_id: Some(user.into()),
        })
        .await?;
    let assertion = authenticator.get(&login.public_key_credential_request_options);
    f.service
        .finish_passkey_login(finish_request(&login, &assertion))
        .await
}

/// Erasure on a store: before it, the store holds no personal data in the clear (it is sealed)
/// while the audit trail shows it; after it, neither the store nor the audit trail holds the
/// erased person's names, email or passkey name in any encoding, another person's stay
/// readable, every event still folds, earlier links are dead, no new link is issued and no
/// login succeeds; erasing again appends nothing.
pub async fn erasure_forgets_a_person_and_keeps_everything_else<S>(store: S)
where
    S: EventStore + ProjectionStore + Clone + Inspect + Dump + 'static,
{
    // Snapshots every few events: they hold the person too.
    let f = Fixture::with_config(store, config().with_snapshot_every(3)).await;
    let other_process = || {
        PasskeyLinks::new(
            f.store.clone(),
            RecordingNotifier::new(),
            StaticGrants::new(),
            config().with_snapshot_every(3),
        )
        .with_clock(f.clock.clone())
    };

    let runner = ProjectionRunner::new(f.store.clone(), ReadModels::new(f.store.clone()));
    let mut erin_key = enroll(&f, &ERIN).await;
    let mut kim_key = enroll(&f, &KEEPER).await;
    // A link Erin has not used yet: erasure must kill it.
    f.clock.advance(Duration::minutes(13));
    let pending = f
        .service
        .add_passwordless_registration(
            &Caller::System,
            None,
            AddPasswordlessRegistrationRequest {
                user_id: ERIN.id.into(),
            },
        )
        .await
        .unwrap();
    runner.catch_up().await.unwrap();

    let dump = f.store.dump().await;
    for person in [&ERIN, &KEEPER] {
        for text in person.personal() {
            assert_eq!(
                leaks(&dump, text),
                Vec::<String>::new(),
                "sealed at rest: {text}"
            );
        }
    }
    let trail = audit(&f, ERIN.id).await;
    for text in [ERIN.user_name, ERIN.display_name, ERIN.email] {
        assert!(
            trail.contains(text),
            "the audit trail shows {text}: {trail}"
        );
    }

    // Another process has Erin cached (and her key) when she is erased.
    let other = other_process();
    get_user(&other, ERIN.id).await;

    let events_before = f.store.all_events().await.len();
    let erased = f
        .service
        .erase_user_personal_data(&f.admin_a, None, ERIN.id)
        .await
        .unwrap();
    assert_eq!(erased.details.resource_owner, f.org_a);
    assert_eq!(
        f.store.all_events().await.len(),
        events_before + 1,
        "one event records it"
    );
    runner.catch_up().await.unwrap();

    // Nothing of Erin anywhere, in any encoding; Kim's data is still readable.
    let dump = f.store.dump().await;
    let trail = audit(&f, ERIN.id).await;
    for text in ERIN.personal() {
        assert_eq!(leaks(&dump, text), Vec::<String>::new(), "store: {text}");
        assert_eq!(leaks(&trail, text), Vec::<String>::new(), "audit: {text}");
    }
    assert!(trail.contains("(erased)"), "{trail}");
    assert!(trail.contains("user.personal_data.erased"), "{trail}");
    let kept = audit(&f, KEEPER.id).await;
    for text in [KEEPER.user_name, KEEPER.display_name, KEEPER.email] {
        assert!(kept.contains(text), "another user's {text} stays readable");
    }
    let kim = get_user(&f.service, KEEPER.id).await;
    assert_eq!(kim.user.human.unwrap().email.email, KEEPER.email);

    // Every event still folds: the user reads back, erased.
    let erin = get_user(&f.service, ERIN.id).await;
    let erin_json = serde_json::to_value(&erin).unwrap();
    assert_eq!(erin.user.username, "(erased)");
    assert_eq!(erin.details.sequence, events_of(&f, ERIN.id).await);
    for text in ERIN.personal() {
        assert!(!erin_json.to_string().contains(text), "{erin_json}");
    }
    let passkeys = f
        .service
        .list_passkeys(
            &Caller::System,
            None,
            ListPasskeysRequest {
                user_id: ERIN.id.into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(passkeys.result.len(), 1, "the credential claim stays");
    assert_eq!(passkeys.result[0].name, "(erased)");

    // No link, no login; the earlier link is dead.
    f.clock.advance(Duration::minutes(13));
    assert_error(
        f.service
            .add_passwordless_registration(
                &Caller::System,
                None,
                AddPasswordlessRegistrationRequest {
                    user_id: ERIN.id.into(),
                },
            )
            .await,
        ErrorKind::FailedPrecondition,
        "Errors.User.PersonalDataErased",
    );
    let (user, _, code_id, code) = link_params(&pending.link);
    assert!(
        f.service
            .register_passkey(register_request(&user, &code_id, &code))
            .await
            .is_err(),
        "the earlier link died"
    );
    assert!(log_in(&f, ERIN.id, &mut erin_key).await.is_err());
    log_in(&f, KEEPER.id, &mut kim_key).await.unwrap();
    assert_error(
        f.service
            .ensure_human_user(
                &Caller::System,
                Some(&f.org_a),
                EnsureHumanUserRequest {
                    user_id: ERIN.id.into(),
                    user_name: ERIN.user_name.into(),
                    display_name: ERIN.display_name.into(),
                    email: ERIN.email.into(),
                    is_email_verified: true,
                    ..Default::default()
                },
            )
            .await,
        ErrorKind::FailedPrecondition,
        "Errors.User.PersonalDataErased",
    );

    // Erasing again appends nothing.
    let events_now = f.store.all_events().await.len();
    f.service
        .erase_user_personal_data(&Caller::System, None, ERIN.id)
        .await
        .unwrap();
    assert_eq!(f.store.all_events().await.len(), events_now);

    // The process that had Erin cached, and a fresh one (cold loads, snapshots), see the same.
    for service in [other, other_process()] {
        let erin = get_user(&service, ERIN.id).await;
        let erin = serde_json::to_value(&erin.user).unwrap();
        assert_eq!(
            erin["human"]["email"]["email"],
            json!("erased@erased.invalid")
        );
        for text in ERIN.personal() {
            assert!(!erin.to_string().contains(text), "{erin}");
        }
        let kim = get_user(&service, KEEPER.id).await;
        assert_eq!(
            kim.user.human.unwrap().profile.display_name,
            KEEPER.display_name
        );
    }
    let dump = f.store.dump().await;
    for text in ERIN.personal() {
        assert_eq!(
            leaks(&dump, text),
            Vec::<String>::new(),
            "store, at last: {text}"
        );
    }
}

/// A user as the system reads it back.
async fn get_user<S, N, A, C, R, P>(
    service: &PasskeyLinks<S, N, A, C, R, P>,
    id: &str,
) -> GetUserResponse
where
    S: EventStore,
    N: Notifier,
    A: Authorizer,
    C: Clock,
    R: RandomSource,
    P: RelyingParty,
{
    let request = GetUserRequest { user_id: id.into() };
    service
        .get_user(&Caller::System, None, request)
        .await
        .unwrap()
}

/// The number of events of a user's stream.
async fn events_of<S: EventStore + Clone + Inspect>(f: &Fixture<S>, user: &str) -> u64 {
    f.store
        .all_events()
        .await
        .iter()
        .filter(|e| e.stream.id() == user)
        .count() as u64
}

/// One `#[tokio::test]` per erasure scenario for a backend (as `service_scenarios!`).
#[macro_export]
macro_rules! erasure_scenarios {
    ($store:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn erasure_forgets_a_person_and_keeps_everything_else() {
            let Some(store) = $store().await else { return };
            $crate::erasure::erasure_forgets_a_person_and_keeps_everything_else(store).await;
        }
    };
}
