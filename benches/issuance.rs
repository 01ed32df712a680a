//! Issuance and redemption benchmarks. Ratios that matter (same run):
//! - `issuance/in_memory_end_to_end` vs `issuance/floor` (target ≤ 3×)
//! - `history/10000` vs `history/0` (target ≤ 1.5×)
//! - `unrelated_events/1000000` vs `unrelated_events/0` (target ≤ 1.2×)
//! - `postgres/issuance_end_to_end` vs `postgres/raw_insert_commit` (target ≤ 3×)
//!
//! `python3 scripts/bench_report.py` prints the table of BENCHMARKS.md from the results.

#[cfg(all(feature = "postgres", feature = "sqlx-postgres"))]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use passkey_links::LinkValues;
use passkey_links::domain::Event;
use passkey_links::domain::{CodeEvent, Issued, UserEvent};
use passkey_links::ids::{AggregateKind, StreamId};
use passkey_links::prelude::*;
use passkey_links::store::{AppendBatch, ExpectedVersion, NewEvent, StreamAppend};
use passkey_links::webauthn::WebauthnRelyingParty;
use tokio::runtime::Runtime;

type Service<S> =
    PasskeyLinks<S, RecordingNotifier, StaticGrants, SystemClock, OsRandom, WebauthnRelyingParty>;

/// The relying party of the benches.
const ORIGIN: &str = "https://id.example.com";

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn links() -> LinkConfig {
    LinkConfig::new(BaseUrl::parse("https://id.example.com").unwrap())
}

/// Benchmarks issue links back to back: no rate limit.
fn policy() -> Policy {
    Policy::default().with_rate_limit(None)
}

fn service<S: EventStore>(store: S, policy: Policy) -> Service<S> {
    PasskeyLinks::new(
        store,
        RecordingNotifier::new(),
        StaticGrants::new(),
        Config::new(links()).with_policy(policy),
    )
    .with_relying_party(WebauthnRelyingParty::new("id.example.com", "Bench", &[ORIGIN]).unwrap())
}

