//! Reading streams: several in one statement, from snapshots or versions, with the streams
//! their events name; snapshots; decoding rows.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{PostgresStore, classify, failure};
use crate::ids::{AggregateKind, StreamId};
use crate::store::{
    EventId, Follow, Naming, ReadFrom, RecordedEvent, Snapshot, StoreError, StreamRead,
};

/// A version or limit as the `int8` the statements take.
pub(super) fn int8(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The stream named by the row's stream type and id at `first`, `first + 1` (its version at
/// `first + 2`, for the error).
pub(super) fn stream_of(row: &tokio_postgres::Row, first: usize) -> Result<StreamId, StoreError> {
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

/// An event of `stream` from the row's [`super::sql::EVENT_COLUMNS`], starting at `first`.
pub(super) fn decode_event(
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
    let id: uuid::Uuid = row.try_get(first + 2).map_err(classify)?;
    let event_type: String = row.try_get(first + 3).map_err(classify)?;
    let schema_version: i16 = row.try_get(first + 4).map_err(classify)?;
    let payload: Value = row
        .try_get(first + 5)
        .map_err(|err| corrupt(format!("payload: {err}")))?;
    let recorded_at: DateTime<Utc> = row.try_get(first + 6).map_err(classify)?;
    Ok(RecordedEvent {
        version: u64::try_from(version).map_err(|_| corrupt("negative version".into()))?,
        position: u64::try_from(position).map_err(|_| corrupt("negative position".into()))?,
        id: EventId::from_uuid(id),
        schema_version: u16::try_from(schema_version)
            .map_err(|_| corrupt("negative schema version".into()))?,
        stream,
        event_type,
        payload,
        recorded_at,
    })
}

/// The index a statement's 1-based row number `n` names among `count` streams.
fn index_of(n: i64, count: usize) -> Result<usize, StoreError> {
    usize::try_from(n - 1)
        .ok()
        .filter(|i| *i < count)
        .ok_or_else(|| StoreError::Internal("a row of a stream not asked for".into()))
}

/// The streams' types and ids as array parameters.
fn types_and_ids<'a>(streams: impl Iterator<Item = &'a StreamId>) -> (Vec<&'a str>, Vec<&'a str>) {
    streams.map(|s| (s.kind().as_str(), s.id())).unzip()
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
        let mut reads: Vec<Vec<RecordedEvent>> = streams.iter().map(|_| Vec::new()).collect();
        for row in &rows {
            let index = index_of(row.try_get(0).map_err(classify)?, streams.len())?;
            reads[index].push(decode_event(streams[index].0.clone(), row, 1)?);
        }
        Ok(reads)
    }

    pub(super) async fn read_snapshots_now(
        &self,
        streams: &[StreamId],
    ) -> Result<Vec<Option<Snapshot>>, StoreError> {
        let mut found: Vec<Option<Snapshot>> = vec![None; streams.len()];
        if streams.is_empty() {
            return Ok(found);
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
        for row in &rows {
            let index = index_of(row.try_get(0).map_err(classify)?, streams.len())?;
            let version: i64 = row.try_get(1).map_err(classify)?;
            let state: Value = row.try_get(2).map_err(classify)?;
            found[index] = Some(Snapshot::new(
                streams[index].clone(),
                u64::try_from(version).unwrap_or(0),
                state,
            ));
        }
        Ok(found)
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
    /// statement. A snapshot row carries its state in the payload column and no position.
    pub(super) async fn load_many_now(
        &self,
        streams: &[(StreamId, ReadFrom)],
        follow: &[Follow],
        limit: usize,
    ) -> Result<Vec<StreamRead>, StoreError> {
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        let asked = streams.len() + follow.len();
        let mut reads: Vec<StreamRead> = (0..asked).map(|_| StreamRead::default()).collect();
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql.load_many)
            .await
            .map_err(classify)?;
        let (types, ids) = types_and_ids(streams.iter().map(|(s, _)| s));
        let after: Vec<i64> = streams
            .iter()
            .map(|(_, from)| match from {
                ReadFrom::After(v) => int8(*v),
                ReadFrom::Snapshot => -1,
            })
            .collect();
        let limit = int8(limit as u64);
        let follow_types: Vec<&str> = follow.iter().map(|f| f.kind.as_str()).collect();
        let fields: Vec<&str> = follow.iter().map(|f| f.field).collect();
        // 1-based, as the row numbers; a follow of no stream asked follows nothing.
        let sources: Vec<i64> = follow.iter().map(|f| int8(f.from as u64 + 1)).collect();
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
        let base = int8(streams.len() as u64);
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
            let index = index_of(row.try_get(0).map_err(classify)?, asked)?;
            let stream = match streams.get(index) {
                Some((stream, _)) => stream.clone(),
                None => {
                    let kind = follow[index - streams.len()].kind;
                    let id: String = row.try_get(9).map_err(classify)?;
                    match StreamId::new(kind, id) {
                        Ok(stream) => stream,
                        // Names no valid stream: nothing followed.
                        Err(_) => continue,
                    }
                }
            };
            let is_key: bool = row.try_get(10).map_err(classify)?;
            if is_key {
                let key: Option<Vec<u8>> = row.try_get(11).map_err(classify)?;
                reads[index].personal_key = Some(super::personal_keys::stored(key)?);
                continue;
            }
            let is_snapshot: bool = row.try_get(1).map_err(classify)?;
            if is_snapshot {
                let version: i64 = row.try_get(2).map_err(classify)?;
                let state: Value = row.try_get(7).map_err(classify)?;
                reads[index].snapshot = Some(Snapshot::new(
                    stream,
                    u64::try_from(version).unwrap_or(0),
                    state,
                ));
            } else {
                reads[index].events.push(decode_event(stream, row, 2)?);
            }
        }
        Ok(reads)
    }
}
