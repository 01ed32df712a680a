//! What a call binds: a batch, its guard, a load and a batch of read-model changes, each as one
//! array per column (one statement per call, whatever the batch's size).

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain::DeliveryFailure;
use crate::ids::{StreamId, UserId};
use crate::read::store::ReadChange;
use crate::store::{
    ExpectedVersion, Follow, Naming, ReadFrom, ReadStream, StoreError, StreamAppend,
};

/// A version or limit as the `int8` the statements take.
pub(crate) fn int8(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The streams' types and ids as array parameters.
pub(crate) fn types_and_ids<'a>(
    streams: impl Iterator<Item = &'a StreamId>,
) -> (Vec<&'a str>, Vec<&'a str>) {
    streams.map(|s| (s.kind().as_str(), s.id())).unzip()
}

/// The rows a batch inserts, as array parameters. Versions are the expected version plus the
/// event's place in its stream's append, so the unique (stream, version) constraint refuses a
/// stream that moved past the expectation; `Any` streams count from the stream's end inside the
/// statement (`from_end`).
pub(crate) struct Rows<'a> {
    pub(crate) types: Vec<&'a str>,
    pub(crate) ids: Vec<&'a str>,
    pub(crate) versions: Vec<i64>,
    pub(crate) from_end: Vec<bool>,
    pub(crate) event_ids: Vec<uuid::Uuid>,
    pub(crate) event_types: Vec<&'a str>,
    pub(crate) schemas: Vec<i16>,
    pub(crate) payloads: Vec<&'a str>,
    pub(crate) recorded: Vec<DateTime<Utc>>,
}

impl<'a> Rows<'a> {
    pub(crate) fn of(batch: &'a [StreamAppend]) -> Result<Self, StoreError> {
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
pub(crate) struct Guard<'a> {
    pub(crate) types: Vec<&'a str>,
    pub(crate) ids: Vec<&'a str>,
    pub(crate) versions: Vec<i64>,
    pub(crate) event_ids: Vec<Option<uuid::Uuid>>,
    pub(crate) last: Vec<bool>,
}

impl<'a> Guard<'a> {
    pub(crate) fn of(batch: &'a [StreamAppend], read_set: &'a [ReadStream]) -> Self {
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

/// The streams whose standing reports a conflict, with the version to compare: the read set's
/// (at the version read), then every append's.
pub(crate) struct Standing<'a> {
    pub(crate) types: Vec<&'a str>,
    pub(crate) ids: Vec<&'a str>,
    pub(crate) versions: Vec<i64>,
}

impl<'a> Standing<'a> {
    pub(crate) fn of(batch: &'a [StreamAppend], read_set: &'a [ReadStream]) -> Self {
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
        Self {
            types,
            ids,
            versions,
        }
    }
}

/// A load's parameters (`load_many`): the streams, where each starts (`-1`: from its
/// snapshot), and each follow — its kind, field, source (1-based), and what a latest-matching
/// follow compares (nulls for a first-event follow).
pub(crate) struct Load<'a> {
    pub(crate) types: Vec<&'a str>,
    pub(crate) ids: Vec<&'a str>,
    pub(crate) after: Vec<i64>,
    pub(crate) limit: i64,
    pub(crate) follow_types: Vec<&'a str>,
    pub(crate) fields: Vec<&'a str>,
    pub(crate) sources: Vec<i64>,
    /// The row number of the first follow, less one.
    pub(crate) base: i64,
    pub(crate) event_types: Vec<Option<&'a str>>,
    pub(crate) keys: Vec<Option<&'a str>>,
    pub(crate) values: Vec<Option<&'a str>>,
}

impl<'a> Load<'a> {
    pub(crate) fn of(
        streams: &'a [(StreamId, ReadFrom)],
        follow: &'a [Follow],
        limit: usize,
    ) -> Self {
        let (types, ids) = types_and_ids(streams.iter().map(|(s, _)| s));
        let after = streams
            .iter()
            .map(|(_, from)| match from {
                ReadFrom::After(v) => int8(*v),
                ReadFrom::Snapshot => -1,
            })
            .collect();
        let mut load = Self {
            types,
            ids,
            after,
            limit: int8(limit as u64),
            follow_types: follow.iter().map(|f| f.kind.as_str()).collect(),
            fields: follow.iter().map(|f| f.field).collect(),
            // 1-based, as the row numbers; a follow of no stream asked follows nothing.
            sources: follow.iter().map(|f| int8(f.from as u64 + 1)).collect(),
            base: int8(streams.len() as u64),
            event_types: Vec::with_capacity(follow.len()),
            keys: Vec::with_capacity(follow.len()),
            values: Vec::with_capacity(follow.len()),
        };
        for f in follow {
            let (event_type, key, value) = match &f.naming {
                Naming::Latest {
                    event_type,
                    key,
                    value,
                } => (Some(*event_type), Some(*key), Some(&**value)),
                _ => (None, None, None),
            };
            load.event_types.push(event_type);
            load.keys.push(key);
            load.values.push(value);
        }
        load
    }
}

/// A batch of read-model changes as one array per column, for one statement per kind.
#[derive(Default)]
pub(crate) struct Columns<'a> {
    pub(crate) owners: OwnerColumns<'a>,
    pub(crate) audit: AuditColumns<'a>,
    pub(crate) issued: IssuedColumns<'a>,
    pub(crate) delivered: DeliveredColumns<'a>,
    pub(crate) failures: FailureColumns<'a>,
    pub(crate) ended: Vec<&'a str>,
}

