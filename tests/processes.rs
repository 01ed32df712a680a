//! Several service processes on one PostgreSQL server, and a server that restarts and loses its
//! connections under load. This binary re-runs itself as the worker processes (the `worker`
//! test does the work only when `PASSKEY_LINKS_WORKER` is set), so no extra program is built.
//! Loopback only; every wait is bounded. The failover run starts a primary and a synchronous
//! standby of its own, or fails over your cluster (see `Cluster`).

#![cfg(feature = "postgres")]

#[path = "it/authenticator.rs"]
mod authenticator;
#[path = "it/own_server.rs"]
mod own_server;
#[path = "it/pg.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use passkey_links::prelude::*;
use passkey_links::store::postgres::{PostgresStore, tokio_postgres};
use passkey_links::webauthn::WebauthnRelyingParty;
use serde::{Deserialize, Serialize};
use serde_json::json;

use authenticator::{Authenticator, ORIGIN, RP_ID};

type Service = PasskeyLinks<
    PostgresStore,
    RecordingNotifier,
    StaticGrants,
    SystemClock,
    OsRandom,
    WebauthnRelyingParty,
>;

fn service(store: PostgresStore) -> Service {
    let links = LinkConfig::new(BaseUrl::parse(ORIGIN).unwrap());
    let policy = Policy::default().with_rate_limit(None);
    PasskeyLinks::new(
        store,
        RecordingNotifier::new(),
        StaticGrants::new(),
        Config::new(links).with_policy(policy),
    )
    .with_relying_party(WebauthnRelyingParty::new(RP_ID, "Example ID", &[ORIGIN]).unwrap())
}

/// A link: its user, code id and secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Link {
    user: String,
    code_id: String,
    code: String,
}

/// What the parent hands its workers.
#[derive(Debug, Serialize, Deserialize)]
struct Plan {
    config: String,
    schema: String,
    /// Every worker tries to register a passkey with each of these.
    consume: Vec<Link>,
    /// Every worker guesses wrong this many times on each of these.
    guess: Vec<Link>,
    wrong_guesses: u32,
    /// Workers start when this file exists.
    go: PathBuf,
}

/// What one worker reports.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Report {
    /// Codes this worker registered a passkey with.
    consumed: Vec<String>,
    /// Errors by public error id.
    errors: Vec<String>,
}

fn links(url: &str, code_id: &str) -> Link {
    let url = url::Url::parse(url).unwrap();
    let get = |key: &str| {
        url.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    assert_eq!(get("codeID"), code_id);
    Link {
        user: get("userID"),
        code_id: get("codeID"),
        code: get("code"),
    }
}

fn request<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).unwrap()
}

/// Creates an org with `users` verified humans and issues each a returned link.
async fn seed(service: &Service, users: usize) -> Vec<Link> {
    let sys = Caller::System;
    let org = service
        .add_org(&sys, request(json!({"name": "ACME"})))
        .await
        .unwrap()
        .org_id;
    let mut issued = Vec::new();
    for n in 0..users {
        let user = service
            .add_human_user(
                &sys,
                Some(&org),
                request(json!({
                    "userName": format!("user{n}"),
                    "displayName": format!("User {n}"),
                    "email": format!("user{n}@example.com"),
                    "isEmailVerified": true,
                })),
            )
            .await
            .unwrap()
            .user_id;
        issued.push(issue(service, &user).await.unwrap());
    }
    issued
}

async fn issue(service: &Service, user: &str) -> Result<Link, Error> {
    let response = service
        .add_passwordless_registration(&Caller::System, None, request(json!({"userId": user})))
        .await?;
    let code_id = url::Url::parse(&response.link)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "codeID")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    Ok(links(&response.link, &code_id))
}

/// Starts registering a passkey with a link's code, as a login UI does.
async fn start_registration(
    service: &Service,
    link: &Link,
) -> Result<RegisterPasskeyResponse, Error> {
    service
        .register_passkey(request(json!({
            "userId": link.user,
            "code": {"id": link.code_id, "code": link.code},
        })))
        .await
}

/// Finishes a registration with the authenticator's `response` to `started`.
async fn finish_registration(
    service: &Service,
    link: &Link,
    started: &RegisterPasskeyResponse,
    response: &serde_json::Value,
) -> Result<(), Error> {
    service
        .verify_passkey_registration(request(json!({
            "userId": link.user,
            "passkeyId": started.passkey_id,
            "publicKeyCredential": response,
            "passkeyName": "key",
            "ceremonySecret": started.ceremony_secret,
        })))
        .await
        .map(|_| ())
}

/// Registers a passkey with a link's code, as a login UI does.
async fn enroll(service: &Service, link: &Link) -> Result<(), Error> {
    let started = start_registration(service, link).await?;
    let response = Authenticator::new().create(&started.public_key_credential_creation_options);
    finish_registration(service, link, &started, &response).await
}

/// Waits (at most a minute) for the parent's start signal.
async fn wait_for_go(go: &Path) {
    let started = Instant::now();
    while !go.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no start signal"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The worker process: races the plan's consumes and wrong guesses, prints its report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker() {
    let Ok(plan_path) = std::env::var("PASSKEY_LINKS_WORKER") else {
        return; // run as a test, not as a worker: nothing to do
    };
    let plan: Plan = serde_json::from_slice(&std::fs::read(&plan_path).unwrap()).unwrap();
    let store = PostgresStore::connect(&plan.config, 4)
        .unwrap()
        .in_schema(&plan.schema)
        .unwrap();
    let service = service(store);
    wait_for_go(&plan.go).await;
    let mut report = Report::default();
    for link in &plan.consume {
        match enroll(&service, link).await {
            Ok(()) => report.consumed.push(link.code_id.clone()),
            Err(err) => report.errors.push(err.id().to_owned()),
        }
    }
    for link in &plan.guess {
        for n in 0..plan.wrong_guesses {
            let wrong = request(json!({
                "userId": link.user,
                "codeId": link.code_id,
                "code": format!("wrong-guess-{n}-0000000000000"),
            }));
            if let Err(err) = service.check_code(wrong).await {
                report.errors.push(err.id().to_owned());
            }
        }
    }
    println!("REPORT {}", serde_json::to_string(&report).unwrap());
}

