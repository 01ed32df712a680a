//! The delivery outbox on every store: sends return once the code is recorded as waiting, a
//! delivery worker (a separate service instance, as another process would be) sends it with
//! bounded retries, never after expiry, and a worker killed between the notifier call and the
//! `sent` append loses nothing.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::Duration;
use passkey_links::prelude::*;
use passkey_links::read::ProjectionRunner;
use passkey_links::read::ProjectionStore;
use passkey_links::{DeliveryKey, DeliveryRetry, DeliveryWorker, NotifyError};

use crate::scenarios::{Fixture, Inspect, check_request, config, link_params, types};

fn key() -> DeliveryKey {
    DeliveryKey::new([42; 32])
}

fn outbox_config() -> Config {
    config().with_outbox(key())
}

/// A notifier in front of a provider that de-duplicates by idempotency key: it can fail the
/// next `fail_next` calls, or hang after handing a message to the provider (the worker's crash
/// point: the provider has the message, the worker has not recorded it).
#[derive(Clone, Default)]
struct Front {
    provider: RecordingNotifier,
    calls: Arc<Mutex<Vec<Envelope>>>,
    fail_next: Arc<AtomicU32>,
    hang_after_handing_over: Arc<AtomicBool>,
    handed_over: Arc<tokio::sync::Notify>,
}

impl Notifier for Front {
    async fn deliver(&self, envelope: &Envelope) -> Result<Receipt, NotifyError> {
        self.calls.lock().unwrap().push(envelope.clone());
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

/// A second service instance on the same store, as a worker process would run it.
fn worker_service<S: EventStore + Clone>(f: &Fixture<S>, front: &Front) -> Worker<S> {
    PasskeyLinks::new(
        f.store.clone(),
        front.clone(),
        StaticGrants::new(),
        outbox_config(),
    )
    .with_clock(f.clock.clone())
}

fn fast_retry(attempts: u32) -> DeliveryRetry {
    DeliveryRetry::new(
        attempts,
        StdDuration::from_millis(1),
        StdDuration::from_millis(4),
    )
}

async fn run_worker<S: EventStore + ProjectionStore + Clone>(
    service: &Worker<S>,
    retry: DeliveryRetry,
) -> u64 {
    let worker = DeliveryWorker::new(service).with_retry(retry);
    ProjectionRunner::new(service.store().clone(), worker)
        .catch_up()
        .await
        .unwrap()
}

async fn send<S: EventStore + Clone + Inspect>(f: &Fixture<S>, user: &str) -> Result<u64, Error> {
    let response = f
        .service
        .send_passwordless_registration(
            &f.admin_a,
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
    run_worker(&worker, fast_retry(3)).await;
    let mail = front
        .provider
        .last_link(&UserId::new(&f.ada).unwrap())
        .unwrap();
    let (user, _, code_id, code) = link_params(mail.expose());
    f.service
        .check_code(check_request(&user, &code_id, &code))
        .await
        .unwrap();
    assert_eq!(
        delivery_events(&f).await,
        ["user.human.passwordless.initialization.code.sent"]
    );
    // The secret is stored nowhere: only its digest.
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
    // Another run (it reads the events the first one appended) mails nothing more.
    run_worker(&worker, fast_retry(3)).await;
    assert_eq!(front.calls.lock().unwrap().len(), 1);
}

pub async fn the_outbox_retries_with_backoff_and_never_sends_a_dead_code<
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
    run_worker(&worker, fast_retry(3)).await;
    assert_eq!(front.calls.lock().unwrap().len(), 3);
    assert_eq!(front.provider.delivered().len(), 1);
    assert_eq!(delivery_events(&f).await.len(), 1);

    // Failing more often than the retries allow: recorded as failed, never usable.
    f.clock.advance(Duration::seconds(1));
    send(&f, &f.ada).await.unwrap();
    front.fail_next.store(10, Ordering::SeqCst);
    run_worker(&worker, fast_retry(3)).await;
    assert_eq!(front.calls.lock().unwrap().len(), 6);
    assert_eq!(
        delivery_events(&f).await.last().unwrap(),
        "user.human.passwordless.initialization.code.delivery.failed"
    );
    front.fail_next.store(0, Ordering::SeqCst);

    // Expired before the worker came: recorded as expired, nothing mailed.
    send(&f, &f.ada).await.unwrap();
    f.clock.advance(Duration::hours(2));
    run_worker(&worker, fast_retry(3)).await;
    assert_eq!(front.calls.lock().unwrap().len(), 6);
    let events = f.store.all_events().await;
    let last = events.last().unwrap();
    assert_eq!(last.payload["reason"], "expired", "{last:?}");

    // Dead before the worker came (the user was locked): nothing mailed.
    send(&f, &f.ada).await.unwrap();
    f.service
        .update_user(&f.admin_a, None, &f.ada, UserChange::Lock)
        .await
        .unwrap();
    run_worker(&worker, fast_retry(3)).await;
    assert_eq!(front.calls.lock().unwrap().len(), 6);
    let events = f.store.all_events().await;
    assert_eq!(events.last().unwrap().payload["reason"], "no_longer_usable");

    // A worker whose key does not derive the codes' secrets mails nothing and records nothing.
    f.service
        .update_user(&f.admin_a, None, &f.ada, UserChange::Unlock)
        .await
        .unwrap();
    send(&f, &f.ada).await.unwrap();
    let before = f.store.all_events().await.len();
    let wrong = PasskeyLinks::new(
        f.store.clone(),
        front.clone(),
        StaticGrants::new(),
        config().with_outbox(DeliveryKey::new([1; 32])),
    )
    .with_clock(f.clock.clone());
    let err = ProjectionRunner::new(f.store.clone(), DeliveryWorker::new(&wrong))
        .catch_up()
        .await
        .unwrap_err();
    assert!(err.message().contains("delivery key"), "{err:?}");
    assert_eq!(f.store.all_events().await.len(), before);
    assert_eq!(front.calls.lock().unwrap().len(), 6);
    run_worker(&worker, fast_retry(3)).await;
    assert_eq!(front.calls.lock().unwrap().len(), 7);
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
        _ = run_worker(&worker, fast_retry(3)) => panic!("the worker was to hang"),
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

    // A new worker (a restarted process) starts from the checkpoint before the batch: it hands
    // the same message — same idempotency key, same link — to the provider, which sends it
    // once, and records `sent` once.
    front.hang_after_handing_over.store(false, Ordering::SeqCst);
    let restarted = worker_service(&f, &front);
    run_worker(&restarted, fast_retry(3)).await;
    let calls = front.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].idempotency_key, calls[1].idempotency_key);
    let links: Vec<String> = calls
        .iter()
        .map(|call| match &call.message {
            Message::RegistrationLink { link, .. } => link.expose().to_owned(),
            other => panic!("{other:?}"),
        })
        .collect();
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
            the_outbox_retries_with_backoff_and_never_sends_a_dead_code,
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