#[derive(Default)]
pub(crate) struct OwnerColumns<'a> {
    pub(crate) stream_type: Vec<&'a str>,
    pub(crate) stream_id: Vec<&'a str>,
    pub(crate) user_id: Vec<Option<&'a str>>,
    pub(crate) org_id: Vec<&'a str>,
}

#[derive(Default)]
pub(crate) struct AuditColumns<'a> {
    pub(crate) position: Vec<i64>,
    pub(crate) stream_type: Vec<&'a str>,
    pub(crate) stream_id: Vec<&'a str>,
    pub(crate) version: Vec<i64>,
    pub(crate) event_type: Vec<&'a str>,
    pub(crate) recorded_at: Vec<DateTime<Utc>>,
    pub(crate) detail: Vec<&'a Value>,
}

#[derive(Default)]
pub(crate) struct IssuedColumns<'a> {
    pub(crate) code: Vec<&'a str>,
    pub(crate) user_id: Vec<&'a str>,
    pub(crate) facts: Vec<Value>,
    pub(crate) position: Vec<i64>,
    pub(crate) delivery: Vec<&'a str>,
}

#[derive(Default)]
pub(crate) struct DeliveredColumns<'a> {
    pub(crate) code: Vec<&'a str>,
    pub(crate) state: Vec<&'a str>,
    pub(crate) failure: Vec<Option<String>>,
    pub(crate) position: Vec<i64>,
}

#[derive(Default)]
pub(crate) struct FailureColumns<'a> {
    pub(crate) code: Vec<&'a str>,
    pub(crate) position: Vec<i64>,
}

impl<'a> Columns<'a> {
    pub(crate) fn of(changes: &'a [ReadChange]) -> Result<Self, StoreError> {
        let mut columns = Self::default();
        for change in changes {
            match change {
                ReadChange::Owner {
                    stream,
                    user_id,
                    org_id,
                } => {
                    let owners = &mut columns.owners;
                    owners.stream_type.push(stream.kind().as_str());
                    owners.stream_id.push(stream.id());
                    owners.user_id.push(user_id.as_ref().map(UserId::as_str));
                    owners.org_id.push(org_id.as_str());
                }
                ReadChange::Audit(entry) => {
                    let audit = &mut columns.audit;
                    audit.position.push(position(entry.feed_position));
                    audit.stream_type.push(entry.stream.kind().as_str());
                    audit.stream_id.push(entry.stream.id());
                    audit.version.push(position(entry.version));
                    audit.event_type.push(&entry.event_type);
                    audit.recorded_at.push(entry.recorded_at);
                    audit.detail.push(&entry.detail);
                }
                ReadChange::LinkIssued { row, feed_position } => {
                    let facts = serde_json::to_value(&row.issued)
                        .map_err(|err| StoreError::Internal(err.to_string()))?;
                    let issued = &mut columns.issued;
                    issued.code.push(row.code.as_str());
                    issued.user_id.push(row.issued.user_id.as_str());
                    issued.facts.push(facts);
                    issued.position.push(position(*feed_position));
                    issued.delivery.push(row.delivery.as_str());
                }
                ReadChange::LinkDelivered {
                    code,
                    state,
                    failure,
                    feed_position,
                } => {
                    let delivered = &mut columns.delivered;
                    delivered.code.push(code.as_str());
                    delivered.state.push(state.as_str());
                    delivered.failure.push(failure.map(failure_name));
                    delivered.position.push(position(*feed_position));
                }
                ReadChange::LinkCheckFailed {
                    code,
                    feed_position,
                } => {
                    columns.failures.code.push(code.as_str());
                    columns.failures.position.push(position(*feed_position));
                }
                ReadChange::LinkEnded { code, .. } => columns.ended.push(code.as_str()),
            }
        }
        Ok(columns)
    }
}

/// A delivery failure's stored name (its serde name).
pub(crate) fn failure_name(failure: DeliveryFailure) -> String {
    serde_json::to_value(failure)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub(crate) fn position(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
