//! PostgreSQL event store (feature `postgres`), on tokio-postgres with a deadpool pool.
//!
//! One table holds every stream:
//!
//! | column | type |
//! |---|---|
//! | `position` | `bigint` identity, primary key (global order) |
//! | `stream_type`, `stream_id` | `text` |
//! | `version` | `bigint`, unique per stream (constraint `passkey_links_events_stream_version`) |
//! | `event_type` | `text` |
//! | `schema_version` | `smallint` |
//! | `payload` | `jsonb` |
//! | `recorded_at` | `timestamptz` |
//!
//! A second table, `passkey_links_idempotency` (key, outcome, the streams and versions written),
//! records idempotency keys in the same statement as the events they cover.
//!
//! An append is **one statement**: it reads each stream's current version, checks every
//! expectation, and inserts the whole batch only if all hold — atomic across streams without an
//! explicit transaction round trip. A concurrent writer that slipped in between is caught by the
//! unique constraint, recognised by its name (never by message text), and reported as the typed
//! conflict with the stream's actual version.
//!
//! The driver and pool crates this API exposes are re-exported ([`tokio_postgres`],
//! [`deadpool_postgres`], and [`rustls`] with feature `postgres-rustls`), so an application
//! builds its configuration or its own pool ([`PostgresStore::new`]) with the same versions.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::Value;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

pub use deadpool_postgres;
#[cfg(feature = "postgres-rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres-rustls")))]
pub use rustls;
pub use tokio_postgres;

use super::{
    AppendBatch, Appended, EventStore, ExpectedVersion, FOLLOW_WINDOW, FeedEvent, Follow,
    IdempotencyRecord, Naming, ReadFrom, Recalled, RecordedEvent, Seen, Snapshot, StoreError,
    StreamAppend, StreamRead,
};
use crate::ids::{AggregateKind, StreamId};

/// The versioned migrations, in order: version, name, SQL (the files of `migrations/`).
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "events",
        include_str!("../../../migrations/0001_events.sql"),
    ),
    (
        2,
        "idempotency",
        include_str!("../../../migrations/0002_idempotency.sql"),
    ),
    (3, "feed", include_str!("../../../migrations/0003_feed.sql")),
    (
        4,
        "read_models",
        include_str!("../../../migrations/0004_read_models.sql"),
    ),
    (
        5,
        "snapshots",
        include_str!("../../../migrations/0005_snapshots.sql"),
    ),
];

/// The unique constraint that makes versions unique per stream.
pub const VERSION_CONSTRAINT: &str = "passkey_links_events_stream_version";
const TABLE: &str = "passkey_links_events";
const KEYS_TABLE: &str = "passkey_links_idempotency";
const FEED_HEAD_TABLE: &str = "passkey_links_feed_head";
/// Events given feed positions by one reader at a time, at most.
const SEQUENCE_BATCH: i64 = 10_000;
/// The primary key of the idempotency table: a violation is a repeated key.
const KEY_CONSTRAINT: &str = "passkey_links_idempotency_pkey";
/// Appends with only `Any` expectations that keep colliding are retried this often.
const ANY_RETRIES: usize = 8;

/// A PostgreSQL event store. Cloning shares the pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    schema: Option<String>,
    table: String,
    keys_table: String,
    feed_head_table: String,
    deadline: Duration,
}

/// Parses a libpq key/value string (`host=/tmp user=postgres sslmode=require`) or a URL
/// (`postgres://user@host/db?sslmode=require`).
///
/// # Errors
/// [`StoreError::Internal`] for a malformed configuration (the message never repeats a
/// password).
pub fn parse_config(config: &str) -> Result<tokio_postgres::Config, StoreError> {
    tokio_postgres::Config::from_str(config)
        .map_err(|err| StoreError::Internal(format!("bad database configuration: {err}")))
}

/// How the store's connections are secured.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Tls {
    /// Plain connections: `sslmode=require` fails as misconfigured.
    #[default]
    None,
    /// TLS through rustls with this client configuration (feature `postgres-rustls`).
    #[cfg(feature = "postgres-rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres-rustls")))]
    Rustls(std::sync::Arc<rustls::ClientConfig>),
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("Tls::None"),
            #[cfg(feature = "postgres-rustls")]
            Self::Rustls(_) => f.write_str("Tls::Rustls(..)"),
        }
    }
}

#[cfg(feature = "postgres-rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres-rustls")))]
impl Tls {
    /// TLS through rustls (ring), trusting only the certificate authorities of `pem` (the
    /// server's CA bundle, e.g. a cloud provider's), verifying the server's name.
    ///
    /// # Errors
    /// [`StoreError::Misconfigured`] when `pem` holds no usable certificate.
    pub fn rustls_trusting_pem(pem: &[u8]) -> Result<Self, StoreError> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let bad = |why: String| StoreError::Misconfigured(format!("TLS roots: {why}"));
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|err| bad(err.to_string()))?;
            roots.add(cert).map_err(|err| bad(err.to_string()))?;
        }
        if roots.is_empty() {
            return Err(bad("no certificate in the PEM data".into()));
        }
        // An explicit provider: an application that also compiles another rustls provider
        // must not make the default ambiguous.
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| bad(err.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self::Rustls(std::sync::Arc::new(config)))
    }
}

/// Pool settings for [`PostgresStore::connect_with`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Most connections open at once (default 16).
    pub max_connections: usize,
    /// Bound of every call: connecting, waiting for a pooled connection, each statement and
    /// each call as a whole (default [`DEFAULT_DEADLINE`]).
    pub deadline: Duration,
    /// How connections are secured (default none).
    pub tls: Tls,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            deadline: DEFAULT_DEADLINE,
            tls: Tls::None,
        }
    }
}

impl ConnectOptions {
    /// Sets the pool size.
    pub fn max_connections(mut self, max_connections: usize) -> Self {
        self.max_connections = max_connections;
        self
    }

    /// Sets the deadline.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sets how connections are secured.
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = tls;
        self
    }
}

/// How long one store call may take, connecting and waiting for a pooled connection included,
/// unless configured otherwise.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

