//! Managing registered passkeys: reading them and removing one. (Logging in with one is
//! `login.rs`.)

use crate::domain::user::{UserEvent, UserState};
use crate::domain::{Change, Ctx, Decide, DomainError, Missing, Outcome, View};
use crate::ids::{OrgId, PasskeyId, UserId};

/// Read a user as seen from an org context (appends nothing): the query behind listing
/// passkeys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadUser {
    /// The user.
    pub user_id: UserId,
    /// Org context of an admin call; `None`: any org.
    pub org_context: Option<OrgId>,
}

impl Decide for ReadUser {
    type State<'a> = &'a UserState;

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        view.user(&self.user_id)
    }

    fn decide(&self, user: &UserState, _: &Ctx<'_>) -> Outcome {
        match user.locate(self.org_context.as_ref()) {
            Ok(_) => Outcome::Accept(Vec::new()),
            Err(err) => Outcome::Reject(err),
        }
    }
}

/// Remove a passkey (its credential id stays claimed: it can never be registered again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovePasskey {
    /// The user.
    pub user_id: UserId,
    /// The passkey.
    pub passkey_id: PasskeyId,
    /// Org context of an admin call.
    pub org_context: Option<OrgId>,
}

impl Decide for RemovePasskey {
    type State<'a> = &'a UserState;

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        view.user(&self.user_id)
    }

    fn decide(&self, user: &UserState, _: &Ctx<'_>) -> Outcome {
        if let Err(err) = user.locate(self.org_context.as_ref()) {
            return Outcome::Reject(err);
        }
        if user.passkey(&self.passkey_id).is_none() {
            return Outcome::Reject(DomainError::PasskeyNotFound);
        }
        Outcome::Accept(vec![Change::user(
            &self.user_id,
            UserEvent::PasskeyRemoved {
                passkey_id: self.passkey_id.clone(),
            },
        )])
    }
}
