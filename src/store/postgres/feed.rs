//! The global feed (feed positions given to events once they are visible) and idempotency
//! records.

use serde_json::Value;
use tokio_postgres::error::SqlState;

use super::load::{decode_event, int8, stream_of};
use super::{PostgresStore, classify};
use crate::ids::{AggregateKind, StreamId};
use crate::store::{FeedEvent, Recalled, StoreError};

/// Events given feed positions by one reader at a time, at most.
const SEQUENCE_BATCH: i64 = 10_000;
/// A sequencing that keeps losing to concurrent readers is retried this often.
const SEQUENCE_RETRIES: usize = 8;

/// A serialization failure or a deadlock rolled a statement back because a concurrent writer
/// touched the same rows (the isolation CockroachDB and YugabyteDB force, or a server with
/// `default_transaction_isolation = serializable`): nothing was written; look again.
pub(super) fn lost_to_a_concurrent_writer(err: &tokio_postgres::Error) -> bool {
    err.as_db_error().is_some_and(|db| {
        db.code() == &SqlState::T_R_SERIALIZATION_FAILURE
            || db.code() == &SqlState::T_R_DEADLOCK_DETECTED
    })
}

impl PostgresStore {
    /// Gives feed positions to the visible events that have none, in position order, above every
    /// position given so far. One reader at a time does it (the head row's lock; the others
    /// skip and read what is sequenced). Rows another reader sequenced after this statement's
    /// snapshot are re-checked and skipped; the head moves past the highest number used, so
    /// positions never repeat (a skipped row leaves a gap, which readers do not mind).
    async fn sequence_feed(&self, client: &deadpool_postgres::Client) -> Result<(), StoreError> {
        let statement = client
            .prepare_cached(&self.sql.sequence_feed)
            .await
            .map_err(classify)?;
        for _ in 0..SEQUENCE_RETRIES {
            match client.execute(&statement, &[&SEQUENCE_BATCH]).await {
                Ok(_) => return Ok(()),
                // Another reader sequenced the same rows first: theirs stand.
                Err(err) if lost_to_a_concurrent_writer(&err) => continue,
                // The feed is sequenced as it is read: a reader on a standby would wait for
                // ever (a projection runner retries what is retryable). Say what to fix.
                Err(err) if err.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) => {
                    return Err(StoreError::Misconfigured(
                        "SQLSTATE 25006: the feed was read on a read-only server (a standby); \
                         reading the feed gives events their positions, so projection runners \
                         and the delivery worker need the primary (read models can be queried \
                         on a standby)"
                            .to_owned(),
                    ));
                }
                Err(err) => return Err(classify(err)),
            }
        }
        Ok(())
    }

    pub(super) async fn read_feed_now(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<FeedEvent>, StoreError> {
        let client = self.client().await?;
        self.sequence_feed(&client).await?;
        let statement = client
            .prepare_cached(&self.sql.read_feed)
            .await
            .map_err(classify)?;
        let rows = client
            .query(&statement, &[&int8(after), &int8(limit as u64)])
            .await
            .map_err(classify)?;
        rows.iter()
            .map(|row| {
                let feed_position: i64 = row.try_get(0).map_err(classify)?;
                let stream = stream_of(row, 1)?;
                let event = decode_event(stream, row, 3)?;
                Ok(FeedEvent::new(
                    u64::try_from(feed_position).unwrap_or(0),
                    event,
                ))
            })
            .collect()
    }

    pub(super) async fn recall_now(&self, key: &str) -> Result<Option<Recalled>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql.recall)
            .await
            .map_err(classify)?;
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

    pub(super) async fn prune_idempotency_now(
        &self,
        older_than: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql.prune_idempotency)
            .await
            .map_err(classify)?;
        client
            .execute(&statement, &[&older_than])
            .await
            .map_err(|err| super::failure::store_error(&err, true))
    }

    /// The server's clock (its statement timestamp), the reference of every node's clock.
    pub(super) async fn store_time_now(&self) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql.store_time)
            .await
            .map_err(classify)?;
        let row = client.query_one(&statement, &[]).await.map_err(classify)?;
        row.try_get(0).map_err(classify)
    }
}
