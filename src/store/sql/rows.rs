//! Rows read back: each driver reads a column of a row as one of a few types ([`SqlRow`]); the
//! rest — events, snapshots, loads, keys, idempotency records, conflicts, read-model rows — is
//! read here once for both.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain::DeliveryFailure;
use crate::ids::{AggregateKind, CodeRef, StreamId};
use crate::read::store::{AuditEntry, DeliveryState, LinkRow};
use crate::store::{
    Appended, EventId, ExpectedVersion, FeedEvent, Follow, PersonalKey, ReadFrom, ReadStream,
    Recalled, RecordedEvent, Snapshot, StoreError, StoredKey, StreamAppend, StreamRead,
};

/// A row as a driver gives it: column `i` read as one of the types the statements answer.
pub(crate) trait SqlRow {
    /// An `int8`.
    fn int8(&self, i: usize) -> Result<i64, StoreError>;
    /// An `int2`.
    fn int2(&self, i: usize) -> Result<i16, StoreError>;
    /// A `bool`.
    fn boolean(&self, i: usize) -> Result<bool, StoreError>;
    /// A `text`.
    fn text(&self, i: usize) -> Result<String, StoreError>;
    /// A `text` or null.
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError>;
    /// A `uuid` or null.
    fn opt_uuid(&self, i: usize) -> Result<Option<uuid::Uuid>, StoreError>;
    /// A `jsonb`.
    fn json(&self, i: usize) -> Result<Value, StoreError>;
    /// A `timestamptz`.
    fn time(&self, i: usize) -> Result<DateTime<Utc>, StoreError>;
    /// A `bytea` or null.
    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError>;

    /// A `uuid`.
    fn uuid(&self, i: usize) -> Result<uuid::Uuid, StoreError> {
        self.opt_uuid(i)?
            .ok_or_else(|| StoreError::Internal(format!("column {i} is null")))
    }

    /// A non-negative `int8` (a negative one reads as 0: versions and positions never are).
    fn count(&self, i: usize) -> Result<u64, StoreError> {
        Ok(u64::try_from(self.int8(i)?).unwrap_or(0))
    }
}

/// The stream named by the row's stream type and id at `first`, `first + 1` (its version at
/// `first + 2`, for the error).
pub(crate) fn stream_of(row: &impl SqlRow, first: usize) -> Result<StreamId, StoreError> {
    let kind = row.text(first)?;
    let id = row.text(first + 1)?;
    let version = row.count(first + 2)?;
    let stream = AggregateKind::parse(&kind)
        .ok_or_else(|| format!("unknown stream type {kind:?}"))
        .and_then(|parsed| StreamId::new(parsed, id.clone()).map_err(|e| e.to_string()));
    stream.map_err(|reason| StoreError::CorruptRow {
        stream_type: kind,
        stream_id: id,
        version,
        reason,
    })
}