async fn new_org<S: EventStore>(service: &Service<S>) -> String {
    service
        .add_org(
            &Caller::System,
            AddOrgRequest {
                name: "ACME".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .org_id
}

async fn users<S: EventStore>(service: &Service<S>, org: &str, n: usize) -> Vec<Caller> {
    let mut callers = Vec::with_capacity(n);
    for i in 0..n {
        let user = service
            .add_human_user(
                &Caller::System,
                Some(org),
                AddHumanUserRequest {
                    user_name: format!("user{i}"),
                    display_name: format!("User {i}"),
                    email: format!("user{i}@example.com"),
                    is_email_verified: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        callers.push(Caller::user(
            UserId::new(user.user_id).unwrap(),
            OrgId::new(org).unwrap(),
        ));
    }
    callers
}

/// The unavoidable work of one issuance: secret, digest, code id, the two events encoded to the
/// JSON text a store writes, link.
fn floor(c: &mut Criterion) {
    let config = SecretConfig::default();
    let links = links();
    let user = UserId::new("0b6d1b1c4a2e4f0e9b0e1d2c3b4a5968").unwrap();
    let org = OrgId::new("7c1d2e3f4a5b6c7d8e9fa0b1c2d3e4f5").unwrap();
    let mut group = c.benchmark_group("issuance");
    group.bench_function("floor", |b| {
        b.iter(|| {
            let secret = config.generate(&mut rand::rng());
            let digest = secret.digest();
            let code = CodeId::new(OsRandom.new_id()).unwrap();
            let now = Utc::now();
            let issued = Issued::new(
                user.clone(),
                org.clone(),
                digest,
                now,
                chrono::Duration::hours(1),
                2,
                1,
                3,
            );
            let events = [
                Event::User(UserEvent::CodeIssued {
                    code_id: code.clone(),
                    issued_at: now,
                    supersedes_earlier: true,
                }),
                Event::Code(CodeEvent::Added { issued }),
            ];
            // Encoding = the bytes a store writes: the type name and the JSON text of the payload
            // (the in-memory store keeps that text; PostgreSQL receives it as jsonb input).
            let encoded: Vec<_> = events
                .iter()
                .map(|e| {
                    let (event_type, payload) = e.encode().unwrap();
                    (event_type, serde_json::to_string(&payload).unwrap())
                })
                .collect();
            let link = links.render_default(&LinkValues {
                user_id: &user,
                org_id: &org,
                code_id: &code,
                secret: &secret,
            });
            (encoded, link)
        })
    });
    let rt = runtime();
    let (service, me) = rt.block_on(async {
        let service = service(InMemoryStore::new(), policy());
        let org = new_org(&service).await;
        let me = users(&service, &org, 1).await.remove(0);
        (service, me)
    });
    group.bench_function("in_memory_end_to_end", |b| {
        b.to_async(&rt)
            .iter(|| async { service.add_my_passwordless_link(&me).await.unwrap() })
    });
    group.finish();
}

fn operations(c: &mut Criterion) {
    let rt = runtime();
    let one_live_off = policy().with_one_live_link(false);
    let (service, me, admin_code) = rt.block_on(async {
        let service = service(InMemoryStore::new(), one_live_off);
        let org = new_org(&service).await;
        let me = users(&service, &org, 1).await.remove(0);
        let code = returned_code(&service, &me).await;
        (Arc::new(service), me, code)
    });
    let mut group = c.benchmark_group("operations");
    group.bench_function("send", |b| {
        b.to_async(&rt)
            .iter(|| async { service.send_my_passwordless_link(&me).await.unwrap() })
    });
    group.bench_function("check", |b| {
        b.to_async(&rt).iter(|| async {
            service
                .check_code(presented(&me, &admin_code.id, &admin_code.code))
                .await
                .unwrap()
        })
    });
    // A directory sync's unchanged user: ensure decides there is nothing to append.
    let (org, synced) = rt.block_on(synced_user(&service));
    group.bench_function("sync_unchanged_user", |b| {
        b.to_async(&rt).iter(|| async {
            let ensured = service
                .ensure_human_user(&Caller::System, Some(&org), synced.clone())
                .await
                .unwrap();
            assert!(!ensured.changed);
        })
    });
    group.finish();

    // The ceremony: RegisterPasskey and VerifyPasskeyRegistration through the service and
    // webauthn-rs. Each timed call gets a fresh user and code (a user holds at most 32
    // passkeys); the software authenticator runs outside the timing.
    let mut group = c.benchmark_group("operations");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(4));
    let org = rt.block_on(new_org(&service));
    group.bench_function("register", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (service, org) = (service.clone(), org.clone());
            async move {
                let requests: Vec<_> = fresh_codes(&service, &org, iters)
                    .await
                    .iter()
                    .map(|(me, code)| register(me, code))
                    .collect();
                let start = Instant::now();
                for request in requests {
                    service.register_passkey(request).await.unwrap();
                }
                start.elapsed()
            }
        })
    });
    group.bench_function("verify", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (service, org) = (service.clone(), org.clone());
            async move {
                let mut requests = Vec::with_capacity(iters as usize);
                let mut authenticator_time = Duration::ZERO;
                for (me, code) in fresh_codes(&service, &org, iters).await {
                    let started = service
                        .register_passkey(register(&me, &code))
                        .await
                        .unwrap();
                    let before = Instant::now();
                    let response = authenticate(&started.public_key_credential_creation_options);
                    authenticator_time += before.elapsed();
                    requests.push(verify(&me, &started, response));
                }
                AUTHENTICATOR_NANOS
                    .fetch_add(authenticator_time.as_nanos() as u64, Ordering::Relaxed);
                AUTHENTICATOR_CALLS.fetch_add(iters, Ordering::Relaxed);
                let start = Instant::now();
                for request in requests {
                    service.verify_passkey_registration(request).await.unwrap();
                }
                start.elapsed()
            }
        })
    });
    group.bench_function("login", |b| login_iterations(b, &rt, InMemoryStore::new()));
    group.finish();
    let calls = AUTHENTICATOR_CALLS.load(Ordering::Relaxed).max(1);
    eprintln!(
        "operations/verify: the software authenticator (excluded) took {:.1} µs per registration",
        AUTHENTICATOR_NANOS.load(Ordering::Relaxed) as f64 / calls as f64 / 1000.0
    );
}

