//! The authorizer port: which permissions does a principal hold in an org?
//!
//! The service asks for the whole set, not one permission, because the answer shapes the error:
//! a caller who holds nothing in the target user's org gets exactly the "user not found" answer
//! (no existence oracle across orgs); PermissionDenied is only for callers who act inside an org
//! where they hold some grant.

use std::collections::HashMap;
use std::future::{Future, ready};

use super::forward_port;
use crate::ids::{OrgId, UserId};

/// Permissions the service checks (ZITADEL's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Permission {
    /// `user.credential.write`: add (returned) links, revoke links.
    UserCredentialWrite,
    /// `user.write`: send links, user lifecycle.
    UserWrite,
    /// `user.passkey.write`: v2 registration links.
    UserPasskeyWrite,
    /// `org.write`: org lifecycle.
    OrgWrite,
    /// `org.create`: create orgs (held by no user; only the system caller creates orgs).
    OrgCreate,
    /// `user.read`: read a user's links, passkeys and audit trail.
    UserRead,
    /// `org.read`: read an org's audit trail.
    OrgRead,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 7] = [
        Self::UserCredentialWrite,
        Self::UserWrite,
        Self::UserPasskeyWrite,
        Self::OrgWrite,
        Self::OrgCreate,
        Self::UserRead,
        Self::OrgRead,
    ];

    /// ZITADEL's permission name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UserCredentialWrite => "user.credential.write",
            Self::UserWrite => "user.write",
            Self::UserPasskeyWrite => "user.passkey.write",
            Self::OrgWrite => "org.write",
            Self::OrgCreate => "org.create",
            Self::UserRead => "user.read",
            Self::OrgRead => "org.read",
        }
    }

    const fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// A set of permissions (what a principal holds in one org).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(u32);

impl Permissions {
    /// No permission.
    pub const NONE: Self = Self(0);

    /// Whether `permission` is in the set.
    pub fn contains(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    /// Whether the set is empty (the principal holds no grant in the org).
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The set plus `permission`.
    #[must_use]
    pub fn with(self, permission: Permission) -> Self {
        Self(self.0 | permission.bit())
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        iter.into_iter().fold(Self::NONE, Self::with)
    }
}

/// The authorizer could not decide (e.g. its backing service is down).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// Unreachable or failed transiently; retrying later is safe.
    #[error("authorizer unavailable: {0}")]
    Unavailable(String),
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
#[non_exhaustive]
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
    /// Every permission `principal` holds in `org` (empty: no grant there at all).
    ///
    /// # Errors
    /// [`AccessError`] when the answer cannot be had.
    fn permissions(
        &self,
        principal: &Principal,
        org: &OrgId,
    ) -> impl Future<Output = Result<Permissions, AccessError>> + Send;
}

forward_port!(Authorizer {
    fn permissions(&self, principal: &Principal, org: &OrgId) -> impl Future<Output = Result<Permissions, AccessError>> + Send;
});

/// A static table of grants: (user, org) → permissions.
#[derive(Debug, Clone, Default)]
pub struct StaticGrants {
    grants: HashMap<(UserId, OrgId), Permissions>,
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
        let entry = self.grants.entry((user.clone(), org.clone())).or_default();
        *entry = permissions.into_iter().fold(*entry, Permissions::with);
        self
    }
}

impl Authorizer for StaticGrants {
    fn permissions(
        &self,
        principal: &Principal,
        org: &OrgId,
    ) -> impl Future<Output = Result<Permissions, AccessError>> + Send {
        let held = self
            .grants
            .get(&(principal.user_id.clone(), org.clone()))
            .copied()
            .unwrap_or_default();
        ready(Ok(held))
    }
}