fn unique_schema(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    )
}

/// Invariants every history must keep, as SQL over the events table: each query counts
/// violations.
const CONSISTENCY: &[(&str, &str)] = &[
    (
        "streams with a version gap",
        "SELECT count(*) FROM (SELECT 1 FROM {t} GROUP BY stream_type, stream_id
           HAVING min(version) <> 1 OR max(version) <> count(*)) v",
    ),
    (
        "codes consumed twice",
        "SELECT count(*) FROM (SELECT 1 FROM {t}
           WHERE event_type = 'user.human.passwordless.initialization.code.check.succeeded'
           GROUP BY stream_id HAVING count(*) > 1) v",
    ),
    (
        "passkeys without a consumed code",
        "SELECT count(*) FROM {t} p
         WHERE p.event_type = 'user.human.passwordless.token.verified'
           AND NOT EXISTS (SELECT 1 FROM {t} c
             WHERE c.stream_type = 'passwordless_init_code' AND c.stream_id = p.payload->>'codeId'
               AND c.event_type = 'user.human.passwordless.initialization.code.check.succeeded')",
    ),
    (
        "sent codes never requested before",
        "SELECT count(*) FROM {t} s
         WHERE s.event_type = 'user.human.passwordless.initialization.code.sent'
           AND NOT EXISTS (SELECT 1 FROM {t} r
             WHERE r.stream_type = s.stream_type AND r.stream_id = s.stream_id
               AND r.event_type = 'user.human.passwordless.initialization.code.requested'
               AND r.version < s.version)",
    ),
];

async fn assert_consistent(store: &PostgresStore) {
    let client = store.pool().get().await.unwrap();
    for (what, sql) in CONSISTENCY {
        let sql = sql.replace("{t}", store.table());
        let violations: i64 = client.query_one(&sql, &[]).await.unwrap().get(0);
        assert_eq!(violations, 0, "{what}");
    }
}

async fn count_events(store: &PostgresStore, event_type: &str, stream_id: &str) -> i64 {
    let client = store.pool().get().await.unwrap();
    let sql = format!(
        "SELECT count(*) FROM {} WHERE event_type = $1 AND stream_id = $2",
        store.table()
    );
    client
        .query_one(&sql, &[&event_type, &stream_id])
        .await
        .unwrap()
        .get(0)
}

/// Three processes race to register passkeys with the same codes and to guess other codes
/// wrong: each code registers exactly one passkey, each guessed code records exactly the cap
/// of failed checks, and the history stays consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_race_consumes_and_wrong_guesses() {
    if std::env::var("PASSKEY_LINKS_WORKER").is_ok() {
        return;
    }
    let Some(config) = pg::database_url() else {
        return;
    };
    let schema = unique_schema("procs");
    let store = PostgresStore::connect(&config, 4)
        .unwrap()
        .in_schema(&schema)
        .unwrap();
    store.migrate().await.unwrap();
    let setup = service(store.clone());
    let mut issued = seed(&setup, 8).await;
    let guess = issued.split_off(5);
    let dir = std::env::temp_dir().join(&schema);
    std::fs::create_dir_all(&dir).unwrap();
    let plan = Plan {
        config: config.clone(),
        schema: schema.clone(),
        consume: issued.clone(),
        guess: guess.clone(),
        wrong_guesses: 3,
        go: dir.join("go"),
    };
    let plan_path = dir.join("plan.json");
    std::fs::write(&plan_path, serde_json::to_vec(&plan).unwrap()).unwrap();

    let workers: Vec<_> = (0..3).map(|_| spawn_worker(&plan_path)).collect();
    std::fs::write(&plan.go, b"go").unwrap();
    let reports: Vec<Report> = workers.into_iter().map(collect_report).collect();
    std::fs::remove_dir_all(&dir).unwrap();

    for link in &issued {
        let winners = reports
            .iter()
            .filter(|r| r.consumed.contains(&link.code_id))
            .count();
        assert_eq!(winners, 1, "one process registers with {}", link.code_id);
        let consumed = count_events(
            &store,
            "user.human.passwordless.initialization.code.check.succeeded",
            &link.code_id,
        )
        .await;
        assert_eq!(consumed, 1, "consumed once");
    }
    let cap = i64::from(Policy::default().max_failed_checks());
    for link in &guess {
        let failed = count_events(
            &store,
            "user.human.passwordless.initialization.code.check.failed",
            &link.code_id,
        )
        .await;
        assert_eq!(
            failed, cap,
            "exactly the cap of failed checks, of 9 wrong guesses"
        );
    }
    for report in &reports {
        assert!(
            report
                .errors
                .iter()
                .all(|id| !id.starts_with("PKL-SVC-01") && !id.starts_with("PKL-STORE-04")),
            "no internal errors: {:?}",
            report.errors
        );
    }
    assert_consistent(&store).await;
}