/// An event of `stream` from the row's [`super::statements::EVENT_COLUMNS`], starting at
/// `first`.
pub(crate) fn decode_event(
    stream: StreamId,
    row: &impl SqlRow,
    first: usize,
) -> Result<RecordedEvent, StoreError> {
    let version = row.int8(first)?;
    let corrupt = |reason: String| StoreError::Corrupt {
        stream: stream.clone(),
        version: u64::try_from(version).unwrap_or(0),
        reason,
    };
    let position = row.int8(first + 1)?;
    let id = row.uuid(first + 2)?;
    let event_type = row.text(first + 3)?;
    let schema_version = row.int2(first + 4)?;
    let payload = row
        .json(first + 5)
        .map_err(|err| corrupt(format!("payload: {err}")))?;
    let recorded_at = row.time(first + 6)?;
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

/// An event of the global feed (`read_feed`).
pub(crate) fn feed_event(row: &impl SqlRow) -> Result<FeedEvent, StoreError> {
    let feed_position = row.count(0)?;
    let stream = stream_of(row, 1)?;
    Ok(FeedEvent::new(feed_position, decode_event(stream, row, 3)?))
}

/// Every event (`all_events`).
pub(crate) fn any_event(row: &impl SqlRow) -> Result<RecordedEvent, StoreError> {
    decode_event(stream_of(row, 0)?, row, 2)
}

/// The index a statement's 1-based row number `n` names among `count` streams.
fn index_of(n: i64, count: usize) -> Result<usize, StoreError> {
    usize::try_from(n - 1)
        .ok()
        .filter(|i| *i < count)
        .ok_or_else(|| StoreError::Internal("a row of a stream not asked for".into()))
}

/// The answer of `read_many`: each stream's events, in the order asked.
pub(crate) fn read_many<R: SqlRow>(
    rows: &[R],
    streams: &[(StreamId, u64)],
) -> Result<Vec<Vec<RecordedEvent>>, StoreError> {
    let mut reads: Vec<Vec<RecordedEvent>> = streams.iter().map(|_| Vec::new()).collect();
    for row in rows {
        let index = index_of(row.int8(0)?, streams.len())?;
        reads[index].push(decode_event(streams[index].0.clone(), row, 1)?);
    }
    Ok(reads)
}

/// The answer of `read_snapshots`: each stream's snapshot, if one is stored.
pub(crate) fn snapshots<R: SqlRow>(
    rows: &[R],
    streams: &[StreamId],
) -> Result<Vec<Option<Snapshot>>, StoreError> {
    let mut found: Vec<Option<Snapshot>> = vec![None; streams.len()];
    for row in rows {
        let index = index_of(row.int8(0)?, streams.len())?;
        found[index] = Some(Snapshot::new(
            streams[index].clone(),
            row.count(1)?,
            row.json(2)?,
        ));
    }
    Ok(found)
}

/// The answer of `load_many`: a snapshot row carries its state in the payload column and no
/// position; a key row carries a user's personal data key.
pub(crate) fn load_many<R: SqlRow>(
    rows: &[R],
    streams: &[(StreamId, ReadFrom)],
    follow: &[Follow],
) -> Result<Vec<StreamRead>, StoreError> {
    let asked = streams.len() + follow.len();
    let mut reads: Vec<StreamRead> = (0..asked).map(|_| StreamRead::default()).collect();
    for row in rows {
        let index = index_of(row.int8(0)?, asked)?;
        let stream = match streams.get(index) {
            Some((stream, _)) => stream.clone(),
            None => match StreamId::new(follow[index - streams.len()].kind, row.text(9)?) {
                Ok(stream) => stream,
                // Names no valid stream: nothing followed.
                Err(_) => continue,
            },
        };
        if row.boolean(10)? {
            reads[index].personal_key = Some(stored_key(row.opt_bytes(11)?)?);
        } else if row.boolean(1)? {
            reads[index].snapshot = Some(Snapshot::new(stream, row.count(2)?, row.json(7)?));
        } else {
            reads[index].events.push(decode_event(stream, row, 2)?);
        }
    }
    Ok(reads)
}

/// A key column as the port's answer: null once erased.
pub(crate) fn stored_key(key: Option<Vec<u8>>) -> Result<StoredKey, StoreError> {
    match key {
        None => Ok(StoredKey::Erased),
        Some(bytes) => PersonalKey::from_slice(&bytes)
            .map(StoredKey::Key)
            .ok_or_else(|| StoreError::Internal("a personal data key has the wrong length".into())),
    }
}

/// An idempotency record's outcome and the streams it wrote (`[type, id, version]` per event,
/// in position order), each stream with its last version.
pub(crate) fn recalled(outcome: Value, written: &Value) -> Result<Recalled, StoreError> {
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
        match streams.iter_mut().find(|(s, _)| *s == stream) {
            Some((_, last)) => *last = version,
            None => streams.push((stream, version)),
        }
    }
    Ok(Recalled::new(outcome, streams))
}

/// Where each stream of `batch` stands after the append wrote `written` (stream type, id,
/// version, position per row) — or `None` when it wrote fewer than `rows` events (nothing).
pub(crate) fn appended<R: SqlRow>(
    batch: &[StreamAppend],
    written: &[R],
    rows: usize,
) -> Result<Option<Vec<Appended>>, StoreError> {
    if written.len() != rows {
        return Ok(None);
    }
    let mut appended = vec![Appended::new(0, 0); batch.len()];
    for row in written {
        let (kind, id) = (row.text(0)?, row.text(1)?);
        let (version, position) = (row.count(2)?, row.count(3)?);
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

/// From the standing of the read set's streams, then the batch's (`standing`: each one's version
/// now and the id of its event at the version asked): the first stream of the read set that no
/// longer stands as read, else the first append whose expectation fails — or `None` when all
/// hold now (try again).
pub(crate) fn first_conflict<R: SqlRow>(
    batch: &[StreamAppend],
    read_set: &[ReadStream],
    standing: &[R],
) -> Result<Option<StoreError>, StoreError> {
    let standing = standing
        .iter()
        .map(|row| Ok((row.count(0)?, row.opt_uuid(1)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
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

/// A row of `link_rows`.
pub(crate) fn link_row(row: &impl SqlRow) -> Result<LinkRow, StoreError> {
    let corrupt = |what: String| StoreError::Internal(format!("link row: {what}"));
    let code = row.text(0)?;
    let issued = row.json(1)?;
    let delivery = row.text(2)?;
    let failure = row
        .opt_text(3)?
        .map(|name| {
            serde_json::from_value::<DeliveryFailure>(Value::String(name))
                .map_err(|err| corrupt(err.to_string()))
        })
        .transpose()?;
    Ok(LinkRow::new(
        CodeRef::parse(&code).map_err(|err| corrupt(err.to_string()))?,
        serde_json::from_value(issued).map_err(|err| corrupt(err.to_string()))?,
        DeliveryState::parse(&delivery).ok_or_else(|| corrupt(delivery.clone()))?,
        failure,
        u32::try_from(row.count(4)?).unwrap_or(u32::MAX),
    ))
}

/// A row of an audit page.
pub(crate) fn audit_entry(row: &impl SqlRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry::new(
        row.count(0)?,
        stream_of(row, 1)?,
        row.count(3)?,
        row.text(4)?,
        row.time(5)?,
        row.json(6)?,
    ))
}