/// A login's start and finish through the service and webauthn-rs, for a user with one passkey
/// (a software authenticator's, which signs outside the timing). The clock moves 2 s per
/// login, so the logins kept as used stay well below the per-user bound.
fn login_iterations<S: EventStore + Clone + 'static>(
    b: &mut criterion::Bencher<'_>,
    rt: &Runtime,
    store: S,
) {
    use webauthn_authenticator_rs::WebauthnAuthenticator;
    let clock = ManualClock::new(Utc::now());
    let service = Arc::new(
        PasskeyLinks::new(
            store,
            RecordingNotifier::new(),
            StaticGrants::new(),
            Config::new(links()).with_policy(policy()),
        )
        .with_clock(clock.clone())
        .with_relying_party(
            WebauthnRelyingParty::new("id.example.com", "Bench", &[ORIGIN]).unwrap(),
        ),
    );
    let mut authenticator = webauthn_authenticator_rs::softpasskey::SoftPasskey::new(true);
    let me = rt.block_on(async {
        let org = service
            .add_org(
                &Caller::System,
                AddOrgRequest {
                    name: "ACME".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .org_id;
        let user = service
            .add_human_user(
                &Caller::System,
                Some(&org),
                AddHumanUserRequest {
                    user_name: "ada".into(),
                    display_name: "Ada".into(),
                    email: "ada@example.com".into(),
                    is_email_verified: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let me = Caller::user(UserId::new(user.user_id).unwrap(), OrgId::new(org).unwrap());
        let code = service
            .create_passkey_registration_link(
                &Caller::System,
                CreatePasskeyRegistrationLinkRequest {
                    user_id: user_id(&me),
                    return_code: Some(ReturnCode {}),
                    send_link: None,
                },
            )
            .await
            .unwrap()
            .code
            .unwrap();
        let started = service
            .register_passkey(register(&me, &code))
            .await
            .unwrap();
        let mut options: webauthn_rs_proto::CreationChallengeResponse =
            serde_json::from_value(started.public_key_credential_creation_options.clone()).unwrap();
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.require_resident_key = false;
            selection.resident_key = None;
        }
        let credential = authenticator
            .do_registration(url::Url::parse(ORIGIN).unwrap(), options)
            .unwrap();
        service
            .verify_passkey_registration(verify(
                &me,
                &started,
                serde_json::to_value(credential).unwrap(),
            ))
            .await
            .unwrap();
        me
    });
    let named = StartPasskeyLoginRequest {
        user_id: Some(user_id(&me)),
    };
    let authenticator = std::sync::Mutex::new(authenticator);
    b.to_async(rt).iter_custom(|iters| {
        let (service, clock, named) = (service.clone(), clock.clone(), named.clone());
        let authenticator = &authenticator;
        async move {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                clock.advance(chrono::Duration::seconds(2));
                let start = Instant::now();
                let login = service.start_passkey_login(named.clone()).await.unwrap();
                timed += start.elapsed();
                let options =
                    serde_json::from_value(login.public_key_credential_request_options.clone())
                        .unwrap();
                let assertion = authenticator
                    .lock()
                    .unwrap()
                    .do_authentication(url::Url::parse(ORIGIN).unwrap(), options)
                    .unwrap();
                let finish = serde_json::from_value(serde_json::json!({
                    "loginState": login.login_state,
                    "publicKeyCredential": assertion,
                }))
                .unwrap();
                let start = Instant::now();
                service.finish_passkey_login(finish).await.unwrap();
                timed += start.elapsed();
            }
            timed
        }
    })
}

static AUTHENTICATOR_NANOS: AtomicU64 = AtomicU64::new(0);
static AUTHENTICATOR_CALLS: AtomicU64 = AtomicU64::new(0);

fn verify(
    me: &Caller,
    started: &RegisterPasskeyResponse,
    response: serde_json::Value,
) -> VerifyPasskeyRegistrationRequest {
    serde_json::from_value(serde_json::json!({
        "userId": user_id(me),
        "passkeyId": started.passkey_id,
        "publicKeyCredential": response,
        "passkeyName": "key",
        "ceremonySecret": started.ceremony_secret,
    }))
    .unwrap()
}

fn register(me: &Caller, code: &PasskeyRegistrationCode) -> RegisterPasskeyRequest {
    serde_json::from_value(serde_json::json!({
        "userId": user_id(me),
        "code": {"id": code.id, "code": code.code}
    }))
    .unwrap()
}

/// A software authenticator's answer to the creation options (it stores no resident keys, so
/// that instruction is dropped, as the tests do).
fn authenticate(options: &serde_json::Value) -> serde_json::Value {
    use webauthn_authenticator_rs::WebauthnAuthenticator;
    let mut options: webauthn_rs_proto::CreationChallengeResponse =
        serde_json::from_value(options.clone()).unwrap();
    if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
        selection.require_resident_key = false;
        selection.resident_key = None;
    }
    let credential = webauthn_authenticator_rs::softpasskey::SoftPasskey::new(true)
        .do_registration(url::Url::parse(ORIGIN).unwrap(), options)
        .unwrap();
    serde_json::to_value(credential).unwrap()
}

/// A v2 `returnCode` for `me`: the code id and secret, without a link.
async fn returned_code<S: EventStore>(
    service: &Service<S>,
    me: &Caller,
) -> PasskeyRegistrationCode {
    service
        .create_passkey_registration_link(
            &Caller::System,
            CreatePasskeyRegistrationLinkRequest {
                user_id: user_id(me),
                return_code: Some(ReturnCode {}),
                send_link: None,
            },
        )
        .await
        .unwrap()
        .code
        .unwrap()
}

/// `n` fresh users of `org`, each with a returned code: one per timed ceremony.
async fn fresh_codes<S: EventStore>(
    service: &Service<S>,
    org: &str,
    n: u64,
) -> Vec<(Caller, PasskeyRegistrationCode)> {
    let mut codes = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let me = users(service, org, 1).await.remove(0);
        let code = returned_code(service, &me).await;
        codes.push((me, code));
    }
    codes
}

/// A user synced once from a directory, and the directory's (unchanged) view of it.
async fn synced_user<S: EventStore>(service: &Service<S>) -> (String, EnsureHumanUserRequest) {
    let org = new_org(service).await;
    let person = EnsureHumanUserRequest {
        user_id: format!("synced-{}", Utc::now().timestamp_micros()),
        user_name: "synced".into(),
        display_name: "Synced User".into(),
        email: "synced@example.com".into(),
        is_email_verified: true,
        preferred_language: Some("en".into()),
        ..Default::default()
    };
    service
        .ensure_human_user(&Caller::System, Some(&org), person.clone())
        .await
        .unwrap();
    (org, person)
}