fn spawn_worker(plan: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["worker", "--exact", "--nocapture", "--test-threads=1"])
        .env("PASSKEY_LINKS_WORKER", plan)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn collect_report(child: std::process::Child) -> Report {
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "worker failed");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let line = stdout
        .lines()
        .find_map(|line| line.split_once("REPORT ").map(|(_, report)| report))
        .expect("a worker report");
    serde_json::from_str(line).unwrap()
}

/// Under load, the server's backends are terminated twice and the server crashes and restarts
/// once: calls fail with retryable classes (never Internal), the service answers again
/// afterwards, and the history stays consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_and_terminated_backends_leave_a_consistent_history() {
    if std::env::var("PASSKEY_LINKS_WORKER").is_ok() {
        return;
    }
    let Some(server) = own_server::OwnServer::start(&[], |_| {}) else {
        return;
    };
    let config = server.config();
    let store = PostgresStore::connect_with_deadline(&config, 8, Duration::from_secs(2)).unwrap();
    store.migrate().await.unwrap();
    let service = std::sync::Arc::new(service(store.clone()));
    let issued = seed(&service, 6).await;
    let users: Vec<String> = issued.iter().map(|l| l.user.clone()).collect();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for task in 0..4 {
        let service = service.clone();
        let stop = stop.clone();
        let users = users.clone();
        load.push(tokio::spawn(async move {
            let mut errors: Vec<(String, ErrorKind)> = Vec::new();
            let mut ok = 0u32;
            let mut n = 0usize;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let user = &users[(task + n) % users.len()];
                let me = Caller::System;
                let result = match n % 3 {
                    0 => match issue(&service, user).await {
                        Ok(link) => enroll(&service, &link).await,
                        Err(err) => Err(err),
                    },
                    1 => service
                        .send_passwordless_registration(&me, None, request(json!({"userId": user})))
                        .await
                        .map(|_| ()),
                    _ => match issue(&service, user).await {
                        Ok(link) => service
                            .check_code(request(json!({
                                "userId": link.user,
                                "codeId": link.code_id,
                                "code": "wrong-0000000000000000",
                            })))
                            .await
                            .map(|_| ()),
                        Err(err) => Err(err),
                    },
                };
                match result {
                    Ok(()) => ok += 1,
                    Err(err) => errors.push((err.id().to_owned(), err.kind())),
                }
            }
            (ok, errors)
        }));
    }
    let admin = PostgresStore::connect(&config, 1).unwrap();
    let terminate = || async {
        let client = admin.pool().get().await.unwrap();
        client
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
                &[],
            )
            .await
            .unwrap();
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    terminate().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    terminate().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    server.crash_restart();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);

    let mut ok = 0;
    let mut failures: Vec<(String, ErrorKind)> = Vec::new();
    for task in load {
        let (n, errors) = task.await.unwrap();
        ok += n;
        failures.extend(errors);
    }
    let mut by_id: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for (id, _) in &failures {
        *by_id.entry(id.as_str()).or_default() += 1;
    }
    eprintln!("under faults: {ok} calls succeeded; failures by error id: {by_id:?}");
    assert!(ok > 0, "some calls succeeded");
    assert!(
        failures.iter().any(|(_, kind)| kind.is_retryable()),
        "the faults were felt: {failures:?}"
    );
    let internal: Vec<_> = failures
        .iter()
        .filter(|(_, kind)| *kind == ErrorKind::Internal)
        .collect();
    assert!(internal.is_empty(), "no Internal errors: {internal:?}");

    // The service answers again, and the history is consistent.
    let mut recovered = false;
    for _ in 0..40 {
        if issue(&service, &users[0]).await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(recovered, "the service answers after the restart");
    assert_consistent(&store).await;
}

/// The delivery key every process of the outbox test shares.
fn delivery_key() -> passkey_links::DeliveryKey {
    passkey_links::DeliveryKey::new([9; 32])
}

fn outbox_service(store: PostgresStore) -> PasskeyLinks<PostgresStore, MailFile, StaticGrants> {
    let links = LinkConfig::new(BaseUrl::parse(ORIGIN).unwrap());
    PasskeyLinks::new(
        store,
        MailFile::new(PathBuf::new(), false),
        StaticGrants::new(),
        Config::new(links).with_outbox(delivery_key()),
    )
}

/// A notifier that appends each message (its idempotency key and link) to a file and syncs it
/// — the mail provider's log — taking `pause` per message; and, when told, kills its process
/// right after the first: the crash between the notifier call and the `sent` append.
struct MailFile {
    path: PathBuf,
    die_after_mailing: bool,
    pause: Duration,
}

impl MailFile {
    fn new(path: PathBuf, die_after_mailing: bool) -> Self {
        Self {
            path,
            die_after_mailing,
            pause: Duration::ZERO,
        }
    }
}