/// Runs one store call within `deadline`: a server that stops answering is a typed error, never
/// a hang. A write cut off by the deadline may still commit: its outcome is unknown.
async fn within<T>(
    deadline: Duration,
    write: bool,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(deadline, call).await {
        Ok(result) => result,
        Err(_) if write => Err(StoreError::OutcomeUnknown(format!(
            "no answer within the deadline of {deadline:?}"
        ))),
        Err(_) => Err(StoreError::Unavailable(format!(
            "no answer within the deadline of {deadline:?}"
        ))),
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

mod failure;
mod projections;

pub use projections::{PostgresHandler, PostgresProjection};

/// Classifies a driver error of a read (or of a write not yet sent).
fn classify(err: tokio_postgres::Error) -> StoreError {
    failure::store_error(&err, false)
}

/// A serialization failure or a deadlock rolled the append back because a concurrent writer
/// touched the same streams (the isolation CockroachDB and YugabyteDB force, or a server with
/// `default_transaction_isolation = serializable`): nothing was written; look again.
fn lost_to_a_concurrent_writer(err: &tokio_postgres::Error) -> bool {
    err.as_db_error().is_some_and(|db| {
        db.code() == &SqlState::T_R_SERIALIZATION_FAILURE
            || db.code() == &SqlState::T_R_DEADLOCK_DETECTED
    })
}

fn is_repeated_key(err: &tokio_postgres::Error) -> bool {
    err.as_db_error().is_some_and(|db| {
        db.code() == &SqlState::UNIQUE_VIOLATION && db.constraint() == Some(KEY_CONSTRAINT)
    })
}

fn is_version_collision(err: &tokio_postgres::Error) -> bool {
    err.as_db_error().is_some_and(|db| {
        db.code() == &SqlState::UNIQUE_VIOLATION && db.constraint() == Some(VERSION_CONSTRAINT)
    })
}

fn valid_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

impl PostgresStore {
    /// A store on an existing pool, using the table `passkey_links_events` on the search path.
    /// Sessions of that pool should run with `plan_cache_mode=force_generic_plan`, `jit=off`
    /// and `enable_seqscan=off` (as [`PostgresStore::connect`] sets up) to avoid re-planning
    /// every append, JIT-compiling reads of long streams, and keeping a plan made on small
    /// tables that scans them.
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            schema: None,
            table: TABLE.to_owned(),
            keys_table: KEYS_TABLE.to_owned(),
            feed_head_table: FEED_HEAD_TABLE.to_owned(),
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
        mut config: tokio_postgres::Config,
        options: ConnectOptions,
    ) -> Result<Self, StoreError> {
        let deadline = options.deadline;
        // The store's statements have a fixed shape; re-planning them per execution (custom
        // plans for array parameters) costs several times their execution. A generic plan over
        // a long stream estimates a third of it as the rows of any read, which crosses the JIT
        // threshold: compiling then costs 5–30 ms for a read of one row. Every statement here
        // is a short index lookup: no JIT. For the same reason no sequential scans: a generic
        // plan is made once per connection, often while the tables are still small, where a
        // scan looks cheapest — and it would stay a scan as they grow (an append that checks
        // the events it saw went from 0.5 ms to 6 ms over 3,000 appends to one stream).
        let ours = format!(
            "-c plan_cache_mode=force_generic_plan -c jit=off -c enable_seqscan=off \
             -c statement_timeout={}",
            deadline.as_millis()
        );
        let server_options = match config.get_options() {
            Some(existing) => format!("{existing} {ours}"),
            None => ours,
        };
        config.options(&server_options);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(deadline);
        }
        let recycling = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match options.tls {
            Tls::None => Manager::from_config(config, NoTls, recycling),
            #[cfg(feature = "postgres-rustls")]
            Tls::Rustls(client) => Manager::from_config(
                config,
                tokio_postgres_rustls::MakeRustlsConnect::new((*client).clone()),
                recycling,
            ),
        };
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            // The connection used last, whose server process is still hot in the CPU's
            // caches: first in, first out cycles every statement through every connection the
            // pool ever opened (at 16 tasks on a pool once grown to 64, issuance ran at 0.6
            // times the rate it had before the pool grew).
            .queue_mode(deadpool_postgres::QueueMode::Lifo)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(deadline))
            .create_timeout(Some(deadline))
            .recycle_timeout(Some(deadline))
            .build()
            .map_err(|err| StoreError::Internal(err.to_string()))?;
        Ok(Self::new(pool).with_deadline(deadline))
    }

    /// Uses the table in `schema` (created by [`PostgresStore::migrate`]): one schema per tenant
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
        self.table = format!("\"{schema}\".{TABLE}");
        self.keys_table = format!("\"{schema}\".{KEYS_TABLE}");
        self.feed_head_table = format!("\"{schema}\".{FEED_HEAD_TABLE}");
        self.schema = Some(schema.to_owned());
        Ok(self)
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The qualified table name.
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
                Err(StoreError::Internal(message) | StoreError::Unavailable(message))
                    if attempts < 8
                        && (message.contains("23505")
                            || message.contains("42P07")
                            || message.contains("42710")
                            || message.contains("40001")
                            || message.contains("40P01")) =>
                {
                    // Another migrator created the same object first, or (every transaction
                    // serializable) got in the way: look again.
                    attempts += 1;
                }
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
        let search_path = match &self.schema {
            Some(schema) => format!("SET LOCAL search_path TO \"{schema}\""),
            None => "SELECT 1".to_owned(),
        };
        for (version, name, sql) in MIGRATIONS {
            let tx = client.transaction().await.map_err(classify)?;
            tx.batch_execute(&search_path).await.map_err(classify)?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS passkey_links_schema_migrations (
                    version bigint PRIMARY KEY,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )",
            )
            .await
            .map_err(classify)?;
            let applied = tx
                .query_opt(
                    "SELECT 1 FROM passkey_links_schema_migrations WHERE version = $1",
                    &[version],
                )
                .await
                .map_err(classify)?;
            if applied.is_none() {
                tx.batch_execute(sql).await.map_err(classify)?;
                tx.execute(
                    "INSERT INTO passkey_links_schema_migrations (version, name) VALUES ($1, $2)",
                    &[version, name],
                )
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
        let table = match &self.schema {
            Some(schema) => format!("\"{schema}\".passkey_links_schema_migrations"),
            None => "passkey_links_schema_migrations".to_owned(),
        };
        let rows = client
            .query(
                &format!("SELECT version FROM {table} ORDER BY version"),
                &[],
            )
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
        let sql = format!(
            "SELECT stream_type, stream_id, version, position, event_type, schema_version, payload, recorded_at
             FROM {} ORDER BY position",
            self.table
        );
        let rows = client.query(&sql, &[]).await.map_err(classify)?;
        rows.iter()
            .map(|row| decode_row(stream_of(row, 0)?, row, 2))
            .collect()
    }

    async fn actual_versions(
        &self,
        client: &deadpool_postgres::Client,
        batch: &[StreamAppend],
    ) -> Result<Vec<u64>, StoreError> {
        let (types, ids): (Vec<&str>, Vec<&str>) = batch
            .iter()
            .map(|a| (a.stream.kind().as_str(), a.stream.id()))
            .unzip();
        let sql = format!(
            "SELECT COALESCE((SELECT max(e.version) FROM {} e
                              WHERE e.stream_type = s.t AND e.stream_id = s.i), 0)
             FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS s(t, i, n) ORDER BY s.n",
            self.table
        );
        let statement = client.prepare_cached(&sql).await.map_err(classify)?;
        let rows = client
            .query(&statement, &[&types, &ids])
            .await
            .map_err(classify)?;
        rows.iter()
            .map(|row| {
                let v: i64 = row.try_get(0).map_err(classify)?;
                Ok(u64::try_from(v).unwrap_or(0))
            })
            .collect()
    }

    /// The first seen event that is no longer last in its stream, with the stream's version.
    async fn first_unseen(
        &self,
        client: &deadpool_postgres::Client,
        seen: &[Arc<Seen>],
    ) -> Result<Option<(usize, u64)>, StoreError> {
        if seen.is_empty() {
            return Ok(None);
        }
        let streams: Vec<(StreamId, ReadFrom)> = seen
            .iter()
            .map(|s| {
                (
                    s.stream.clone(),
                    ReadFrom::After(s.version.saturating_sub(1)),
                )
            })
            .collect();
        let reads = self.load_many_on(client, &streams, &[], 2).await?;
        for (i, (seen, read)) in seen.iter().zip(reads).enumerate() {
            let holds =
                read.events.len() == 1 && read.events.first().is_some_and(|e| seen.matches(e));
            if !holds {
                let actual = read.events.last().map_or(0, |e| e.version);
                return Ok(Some((i, actual)));
            }
        }
        Ok(None)
    }

    async fn append_once(
        &self,
        client: &deadpool_postgres::Client,
        batch: &[StreamAppend],
        idempotency: Option<&IdempotencyRecord>,
        seen: &[Arc<Seen>],
    ) -> Result<Option<Vec<Appended>>, StoreError> {
        let events = NewRows::of(batch)?;
        let guard = Guard::of(batch, seen);
        let (key, outcome) = match idempotency {
            Some(record) => (Some(record.key.as_str()), Some(&record.outcome)),
            None => (None, None),
        };
        let small = events.types.len() <= SCALAR_ROWS && guard.types.len() <= SCALAR_GUARD;
        let sql = if small {
            scalar_append_statement(
                &self.table,
                &self.keys_table,
                &events,
                &guard,
                key.is_some(),
            )
        } else {
            append_statement(
                &self.table,
                &self.keys_table,
                events.from_end.is_some(),
                !guard.types.is_empty(),
                key.is_some(),
            )
        };
        let statement = client.prepare_cached(&sql).await.map_err(classify)?;
        let mut params: Vec<Param<'_>> = Vec::new();
        events.push_params(small, &mut params);
        guard.push_params(small, &mut params);
        if key.is_some() {
            params.extend([&key as Param<'_>, &outcome]);
        }
        let result = client.query(&statement, &params).await;
        let rows = match result {
            Ok(rows) => rows,
            Err(err) if is_repeated_key(&err) => return Err(StoreError::DuplicateKey),
            // A version taken by another writer: the caller finds out whose expectation failed.
            Err(err) if is_version_collision(&err) || lost_to_a_concurrent_writer(&err) => {
                return Ok(None);
            }
            // The append is one autocommit statement: once sent, a lost connection may have
            // committed it.
            Err(err) => return Err(failure::store_error(&err, true)),
        };
        let expected_rows: usize = batch.iter().map(|a| a.events.len()).sum();
        if rows.len() != expected_rows {
            return Ok(None);
        }
        let mut appended = vec![Appended::new(0, 0); batch.len()];
        for row in &rows {
            let kind: &str = row.try_get(0).map_err(classify)?;
            let id: &str = row.try_get(1).map_err(classify)?;
            let version = u64::try_from(row.try_get::<_, i64>(2).map_err(classify)?).unwrap_or(0);
            let position = u64::try_from(row.try_get::<_, i64>(3).map_err(classify)?).unwrap_or(0);
            if let Some(i) = batch
                .iter()
                .position(|a| a.stream.kind().as_str() == kind && a.stream.id() == id)
                && appended[i].version < version
            {
                appended[i] = Appended::new(version, position);
            }
        }
        Ok(Some(appended))
    }
}

/// The rows a batch inserts, as the append statement's array parameters. Versions are the
/// expected version plus the event's place in its stream's append, so the unique (stream,
/// version) constraint refuses a stream that moved past the expectation; `Any` streams count
/// from the stream's end inside the statement (`from_end`, only when the batch has one).
struct NewRows<'a> {
    types: Vec<&'a str>,
    ids: Vec<&'a str>,
    versions: Vec<i64>,
    event_types: Vec<&'a str>,
    schemas: Vec<i16>,
    payloads: Vec<&'a str>,
    recorded: Vec<DateTime<Utc>>,
    from_end: Option<Vec<bool>>,
}