fn user_id(caller: &Caller) -> String {
    match caller {
        Caller::User(p) => p.user_id.as_str().to_owned(),
        _ => String::new(),
    }
}

fn presented(me: &Caller, code_id: &str, code: &str) -> CheckCodeRequest {
    serde_json::from_value(
        serde_json::json!({"userId": user_id(me), "codeId": code_id, "code": code}),
    )
    .unwrap()
}

/// Issuance for a user with 0, 1,000 and 10,000 earlier links.
fn history(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("history");
    for earlier in [0usize, 1_000, 10_000] {
        let (service, me, org) = rt.block_on(async {
            let service = service(InMemoryStore::new(), policy());
            let org = new_org(&service).await;
            let me = users(&service, &org, 1).await.remove(0);
            for _ in 0..earlier {
                service.add_my_passwordless_link(&me).await.unwrap();
            }
            (Arc::new(service), me, org)
        });
        group.bench_with_input(
            BenchmarkId::from_parameter(earlier),
            &earlier,
            |b, &earlier| {
                if earlier == 0 {
                    // Every timed issuance is some fresh user's first.
                    b.to_async(&rt).iter_custom(|iters| {
                        let (service, org) = (service.clone(), org.clone());
                        async move {
                            let fresh = users(&service, &org, iters as usize).await;
                            let start = Instant::now();
                            for caller in &fresh {
                                service.add_my_passwordless_link(caller).await.unwrap();
                            }
                            start.elapsed()
                        }
                    })
                } else {
                    b.to_async(&rt)
                        .iter(|| async { service.add_my_passwordless_link(&me).await.unwrap() })
                }
            },
        );
    }
    group.finish();
}

/// Issuance with an empty store versus one holding 1,000,000 events of other users.
fn unrelated_events(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("unrelated_events");
    group.sample_size(50);
    for others in [0usize, 1_000_000] {
        let (service, me) = rt.block_on(async {
            let store = InMemoryStore::new();
            fill(&store, others).await;
            let service = service(store, policy());
            let org = new_org(&service).await;
            let me = users(&service, &org, 1).await.remove(0);
            (service, me)
        });
        group.bench_function(BenchmarkId::from_parameter(others), |b| {
            b.to_async(&rt)
                .iter(|| async { service.add_my_passwordless_link(&me).await.unwrap() })
        });
    }
    group.finish();
}

/// `events` link events spread over other users' streams, 10 per user.
async fn fill(store: &InMemoryStore, events: usize) {
    let now = Utc::now();
    for user in 0..events / 10 {
        let stream = StreamId::new(AggregateKind::User, format!("other-{user}")).unwrap();
        let batch: Vec<NewEvent> = (0..10)
            .map(|i| {
                let (event_type, payload) = Event::User(UserEvent::CodeIssued {
                    code_id: CodeId::new(format!("c-{user}-{i}")).unwrap(),
                    issued_at: now,
                    supersedes_earlier: true,
                })
                .encode()
                .unwrap();
                NewEvent::new(event_type, 1, &payload, now).unwrap()
            })
            .collect();
        store
            .append(
                AppendBatch::new(vec![StreamAppend {
                    stream,
                    expected: ExpectedVersion::NoStream,
                    events: batch,
                }])
                .unwrap(),
            )
            .await
            .unwrap();
    }
}

/// 8 concurrent tasks issuing for 8 users versus all for 1 user (conflicts and retries).
fn concurrency(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("concurrency");
    for users_n in [8usize, 1] {
        let (service, callers) = rt.block_on(async {
            let policy = policy();
            let mut config = Config::new(links()).with_policy(policy);
            config = config.with_max_attempts(64);
            let service = PasskeyLinks::new(
                InMemoryStore::new(),
                RecordingNotifier::new(),
                StaticGrants::new(),
                config,
            )
            .with_relying_party(
                WebauthnRelyingParty::new("id.example.com", "Bench", &[ORIGIN]).unwrap(),
            );
            let org = new_org(&service).await;
            let callers = users(&service, &org, users_n).await;
            (Arc::new(service), callers)
        });
        let name = format!("8_tasks_{users_n}_users");
        let aborted = Arc::new(AtomicU64::new(0));
        let issued = Arc::new(AtomicU64::new(0));
        group.bench_function(&name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (service, callers) = (service.clone(), callers.clone());
                let aborted = aborted.clone();
                issued.fetch_add(iters.div_ceil(8) * 8, Ordering::Relaxed);
                async move {
                    let start = Instant::now();
                    let mut tasks = Vec::new();
                    for task in 0..8 {
                        let service = service.clone();
                        let caller = callers[task % callers.len()].clone();
                        let aborted = aborted.clone();
                        tasks.push(tokio::spawn(async move {
                            for _ in 0..iters.div_ceil(8) {
                                // Aborted (retry budget spent under contention) is retryable:
                                // retry as a client would, and count it.
                                loop {
                                    match service.add_my_passwordless_link(&caller).await {
                                        Ok(_) => break,
                                        Err(err) if err.kind() == ErrorKind::Aborted => {
                                            aborted.fetch_add(1, Ordering::Relaxed);
                                        }
                                        Err(err) => panic!("{err}"),
                                    }
                                }
                            }
                        }));
                    }
                    for task in tasks {
                        task.await.unwrap();
                    }
                    start.elapsed()
                }
            })
        });
        eprintln!(
            "concurrency/{name}: {} of {} issuances were retried by the caller after Aborted",
            aborted.load(Ordering::Relaxed),
            issued.load(Ordering::Relaxed)
        );
    }
    group.finish();
}

