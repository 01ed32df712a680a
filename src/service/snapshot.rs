//! Snapshots of org and user states: what a cold load starts from instead of a stream's first
//! event. A snapshot names the event it was taken at (position and digest, as the state cache
//! does), so a load trusts it only if the store still holds that event.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::domain::{AnyState, EventStamp, OrgState, StreamMeta, UserState};
use crate::ids::{AggregateKind, StreamId};
use crate::store::Snapshot;

/// The snapshot format: the serialized form of [`OrgState`] and [`UserState`]. A snapshot of
/// another format is ignored (the stream is folded from its start and snapshotted anew), so a
/// release that changes those states bumps this.
pub(crate) const SNAPSHOT_FORMAT: u64 = 1;

/// Whether `stream` is of a kind that is snapshotted: orgs and users, the streams that grow.
pub(crate) fn taken_of(stream: &StreamId) -> bool {
    matches!(stream.kind(), AggregateKind::Org | AggregateKind::User)
}

/// The snapshot of a loaded org or user stream, if its last event is known.
pub(crate) fn encode(stream: &StreamId, state: &AnyState, meta: &StreamMeta) -> Option<Snapshot> {
    let stamp = meta.last_event?;
    let folded = match state {
        AnyState::Org(org) => serde_json::to_value(org.as_ref()).ok()?,
        AnyState::User(user) => serde_json::to_value(user.as_ref()).ok()?,
        AnyState::Code(_) | AnyState::Credential(_) => return None,
    };
    let value = json!({
        "format": SNAPSHOT_FORMAT,
        "state": folded,
        "createdAt": meta.created_at,
        "changedAt": meta.changed_at,
        "lastPosition": stamp.position,
        "lastDigest": stamp.digest.to_string(),
    });
    Some(Snapshot::new(stream.clone(), state.version(), value))
}

/// The state and meta a snapshot holds; `None` for another format or a malformed snapshot.
pub(crate) fn decode(snapshot: &Snapshot) -> Option<(AnyState, StreamMeta)> {
    let value = &snapshot.state;
    if value.get("format")?.as_u64()? != SNAPSHOT_FORMAT {
        return None;
    }
    let folded = value.get("state")?.clone();
    let state = match snapshot.stream.kind() {
        AggregateKind::Org => {
            AnyState::Org(Arc::new(serde_json::from_value::<OrgState>(folded).ok()?))
        }
        AggregateKind::User => {
            AnyState::User(Arc::new(serde_json::from_value::<UserState>(folded).ok()?))
        }
        AggregateKind::Code | AggregateKind::Credential => return None,
    };
    if state.version() != snapshot.version || snapshot.version == 0 {
        return None;
    }
    let time = |field: &str| -> Option<DateTime<Utc>> {
        serde_json::from_value(value.get(field)?.clone()).ok()
    };
    let meta = StreamMeta {
        created_at: Some(time("createdAt")?),
        changed_at: Some(time("changedAt")?),
        last_event: Some(EventStamp {
            position: value.get("lastPosition")?.as_u64()?,
            digest: value.get("lastDigest")?.as_str()?.parse().ok()?,
        }),
        snapshot_version: snapshot.version,
    };
    Some((state, meta))
}

/// Whether a state with `meta` is due for a new snapshot.
pub(crate) fn due(state: &AnyState, meta: &StreamMeta, every: u64) -> bool {
    every > 0
        && matches!(state, AnyState::Org(_) | AnyState::User(_))
        && state.version() >= meta.snapshot_version + every
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserEvent;
    use crate::ids::UserId;

    #[test]
    fn a_snapshot_round_trips_and_another_format_is_ignored() {
        let mut state = UserState::default();
        state.apply(&UserEvent::Locked {});
        let state = AnyState::User(Arc::new(state));
        let at = chrono::Utc::now();
        let meta = StreamMeta {
            created_at: Some(at),
            changed_at: Some(at),
            last_event: Some(EventStamp {
                position: 7,
                digest: u64::MAX - 3,
            }),
            snapshot_version: 0,
        };
        let stream = StreamId::user(&UserId::new("ada").unwrap());
        let snapshot = encode(&stream, &state, &meta).unwrap();
        let (back, back_meta) = decode(&snapshot).unwrap();
        assert_eq!(back.version(), 1);
        assert_eq!(back_meta.last_event, meta.last_event);
        assert_eq!(back_meta.snapshot_version, 1);
        let mut other = snapshot.clone();
        other.state["format"] = json!(SNAPSHOT_FORMAT + 1);
        assert!(decode(&other).is_none());
        let mut lying = snapshot;
        lying.version = 2;
        assert!(decode(&lying).is_none());
    }
}
