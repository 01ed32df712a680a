//! Projections on PostgreSQL: checkpoints in `passkey_links_checkpoints`, the shipped read
//! models' tables, and [`PostgresProjection`] for an embedder's own projection whose tables
//! live in the same database — its writes and its checkpoint commit in one transaction.

use std::future::Future;

use tokio_postgres::Transaction;

use super::{PostgresStore, classify, failure};
use crate::error::Error;
use crate::ids::UserId;
use crate::read::Projection;
use crate::read::store::{AuditEntry, AuditScope, LinkRow, ProjectionStore, ReadChange};
use crate::store::sql::failure::within;
use crate::store::sql::params::{Columns, position};
use crate::store::sql::rows;
use crate::store::{FeedEvent, StoreError};

/// An embedder's projection whose tables live in the store's database: [`PostgresProjection`]
/// hands it each batch inside the transaction that also records its checkpoint.
pub trait PostgresHandler: Send + Sync {
    /// Its name (the key of its checkpoint).
    fn name(&self) -> &str;

    /// Applies `events` (feed order) through `tx`. An error rolls back the batch and its
    /// checkpoint alike; the batch is handed over again on the next run.
    fn handle(
        &self,
        tx: &Transaction<'_>,
        events: &[FeedEvent],
    ) -> impl Future<Output = Result<(), tokio_postgres::Error>> + Send;
}

/// A [`PostgresHandler`] run as a [`Projection`]: effects and checkpoint in one transaction.
#[derive(Debug, Clone)]
pub struct PostgresProjection<H> {
    store: PostgresStore,
    handler: H,
}

impl<H: PostgresHandler> PostgresProjection<H> {
    /// `handler` over `store`'s database.
    pub fn new(store: PostgresStore, handler: H) -> Self {
        Self { store, handler }
    }
}

impl<H: PostgresHandler> Projection for PostgresProjection<H> {
    fn name(&self) -> &str {
        self.handler.name()
    }

    async fn checkpoint(&self) -> Result<u64, Error> {
        Ok(self.store.checkpoint(self.handler.name()).await?)
    }

    async fn apply(&self, events: &[FeedEvent]) -> Result<(), Error> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        let store = &self.store;
        let work = async {
            let mut client = store.client().await?;
            let tx = client.transaction().await.map_err(classify)?;
            self.handler.handle(&tx, events).await.map_err(classify)?;
            store
                .record_checkpoint(&tx, self.handler.name(), last.feed_position)
                .await?;
            tx.commit()
                .await
                .map_err(|err| failure::store_error(&err, true))
        };
        Ok(within(store.deadline, true, work).await?)
    }
}

impl PostgresStore {
    async fn record_checkpoint(
        &self,
        tx: &Transaction<'_>,
        projection: &str,
        through: u64,
    ) -> Result<(), StoreError> {
        tx.execute(
            &self.sql.record_checkpoint,
            &[&projection, &position(through)],
        )
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn feed_head_now(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(&self.sql.feed_head, &[])
            .await
            .map_err(classify)?;
        let head: i64 = row.try_get(0).map_err(classify)?;
        Ok(u64::try_from(head).unwrap_or(0))
    }

    async fn checkpoint_now(&self, projection: &str) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(&self.sql.checkpoint, &[&projection])
            .await
            .map_err(classify)?;
        let at: i64 = match row {
            Some(row) => row.try_get(0).map_err(classify)?,
            None => 0,
        };
        Ok(u64::try_from(at).unwrap_or(0))
    }

