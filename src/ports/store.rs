//! The event store port: read one stream, append to several streams atomically, each with an
//! expected version.

use std::fmt;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::forward_port;
use crate::error::{Error, ErrorKind};
use crate::ids::StreamId;

/// What the writer believes the stream's version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be at exactly this version (≥ 1).
    Exact(u64),
    /// No check.
    Any,
}

impl ExpectedVersion {
    /// `NoStream` for version 0, else `Exact(version)`.
    pub fn from_loaded(version: u64) -> Self {
        if version == 0 {
            Self::NoStream
        } else {
            Self::Exact(version)
        }
    }

    /// Whether a stream at `actual` satisfies the expectation.
    pub fn matches(self, actual: u64) -> bool {
        match self {
            Self::NoStream => actual == 0,
            Self::Exact(expected) => expected == actual,
            Self::Any => true,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(version) => write!(f, "version {version}"),
            Self::Any => f.write_str("any version"),
        }
    }
}

/// An event to append. `recorded_at` comes from the injected clock, never from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Event type name.
    pub event_type: String,
    /// Payload schema version.
    pub schema_version: u16,
    /// JSON payload.
    pub payload: Value,
    /// When it happened (microsecond precision).
    pub recorded_at: DateTime<Utc>,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// Its stream.
    pub stream: StreamId,
    /// Its version in the stream (1-based, gapless).
    pub version: u64,
    /// Its position in the whole store (increasing; may have gaps).
    pub position: u64,
    /// Event type name.
    pub event_type: String,
    /// Payload schema version.
    pub schema_version: u16,
    /// JSON payload.
    pub payload: Value,
    /// When it happened.
    pub recorded_at: DateTime<Utc>,
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

/// A store failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// A stream was not at the expected version; nothing of the batch was written.
    #[error("stream {stream} expected {expected} but is at version {actual}")]
    Conflict {
        /// The stream.
        stream: StreamId,
        /// What the writer expected.
        expected: ExpectedVersion,
        /// The stream's actual version.
        actual: u64,
    },
    /// The store is unreachable or failed transiently; nothing was written.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// A stored event cannot be decoded.
    #[error("corrupted event {stream} version {version}: {reason}")]
    Corrupt {
        /// The stream.
        stream: StreamId,
        /// The event's version.
        version: u64,
        /// What is wrong.
        reason: String,
    },
    /// Misuse or an unexpected store state.
    #[error("event store error: {0}")]
    Internal(String),
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        let (kind, id, key) = match &err {
            StoreError::Conflict { .. } => {
                (ErrorKind::Aborted, "PKL-STORE-01", "Errors.Concurrency")
            }
            StoreError::Unavailable(_) => (
                ErrorKind::Unavailable,
                "PKL-STORE-02",
                "Errors.Eventstore.Unavailable",
            ),
            StoreError::Corrupt { .. } => (
                ErrorKind::Internal,
                "PKL-STORE-03",
                "Errors.Eventstore.Corrupted",
            ),
            StoreError::Internal(_) => (ErrorKind::Internal, "PKL-STORE-04", "Errors.Internal"),
        };
        Error::new(kind, id, key, err.to_string())
    }
}

/// An event store.
///
/// Implementations must enforce expected versions and write a batch atomically: either every
/// stream's events are appended or none. Run [`crate::conformance`] (feature `testing`) against
/// an implementation to check it.
pub trait EventStore: Send + Sync {
    /// The events of `stream` with a version greater than `after_version`, in order.
    fn read(
        &self,
        stream: &StreamId,
        after_version: u64,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// Appends a batch atomically. Returns each stream's new version, in batch order.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when a stream's version does not match (nothing written).
    fn append(
        &self,
        batch: Vec<StreamAppend>,
    ) -> impl Future<Output = Result<Vec<u64>, StoreError>> + Send;
}

forward_port!(EventStore {
    fn read(&self, stream: &StreamId, after_version: u64) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;
    fn append(&self, batch: Vec<StreamAppend>) -> impl Future<Output = Result<Vec<u64>, StoreError>> + Send;
});
