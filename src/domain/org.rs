//! The organization aggregate: existence, status and name, and its lifecycle decisions.

use serde::{Deserialize, Serialize};

use super::text::{MAX_NAME_LEN, display_text};
use super::{Change, Ctx, Decide, DomainError, Missing, Outcome, View};
use crate::ids::OrgId;

/// Events of an organization stream. Type names are a storage format: never rename.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all_fields = "camelCase")]
#[non_exhaustive]
pub enum OrgEvent {
    /// The org was created.
    #[serde(rename = "org.added")]
    Added {
        /// Display name.
        name: String,
    },
    /// The org was deactivated: its users get no links, and every earlier link dies for good.
    #[serde(rename = "org.deactivated")]
    Deactivated {},
    /// The org was reactivated (earlier links stay dead).
    #[serde(rename = "org.reactivated")]
    Reactivated {},
    /// The org was removed, for good.
    #[serde(rename = "org.removed")]
    Removed {},
    /// The org was renamed.
    #[serde(rename = "org.changed")]
    Renamed {
        /// The new display name.
        name: String,
    },
}

impl OrgEvent {
    /// The stored type names, in declaration order.
    pub const TYPES: &'static [&'static str] = &[
        "org.added",
        "org.deactivated",
        "org.reactivated",
        "org.removed",
        "org.changed",
    ];
}

/// Lifecycle status of an org.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum OrgStatus {
    /// No events yet.
    #[default]
    Missing,
    /// Active.
    Active,
    /// Deactivated.
    Inactive,
    /// Removed.
    Removed,
}

/// State folded from an org stream.
/// Its serialized form is the snapshot format of org and user streams: changing its fields
/// changes that format (bump `SNAPSHOT_FORMAT` in `service/snapshot.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OrgState {
    version: u64,
    status: OrgStatus,
    name: String,
    links_stopped_version: u64,
}

impl OrgState {
    /// Applies one event. Total: an event that makes no sense in the current state changes
    /// nothing but the version.
    pub fn apply(&mut self, event: &OrgEvent) {
        self.version += 1;
        match event {
            OrgEvent::Added { name } => {
                self.status = OrgStatus::Active;
                self.name.clone_from(name);
            }
            OrgEvent::Deactivated {} if self.status == OrgStatus::Active => {
                self.status = OrgStatus::Inactive;
                self.links_stopped_version = self.version;
            }
            OrgEvent::Reactivated {} if self.status == OrgStatus::Inactive => {
                self.status = OrgStatus::Active;
            }
            OrgEvent::Removed {} => {
                self.status = OrgStatus::Removed;
                self.links_stopped_version = self.version;
            }
            OrgEvent::Renamed { name } => self.name.clone_from(name),
            _ => {}
        }
    }

    /// Number of events folded in.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Status.
    pub fn status(&self) -> OrgStatus {
        self.status
    }

    /// Name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether a link issued when this stream was at `version` was killed by a later
    /// deactivation or removal (reactivation never revives it).
    pub fn stopped_links_issued_at(&self, version: u64) -> bool {
        self.links_stopped_version > version
    }

    /// Whether the org exists and is not removed.
    pub fn exists(&self) -> bool {
        matches!(self.status, OrgStatus::Active | OrgStatus::Inactive)
    }

    /// The org as a precondition for its users' links: it must exist and be active.
    ///
    /// # Errors
    /// [`DomainError::OrgNotFound`] or [`DomainError::OrgNotActive`].
    pub fn require_active(&self) -> Result<(), DomainError> {
        match self.status {
            OrgStatus::Active => Ok(()),
            OrgStatus::Inactive => Err(DomainError::OrgNotActive),
            OrgStatus::Missing | OrgStatus::Removed => Err(DomainError::OrgNotFound),
        }
    }
}

/// The state a directory says an org or user is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum DirectoryState {
    /// Active.
    #[default]
    Active,
    /// Deactivated.
    Inactive,
    /// Locked (users only).
    Locked,
}

/// Bring an org in step with the directory: create it, rename it, deactivate or reactivate it
/// — only what differs (nothing, when nothing does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnsureOrg {
    /// The org.
    pub org_id: OrgId,
    /// Its name in the directory.
    pub name: String,
    /// Its state in the directory (`Locked` is refused: orgs are not locked).
    pub state: DirectoryState,
}

