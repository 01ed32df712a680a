//! The service scenarios against PostgreSQL, and how the PostgreSQL store fails.

use crate::pg;

#[cfg(not(feature = "postgres"))]
#[test]
fn postgres_service_scenarios() {
    pg::skipped(
        "no database: built without the `postgres` feature (scripts/test-all.sh runs them)",
    );
}

#[cfg(feature = "postgres")]
mod with_postgres {
    use super::pg;
    use crate::scenarios::{self, Fixture, Inspect};
    use passkey_links::ids::{AggregateKind, StreamId};
    use passkey_links::prelude::*;
    use passkey_links::store::postgres::PostgresStore;
    use passkey_links::store::{EventStore, RecordedEvent, StoreError};

    impl Inspect for PostgresStore {
        async fn all_events(&self) -> Vec<RecordedEvent> {
            PostgresStore::all_events(self)
                .await
                .expect("read all events")
        }
    }

    crate::service_scenarios!(postgres);
    crate::read_side_scenarios!(postgres);
    crate::outbox_scenarios!(postgres);
    crate::snapshot_scenarios!(postgres);
    crate::login_scenarios!(postgres);
    crate::erasure_scenarios!(postgres);

    /// A `pg_dump` of the store's schema: every table, as an operator's backup holds it.
    impl crate::erasure::Dump for PostgresStore {
        async fn dump(&self) -> String {
            let schema = self.schema().expect("the tests' stores live in a schema");
            pg::dump_schema(schema).await
        }
    }

    /// Every migration's version, ascending.
    fn all_versions() -> Vec<i64> {
        passkey_links::store::postgres::MIGRATIONS
            .iter()
            .map(|(version, _, _)| *version)
            .collect()
    }

    async fn postgres() -> Option<PostgresStore> {
        pg::store().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_corrupted_row_is_a_typed_error_naming_stream_and_version() {
        let Some(store) = pg::store().await else {
            return;
        };
        let f = Fixture::new(store.clone()).await;
        let client = store.pool().get().await.unwrap();
        client
        .execute(
            &format!(
                "UPDATE {} SET payload = '{{\"displayName\": 5}}' WHERE stream_type = 'user' AND stream_id = $1",
                store.table()
            ),
            &[&f.ada],
        )
        .await
        .unwrap();
        let err = f
            .service
            .add_my_passwordless_link(&f.me(&f.ada))
            .await
            .expect_err("corrupted history");
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert_eq!(err.message_key(), "Errors.Eventstore.Corrupted");
        assert!(
            err.message().contains(&format!("user/{} version 1", f.ada)),
            "{err}"
        );

        client
            .execute(
                &format!(
                    "UPDATE {} SET stream_type = 'martian' WHERE stream_id = $1",
                    store.table()
                ),
                &[&f.ada],
            )
            .await
            .unwrap();
        let all = store.all_events().await;
        assert!(matches!(all, Err(StoreError::CorruptRow { .. })), "{all:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_database_is_unavailable() {
        if pg::database_url().is_none() {
            return;
        }
        let store =
            PostgresStore::connect("host=/nonexistent/socket/dir user=postgres", 1).unwrap();
        let stream = StreamId::new(AggregateKind::User, "u1").unwrap();
        let err = store.read(&stream, 0).await.expect_err("no server");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        let service = PasskeyLinks::new(
            store,
            RecordingNotifier::new(),
            StaticGrants::new(),
            scenarios::config(),
        );
        let err = service
            .add_org(
                &Caller::System,
                AddOrgRequest {
                    name: "x".into(),
                    ..Default::default()
                },
            )
            .await
            .expect_err("no server");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }

    /// A server that stops answering — a frozen process or a dead network path, played by a
    /// proxy that stops relaying — is a typed Unavailable within the deadline plus a small
    /// margin, never a hang; a write cut off that way reports its outcome unknown.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_frozen_server_is_unavailable_within_the_deadline() {
        use std::time::{Duration, Instant};

        let Some(url) = pg::database_url() else {
            return;
        };
        let Some(dir) = crate::proxy::socket_dir(&url) else {
            return; // the proxy needs the unix-socket form the throwaway server uses
        };
        let proxy = crate::proxy::Proxy::start(&dir).await;
        let config = proxy.config(&url);
        let deadline = Duration::from_secs(1);
        let store = PostgresStore::connect_with_deadline(&config, 2, deadline)
            .unwrap()
            .in_schema(&format!(
                "frozen_{}_{}",
                std::process::id(),
                chrono::Utc::now().timestamp_micros()
            ))
            .unwrap();
        store.migrate().await.unwrap();
        let stream = StreamId::new(AggregateKind::User, "frozen").unwrap();
        store
            .read(&stream, 0)
            .await
            .expect("answers while relaying");

        proxy.freeze(true);
        let started = Instant::now();
        let err = store.read(&stream, 0).await.expect_err("a frozen server");
        let took = started.elapsed();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(took < deadline + Duration::from_millis(500), "{took:?}");
        let err = passkey_links::Error::from(err);
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.kind().is_retryable());

        let started = Instant::now();
        let batch =
            passkey_links::store::AppendBatch::new(vec![passkey_links::store::StreamAppend {
                stream: stream.clone(),
                expected: passkey_links::store::ExpectedVersion::Any,
                events: vec![
                    passkey_links::store::NewEvent::new(
                        "test.frozen",
                        1,
                        &serde_json::json!({}),
                        chrono::Utc::now(),
                    )
                    .unwrap(),
                ],
            }])
            .unwrap();
        let err = store.append(batch).await.expect_err("a frozen server");
        assert!(started.elapsed() < deadline + Duration::from_millis(500));
        assert!(
            matches!(
                err,
                StoreError::OutcomeUnknown(_) | StoreError::Unavailable(_)
            ),
            "{err:?}"
        );
        proxy.freeze(false);
    }

