//! Who may run a command: the org context of admin calls, and the guard checked after loading
//! and before deciding.
//!
//! A caller who holds no grant in the target user's actual org gets exactly the answer a
//! nonexistent user gets, on every entry point that names a user: no existence oracle across
//! orgs. PermissionDenied is only for callers acting inside an org where they hold some grant.
//! Permissions are checked in the user's actual org, never the header's (ZITADEL's cross-org
//! takeover).

use super::PasskeyLinks;
use crate::domain::{DomainError, Missing, StreamKey, View};
use crate::error::Error;
use crate::ids::{OrgId, UserId};
use crate::ports::authorizer::{Authorizer, Caller, Permission, Principal};
use crate::ports::clock::Clock;
use crate::ports::notifier::Notifier;
use crate::ports::random::RandomSource;
use crate::ports::relying_party::RelyingParty;
use crate::repo::Loaded;
use crate::store::EventStore;

/// Who may run a command.
pub(crate) enum Guard {
    /// Self-service, the system, or a redemption (the code is the credential).
    Open,
    /// `principal` needs `permission` in the actual org of `user_id` as seen from `org_context`.
    OnUser {
        principal: Principal,
        permission: Permission,
        user_id: UserId,
        org_context: Option<OrgId>,
    },
    /// `principal` needs `permission` in `org_id`; when `hidden`, a caller without any grant
    /// there gets the answer a nonexistent org gets (reads that name an org).
    OnOrg {
        principal: Principal,
        permission: Permission,
        org_id: OrgId,
        hidden: bool,
    },
}

impl Guard {
    /// A user-naming command: open for the system and for the user themself.
    pub(crate) fn on_user(
        caller: &Caller,
        permission: Permission,
        user_id: &UserId,
        org_context: &Option<OrgId>,
    ) -> Self {
        match caller {
            Caller::User(principal) if &principal.user_id != user_id => Self::OnUser {
                principal: principal.clone(),
                permission,
                user_id: user_id.clone(),
                org_context: org_context.clone(),
            },
            _ => Self::Open,
        }
    }

    /// An org-scoped command: open for the system.
    pub(crate) fn on_org(caller: &Caller, permission: Permission, org_id: OrgId) -> Self {
        match caller {
            Caller::System => Self::Open,
            Caller::User(principal) => Self::OnOrg {
                principal: principal.clone(),
                permission,
                org_id,
                hidden: false,
            },
        }
    }

    /// A read that names an org: open for the system; a caller without any grant in the org
    /// cannot tell it from a nonexistent one.
    pub(crate) fn reading_org(caller: &Caller, permission: Permission, org_id: OrgId) -> Self {
        match Self::on_org(caller, permission, org_id) {
            Self::OnOrg {
                principal,
                permission,
                org_id,
                ..
            } => Self::OnOrg {
                principal,
                permission,
                org_id,
                hidden: true,
            },
            open => open,
        }
    }

    /// The streams the guard reads (through the same view as decisions).
    pub(crate) fn state(&self, view: &View<'_>) -> Result<(), Missing> {
        match self {
            Self::OnUser { user_id, .. } => view.require(&[StreamKey::user(user_id)]),
            Self::Open | Self::OnOrg { .. } => Ok(()),
        }
    }
}

/// The org context of an admin call: the header, else the caller's own org; the system caller
/// without a header sees every org.
pub(crate) fn admin_context(
    caller: &Caller,
    org_context: Option<&str>,
) -> Result<Option<OrgId>, Error> {
    let header = org_context.map(OrgId::new).transpose()?;
    Ok(match (header, caller) {
        (Some(context), _) => Some(context),
        (None, Caller::User(principal)) => Some(principal.org_id.clone()),
        (None, Caller::System) => None,
    })
}

/// The authenticated user of a self-service call.
pub(crate) fn principal(caller: &Caller) -> Result<&Principal, Error> {
    match caller {
        Caller::User(principal) => Ok(principal),
        Caller::System => Err(Error::unauthenticated()),
    }
}

impl<S, N, A, C, R, P> PasskeyLinks<S, N, A, C, R, P>
where
    S: EventStore,
    N: Notifier,
    A: Authorizer,
    C: Clock,
    R: RandomSource,
    P: RelyingParty,
{
    pub(crate) async fn authorize(&self, guard: &Guard, loaded: &Loaded) -> Result<(), Error> {
        let (principal, permission, org, hidden) = match guard {
            Guard::Open => return Ok(()),
            Guard::OnUser {
                principal,
                permission,
                user_id,
                org_context,
            } => {
                let user = View::new(loaded)
                    .user(user_id)
                    .map_err(|_| Error::internal("guard ran before its user loaded"))?;
                let org = user.locate(org_context.as_ref())?;
                (
                    principal,
                    *permission,
                    org.clone(),
                    Some(DomainError::UserNotFound),
                )
            }
            Guard::OnOrg {
                principal,
                permission,
                org_id,
                hidden,
            } => (
                principal,
                *permission,
                org_id.clone(),
                hidden.then_some(DomainError::OrgNotFound),
            ),
        };
        let held = self.authorizer.permissions(principal, &org).await?;
        if let Some(not_found) = hidden
            && held.is_empty()
        {
            // Exactly what a nonexistent user (or org) answers.
            return Err(not_found.into());
        }
        if held.contains(permission) {
            Ok(())
        } else {
            Err(Error::permission_denied(permission.as_str()))
        }
    }
}
