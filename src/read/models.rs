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
use crate::ids::{AggregateKind, CodeId, CodeRef, OrgId, StreamId};
use crate::personal::{self, Opening};
use crate::read::store::{AuditEntry, DeliveryState, LinkRow, ProjectionStore, ReadChange};
use crate::store::{FeedEvent, StoreError};

/// The checkpoint name of the shipped read models.
pub const READ_MODELS: &str = "passkey_links.read_models";

/// What an audit trail shows of each event type's payload: an allow-list, so a new event's
/// fields stay hidden until listed here (a test fails while a stored type has no entry). Never
/// listed: secret digests, key material, ceremony state. A field named `codeId` is shown as
/// `codeReference`, the code's derived reference: the code id leaves the library only inside
/// its link.
pub const AUDIT_FIELDS: &[(&str, &[&str])] = &[
    ("org.added", &["name"]),
    ("org.deactivated", &[]),
    ("org.reactivated", &[]),
    ("org.removed", &[]),
    ("org.changed", &["name"]),
    (
        "user.human.added",
        &[
            "orgId",
            "userName",
            "displayName",
            "email",
            "emailVerified",
            "preferredLanguage",
        ],
    ),
    ("user.machine.added", &["orgId", "userName", "name"]),
    ("user.human.email.changed", &["email"]),
    ("user.human.email.verified", &[]),
    ("user.deactivated", &[]),
    ("user.reactivated", &[]),
    ("user.locked", &[]),
    ("user.unlocked", &[]),
    ("user.removed", &[]),
    (
        "user.profile.changed",
        &["userName", "displayName", "preferredLanguage"],
    ),
    ("user.personal_data.erased", &[]),
    (
        "user.human.passwordless.link.issued",
        &["codeId", "issuedAt", "supersedesEarlier"],
    ),
    (
        "user.human.passwordless.link.usable",
        &["codeId", "issuedVersion"],
    ),
    (
        "user.human.passwordless.token.added",
        &["passkeyId", "codeId", "expiresAt"],
    ),
    (
        "user.human.passwordless.token.verified",
        &[
            "passkeyId",
            "codeId",
            "name",
            "credentialId",
            "signCount",
            "aaguid",
            "backupEligible",
            "backupState",
            "transports",
            "attestationFormat",
            "userVerified",
        ],
    ),
    (
        "user.human.passwordless.token.check.failed",
        &["passkeyId", "reason"],
    ),
    ("user.human.passwordless.token.removed", &["passkeyId"]),
    (
        "user.human.passwordless.token.used",
        &["passkeyId", "signCount", "backupState"],
    ),
    (
        "user.human.passwordless.token.sign_count.regressed",
        &["passkeyId", "stored", "presented"],
    ),
    (
        "user.human.passwordless.token.check.succeeded",
        &["passkeyId", "signCount", "backupState", "loginExpiresAt"],
    ),
    (
        "user.human.passwordless.login.check.failed",
        &["passkeyId", "reason", "rejection"],
    ),
    (
        "user.human.passkey.added",
        &["codeId", "credentialId", "name"],
    ),
    (
        "user.human.passwordless.initialization.code.added",
        ISSUED_FIELDS,
    ),
    (
        "user.human.passwordless.initialization.code.requested",
        &[
            "userId",
            "orgId",
            "issuedAt",
            "expiresAt",
            "userVersion",
            "orgVersion",
            "maxFailedChecks",
            "urlTemplate",
            "supersedesWhenUsable",
            "outbox",
            "keyId",
        ],
    ),
    (
        "user.human.passwordless.initialization.code.sent",
        &["messageId"],
    ),
    (
        "user.human.passwordless.initialization.code.delivery.failed",
        &["reason"],
    ),
    (
        "user.human.passwordless.initialization.code.check.failed",
        &["reason"],
    ),
    (
        "user.human.passwordless.initialization.code.check.succeeded",
        &["credentialId"],
    ),
    ("user.human.passwordless.initialization.code.revoked", &[]),
    (
        "user.human.passwordless.initialization.code.redelivery.requested",
        &["outbox"],
    ),
    (
        "passkey.credential.claimed",
        &["userId", "orgId", "codeId", "passkeyId"],
    ),
];

