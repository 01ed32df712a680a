//! Faults: a write slipped in between load and append, failing appends, corrupted stored data
//! and a failing notifier. The service fails closed every time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use passkey_links::domain::{Event, UserEvent};
use passkey_links::ids::StreamId;
use passkey_links::prelude::*;
use passkey_links::store::{
    AppendBatch, Appended, Capabilities, ExpectedVersion, FeedEvent, NewEvent, Recalled,
    RecordedEvent, StoreError, StreamAppend,
};
use passkey_links::{NotifyError, Receipt};

use crate::scenarios::{self, Fixture, Inspect, check_request, link_params};

type Hook = Box<dyn FnOnce(&InMemoryStore) + Send>;

/// Wraps the in-memory store: can run a hook before the next append (a concurrent writer) and
/// fail chosen appends.
#[derive(Clone, Default)]
struct FaultyStore {
    inner: InMemoryStore,
    before_next_append: Arc<Mutex<Option<Hook>>>,
    appends: Arc<AtomicUsize>,
    fail_from_append: Arc<AtomicUsize>,
    lose_next_answer: Arc<std::sync::atomic::AtomicBool>,
}

impl FaultyStore {
    fn new() -> Self {
        Self {
            fail_from_append: Arc::new(AtomicUsize::new(usize::MAX)),
            ..Self::default()
        }
    }

    fn before_next_append(&self, hook: impl FnOnce(&InMemoryStore) + Send + 'static) {
        *self.before_next_append.lock().unwrap() = Some(Box::new(hook));
    }

    /// The next append is written, but its caller hears that the connection died after the
    /// write was sent (what a server crash or a cut network right after COMMIT looks like).
    fn lose_next_answer(&self) {
        self.lose_next_answer.store(true, Ordering::SeqCst);
    }

    /// Every append from the `n`-th (counting from now, 1-based) fails as unavailable.
    fn fail_appends_from(&self, n: usize) {
        let done = self.appends.load(Ordering::SeqCst);
        self.fail_from_append.store(done + n, Ordering::SeqCst);
    }
}

impl Inspect for FaultyStore {
    async fn all_events(&self) -> Vec<RecordedEvent> {
        self.inner.all_events()
    }
}

forward_personal_keys!(impl for FaultyStore);

impl EventStore for FaultyStore {
    async fn prune_idempotency(
        &self,
        older_than: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        self.inner.prune_idempotency(older_than).await
    }

    /// Only the required methods: no snapshots, loads through reads.
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    async fn read_many(
        &self,
        streams: &[(StreamId, u64)],
        limit: usize,
    ) -> Result<Vec<Vec<RecordedEvent>>, StoreError> {
        self.inner.read_many(streams, limit).await
    }

    fn sleep(&self, duration: std::time::Duration) -> impl std::future::Future<Output = ()> + Send {
        self.inner.sleep(duration)
    }

    async fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>, StoreError> {
        let n = self.appends.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= self.fail_from_append.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected append failure".into()));
        }
        let hook = self.before_next_append.lock().unwrap().take();
        if let Some(hook) = hook {
            hook(&self.inner);
        }
        let appended = self.inner.append(batch).await;
        if appended.is_ok() && self.lose_next_answer.swap(false, Ordering::SeqCst) {
            return Err(StoreError::OutcomeUnknown(
                "injected: the connection died after the write was sent".into(),
            ));
        }
        appended
    }

    async fn recall(&self, key: &str) -> Result<Option<Recalled>, StoreError> {
        self.inner.recall(key).await
    }

    async fn read_feed(&self, after: u64, limit: usize) -> Result<Vec<FeedEvent>, StoreError> {
        self.inner.read_feed(after, limit).await
    }
}

fn write_user_event(store: &InMemoryStore, user: &str, event: UserEvent) {
    let (event_type, payload) = Event::User(event).encode().unwrap();
    let append = StreamAppend {
        stream: StreamId::user(&UserId::new(user).unwrap()),
        expected: ExpectedVersion::Any,
        events: vec![NewEvent::new(event_type, 1, &payload, chrono::Utc::now()).unwrap()],
    };
    futures_ready(store.append(AppendBatch::new(vec![append]).unwrap())).unwrap();
}

