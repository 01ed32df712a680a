//! The passkey credential claim: one stream per credential id, so that a credential id can be
//! registered to one user only, ever. Claiming appends with "no stream" as the expected version,
//! which makes the uniqueness hold under concurrency in every store.

use serde::{Deserialize, Serialize};

use crate::ids::{CodeId, OrgId, UserId};

/// Events of a credential claim stream. Type names are a storage format: never rename.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all_fields = "camelCase")]
pub enum CredentialEvent {
    /// The credential id was registered to a user.
    #[serde(rename = "passkey.credential.claimed")]
    Claimed {
        /// The owner.
        user_id: UserId,
        /// The owner's org.
        org_id: OrgId,
        /// The code it was registered with.
        code_id: CodeId,
    },
}

/// State of a credential claim.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CredentialState {
    /// Stream version.
    pub version: u64,
    /// The user holding the credential id, if claimed.
    pub claimed_by: Option<UserId>,
}

impl CredentialState {
    /// Applies one event (total; the first claim wins).
    pub fn apply(&mut self, event: &CredentialEvent) {
        self.version += 1;
        match event {
            CredentialEvent::Claimed { user_id, .. } => {
                if self.claimed_by.is_none() {
                    self.claimed_by = Some(user_id.clone());
                }
            }
        }
    }
}