impl<'a> NewRows<'a> {
    fn of(batch: &'a [StreamAppend]) -> Result<Self, StoreError> {
        let count = batch.iter().map(|a| a.events.len()).sum();
        let mut rows = Self {
            types: Vec::with_capacity(count),
            ids: Vec::with_capacity(count),
            versions: Vec::with_capacity(count),
            event_types: Vec::with_capacity(count),
            schemas: Vec::with_capacity(count),
            payloads: Vec::with_capacity(count),
            recorded: Vec::with_capacity(count),
            from_end: batch
                .iter()
                .any(|a| a.expected == ExpectedVersion::Any)
                .then(|| Vec::with_capacity(count)),
        };
        for append in batch {
            let base = match append.expected {
                ExpectedVersion::NoStream | ExpectedVersion::Any => 0,
                ExpectedVersion::Exact(v) => i64::try_from(v)
                    .map_err(|_| StoreError::Internal("version out of range".into()))?,
            };
            for (ordinal, event) in (1..).zip(&append.events) {
                rows.types.push(append.stream.kind().as_str());
                rows.ids.push(append.stream.id());
                rows.versions.push(base + ordinal);
                rows.event_types.push(event.event_type.as_str());
                rows.schemas.push(
                    i16::try_from(event.schema_version)
                        .map_err(|_| StoreError::Internal("schema version out of range".into()))?,
                );
                rows.payloads.push(event.payload.as_str());
                rows.recorded.push(event.recorded_at);
                if let Some(from_end) = &mut rows.from_end {
                    from_end.push(append.expected == ExpectedVersion::Any);
                }
            }
        }
        Ok(rows)
    }
}