impl Notifier for MailFile {
    async fn deliver(&self, envelope: &Envelope) -> Result<Receipt, passkey_links::NotifyError> {
        use std::io::Write;
        let Message::RegistrationLink { link, .. } = &envelope.message else {
            return Ok(Receipt {
                message_id: "ignored".into(),
            });
        };
        tokio::time::sleep(self.pause).await;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .unwrap();
        // One write per line: a process killed mid-way leaves whole lines.
        file.write_all(format!("{}\t{}\n", envelope.idempotency_key, link.expose()).as_bytes())
            .unwrap();
        file.sync_all().unwrap();
        if self.die_after_mailing {
            // SIGKILL: nothing of this process runs on, as in a crash or an OOM kill.
            let _ = Command::new("kill")
                .args(["-KILL", &std::process::id().to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(60));
        }
        Ok(Receipt {
            message_id: envelope.idempotency_key.clone(),
        })
    }
}

/// What the parent hands a delivery worker process.
#[derive(Debug, Serialize, Deserialize)]
struct DeliveryPlan {
    config: String,
    schema: String,
    mail: PathBuf,
    die_after_mailing: bool,
    /// Run until killed (else deliver what is queued and exit).
    run_until_killed: bool,
}

/// The delivery worker process: delivers the outbox, mailing into the plan's file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery() {
    use passkey_links::{DeliveryRetry, DeliveryWorker};
    let Ok(plan_path) = std::env::var("PASSKEY_LINKS_DELIVERY_WORKER") else {
        return; // run as a test, not as a worker: nothing to do
    };
    let plan: DeliveryPlan = serde_json::from_slice(&std::fs::read(&plan_path).unwrap()).unwrap();
    let store = PostgresStore::connect(&plan.config, 4)
        .unwrap()
        .in_schema(&plan.schema)
        .unwrap();
    let links = LinkConfig::new(BaseUrl::parse(ORIGIN).unwrap());
    let mut mail = MailFile::new(plan.mail.clone(), plan.die_after_mailing);
    if plan.run_until_killed {
        mail.pause = Duration::from_millis(15);
    }
    let service = PasskeyLinks::new(
        store.clone(),
        mail,
        StaticGrants::new(),
        Config::new(links).with_outbox(delivery_key()),
    );
    let retry = DeliveryRetry::until_expiry(Duration::from_millis(10), Duration::from_millis(50));
    let worker = DeliveryWorker::new(&service)
        .with_retry(retry)
        .with_concurrency(4)
        .with_poll_interval(Duration::from_millis(10));
    if plan.run_until_killed {
        worker.run(std::future::pending()).await.unwrap();
    } else {
        let drained = worker.drain().await.unwrap();
        assert_eq!(worker.health().await.unwrap().pending, 0, "{drained:?}");
    }
}