impl Decide for EnsureOrg {
    type State<'a> = &'a OrgState;

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        view.org(&self.org_id)
    }

    fn decide(&self, org: &OrgState, _: &Ctx<'_>) -> Outcome {
        let name = match display_text("org name", &self.name, MAX_NAME_LEN) {
            Ok(name) => name,
            Err(err) => return Outcome::Reject(err),
        };
        let mut events = Vec::new();
        match org.status {
            OrgStatus::Removed => return Outcome::Reject(DomainError::OrgNotFound),
            OrgStatus::Missing => events.push(OrgEvent::Added { name }),
            OrgStatus::Active | OrgStatus::Inactive if org.name != name => {
                events.push(OrgEvent::Renamed { name });
            }
            _ => {}
        }
        let active = matches!(org.status, OrgStatus::Missing | OrgStatus::Active);
        match (self.state, active) {
            (DirectoryState::Active, false) => events.push(OrgEvent::Reactivated {}),
            (DirectoryState::Inactive, true) => events.push(OrgEvent::Deactivated {}),
            (DirectoryState::Locked, _) => {
                return Outcome::Reject(DomainError::InvalidArgument("an org is not locked"));
            }
            _ => {}
        }
        Outcome::Accept(
            events
                .into_iter()
                .map(|event| Change::org(&self.org_id, event))
                .collect(),
        )
    }
}

/// Create an org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddOrg {
    /// The new org's id.
    pub org_id: OrgId,
    /// Display name.
    pub name: String,
}

impl Decide for AddOrg {
    type State<'a> = &'a OrgState;

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        view.org(&self.org_id)
    }

    fn decide(&self, org: &OrgState, _: &Ctx<'_>) -> Outcome {
        let name = match display_text("org name", &self.name, MAX_NAME_LEN) {
            Ok(name) => name,
            Err(err) => return Outcome::Reject(err),
        };
        if org.status != OrgStatus::Missing {
            return Outcome::Reject(DomainError::OrgAlreadyExists);
        }
        Outcome::Accept(vec![Change::org(&self.org_id, OrgEvent::Added { name })])
    }
}

/// An org lifecycle change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OrgChange {
    /// Deactivate an active org.
    Deactivate,
    /// Reactivate an inactive org.
    Reactivate,
    /// Remove the org.
    Remove,
}

/// Change an existing org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeOrg {
    /// The org.
    pub org_id: OrgId,
    /// The change.
    pub change: OrgChange,
}

impl Decide for ChangeOrg {
    type State<'a> = &'a OrgState;

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        view.org(&self.org_id)
    }

    fn decide(&self, org: &OrgState, _: &Ctx<'_>) -> Outcome {
        let event = match self.change {
            OrgChange::Deactivate => match org.status {
                OrgStatus::Active => OrgEvent::Deactivated {},
                OrgStatus::Inactive => return Outcome::Reject(DomainError::OrgNotActive),
                _ => return Outcome::Reject(DomainError::OrgNotFound),
            },
            OrgChange::Reactivate => match org.status {
                OrgStatus::Inactive => OrgEvent::Reactivated {},
                OrgStatus::Active => return Outcome::Reject(DomainError::OrgAlreadyActive),
                _ => return Outcome::Reject(DomainError::OrgNotFound),
            },
            OrgChange::Remove => {
                if !org.exists() {
                    return Outcome::Reject(DomainError::OrgNotFound);
                }
                OrgEvent::Removed {}
            }
        };
        Outcome::Accept(vec![Change::org(&self.org_id, event)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_support::*;
    use crate::testing::given;

    fn change(change: OrgChange) -> ChangeOrg {
        ChangeOrg {
            org_id: org(),
            change,
        }
    }

    #[test]
    fn org_lifecycle() {
        let add = |name: &str| AddOrg {
            org_id: org(),
            name: name.into(),
        };
        given([])
            .when(&add("ACME"), t0())
            .then([org_added(&org())])
            .when(&change(OrgChange::Reactivate), t0())
            .then_error(DomainError::OrgAlreadyActive);
        given([org_added(&org())])
            .when(&change(OrgChange::Deactivate), t0())
            .then([Change::org(&org(), OrgEvent::Deactivated {})])
            .when(&change(OrgChange::Reactivate), t0())
            .then([Change::org(&org(), OrgEvent::Reactivated {})])
            .when(&change(OrgChange::Remove), t0())
            .then([Change::org(&org(), OrgEvent::Removed {})])
            .when(&add("again"), t0())
            .then_error(DomainError::OrgAlreadyExists);
        given([])
            .when(&change(OrgChange::Deactivate), t0())
            .then_error(DomainError::OrgNotFound);
    }

    #[test]
    fn a_stop_kills_earlier_links_for_good() {
        let mut state = OrgState::default();
        state.apply(&OrgEvent::Added { name: "A".into() });
        let issued_at = state.version();
        state.apply(&OrgEvent::Deactivated {});
        state.apply(&OrgEvent::Reactivated {});
        assert!(state.require_active().is_ok());
        assert!(state.stopped_links_issued_at(issued_at));
        assert!(!state.stopped_links_issued_at(state.version()));
    }
}