/// A statement parameter.
type Param<'p> = &'p (dyn tokio_postgres::types::ToSql + Sync);

/// One column of a batch's parameters: sent whole, as an array, or value by value.
trait Column: Sync {
    fn whole(&self) -> Param<'_>;
    fn at(&self, row: usize) -> Param<'_>;
}

impl<T> Column for Vec<T>
where
    T: tokio_postgres::types::ToSql + Sync,
    Vec<T>: tokio_postgres::types::ToSql + Sync,
{
    fn whole(&self) -> Param<'_> {
        self
    }

    fn at(&self, row: usize) -> Param<'_> {
        &self[row]
    }
}

/// `columns` (each `rows` long) as parameters: value by value, row after row, for a small
/// batch ([`scalar_append_statement`]); else one array per column ([`append_statement`]).
fn push_columns<'p>(
    columns: &[&'p dyn Column],
    rows: usize,
    small: bool,
    params: &mut Vec<Param<'p>>,
) {
    if small {
        for row in 0..rows {
            params.extend(columns.iter().map(|column| column.at(row)));
        }
    } else {
        params.extend(columns.iter().map(|column| column.whole()));
    }
}

impl NewRows<'_> {
    /// The rows as parameters ([`push_columns`]).
    fn push_params<'p>(&'p self, small: bool, params: &mut Vec<Param<'p>>) {
        let mut columns: Vec<&'p dyn Column> = vec![
            &self.types,
            &self.ids,
            &self.versions,
            &self.event_types,
            &self.schemas,
            &self.payloads,
            &self.recorded,
        ];
        if let Some(from_end) = &self.from_end {
            columns.push(from_end);
        }
        push_columns(&columns, self.types.len(), small, params);
    }
}

/// The events that must stand in their streams for a batch to be written, as the append
/// statement's array parameters: each seen event (content compared; `last`: nothing may follow
/// it, unless the batch writes the version after it — then the version constraint sees to
/// that), and
/// the event at each `Exact` expectation that no seen event covers (it must exist: no gaps).
struct Guard<'a> {
    types: Vec<&'a str>,
    ids: Vec<&'a str>,
    versions: Vec<i64>,
    positions: Vec<Option<i64>>,
    event_types: Vec<Option<&'a str>>,
    /// As the text seen ([`Seen::payload`]), read as `jsonb` by the statement.
    payloads: Vec<Option<&'a str>>,
    times: Vec<Option<DateTime<Utc>>>,
    last: Vec<bool>,
}

impl<'a> Guard<'a> {
    fn of(batch: &'a [StreamAppend], seen: &'a [Arc<Seen>]) -> Self {
        let mut guard = Self {
            types: Vec::new(),
            ids: Vec::new(),
            versions: Vec::new(),
            positions: Vec::new(),
            event_types: Vec::new(),
            payloads: Vec::new(),
            times: Vec::new(),
            last: Vec::new(),
        };
        let version = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        for seen in seen {
            guard.types.push(seen.stream.kind().as_str());
            guard.ids.push(seen.stream.id());
            guard.versions.push(version(seen.version));
            guard.positions.push(Some(version(seen.position)));
            guard.event_types.push(Some(seen.event_type.as_str()));
            guard.payloads.push(Some(seen.payload.as_str()));
            guard.times.push(Some(seen.recorded_at));
            // Written right after the event seen, the stream's next version is taken by this
            // batch: the unique (stream, version) constraint refuses it if anything follows.
            let next_is_written = batch.iter().any(|a| {
                a.stream == seen.stream && a.expected == ExpectedVersion::Exact(seen.version)
            });
            guard.last.push(!next_is_written);
        }
        for append in batch {
            let ExpectedVersion::Exact(v) = append.expected else {
                continue;
            };
            if v == 0
                || seen
                    .iter()
                    .any(|s| s.stream == append.stream && s.version == v)
            {
                continue;
            }
            guard.types.push(append.stream.kind().as_str());
            guard.ids.push(append.stream.id());
            guard.versions.push(version(v));
            guard.positions.push(None);
            guard.event_types.push(None);
            guard.payloads.push(None);
            guard.times.push(None);
            guard.last.push(false);
        }
        guard
    }
}

impl Guard<'_> {
    /// The guard's entries as parameters ([`push_columns`]); none when it is empty.
    fn push_params<'p>(&'p self, small: bool, params: &mut Vec<Param<'p>>) {
        if self.types.is_empty() {
            return;
        }
        let columns: [&'p dyn Column; 8] = [
            &self.types,
            &self.ids,
            &self.versions,
            &self.positions,
            &self.event_types,
            &self.payloads,
            &self.times,
            &self.last,
        ];
        push_columns(&columns, self.types.len(), small, params);
    }
}

/// Batches of at most this many rows and guard entries — every command's — are appended with
/// one parameter per value ([`scalar_append_statement`]); larger ones with one array per column
/// ([`append_statement`]). Receiving and unnesting fifteen arrays, and starting the executor
/// for their function scans and per-row subplans, cost a small batch's statement more server
/// time than its inserts did: at 16 tasks the scalar form issues about 1.4 times as fast.
const SCALAR_ROWS: usize = 4;
/// See [`SCALAR_ROWS`].
const SCALAR_GUARD: usize = 4;