    /// A process with a warm cache behaves exactly like a fresh one after the database is
    /// restored to an earlier point and a different history of the same length is written: the
    /// cached state's last event is no longer stored, so the cache entry is dropped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_warm_cache_does_not_outlive_a_restored_database() {
        let Some(store) = pg::store().await else {
            return;
        };
        let f = Fixture::new(store.clone()).await;
        let sys = Caller::System;
        let table = store.table().to_owned();
        let snapshot = format!("{}_snapshot", table.replace('"', "").replace('.', "_"));
        let client = store.pool().get().await.unwrap();
        let sequence: String = client
            .query_one(
                &format!("SELECT pg_get_serial_sequence('{table}', 'position')"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        client
            .batch_execute(&format!("CREATE TABLE {snapshot} AS SELECT * FROM {table}"))
            .await
            .unwrap();
        let counter: i64 = client
            .query_one(&format!("SELECT last_value FROM {sequence}"), &[])
            .await
            .unwrap()
            .get(0);

        // The warm process locks and unlocks ada: its cache holds her, active.
        for change in [UserChange::Lock, UserChange::Unlock] {
            f.service
                .update_user(&sys, None, &f.ada, change)
                .await
                .unwrap();
        }
        // Restore the snapshot (events and the position counter), as a point-in-time restore does.
        client
            .batch_execute(&format!(
                "DELETE FROM {table};
                 INSERT INTO {table} OVERRIDING SYSTEM VALUE SELECT * FROM {snapshot};
                 SELECT setval('{sequence}', {counter});"
            ))
            .await
            .unwrap();
        // Another process writes a different history of the same length: ada ends locked.
        let other = PasskeyLinks::new(
            store.clone(),
            RecordingNotifier::new(),
            StaticGrants::new(),
            scenarios::config(),
        )
        .with_clock(f.clock.clone());
        let email = UserChange::ChangeEmail {
            email: "ada@elsewhere.example".into(),
        };
        for change in [email, UserChange::Lock] {
            other.update_user(&sys, None, &f.ada, change).await.unwrap();
        }
        let before = store.all_events().await.unwrap().len();

        let fresh = other
            .add_my_passwordless_link(&f.me(&f.ada))
            .await
            .expect_err("a locked user gets no link");
        let warm = f
            .service
            .add_my_passwordless_link(&f.me(&f.ada))
            .await
            .expect_err("the warm process must see the restored history, not its cache");
        assert_eq!(
            (warm.kind(), warm.message_key()),
            (fresh.kind(), fresh.message_key())
        );
        assert_eq!(
            store.all_events().await.unwrap().len(),
            before,
            "nothing appended"
        );
        // And a conflict caused by the stale cache never repeats: after the restore the warm
        // process's writes go through.
        f.service
            .update_user(&sys, None, &f.ada, UserChange::Unlock)
            .await
            .unwrap();
        f.service
            .add_my_passwordless_link(&f.me(&f.ada))
            .await
            .unwrap();
    }

    /// A frozen server (every PostgreSQL process stopped with SIGSTOP) makes a service call
    /// answer Unavailable within the service's deadline plus a small margin — for a process with
    /// pooled connections and for one that has yet to connect — and the service recovers once
    /// the server goes on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sigstopped_server_is_unavailable_within_the_service_deadline() {
        use std::time::{Duration, Instant};
        let Some(mut server) = crate::own_server::OwnServer::start(&[], |_| {}) else {
            return;
        };
        let deadline = Duration::from_millis(1500);
        let config = scenarios::config().with_deadline(Some(deadline));
        // The store's own per-call deadline (5 s) is longer: the service's bound answers first.
        let warm_store = PostgresStore::connect(&server.config(), 4).unwrap();
        warm_store.migrate().await.unwrap();
        let f = Fixture::with_config(warm_store, config.clone()).await;
        let me = f.me(&f.ada);
        f.service.add_my_passwordless_link(&me).await.unwrap();

        server.freeze();
        let cold = PasskeyLinks::new(
            PostgresStore::connect(&server.config(), 4).unwrap(),
            RecordingNotifier::new(),
            StaticGrants::new(),
            config,
        );
        for who in ["warm", "cold"] {
            let started = Instant::now();
            let err = match who {
                "warm" => f.service.send_my_passwordless_link(&me).await.map(|_| ()),
                _ => cold.send_my_passwordless_link(&me).await.map(|_| ()),
            }
            .expect_err("a frozen server cannot answer");
            let took = started.elapsed();
            assert!(
                took < deadline + Duration::from_millis(500),
                "{who}: answered after {took:?}"
            );
            assert_eq!(err.kind(), ErrorKind::Unavailable, "{who}: {err}");
            assert!(err.kind().is_retryable());
            assert_eq!(err.id(), "PKL-SVC-03", "{who}: {err}");
        }
        server.thaw();
        f.clock.advance(chrono::Duration::hours(1));
        let mut recovered = false;
        for _ in 0..20 {
            if f.service.send_my_passwordless_link(&me).await.is_ok() {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(
            recovered,
            "the service answers again once the server goes on"
        );
    }

    /// The connection dies right after the server committed an append and before its answer
    /// arrived: the command answers "outcome unknown" (retryable), and a retry with the same
    /// idempotency key answers with the first run's link — which works — writing nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_lost_after_commit_is_resolved_by_the_idempotency_key() {
        let Some(url) = pg::database_url() else {
            return;
        };
        let Some(dir) = crate::proxy::socket_dir(&url) else {
            return;
        };
        let proxy = crate::proxy::Proxy::start(&dir).await;
        let Some(direct) = pg::store().await else {
            return;
        };
        let schema = direct.schema().unwrap().to_owned();
        let f = Fixture::new(direct.clone()).await;
        let me = f.me(&f.ada);
        // A process whose pool reaches the server through the proxy, and has yet to prepare
        // its statements.
        let through_proxy = PostgresStore::connect(&proxy.config(&url), 4)
            .unwrap()
            .in_schema(&schema)
            .unwrap();
        let service = PasskeyLinks::new(
            through_proxy,
            RecordingNotifier::new(),
            StaticGrants::new(),
            scenarios::config(),
        )
        .with_clock(f.clock.clone());
        let key = IdempotencyKey::new("3b0c4d6e-issue").unwrap();

        // The append is the one statement that inserts events.
        proxy.cut_after("passkey_links_events (stream_type, stream_id, version, event_id");
        let err = key
            .scope(service.add_my_passwordless_link(&me))
            .await
            .expect_err("the answer was cut off");
        assert_eq!(err.id(), "PKL-STORE-06", "{err:?}");
        assert!(err.kind().is_retryable());
        let written = direct.all_events().await.unwrap();
        let issued = |events: &[RecordedEvent]| {
            events
                .iter()
                .filter(|e| e.event_type == "user.human.passwordless.initialization.code.added")
                .count()
        };
        assert_eq!(issued(&written), 1, "the first run committed");

        let retried = key
            .scope(service.add_my_passwordless_link(&me))
            .await
            .expect("the retry answers");
        assert_eq!(
            direct.all_events().await.unwrap().len(),
            written.len(),
            "the retry wrote nothing"
        );
        let (user, _, code_id, code) = crate::scenarios::link_params(&retried.link);
        f.service
            .check_code(crate::scenarios::check_request(&user, &code_id, &code))
            .await
            .expect("the first run's link works");
    }

    /// A transaction that took its identity position early and commits late: a reader tailing
    /// the feed meanwhile never skips it (a `position > last` reader would), and sees it after
    /// the events that became visible before it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_late_commit_with_a_low_position_is_not_skipped_by_the_feed() {
        let Some(store) = pg::store().await else {
            return;
        };
        let event = || {
            passkey_links::store::NewEvent::new(
                "user.human.added",
                1,
                &serde_json::json!({}),
                chrono::Utc::now(),
            )
            .unwrap()
        };
        let append = |id: &str| {
            passkey_links::store::AppendBatch::new(vec![passkey_links::store::StreamAppend {
                stream: StreamId::new(AggregateKind::User, id).unwrap(),
                expected: passkey_links::store::ExpectedVersion::Any,
                events: vec![event()],
            }])
            .unwrap()
        };
        store.append(append("before")).await.unwrap();
        let mut slow = store.pool().get().await.unwrap();
        let slow = slow.transaction().await.unwrap();
        let slow_position: i64 = slow
            .query_one(
                &format!(
                    "INSERT INTO {} (stream_type, stream_id, version, event_type, schema_version, payload, recorded_at)
                     VALUES ('user', 'slow', 1, 'user.human.added', 1, '{{}}', now()) RETURNING position",
                    store.table()
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        for n in 0..3 {
            store.append(append(&format!("fast-{n}"))).await.unwrap();
        }
        let seen = store.read_feed(0, 100).await.unwrap();
        let ids = |events: &[passkey_links::store::FeedEvent]| {
            events
                .iter()
                .map(|e| e.event.stream.id().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&seen), ["before", "fast-0", "fast-1", "fast-2"]);
        assert!(
            seen[1].event.position > u64::try_from(slow_position).unwrap(),
            "the slow event holds the lower identity position"
        );
        slow.commit().await.unwrap();
        let last = seen.last().unwrap().feed_position;
        let after = store.read_feed(last, 100).await.unwrap();
        assert_eq!(
            ids(&after),
            ["slow"],
            "the late commit comes after what was read"
        );
        assert!(after[0].feed_position > last);
    }

    /// A configuration fault keeps its SQLSTATE and is never reported as retryable.
    /// An embedder's projection that counts events per stream type in its own table.
    struct CountByType {
        table: String,
        fail_after_writing: std::sync::atomic::AtomicBool,
    }

    impl passkey_links::store::postgres::PostgresHandler for CountByType {
        fn name(&self) -> &str {
            "test.count_by_type"
        }

        async fn handle(
            &self,
            tx: &tokio_postgres::Transaction<'_>,
            events: &[passkey_links::store::FeedEvent],
        ) -> Result<(), tokio_postgres::Error> {
            for event in events {
                let sql = format!(
                    "INSERT INTO {} (feed_position, stream_type) VALUES ($1, $2)",
                    self.table
                );
                let position = event.feed_position as i64;
                tx.execute(&sql, &[&position, &event.event.stream.kind().as_str()])
                    .await?;
            }
            if self
                .fail_after_writing
                .swap(false, std::sync::atomic::Ordering::SeqCst)
            {
                // A failure after the batch's rows were written: nothing of it may stay.
                tx.execute("SELECT 1/0", &[]).await?;
            }
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_projections_own_table_and_checkpoint_commit_together() {
        use passkey_links::read::{Projection, ProjectionRunner};
        use passkey_links::store::postgres::PostgresProjection;
        let Some(store) = pg::store().await else {
            return;
        };
        let f = Fixture::new(store.clone()).await;
        let schema = format!("\"{}\"", store.schema().unwrap());
        let table = format!("{schema}.counted");
        let client = store.pool().get().await.unwrap();
        client
            .batch_execute(&format!(
                "CREATE TABLE {table} (feed_position bigint PRIMARY KEY, stream_type text NOT NULL)"
            ))
            .await
            .unwrap();
        let projection = PostgresProjection::new(
            store.clone(),
            CountByType {
                table: table.clone(),
                fail_after_writing: std::sync::atomic::AtomicBool::new(false),
            },
        );
        let runner = ProjectionRunner::new(store.clone(), &projection).batch_size(4);
        let total = f.store.all_events().await.unwrap().len() as i64;
        assert!(total > 4);
        let counted = || async {
            let row = client
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
                .unwrap();
            row.get::<_, i64>(0)
        };
        // First batch commits; the second fails after writing its rows: rolled back with its
        // checkpoint, and the run reports the failure.
        let first = store.read_feed(0, 4).await.unwrap();
        projection.apply(&first).await.unwrap();
        assert_eq!(counted().await, 4);
        // The same projection (same name, same table), failing once.
        let failing = PostgresProjection::new(
            store.clone(),
            CountByType {
                table: table.clone(),
                fail_after_writing: std::sync::atomic::AtomicBool::new(true),
            },
        );
        let err = ProjectionRunner::new(store.clone(), &failing)
            .batch_size(4)
            .catch_up()
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("22012") || err.message().contains("division"),
            "{err:?}"
        );
        assert_eq!(counted().await, 4, "the failed batch left rows behind");
        assert_eq!(
            projection.checkpoint().await.unwrap(),
            first.last().unwrap().feed_position,
            "the failed batch moved the checkpoint"
        );
        // The next run applies the rest, each event once.
        let applied = runner.catch_up().await.unwrap() as i64;
        assert_eq!(applied, total - 4);
        assert_eq!(counted().await, total);
    }

    /// Round trips per operation, counted on the wire (ReadyForQuery messages through a proxy),
    /// for a process whose cache holds the users (warm) and for a fresh process (cold: its
    /// first call reads the snapshot table too). Each operation runs once first, so that its
    /// statements are prepared on the one pooled connection.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn round_trips_per_operation_are_counted_on_the_wire() {
        let Some(url) = pg::database_url() else {
            return;
        };
        let Some(dir) = crate::proxy::socket_dir(&url) else {
            return;
        };
        let proxy = crate::proxy::Proxy::start(&dir).await;
        let Some(direct) = pg::store().await else {
            return;
        };
        let schema = direct.schema().unwrap().to_owned();
        let through_proxy = || {
            PostgresStore::connect(&format!("{} sslmode=disable", proxy.config(&url)), 1)
                .unwrap()
                .in_schema(&schema)
                .unwrap()
        };
        let unlimited = scenarios::config().with_policy(Policy::default().with_rate_limit(None));
        let f = Fixture::with_config(through_proxy(), unlimited.clone()).await;
        let counted = |before: u64| proxy.round_trips() - before;
        let issue = || async {
            let at = proxy.round_trips();
            let response = f.admin_link(&f.ada).await.unwrap();
            (counted(at), response.link)
        };
        let (proxy, f) = (&proxy, &f);
        let check = |link: String| async move {
            let (user, _, code_id, code) = crate::scenarios::link_params(&link);
            let at = proxy.round_trips();
            f.service
                .check_code(crate::scenarios::check_request(&user, &code_id, &code))
                .await
                .unwrap();
            counted(at)
        };
        let send = || async {
            let at = proxy.round_trips();
            f.service
                .send_passwordless_registration(
                    &f.admin_a,
                    None,
                    SendPasswordlessRegistrationRequest {
                        user_id: f.ada.clone(),
                    },
                )
                .await
                .unwrap();
            counted(at)
        };
        let (_, link) = issue().await;
        check(link).await;
        send().await;
        let (issued, link) = issue().await;
        let checked = check(link.clone()).await;
        let sent = send().await;
        let (_, link) = issue().await;
        let (user, _, code_id, code) = crate::scenarios::link_params(&link);
        f.enroll(&user, &code_id, &code).await.unwrap();
        let (_, link) = issue().await;
        let (user, _, code_id, code) = crate::scenarios::link_params(&link);
        let at = proxy.round_trips();
        f.enroll(&user, &code_id, &code).await.unwrap();
        let enrolled = counted(at);

        // A fresh process on the same (warmed) connection settings: its first calls connect
        // and prepare statements, for another user than the ones counted. (A statement a
        // counted call is the first to run on its connection is prepared in a round trip of its
        // own, once: `round_trips` leaves those out, `prepares` counts them.)
        let me = f.me(&f.bob);
        let fresh_process = || async {
            let process = PasskeyLinks::new(
                through_proxy(),
                RecordingNotifier::new(),
                StaticGrants::new(),
                unlimited.clone(),
            )
            .with_clock(f.clock.clone())
            .with_relying_party(crate::scenarios::relying_party());
            let _ = process.add_my_passwordless_link(&me).await;
            process
        };
        let cold = fresh_process().await;
        let (_, link) = issue().await;
        let (user, _, code_id, code) = crate::scenarios::link_params(&link);
        let at = proxy.round_trips();
        cold.check_code(crate::scenarios::check_request(&user, &code_id, &code))
            .await
            .unwrap();
        let cold_check = counted(at);
        let carol = f.me(&f.carol);
        let at = proxy.round_trips();
        cold.add_my_passwordless_link(&carol).await.unwrap();
        let cold_issue = counted(at);
        // The ceremony's two steps, each in a process that has not seen the user before (each
        // has run the same step for another user).
        let (starting, finishing) = (fresh_process().await, fresh_process().await);
        let bobs_link = f.admin_link(&f.bob).await.unwrap().link;
        let (bob, _, bobs_code_id, bobs_code) = crate::scenarios::link_params(&bobs_link);
        let started = starting
            .register_passkey(crate::scenarios::register_request(
                &bob,
                &bobs_code_id,
                &bobs_code,
            ))
            .await
            .unwrap();
        let response = crate::scenarios::Authenticator::new()
            .create(&started.public_key_credential_creation_options);
        finishing
            .verify_passkey_registration(crate::scenarios::verify_request(
                &bob, &started, &response,
            ))
            .await
            .unwrap();
        let (_, link) = issue().await;
        let (user, _, code_id, code) = crate::scenarios::link_params(&link);
        let at = proxy.round_trips();
        let started = starting
            .register_passkey(crate::scenarios::register_request(&user, &code_id, &code))
            .await
            .unwrap();
        let cold_register = counted(at);
        let response = crate::scenarios::Authenticator::new()
            .create(&started.public_key_credential_creation_options);
        let at = proxy.round_trips();
        finishing
            .verify_passkey_registration(crate::scenarios::verify_request(
                &user, &started, &response,
            ))
            .await
            .unwrap();
        let cold_verify = counted(at);
        let sending = fresh_process().await;
        let send_for = |user: &str| {
            sending.send_passwordless_registration(
                &Caller::System,
                None,
                SendPasswordlessRegistrationRequest {
                    user_id: user.to_owned(),
                },
            )
        };
        send_for(&f.carol).await.unwrap();
        let at = proxy.round_trips();
        send_for(&f.ada).await.unwrap();
        let cold_send = counted(at);
        // Logins with a passkey ada keeps: the first in each process prepares its statements.
        let mut key = crate::scenarios::Authenticator::new();
        let (_, link) = issue().await;
        let (user, _, code_id, code) = crate::scenarios::link_params(&link);
        f.enroll_with(&mut key, &user, &code_id, &code)
            .await
            .unwrap();
        let discoverable = || StartPasskeyLoginRequest { user_id: None };
        let (mut warm_start, mut warm_finish) = (0, 0);
        for _ in 0..2 {
            let at = proxy.round_trips();
            let started = f.service.start_passkey_login(discoverable()).await.unwrap();
            warm_start = counted(at);
            let assertion = key.get(&started.public_key_credential_request_options);
            let at = proxy.round_trips();
            f.service
                .finish_passkey_login(crate::scenarios::finish_request(&started, &assertion))
                .await
                .unwrap();
            warm_finish = counted(at);
        }
        let cold_login = fresh_process().await;
        let at = proxy.round_trips();
        let started = cold_login
            .start_passkey_login(discoverable())
            .await
            .unwrap();
        let cold_login_start = counted(at);
        let assertion = key.get(&started.public_key_credential_request_options);
        let at = proxy.round_trips();
        cold_login
            .finish_passkey_login(crate::scenarios::finish_request(&started, &assertion))
            .await
            .unwrap();
        let cold_login_finish = counted(at);
        eprintln!(
            "round trips — warm: issue {issued}, check {checked}, send {sent}, \
             register+verify {enrolled}, login start {warm_start} finish {warm_finish}; \
             cold: check {cold_check}, issue {cold_issue}, register {cold_register}, \
             verify {cold_verify}, send {cold_send}, login start {cold_login_start} \
             finish {cold_login_finish}; prepares in all: {}",
            proxy.prepares()
        );
        assert_eq!(warm_start, 0, "a discoverable start reads nothing");
        assert_eq!(
            warm_finish, 1,
            "warm login finish: the append (claim, user and org cached, checked by its read set)"
        );
        assert_eq!(cold_login_start, 0);
        // A user's personal data key comes along with the read that loads the user.
        assert_eq!(
            cold_login_finish, 2,
            "cold login finish: the claim with the user (and key) and org it names in one read, \
             the append"
        );
        // A warm issuance decides on the cached user and org and the presumed-empty new code:
        // its one append statement requires the events it saw to still be last. Reads of every
        // stream a decision needs go out in one statement (snapshots included; the org
        // predicted from the cached user or named by the caller).
        assert_eq!(issued, 1, "issue: one append, no read");
        assert_eq!(checked, 1, "check: one read");
        // Where a command reads more (what BENCHMARKS.md reports): these bound it.
        assert_eq!(
            sent, 2,
            "send: issue (an append), record the delivery on the code kept from it (an append)"
        );
        assert_eq!(
            cold_send, 3,
            "cold send: user and org in one read, the issuing append, the delivery's append"
        );
        assert_eq!(
            enrolled, 3,
            "register (check: a read; start: an append requiring the code, user and org \
             read to be unchanged) + verify (an append requiring the same; the credential id's \
             claim is written expecting none)"
        );
        assert_eq!(
            cold_register, 2,
            "cold register: code, user and its org in one read, then the append"
        );
        assert_eq!(
            cold_verify, 2,
            "cold verify: the user, its org and the ceremony's code (named by the user event \
             that started it) in one read, then the append"
        );
        assert_eq!(
            cold_check, 1,
            "cold check: code, user (from its snapshot, with its key) and the org its first \
             event names"
        );
        assert_eq!(
            cold_issue, 2,
            "cold issue: user (snapshot, key), code and the caller's org in one read, append"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_missing_database_is_a_configuration_fault_not_retryable() {
        let Some(url) = pg::database_url() else {
            return;
        };
        if url.contains("://") {
            return; // the override below needs the key/value form the tests use
        }
        let store = PostgresStore::connect(&format!("{url} dbname=no_such_database"), 1).unwrap();
        let stream = StreamId::new(AggregateKind::User, "u1").unwrap();
        let err = store.read(&stream, 0).await.expect_err("no such database");
        assert!(
            matches!(&err, StoreError::Misconfigured(m) if m.contains("3D000")),
            "{err:?}"
        );
        let err = passkey_links::Error::from(err);
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        assert!(!err.kind().is_retryable());
        assert_eq!(err.message_key(), "Errors.Eventstore.Misconfigured");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migration_is_idempotent_and_bad_schema_names_are_refused() {
        let Some(store) = pg::store().await else {
            return;
        };
        // Idempotent, and safe for concurrent migrators without an advisory lock.
        let (a, b) = tokio::join!(store.migrate(), store.migrate());
        a.unwrap();
        b.unwrap();
        store.migrate().await.unwrap();
        assert_eq!(store.schema_versions().await.unwrap(), all_versions());
        let fresh = pg::fresh_schema_store().await.unwrap();
        let (a, b, c) = tokio::join!(fresh.migrate(), fresh.migrate(), fresh.migrate());
        a.unwrap();
        b.unwrap();
        c.unwrap();
        assert_eq!(fresh.schema_versions().await.unwrap(), all_versions());
        let url = pg::database_url().unwrap();
        let err = PostgresStore::connect(&url, 1)
            .unwrap()
            .in_schema("x\"; DROP TABLE y; --")
            .expect_err("hostile schema name");
        assert!(matches!(err, StoreError::Internal(_)));
    }

    /// A store pointed at a schema nobody migrated says so — for the version table and for
    /// the events — as a configuration fault naming the table, not a retryable failure.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unmigrated_schema_is_a_configuration_fault_naming_the_table() {
        let Some(unmigrated) = pg::fresh_schema_store().await else {
            return;
        };
        let err = unmigrated
            .schema_versions()
            .await
            .expect_err("no version table");
        assert!(
            matches!(&err, StoreError::Misconfigured(m)
                if m.contains("not migrated") && m.contains("passkey_links_schema_migrations")),
            "{err:?}"
        );
        // No schema at all, then a schema with nothing in it: each names what is missing.
        let stream = StreamId::new(AggregateKind::User, "u1").unwrap();
        let schema = unmigrated.schema().unwrap().to_owned();
        let err = unmigrated.read(&stream, 0).await.expect_err("no schema");
        assert!(
            matches!(&err, StoreError::Misconfigured(m)
                if m.contains("not migrated") && m.contains(&schema)),
            "{err:?}"
        );
        let client = unmigrated.pool().get().await.unwrap();
        client
            .batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
            .await
            .unwrap();
        let err = unmigrated
            .read(&stream, 0)
            .await
            .expect_err("nothing in the schema");
        assert!(
            matches!(&err, StoreError::Misconfigured(m)
                if m.contains("not migrated") && m.contains("passkey_links_read_many")),
            "{err:?}"
        );
        assert!(!passkey_links::Error::from(err).kind().is_retryable());
    }
}
