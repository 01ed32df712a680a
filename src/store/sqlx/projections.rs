//! The read side on sqlx: checkpoints, the shipped read models (one statement per kind of
//! change, in one transaction with the checkpoint), and the users' personal data keys.

use sqlx::PgConnection;

use super::SqlxStore;
use super::failure::{classify, sqlstate, store_error};
use crate::ids::UserId;
use crate::read::store::{AuditEntry, AuditScope, LinkRow, ProjectionStore, ReadChange};
use crate::store::sql::failure::lost_to_a_concurrent_writer;
use crate::store::sql::failure::within;
use crate::store::sql::params::{Columns, position};
use crate::store::sql::rows::{self, SqlRow};
use crate::store::sql::statements::ANY_RETRIES;
use crate::store::{PersonalKey, PersonalKeyStore, StoreError, StoredKey};

impl SqlxStore {
    async fn record_checkpoint(
        &self,
        connection: &mut PgConnection,
        projection: &str,
        through: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(&self.sql.record_checkpoint)
            .bind(projection)
            .bind(position(through))
            .execute(connection)
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// The first column of a statement's first row as a count (no row: 0).
    async fn count_of(
        &self,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<u64, StoreError> {
        let rows = self.fetch(query).await?;
        rows.first().map_or(Ok(0), |row| row.count(0))
    }

    async fn save_checkpoint_now(&self, projection: &str, through: u64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        self.record_checkpoint(&mut tx, projection, through).await?;
        tx.commit().await.map_err(|err| store_error(&err, true))
    }

    /// One statement per kind of change, in an order that respects what each needs (owners
    /// before audit entries, a code's row before its updates), with the checkpoint, in one
    /// transaction.
    async fn apply_read_changes_now(
        &self,
        projection: &str,
        through: u64,
        changes: Vec<ReadChange>,
    ) -> Result<(), StoreError> {
        let columns = Columns::of(&changes)?;
        let (owners, audit, issued, delivered, failures) = (
            columns.owners,
            columns.audit,
            columns.issued,
            columns.delivered,
            columns.failures,
        );
        let sql = &self.sql;
        let mut statements = Vec::new();
        if !owners.stream_type.is_empty() {
            statements.push(
                sqlx::query(&sql.insert_owners)
                    .bind(owners.stream_type)
                    .bind(owners.stream_id)
                    .bind(owners.user_id)
                    .bind(owners.org_id),
            );
        }
        if !audit.position.is_empty() {
            statements.push(
                sqlx::query(&sql.insert_audit)
                    .bind(audit.position)
                    .bind(audit.stream_type)
                    .bind(audit.stream_id)
                    .bind(audit.version)
                    .bind(audit.event_type)
                    .bind(audit.recorded_at)
                    .bind(audit.detail),
            );
        }
        if !issued.code.is_empty() {
            statements.push(
                sqlx::query(&sql.insert_links)
                    .bind(issued.code)
                    .bind(issued.user_id)
                    .bind(issued.facts)
                    .bind(issued.position)
                    .bind(issued.delivery),
            );
        }
        if !delivered.code.is_empty() {
            statements.push(
                sqlx::query(&sql.deliver_links)
                    .bind(delivered.code)
                    .bind(delivered.state)
                    .bind(delivered.failure)
                    .bind(delivered.position),
            );
        }
        if !failures.code.is_empty() {
            statements.push(
                sqlx::query(&sql.insert_link_failures)
                    .bind(failures.code)
                    .bind(failures.position),
            );
        }
        if !columns.ended.is_empty() {
            statements.push(sqlx::query(&sql.end_links).bind(columns.ended));
        }
        let mut tx = self.pool.begin().await.map_err(classify)?;
        for statement in statements {
            statement.execute(&mut *tx).await.map_err(classify)?;
        }
        self.record_checkpoint(&mut tx, projection, through).await?;
        tx.commit().await.map_err(|err| store_error(&err, true))
    }

    async fn link_rows_now(&self, user_id: &UserId) -> Result<Vec<LinkRow>, StoreError> {
        let rows = self
            .fetch(sqlx::query(&self.sql.link_rows).bind(user_id.as_str()))
            .await?;
        rows.iter().map(rows::link_row).collect()
    }

    async fn audit_page_now(
        &self,
        scope: &AuditScope,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let (sql, id) = match scope {
            AuditScope::User(user) => (&self.sql.audit_page_user, user.as_str()),
            AuditScope::Org(org) => (&self.sql.audit_page_org, org.as_str()),
        };
        let query = sqlx::query(sql)
            .bind(id)
            .bind(before.map_or(i64::MAX, position))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows = self.fetch(query).await?;
        rows.iter().map(rows::audit_entry).collect()
    }

    async fn personal_key_now(&self, user_id: &str) -> Result<Option<StoredKey>, StoreError> {
        let rows = self
            .fetch(sqlx::query(&self.sql.personal_key).bind(user_id))
            .await?;
        rows.first()
            .map(|row| rows::stored_key(row.opt_bytes(0)?))
            .transpose()
    }

    async fn create_personal_key_now(
        &self,
        user_id: &str,
        key: PersonalKey,
    ) -> Result<StoredKey, StoreError> {
        for _ in 0..ANY_RETRIES {
            let made = sqlx::query(&self.sql.create_personal_key)
                .bind(user_id)
                .bind(key.as_bytes())
                .fetch_optional(&self.pool)
                .await;
            let row = match made {
                Ok(row) => row,
                // Serializable isolation refuses the insert when a racing writer's row came
                // after this transaction's snapshot: that row stands, read on the next try.
                Err(err) if sqlstate(&err).is_some_and(|s| lost_to_a_concurrent_writer(&s)) => {
                    continue;
                }
                Err(err) => return Err(classify(err)),
            };
            return match row {
                Some(row) => rows::stored_key(row.opt_bytes(0)?),
                // A concurrent writer's row, committed after this statement's snapshot was taken.
                None => self
                    .personal_key_now(user_id)
                    .await?
                    .ok_or_else(|| StoreError::Unavailable("personal data key not kept".into())),
            };
        }
        Err(StoreError::Unavailable(
            "personal data key kept colliding with concurrent writers".into(),
        ))
    }
}

impl ProjectionStore for SqlxStore {
    async fn feed_head(&self) -> Result<u64, StoreError> {
        let read = self.count_of(sqlx::query(&self.sql.feed_head));
        within(self.deadline, false, read).await
    }

    async fn checkpoint(&self, projection: &str) -> Result<u64, StoreError> {
        let read = self.count_of(sqlx::query(&self.sql.checkpoint).bind(projection));
        within(self.deadline, false, read).await
    }

    async fn save_checkpoint(&self, projection: &str, position: u64) -> Result<(), StoreError> {
        let write = self.save_checkpoint_now(projection, position);
        within(self.deadline, true, write).await
    }

    async fn apply_read_changes(
        &self,
        projection: &str,
        through: u64,
        changes: Vec<ReadChange>,
    ) -> Result<(), StoreError> {
        let write = self.apply_read_changes_now(projection, through, changes);
        within(self.deadline, true, write).await
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
        let read = self.audit_page_now(scope, before, limit);
        within(self.deadline, false, read).await
    }
}

impl PersonalKeyStore for SqlxStore {
    async fn personal_key(&self, user_id: &str) -> Result<Option<StoredKey>, StoreError> {
        within(self.deadline, false, self.personal_key_now(user_id)).await
    }

    async fn create_personal_key(
        &self,
        user_id: &str,
        key: PersonalKey,
    ) -> Result<StoredKey, StoreError> {
        let write = self.create_personal_key_now(user_id, key);
        within(self.deadline, true, write).await
    }

    async fn erase_personal_key(&self, user_id: &str) -> Result<(), StoreError> {
        let write = self.write(sqlx::query(&self.sql.erase_personal_key).bind(user_id));
        within(self.deadline, true, async { write.await.map(drop) }).await
    }
}