/// The append statement of a small batch, one parameter per value: its rows as a `VALUES`
/// list (inserted in order: positions follow the batch), each guard entry as conditions on
/// parameters alone, which the server evaluates once per call — no arrays to receive and
/// unnest, no subplan per row. The statement's shape is the batch's row and guard counts (and
/// whether it has `Any` streams or a key), so a session prepares a handful of them.
fn scalar_append_statement(
    table: &str,
    keys: &str,
    rows: &NewRows<'_>,
    guard: &Guard<'_>,
    keyed: bool,
) -> String {
    use std::fmt::Write as _;
    let any = rows.from_end.is_some();
    let mut next = 0;
    let mut param = || {
        next += 1;
        next
    };
    let mut values = String::new();
    for i in 0..rows.types.len() {
        let sep = if i == 0 { "" } else { ", " };
        let (t, id, v, e, sv, d, r) = (
            param(),
            param(),
            param(),
            param(),
            param(),
            param(),
            param(),
        );
        let _ = write!(
            values,
            "{sep}(${t}::text, ${id}::text, ${v}::int8, ${e}::text, ${sv}::int2, ${d}::text::jsonb, ${r}::timestamptz"
        );
        if any {
            let _ = write!(values, ", ${}::bool", param());
        }
        values.push(')');
    }
    // One form for every guard entry (its content null for an existence check), so that the
    // shapes, and the statements a session prepares, stay few.
    let mut conditions = Vec::new();
    for _ in 0..guard.types.len() {
        let (t, id, v, p, e, d, r, last) = (
            param(),
            param(),
            param(),
            param(),
            param(),
            param(),
            param(),
            param(),
        );
        conditions.push(format!(
            "(SELECT ${p}::int8 IS NULL
                     OR (x.position = ${p} AND x.event_type = ${e}::text AND x.payload = ${d}::text::jsonb
                         AND x.recorded_at = ${r}::timestamptz)
              FROM {table} x
              WHERE x.stream_type = ${t}::text AND x.stream_id = ${id}::text AND x.version = ${v}::int8)
             IS TRUE
             AND (NOT ${last}::bool OR (
                 SELECT x.version FROM {table} x
                 WHERE x.stream_type = ${t} AND x.stream_id = ${id} AND x.version = ${v} + 1) IS NULL)"
        ));
    }
    let version = row_version(table, any);
    let columns = if any {
        "t, i, v, e, s, d, r, from_end"
    } else {
        "t, i, v, e, s, d, r"
    };
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join("\n AND "))
    };
    let insert = format!(
        "INSERT INTO {table} (stream_type, stream_id, version, event_type, schema_version, payload, recorded_at)
         SELECT n.t, n.i, {version}, n.e, n.s, n.d, n.r
         FROM (VALUES {values}) AS n({columns})
         {filter}
         RETURNING stream_type, stream_id, version, position"
    );
    if !keyed {
        return insert;
    }
    with_key(&insert, keys, param())
}

/// The append statement of a large batch, one array parameter per column: one INSERT of every
/// event, under the guard
/// (if any), counting `Any` streams from their end (if any), recording the idempotency key with
/// what was written (if any). Each part costs executor work on every call, so a batch's
/// statement holds only the parts it needs (each shape is prepared once per session).
///
/// Every probe is a scalar subquery with an equality on the unique (stream, version) key, which
/// the planner keeps as one index probe per row: a join, or an `EXISTS` (which it may hash),
/// can be planned as a scan of the events when the session's generic plan was made on small
/// tables.
fn append_statement(table: &str, keys: &str, any: bool, guarded: bool, keyed: bool) -> String {
    let version = row_version(table, any);
    let (from_end, from_end_column) = if any {
        (", $8::bool[]", "from_end, ")
    } else {
        ("", "")
    };
    let first_guard = if any { 9 } else { 8 };
    let guard = if guarded {
        let g = |k: usize| first_guard + k;
        format!(
            "WHERE NOT EXISTS (
                SELECT 1
                FROM unnest(${}::text[], ${}::text[], ${}::int8[], ${}::int8[], ${}::text[],
                            ${}::text[], ${}::timestamptz[], ${}::bool[])
                     AS a(t, i, v, p, e, d, r, last)
                WHERE (SELECT a.p IS NULL
                              OR (x.position = a.p AND x.event_type = a.e AND x.payload = a.d::jsonb
                                  AND x.recorded_at = a.r)
                       FROM {table} x
                       WHERE x.stream_type = a.t AND x.stream_id = a.i AND x.version = a.v)
                      IS NOT TRUE
                   OR (a.last AND (
                        SELECT x.version FROM {table} x
                        WHERE x.stream_type = a.t AND x.stream_id = a.i AND x.version = a.v + 1)
                      IS NOT NULL))",
            g(0),
            g(1),
            g(2),
            g(3),
            g(4),
            g(5),
            g(6),
            g(7)
        )
    } else {
        String::new()
    };
    let insert = format!(
        "INSERT INTO {table} (stream_type, stream_id, version, event_type, schema_version, payload, recorded_at)
         SELECT n.t, n.i, {version}, n.e, n.s, n.d::jsonb, n.r
         FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::int2[], $6::text[], $7::timestamptz[]{from_end})
              WITH ORDINALITY AS n(t, i, v, e, s, d, r, {from_end_column}seq)
         {guard}
         ORDER BY n.seq
         RETURNING stream_type, stream_id, version, position"
    );
    if !keyed {
        return insert;
    }
    let key = first_guard + if guarded { 8 } else { 0 };
    with_key(&insert, keys, key)
}

