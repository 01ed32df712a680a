//! Reading streams: several in one statement, from snapshots or versions, with the streams
//! their events name; snapshots. Rows are read by the shared [`rows`] functions.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{PostgresStore, classify, failure};
use crate::ids::StreamId;
use crate::store::sql::params::{Load, int8, types_and_ids};
use crate::store::sql::rows::{self, SqlRow};
use crate::store::{Follow, ReadFrom, RecordedEvent, Snapshot, StoreError, StreamRead};

impl SqlRow for tokio_postgres::Row {
    fn int8(&self, i: usize) -> Result<i64, StoreError> {
        self.try_get(i).map_err(classify)
    }
    fn int2(&self, i: usize) -> Result<i16, StoreError> {
        self.try_get(i).map_err(classify)
    }
    fn boolean(&self, i: usize) -> Result<bool, StoreError> {
        self.try_get(i).map_err(classify)
    }
    fn text(&self, i: usize) -> Result<String, StoreError> {
        self.try_get(i).map_err(classify)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        self.try_get(i).map_err(classify)
    }
    fn opt_uuid(&self, i: usize) -> Result<Option<uuid::Uuid>, StoreError> {
        self.try_get(i).map_err(classify)
    }
    fn json(&self, i: usize) -> Result<Value, StoreError> {
        self.try_get(i).map_err(classify)
    }
    fn time(&self, i: usize) -> Result<DateTime<Utc>, StoreError> {
        self.try_get(i).map_err(classify)
    }
    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        self.try_get(i).map_err(classify)
    }
}

impl PostgresStore {
    /// One statement for every stream: a decision's loads cost one round trip.
    pub(super) async fn read_many_now(
        &self,
        streams: &[(StreamId, u64)],
        limit: usize,
    ) -> Result<Vec<Vec<RecordedEvent>>, StoreError> {
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql.read_many)
            .await
            .map_err(classify)?;
        let (types, ids) = types_and_ids(streams.iter().map(|(s, _)| s));
        let after: Vec<i64> = streams.iter().map(|(_, v)| int8(*v)).collect();
        let limit = int8(limit as u64);
        let rows = client
            .query(&statement, &[&types, &ids, &after, &limit])
            .await
            .map_err(classify)?;
        rows::read_many(&rows, streams)
    }

    pub(super) async fn read_snapshots_now(
        &self,
        streams: &[StreamId],
    ) -> Result<Vec<Option<Snapshot>>, StoreError> {
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql.read_snapshots)
            .await
            .map_err(classify)?;
        let (types, ids) = types_and_ids(streams.iter());
        let rows = client
            .query(&statement, &[&types, &ids])
            .await
            .map_err(classify)?;
        rows::snapshots(&rows, streams)
    }

    pub(super) async fn write_snapshot_now(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql.write_snapshot)
            .await
            .map_err(classify)?;
        client
            .execute(
                &statement,
                &[
                    &snapshot.stream.kind().as_str(),
                    &snapshot.stream.id(),
                    &int8(snapshot.version),
                    &snapshot.state,
                ],
            )
            .await
            .map_err(|err| failure::store_error(&err, true))?;
        Ok(())
    }

    /// One statement: each stream's snapshot (when asked for), then its events from the
    /// snapshot's version or after the given one; followed streams are named inside the same
    /// statement, and users' personal data keys come along.
    pub(super) async fn load_many_now(
        &self,
        streams: &[(StreamId, ReadFrom)],
        follow: &[Follow],
        limit: usize,
    ) -> Result<Vec<StreamRead>, StoreError> {
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql.load_many)
            .await
            .map_err(classify)?;
        let load = Load::of(streams, follow, limit);
        let rows = client
            .query(
                &statement,
                &[
                    &load.types,
                    &load.ids,
                    &load.after,
                    &load.limit,
                    &load.follow_types,
                    &load.fields,
                    &load.sources,
                    &load.base,
                    &load.event_types,
                    &load.keys,
                    &load.values,
                ],
            )
            .await
            .map_err(classify)?;
        rows::load_many(&rows, streams, follow)
    }
}
