//! What runs on a streaming standby: read-model queries do; the feed (sequenced as it is read)
//! and projection runners end with a configuration fault instead of waiting for ever; commands
//! are refused as the server being read-only. (A failover under load: `tests/processes.rs`.)

#[cfg(feature = "postgres")]
mod with_postgres {
    use std::time::Duration;

    use passkey_links::prelude::*;
    use passkey_links::read::{ProjectionRunner, ReadModels};
    use passkey_links::store::StoreError;
    use passkey_links::store::postgres::{
        ConnectOptions, PostgresStore, parse_config, tokio_postgres,
    };

    use crate::own_server::OwnServer;
    use crate::scenarios::{Fixture, config};

    fn connect(config: tokio_postgres::Config) -> PostgresStore {
        PostgresStore::connect_with(
            config,
            ConnectOptions::default()
                .max_connections(4)
                .deadline(Duration::from_secs(3)),
        )
        .unwrap()
    }

    /// On a standby the read models (kept by a runner on the primary) read as on the primary,
    /// once replayed; the feed, which is sequenced as it is read, is refused there as a
    /// configuration fault, so a projection runner pointed at a standby ends with it instead of
    /// waiting for ever; a command there is refused as the server being read-only (retryable,
    /// as in a failover's window).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_a_standby_reads_work_and_writers_are_refused() {
        let Some(primary) = OwnServer::start(&[], |_| {}) else {
            return;
        };
        let on_primary = connect(parse_config(&primary.config()).unwrap());
        on_primary.migrate().await.unwrap();
        let f = Fixture::new(on_primary.clone()).await;
        f.admin_link(&f.ada).await.unwrap();
        ProjectionRunner::new(on_primary.clone(), ReadModels::new(on_primary.clone()))
            .catch_up()
            .await
            .unwrap();
        let standby = OwnServer::standby_of(&primary);
        let on_standby = connect(parse_config(&standby.config()).unwrap());
        let reader = PasskeyLinks::new(
            on_standby.clone(),
            RecordingNotifier::new(),
            StaticGrants::new(),
            config(),
        )
        .with_clock(f.clock.clone());
        let live = || {
            reader.list_live_links(
                &Caller::System,
                None,
                ListLiveLinksRequest {
                    user_id: f.ada.clone(),
                },
            )
        };
        // The standby replays asynchronously here: wait for the link.
        let mut links = 0;
        for _ in 0..100 {
            links = live().await.map_or(0, |answer| answer.result.len());
            if links == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(links, 1, "the read models read on a standby");

        let err = on_standby.read_feed(0, 100).await.unwrap_err();
        assert!(matches!(err, StoreError::Misconfigured(_)), "{err:?}");
        let runner = ProjectionRunner::new(on_standby.clone(), ReadModels::new(on_standby.clone()));
        let err = tokio::time::timeout(
            Duration::from_secs(20),
            runner.follow(std::future::pending()),
        )
        .await
        .expect("a runner on a standby ends, it does not wait for ever")
        .unwrap_err();
        assert_eq!(err.id(), "PKL-STORE-05", "{err:?}");
        assert!(format!("{err:?}").contains("primary"), "{err:?}");

        let err = reader
            .add_my_passwordless_link(&f.me(&f.ada))
            .await
            .unwrap_err();
        assert!(err.kind().is_retryable(), "{err:?}");
        assert!(format!("{err:?}").contains("read-only"), "{err:?}");
    }
}