/// The version a new row gets: its place after the expectation, and for an `Any` stream
/// (`from_end`) after the stream's end as the statement finds it.
fn row_version(table: &str, any: bool) -> String {
    if !any {
        return "n.v".to_owned();
    }
    format!(
        "n.v + CASE WHEN n.from_end THEN
             COALESCE((SELECT max(x.version) FROM {table} x
                       WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
           ELSE 0 END"
    )
}

/// `insert` recording the idempotency key (parameter `key`, its outcome the next one) with the
/// streams and versions it wrote, when it wrote anything.
fn with_key(insert: &str, keys: &str, key: usize) -> String {
    format!(
        "WITH w AS ({insert}),
         k AS (
            INSERT INTO {keys} (key, outcome, streams)
            SELECT ${key}::text, ${}::jsonb,
                   (SELECT jsonb_agg(jsonb_build_array(stream_type, stream_id, version) ORDER BY position) FROM w)
            WHERE EXISTS (SELECT 1 FROM w)
         )
         SELECT stream_type, stream_id, version, position FROM w",
        key + 1
    )
}

/// The stream named by the row's stream type and id at `first`, `first + 1` (its version at
/// `first + 2`, for the error).
fn stream_of(row: &tokio_postgres::Row, first: usize) -> Result<StreamId, StoreError> {
    let kind: String = row.try_get(first).map_err(classify)?;
    let id: String = row.try_get(first + 1).map_err(classify)?;
    let version: i64 = row.try_get(first + 2).map_err(classify)?;
    let stream = AggregateKind::parse(&kind)
        .ok_or_else(|| format!("unknown stream type {kind:?}"))
        .and_then(|parsed| StreamId::new(parsed, id.clone()).map_err(|e| e.to_string()));
    stream.map_err(|reason| StoreError::CorruptRow {
        stream_type: kind,
        stream_id: id,
        version: u64::try_from(version).unwrap_or(0),
        reason,
    })
}

fn decode_row(
    stream: StreamId,
    row: &tokio_postgres::Row,
    first: usize,
) -> Result<RecordedEvent, StoreError> {
    let version: i64 = row.try_get(first).map_err(classify)?;
    let corrupt = |reason: String| StoreError::Corrupt {
        stream: stream.clone(),
        version: u64::try_from(version).unwrap_or(0),
        reason,
    };
    let position: i64 = row.try_get(first + 1).map_err(classify)?;
    let event_type: String = row.try_get(first + 2).map_err(classify)?;
    let schema_version: i16 = row.try_get(first + 3).map_err(classify)?;
    let payload: Value = row
        .try_get(first + 4)
        .map_err(|err| corrupt(format!("payload: {err}")))?;
    let recorded_at: DateTime<Utc> = row.try_get(first + 5).map_err(classify)?;
    Ok(RecordedEvent {
        version: u64::try_from(version).map_err(|_| corrupt("negative version".into()))?,
        position: u64::try_from(position).map_err(|_| corrupt("negative position".into()))?,
        schema_version: u16::try_from(schema_version)
            .map_err(|_| corrupt("negative schema version".into()))?,
        stream,
        event_type,
        payload,
        recorded_at,
    })
}

impl EventStore for PostgresStore {
    async fn read(
        &self,
        stream: &StreamId,
        after_version: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        within(self.deadline, false, self.read_now(stream, after_version)).await
    }

    async fn read_many(
        &self,
        streams: &[(StreamId, u64)],
        limit: usize,
    ) -> Result<Vec<Vec<RecordedEvent>>, StoreError> {
        within(self.deadline, false, self.read_many_now(streams, limit)).await
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

    async fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>, StoreError> {
        within(self.deadline, true, self.append_now(batch)).await
    }

    async fn recall(&self, key: &str) -> Result<Option<Recalled>, StoreError> {
        within(self.deadline, false, self.recall_now(key)).await
    }

    async fn read_feed(&self, after: u64, limit: usize) -> Result<Vec<FeedEvent>, StoreError> {
        within(self.deadline, false, self.read_feed_now(after, limit)).await
    }

    /// Tokio's timer: the store runs on Tokio (with its time driver) anyway.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }
}

impl PostgresStore {
    async fn read_now(
        &self,
        stream: &StreamId,
        after_version: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT version, position, event_type, schema_version, payload, recorded_at
             FROM {} WHERE stream_type = $1 AND stream_id = $2 AND version > $3 ORDER BY version",
            self.table
        );
        let statement = client.prepare_cached(&sql).await.map_err(classify)?;
        let after = i64::try_from(after_version).unwrap_or(i64::MAX);
        let rows = client
            .query(&statement, &[&stream.kind().as_str(), &stream.id(), &after])
            .await
            .map_err(classify)?;
        rows.iter()
            .map(|row| decode_row(stream.clone(), row, 0))
            .collect()
    }

    /// Gives feed positions to the visible events that have none, in position order, above every
    /// position given so far. One reader at a time does it (the head row's lock; the others
    /// skip and read what is sequenced). Rows another reader sequenced after this statement's
    /// snapshot are re-checked and skipped; the head moves past the highest number used, so
    /// positions never repeat (a skipped row leaves a gap, which readers do not mind).
    async fn sequence_feed(&self, client: &deadpool_postgres::Client) -> Result<(), StoreError> {
        let sql = format!(
            "WITH head AS (
                SELECT last FROM {head} WHERE id = 1 FOR UPDATE SKIP LOCKED
             ),
             waiting AS (
                SELECT position, row_number() OVER (ORDER BY position) AS n
                FROM {table}
                WHERE feed_position IS NULL AND EXISTS (SELECT 1 FROM head)
                ORDER BY position
                LIMIT $1
             ),
             given AS (
                UPDATE {table} e SET feed_position = (SELECT last FROM head) + w.n
                FROM waiting w
                WHERE e.position = w.position AND e.feed_position IS NULL
                RETURNING w.n
             )
             UPDATE {head} SET last = last + (SELECT max(n) FROM given)
             WHERE id = 1 AND EXISTS (SELECT 1 FROM given)",
            head = self.feed_head_table,
            table = self.table,
        );
        let statement = client.prepare_cached(&sql).await.map_err(classify)?;
        for _ in 0..ANY_RETRIES {
            match client.execute(&statement, &[&SEQUENCE_BATCH]).await {
                Ok(_) => return Ok(()),
                // Another reader sequenced the same rows first: theirs stand.
                Err(err) if lost_to_a_concurrent_writer(&err) => continue,
                Err(err) => return Err(classify(err)),
            }
        }
        Ok(())
    }

    async fn read_feed_now(&self, after: u64, limit: usize) -> Result<Vec<FeedEvent>, StoreError> {
        let client = self.client().await?;
        self.sequence_feed(&client).await?;
        let sql = format!(
            "SELECT feed_position, stream_type, stream_id, version, position, event_type,
                    schema_version, payload, recorded_at
             FROM {} WHERE feed_position > $1 ORDER BY feed_position LIMIT $2",
            self.table
        );
        let statement = client.prepare_cached(&sql).await.map_err(classify)?;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(&statement, &[&after, &limit])
            .await
            .map_err(classify)?;
        rows.iter()
            .map(|row| {
                let feed_position: i64 = row.try_get(0).map_err(classify)?;
                let stream = stream_of(row, 1)?;
                let event = decode_row(stream, row, 3)?;
                Ok(FeedEvent::new(
                    u64::try_from(feed_position).unwrap_or(0),
                    event,
                ))
            })
            .collect()
    }

    async fn recall_now(&self, key: &str) -> Result<Option<Recalled>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT outcome, streams FROM {} WHERE key = $1",
            self.keys_table
        );
        let statement = client.prepare_cached(&sql).await.map_err(classify)?;
        let Some(row) = client
            .query_opt(&statement, &[&key])
            .await
            .map_err(classify)?
        else {
            return Ok(None);
        };
        let outcome: Value = row.try_get(0).map_err(classify)?;
        let written: Value = row.try_get(1).map_err(classify)?;
        let corrupt = |why: &str| StoreError::Internal(format!("idempotency record: {why}"));
        let mut streams: Vec<(StreamId, u64)> = Vec::new();
        for entry in written.as_array().ok_or_else(|| corrupt("streams"))? {
            let (Some(kind), Some(id), Some(version)) = (
                entry.get(0).and_then(Value::as_str),
                entry.get(1).and_then(Value::as_str),
                entry.get(2).and_then(Value::as_u64),
            ) else {
                return Err(corrupt("stream entry"));
            };
            let kind = AggregateKind::parse(kind).ok_or_else(|| corrupt("stream type"))?;
            let stream = StreamId::new(kind, id).map_err(|_| corrupt("stream id"))?;
            // Events come in position order: keep each stream's last version.
            match streams.iter_mut().find(|(s, _)| *s == stream) {
                Some((_, last)) => *last = version,
                None => streams.push((stream, version)),
            }
        }
        Ok(Some(Recalled::new(outcome, streams)))
    }

    /// One statement for every stream: a decision's loads cost one round trip.
    async fn read_many_now(
        &self,
        streams: &[(StreamId, u64)],
        limit: usize,
    ) -> Result<Vec<Vec<RecordedEvent>>, StoreError> {
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let sql = format!(
            "SELECT s.n, e.version, e.position, e.event_type, e.schema_version, e.payload, e.recorded_at
             FROM unnest($1::text[], $2::text[], $3::int8[]) WITH ORDINALITY AS s(t, i, after_version, n)
             CROSS JOIN LATERAL (
                 SELECT version, position, event_type, schema_version, payload, recorded_at
                 FROM {} x
                 WHERE x.stream_type = s.t AND x.stream_id = s.i AND x.version > s.after_version
                 ORDER BY x.version
                 LIMIT $4
             ) e
             ORDER BY s.n, e.version",
            self.table
        );
        let statement = client.prepare_cached(&sql).await.map_err(classify)?;
        let types: Vec<&str> = streams.iter().map(|(s, _)| s.kind().as_str()).collect();
        let ids: Vec<&str> = streams.iter().map(|(s, _)| s.id()).collect();
        let after: Vec<i64> = streams
            .iter()
            .map(|(_, v)| i64::try_from(*v).unwrap_or(i64::MAX))
            .collect();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(&statement, &[&types, &ids, &after, &limit])
            .await
            .map_err(classify)?;
        let mut reads: Vec<Vec<RecordedEvent>> = streams.iter().map(|_| Vec::new()).collect();
        for row in &rows {
            let n: i64 = row.try_get(0).map_err(classify)?;
            let index = usize::try_from(n - 1)
                .ok()
                .filter(|i| *i < streams.len())
                .ok_or_else(|| StoreError::Internal("read_many returned a foreign row".into()))?;
            let stream = streams[index].0.clone();
            reads[index].push(decode_row(stream, row, 1)?);
        }
        Ok(reads)
    }

    async fn append_now(&self, batch: AppendBatch) -> Result<Vec<Appended>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let idempotency = batch.idempotency();
        let seen = batch.seen();
        let batch = batch.appends();
        let client = self.client().await?;
        for _ in 0..ANY_RETRIES {
            if let Some(versions) = self.append_once(&client, batch, idempotency, seen).await? {
                return Ok(versions);
            }
            if let Some((i, actual)) = self.first_unseen(&client, seen).await? {
                return Err(StoreError::Conflict {
                    stream: seen[i].stream.clone(),
                    expected: ExpectedVersion::Exact(seen[i].version),
                    actual,
                });
            }
            // Nothing was written. Report the first stream whose expectation fails; if only
            // `Any` streams collided with a concurrent writer, try again.
            let actual = self.actual_versions(&client, batch).await?;
            if let Some((append, actual)) = batch
                .iter()
                .zip(&actual)
                .find(|(append, actual)| !append.expected.matches(**actual))
            {
                return Err(StoreError::Conflict {
                    stream: append.stream.clone(),
                    expected: append.expected,
                    actual: *actual,
                });
            }
            // Every expectation holds now: a racing writer was rolled back, or only `Any`
            // streams collided. Try again.
        }
        Err(StoreError::Unavailable(
            "append kept colliding with concurrent writers".into(),
        ))
    }
}

