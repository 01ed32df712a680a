//! The read side's queries: a user's live links and the audit trails, from the read models a
//! [`crate::read::ReadModels`] projection keeps — authorized exactly like the commands.
//!
//! The read models trail the event store by however far the projection is behind; what makes a
//! listed link dead now (a lock, an org stop, expiry, a newer link) is checked against the
//! user's and org's current state, with the same rule a check applies.

use std::collections::HashMap;

use super::access::{Guard, admin_context};
use super::{Op, PasskeyLinks};
use crate::domain::{DomainError, ReadOrg, ReadUserAndOrg, is_live};
use crate::error::Error;
use crate::ids::{AggregateKind, OrgId, StreamId, UserId};
use crate::personal::{self, Opening};
use crate::ports::authorizer::{Authorizer, Caller, Permission};
use crate::ports::clock::Clock;
use crate::ports::notifier::Notifier;
use crate::ports::random::RandomSource;
use crate::ports::relying_party::RelyingParty;
use crate::read::store::AuditEntry;
use crate::read::store::{AuditScope, DeliveryState, ProjectionStore};
use crate::store::{EventStore, StoreError, StoredKey};
use crate::wire::{
    AuditEvent, ListAuditTrailRequest, ListAuditTrailResponse, ListDetails, ListLiveLinksRequest,
    ListLiveLinksResponse, LiveLink,
};

/// Audit entries per page unless the request asks for another size.
pub const DEFAULT_AUDIT_PAGE: u32 = 100;
/// The largest audit page.
pub const MAX_AUDIT_PAGE: u32 = 1000;

