//! The stored form of events: a type name plus a JSON payload, and a schema version.
//!
//! Each aggregate's event enum names its stored types in one table (`TYPES`); decoding checks the
//! table first, so an unknown type is recognised without interpreting serde's error text.

use serde_json::Value;

use super::code::CodeEvent;
use super::credential::CredentialEvent;
use super::org::OrgEvent;
use super::user::UserEvent;
use crate::ids::AggregateKind;

/// The schema version every event of this release is written with.
pub const SCHEMA_VERSION: u16 = 1;

/// An event of any aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Of an org stream.
    Org(OrgEvent),
    /// Of a user stream.
    User(UserEvent),
    /// Of a code stream.
    Code(CodeEvent),
    /// Of a credential claim stream.
    Credential(CredentialEvent),
}

macro_rules! event_from {
    ($($variant:ident($ty:ty)),*) => {$(
        impl From<$ty> for Event {
            fn from(event: $ty) -> Self {
                Event::$variant(event)
            }
        }
    )*};
}
event_from!(
    Org(OrgEvent),
    User(UserEvent),
    Code(CodeEvent),
    Credential(CredentialEvent)
);

/// A stored event could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The event type is unknown for the stream kind.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    /// Written by a newer release.
    #[error("unsupported schema version {0}")]
    UnsupportedSchema(u16),
    /// The payload does not match the event type.
    #[error("malformed payload: {0}")]
    Payload(String),
}

/// The stored type names of a stream kind's events.
fn types(kind: AggregateKind) -> &'static [&'static str] {
    match kind {
        AggregateKind::Org => OrgEvent::TYPES,
        AggregateKind::User => UserEvent::TYPES,
        AggregateKind::Code => CodeEvent::TYPES,
        AggregateKind::Credential => CredentialEvent::TYPES,
    }
}

impl Event {
    /// The aggregate kind the event belongs to.
    pub fn kind(&self) -> AggregateKind {
        match self {
            Self::Org(_) => AggregateKind::Org,
            Self::User(_) => AggregateKind::User,
            Self::Code(_) => AggregateKind::Code,
            Self::Credential(_) => AggregateKind::Credential,
        }
    }

    /// Encodes to the stored form: the event type name and the JSON payload.
    ///
    /// # Errors
    /// Only if serde_json fails, which the event types make impossible in practice.
    pub fn encode(&self) -> Result<(String, Value), serde_json::Error> {
        let tagged = match self {
            Self::Org(event) => serde_json::to_value(event)?,
            Self::User(event) => serde_json::to_value(event)?,
            Self::Code(event) => serde_json::to_value(event)?,
            Self::Credential(event) => serde_json::to_value(event)?,
        };
        let Value::Object(mut map) = tagged else {
            return Err(serde::ser::Error::custom("events encode to objects"));
        };
        let event_type = match map.remove("type") {
            Some(Value::String(name)) => name,
            _ => return Err(serde::ser::Error::custom("events carry a type name")),
        };
        let payload = map
            .remove("payload")
            .unwrap_or_else(|| Value::Object(Default::default()));
        Ok((event_type, payload))
    }

    /// Decodes a stored event of a stream of `kind`.
    ///
    /// # Errors
    /// [`DecodeError`] for an unknown type, a newer schema or a malformed payload.
    pub fn decode(
        kind: AggregateKind,
        event_type: &str,
        schema_version: u16,
        payload: Value,
    ) -> Result<Self, DecodeError> {
        if schema_version == 0 || schema_version > SCHEMA_VERSION {
            return Err(DecodeError::UnsupportedSchema(schema_version));
        }
        if !types(kind).contains(&event_type) {
            return Err(DecodeError::UnknownType(event_type.to_owned()));
        }
        let mut tagged = serde_json::Map::with_capacity(2);
        tagged.insert("type".to_owned(), Value::String(event_type.to_owned()));
        tagged.insert("payload".to_owned(), payload);
        let tagged = Value::Object(tagged);
        let result = match kind {
            AggregateKind::Org => serde_json::from_value(tagged).map(Self::Org),
            AggregateKind::User => serde_json::from_value(tagged).map(Self::User),
            AggregateKind::Code => serde_json::from_value(tagged).map(Self::Code),
            AggregateKind::Credential => serde_json::from_value(tagged).map(Self::Credential),
        };
        result.map_err(|err| DecodeError::Payload(err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every type name in a table decodes (with its payload) and every variant's name is in its
    /// table: the tables and the enums cannot drift apart unnoticed.
    #[test]
    fn type_tables_match_the_enums() {
        for kind in AggregateKind::ALL {
            for name in types(kind) {
                let result = Event::decode(kind, name, SCHEMA_VERSION, Value::Null);
                assert!(
                    !matches!(result, Err(DecodeError::UnknownType(_))),
                    "{kind}: {name}"
                );
            }
            assert_eq!(
                Event::decode(kind, "no.such.type", SCHEMA_VERSION, Value::Null),
                Err(DecodeError::UnknownType("no.such.type".into()))
            );
        }
        assert_eq!(
            Event::decode(AggregateKind::Org, "org.added", 2, Value::Null),
            Err(DecodeError::UnsupportedSchema(2))
        );
    }
}