/// Writes `plan` next to `dir` and starts a delivery worker process on it.
fn spawn_delivery(dir: &Path, name: &str, plan: &DeliveryPlan) -> std::process::Child {
    let path = dir.join(format!("plan-{name}.json"));
    std::fs::write(&path, serde_json::to_vec(plan).unwrap()).unwrap();
    Command::new(std::env::current_exe().unwrap())
        .args(["delivery", "--exact", "--nocapture", "--test-threads=1"])
        .env("PASSKEY_LINKS_DELIVERY_WORKER", &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A delivery worker process killed (SIGKILL) right after the mail provider took a link and
/// before `sent` was appended: the next worker process sends the same message — same
/// idempotency key, same link — and `sent` is recorded once; the link works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_worker_killed_after_mailing_loses_nothing() {
    let Some(config) = pg::database_url() else {
        return;
    };
    let schema = unique_schema("outbox");
    let store = PostgresStore::connect(&config, 4)
        .unwrap()
        .in_schema(&schema)
        .unwrap();
    store.migrate().await.unwrap();
    let seeded = seed(&service(store.clone()), 1).await.remove(0);
    let requests = outbox_service(store.clone());
    let org = requests
        .check_code(request(json!({
            "userId": seeded.user, "codeId": seeded.code_id, "code": seeded.code
        })))
        .await
        .unwrap()
        .org_id;
    let me = Caller::user(UserId::new(&seeded.user).unwrap(), OrgId::new(org).unwrap());
    requests.send_my_passwordless_link(&me).await.unwrap();

    let dir = std::env::temp_dir().join(unique_schema("mail"));
    std::fs::create_dir_all(&dir).unwrap();
    let mail = dir.join("mail.log");
    let run = |die: bool| {
        let plan = DeliveryPlan {
            config: config.clone(),
            schema: schema.clone(),
            mail: mail.clone(),
            die_after_mailing: die,
            run_until_killed: false,
        };
        spawn_delivery(&dir, &die.to_string(), &plan)
            .wait()
            .unwrap()
    };
    let sent = "user.human.passwordless.initialization.code.sent";
    let sent_count = || async {
        let client = store.pool().get().await.unwrap();
        let sql = format!(
            "SELECT count(*) FROM {} WHERE event_type = $1",
            store.table()
        );
        client
            .query_one(&sql, &[&sent])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };

    let killed = run(true);
    assert!(!killed.success(), "the first worker was to die");
    let mailed = std::fs::read_to_string(&mail).unwrap();
    assert_eq!(mailed.lines().count(), 1, "{mailed}");
    assert_eq!(sent_count().await, 0, "nothing recorded by the dead worker");

    let restarted = run(false);
    assert!(restarted.success());
    let mailed = std::fs::read_to_string(&mail).unwrap();
    let lines: Vec<&str> = mailed.lines().collect();
    assert_eq!(lines.len(), 2, "{mailed}");
    assert_eq!(lines[0], lines[1], "the same key and the same link, twice");
    assert_eq!(sent_count().await, 1);
    // A third worker finds nothing left to mail.
    assert!(run(false).success());
    assert_eq!(std::fs::read_to_string(&mail).unwrap().lines().count(), 2);

    let (_, link) = lines[0].split_once('\t').unwrap();
    let url = url::Url::parse(link).unwrap();
    let code_id = url
        .query_pairs()
        .find(|(k, _)| k == "codeID")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let mailed_link = links(link, &code_id);
    requests
        .check_code(request(json!({
            "userId": mailed_link.user, "codeId": mailed_link.code_id, "code": mailed_link.code
        })))
        .await
        .unwrap();
    assert_consistent(&store).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A delivery worker process killed with SIGKILL ten times in the middle of a run, then one
/// more run to the end: every live code is mailed at least once, `sent` is recorded exactly
/// once per code, nothing fails, and no dead (revoked) code is ever mailed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_worker_killed_ten_times_mails_every_code_and_records_each_once() {
    const CODES: usize = 40;
    const KILLS: usize = 10;
    let Some(config) = pg::database_url() else {
        return;
    };
    if std::env::var("PASSKEY_LINKS_DELIVERY_WORKER").is_ok() {
        return;
    }
    let schema = unique_schema("outbox_kills");
    let store = PostgresStore::connect(&config, 4)
        .unwrap()
        .in_schema(&schema)
        .unwrap();
    store.migrate().await.unwrap();
    let seeded = seed(&service(store.clone()), CODES).await;
    let requests = outbox_service(store.clone());
    for link in &seeded {
        requests
            .send_passwordless_registration(
                &Caller::System,
                None,
                request(json!({ "userId": link.user })),
            )
            .await
            .unwrap();
    }
    // Every fifth code dies before any worker runs.
    let codes = requested_codes(&store).await;
    assert_eq!(codes.len(), CODES);
    let mut revoked = std::collections::BTreeSet::new();
    for (user, code_id) in codes.iter().step_by(5) {
        requests
            .revoke_code(
                &Caller::System,
                None,
                request(json!({ "userId": user, "codeId": code_id })),
            )
            .await
            .unwrap();
        revoked.insert(code_id.clone());
    }

    let dir = std::env::temp_dir().join(unique_schema("mail"));
    std::fs::create_dir_all(&dir).unwrap();
    let mail = dir.join("mail.log");
    let plan = |run_until_killed| DeliveryPlan {
        config: config.clone(),
        schema: schema.clone(),
        mail: mail.clone(),
        die_after_mailing: false,
        run_until_killed,
    };
    let mailed_lines = || {
        std::fs::read_to_string(&mail)
            .unwrap_or_default()
            .lines()
            .count()
    };
    // Kill each worker a little after it mailed something new (a pseudo-random 0-40 ms).
    let mut kills = 0;
    for round in 0..KILLS {
        let before = mailed_lines();
        let mut worker = spawn_delivery(&dir, &format!("run-{round}"), &plan(true));
        let started = Instant::now();
        while mailed_lines() == before && started.elapsed() < Duration::from_secs(20) {
            if worker.try_wait().unwrap().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis((round as u64 * 7919) % 41)).await;
        if worker.try_wait().unwrap().is_none() {
            worker.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        worker.wait().unwrap();
    }
    assert_eq!(kills, KILLS, "every worker was killed mid-run");
    let killed_mail = mailed_lines();
    let finished = spawn_delivery(&dir, "final", &plan(false)).wait().unwrap();
    assert!(finished.success());

    let log = std::fs::read_to_string(&mail).unwrap();
    let mut mailed: std::collections::BTreeMap<String, usize> = Default::default();
    for line in log.lines() {
        let (key, _) = line.split_once('\t').unwrap();
        *mailed.entry(key.to_owned()).or_default() += 1;
    }
    let client = store.pool().get().await.unwrap();
    for (_, code_id) in &codes {
        let reference = CodeId::new(code_id).unwrap().reference().to_string();
        let key = format!("registration-link:{reference}");
        let sent = count_events(
            &store,
            "user.human.passwordless.initialization.code.sent",
            code_id,
        )
        .await;
        if revoked.contains(code_id) {
            assert_eq!(mailed.get(&key), None, "a revoked code was mailed");
            assert_eq!(sent, 0);
        } else {
            assert!(
                mailed.get(&key).copied().unwrap_or(0) >= 1,
                "{key} never mailed"
            );
            assert_eq!(sent, 1, "{code_id}: `sent` recorded once");
        }
    }
    let failed: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM {} WHERE event_type LIKE '%delivery.failed'",
                store.table()
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(failed, 0);
    let repeats = mailed.values().filter(|n| **n > 1).count();
    eprintln!(
        "{KILLS} kills: {killed_mail} mails before the last run, {} after; {repeats} codes mailed \
         more than once (the same message again), {} live codes each sent once",
        log.lines().count(),
        codes.len() - revoked.len()
    );
    assert_consistent(&store).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Each requested code's user and id, in the order they were requested.
async fn requested_codes(store: &PostgresStore) -> Vec<(String, String)> {
    let client = store.pool().get().await.unwrap();
    let sql = format!(
        "SELECT payload->>'userId', stream_id FROM {} WHERE event_type = $1 ORDER BY position",
        store.table()
    );
    client
        .query(
            &sql,
            &[&"user.human.passwordless.initialization.code.requested"],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

/// Synchronous sends while the server's backends are terminated again and again: no answer
/// claims nothing was written when the store holds the send's code, and every mailed link
/// either works (its `sent` recorded) or was answered "may be partly recorded — retry".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_under_terminated_backends_tell_the_truth_about_what_was_written() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const USERS: usize = 300;
    if std::env::var("PASSKEY_LINKS_WORKER").is_ok()
        || std::env::var("PASSKEY_LINKS_DELIVERY_WORKER").is_ok()
    {
        return;
    }
    let Some(server) = own_server::OwnServer::start(&[], |_| {}) else {
        return;
    };
    let config = server.config();
    let store = PostgresStore::connect_with_deadline(&config, 8, Duration::from_secs(2)).unwrap();
    store.migrate().await.unwrap();
    let service = Arc::new(service(store.clone()));
    // Every send goes to a user of its own, so what the store holds for that user is what the
    // send wrote.
    let users: Arc<Vec<String>> = Arc::new(
        seed(&service, USERS)
            .await
            .into_iter()
            .map(|link| link.user)
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for _ in 0..4 {
        let (service, users, next, stop) =
            (service.clone(), users.clone(), next.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let n = next.fetch_add(1, Ordering::SeqCst);
                let Some(user) = users.get(n) else { break };
                let answer = service
                    .send_passwordless_registration(
                        &Caller::System,
                        None,
                        request(json!({ "userId": user })),
                    )
                    .await;
                answers.push((user.clone(), answer.err()));
            }
            answers
        }));
    }
    let admin = PostgresStore::connect(&config, 1).unwrap();
    // Every client backend is terminated again and again for as long as sends are being
    // started (at 10 ms intervals: however fast the sends, several land among them).
    for _ in 0..500 {
        if next.load(Ordering::SeqCst) >= USERS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        let client = admin.pool().get().await.unwrap();
        client
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
                &[],
            )
            .await
            .unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let mut answers = Vec::new();
    for sender in senders {
        answers.extend(sender.await.unwrap());
    }
    // The store's truth, read after the faults through connections opened after them:
    // `pg_terminate_backend` only signals, so a pooled session may still be dying when
    // the last kill returns.
    let reader = PostgresStore::connect(&config, 1).unwrap();
    let mut untruthful = Vec::new();
    let mut dead_mail = Vec::new();
    let mut by_id: std::collections::BTreeMap<String, usize> = Default::default();
    let mut wrote_and_said_so = 0;
    for (user, error) in &answers {
        let id = error.as_ref().map_or("ok", |err| err.id()).to_owned();
        *by_id.entry(id).or_default() += 1;
        let client = reader.pool().get().await.unwrap();
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*) FILTER (WHERE event_type LIKE '%code.requested'),
                            count(*) FILTER (WHERE event_type LIKE '%code.sent')
                     FROM {} WHERE stream_type = 'passwordless_init_code'
                       AND stream_id IN (SELECT stream_id FROM {0}
                         WHERE event_type LIKE '%code.requested' AND payload->>'userId' = $1)",
                    store.table()
                ),
                &[user],
            )
            .await
            .unwrap();
        let (requested, sent): (i64, i64) = (row.get(0), row.get(1));
        let mailed = service
            .notifier()
            .last_link(&UserId::new(user).unwrap())
            .is_some();
        match error {
            Some(err) if err.claims_nothing_written() && requested > 0 => {
                untruthful.push((user.clone(), err.id().to_owned()));
            }
            Some(err) if err.id() == "PKL-SVC-06" => wrote_and_said_so += 1,
            _ => {}
        }
        let said_partial = error.as_ref().is_some_and(|err| err.id() == "PKL-SVC-06");
        if mailed && sent == 0 && !said_partial {
            dead_mail.push((user.clone(), error.as_ref().map(|e| e.id().to_owned())));
        }
    }
    eprintln!(
        "{} sends under terminated backends; answers by id: {by_id:?}; answered partly \
         recorded: {wrote_and_said_so}; claimed nothing written but wrote: {}; mailed, not \
         usable, not said: {}",
        answers.len(),
        untruthful.len(),
        dead_mail.len()
    );
    assert!(
        by_id.keys().any(|id| id != "ok"),
        "the faults were felt: {by_id:?}"
    );
    assert_eq!(untruthful, Vec::<(String, String)>::new());
    assert_eq!(dead_mail, Vec::<(String, Option<String>)>::new());
}