impl<S, N, A, C, R, P> PasskeyLinks<S, N, A, C, R, P>
where
    S: EventStore + ProjectionStore,
    N: Notifier,
    A: Authorizer,
    C: Clock,
    R: RandomSource,
    P: RelyingParty,
{
    /// A user's live links, newest first: codes that still work or wait for delivery (code id,
    /// issue and expiry times, delivery state). The user themself, or a caller with
    /// `user.read` in the user's org; a caller without any grant there gets NotFound, as for a
    /// nonexistent user.
    ///
    /// # Errors
    /// NotFound, PermissionDenied, InvalidArgument (user id), Unavailable.
    pub async fn list_live_links(
        &self,
        caller: &Caller,
        org_context: Option<&str>,
        request: ListLiveLinksRequest,
    ) -> Result<ListLiveLinksResponse, Error> {
        let op = Op::new("passkey_links.list_live_links")
            .caller(caller)
            .user(&request.user_id);
        self.traced(op, async {
            let user_id = UserId::new(request.user_id)?;
            let org_context = admin_context(caller, org_context)?;
            let guard = Guard::on_user(caller, Permission::UserRead, &user_id, &org_context);
            let read = ReadUserAndOrg {
                user_id: user_id.clone(),
                org_context,
            };
            let executed = self.execute(&read, &guard).await?;
            let details = executed.details(&StreamId::user(&user_id))?;
            let view = executed.view();
            let user = view
                .user(&user_id)
                .map_err(|_| Error::internal("a read user without its state"))?;
            let org = view
                .org_of(user)
                .map_err(|_| Error::internal("a read user without its org"))?;
            let now = self.now();
            let skew = self.config.policy().clock_skew_tolerance();
            let result: Vec<LiveLink> = self
                .store
                .link_rows(&user_id)
                .await?
                .into_iter()
                .filter(|row| {
                    // A failed delivery stays listed until the code expires: it can be
                    // redelivered.
                    let failed =
                        row.delivery == DeliveryState::Failed && now < row.issued.expires_at;
                    failed || is_live(&row.code_state(), user, org, now, skew)
                })
                .map(|row| LiveLink {
                    code_reference: row.code.as_str().to_owned(),
                    issued_at: row.issued.issued_at,
                    expires_at: row.issued.expires_at,
                    delivery: row.delivery.as_str().to_owned(),
                    failure: row.failure.and_then(|failure| {
                        serde_json::to_value(failure)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                    }),
                    failed_checks: row.failed_checks,
                })
                .collect();
            Ok(ListLiveLinksResponse {
                details: ListDetails::of(&details, result.len()),
                result,
            })
        })
        .await
    }

    /// A page of an audit trail, newest first: a user's (the user themself, or `user.read` in
    /// the user's org) or an org's (`org.read` in it). Every event of the user's or org's
    /// streams, without secrets, secret digests, key material or ceremony state. A caller
    /// without any grant in the org gets NotFound, as for a nonexistent user or org.
    ///
    /// # Errors
    /// NotFound, PermissionDenied, InvalidArgument (not exactly one of `userId` and `orgId`, a
    /// bad page token or size), Unavailable.
    pub async fn list_audit_trail(
        &self,
        caller: &Caller,
        org_context: Option<&str>,
        request: ListAuditTrailRequest,
    ) -> Result<ListAuditTrailResponse, Error> {
        let op = Op::new("passkey_links.list_audit_trail")
            .caller(caller)
            .user(request.user_id.as_deref().unwrap_or_default());
        self.traced(op, async {
            let page_size = request.page_size.unwrap_or(DEFAULT_AUDIT_PAGE);
            if !(1..=MAX_AUDIT_PAGE).contains(&page_size) {
                return Err(DomainError::InvalidArgument("pageSize must be 1 to 1000").into());
            }
            let before = request
                .page_token
                .as_deref()
                .map(|token| {
                    token
                        .parse::<u64>()
                        .map_err(|_| DomainError::InvalidArgument("invalid pageToken"))
                })
                .transpose()?;
            let scope = match (request.user_id, request.org_id) {
                (Some(user_id), None) => {
                    let user_id = UserId::new(user_id)?;
                    let org_context = admin_context(caller, org_context)?;
                    let guard =
                        Guard::on_user(caller, Permission::UserRead, &user_id, &org_context);
                    let read = ReadUserAndOrg {
                        user_id: user_id.clone(),
                        org_context,
                    };
                    self.execute(&read, &guard).await?;
                    AuditScope::User(user_id)
                }
                (None, Some(org_id)) => {
                    let org_id = OrgId::new(org_id)?;
                    let guard = Guard::reading_org(caller, Permission::OrgRead, org_id.clone());
                    let read = ReadOrg {
                        org_id: org_id.clone(),
                    };
                    self.execute(&read, &guard).await?;
                    AuditScope::Org(org_id)
                }
                _ => {
                    return Err(DomainError::InvalidArgument(
                        "name exactly one of userId and orgId",
                    )
                    .into());
                }
            };
            // One more than the page: whether an older page exists.
            let limit = page_size as usize;
            let mut entries = self.store.audit_page(&scope, before, limit + 1).await?;
            let next_page_token = if entries.len() > limit {
                entries.truncate(limit);
                entries.last().map(|last| last.feed_position.to_string())
            } else {
                None
            };
            self.open_personal_data(&mut entries).await?;
            let result = entries
                .into_iter()
                .map(|entry| AuditEvent {
                    position: entry.feed_position,
                    aggregate_type: entry.stream.kind().as_str().to_owned(),
                    aggregate_id: entry.stream.id().to_owned(),
                    sequence: entry.version,
                    event_type: entry.event_type,
                    creation_date: entry.recorded_at,
                    payload: entry.detail,
                })
                .collect();
            Ok(ListAuditTrailResponse {
                result,
                next_page_token,
            })
        })
        .await
    }

    /// Opens the sealed personal data of audit entries with their users' keys, looked up
    /// afresh (a key erased by another process is never used from memory here): an erased
    /// user's reads as erased.
    async fn open_personal_data(&self, entries: &mut [AuditEntry]) -> Result<(), Error> {
        let mut keys: HashMap<String, Option<StoredKey>> = HashMap::new();
        for entry in entries.iter_mut() {
            if entry.stream.kind() != AggregateKind::User || !personal::holds_sealed(&entry.detail)
            {
                continue;
            }
            let user_id = entry.stream.id();
            if !keys.contains_key(user_id) {
                let stored = self.store.personal_key(user_id).await?;
                keys.insert(user_id.to_owned(), stored);
            }
            let opening = match keys.get(user_id) {
                Some(Some(stored)) => Opening::of(stored),
                _ => Opening::Erased,
            };
            personal::open_fields(opening, user_id, &mut entry.detail).map_err(|err| {
                StoreError::Corrupt {
                    stream: entry.stream.clone(),
                    version: entry.version,
                    reason: err.to_string(),
                }
            })?;
        }
        Ok(())
    }
}
