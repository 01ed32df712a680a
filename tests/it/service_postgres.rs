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

    /// A configuration fault keeps its SQLSTATE and is never reported as retryable.
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
        assert_eq!(store.schema_versions().await.unwrap(), [1]);
        let fresh = pg::fresh_schema_store().await.unwrap();
        let (a, b, c) = tokio::join!(fresh.migrate(), fresh.migrate(), fresh.migrate());
        a.unwrap();
        b.unwrap();
        c.unwrap();
        assert_eq!(fresh.schema_versions().await.unwrap(), [1]);
        let url = pg::database_url().unwrap();
        let err = PostgresStore::connect(&url, 1)
            .unwrap()
            .in_schema("x\"; DROP TABLE y; --")
            .expect_err("hostile schema name");
        assert!(matches!(err, StoreError::Internal(_)));
    }
}
