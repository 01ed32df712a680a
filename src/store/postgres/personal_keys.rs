//! The users' personal data keys (`passkey_links_personal_keys`): a row per user, its key
//! cleared for good on erasure.

use super::failure::sqlstate;
use super::{PostgresStore, classify};
use crate::store::sql::failure::lost_to_a_concurrent_writer;
use crate::store::sql::failure::within;
use crate::store::sql::rows::stored_key as stored;
use crate::store::sql::statements::ANY_RETRIES;
use crate::store::{PersonalKey, PersonalKeyStore, StoreError, StoredKey};

impl PostgresStore {
    async fn personal_key_now(&self, user_id: &str) -> Result<Option<StoredKey>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql.personal_key)
            .await
            .map_err(classify)?;
        let row = client
            .query_opt(&statement, &[&user_id])
            .await
            .map_err(classify)?;
        row.map(|row| stored(row.try_get(0).map_err(classify)?))
            .transpose()
    }

    async fn create_personal_key_now(
        &self,
        user_id: &str,
        key: PersonalKey,
    ) -> Result<StoredKey, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql.create_personal_key)
            .await
            .map_err(classify)?;
        let bytes: &[u8] = key.as_bytes();
        for _ in 0..ANY_RETRIES {
            let row = match client.query_opt(&statement, &[&user_id, &bytes]).await {
                Ok(row) => row,
                // Serializable isolation refuses the insert when a racing writer's row came
                // after this transaction's snapshot: that row stands, read on the next try.
                Err(err) if sqlstate(&err).is_some_and(lost_to_a_concurrent_writer) => continue,
                Err(err) => return Err(classify(err)),
            };
            return match row {
                Some(row) => stored(row.try_get(0).map_err(classify)?),
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

    async fn erase_personal_key_now(&self, user_id: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql.erase_personal_key)
            .await
            .map_err(classify)?;
        client
            .execute(&statement, &[&user_id])
            .await
            .map_err(classify)?;
        Ok(())
    }
}

impl PersonalKeyStore for PostgresStore {
    async fn personal_key(&self, user_id: &str) -> Result<Option<StoredKey>, StoreError> {
        within(self.deadline, false, self.personal_key_now(user_id)).await
    }

    async fn create_personal_key(
        &self,
        user_id: &str,
        key: PersonalKey,
    ) -> Result<StoredKey, StoreError> {
        within(
            self.deadline,
            true,
            self.create_personal_key_now(user_id, key),
        )
        .await
    }

    async fn erase_personal_key(&self, user_id: &str) -> Result<(), StoreError> {
        within(self.deadline, true, self.erase_personal_key_now(user_id)).await
    }
}