const SNAPSHOTS: &str = "passkey_links_snapshots";

impl PostgresStore {
    fn snapshots_table(&self) -> String {
        match &self.schema {
            Some(schema) => format!("\"{schema}\".{SNAPSHOTS}"),
            None => SNAPSHOTS.to_owned(),
        }
    }

    async fn read_snapshots_now(
        &self,
        streams: &[StreamId],
    ) -> Result<Vec<Option<Snapshot>>, StoreError> {
        let mut found: Vec<Option<Snapshot>> = vec![None; streams.len()];
        if streams.is_empty() {
            return Ok(found);
        }
        let client = self.client().await?;
        let sql = format!(
            "SELECT s.n, x.version, x.state
             FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS s(t, i, n)
             JOIN {} x ON x.stream_type = s.t AND x.stream_id = s.i",
            self.snapshots_table()
        );
        let statement = client.prepare_cached(&sql).await.map_err(classify)?;
        let types: Vec<&str> = streams.iter().map(|s| s.kind().as_str()).collect();
        let ids: Vec<&str> = streams.iter().map(StreamId::id).collect();
        let rows = client
            .query(&statement, &[&types, &ids])
            .await
            .map_err(classify)?;
        for row in &rows {
            let n: i64 = row.try_get(0).map_err(classify)?;
            let version: i64 = row.try_get(1).map_err(classify)?;
            let state: Value = row.try_get(2).map_err(classify)?;
            let index = usize::try_from(n - 1)
                .ok()
                .filter(|i| *i < streams.len())
                .ok_or_else(|| {
                    StoreError::Internal("a snapshot of a stream not asked for".into())
                })?;
            found[index] = Some(Snapshot::new(
                streams[index].clone(),
                u64::try_from(version).unwrap_or(0),
                state,
            ));
        }
        Ok(found)
    }

    /// One statement: each stream's snapshot (when asked for), then its events from the
    /// snapshot's version or after the given one; followed streams are named by the first
    /// event of the stream they follow inside the same statement. A snapshot row carries its
    /// state in the payload column and no position.
    async fn load_many_now(
        &self,
        streams: &[(StreamId, ReadFrom)],
        follow: &[Follow],
        limit: usize,
    ) -> Result<Vec<StreamRead>, StoreError> {
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        self.load_many_on(&client, streams, follow, limit).await
    }

