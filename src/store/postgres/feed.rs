//! The global feed (feed positions given to events once they are visible) and idempotency
//! records.

use serde_json::Value;

use super::failure::sqlstate;
use super::{PostgresStore, classify};
use crate::store::sql::failure::{FEED_ON_A_STANDBY, lost_to_a_concurrent_writer};
use crate::store::sql::params::int8;
use crate::store::sql::rows;
use crate::store::sql::statements::{SEQUENCE_BATCH, SEQUENCE_RETRIES};
use crate::store::{FeedEvent, Recalled, StoreError};

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
                Err(err) if sqlstate(&err).is_some_and(lost_to_a_concurrent_writer) => continue,
                // The feed is sequenced as it is read: a reader on a standby would wait for
                // ever (a projection runner retries what is retryable). Say what to fix.
                Err(err) if sqlstate(&err) == Some("25006") => {
                    return Err(StoreError::Misconfigured(FEED_ON_A_STANDBY.to_owned()));
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
        rows.iter().map(rows::feed_event).collect()
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
        rows::recalled(outcome, &written).map(Some)
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
