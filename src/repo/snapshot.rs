//! Snapshots of the states [`super::cache::keeping`] marks as snapshotted (orgs and users): what a
//! cold load starts from instead of a stream's first event. A snapshot names the event it was
//! taken at ([`LastEvent`]), so a load trusts it only if the store still holds that event.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::cache::keeping;
use super::loaded::StreamMeta;
use crate::domain::{AnyState, OrgState, UserState};
use crate::ids::{AggregateKind, StreamId};
use crate::personal;
use crate::store::{EventId, LastEvent, PersonalKey, Snapshot};

/// The snapshot format: this envelope and the serialized forms of [`OrgState`] and
/// [`UserState`] (a user's sealed whole under the user's key, `crate::personal`). A snapshot of another format is ignored (the stream is folded from its start
/// and snapshotted anew), so a release that changes them bumps this — the golden files in
/// `tests/golden/snapshots/` fail until it does.
pub(crate) const SNAPSHOT_FORMAT: u64 = 6;

/// The stored form.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    format: u64,
    state: serde_json::Value,
    created_at: DateTime<Utc>,
    changed_at: DateTime<Utc>,
    last_version: u64,
    last_event_id: String,
}

/// The snapshot of a loaded stream of a snapshotted kind, if its last event is known; a user's
/// state sealed whole under `key` when given.
pub(crate) fn encode(
    stream: &StreamId,
    state: &AnyState,
    meta: &StreamMeta,
    key: Option<&PersonalKey>,
) -> Option<Snapshot> {
    let last = meta.last?;
    let folded = match state {
        AnyState::Org(org) => serde_json::to_value(org.as_ref()).ok()?,
        AnyState::User(user) => {
            let folded = serde_json::to_value(user.as_ref()).ok()?;
            match key {
                Some(key) => personal::seal_snapshot(key, stream.id(), &folded),
                None => folded,
            }
        }
        AnyState::Code(_) | AnyState::Credential(_) => return None,
    };
    let stored = Stored {
        format: SNAPSHOT_FORMAT,
        state: folded,
        created_at: meta.created_at?,
        changed_at: meta.changed_at?,
        last_version: last.version,
        last_event_id: last.id.to_string(),
    };
    let value = serde_json::to_value(stored).ok()?;
    Some(Snapshot::new(stream.clone(), state.version(), value))
}

/// Whether the snapshot's state is sealed (a user's: it opens with the user's key only).
pub(crate) fn is_sealed(snapshot: &Snapshot) -> bool {
    snapshot.state.get("state").is_some_and(personal::is_sealed)
}

/// The state and meta a snapshot holds (a sealed one opened with `key`); `None` for another
/// format, a malformed snapshot, or a sealed one `key` does not open.
pub(crate) fn decode(
    snapshot: &Snapshot,
    key: Option<&PersonalKey>,
) -> Option<(AnyState, StreamMeta)> {
    if snapshot.state.get("format")?.as_u64()? != SNAPSHOT_FORMAT {
        return None;
    }
    let mut stored: Stored = serde_json::from_value(snapshot.state.clone()).ok()?;
    if let Some(sealed) = stored.state.as_str() {
        stored.state = personal::open_snapshot(key?, snapshot.stream.id(), sealed)?;
    }
    let state = match snapshot.stream.kind() {
        AggregateKind::Org => AnyState::Org(Arc::new(
            serde_json::from_value::<OrgState>(stored.state).ok()?,
        )),
        AggregateKind::User => AnyState::User(Arc::new(
            serde_json::from_value::<UserState>(stored.state).ok()?,
        )),
        AggregateKind::Code | AggregateKind::Credential => return None,
    };
    let version = state.version();
    if version != snapshot.version || version != stored.last_version || version == 0 {
        return None;
    }
    let meta = StreamMeta {
        created_at: Some(stored.created_at),
        changed_at: Some(stored.changed_at),
        last: Some(LastEvent {
            version,
            id: stored.last_event_id.parse::<EventId>().ok()?,
        }),
        snapshot_version: version,
    };
    Some((state, meta))
}

