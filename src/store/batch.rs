//! What an append writes: events for several streams, each with an expected version, the read
//! set they were decided on, and optionally an idempotency record — validated once here, so
//! adapters need not re-check.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{EventId, ExpectedVersion, LastEvent, StoreError};
use crate::ids::StreamId;

/// An event's JSON payload as the text a store writes: serde_json's compact form of a value, so
/// it is always JSON. Written once, by the writer; a store keeps or sends it as it is.
#[derive(Clone, PartialEq, Eq)]
pub struct Payload(String);

impl Payload {
    /// The text of `value`.
    ///
    /// # Errors
    /// [`StoreError::Internal`] if serde_json cannot write the value.
    pub fn new(value: &Value) -> Result<Self, StoreError> {
        serde_json::to_string(value)
            .map(Self)
            .map_err(|err| StoreError::Internal(format!("payload not written: {err}")))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value again (parsed).
    ///
    /// # Errors
    /// Never for a payload made by [`Payload::new`].
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.0)
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Payload").field(&self.0).finish()
    }
}

/// An event to append. `recorded_at` comes from the injected clock, never from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Its id, drawn by the writer ([`EventId::random`]).
    pub id: EventId,
    /// Event type name.
    pub event_type: String,
    /// Payload schema version.
    pub schema_version: u16,
    /// JSON payload, as written.
    pub payload: Payload,
    /// When it happened (microsecond precision).
    pub recorded_at: DateTime<Utc>,
}

impl NewEvent {
    /// An event with a fresh id.
    ///
    /// # Errors
    /// As [`Payload::new`].
    pub fn new(
        event_type: impl Into<String>,
        schema_version: u16,
        payload: &Value,
        recorded_at: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            id: EventId::random(),
            event_type: event_type.into(),
            schema_version,
            payload: Payload::new(payload)?,
            recorded_at,
        })
    }
}

/// Events for one stream within an atomic batch.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamAppend {
    /// The stream.
    pub stream: StreamId,
    /// The version the writer decided on.
    pub expected: ExpectedVersion,
    /// The events, in order.
    pub events: Vec<NewEvent>,
}

/// A stream a decision read, as it stood: a batch carrying it is written only while the stream
/// still ends with `last` (see [`LastEvent`]) — or, for `None`, still has no event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadStream {
    /// The stream.
    pub stream: StreamId,
    /// Its last event as read (`None`: it had none).
    pub last: Option<LastEvent>,
}

/// An idempotency key recorded atomically with a batch: a second batch with the same key writes
/// nothing and fails with [`StoreError::DuplicateKey`], and [`super::EventStore::recall`] answers
/// what the first one wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    /// The key as stored (never a secret).
    pub key: String,
    /// What the writer needs to answer a retry the same way (never a secret).
    pub outcome: Value,
    /// When it was recorded (the injected clock): what pruning goes by.
    pub recorded_at: DateTime<Utc>,
}

/// An atomic batch: one [`StreamAppend`] per stream, each stream at most once (a stream twice
/// would make its expectations ambiguous), the read set it was decided on, optionally an
/// idempotency record.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendBatch {
    appends: Vec<StreamAppend>,
    read_set: Vec<ReadStream>,
    idempotency: Option<IdempotencyRecord>,
}

impl AppendBatch {
    /// Validates a batch.
    ///
    /// # Errors
    /// [`StoreError::Internal`] when a stream appears twice.
    pub fn new(appends: Vec<StreamAppend>) -> Result<Self, StoreError> {
        for (i, append) in appends.iter().enumerate() {
            if appends[..i]
                .iter()
                .any(|other| other.stream == append.stream)
            {
                return Err(StoreError::Internal(format!(
                    "stream {} appears twice in one batch",
                    append.stream
                )));
            }
        }
        Ok(Self {
            appends,
            read_set: Vec::new(),
            idempotency: None,
        })
    }

    /// Writes the batch only while every stream of `read_set` stands as read; otherwise
    /// [`StoreError::Conflict`] names the first that does not, and nothing is written.
    ///
    /// # Errors
    /// [`StoreError::Internal`] when a stream appears twice in `read_set`.
    pub fn with_read_set(mut self, read_set: Vec<ReadStream>) -> Result<Self, StoreError> {
        for (i, read) in read_set.iter().enumerate() {
            if read_set[..i]
                .iter()
                .any(|other| other.stream == read.stream)
            {
                return Err(StoreError::Internal(format!(
                    "stream {} appears twice in one read set",
                    read.stream
                )));
            }
        }
        self.read_set = read_set;
        Ok(self)
    }

    /// The streams the batch must find as they were read.
    pub fn read_set(&self) -> &[ReadStream] {
        &self.read_set
    }

    /// Records `record` with the batch, atomically.
    pub fn with_idempotency(mut self, record: IdempotencyRecord) -> Self {
        self.idempotency = Some(record);
        self
    }

    /// The idempotency record, if any.
    pub fn idempotency(&self) -> Option<&IdempotencyRecord> {
        self.idempotency.as_ref()
    }

    /// The appends, in batch order.
    pub fn appends(&self) -> &[StreamAppend] {
        &self.appends
    }

    /// The appends, the read set and the idempotency record, consumed.
    pub fn into_parts(
        self,
    ) -> (
        Vec<StreamAppend>,
        Vec<ReadStream>,
        Option<IdempotencyRecord>,
    ) {
        (self.appends, self.read_set, self.idempotency)
    }

    /// Whether the batch holds no append.
    pub fn is_empty(&self) -> bool {
        self.appends.is_empty()
    }
}