#[cfg(feature = "postgres")]
fn postgres(c: &mut Criterion) {
    use passkey_links::store::postgres::PostgresStore;
    let Ok(url) = std::env::var("PASSKEY_LINKS_DATABASE_URL") else {
        eprintln!("skipped: postgres benches (no PASSKEY_LINKS_DATABASE_URL)");
        return;
    };
    let rt = runtime();
    let (service, me, store) = rt.block_on(async {
        let schema = format!("bench_{}", Utc::now().timestamp_micros());
        let store = PostgresStore::connect(&url, 4)
            .unwrap()
            .in_schema(&schema)
            .unwrap();
        store.migrate().await.unwrap();
        let service = service(store.clone(), policy());
        let org = new_org(&service).await;
        let me = users(&service, &org, 1).await.remove(0);
        (service, me, store)
    });
    let mut group = c.benchmark_group("postgres");
    let rows = rt.block_on(issuance_rows(&store, &service, &me));
    group.bench_function("raw_insert_commit", |b| {
        let (store, rows) = (store.clone(), rows.clone());
        b.to_async(&rt).iter_custom(move |iters| {
            let (store, rows) = (store.clone(), rows.clone());
            async move {
                let start = Instant::now();
                raw_inserts(&store, iters, true, &rows).await;
                start.elapsed()
            }
        })
    });
    group.bench_function("issuance_end_to_end", |b| {
        b.to_async(&rt)
            .iter(|| async { service.add_my_passwordless_link(&me).await.unwrap() })
    });
    let (org, synced) = rt.block_on(synced_user(&service));
    group.bench_function("sync_unchanged_user", |b| {
        b.to_async(&rt).iter(|| async {
            let ensured = service
                .ensure_human_user(&Caller::System, Some(&org), synced.clone())
                .await
                .unwrap();
            assert!(!ensured.changed);
        })
    });
    // A check reads and appends nothing (mail scanners open links too): one read.
    let code = rt.block_on(returned_code(&service, &me));
    let request = presented(&me, &code.id, &code.code);
    group.bench_function("check_end_to_end", |b| {
        b.to_async(&rt)
            .iter(|| async { service.check_code(request.clone()).await.unwrap() })
    });
    // Consuming a link: RegisterPasskey then VerifyPasskeyRegistration, each timed call on a
    // fresh user and code made beforehand; the software authenticator is left out.
    let service = Arc::new(service);
    let org = rt.block_on(new_org(&service));
    group.sample_size(20);
    group.bench_function("enroll_end_to_end", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (service, org) = (service.clone(), org.clone());
            async move {
                let mut elapsed = Duration::ZERO;
                for (me, code) in fresh_codes(&service, &org, iters).await {
                    let start = Instant::now();
                    let started = service
                        .register_passkey(register(&me, &code))
                        .await
                        .unwrap();
                    elapsed += start.elapsed();
                    let response = authenticate(&started.public_key_credential_creation_options);
                    let request = verify(&me, &started, response);
                    let start = Instant::now();
                    service.verify_passkey_registration(request).await.unwrap();
                    elapsed += start.elapsed();
                }
                elapsed
            }
        })
    });
    // A login (start and finish; warm: the claim, user and org are cached, so the finish is
    // its append).
    group.bench_function("login_end_to_end", |b| {
        login_iterations(b, &rt, store.clone())
    });
    group.finish();
}