/// What the parent hands a process of the failover run.
#[derive(Debug, Serialize, Deserialize)]
struct FailoverPlan {
    config: String,
    schema: String,
    /// This process's own users (one live link each: processes do not contend on them).
    users: Vec<String>,
    /// Prefix of this process's idempotency keys.
    name: String,
    /// Workers start when this file exists, and stop starting calls at this time (Unix ms).
    go: PathBuf,
    until_ms: i64,
}

/// What a process of the failover run reports: every acknowledged call, and every attempt.
#[derive(Debug, Default, Serialize, Deserialize)]
struct FailoverReport {
    /// Acknowledged issuances, per user.
    issued: Vec<(String, String)>,
    /// Users with an acknowledged send, once per send.
    sent: Vec<String>,
    /// Codes an acknowledged registration consumed.
    enrolled: Vec<(String, String)>,
    checked: u64,
    /// When each call was acknowledged (Unix ms).
    acknowledged_ms: Vec<i64>,
    /// Failed attempts by error id.
    failures: std::collections::BTreeMap<String, u64>,
    attempts: u64,
    slowest_ms: u128,
}

/// The service deadline of the failover run: every call answers within it.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(6);

fn failover_service(store: PostgresStore) -> Service {
    let links = LinkConfig::new(BaseUrl::parse(ORIGIN).unwrap());
    let keys = passkey_links::Keyring::new("deploy-1", delivery_key()).unwrap();
    PasskeyLinks::new(
        store,
        RecordingNotifier::new(),
        StaticGrants::new(),
        Config::new(links)
            .with_policy(Policy::default().with_rate_limit(None))
            .with_keyring(keys)
            .with_deadline(Some(FAILOVER_DEADLINE)),
    )
    .with_relying_party(WebauthnRelyingParty::new(RP_ID, "Example ID", &[ORIGIN]).unwrap())
}

