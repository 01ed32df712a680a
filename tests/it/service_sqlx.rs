//! The service scenarios on the sqlx store (an application's `PgPool`), and the two PostgreSQL
//! stores over one database: what one writes the other reads, and the migrations directory runs
//! under sqlx's own migrator as it is.

use crate::pg;

#[cfg(not(feature = "sqlx-postgres"))]
#[test]
fn sqlx_service_scenarios() {
    pg::skipped("built without the `sqlx-postgres` feature (scripts/test-all.sh runs them)");
}

#[cfg(feature = "sqlx-postgres")]
mod with_sqlx {
    use super::pg;
    use crate::scenarios::{Fixture, Inspect, check_request, link_params};
    use passkey_links::store::RecordedEvent;
    use passkey_links::store::sqlx::SqlxStore;

    impl Inspect for SqlxStore {
        async fn all_events(&self) -> Vec<RecordedEvent> {
            SqlxStore::all_events(self).await.expect("read all events")
        }
    }

    /// A `pg_dump` of the store's schema.
    impl crate::erasure::Dump for SqlxStore {
        async fn dump(&self) -> String {
            let schema = self.schema().expect("the tests' stores live in a schema");
            pg::dump_schema(schema).await
        }
    }

    async fn sqlx() -> Option<SqlxStore> {
        pg::sqlx_store().await
    }

    crate::service_scenarios!(sqlx);
    crate::read_side_scenarios!(sqlx);
    crate::outbox_scenarios!(sqlx);
    crate::snapshot_scenarios!(sqlx);
    crate::login_scenarios!(sqlx);
    crate::erasure_scenarios!(sqlx);

    /// Every migration's version, ascending.
    fn all_versions() -> Vec<i64> {
        passkey_links::store::sqlx::MIGRATIONS
            .iter()
            .map(|(version, _, _)| *version)
            .collect()
    }

    #[cfg(feature = "postgres")]
    mod with_postgres_too {
        use super::{SqlxStore, all_versions, pg};
        use crate::scenarios::{
            self, Authenticator, Fixture, check_request, link_params, register_request, types,
            verify_request,
        };
        use passkey_links::prelude::*;
        use passkey_links::store::{EventStore, PersonalKeyStore};

        /// A link issued through the tokio-postgres store is redeemed — a real ceremony — through
        /// the sqlx store on the application's pool (default session settings, the schema on its
        /// search path), and each store reads exactly what the other wrote: events, feed, keys.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn two_stores_over_one_database_interoperate() {
            let Some(written) = pg::store().await else {
                return;
            };
            let schema = written.schema().expect("a schema").to_owned();
            let pool = pg::sqlx_pool(&schema, 4).expect("a database");
            let read = SqlxStore::new(pool);
            // Migrated by one, migrated for both.
            assert_eq!(read.schema_versions().await.unwrap(), all_versions());

            let f = Fixture::new(written.clone()).await;
            let link = f.admin_link(&f.ada).await.unwrap();
            let (user, _, code_id, code) = link_params(&link.link);
            let on_sqlx = PasskeyLinks::new(
                read.clone(),
                RecordingNotifier::new(),
                StaticGrants::new(),
                scenarios::config(),
            )
            .with_clock(f.clock.clone())
            .with_relying_party(scenarios::relying_party());
            let started = on_sqlx
                .register_passkey(register_request(&user, &code_id, &code))
                .await
                .unwrap();
            let response =
                Authenticator::new().create(&started.public_key_credential_creation_options);
            on_sqlx
                .verify_passkey_registration(verify_request(&user, &started, &response))
                .await
                .unwrap();

            let by_tokio = written.all_events().await.unwrap();
            let by_sqlx = read.all_events().await.unwrap();
            assert_eq!(by_tokio, by_sqlx);
            assert!(
                types(&by_tokio).contains(&"user.human.passwordless.token.verified"),
                "the passkey registered through sqlx is in the events: {:?}",
                types(&by_tokio)
            );
            assert_eq!(
                written.read_feed(0, 1000).await.unwrap(),
                read.read_feed(0, 1000).await.unwrap()
            );
            let key = written.personal_key(&f.ada).await.unwrap();
            assert!(key.is_some(), "ada has a personal data key");
            assert_eq!(key, read.personal_key(&f.ada).await.unwrap());
            // The tokio-postgres side sees the link used up by the sqlx side.
            let reused = f
                .service
                .check_code(check_request(&user, &code_id, &code))
                .await;
            assert!(reused.is_err(), "a consumed link is refused: {reused:?}");
        }
    }

    /// The files of `migrations/`, as they are, under sqlx's migrator (`sqlx::migrate!`): a
    /// store on that schema issues and checks links, and so does the tokio-postgres store on it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_migrations_directory_runs_under_sqlx_migrate() {
        let Some(options) = pg::sqlx_options() else {
            return;
        };
        let schema = format!(
            "m_{}_{}",
            std::process::id(),
            chrono::Utc::now().timestamp_micros()
        );
        let admin = sqlx::PgPool::connect_with(options).await.unwrap();
        sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
            .execute(&admin)
            .await
            .unwrap();
        let pool = pg::sqlx_pool(&schema, 4).unwrap();
        sqlx::migrate!("./migrations").run(&pool).await.unwrap();
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(applied, all_versions());

        let f = Fixture::new(SqlxStore::new(pool)).await;
        let link = f.admin_link(&f.ada).await.unwrap();
        let (user, _, code_id, code) = link_params(&link.link);
        f.service
            .check_code(check_request(&user, &code_id, &code))
            .await
            .unwrap();
        #[cfg(feature = "postgres")]
        {
            let url = pg::database_url().unwrap();
            let other = passkey_links::store::postgres::PostgresStore::connect(&url, 2)
                .unwrap()
                .in_schema(&schema)
                .unwrap();
            assert_eq!(
                other.all_events().await.unwrap(),
                f.store.all_events().await.unwrap()
            );
        }
    }
}