/// Throughput on PostgreSQL at 1, 4, 16 and 64 tasks, each task on its own user: issuance
/// against the two raw forms of writing the same two rows (a transaction, and one autocommit
/// statement), with the same pool. Durable only if the server runs with fsync on (the
/// throwaway server of `scripts/pg-throwaway.sh` does not; see BENCHMARKS.md).
#[cfg(feature = "postgres")]
fn postgres_throughput(c: &mut Criterion) {
    use passkey_links::store::postgres::PostgresStore;
    let Ok(url) = std::env::var("PASSKEY_LINKS_DATABASE_URL") else {
        return;
    };
    let rt = runtime();
    let (service, callers, store) = rt.block_on(async {
        let schema = format!("bench_tp_{}", Utc::now().timestamp_micros());
        let store = PostgresStore::connect(&url, 64)
            .unwrap()
            .in_schema(&schema)
            .unwrap();
        store.migrate().await.unwrap();
        let service = service(store.clone(), policy());
        let org = new_org(&service).await;
        let callers = users(&service, &org, 64).await;
        (Arc::new(service), callers, store)
    });
    let rows = rt.block_on(issuance_rows(&store, &service, &callers[0]));
    let mut group = c.benchmark_group("pg_throughput");
    group.sample_size(10);
    for tasks in [1usize, 4, 16, 64] {
        group.bench_function(BenchmarkId::new("issuance", tasks), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (service, callers) = (service.clone(), callers.clone());
                async move {
                    per_op(iters, tasks, |per_task| {
                        issue_for(&service, &callers, tasks, per_task)
                    })
                    .await
                }
            })
        });
        for (name, transaction) in [("raw_txn", true), ("raw_autocommit", false)] {
            group.bench_function(BenchmarkId::new(name, tasks), |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let (store, rows) = (store.clone(), rows.clone());
                    async move {
                        per_op(iters, tasks, |per_task| {
                            raw_for(&store, &rows, tasks, per_task, transaction)
                        })
                        .await
                    }
                })
            });
        }
    }
    group.finish();
    // Interleaved: rounds of each contender back to back (the order rotating each round), so a
    // checkpoint or a busy neighbour weighs on all alike. Per-round ratios to the raw
    // transaction; the medians go to BENCHMARKS.md.
    #[cfg(all(feature = "postgres", feature = "sqlx-postgres"))]
    let sqlx = rt.block_on(sqlx_contender(&url, store.schema().unwrap_or_default(), 64));
    let contenders = |tasks: usize, per_task: u64, which: usize| {
        let (service, callers, store, rows) = (&service, &callers, &store, &rows);
        #[cfg(all(feature = "postgres", feature = "sqlx-postgres"))]
        let sqlx = &sqlx;
        async move {
            match which {
                0 => issue_for(service, callers, tasks, per_task).await,
                1 => raw_for(store, rows, tasks, per_task, true).await,
                2 => raw_for(store, rows, tasks, per_task, false).await,
                #[cfg(all(feature = "postgres", feature = "sqlx-postgres"))]
                _ => issue_for(&sqlx.0, &sqlx.1, tasks, per_task).await,
                #[cfg(not(all(feature = "postgres", feature = "sqlx-postgres")))]
                _ => unreachable!(),
            }
        }
    };
    let count = if cfg!(feature = "sqlx-postgres") {
        4
    } else {
        3
    };
    let mut report = Vec::new();
    let mut interleave = |label: &str, tasks: usize| {
        let per_task = (2_000 / tasks as u64).max(50);
        // Per round: each contender's throughput over the raw transaction's, and the raw
        // transaction's own rate.
        let (mut ratios, mut raw_ops): (Vec<Vec<f64>>, Vec<f64>) =
            (vec![Vec::new(); count], Vec::new());
        for round in 0..7 {
            let mut took = vec![Duration::ZERO; count];
            for k in 0..count {
                let which = (round + k) % count;
                took[which] = rt.block_on(contenders(tasks, per_task, which));
            }
            // Throughput ratio = inverse time ratio (same number of operations).
            for (which, ratio) in ratios.iter_mut().enumerate() {
                ratio.push(took[1].as_secs_f64() / took[which].as_secs_f64());
            }
            // Issuance over raw autocommit, kept where raw transaction over itself would be.
            ratios[1].pop();
            ratios[1].push(took[2].as_secs_f64() / took[0].as_secs_f64());
            raw_ops.push((per_task * tasks as u64) as f64 / took[1].as_secs_f64());
        }
        let (txn, auto, raw) = (
            median(&mut ratios[0]),
            median(&mut ratios[1]),
            median(&mut raw_ops),
        );
        println!(
            "{label}/{tasks}: issuance / raw transaction {txn:.2}×, issuance / raw autocommit {auto:.2}× (medians of 7 rounds; raw transaction {raw:.0} ops/s)"
        );
        let mut entry = serde_json::json!({"label": label, "tasks": tasks, "vs_txn": txn, "vs_autocommit": auto, "raw_txn_ops": raw, "rounds": 7});
        if count == 4 {
            let sqlx = median(&mut ratios[3]);
            println!(
                "{label}/{tasks}: sqlx issuance / raw transaction {sqlx:.2}× (median of 7 rounds)"
            );
            entry["sqlx_vs_txn"] = serde_json::json!(sqlx);
        }
        report.push(entry);
    };
    for tasks in [1usize, 4, 16, 64] {
        interleave("pg_interleaved", tasks);
    }
    // A crowded server: two more pools of 64 connections held open beside the two stores' (256
    // backends in all), as several application instances would.
    let crowd = rt.block_on(crowd(&url, 2, 64));
    interleave("pg_crowded", 64);
    drop(crowd);
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("..")
        .join("criterion")
        .join("pg_interleaved.json");
    let _ = std::fs::write(path, serde_json::to_string_pretty(&report).unwrap());
}

