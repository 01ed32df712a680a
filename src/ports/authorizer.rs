//! The authorizer port: does a principal hold a permission in an org?

use std::collections::{HashMap, HashSet};
use std::future::{Future, ready};

use super::forward_port;
use crate::error::Error;
use crate::ids::{OrgId, UserId};

/// Permissions the service checks (ZITADEL's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// `user.credential.write`: add (returned) links, revoke links.
    UserCredentialWrite,
    /// `user.write`: send links, user lifecycle.
    UserWrite,
    /// `user.passkey.write`: v2 registration links.
    UserPasskeyWrite,
    /// `org.write`: org lifecycle.
    OrgWrite,
}

impl Permission {
    /// ZITADEL's permission name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UserCredentialWrite => "user.credential.write",
            Self::UserWrite => "user.write",
            Self::UserPasskeyWrite => "user.passkey.write",
            Self::OrgWrite => "org.write",
        }
    }
}

/// An authenticated user: who and in which org their token was issued.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// The user.
    pub user_id: UserId,
    /// The user's own org (the default org context).
    pub org_id: OrgId,
}

/// Who calls the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An authenticated user.
    User(Principal),
    /// The embedding system itself (trusted; no permission checks).
    System,
}

impl std::fmt::Display for Caller {
    /// `user:<id>@<org>` or `system`, for logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::User(p) => write!(f, "user:{}@{}", p.user_id, p.org_id),
            Self::System => f.write_str("system"),
        }
    }
}

impl Caller {
    /// An authenticated user caller.
    pub fn user(user_id: UserId, org_id: OrgId) -> Self {
        Self::User(Principal { user_id, org_id })
    }
}

/// Decides permissions.
pub trait Authorizer: Send + Sync {
    /// Whether `principal` holds `permission` in `org`.
    ///
    /// # Errors
    /// An [`Error`] when the decision cannot be made (e.g. `Unavailable`).
    fn is_permitted(
        &self,
        principal: &Principal,
        permission: Permission,
        org: &OrgId,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
}

forward_port!(Authorizer {
    fn is_permitted(&self, principal: &Principal, permission: Permission, org: &OrgId) -> impl Future<Output = Result<bool, Error>> + Send;
});

/// A static table of grants: (user, org) → permissions.
#[derive(Debug, Clone, Default)]
pub struct StaticGrants {
    grants: HashMap<(UserId, OrgId), HashSet<Permission>>,
}

impl StaticGrants {
    /// No grants.
    pub fn new() -> Self {
        Self::default()
    }

    /// Grants `permissions` to `user` in `org`.
    pub fn grant(
        mut self,
        user: &UserId,
        org: &OrgId,
        permissions: impl IntoIterator<Item = Permission>,
    ) -> Self {
        self.grants
            .entry((user.clone(), org.clone()))
            .or_default()
            .extend(permissions);
        self
    }
}

impl Authorizer for StaticGrants {
    fn is_permitted(
        &self,
        principal: &Principal,
        permission: Permission,
        org: &OrgId,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        let permitted = self
            .grants
            .get(&(principal.user_id.clone(), org.clone()))
            .is_some_and(|set| set.contains(&permission));
        ready(Ok(permitted))
    }
}