/// The in-memory store's futures are ready at once.
fn futures_ready<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_slipped_in_between_load_and_append_is_decided_again() {
    let store = FaultyStore::new();
    let f = Fixture::new(store.clone()).await;
    let ada = f.ada.clone();
    // A concurrent admin locks Ada after the service loaded her as active.
    store.before_next_append(move |inner| {
        std::thread::scope(|s| {
            s.spawn(|| write_user_event(inner, &ada, UserEvent::Locked {}));
        });
    });
    let before = store.inner.len();
    let err = f
        .service
        .add_my_passwordless_link(&f.me(&f.ada))
        .await
        .expect_err("the re-decision sees the lock");
    assert_eq!(err.message_key(), "Errors.User.Locked");
    assert_eq!(
        err.domain_error(),
        Some(&passkey_links::domain::DomainError::UserLocked)
    );
    assert_eq!(
        store.inner.len(),
        before + 1,
        "only the concurrent lock was written"
    );

    // A harmless concurrent write: the service retries and succeeds on the new version.
    let carol = f.carol.clone();
    store.before_next_append(move |inner| {
        std::thread::scope(|s| {
            s.spawn(|| write_user_event(inner, &carol, UserEvent::EmailVerified {}));
        });
    });
    let added = f
        .service
        .add_my_passwordless_link(&f.me(&f.carol))
        .await
        .unwrap();
    let (user, _, code_id, code) = link_params(&added.link);
    f.service
        .check_code(check_request(&user, &code_id, &code))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_appends_fail_closed() {
    let store = FaultyStore::new();
    let f = Fixture::new(store.clone()).await;
    let before = store.inner.len();
    store.fail_appends_from(1);
    let err = f
        .service
        .add_my_passwordless_link(&f.me(&f.ada))
        .await
        .expect_err("no success without a write");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.kind().is_retryable());
    assert!(err.claims_nothing_written(), "{err:?}");
    assert_eq!(store.inner.len(), before, "no partial write");

    // Send: `requested` is written, the notifier is called, recording `sent` fails. The code
    // must stay unusable although its link went out.
    store.fail_appends_from(2);
    let err = f
        .service
        .send_my_passwordless_link(&f.me(&f.ada))
        .await
        .expect_err("sent could not be recorded");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    // It wrote `requested`: the answer must not claim nothing was written.
    assert_eq!(err.id(), "PKL-SVC-06", "{err:?}");
    assert!(!err.claims_nothing_written());
    store.fail_appends_from(usize::MAX / 2);
    let link = f.notifier.last_link(&UserId::new(&f.ada).unwrap()).unwrap();
    let (user, _, code_id, code) = link_params(link.expose());
    let refused = f
        .service
        .check_code(check_request(&user, &code_id, &code))
        .await
        .expect_err("a code whose delivery was not recorded is unusable");
    assert_eq!(refused.message_key(), "Errors.User.Code.Invalid");

    // Under an idempotency key the advice holds: the retry of a send whose `sent` could not
    // be recorded records it (the same message again, one mail), and the mailed link works.
    let key = IdempotencyKey::new("send-under-faults").unwrap();
    let me = f.me(&f.ada);
    store.fail_appends_from(2);
    let err = key
        .scope(f.service.send_my_passwordless_link(&me))
        .await
        .unwrap_err();
    assert_eq!(err.id(), "PKL-SVC-06", "{err:?}");
    store.fail_appends_from(usize::MAX / 2);
    let mails = f.notifier.delivered().len();
    key.scope(f.service.send_my_passwordless_link(&me))
        .await
        .unwrap();
    assert_eq!(
        f.notifier.delivered().len(),
        mails,
        "the same message, not a second one"
    );
    let link = f.notifier.last_link(&UserId::new(&f.ada).unwrap()).unwrap();
    let (user, _, code_id, code) = link_params(link.expose());
    f.service
        .check_code(check_request(&user, &code_id, &code))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_payload_is_a_typed_error_naming_stream_and_version() {
    let store = FaultyStore::new();
    let f = Fixture::new(store.clone()).await;
    let added = f
        .service
        .add_my_passwordless_link(&f.me(&f.ada))
        .await
        .unwrap();
    let (user, _, code_id, code) = link_params(&added.link);
    let stream = StreamId::code(&CodeId::new(&code_id).unwrap());
    assert!(
        store
            .inner
            .corrupt_payload(&stream, 1, r#"{"secretDigest": 42}"#)
    );
    let err = f
        .service
        .check_code(check_request(&user, &code_id, &code))
        .await
        .expect_err("corrupted code");
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert_eq!(err.message_key(), "Errors.Eventstore.Corrupted");
    assert!(
        err.message()
            .contains(&format!("passwordless_init_code/{code_id} version 1")),
        "{err}"
    );
    assert!(matches!(
        err.store_error(),
        Some(StoreError::Corrupt { version: 1, .. })
    ));
    assert!(!err.message().contains(&code), "no secret in the error");
}

/// Takes the message, then reports failure: as a provider that sent but could not confirm.
#[derive(Clone, Default)]
struct CapturingFailingNotifier {
    seen: Arc<Mutex<Vec<Envelope>>>,
}

impl Notifier for CapturingFailingNotifier {
    async fn deliver(&self, envelope: &Envelope) -> Result<Receipt, NotifyError> {
        self.seen.lock().unwrap().push(envelope.clone());
        Err(NotifyError::Rejected("mailbox full".into()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_notifier_leaves_the_code_unusable() {
    let store = InMemoryStore::new();
    let f = Fixture::new(store.clone()).await;
    let notifier = CapturingFailingNotifier::default();
    let service = PasskeyLinks::new(
        store.clone(),
        notifier.clone(),
        StaticGrants::new(),
        scenarios::config(),
    );
    let err = service
        .send_my_passwordless_link(&f.me(&f.ada))
        .await
        .expect_err("delivery failed");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let seen = notifier.seen.lock().unwrap().clone();
    let Message::RegistrationLink { link, .. } = &seen[0].message else {
        panic!("a link message")
    };
    let (user, _, code_id, code) = link_params(link.expose());
    let refused = service
        .check_code(check_request(&user, &code_id, &code))
        .await
        .expect_err("never usable");
    assert_eq!(refused.message_key(), "Errors.User.Code.Invalid");
    let last = store
        .all_events()
        .into_iter()
        .rev()
        .find(|e| e.stream.id() == code_id)
        .unwrap();
    assert_eq!(
        last.payload,
        serde_json::json!({"reason": "delivery_failed"})
    );
}

/// The connection dies right after an append was sent and committed: the caller hears that the
/// outcome is unknown; a retry under the same key answers as if the answer had arrived — the
/// same working link, success for the verification — and nothing is written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_unknown_is_resolved_by_retrying_with_the_same_key() {
    let store = FaultyStore::new();
    let f = Fixture::new(store.clone()).await;
    let me = f.me(&f.ada);
    let issue = IdempotencyKey::new("issue-after-commit").unwrap();

    store.lose_next_answer();
    let err = issue
        .scope(f.service.add_my_passwordless_link(&me))
        .await
        .expect_err("the answer was lost");
    assert_eq!(err.id(), "PKL-STORE-06");
    assert!(err.kind().is_retryable());
    let written = store.inner.len();
    let retried = issue
        .scope(f.service.add_my_passwordless_link(&me))
        .await
        .expect("the retry answers with the first run's link");
    assert_eq!(store.inner.len(), written, "the retry wrote nothing");
    let (user, _, code_id, code) = link_params(&retried.link);
    let issued: Vec<_> = store
        .inner
        .all_events()
        .into_iter()
        .filter(|e| e.event_type == "user.human.passwordless.initialization.code.added")
        .collect();
    assert_eq!(issued.len(), 1, "one code issued");
    assert_eq!(issued[0].stream.id(), code_id);

    let started = f
        .service
        .register_passkey(scenarios::register_request(&user, &code_id, &code))
        .await
        .expect("the link works");
    let response = crate::authenticator::Authenticator::new()
        .create(&started.public_key_credential_creation_options);
    let verify = || scenarios::verify_request(&user, &started, &response);
    let key = IdempotencyKey::new("verify-after-commit").unwrap();
    store.lose_next_answer();
    let err = key
        .scope(f.service.verify_passkey_registration(verify()))
        .await
        .expect_err("the answer was lost");
    assert_eq!(err.id(), "PKL-STORE-06");
    key.scope(f.service.verify_passkey_registration(verify()))
        .await
        .expect("success, not 'no such ceremony'");
    let passkeys = f
        .service
        .list_passkeys(
            &me,
            None,
            serde_json::from_value(serde_json::json!({"userId": f.ada})).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(passkeys.result.len(), 1, "one passkey");
}