    async fn load_many_on(
        &self,
        client: &deadpool_postgres::Client,
        streams: &[(StreamId, ReadFrom)],
        follow: &[Follow],
        limit: usize,
    ) -> Result<Vec<StreamRead>, StoreError> {
        let asked = streams.len() + follow.len();
        let mut reads: Vec<StreamRead> = (0..asked).map(|_| StreamRead::default()).collect();
        // Row numbers: 1..=streams for the streams asked, then one per follow; a followed
        // stream's id is the text field of the first event of the stream it follows.
        let sql = format!(
            "WITH asked AS (
                SELECT t, i, after, n
                FROM unnest($1::text[], $2::text[], $3::int8[]) WITH ORDINALITY AS u(t, i, after, n)
             ),
             -- Per follow, one probe of its source's first event, or one backward walk of
             -- its last events for the newest that matches: correlated subqueries, so no plan
             -- (generic plans are made once, maybe on an empty table) can drive the lookup
             -- from the events table.
             followed AS (
                SELECT f.t,
                       CASE WHEN f.et IS NULL THEN
                           (SELECT x.payload ->> f.field
                            FROM asked JOIN {table} x
                              ON x.stream_type = asked.t AND x.stream_id = asked.i AND x.version = 1
                            WHERE asked.n = f.src)
                       ELSE
                           (SELECT y.payload ->> f.field
                            FROM asked CROSS JOIN LATERAL (
                                SELECT x.version, x.event_type, x.payload
                                FROM {table} x
                                WHERE x.stream_type = asked.t AND x.stream_id = asked.i
                                ORDER BY x.version DESC
                                LIMIT {window}
                            ) y
                            WHERE asked.n = f.src AND y.event_type = f.et AND y.payload ->> f.k = f.v
                            ORDER BY y.version DESC
                            LIMIT 1)
                       END AS i,
                       -1::int8 AS after, $8::int8 + f.n AS n
                FROM unnest($5::text[], $6::text[], $7::int8[], $9::text[], $10::text[], $11::text[])
                     WITH ORDINALITY AS f(t, field, src, et, k, v, n)
             ),
             s AS (
                SELECT t, i, after, n FROM asked
                UNION ALL
                SELECT t, i, after, n FROM followed WHERE i IS NOT NULL
             ),
             snap AS (
                SELECT s.n, s.i, x.version, x.state
                FROM s JOIN {snapshots} x ON x.stream_type = s.t AND x.stream_id = s.i
                WHERE s.after < 0
             ),
             start AS (
                SELECT s.t, s.i, s.n,
                       CASE WHEN s.after >= 0 THEN s.after ELSE COALESCE(snap.version - 1, 0) END AS after
                FROM s LEFT JOIN snap ON snap.n = s.n
             )
             SELECT snap.n, true AS snapshot, snap.version, NULL::int8, NULL::text, NULL::int2,
                    snap.state, NULL::timestamptz, snap.i
             FROM snap
             UNION ALL
             SELECT start.n, false, e.version, e.position, e.event_type, e.schema_version,
                    e.payload, e.recorded_at, start.i
             FROM start CROSS JOIN LATERAL (
                 SELECT version, position, event_type, schema_version, payload, recorded_at
                 FROM {table} x
                 WHERE x.stream_type = start.t AND x.stream_id = start.i AND x.version > start.after
                 ORDER BY x.version
                 LIMIT $4
             ) e
             ORDER BY 1, 2 DESC, 3",
            snapshots = self.snapshots_table(),
            table = self.table,
            window = FOLLOW_WINDOW,
        );
        let statement = client.prepare_cached(&sql).await.map_err(classify)?;
        let types: Vec<&str> = streams.iter().map(|(s, _)| s.kind().as_str()).collect();
        let ids: Vec<&str> = streams.iter().map(|(s, _)| s.id()).collect();
        let after: Vec<i64> = streams
            .iter()
            .map(|(_, from)| match from {
                ReadFrom::After(v) => i64::try_from(*v).unwrap_or(i64::MAX),
                ReadFrom::Snapshot => -1,
            })
            .collect();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let follow_types: Vec<&str> = follow.iter().map(|f| f.kind.as_str()).collect();
        let fields: Vec<&str> = follow.iter().map(|f| f.field).collect();
        // 1-based, as the row numbers; a follow of no stream asked follows nothing.
        let sources: Vec<i64> = follow
            .iter()
            .map(|f| i64::try_from(f.from).map_or(0, |from| from + 1))
            .collect();
        // What a latest-matching follow compares (nulls for a first-event follow).
        let mut event_types: Vec<Option<&str>> = Vec::with_capacity(follow.len());
        let mut keys: Vec<Option<&str>> = Vec::with_capacity(follow.len());
        let mut values: Vec<Option<&str>> = Vec::with_capacity(follow.len());
        for f in follow {
            let (event_type, key, value) = match &f.naming {
                Naming::Latest {
                    event_type,
                    key,
                    value,
                } => (Some(*event_type), Some(*key), Some(&**value)),
                _ => (None, None, None),
            };
            event_types.push(event_type);
            keys.push(key);
            values.push(value);
        }
        let base = i64::try_from(streams.len()).unwrap_or(i64::MAX);
        let rows = client
            .query(
                &statement,
                &[
                    &types,
                    &ids,
                    &after,
                    &limit,
                    &follow_types,
                    &fields,
                    &sources,
                    &base,
                    &event_types,
                    &keys,
                    &values,
                ],
            )
            .await
            .map_err(classify)?;
        for row in &rows {
            let n: i64 = row.try_get(0).map_err(classify)?;
            let index = usize::try_from(n - 1)
                .ok()
                .filter(|i| *i < asked)
                .ok_or_else(|| StoreError::Internal("load_many returned a foreign row".into()))?;
            let stream = match streams.get(index) {
                Some((stream, _)) => stream.clone(),
                None => {
                    let kind = follow[index - streams.len()].kind;
                    let id: String = row.try_get(8).map_err(classify)?;
                    match StreamId::new(kind, id) {
                        Ok(stream) => stream,
                        // Names no valid stream: nothing followed.
                        Err(_) => continue,
                    }
                }
            };
            let is_snapshot: bool = row.try_get(1).map_err(classify)?;
            if is_snapshot {
                let version: i64 = row.try_get(2).map_err(classify)?;
                let state: Value = row.try_get(6).map_err(classify)?;
                reads[index].snapshot = Some(Snapshot::new(
                    stream,
                    u64::try_from(version).unwrap_or(0),
                    state,
                ));
            } else {
                reads[index].events.push(decode_row(stream, row, 2)?);
            }
        }
        Ok(reads)
    }

    async fn write_snapshot_now(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "INSERT INTO {t} (stream_type, stream_id, version, state) VALUES ($1, $2, $3, $4)
             ON CONFLICT (stream_type, stream_id) DO UPDATE
             SET version = EXCLUDED.version, state = EXCLUDED.state
             WHERE {t}.version < EXCLUDED.version",
            t = self.snapshots_table()
        );
        let statement = client.prepare_cached(&sql).await.map_err(classify)?;
        let version = i64::try_from(snapshot.version).unwrap_or(i64::MAX);
        client
            .execute(
                &statement,
                &[
                    &snapshot.stream.kind().as_str(),
                    &snapshot.stream.id(),
                    &version,
                    &snapshot.state,
                ],
            )
            .await
            .map_err(|err| failure::store_error(&err, true))?;
        Ok(())
    }
}
