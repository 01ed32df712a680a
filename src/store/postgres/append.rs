//! The append: one statement that checks the batch's read set and expectations and inserts the
//! whole batch (and its idempotency key) only if all hold. When it inserts nothing, the streams
//! are looked at once more to report which one conflicts.

use chrono::{DateTime, Utc};
use tokio_postgres::error::SqlState;

use super::feed::lost_to_a_concurrent_writer;
use super::load::int8;
use super::sql::{KEY_CONSTRAINT, VERSION_CONSTRAINT};
use super::{PostgresStore, classify, failure};
use crate::store::{
    AppendBatch, Appended, ExpectedVersion, IdempotencyRecord, ReadStream, StoreError, StreamAppend,
};

/// An append whose only collisions were on `Any` streams (a concurrent writer took the version
/// the statement counted to) is tried this often.
const ANY_RETRIES: usize = 8;

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

/// The rows a batch inserts, as array parameters. Versions are the expected version plus the
/// event's place in its stream's append, so the unique (stream, version) constraint refuses a
/// stream that moved past the expectation; `Any` streams count from the stream's end inside the
/// statement (`from_end`).
struct Rows<'a> {
    types: Vec<&'a str>,
    ids: Vec<&'a str>,
    versions: Vec<i64>,
    from_end: Vec<bool>,
    event_ids: Vec<uuid::Uuid>,
    event_types: Vec<&'a str>,
    schemas: Vec<i16>,
    payloads: Vec<&'a str>,
    recorded: Vec<DateTime<Utc>>,
}

impl<'a> Rows<'a> {
    fn of(batch: &'a [StreamAppend]) -> Result<Self, StoreError> {
        let count = batch.iter().map(|a| a.events.len()).sum();
        let mut rows = Self {
            types: Vec::with_capacity(count),
            ids: Vec::with_capacity(count),
            versions: Vec::with_capacity(count),
            from_end: Vec::with_capacity(count),
            event_ids: Vec::with_capacity(count),
            event_types: Vec::with_capacity(count),
            schemas: Vec::with_capacity(count),
            payloads: Vec::with_capacity(count),
            recorded: Vec::with_capacity(count),
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
                rows.from_end.push(append.expected == ExpectedVersion::Any);
                rows.event_ids.push(*event.id.as_uuid());
                rows.event_types.push(event.event_type.as_str());
                rows.schemas.push(
                    i16::try_from(event.schema_version)
                        .map_err(|_| StoreError::Internal("schema version out of range".into()))?,
                );
                rows.payloads.push(event.payload.as_str());
                rows.recorded.push(event.recorded_at);
            }
        }
        Ok(rows)
    }
}

/// What must stand for a batch to be written, as array parameters: each stream of the read set
/// (the event at its version has its id and nothing follows it; version 0: no event at all),
/// and the event at each `Exact` expectation the read set does not cover (it must exist: no
/// gaps; the version constraint sees to what follows it).
struct Guard<'a> {
    types: Vec<&'a str>,
    ids: Vec<&'a str>,
    versions: Vec<i64>,
    event_ids: Vec<Option<uuid::Uuid>>,
    last: Vec<bool>,
}

impl<'a> Guard<'a> {
    fn of(batch: &'a [StreamAppend], read_set: &'a [ReadStream]) -> Self {
        let mut guard = Self {
            types: Vec::new(),
            ids: Vec::new(),
            versions: Vec::new(),
            event_ids: Vec::new(),
            last: Vec::new(),
        };
        for read in read_set {
            guard.types.push(read.stream.kind().as_str());
            guard.ids.push(read.stream.id());
            guard
                .versions
                .push(int8(read.last.map_or(0, |l| l.version)));
            guard.event_ids.push(read.last.map(|l| *l.id.as_uuid()));
            guard.last.push(true);
        }
        for append in batch {
            let ExpectedVersion::Exact(v) = append.expected else {
                continue;
            };
            if read_set.iter().any(|read| read.stream == append.stream) {
                continue;
            }
            guard.types.push(append.stream.kind().as_str());
            guard.ids.push(append.stream.id());
            guard.versions.push(int8(v));
            guard.event_ids.push(None);
            guard.last.push(false);
        }
        guard
    }
}