/// The facts of an issued code an audit trail shows (not its secret's digest).
const ISSUED_FIELDS: &[&str] = &[
    "userId",
    "orgId",
    "issuedAt",
    "expiresAt",
    "userVersion",
    "orgVersion",
    "maxFailedChecks",
];

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
    // The read models keep personal data sealed (the audit trail opens it when it is read):
    // decoded here with it read as erased.
    let mut payload = recorded.payload.clone();
    let _ = personal::open_fields(Opening::Erased, stream.id(), &mut payload);
    let event = Event::decode(
        stream.kind(),
        &recorded.event_type,
        recorded.schema_version,
        payload,
    )
    .map_err(|err| StoreError::Corrupt {
        stream: stream.clone(),
        version: recorded.version,
        reason: err.to_string(),
    })?;
    // A code's stream is named by its reference in the read models: the id stays in the link.
    let referenced;
    let stream = if stream.kind() == AggregateKind::Code {
        let reference = CodeId::new(stream.id())
            .map(|id| id.reference())
            .map_err(|err| StoreError::Corrupt {
                stream: stream.clone(),
                version: recorded.version,
                reason: err.to_string(),
            })?;
        referenced = StreamId::new(AggregateKind::Code, reference.as_str()).map_err(|err| {
            StoreError::Corrupt {
                stream: stream.clone(),
                version: recorded.version,
                reason: err.to_string(),
            }
        })?;
        &referenced
    } else {
        stream
    };
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
        audited(&recorded.event_type, &recorded.payload),
    )));
    if let (Event::Code(event), AggregateKind::Code) = (&event, stream.kind()) {
        let code = CodeRef::parse(stream.id()).map_err(|err| StoreError::Corrupt {
            stream: stream.clone(),
            version: recorded.version,
            reason: err.to_string(),
        })?;
        changes.push(link_change(code, event, position));
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

fn link_change(code: CodeRef, event: &CodeEvent, feed_position: u64) -> ReadChange {
    let delivered = |state, failure| ReadChange::LinkDelivered {
        code: code.clone(),
        state,
        failure,
        feed_position,
    };
    match event {
        CodeEvent::Added { issued } => ReadChange::LinkIssued {
            row: LinkRow::new(code, issued.clone(), DeliveryState::Returned, None, 0),
            feed_position,
        },
        CodeEvent::Requested { issued, .. } => ReadChange::LinkIssued {
            row: LinkRow::new(code, issued.clone(), DeliveryState::Requested, None, 0),
            feed_position,
        },
        CodeEvent::Sent { .. } => delivered(DeliveryState::Sent, None),
        CodeEvent::DeliveryFailed { reason } => delivered(DeliveryState::Failed, Some(*reason)),
        CodeEvent::RedeliveryRequested { .. } => delivered(DeliveryState::Requested, None),
        CodeEvent::CheckFailed { .. } => ReadChange::LinkCheckFailed {
            code,
            feed_position,
        },
        CodeEvent::CheckSucceeded { .. } | CodeEvent::Revoked {} => ReadChange::LinkEnded {
            code,
            feed_position,
        },
    }
}

/// The payload fields [`AUDIT_FIELDS`] lists for `event_type` (none for a type it does not list),
/// a code id as its reference.
fn audited(event_type: &str, payload: &Value) -> Value {
    let listed = AUDIT_FIELDS
        .iter()
        .find(|(listed, _)| *listed == event_type)
        .map_or(&[][..], |(_, fields)| *fields);
    let mut shown = serde_json::Map::new();
    for field in listed {
        let Some(value) = payload.get(*field) else {
            continue;
        };
        if *field == "codeId" {
            let reference = value
                .as_str()
                .and_then(|id| CodeId::new(id).ok())
                .map(|id| Value::String(id.reference().to_string()));
            shown.insert("codeReference".into(), reference.unwrap_or(Value::Null));
        } else {
            shown.insert((*field).to_owned(), value.clone());
        }
    }
    Value::Object(shown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CodeEvent;

    /// Every stored event type has an entry: a new type must be listed (with what it shows)
    /// before its events reach an audit trail.
    #[test]
    fn every_stored_event_type_has_an_audit_entry() {
        let types = [
            OrgEvent::TYPES,
            UserEvent::TYPES,
            CodeEvent::TYPES,
            CredentialEvent::TYPES,
        ]
        .concat();
        for event_type in &types {
            assert!(
                AUDIT_FIELDS.iter().any(|(listed, _)| listed == event_type),
                "{event_type} has no audit entry"
            );
        }
        for (listed, fields) in AUDIT_FIELDS {
            assert!(types.contains(listed), "{listed} is not a stored type");
            for hidden in ["secretDigest", "publicKey", "adapterCredential", "ceremony"] {
                assert!(!fields.contains(&hidden), "{listed} shows {hidden}");
            }
        }
    }

    #[test]
    fn unlisted_fields_are_hidden_and_code_ids_become_references() {
        let code = CodeId::new("code-1").unwrap();
        let shown = audited(
            "user.human.passwordless.token.added",
            &serde_json::json!({
                "passkeyId": "pk-1",
                "codeId": "code-1",
                "ceremony": {"challenge": "AAEC"},
                "expiresAt": "2026-03-01T09:05:00Z",
                "somethingNew": "secret-ish",
            }),
        );
        assert_eq!(
            shown,
            serde_json::json!({
                "passkeyId": "pk-1",
                "codeReference": code.reference().to_string(),
                "expiresAt": "2026-03-01T09:05:00Z",
            })
        );
        assert_eq!(
            audited("no.such.type", &serde_json::json!({"a": 1})),
            serde_json::json!({})
        );
    }
}
