//! PostgreSQL event store (feature `postgres`), on tokio-postgres with a deadpool pool.
//!
//! One table holds every stream:
//!
//! | column | type |
//! |---|---|
//! | `position` | `bigint` identity, primary key (global order) |
//! | `stream_type`, `stream_id` | `text` |
//! | `version` | `bigint`, unique per stream (constraint `passkey_links_events_stream_version`) |
//! | `event_id` | `uuid`, drawn by the writer |
//! | `event_type` | `text` |
//! | `schema_version` | `smallint` |
//! | `payload` | `jsonb` |
//! | `recorded_at` | `timestamptz` |
//! | `feed_position` | `bigint`, given once visible (the global feed) |
//!
//! Beside it: idempotency keys, the feed head, snapshots, projection checkpoints and the shipped
//! read models (`migrations/`).
//!
//! An append is **one statement** (`append.rs`): it checks the batch's read set and every
//! expectation and inserts the whole batch only if all hold — atomic across streams without an
//! explicit transaction round trip. A concurrent writer that slipped in between is caught by the
//! unique constraint, recognised by its name (never by message text), and reported as the typed
//! conflict with the stream's actual version.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`PostgresStore`], migrations, the port's methods |
//! | `connect.rs` | configuration, TLS, the pool and its sessions |
//! | `append.rs` | the guarded append and conflict reporting |
//! | `load.rs` | reads, loads, snapshots, decoding rows |
//! | `feed.rs` | the global feed and idempotency records |
//! | `projections.rs` | checkpoints, the shipped read models, embedders' projections |
//! | `personal_keys.rs` | the users' personal data keys |
//! | `failure.rs` | the driver's and the pool's errors as failure classes |
//!
//! The statements, their parameters, how rows read back and the failure classes by SQLSTATE are
//! shared with the sqlx store (`store/sql/`).
//!
//! The driver and pool crates this API exposes are re-exported ([`tokio_postgres`],
//! [`deadpool_postgres`], and [`rustls`] and [`tokio_postgres_rustls`] with feature
//! `postgres-rustls`), so an application
//! builds its configuration or its own pool ([`PostgresStore::new`]) with the same versions.

mod append;
mod connect;
mod failure;
mod feed;
mod load;
mod personal_keys;
mod projections;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;

pub use super::sql::MIGRATIONS;
pub use super::sql::statements::VERSION_CONSTRAINT;
pub use connect::{ConnectOptions, DEFAULT_DEADLINE, Tls, parse_config};
pub use deadpool_postgres;
pub use projections::{PostgresHandler, PostgresProjection};
#[cfg(feature = "postgres-rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres-rustls")))]
pub use rustls;
pub use tokio_postgres;
#[cfg(feature = "postgres-rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres-rustls")))]
pub use tokio_postgres_rustls;

use super::sql::failure::within;
use super::sql::statements::Statements;
use super::sql::{
    CREATE_VERSION_TABLE, IS_APPLIED, MIGRATION_ATTEMPTS, RECORD_APPLIED, migration_raced,
    search_path, valid_identifier,
};
use super::{
    AppendBatch, Appended, Capabilities, EventStore, FeedEvent, Follow, ReadFrom, Recalled,
    RecordedEvent, Snapshot, StoreError, StreamRead,
};
use crate::ids::StreamId;

/// A PostgreSQL event store. Cloning shares the pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    schema: Option<String>,
    sql: Arc<Statements>,
    table: String,
    deadline: Duration,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// Classifies a driver error of a read (or of a write not yet sent).
fn classify(err: tokio_postgres::Error) -> StoreError {
    failure::store_error(&err, false)
}