impl PostgresStore {
    pub(super) async fn append_now(&self, batch: AppendBatch) -> Result<Vec<Appended>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let (appends, read_set, idempotency) =
            (batch.appends(), batch.read_set(), batch.idempotency());
        for _ in 0..ANY_RETRIES {
            if let Some(appended) = self
                .append_once(&client, appends, read_set, idempotency)
                .await?
            {
                return Ok(appended);
            }
            if let Some(conflict) = self.conflict(&client, appends, read_set).await? {
                return Err(conflict);
            }
            // Every expectation holds now: a racing writer was rolled back, or only `Any`
            // streams collided. Try again.
        }
        Err(StoreError::Unavailable(
            "append kept colliding with concurrent writers".into(),
        ))
    }

    /// The statement once: where each stream stands, or `None` when it wrote nothing.
    async fn append_once(
        &self,
        client: &deadpool_postgres::Client,
        batch: &[StreamAppend],
        read_set: &[ReadStream],
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<Option<Vec<Appended>>, StoreError> {
        let rows = Rows::of(batch)?;
        let guard = Guard::of(batch, read_set);
        let (key, outcome, recorded_at) = match idempotency {
            Some(record) => (
                Some(record.key.as_str()),
                Some(&record.outcome),
                Some(record.recorded_at),
            ),
            None => (None, None, None),
        };
        let statement = client
            .prepare_cached(&self.sql.append)
            .await
            .map_err(classify)?;
        let result = client
            .query(
                &statement,
                &[
                    &rows.types,
                    &rows.ids,
                    &rows.versions,
                    &rows.from_end,
                    &rows.event_ids,
                    &rows.event_types,
                    &rows.schemas,
                    &rows.payloads,
                    &rows.recorded,
                    &guard.types,
                    &guard.ids,
                    &guard.versions,
                    &guard.event_ids,
                    &guard.last,
                    &key,
                    &outcome,
                    &recorded_at,
                ],
            )
            .await;
        let written = match result {
            Ok(written) => written,
            Err(err) if is_repeated_key(&err) => return Err(StoreError::DuplicateKey),
            // A version taken by another writer: the caller finds out whose expectation failed.
            Err(err) if is_version_collision(&err) || lost_to_a_concurrent_writer(&err) => {
                return Ok(None);
            }
            // The append is one autocommit statement: once sent, a lost connection may have
            // committed it.
            Err(err) => return Err(failure::store_error(&err, true)),
        };
        if written.len() != rows.types.len() {
            return Ok(None);
        }
        let mut appended = vec![Appended::new(0, 0); batch.len()];
        for row in &written {
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

    /// After an append that wrote nothing: the first stream of the read set that no longer
    /// stands as read, else the first append whose expectation fails — or `None` when all hold
    /// now (try again).
    async fn conflict(
        &self,
        client: &deadpool_postgres::Client,
        batch: &[StreamAppend],
        read_set: &[ReadStream],
    ) -> Result<Option<StoreError>, StoreError> {
        let streams = read_set
            .iter()
            .map(|read| (&read.stream, read.last.map_or(0, |l| l.version)))
            .chain(batch.iter().map(|append| (&append.stream, 0)));
        let (mut types, mut ids, mut versions) = (Vec::new(), Vec::new(), Vec::new());
        for (stream, version) in streams {
            types.push(stream.kind().as_str());
            ids.push(stream.id());
            versions.push(int8(version));
        }
        let statement = client
            .prepare_cached(&self.sql.standing)
            .await
            .map_err(classify)?;
        let rows = client
            .query(&statement, &[&types, &ids, &versions])
            .await
            .map_err(classify)?;
        let mut standing = Vec::with_capacity(rows.len());
        for row in &rows {
            let version: i64 = row.try_get(0).map_err(classify)?;
            let id: Option<uuid::Uuid> = row.try_get(1).map_err(classify)?;
            standing.push((u64::try_from(version).unwrap_or(0), id));
        }
        let (reads, appends) = standing.split_at(read_set.len().min(standing.len()));
        for (read, (actual, id)) in read_set.iter().zip(reads) {
            let stands = match read.last {
                None => *actual == 0,
                Some(last) => *actual == last.version && *id == Some(*last.id.as_uuid()),
            };
            if !stands {
                return Ok(Some(StoreError::Conflict {
                    stream: read.stream.clone(),
                    expected: read.last.map_or(ExpectedVersion::NoStream, |last| {
                        ExpectedVersion::Exact(last.version)
                    }),
                    actual: *actual,
                }));
            }
        }
        for (append, (actual, _)) in batch.iter().zip(appends) {
            if !append.expected.matches(*actual) {
                return Ok(Some(StoreError::Conflict {
                    stream: append.stream.clone(),
                    expected: append.expected,
                    actual: *actual,
                }));
            }
        }
        Ok(None)
    }
}
