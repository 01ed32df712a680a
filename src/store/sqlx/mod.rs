//! PostgreSQL event store over an [`sqlx::PgPool`] the application hands in (feature
//! `sqlx-postgres`): the application's pool, with its own settings, serves the store as it is.
//!
//! Same schema, same migrations and same statements as the tokio-postgres store
//! ([`crate::store::postgres`], feature `postgres`): the two interoperate on one database, and
//! a database migrated by either is migrated for both. This module adds only how sqlx binds,
//! runs and reads; the dialect — statements, parameters, rows, failure classes — is shared.
//!
//! Migrate with [`SqlxStore::migrate`] (the version table both stores keep), or apply the files
//! of `migrations/` with sqlx's own migrator (`sqlx::migrate!`), which runs them as they are.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`SqlxStore`], migrations, the event store port |
//! | `failure.rs` | sqlx errors as failure classes; reading rows |
//! | `projections.rs` | checkpoints and the shipped read models; personal data keys |
//!
//! [`sqlx`] is re-exported, so an application builds its pool with the same version.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use passkey_links::store::sqlx::{SqlxStore, sqlx::PgPool};
//!
//! let pool = PgPool::connect("postgres://postgres@localhost/app").await?;
//! let store = SqlxStore::new(pool);
//! store.migrate().await?;
//! # Ok(())
//! # }
//! ```

mod failure;
mod projections;

use std::sync::Arc;
use std::time::Duration;

pub use sqlx;
use sqlx::PgPool;
use sqlx::postgres::PgRow;

use self::failure::{classify, sqlstate, store_error, violated};
use super::sql::failure::{FEED_ON_A_STANDBY, lost_to_a_concurrent_writer, within};
use super::sql::params::{Guard, Load, Rows, Standing, int8, types_and_ids};
use super::sql::rows;
use super::sql::statements::{
    ANY_RETRIES, KEY_CONSTRAINT, SEQUENCE_BATCH, SEQUENCE_RETRIES, Statements, VERSION_CONSTRAINT,
};
use super::sql::{
    CREATE_VERSION_TABLE, IS_APPLIED, MIGRATION_ATTEMPTS, RECORD_APPLIED, migration_raced,
    search_path, valid_identifier,
};
use super::{
    AppendBatch, Appended, Capabilities, EventStore, FeedEvent, Follow, IdempotencyRecord,
    ReadFrom, ReadStream, Recalled, RecordedEvent, Snapshot, StoreError, StreamAppend, StreamRead,
};
use crate::ids::StreamId;

pub use super::sql::{DEFAULT_DEADLINE, MIGRATIONS};

/// A PostgreSQL event store on an sqlx pool. Cloning shares the pool.
#[derive(Clone)]
pub struct SqlxStore {
    pool: PgPool,
    schema: Option<String>,
    sql: Arc<Statements>,
    deadline: Duration,
}

impl std::fmt::Debug for SqlxStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlxStore")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// sqlx's connection options from a URL (`postgres://user@host/db?sslmode=verify-full`) or a
/// libpq key/value string (`host=/var/run/postgresql user=postgres sslmode=require`), which
/// sqlx itself does not parse: `host` (a path: a Unix socket directory), `port`, `user`,
/// `password`, `dbname`, `sslmode` (libpq's modes, `verify-ca` and `verify-full` included) and
/// `sslrootcert`.
///
/// # Errors
/// [`StoreError::Misconfigured`] for a malformed string or an unknown key (the message never
/// repeats a password).
pub fn parse_options(config: &str) -> Result<sqlx::postgres::PgConnectOptions, StoreError> {
    use sqlx::postgres::PgConnectOptions;
    let bad =
        |what: String| StoreError::Misconfigured(format!("bad database configuration: {what}"));
    if config.contains("://") {
        // sqlx's message may quote the URL, password and all.
        return config
            .parse::<PgConnectOptions>()
            .map_err(|_| bad("not a valid PostgreSQL URL".to_owned()));
    }
    let mut options = PgConnectOptions::new();
    for pair in config.split_whitespace() {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(bad(format!(
                "expected key=value, found {:?}",
                pair.split('=').next()
            )));
        };
        options = match key {
            "host" => options.host(value),
            "port" => options.port(value.parse().map_err(|_| bad(format!("port {value:?}")))?),
            "user" => options.username(value),
            "password" => options.password(value),
            "dbname" => options.database(value),
            "sslmode" => options.ssl_mode(
                value
                    .parse()
                    .map_err(|_| bad(format!("sslmode {value:?}")))?,
            ),
            "sslrootcert" => options.ssl_root_cert(value),
            other => return Err(bad(format!("unsupported key {other:?}"))),
        };
    }
    Ok(options)
}

