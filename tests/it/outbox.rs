//! The delivery outbox on every store: sends return once the code is recorded as waiting; a
//! delivery worker (a separate service instance, as another process would be) delivers each
//! code on its own retry schedule, several at once, never after expiry; a code under a key the
//! worker lacks waits without holding anything up; a failed delivery stays listed and can be
//! redelivered; a worker killed between the notifier call and the `sent` append loses nothing.
//!
//! The worker's schedule runs on the service clock, so these tests move a manual clock between
//! rounds instead of sleeping: a minute-long outage takes milliseconds, deterministically.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::Duration;
use passkey_links::prelude::*;
use passkey_links::read::{ProjectionRunner, ProjectionStore, ReadModels};
use passkey_links::{
    DeliveryKey, DeliveryRetry, DeliveryRound, DeliveryWorker, Keyring, NotifyError,
};

use crate::scenarios::{Fixture, Inspect, check_request, config, link_params, types};

fn key() -> DeliveryKey {
    DeliveryKey::new([42; 32])
}

fn outbox_config() -> Config {
    config().with_outbox(key())
}

/// A notifier in front of a provider that de-duplicates by idempotency key: it can be down,
/// fail the next `fail_next` calls, reject, or hang after handing a message to the provider
/// (the worker's crash point: the provider has the message, the worker has not recorded it).
#[derive(Clone, Default)]
struct Front {
    provider: RecordingNotifier,
    calls: Arc<Mutex<Vec<Envelope>>>,
    down: Arc<AtomicBool>,
    rejecting: Arc<AtomicBool>,
    fail_next: Arc<AtomicU32>,
    hang_after_handing_over: Arc<AtomicBool>,
    handed_over: Arc<tokio::sync::Notify>,
}

impl Front {
    fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    fn links(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|call| match &call.message {
                Message::RegistrationLink { link, .. } => link.expose().to_owned(),
                other => panic!("{other:?}"),
            })
            .collect()
    }
}

impl Notifier for Front {
    async fn deliver(&self, envelope: &Envelope) -> Result<Receipt, NotifyError> {
        self.calls.lock().unwrap().push(envelope.clone());
        if self.down.load(Ordering::SeqCst) {
            return Err(NotifyError::Unavailable("relay down".into()));
        }
        if self.rejecting.load(Ordering::SeqCst) {
            return Err(NotifyError::Rejected("mailbox unavailable".into()));
        }
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(NotifyError::Unavailable("provider down".into()));
        }
        let receipt = self.provider.deliver(envelope).await?;
        if self.hang_after_handing_over.load(Ordering::SeqCst) {
            self.handed_over.notify_one();
            std::future::pending::<()>().await;
        }
        Ok(receipt)
    }
}

type Worker<S> = PasskeyLinks<S, Front, StaticGrants, ManualClock>;

/// A service instance on the same store with `config`, as another process would run it.
fn instance<S: EventStore + Clone>(f: &Fixture<S>, front: &Front, config: Config) -> Worker<S> {
    PasskeyLinks::new(f.store.clone(), front.clone(), StaticGrants::new(), config)
        .with_clock(f.clock.clone())
}

/// A second service instance with the deployment's key, as a worker process would run it.
fn worker_service<S: EventStore + Clone>(f: &Fixture<S>, front: &Front) -> Worker<S> {
    instance(f, front, outbox_config())
}

fn fast_retry(attempts: u32) -> DeliveryRetry {
    DeliveryRetry::until_expiry(StdDuration::from_millis(1), StdDuration::from_millis(4))
        .with_attempts(attempts)
        .without_jitter()
}