/// The sqlx store on an application's pool of `connections` with sqlx's default settings, on
/// the same tables, with its own service and users (so neither service's cache goes stale).
#[cfg(all(feature = "postgres", feature = "sqlx-postgres"))]
async fn sqlx_contender(
    url: &str,
    schema: &str,
    connections: u32,
) -> (
    Arc<Service<passkey_links::store::sqlx::SqlxStore>>,
    Vec<Caller>,
) {
    use passkey_links::store::sqlx::{SqlxStore, parse_options, sqlx};
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(connections)
        .connect_with(parse_options(url).unwrap())
        .await
        .unwrap();
    let service = service(SqlxStore::new(pool).in_schema(schema).unwrap(), policy());
    let org = new_org(&service).await;
    let callers = users(&service, &org, connections as usize).await;
    (Arc::new(service), callers)
}

/// `pools` pools of `each` connections, every one opened and held idle.
#[cfg(feature = "postgres")]
async fn crowd(
    url: &str,
    pools: usize,
    each: usize,
) -> Vec<passkey_links::store::postgres::PostgresStore> {
    use passkey_links::store::postgres::PostgresStore;
    let mut crowd = Vec::new();
    for _ in 0..pools {
        let store = PostgresStore::connect(url, each).unwrap();
        let mut held = Vec::new();
        for _ in 0..each {
            held.push(store.pool().get().await.unwrap());
        }
        drop(held);
        crowd.push(store);
    }
    crowd
}

#[cfg(feature = "postgres")]
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Time per operation of `iters` operations spread over `tasks` tasks, run by `run(per_task)`.
#[cfg(feature = "postgres")]
async fn per_op<F: std::future::Future<Output = Duration>>(
    iters: u64,
    tasks: usize,
    run: impl FnOnce(u64) -> F,
) -> Duration {
    let per_task = iters.div_ceil(tasks as u64);
    run(per_task)
        .await
        .mul_f64(iters as f64 / (per_task * tasks as u64) as f64)
}

