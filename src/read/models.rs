//! The read models the crate ships — a user's live links and the audit trail per user and per
//! org — as one projection: each feed event maps (purely) to [`ReadChange`]s, which the
//! [`ProjectionStore`] applies together with the checkpoint.

use serde_json::Value;

use super::Projection;
use crate::domain::code::CodeEvent;
use crate::domain::credential::CredentialEvent;
use crate::domain::user::UserEvent;
use crate::domain::{Event, OrgEvent};
use crate::error::Error;
use crate::ids::{AggregateKind, CodeId, OrgId, StreamId};
use crate::read::store::{AuditEntry, DeliveryState, LinkRow, ProjectionStore, ReadChange};
use crate::store::{FeedEvent, StoreError};

/// The checkpoint name of the shipped read models.
pub const READ_MODELS: &str = "passkey_links.read_models";

/// Payload fields an audit trail never shows: secret digests, key material, ceremony state.
pub const REDACTED_FIELDS: &[&str] =
    &["secretDigest", "publicKey", "adapterCredential", "ceremony"];

/// The shipped read models as a projection over `store`'s feed.
#[derive(Debug, Clone)]
pub struct ReadModels<S> {
    store: S,
}

impl<S: ProjectionStore> ReadModels<S> {
    /// The read models kept in `store`.
    pub fn new(store: S) -> Self {
        Self { store }
    }
}

impl<S: ProjectionStore> Projection for ReadModels<S> {
    fn name(&self) -> &str {
        READ_MODELS
    }

    async fn checkpoint(&self) -> Result<u64, Error> {
        Ok(self.store.checkpoint(READ_MODELS).await?)
    }

    async fn apply(&self, events: &[FeedEvent]) -> Result<(), Error> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        let mut changes = Vec::with_capacity(events.len() * 2);
        for event in events {
            changes.extend(changes_for(event)?);
        }
        Ok(self
            .store
            .apply_read_changes(READ_MODELS, last.feed_position, changes)
            .await?)
    }
}

/// The read-model changes one feed event makes (pure).
///
/// # Errors
/// [`StoreError::Corrupt`] for an event the domain cannot decode.
pub fn changes_for(feed: &FeedEvent) -> Result<Vec<ReadChange>, StoreError> {
    let recorded = &feed.event;
    let stream = &recorded.stream;
    let position = feed.feed_position;
    let event = Event::decode(
        stream.kind(),
        &recorded.event_type,
        recorded.schema_version,
        recorded.payload.clone(),
    )
    .map_err(|err| StoreError::Corrupt {
        stream: stream.clone(),
        version: recorded.version,
        reason: err.to_string(),
    })?;
    let mut changes = Vec::with_capacity(3);
    if let Some(owner) = owner_of(stream, &event) {
        changes.push(owner);
    }
    changes.push(ReadChange::Audit(AuditEntry::new(
        position,
        stream.clone(),
        recorded.version,
        recorded.event_type.clone(),
        recorded.recorded_at,
        redacted(&recorded.payload),
    )));
    if let (Event::Code(event), AggregateKind::Code) = (&event, stream.kind()) {
        let code_id = CodeId::new(stream.id()).map_err(|err| StoreError::Corrupt {
            stream: stream.clone(),
            version: recorded.version,
            reason: err.to_string(),
        })?;
        changes.push(link_change(code_id, event, position));
    }
    Ok(changes)
}

/// Who owns a stream, from the event that starts it.
fn owner_of(stream: &StreamId, event: &Event) -> Option<ReadChange> {
    let (user_id, org_id) = match event {
        Event::Org(OrgEvent::Added { .. }) => (None, OrgId::new(stream.id()).ok()?),
        Event::User(
            UserEvent::HumanAdded { org_id, .. } | UserEvent::MachineAdded { org_id, .. },
        ) => (crate::ids::UserId::new(stream.id()).ok(), org_id.clone()),
        Event::Code(CodeEvent::Added { issued } | CodeEvent::Requested { issued, .. }) => {
            (Some(issued.user_id.clone()), issued.org_id.clone())
        }
        Event::Credential(CredentialEvent::Claimed {
            user_id, org_id, ..
        }) => (Some(user_id.clone()), org_id.clone()),
        _ => return None,
    };
    Some(ReadChange::Owner {
        stream: stream.clone(),
        user_id,
        org_id,
    })
}

fn link_change(code_id: CodeId, event: &CodeEvent, feed_position: u64) -> ReadChange {
    let delivered = |state| ReadChange::LinkDelivered {
        code_id: code_id.clone(),
        state,
        feed_position,
    };
    match event {
        CodeEvent::Added { issued } => ReadChange::LinkIssued {
            row: LinkRow::new(code_id, issued.clone(), DeliveryState::Returned, 0),
            feed_position,
        },
        CodeEvent::Requested { issued, .. } => ReadChange::LinkIssued {
            row: LinkRow::new(code_id, issued.clone(), DeliveryState::Requested, 0),
            feed_position,
        },
        CodeEvent::Sent { .. } => delivered(DeliveryState::Sent),
        CodeEvent::DeliveryFailed { .. } => delivered(DeliveryState::Failed),
        CodeEvent::CheckFailed { .. } => ReadChange::LinkCheckFailed {
            code_id,
            feed_position,
        },
        CodeEvent::CheckSucceeded { .. } | CodeEvent::Revoked {} => ReadChange::LinkEnded {
            code_id,
            feed_position,
        },
    }
}

/// The payload without the fields of [`REDACTED_FIELDS`].
fn redacted(payload: &Value) -> Value {
    match payload {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(name, _)| !REDACTED_FIELDS.contains(&name.as_str()))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
        ),
        _ => Value::Null,
    }
}