/// Rounds of `worker`, the clock moved a second between them (past any wait of
/// [`fast_retry`]), until nothing is pending.
async fn settle<S: EventStore + ProjectionStore + Clone>(
    worker: &DeliveryWorker<'_, S, Front, StaticGrants, ManualClock>,
    clock: &ManualClock,
) -> DeliveryRound {
    let mut total = DeliveryRound::default();
    for _ in 0..50 {
        let round = worker.run_once().await.unwrap();
        total.sent += round.sent;
        total.failed += round.failed;
        total.queued += round.queued;
        if worker.health().await.unwrap().pending == 0 {
            return total;
        }
        clock.advance(Duration::seconds(1));
    }
    panic!("codes still pending: {:?}", worker.health().await.unwrap());
}

async fn run_worker<S: EventStore + ProjectionStore + Clone>(
    service: &Worker<S>,
    clock: &ManualClock,
    retry: DeliveryRetry,
) -> DeliveryRound {
    settle(&DeliveryWorker::new(service).with_retry(retry), clock).await
}

async fn send<S: EventStore + Clone + Inspect>(f: &Fixture<S>, user: &str) -> Result<u64, Error> {
    send_by(&f.service, &f.admin_a, user).await
}

async fn send_by<S, N, A, C, R, P>(
    service: &PasskeyLinks<S, N, A, C, R, P>,
    caller: &Caller,
    user: &str,
) -> Result<u64, Error>
where
    S: EventStore + Clone + Inspect,
    N: Notifier,
    A: Authorizer,
    C: Clock,
    R: RandomSource,
    P: RelyingParty,
{
    let response = service
        .send_passwordless_registration(
            caller,
            None,
            SendPasswordlessRegistrationRequest {
                user_id: user.to_owned(),
            },
        )
        .await?;
    Ok(response.details.sequence)
}

async fn delivery_events<S: EventStore + Clone + Inspect>(f: &Fixture<S>) -> Vec<String> {
    let events = f.store.all_events().await;
    types(&events)
        .into_iter()
        .filter(|t| t.contains("code.sent") || t.contains("delivery.failed"))
        .map(str::to_owned)
        .collect()
}

/// The link of `envelope`, checked against the service: it must work.
async fn assert_link_works<S: EventStore + Clone + Inspect>(f: &Fixture<S>, link: &str) {
    let (user, _, code_id, code) = link_params(link);
    f.service
        .check_code(check_request(&user, &code_id, &code))
        .await
        .unwrap_or_else(|err| panic!("{link}: {err:?}"));
}

pub async fn the_outbox_delivers_after_the_request_returns<
    S: EventStore + ProjectionStore + Clone + Inspect,
