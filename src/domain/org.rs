//! The organization aggregate: existence, status and name.

use serde::{Deserialize, Serialize};

use super::text::{MAX_NAME_LEN, validate_text};
use super::{Change, DomainError};
use crate::ids::{OrgId, StreamId};

/// Events of an organization stream. Type names are a storage format: never rename.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all_fields = "camelCase")]
pub enum OrgEvent {
    /// The org was created.
    #[serde(rename = "org.added")]
    Added {
        /// Display name.
        name: String,
    },
    /// The org was deactivated: its users get no links and redeem none.
    #[serde(rename = "org.deactivated")]
    Deactivated {},
    /// The org was reactivated.
    #[serde(rename = "org.reactivated")]
    Reactivated {},
    /// The org was removed, for good.
    #[serde(rename = "org.removed")]
    Removed {},
}

/// Lifecycle status of an org.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrgState {
    /// Stream version (number of events applied).
    pub version: u64,
    /// Status.
    pub status: OrgStatus,
    /// Name.
    pub name: String,
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
            }
            OrgEvent::Reactivated {} if self.status == OrgStatus::Inactive => {
                self.status = OrgStatus::Active;
            }
            OrgEvent::Removed {} => self.status = OrgStatus::Removed,
            _ => {}
        }
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

/// Org lifecycle commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgCommand {
    /// Create the org.
    Add {
        /// Display name.
        name: String,
    },
    /// Deactivate an active org.
    Deactivate,
    /// Reactivate an inactive org.
    Reactivate,
    /// Remove the org.
    Remove,
}

/// Decides an org lifecycle command.
///
/// # Errors
/// [`DomainError`] when the name is invalid or the org's status forbids the command.
pub fn decide(
    id: &OrgId,
    state: &OrgState,
    command: &OrgCommand,
) -> Result<Vec<Change>, DomainError> {
    let event = match command {
        OrgCommand::Add { name } => {
            validate_text("org name", name, MAX_NAME_LEN)?;
            if state.status != OrgStatus::Missing {
                return Err(DomainError::OrgAlreadyExists);
            }
            OrgEvent::Added { name: name.clone() }
        }
        OrgCommand::Deactivate => match state.status {
            OrgStatus::Active => OrgEvent::Deactivated {},
            OrgStatus::Inactive => return Err(DomainError::OrgNotActive),
            _ => return Err(DomainError::OrgNotFound),
        },
        OrgCommand::Reactivate => match state.status {
            OrgStatus::Inactive => OrgEvent::Reactivated {},
            OrgStatus::Active => return Err(DomainError::OrgAlreadyActive),
            _ => return Err(DomainError::OrgNotFound),
        },
        OrgCommand::Remove => {
            if !state.exists() {
                return Err(DomainError::OrgNotFound);
            }
            OrgEvent::Removed {}
        }
    };
    Ok(vec![Change::new(StreamId::org(id), event)])
}