/// `tasks` tasks, each issuing `per_task` links for its own user: the wall time.
#[cfg(feature = "postgres")]
async fn issue_for<S: EventStore + 'static>(
    service: &Arc<Service<S>>,
    callers: &[Caller],
    tasks: usize,
    per_task: u64,
) -> Duration {
    let start = Instant::now();
    let mut handles = Vec::new();
    for caller in callers.iter().take(tasks) {
        let (service, caller) = (service.clone(), caller.clone());
        handles.push(tokio::spawn(async move {
            for _ in 0..per_task {
                service.add_my_passwordless_link(&caller).await.unwrap();
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    start.elapsed()
}

/// `tasks` tasks, each writing `per_task` times the two rows of an issuance: the wall time.
#[cfg(feature = "postgres")]
async fn raw_for(
    store: &passkey_links::store::postgres::PostgresStore,
    rows: &Arc<[serde_json::Value; 2]>,
    tasks: usize,
    per_task: u64,
    transaction: bool,
) -> Duration {
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (store, rows) = (store.clone(), rows.clone());
        handles.push(tokio::spawn(async move {
            raw_inserts(&store, per_task, transaction, &rows).await;
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    start.elapsed()
}

/// The two payloads one issuance writes (its user event and its code's first event), read back
/// from the store: the raw baselines insert rows of the same content.
#[cfg(feature = "postgres")]
async fn issuance_rows<S: EventStore>(
    store: &S,
    service: &Service<S>,
    me: &Caller,
) -> Arc<[serde_json::Value; 2]> {
    service.add_my_passwordless_link(me).await.unwrap();
    let user = StreamId::new(AggregateKind::User, user_id(me)).unwrap();
    let issued = store.read(&user, 0).await.unwrap().pop().unwrap();
    let code_id = issued.payload["codeId"].as_str().unwrap();
    let code = StreamId::new(AggregateKind::Code, code_id).unwrap();
    let added = store.read(&code, 0).await.unwrap().remove(0);
    Arc::new([issued.payload, added.payload])
}

/// `count` writes of two rows (as an issuance writes: a user event and a code event, with the
/// same payloads), each in a transaction or as one autocommit statement.
#[cfg(feature = "postgres")]
async fn raw_inserts(
    store: &passkey_links::store::postgres::PostgresStore,
    count: u64,
    transaction: bool,
    rows: &[serde_json::Value; 2],
) {
    let mut client = store.pool().get().await.unwrap();
    let sql = format!(
        "INSERT INTO {} (stream_type, stream_id, version, event_type, schema_version, payload, recorded_at)
         VALUES ('raw', $1, 1, 'raw.inserted', 1, $2, now()), ('raw', $3, 1, 'raw.inserted', 1, $4, now())",
        store.table()
    );
    let statement = client.prepare(&sql).await.unwrap();
    for _ in 0..count {
        let (a, b) = (OsRandom.new_id(), OsRandom.new_id());
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [&a, &rows[0], &b, &rows[1]];
        if transaction {
            let tx = client.transaction().await.unwrap();
            tx.execute(&statement, &params).await.unwrap();
            tx.commit().await.unwrap();
        } else {
            client.execute(&statement, &params).await.unwrap();
        }
    }
}

/// Pools as applications build them: the store's own pool against a deadpool pool and an sqlx
/// pool with default session settings, each serving one user who has already issued 3,000
/// links (a long stream and a grown table: where a plan made on small tables would scan), and
/// reads of a 200,000-event stream (where a generic plan once crossed the JIT threshold); and an
/// sqlx pool that does not ping connections before handing them out.
#[cfg(all(feature = "postgres", feature = "sqlx-postgres"))]
fn pg_pools(c: &mut Criterion) {
    use passkey_links::store::postgres::{PostgresStore, deadpool_postgres, parse_config};
    use passkey_links::store::sqlx::{SqlxStore, parse_options, sqlx};
    let Ok(url) = std::env::var("PASSKEY_LINKS_DATABASE_URL") else {
        return;
    };
    let rt = runtime();
    let schema = format!("bench_pools_{}", Utc::now().timestamp_micros());
    let own = PostgresStore::connect(&url, 4)
        .unwrap()
        .in_schema(&schema)
        .unwrap();
    let (plain, sqlx_store, sqlx_unpinged) = rt.block_on(async {
        own.migrate().await.unwrap();
        let manager = deadpool_postgres::Manager::new(
            parse_config(&url).unwrap(),
            passkey_links::store::postgres::tokio_postgres::NoTls,
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(4)
            .build()
            .unwrap();
        let plain = PostgresStore::new(pool).in_schema(&schema).unwrap();
        let sqlx_pool = |ping: bool| {
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(4)
                .test_before_acquire(ping)
                .connect_lazy_with(parse_options(&url).unwrap())
        };
        (
            plain,
            SqlxStore::new(sqlx_pool(true)).in_schema(&schema).unwrap(),
            SqlxStore::new(sqlx_pool(false)).in_schema(&schema).unwrap(),
        )
    });
    let mut group = c.benchmark_group("pg_pools");
    let long = rt.block_on(long_stream(&own, 200_000));
    macro_rules! pool {
        ($name:literal, $store:expr) => {{
            let service = service($store.clone(), policy());
            let me = rt.block_on(async {
                let org = new_org(&service).await;
                let me = users(&service, &org, 1).await.remove(0);
                for _ in 0..3_000 {
                    service.add_my_passwordless_link(&me).await.unwrap();
                }
                me
            });
            group.bench_function(concat!("issuance_after_3000/", $name), |b| {
                b.to_async(&rt)
                    .iter(|| async { service.add_my_passwordless_link(&me).await.unwrap() })
            });
            for (what, after) in [("tail", 199_999u64), ("page", 100_000)] {
                let id = format!("long_stream_read_{what}/{}", $name);
                group.bench_function(id, |b| {
                    b.to_async(&rt).iter(|| async {
                        $store
                            .read_many(&[(long.clone(), after)], 1_000)
                            .await
                            .unwrap()
                    })
                });
            }
        }};
    }
    pool!("store_pool", own);
    pool!("default_deadpool", plain);
    pool!("default_sqlx", sqlx_store);
    // sqlx pings a pooled connection before handing it out unless told not to.
    pool!("sqlx_without_ping", sqlx_unpinged);
    group.finish();
}

#[cfg(not(all(feature = "postgres", feature = "sqlx-postgres")))]
fn pg_pools(_: &mut Criterion) {}

/// A user stream of `events` events (after a creation written by the service), bulk inserted.
#[cfg(all(feature = "postgres", feature = "sqlx-postgres"))]
async fn long_stream(
    store: &passkey_links::store::postgres::PostgresStore,
    events: i64,
) -> StreamId {
    let service = service(store.clone(), policy());
    let org = new_org(&service).await;
    let me = users(&service, &org, 1).await.remove(0);
    let stream = StreamId::new(AggregateKind::User, user_id(&me)).unwrap();
    support::bulk_user_events(
        store,
        stream.id(),
        events + 1,
        "CASE WHEN g % 2 = 0 THEN 'user.locked' ELSE 'user.unlocked' END",
        "'{}'::jsonb",
    )
    .await;
    stream
}

#[cfg(not(feature = "postgres"))]
fn postgres_throughput(_: &mut Criterion) {}

#[cfg(not(feature = "postgres"))]
fn postgres(_: &mut Criterion) {
    eprintln!("skipped: postgres benches (build with --features postgres)");
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(4))
}

criterion_group! {
    name = benches;
    config = config();
    targets = floor, operations, history, unrelated_events, concurrency, postgres, postgres_throughput, pg_pools
}
criterion_main!(benches);