impl FailoverReport {
    /// Runs `call` under idempotency key `key` until it succeeds: every failure must be
    /// retryable and every attempt answer within the deadline.
    async fn until_done<T, F, Fut>(&mut self, key: &str, call: F) -> T
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let started = Instant::now();
        loop {
            let at = Instant::now();
            let result = IdempotencyKey::new(key).unwrap().scope(call()).await;
            let took = at.elapsed();
            self.attempts += 1;
            self.slowest_ms = self.slowest_ms.max(took.as_millis());
            assert!(
                took <= FAILOVER_DEADLINE + Duration::from_secs(1),
                "{key}: an attempt took {took:?}"
            );
            match result {
                Ok(value) => {
                    self.acknowledged_ms
                        .push(chrono::Utc::now().timestamp_millis());
                    return value;
                }
                Err(err) => {
                    assert!(err.kind().is_retryable(), "{key}: {err:?}");
                    *self.failures.entry(err.id().to_owned()).or_default() += 1;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{key}: no success in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A process of the failover run: issues, checks, registers and sends for its users, each
/// call under its own idempotency key and retried with it until it succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_worker() {
    let Ok(plan_path) = std::env::var("PASSKEY_LINKS_FAILOVER_WORKER") else {
        return; // run as a test, not as a worker: nothing to do
    };
    let plan: FailoverPlan = serde_json::from_slice(&std::fs::read(&plan_path).unwrap()).unwrap();
    let store = PostgresStore::connect_with_deadline(&plan.config, 4, Duration::from_secs(3))
        .unwrap()
        .in_schema(&plan.schema)
        .unwrap();
    let service = failover_service(store);
    wait_for_go(&plan.go).await;
    let mut report = FailoverReport::default();
    let mut n = 0;
    while chrono::Utc::now().timestamp_millis() < plan.until_ms {
        let user = plan.users[n % plan.users.len()].clone();
        let call = n;
        n += 1;
        let key = |step: &str| format!("{}-{call}-{step}", plan.name);
        let link = report
            .until_done(&key("issue"), || issue(&service, &user))
            .await;
        report.issued.push((user.clone(), link.code_id.clone()));
        let check = || {
            service.check_code(request(json!({
                "userId": link.user, "codeId": link.code_id, "code": link.code,
            })))
        };
        report.until_done(&key("check"), check).await;
        report.checked += 1;
        let register = || start_registration(&service, &link);
        let started = report.until_done(&key("register"), register).await;
        let response = Authenticator::new().create(&started.public_key_credential_creation_options);
        let verify = || finish_registration(&service, &link, &started, &response);
        report.until_done(&key("verify"), verify).await;
        report.enrolled.push((user.clone(), link.code_id.clone()));
        let send = || {
            service.send_passwordless_registration(
                &Caller::System,
                None,
                request(json!({"userId": user})),
            )
        };
        report.until_done(&key("send"), send).await;
        report.sent.push(user.clone());
    }
    println!("REPORT {}", serde_json::to_string(&report).unwrap());
}

/// Counts events of `event_type` per stream id (or per `payload->>'userId'` with `by_user`).
async fn counts_by(
    store: &PostgresStore,
    event_type: &str,
    by_user: bool,
) -> std::collections::BTreeMap<String, i64> {
    let client = store.pool().get().await.unwrap();
    let key = if by_user {
        "payload->>'userId'"
    } else {
        "stream_id"
    };
    let sql = format!(
        "SELECT {key}, count(*) FROM {} WHERE event_type = $1 GROUP BY 1",
        store.table()
    );
    client
        .query(&sql, &[&event_type])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1)))
        .collect()
}

fn tally<'a>(items: impl Iterator<Item = &'a String>) -> std::collections::BTreeMap<String, i64> {
    let mut counts = std::collections::BTreeMap::new();
    for item in items {
        *counts.entry(item.clone()).or_default() += 1;
    }
    counts
}

/// The cluster a failover runs on.
enum Cluster {
    /// A primary and a synchronous streaming standby on this machine.
    Own {
        primary: own_server::OwnServer,
        standby: own_server::OwnServer,
    },
    /// Yours: `PASSKEY_LINKS_HA_URL` (a multi-host connection string asking for the primary)
    /// and `PASSKEY_LINKS_HA_FAILOVER` (a shell command that fails the cluster over).
    Yours { url: String, fail_over: String },
}