/// Whether a state with `meta` is due for a new snapshot.
pub(crate) fn due(stream: &StreamId, state: &AnyState, meta: &StreamMeta, every: u64) -> bool {
    every > 0
        && keeping(stream.kind()).snapshotted
        && meta.last.is_some()
        && state.version() >= meta.snapshot_version + every
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_support::{org, t0, user, world};
    use crate::domain::{Event, UserEvent};
    use crate::ids::UserId;

    fn meta_at(version: u64) -> StreamMeta {
        StreamMeta {
            created_at: Some(t0()),
            changed_at: Some(t0()),
            last: Some(LastEvent {
                version,
                id: "67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap(),
            }),
            snapshot_version: 0,
        }
    }

    #[test]
    fn a_snapshot_round_trips_and_another_format_is_ignored() {
        let mut state = UserState::default();
        state.apply(&UserEvent::Locked {});
        let state = AnyState::User(Arc::new(state));
        let meta = meta_at(1);
        let stream = StreamId::user(&UserId::new("ada").unwrap());
        let snapshot = encode(&stream, &state, &meta, None).unwrap();
        let (back, back_meta) = decode(&snapshot, None).unwrap();
        assert_eq!(back, state);
        assert_eq!(back_meta.last, meta.last);
        assert_eq!(back_meta.snapshot_version, 1);
        let mut other = snapshot.clone();
        other.state["format"] = serde_json::json!(SNAPSHOT_FORMAT + 1);
        assert!(decode(&other, None).is_none());
        let mut lying = snapshot;
        lying.version = 2;
        assert!(decode(&lying, None).is_none());
    }

    #[test]
    fn a_user_snapshot_sealed_under_its_key_opens_only_with_it() {
        let mut state = UserState::default();
        for change in world() {
            if let Event::User(event) = change.event() {
                state.apply(event);
            }
        }
        let name = state.display_name().to_owned();
        let state = AnyState::User(Arc::new(state));
        let stream = StreamId::user(&user());
        let key = PersonalKey::new([7; crate::store::PERSONAL_KEY_LEN]);
        let snapshot = encode(&stream, &state, &meta_at(state.version()), Some(&key)).unwrap();
        assert!(is_sealed(&snapshot));
        assert!(!snapshot.state.to_string().contains(&name));
        assert_eq!(decode(&snapshot, Some(&key)).map(|(s, _)| s), Some(state));
        let other = PersonalKey::new([8; crate::store::PERSONAL_KEY_LEN]);
        assert!(decode(&snapshot, Some(&other)).is_none());
        assert!(decode(&snapshot, None).is_none());
    }

    /// The org and the user of the shared test world, as snapshots: their stored text is exactly
    /// the golden files'. A change to either state's serialized form fails here until
    /// `SNAPSHOT_FORMAT` is bumped and the files are rewritten (`PASSKEY_LINKS_UPDATE_GOLDEN=1`).
    #[test]
    fn snapshots_match_the_golden_files_of_this_format() {
        let (mut org_state, mut user_state) = (OrgState::default(), UserState::default());
        for change in world() {
            match change.event() {
                Event::Org(event) => org_state.apply(event),
                Event::User(event) => user_state.apply(event),
                _ => {}
            }
        }
        let cases = [
            (
                "org",
                StreamId::org(&org()),
                AnyState::Org(Arc::new(org_state)),
            ),
            (
                "user",
                StreamId::user(&user()),
                AnyState::User(Arc::new(user_state)),
            ),
        ];
        for (name, stream, state) in cases {
            let snapshot = encode(&stream, &state, &meta_at(state.version()), None).unwrap();
            let text = serde_json::to_string_pretty(&snapshot.state).unwrap() + "\n";
            let path = format!(
                "{}/tests/golden/snapshots/{name}.v{SNAPSHOT_FORMAT}.json",
                env!("CARGO_MANIFEST_DIR")
            );
            if std::env::var_os("PASSKEY_LINKS_UPDATE_GOLDEN").is_some() {
                std::fs::create_dir_all(std::path::Path::new(&path).parent().unwrap()).unwrap();
                std::fs::write(&path, &text).unwrap();
                continue;
            }
            let golden = std::fs::read_to_string(&path)
                .unwrap_or_else(|_| panic!("no golden snapshot {path}: bump SNAPSHOT_FORMAT?"));
            assert_eq!(text, golden, "{name}: the snapshot form changed");
            assert_eq!(
                decode(&snapshot, None).map(|(s, _)| s),
                Some(state),
                "{name}"
            );
        }
    }
}