impl PostgresStore {
    /// A store on an existing pool (an application's own, with default session settings: the
    /// statements carry the planner settings they need), using the tables on the search path.
    /// Calls are bounded by the store's deadline ([`PostgresStore::with_deadline`]); a
    /// `statement_timeout` on the pool's sessions bounds them on the server too.
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            schema: None,
            sql: Arc::new(Statements::new(None)),
            table: "passkey_links_events".to_owned(),
            deadline: DEFAULT_DEADLINE,
        }
    }

    /// Sets the deadline of every store call (it should cover the pool's own timeouts).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Connects a pool of up to `max_connections` to `config`, a libpq key/value string
    /// (`host=/tmp user=postgres`) or a URL (`postgres://user@host/db`), without TLS (see
    /// [`PostgresStore::connect_with`]). Connections are opened lazily.
    ///
    /// # Errors
    /// [`StoreError::Internal`] for a malformed configuration.
    pub fn connect(config: &str, max_connections: usize) -> Result<Self, StoreError> {
        Self::connect_with_deadline(config, max_connections, DEFAULT_DEADLINE)
    }

    /// As [`PostgresStore::connect`], with every call bounded by `deadline`: connecting, waiting
    /// for a pooled connection, each statement on the server (`statement_timeout`) and each
    /// call as a whole.
    ///
    /// # Errors
    /// [`StoreError::Internal`] for a malformed configuration.
    pub fn connect_with_deadline(
        config: &str,
        max_connections: usize,
        deadline: Duration,
    ) -> Result<Self, StoreError> {
        Self::connect_with(
            parse_config(config)?,
            ConnectOptions::default()
                .max_connections(max_connections)
                .deadline(deadline),
        )
    }

    /// Connects a pool to a driver configuration (built in code, or parsed from a URL or a
    /// key/value string with [`parse_config`]). Its `sslmode` is honoured: `disable` never
    /// encrypts, `prefer` encrypts when the server offers TLS and `options.tls` can, `require`
    /// fails as [`StoreError::Misconfigured`] unless a TLS connection is set up — with
    /// [`Tls::Rustls`] the server's certificate is verified against the configured roots and its
    /// name. Connections are opened lazily.
    ///
    /// # Errors
    /// [`StoreError::Internal`] for an unusable pool configuration.
    pub fn connect_with(
        config: tokio_postgres::Config,
        options: ConnectOptions,
    ) -> Result<Self, StoreError> {
        let deadline = options.deadline;
        Ok(Self::new(connect::build_pool(config, options)?).with_deadline(deadline))
    }

    /// Uses the tables in `schema` (created by [`PostgresStore::migrate`]): one schema per tenant
    /// or per test.
    ///
    /// # Errors
    /// [`StoreError::Internal`] unless `schema` is a lowercase identifier of at most 63 bytes.
    pub fn in_schema(mut self, schema: &str) -> Result<Self, StoreError> {
        if !valid_identifier(schema) {
            return Err(StoreError::Internal(format!(
                "invalid schema name {schema:?}"
            )));
        }
        self.sql = Arc::new(Statements::new(Some(schema)));
        self.table = format!("\"{schema}\".passkey_links_events");
        self.schema = Some(schema.to_owned());
        Ok(self)
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The qualified name of the events table.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The schema set with [`PostgresStore::in_schema`], if any.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(failure::pool_error)
    }

    /// Applies the versioned migrations of `migrations/` that the schema-version table
    /// (`passkey_links_schema_migrations`) does not list yet, each in its own transaction, in the
    /// store's schema (created if missing). Safe under concurrent callers without advisory
    /// locks: a migrator that loses a race on creating an object re-reads the version table and
    /// finds the work done. External migration tools can apply the same files instead.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Misconfigured`] or [`StoreError::Internal`].
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut attempts = 0;
        loop {
            match self.migrate_once().await {
                Err(err) if attempts < MIGRATION_ATTEMPTS && migration_raced(&err) => attempts += 1,
                other => return other,
            }
        }
    }

    async fn migrate_once(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        if let Some(schema) = &self.schema {
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .await
                .map_err(classify)?;
        }
        let search_path = search_path(self.schema.as_deref());
        for (version, name, sql) in MIGRATIONS {
            let tx = client.transaction().await.map_err(classify)?;
            tx.batch_execute(&search_path).await.map_err(classify)?;
            tx.batch_execute(CREATE_VERSION_TABLE)
                .await
                .map_err(classify)?;
            let applied = tx
                .query_opt(IS_APPLIED, &[version])
                .await
                .map_err(classify)?;
            if applied.is_none() {
                tx.batch_execute(sql).await.map_err(classify)?;
                tx.execute(RECORD_APPLIED, &[version, name])
                    .await
                    .map_err(classify)?;
            }
            tx.commit().await.map_err(classify)?;
        }
        Ok(())
    }

    /// The schema versions applied, ascending.
    ///
    /// # Errors
    /// [`StoreError`] on connection failure; [`StoreError::Misconfigured`] before any
    /// migration.
    pub async fn schema_versions(&self) -> Result<Vec<i64>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(&self.sql.schema_versions, &[])
            .await
            .map_err(classify)?;
        rows.iter()
            .map(|row| row.try_get::<_, i64>(0).map_err(classify))
            .collect()
    }

    /// Every event in the store, in position order.
    ///
    /// # Errors
    /// [`StoreError`] on connection failure or corrupted rows.
    pub async fn all_events(&self) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(&self.sql.all_events, &[])
            .await
            .map_err(classify)?;
        rows.iter().map(super::sql::rows::any_event).collect()
    }
}

impl EventStore for PostgresStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    async fn read_many(
        &self,
        streams: &[(StreamId, u64)],
        limit: usize,
    ) -> Result<Vec<Vec<RecordedEvent>>, StoreError> {
        within(self.deadline, false, self.read_many_now(streams, limit)).await
    }

    async fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>, StoreError> {
        within(self.deadline, true, self.append_now(batch)).await
    }

    async fn read_feed(&self, after: u64, limit: usize) -> Result<Vec<FeedEvent>, StoreError> {
        within(self.deadline, false, self.read_feed_now(after, limit)).await
    }

    async fn recall(&self, key: &str) -> Result<Option<Recalled>, StoreError> {
        within(self.deadline, false, self.recall_now(key)).await
    }

    async fn prune_idempotency(
        &self,
        older_than: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        within(self.deadline, true, self.prune_idempotency_now(older_than)).await
    }

    /// Tokio's timer: the store runs on Tokio (with its time driver) anyway.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }

    async fn load_many(
        &self,
        streams: &[(StreamId, ReadFrom)],
        follow: &[Follow],
        limit: usize,
    ) -> Result<Vec<StreamRead>, StoreError> {
        within(
            self.deadline,
            false,
            self.load_many_now(streams, follow, limit),
        )
        .await
    }

    async fn read_snapshots(
        &self,
        streams: &[StreamId],
    ) -> Result<Vec<Option<Snapshot>>, StoreError> {
        within(self.deadline, false, self.read_snapshots_now(streams)).await
    }

    async fn write_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        within(self.deadline, true, self.write_snapshot_now(snapshot)).await
    }

    async fn store_time(&self) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
        within(self.deadline, false, self.store_time_now()).await
    }
}