impl Cluster {
    async fn start() -> Option<Self> {
        if let Ok(url) = std::env::var("PASSKEY_LINKS_HA_URL") {
            let fail_over = std::env::var("PASSKEY_LINKS_HA_FAILOVER")
                .expect("PASSKEY_LINKS_HA_FAILOVER: the command that fails your cluster over");
            return Some(Self::Yours { url, fail_over });
        }
        let primary = own_server::OwnServer::start(
            &["synchronous_standby_names = '*'\nsynchronous_commit = on".to_owned()],
            |_| {},
        )?;
        let standby = own_server::OwnServer::standby_of(&primary);
        // Until the standby is synchronous, a commit does not wait for it.
        let (client, connection) =
            tokio_postgres::connect(&primary.config(), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(connection);
        let mut synchronous = false;
        for _ in 0..300 {
            let row = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'",
                    &[],
                )
                .await
                .unwrap();
            if row.get::<_, i64>(0) > 0 {
                synchronous = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(synchronous, "the standby never became synchronous");
        Some(Self::Own { primary, standby })
    }

    fn url(&self) -> String {
        match self {
            Self::Own { primary, standby } => format!(
                "host={},{} user=postgres dbname=postgres target_session_attrs=read-write",
                primary.dir().display(),
                standby.dir().display()
            ),
            Self::Yours { url, .. } => url.clone(),
        }
    }

    fn fail_over(&self) {
        match self {
            Self::Own { primary, standby } => {
                // The machine dies; a second later the standby is promoted (a failover
                // manager's detection delay).
                primary.kill();
                std::thread::sleep(Duration::from_secs(1));
                standby.promote();
            }
            Self::Yours { fail_over, .. } => {
                let status = Command::new("sh").args(["-c", fail_over]).status().unwrap();
                assert!(status.success(), "{fail_over}");
            }
        }
    }
}

/// Three processes issue, check, register and send under load; mid-run the primary is killed
/// and the standby promoted. Every attempt answers within the deadline, with a result or a
/// retryable error; every call retried with its idempotency key completes exactly once; on the
/// new primary every acknowledged call's events are there and the history is consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_under_load_loses_nothing_acknowledged() {
    if std::env::var("PASSKEY_LINKS_FAILOVER_WORKER").is_ok()
        || std::env::var("PASSKEY_LINKS_WORKER").is_ok()
        || std::env::var("PASSKEY_LINKS_DELIVERY_WORKER").is_ok()
    {
        return;
    }
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let url = cluster.url();
    let schema = unique_schema("failover");
    let store = PostgresStore::connect_with_deadline(&url, 4, Duration::from_secs(3))
        .unwrap()
        .in_schema(&schema)
        .unwrap();
    store.migrate().await.unwrap();
    let setup = failover_service(store.clone());
    let users: Vec<String> = seed(&setup, 30).await.into_iter().map(|l| l.user).collect();
    let dir = std::env::temp_dir().join(&schema);
    std::fs::create_dir_all(&dir).unwrap();
    let go = dir.join("go");
    let until_ms = chrono::Utc::now().timestamp_millis() + 12_000;
    let workers: Vec<_> = users
        // Ten users per process: fewer passkeys each than a user may hold.
        .chunks(10)
        .enumerate()
        .map(|(n, users)| {
            let plan = FailoverPlan {
                config: url.clone(),
                schema: schema.clone(),
                users: users.to_vec(),
                name: format!("p{n}"),
                go: go.clone(),
                until_ms,
            };
            let path = dir.join(format!("plan-{n}.json"));
            std::fs::write(&path, serde_json::to_vec(&plan).unwrap()).unwrap();
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "failover_worker",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("PASSKEY_LINKS_FAILOVER_WORKER", &path)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    std::fs::write(&go, b"go").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let failed_over_at = chrono::Utc::now().timestamp_millis();
    cluster.fail_over();
    let reports: Vec<FailoverReport> = workers
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "a failover worker failed");
            let stdout = String::from_utf8(output.stdout).unwrap();
            let line = stdout
                .lines()
                .find_map(|line| line.split_once("REPORT ").map(|(_, report)| report))
                .expect("a worker report");
            serde_json::from_str(line).unwrap()
        })
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();

    let mut acknowledged: Vec<i64> = reports
        .iter()
        .flat_map(|r| r.acknowledged_ms.iter().copied())
        .collect();
    acknowledged.sort_unstable();
    let gap = acknowledged
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(0);
    let mut failures = std::collections::BTreeMap::<&str, u64>::new();
    for report in &reports {
        for (id, n) in &report.failures {
            *failures.entry(id.as_str()).or_default() += n;
        }
    }
    eprintln!(
        "failover: {} calls acknowledged over {} attempts by 3 processes; failures by error id \
         {failures:?}; slowest attempt {} ms; longest gap without an acknowledged call {gap} ms",
        acknowledged.len(),
        reports.iter().map(|r| r.attempts).sum::<u64>(),
        reports.iter().map(|r| r.slowest_ms).max().unwrap_or(0),
    );
    assert!(
        acknowledged.iter().any(|&at| at < failed_over_at)
            && acknowledged.iter().any(|&at| at > failed_over_at + 2_000),
        "calls were acknowledged before and after the failover"
    );

    // On the new primary: exactly what was acknowledged, once.
    let store = PostgresStore::connect_with_deadline(&url, 2, Duration::from_secs(3))
        .unwrap()
        .in_schema(&schema)
        .unwrap();
    assert_consistent(&store).await;
    let mut by_user = counts_by(
        &store,
        "user.human.passwordless.initialization.code.added",
        true,
    )
    .await;
    for user in &users {
        // The seed issued one link to each user.
        *by_user.entry(user.clone()).or_default() -= 1;
    }
    by_user.retain(|_, n| *n != 0);
    assert_eq!(
        by_user,
        tally(
            reports
                .iter()
                .flat_map(|r| r.issued.iter().map(|(user, _)| user))
        ),
        "each acknowledged issuance's code, once"
    );
    assert_eq!(
        counts_by(
            &store,
            "user.human.passwordless.initialization.code.requested",
            true
        )
        .await,
        tally(reports.iter().flat_map(|r| r.sent.iter())),
        "each acknowledged send's code, once"
    );
    let consumed = counts_by(
        &store,
        "user.human.passwordless.initialization.code.check.succeeded",
        false,
    )
    .await;
    let enrolled = tally(
        reports
            .iter()
            .flat_map(|r| r.enrolled.iter().map(|(_, code)| code)),
    );
    assert_eq!(
        consumed, enrolled,
        "each acknowledged registration's code, consumed once"
    );
    assert_eq!(
        counts_by(&store, "user.human.passwordless.token.verified", false)
            .await
            .values()
            .sum::<i64>(),
        enrolled.values().sum::<i64>(),
        "each acknowledged registration's passkey, once"
    );
    drop(cluster);
}