impl SqlxStore {
    /// A store on the application's pool, using the tables on the search path. The pool needs
    /// no session settings of its own: the statements keep their plans whatever the pool's.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            schema: None,
            sql: Arc::new(Statements::new(None)),
            deadline: DEFAULT_DEADLINE,
        }
    }

    /// Sets the deadline of every store call: waiting for a pooled connection and the call as a
    /// whole (a write cut off by it is [`StoreError::OutcomeUnknown`]).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Uses the tables in `schema` (created by [`SqlxStore::migrate`]): one schema per tenant or
    /// per test.
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
        self.schema = Some(schema.to_owned());
        Ok(self)
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema set with [`SqlxStore::in_schema`], if any.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Applies the migrations the schema-version table (`passkey_links_schema_migrations`, the
    /// one the tokio-postgres store keeps too) does not list yet, each in its own transaction,
    /// in the store's schema (created if missing). Safe under concurrent callers.
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
        if let Some(schema) = &self.schema {
            sqlx::raw_sql(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .execute(&self.pool)
                .await
                .map_err(classify)?;
        }
        let search_path = search_path(self.schema.as_deref());
        for (version, name, sql) in MIGRATIONS {
            let mut tx = self.pool.begin().await.map_err(classify)?;
            for setup in [search_path.as_str(), CREATE_VERSION_TABLE] {
                sqlx::raw_sql(setup)
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
            }
            let applied = sqlx::query(IS_APPLIED)
                .bind(version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
            if applied.is_none() {
                sqlx::raw_sql(sql)
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                sqlx::query(RECORD_APPLIED)
                    .bind(version)
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
            }
            tx.commit().await.map_err(classify)?;
        }
        Ok(())
    }

    /// The schema versions applied with [`SqlxStore::migrate`] (or the other store's), ascending.
    ///
    /// # Errors
    /// [`StoreError`] on connection failure; [`StoreError::Misconfigured`] before any
    /// migration.
    pub async fn schema_versions(&self) -> Result<Vec<i64>, StoreError> {
        let rows = self.fetch(sqlx::query(&self.sql.schema_versions)).await?;
        rows.iter().map(|row| rows::SqlRow::int8(row, 0)).collect()
    }

    /// Every event in the store, in position order.
    ///
    /// # Errors
    /// [`StoreError`] on connection failure or corrupted rows.
    pub async fn all_events(&self) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = self.fetch(sqlx::query(&self.sql.all_events)).await?;
        rows.iter().map(rows::any_event).collect()
    }

    /// Runs a read on the pool.
    async fn fetch<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Vec<PgRow>, StoreError> {
        query.fetch_all(&self.pool).await.map_err(classify)
    }

    /// Runs a write on the pool; answers the rows it changed.
    async fn write<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<u64, StoreError> {
        query
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(|err| store_error(&err, true))
    }

    async fn read_many_now(
        &self,
        streams: &[(StreamId, u64)],
        limit: usize,
    ) -> Result<Vec<Vec<RecordedEvent>>, StoreError> {
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        let (types, ids) = types_and_ids(streams.iter().map(|(s, _)| s));
        let after: Vec<i64> = streams.iter().map(|(_, v)| int8(*v)).collect();
        let query = sqlx::query(&self.sql.read_many)
            .bind(types)
            .bind(ids)
            .bind(after)
            .bind(int8(limit as u64));
        rows::read_many(&self.fetch(query).await?, streams)
    }

    async fn append_now(&self, batch: AppendBatch) -> Result<Vec<Appended>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let (appends, read_set, idempotency) =
            (batch.appends(), batch.read_set(), batch.idempotency());
        for _ in 0..ANY_RETRIES {
            if let Some(appended) = self.append_once(appends, read_set, idempotency).await? {
                return Ok(appended);
            }
            let standing = Standing::of(appends, read_set);
            let query = sqlx::query(&self.sql.standing)
                .bind(standing.types)
                .bind(standing.ids)
                .bind(standing.versions);
            if let Some(conflict) =
                rows::first_conflict(appends, read_set, &self.fetch(query).await?)?
            {
                return Err(conflict);
            }
            // Every expectation holds now: a racing writer was rolled back, or only `Any`
            // streams collided. Try again.
        }
        Err(StoreError::Unavailable(
            "append kept colliding with concurrent writers".into(),
        ))
    }

    /// The guarded append once: where each stream stands, or `None` when it wrote nothing.
    async fn append_once(
        &self,
        batch: &[StreamAppend],
        read_set: &[ReadStream],
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<Option<Vec<Appended>>, StoreError> {
        let rows = Rows::of(batch)?;
        let count = rows.types.len();
        let guard = Guard::of(batch, read_set);
        let keyed = idempotency.is_some();
        let key = (
            idempotency.map(|record| record.key.as_str()),
            idempotency.map(|record| &record.outcome),
            idempotency.map(|record| record.recorded_at),
        );
        let query = match self.sql.small_append(count, guard.types.len(), keyed) {
            Some(sql) => {
                let mut query = sqlx::query(sql);
                for k in 0..count {
                    query = query
                        .bind(rows.types[k])
                        .bind(rows.ids[k])
                        .bind(rows.versions[k])
                        .bind(rows.from_end[k])
                        .bind(rows.event_ids[k])
                        .bind(rows.event_types[k])
                        .bind(rows.schemas[k])
                        .bind(rows.payloads[k])
                        .bind(rows.recorded[k]);
                }
                for k in 0..guard.types.len() {
                    query = query
                        .bind(guard.types[k])
                        .bind(guard.ids[k])
                        .bind(guard.versions[k])
                        .bind(guard.event_ids[k])
                        .bind(guard.last[k]);
                }
                if keyed {
                    query = query.bind(key.0).bind(key.1).bind(key.2);
                }
                query
            }
            None => sqlx::query(&self.sql.append)
                .bind(rows.types)
                .bind(rows.ids)
                .bind(rows.versions)
                .bind(rows.from_end)
                .bind(rows.event_ids)
                .bind(rows.event_types)
                .bind(rows.schemas)
                .bind(rows.payloads)
                .bind(rows.recorded)
                .bind(guard.types)
                .bind(guard.ids)
                .bind(guard.versions)
                .bind(guard.event_ids)
                .bind(guard.last)
                .bind(key.0)
                .bind(key.1)
                .bind(key.2),
        };
        let result = query.fetch_all(&self.pool).await;
        match result {
            Ok(written) => rows::appended(batch, &written, count),
            Err(err) if violated(&err, KEY_CONSTRAINT) => Err(StoreError::DuplicateKey),
            // A version taken by another writer: the caller finds out whose expectation failed.
            Err(err)
                if violated(&err, VERSION_CONSTRAINT)
                    || sqlstate(&err).is_some_and(|s| lost_to_a_concurrent_writer(&s)) =>
            {
                Ok(None)
            }
            // One autocommit statement: once sent, a lost connection may have committed it.
            Err(err) => Err(store_error(&err, true)),
        }
    }

    /// Gives feed positions to the visible events that have none (see the tokio-postgres
    /// store: one reader at a time, positions never repeat), then reads the feed, on one
    /// connection.
    async fn read_feed_now(&self, after: u64, limit: usize) -> Result<Vec<FeedEvent>, StoreError> {
        let mut connection = self.pool.acquire().await.map_err(classify)?;
        for _ in 0..SEQUENCE_RETRIES {
            let sequenced = sqlx::query(&self.sql.sequence_feed)
                .bind(SEQUENCE_BATCH)
                .execute(&mut *connection)
                .await;
            match sequenced {
                Ok(_) => break,
                // Another reader sequenced the same rows first: theirs stand.
                Err(err) if sqlstate(&err).is_some_and(|s| lost_to_a_concurrent_writer(&s)) => {}
                Err(err) if sqlstate(&err).as_deref() == Some("25006") => {
                    return Err(StoreError::Misconfigured(FEED_ON_A_STANDBY.to_owned()));
                }
                Err(err) => return Err(classify(err)),
            }
        }
        let rows = sqlx::query(&self.sql.read_feed)
            .bind(int8(after))
            .bind(int8(limit as u64))
            .fetch_all(&mut *connection)
            .await
            .map_err(classify)?;
        rows.iter().map(rows::feed_event).collect()
    }

    async fn recall_now(&self, key: &str) -> Result<Option<Recalled>, StoreError> {
        let rows = self.fetch(sqlx::query(&self.sql.recall).bind(key)).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let written = rows::SqlRow::json(row, 1)?;
        rows::recalled(rows::SqlRow::json(row, 0)?, &written).map(Some)
    }

    async fn load_many_now(
        &self,
        streams: &[(StreamId, ReadFrom)],
        follow: &[Follow],
        limit: usize,
    ) -> Result<Vec<StreamRead>, StoreError> {
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        let load = Load::of(streams, follow, limit);
        let query = sqlx::query(&self.sql.load_many)
            .bind(load.types)
            .bind(load.ids)
            .bind(load.after)
            .bind(load.limit)
            .bind(load.follow_types)
            .bind(load.fields)
            .bind(load.sources)
            .bind(load.base)
            .bind(load.event_types)
            .bind(load.keys)
            .bind(load.values);
        rows::load_many(&self.fetch(query).await?, streams, follow)
    }

    async fn read_snapshots_now(
        &self,
        streams: &[StreamId],
    ) -> Result<Vec<Option<Snapshot>>, StoreError> {
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        let (types, ids) = types_and_ids(streams.iter());
        let query = sqlx::query(&self.sql.read_snapshots).bind(types).bind(ids);
        rows::snapshots(&self.fetch(query).await?, streams)
    }

    async fn write_snapshot_now(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let query = sqlx::query(&self.sql.write_snapshot)
            .bind(snapshot.stream.kind().as_str())
            .bind(snapshot.stream.id())
            .bind(int8(snapshot.version))
            .bind(&snapshot.state);
        self.write(query).await.map(drop)
    }
}

