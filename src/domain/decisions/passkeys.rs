//! Managing registered passkeys: reading them, removing one, looking one up by credential id
//! for a login, and recording a login's use (a signature counter that does not grow is refused
//! and recorded: possibly a cloned authenticator).

use crate::domain::credential::{CredentialId, CredentialState};
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

/// Find the passkey of a credential id (appends nothing): what a login needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookUpCredential {
    /// The credential id the browser presented.
    pub credential_id: CredentialId,
}

impl Decide for LookUpCredential {
    type State<'a> = (&'a CredentialState, Option<&'a UserState>);

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        let claim = view.credential(&self.credential_id)?;
        let user = claim.claimed_by().map(|u| view.user(u)).transpose()?;
        Ok((claim, user))
    }

    fn decide(&self, (_, user): Self::State<'_>, _: &Ctx<'_>) -> Outcome {
        let registered = user
            .filter(|user| user.exists())
            .is_some_and(|user| user.passkey_by_credential(&self.credential_id).is_some());
        if registered {
            Outcome::Accept(Vec::new())
        } else {
            Outcome::Reject(DomainError::PasskeyNotFound)
        }
    }
}

/// Record a login with a passkey: the authenticator's new signature counter and backup state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordPasskeyUse {
    /// The credential id used.
    pub credential_id: CredentialId,
    /// The signature counter the assertion carried.
    pub sign_count: u32,
    /// Whether the credential is backed up now.
    pub backup_state: bool,
}

impl Decide for RecordPasskeyUse {
    type State<'a> = (&'a CredentialState, Option<&'a UserState>);

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        let claim = view.credential(&self.credential_id)?;
        let user = claim.claimed_by().map(|u| view.user(u)).transpose()?;
        Ok((claim, user))
    }

    fn decide(&self, (claim, user): Self::State<'_>, _: &Ctx<'_>) -> Outcome {
        let found = claim.claimed_by().zip(user.filter(|user| user.exists()));
        let Some((user_id, passkey)) = found.and_then(|(user_id, user)| {
            Some((user_id, user.passkey_by_credential(&self.credential_id)?))
        }) else {
            return Outcome::Reject(DomainError::PasskeyNotFound);
        };
        let stored = passkey.credential.sign_count;
        // Authenticators that do not count always present 0 (WebAuthn §6.1.1); one that counts
        // must present more than it did last time.
        let regressed = (stored != 0 || self.sign_count != 0) && self.sign_count <= stored;
        if regressed {
            return Outcome::RecordAndRefuse(
                vec![Change::user(
                    user_id,
                    UserEvent::PasskeySignCountRegressed {
                        passkey_id: passkey.id.clone(),
                        stored,
                        presented: self.sign_count,
                    },
                )],
                DomainError::PasskeyCloned,
            );
        }
        Outcome::Accept(vec![Change::user(
            user_id,
            UserEvent::PasskeyUsed {
                passkey_id: passkey.id.clone(),
                sign_count: self.sign_count,
                backup_state: self.backup_state,
            },
        )])
    }
}