>(
    store: S,
) {
    let f = Fixture::with_config(store, outbox_config()).await;
    // The request returns once the code is recorded as waiting: nothing was mailed yet.
    assert_eq!(send(&f, &f.ada).await.unwrap(), 1);
    assert!(f.notifier.delivered().is_empty());
    let front = Front::default();
    let worker = worker_service(&f, &front);
    let round = run_worker(&worker, &f.clock, fast_retry(3)).await;
    assert_eq!((round.queued, round.sent, round.failed), (1, 1, 0));
    let mail = front
        .provider
        .last_link(&UserId::new(&f.ada).unwrap())
        .unwrap();
    assert_link_works(&f, mail.expose()).await;
    assert_eq!(
        delivery_events(&f).await,
        ["user.human.passwordless.initialization.code.sent"]
    );
    // The secret is stored nowhere: only its digest.
    let (_, _, _, code) = link_params(mail.expose());
    let stored = serde_json::to_string(
        &f.store
            .all_events()
            .await
            .iter()
            .map(|e| &e.payload)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    crate::scenarios::assert_clean("stored events", &stored, std::slice::from_ref(&code));
    // Another worker (it reads from the checkpoint the first one saved) mails nothing more.
    let round = run_worker(&worker, &f.clock, fast_retry(3)).await;
    assert_eq!(round, DeliveryRound::default());
    assert_eq!(front.calls(), 1);
}

pub async fn the_outbox_retries_per_code_and_never_sends_a_dead_code<
    S: EventStore + ProjectionStore + Clone + Inspect,
>(
    store: S,
) {
    let f = Fixture::with_config(store, outbox_config()).await;
    let front = Front::default();
    let worker = worker_service(&f, &front);

    // Two transient failures, then the provider takes it: sent on the third call.
    send(&f, &f.ada).await.unwrap();
    front.fail_next.store(2, Ordering::SeqCst);
    run_worker(&worker, &f.clock, fast_retry(3)).await;
    assert_eq!(front.calls(), 3);
    assert_eq!(front.provider.delivered().len(), 1);
    assert_eq!(delivery_events(&f).await.len(), 1);

    // Failing more often than the retries allow: recorded as failed, with why.
    send(&f, &f.ada).await.unwrap();
    front.fail_next.store(10, Ordering::SeqCst);
    let round = run_worker(&worker, &f.clock, fast_retry(3)).await;
    assert_eq!(round.failed, 1);
    assert_eq!(front.calls(), 6);
    let events = f.store.all_events().await;
    assert_eq!(events.last().unwrap().payload["reason"], "unavailable");
    front.fail_next.store(0, Ordering::SeqCst);

    // A rejection is final at once: no retry.
    send(&f, &f.ada).await.unwrap();
    front.rejecting.store(true, Ordering::SeqCst);
    run_worker(&worker, &f.clock, fast_retry(3)).await;
    assert_eq!(front.calls(), 7);
    let events = f.store.all_events().await;
    assert_eq!(events.last().unwrap().payload["reason"], "rejected");
    front.rejecting.store(false, Ordering::SeqCst);

    // Expired before the worker came: recorded as expired, nothing mailed.
    send(&f, &f.ada).await.unwrap();
    f.clock.advance(Duration::hours(2));
    run_worker(&worker, &f.clock, fast_retry(3)).await;
    assert_eq!(front.calls(), 7);
    let events = f.store.all_events().await;
    let last = events.last().unwrap();
    assert_eq!(last.payload["reason"], "expired", "{last:?}");

    // Dead before the worker came (the user was locked): nothing mailed.
    send(&f, &f.ada).await.unwrap();
    f.service
        .update_user(&f.admin_a, None, &f.ada, UserChange::Lock)
        .await
        .unwrap();
    run_worker(&worker, &f.clock, fast_retry(3)).await;
    assert_eq!(front.calls(), 7);
    let events = f.store.all_events().await;
    assert_eq!(events.last().unwrap().payload["reason"], "no_longer_usable");

    // By default a code is retried until it expires: a relay down for the whole lifetime
    // fails it as expired, never earlier.
    f.service
        .update_user(&f.admin_a, None, &f.ada, UserChange::Unlock)
        .await
        .unwrap();
    send(&f, &f.ada).await.unwrap();
    front.down.store(true, Ordering::SeqCst);
    let patient = DeliveryWorker::new(&worker).with_retry(DeliveryRetry::default());
    let lifetime = f.service.config().policy().lifetime();
    let mut waited = Duration::zero();
    while patient.health().await.unwrap().pending > 0 || waited.is_zero() {
        patient.run_once().await.unwrap();
        assert!(
            delivery_events(&f)
                .await
                .last()
                .unwrap()
                .ends_with("failed")
        );
        f.clock.advance(Duration::seconds(10));
        waited += Duration::seconds(10);
        assert!(waited <= lifetime + Duration::minutes(2), "{waited}");
    }
    assert!(
        waited >= lifetime,
        "failed after {waited}, before the code expired"
    );
    let events = f.store.all_events().await;
    assert_eq!(events.last().unwrap().payload["reason"], "expired");
}

pub async fn a_relay_down_for_a_minute_delays_queued_codes_by_about_that<
    S: EventStore + ProjectionStore + Clone + Inspect,
>(
    store: S,
) {
    let f = Fixture::with_config(store, outbox_config()).await;
    let front = Front::default();
    let service = worker_service(&f, &front);
    let worker = DeliveryWorker::new(&service);
    // Twenty codes queue up (for twenty users) while the relay is down.
    let mut users = Vec::new();
    for n in 0..20 {
        let user = f.add_verified_user(&format!("queued-{n}")).await;
        send(&f, &user).await.unwrap();
        users.push(user);
    }
    front.down.store(true, Ordering::SeqCst);
    let step = Duration::milliseconds(250);
    let started = f.clock.now();
    let mut back_at = None;
    let mut delivered_at = None;
    for _ in 0..2_000 {
        let elapsed = f.clock.now() - started;
        if back_at.is_none() && elapsed >= Duration::seconds(60) {
            front.down.store(false, Ordering::SeqCst);
            back_at = Some(elapsed);
        }
        worker.run_once().await.unwrap();
        if front.provider.delivered().len() == users.len() {
            delivered_at = Some(f.clock.now() - started);
            break;
        }
        f.clock.advance(step);
    }
    let delivered_at = delivered_at.expect("every code delivered");
    // Every code was delivered within one longest wait of the relay's return: the outage's
    // time, not twenty times it (one code after another would have taken 20 × 60 s).
    let max_wait = Duration::from_std(DeliveryRetry::default().max_delay).unwrap();
    assert!(
        delivered_at <= Duration::seconds(60) + max_wait + step,
        "all delivered {delivered_at} after the outage began"
    );
    let calls = front.calls();
    eprintln!("20 codes, relay down 60 s: all delivered at {delivered_at}, {calls} notifier calls");
    // Each code was tried on its own backoff while the relay was down: a handful of calls
    // each, not one per round.
    assert!(calls <= users.len() * 12, "{calls} notifier calls");
    assert_eq!(
        delivery_events(&f).await.len(),
        users.len(),
        "one `sent` per code, no failure"
    );
    for user in &users {
        let link = front
            .provider
            .last_link(&UserId::new(user).unwrap())
            .unwrap();
        assert_link_works(&f, link.expose()).await;
    }
    // Its last `sent` events are feed events it has not read yet: one more round reads them.
    assert!(worker.health().await.unwrap().lag > 0);
    worker.run_once().await.unwrap();
    let health = worker.health().await.unwrap();
    assert_eq!((health.pending, health.sent_last_hour), (0, users.len()));
    assert_eq!((health.lag, health.checkpoint), (0, health.feed_head));
}

pub async fn a_code_under_a_key_the_worker_lacks_waits_and_holds_nothing_up<
    S: EventStore + ProjectionStore + Clone + Inspect,
>(
    store: S,
) {
    let f = Fixture::with_config(store, outbox_config()).await;
    let front = Front::default();
    // An instance that rotated to a new key issues the middle code.
    let rotated_keys = Keyring::new("rotated", DeliveryKey::new([7; 32]))
        .unwrap()
        .with_previous("default", key())
        .unwrap();
    let rotated = instance(&f, &front, config().with_outbox(rotated_keys));
    send(&f, &f.ada).await.unwrap();
    let second = f.add_verified_user("second").await;
    send_by(&rotated, &Caller::System, &second).await.unwrap();
    let third = f.add_verified_user("third").await;
    send(&f, &third).await.unwrap();
    let events = f.store.all_events().await;
    let requested: Vec<_> = events
        .iter()
        .filter(|e| e.event_type.ends_with("code.requested"))
        .map(|e| e.payload["keyId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(requested, ["default", "rotated", "default"]);

    // A worker holding only the old key delivers the codes around the foreign one.
    let old = worker_service(&f, &front);
    let worker = DeliveryWorker::new(&old).with_retry(fast_retry(3));
    for _ in 0..3 {
        worker.run_once().await.unwrap();
        f.clock.advance(Duration::seconds(1));
    }
    assert_eq!(front.provider.delivered().len(), 2);
    let health = worker.health().await.unwrap();
    assert_eq!(
        (health.pending, health.waiting_for_key),
        (1, 1),
        "{health:?}"
    );
    assert_eq!(health.missing_keys, ["rotated"]);
    // The foreign code was never mailed (its link would be dead) and nothing was recorded.
    assert_eq!(delivery_events(&f).await.len(), 2);
    assert_eq!(front.calls(), 2);

    // A worker holding the new key (and the old one) delivers it; a code issued under the
    // old key before the rotation is still delivered by it.
    send(&f, &f.ada).await.unwrap();
    let new = instance(
        &f,
        &front,
        config().with_outbox(rotated.config().keyring().unwrap().clone()),
    );
    let round = run_worker(&new, &f.clock, fast_retry(3)).await;
    assert_eq!(round.sent, 2, "{round:?}");
    for link in front.links() {
        let (user, ..) = link_params(&link);
        if user == f.ada {
            continue; // superseded by the later code to Ada
        }
        assert_link_works(&f, &link).await;
    }
    // The old worker now finds the foreign code delivered and lets go of it.
    f.clock.advance(Duration::minutes(1));
    worker.run_once().await.unwrap();
    assert_eq!(worker.health().await.unwrap().pending, 0);
}

pub async fn a_failed_delivery_stays_listed_and_can_be_redelivered<
    S: EventStore + ProjectionStore + Clone + Inspect,
>(
    store: S,
) {
    let f = Fixture::with_config(store, outbox_config()).await;
    let front = Front::default();
    let service = worker_service(&f, &front);
    send(&f, &f.ada).await.unwrap();
    front.rejecting.store(true, Ordering::SeqCst);
    run_worker(&service, &f.clock, fast_retry(3)).await;
    let read_models = ProjectionRunner::new(f.store.clone(), ReadModels::new(f.store.clone()));
    read_models.catch_up().await.unwrap();
    let live = f
        .service
        .list_live_links(
            &f.admin_a,
            None,
            ListLiveLinksRequest {
                user_id: f.ada.clone(),
            },
        )
        .await
        .unwrap()
        .result;
    assert_eq!(live.len(), 1);
    assert_eq!(
        (live[0].delivery.as_str(), live[0].failure.as_deref()),
        ("FAILED", Some("rejected"))
    );
    let reference = live[0].code_reference.clone();

    // Redelivering asks as a send does: a reader may not.
    let redeliver = |caller: &Caller, reference: &str| {
        let (caller, request) = (
            caller.clone(),
            RedeliverCodeRequest {
                user_id: f.ada.clone(),
                code_reference: reference.to_owned(),
            },
        );
        let service = &f.service;
        async move { service.redeliver_code(&caller, None, request).await }
    };
    let err = redeliver(&f.reader_a, &reference).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err:?}");
    front.rejecting.store(false, Ordering::SeqCst);
    redeliver(&f.admin_a, &reference).await.unwrap();
    // Only a failed code is redelivered: now it waits for delivery.
    let err = redeliver(&f.admin_a, &reference).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err:?}");
    run_worker(&service, &f.clock, fast_retry(3)).await;
    let calls = front.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    assert_ne!(
        calls[0].idempotency_key, calls[1].idempotency_key,
        "a redelivery is a new message"
    );
    let links = front.links();
    assert_eq!(links[0], links[1], "the same link");
    assert_link_works(&f, &links[1]).await;
    read_models.catch_up().await.unwrap();
    assert_eq!(read_models.health().await.unwrap().lag, 0);
}

pub async fn a_running_worker_goes_on_until_told_to_stop<
    S: EventStore + ProjectionStore + Clone + Inspect,
>(
    store: S,
) {
    let f = Fixture::with_config(store, outbox_config()).await;
    let front = Front::default();
    // Without the deployment's keys a worker could deliver nobody's codes: a configuration
    // fault, reported at once.
    let keyless = instance(&f, &front, config());
    let err = DeliveryWorker::new(&keyless)
        .run(std::future::pending())
        .await
        .unwrap_err();
    assert!(err.message().contains("keys"), "{err:?}");

    // With a foreign code queued and the relay failing, a running worker keeps going.
    let foreign = instance(
        &f,
        &front,
        config().with_outbox(Keyring::new("elsewhere", DeliveryKey::new([3; 32])).unwrap()),
    );
    send_by(&foreign, &Caller::System, &f.ada).await.unwrap();
    front.fail_next.store(3, Ordering::SeqCst);
    let service = worker_service(&f, &front);
    let worker = DeliveryWorker::new(&service)
        .with_retry(fast_retry(10))
        .with_poll_interval(StdDuration::from_millis(5));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = worker.run(async {
        let _ = stopped.await;
    });
    let drive = async {
        let third = f.add_verified_user("later").await;
        send(&f, &third).await.unwrap();
        while front.provider.delivered().is_empty() {
            f.clock.advance(Duration::milliseconds(10));
            tokio::time::sleep(StdDuration::from_millis(5)).await;
        }
        let _ = stop.send(());
    };
    let (ran, ()) = tokio::join!(run, drive);
    ran.unwrap();
    let health = worker.health().await.unwrap();
    assert_eq!((health.waiting_for_key, health.sent_last_hour), (1, 1));
}

pub async fn a_worker_killed_after_the_notifier_call_loses_nothing<
    S: EventStore + ProjectionStore + Clone + Inspect,
>(
    store: S,
) {
    let f = Fixture::with_config(store, outbox_config()).await;
    send(&f, &f.ada).await.unwrap();
    let front = Front::default();
    front.hang_after_handing_over.store(true, Ordering::SeqCst);
    let worker = worker_service(&f, &front);
    // The worker dies once the provider has the message and before `sent` is appended.
    tokio::select! {
        _ = run_worker(&worker, &f.clock, fast_retry(3)) => panic!("the worker was to hang"),
        () = front.handed_over.notified() => {}
    }
    assert_eq!(front.provider.delivered().len(), 1);
    assert!(delivery_events(&f).await.is_empty(), "nothing recorded yet");
    let mail = front
        .provider
        .last_link(&UserId::new(&f.ada).unwrap())
        .unwrap();
    let (user, _, code_id, code) = link_params(mail.expose());
    assert!(
        f.service
            .check_code(check_request(&user, &code_id, &code))
            .await
            .is_err(),
        "not usable before `sent` is recorded"
    );

    // A new worker (a restarted process) starts from the checkpoint before the code: it hands
    // the same message — same idempotency key, same link — to the provider, which sends it
    // once, and records `sent` once.
    front.hang_after_handing_over.store(false, Ordering::SeqCst);
    let restarted = worker_service(&f, &front);
    run_worker(&restarted, &f.clock, fast_retry(3)).await;
    let calls = front.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].idempotency_key, calls[1].idempotency_key);
    let links = front.links();
    assert_eq!(links[0], links[1], "the retried mail carries the same link");
    assert_eq!(
        front.provider.delivered().len(),
        1,
        "the provider sent it once"
    );
    assert_eq!(
        delivery_events(&f).await,
        ["user.human.passwordless.initialization.code.sent"]
    );
    f.service
        .check_code(check_request(&user, &code_id, &code))
        .await
        .unwrap();
}

/// One `#[tokio::test]` per outbox scenario for a backend (as `service_scenarios!`).
#[macro_export]
macro_rules! outbox_scenarios {
    ($store:ident) => {
        $crate::outbox_scenarios!(@each $store,
            the_outbox_delivers_after_the_request_returns,
            the_outbox_retries_per_code_and_never_sends_a_dead_code,
            a_relay_down_for_a_minute_delays_queued_codes_by_about_that,
            a_code_under_a_key_the_worker_lacks_waits_and_holds_nothing_up,
            a_failed_delivery_stays_listed_and_can_be_redelivered,
            a_running_worker_goes_on_until_told_to_stop,
            a_worker_killed_after_the_notifier_call_loses_nothing
        );
    };
    (@each $store:ident, $($name:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some(store) = $store().await else { return };
            $crate::outbox::$name(store).await;
        }
    )*};
}