impl EventStore for SqlxStore {
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
        let query = sqlx::query(&self.sql.prune_idempotency).bind(older_than);
        within(self.deadline, true, self.write(query)).await
    }

    /// Tokio's timer: sqlx runs on Tokio here anyway.
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
        let read = async {
            let rows = self.fetch(sqlx::query(&self.sql.store_time)).await?;
            let row = rows
                .first()
                .ok_or_else(|| StoreError::Internal("the server gave no time".into()))?;
            rows::SqlRow::time(row, 0)
        };
        within(self.deadline, false, read).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::postgres::PgSslMode;

    #[test]
    fn key_value_strings_and_urls_parse_with_libpq_meanings() {
        let options =
            parse_options("host=/tmp/pg port=5433 user=app dbname=links sslmode=verify-full")
                .unwrap();
        assert_eq!(options.get_host(), "/tmp/pg");
        assert_eq!(options.get_port(), 5433);
        assert_eq!(options.get_username(), "app");
        assert_eq!(options.get_database(), Some("links"));
        assert!(matches!(options.get_ssl_mode(), PgSslMode::VerifyFull));
        let options =
            parse_options("postgres://app@db.example.com/links?sslmode=verify-ca").unwrap();
        assert_eq!(options.get_host(), "db.example.com");
        assert!(matches!(options.get_ssl_mode(), PgSslMode::VerifyCa));
    }

    #[test]
    fn a_bad_string_is_misconfigured_and_never_repeats_the_password() {
        for bad in [
            "host=/tmp user=app password=hunter2-secret sslmode=sometimes",
            "host=/tmp password=hunter2-secret colour=blue",
            "postgres://app:hunter2-secret@db:notaport/links",
        ] {
            let err = parse_options(bad).unwrap_err();
            assert!(
                matches!(err, StoreError::Misconfigured(_)),
                "{bad}: {err:?}"
            );
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }
}
