//! The append: one statement that checks the batch's read set and expectations and inserts the
//! whole batch (and its idempotency key) only if all hold. When it inserts nothing, the streams
//! are looked at once more to report which one conflicts.

use tokio_postgres::types::ToSql;

use super::failure::{sqlstate, violated};
use super::{PostgresStore, classify, failure};
use crate::store::sql::failure::lost_to_a_concurrent_writer;
use crate::store::sql::params::{Guard, Rows, Standing};
use crate::store::sql::rows;
use crate::store::sql::statements::{ANY_RETRIES, KEY_CONSTRAINT, VERSION_CONSTRAINT};
use crate::store::{
    AppendBatch, Appended, IdempotencyRecord, ReadStream, StoreError, StreamAppend,
};

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
        let result =
            match self
                .sql
                .small_append(rows.types.len(), guard.types.len(), idempotency.is_some())
            {
                Some(sql) => {
                    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
                    for k in 0..rows.types.len() {
                        params.extend::<[&(dyn ToSql + Sync); 9]>([
                            &rows.types[k],
                            &rows.ids[k],
                            &rows.versions[k],
                            &rows.from_end[k],
                            &rows.event_ids[k],
                            &rows.event_types[k],
                            &rows.schemas[k],
                            &rows.payloads[k],
                            &rows.recorded[k],
                        ]);
                    }
                    for k in 0..guard.types.len() {
                        params.extend::<[&(dyn ToSql + Sync); 5]>([
                            &guard.types[k],
                            &guard.ids[k],
                            &guard.versions[k],
                            &guard.event_ids[k],
                            &guard.last[k],
                        ]);
                    }
                    if idempotency.is_some() {
                        params.extend::<[&(dyn ToSql + Sync); 3]>([&key, &outcome, &recorded_at]);
                    }
                    let statement = client.prepare_cached(sql).await.map_err(classify)?;
                    client.query(&statement, &params).await
                }
                None => {
                    let statement = client
                        .prepare_cached(&self.sql.append)
                        .await
                        .map_err(classify)?;
                    client
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
                        .await
                }
            };
        match result {
            Ok(written) => rows::appended(batch, &written, rows.types.len()),
            Err(err) if violated(&err, KEY_CONSTRAINT) => Err(StoreError::DuplicateKey),
            // A version taken by another writer: the caller finds out whose expectation failed.
            Err(err)
                if violated(&err, VERSION_CONSTRAINT)
                    || sqlstate(&err).is_some_and(lost_to_a_concurrent_writer) =>
            {
                Ok(None)
            }
            // The append is one autocommit statement: once sent, a lost connection may have
            // committed it.
            Err(err) => Err(failure::store_error(&err, true)),
        }
    }

    /// After an append that wrote nothing: the conflict to report, or `None` when every
    /// expectation holds now (try again).
    async fn conflict(
        &self,
        client: &deadpool_postgres::Client,
        batch: &[StreamAppend],
        read_set: &[ReadStream],
    ) -> Result<Option<StoreError>, StoreError> {
        let standing = Standing::of(batch, read_set);
        let statement = client
            .prepare_cached(&self.sql.standing)
            .await
            .map_err(classify)?;
        let rows = client
            .query(
                &statement,
                &[&standing.types, &standing.ids, &standing.versions],
            )
            .await
            .map_err(classify)?;
        rows::first_conflict(batch, read_set, &rows)
    }
}