    async fn save_checkpoint_now(&self, projection: &str, through: u64) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(classify)?;
        self.record_checkpoint(&tx, projection, through).await?;
        tx.commit()
            .await
            .map_err(|err| failure::store_error(&err, true))
    }

    /// One statement per kind of change, in an order that respects what each needs (owners
    /// before audit entries, a code's row before its updates); each is idempotent by itself.
    async fn apply_read_changes_now(
        &self,
        projection: &str,
        through: u64,
        changes: Vec<ReadChange>,
    ) -> Result<(), StoreError> {
        let columns = Columns::of(&changes)?;
        let (owners, audit, issued, delivered, failures, ended) = (
            &columns.owners,
            &columns.audit,
            &columns.issued,
            &columns.delivered,
            &columns.failures,
            &columns.ended,
        );
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(classify)?;
        if !owners.stream_type.is_empty() {
            tx.execute(
                &self.sql.insert_owners,
                &[
                    &owners.stream_type,
                    &owners.stream_id,
                    &owners.user_id,
                    &owners.org_id,
                ],
            )
            .await
            .map_err(classify)?;
        }
        if !audit.position.is_empty() {
            tx.execute(
                &self.sql.insert_audit,
                &[
                    &audit.position,
                    &audit.stream_type,
                    &audit.stream_id,
                    &audit.version,
                    &audit.event_type,
                    &audit.recorded_at,
                    &audit.detail,
                ],
            )
            .await
            .map_err(classify)?;
        }
        if !issued.code.is_empty() {
            tx.execute(
                &self.sql.insert_links,
                &[
                    &issued.code,
                    &issued.user_id,
                    &issued.facts,
                    &issued.position,
                    &issued.delivery,
                ],
            )
            .await
            .map_err(classify)?;
        }
        if !delivered.code.is_empty() {
            tx.execute(
                &self.sql.deliver_links,
                &[
                    &delivered.code,
                    &delivered.state,
                    &delivered.failure,
                    &delivered.position,
                ],
            )
            .await
            .map_err(classify)?;
        }
        if !failures.code.is_empty() {
            tx.execute(
                &self.sql.insert_link_failures,
                &[&failures.code, &failures.position],
            )
            .await
            .map_err(classify)?;
        }
        if !ended.is_empty() {
            tx.execute(&self.sql.end_links, &[ended])
                .await
                .map_err(classify)?;
        }
        self.record_checkpoint(&tx, projection, through).await?;
        tx.commit()
            .await
            .map_err(|err| failure::store_error(&err, true))
    }

    async fn link_rows_now(&self, user_id: &UserId) -> Result<Vec<LinkRow>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(&self.sql.link_rows, &[&user_id.as_str()])
            .await
            .map_err(classify)?;
        rows.iter().map(rows::link_row).collect()
    }

    async fn audit_page_now(
        &self,
        scope: &AuditScope,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let client = self.client().await?;
        let (sql, id) = match scope {
            AuditScope::User(user) => (&self.sql.audit_page_user, user.as_str()),
            AuditScope::Org(org) => (&self.sql.audit_page_org, org.as_str()),
        };
        let before = before.map_or(i64::MAX, position);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(sql, &[&id, &before, &limit])
            .await
            .map_err(classify)?;
        rows.iter().map(rows::audit_entry).collect()
    }
}

impl ProjectionStore for PostgresStore {
    async fn feed_head(&self) -> Result<u64, StoreError> {
        within(self.deadline, false, self.feed_head_now()).await
    }

    async fn checkpoint(&self, projection: &str) -> Result<u64, StoreError> {
        within(self.deadline, false, self.checkpoint_now(projection)).await
    }

    async fn save_checkpoint(&self, projection: &str, position: u64) -> Result<(), StoreError> {
        within(
            self.deadline,
            true,
            self.save_checkpoint_now(projection, position),
        )
        .await
    }

    async fn apply_read_changes(
        &self,
        projection: &str,
        through: u64,
        changes: Vec<ReadChange>,
    ) -> Result<(), StoreError> {
        within(
            self.deadline,
            true,
            self.apply_read_changes_now(projection, through, changes),
        )
        .await
    }

    async fn link_rows(&self, user_id: &UserId) -> Result<Vec<LinkRow>, StoreError> {
        within(self.deadline, false, self.link_rows_now(user_id)).await
    }

    async fn audit_page(
        &self,
        scope: &AuditScope,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        within(
            self.deadline,
            false,
            self.audit_page_now(scope, before, limit),
        )
        .await
    }
}
