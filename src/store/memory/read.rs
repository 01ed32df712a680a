//! The in-memory store's read-model tables: the reference semantics of [`ProjectionStore`].

use std::collections::{BTreeSet, HashMap};

use crate::ids::{CodeRef, OrgId, StreamId, UserId};
use crate::read::store::{AuditEntry, AuditScope, LinkRow, ReadChange};

/// A code's row with the positions that make applying changes idempotent.
#[derive(Debug)]
struct Link {
    row: LinkRow,
    /// Feed position of the delivery state's event.
    delivery_position: u64,
    /// Feed positions of failed checks (a set: a change applied twice counts once).
    failures: BTreeSet<u64>,
    ended: bool,
    issued_position: u64,
}

#[derive(Debug, Default)]
pub(super) struct ReadTables {
    checkpoints: HashMap<String, u64>,
    owners: HashMap<StreamId, (Option<UserId>, OrgId)>,
    audit: HashMap<u64, AuditEntry>,
    audit_by_user: HashMap<UserId, BTreeSet<u64>>,
    audit_by_org: HashMap<OrgId, BTreeSet<u64>>,
    links: HashMap<CodeRef, Link>,
    links_by_user: HashMap<UserId, Vec<CodeRef>>,
}

impl ReadTables {
    pub(super) fn checkpoint(&self, projection: &str) -> u64 {
        self.checkpoints.get(projection).copied().unwrap_or(0)
    }

    pub(super) fn save_checkpoint(&mut self, projection: &str, position: u64) {
        let checkpoint = self.checkpoints.entry(projection.to_owned()).or_default();
        *checkpoint = (*checkpoint).max(position);
    }

    pub(super) fn apply(&mut self, projection: &str, through: u64, changes: Vec<ReadChange>) {
        for change in changes {
            self.apply_one(change);
        }
        self.save_checkpoint(projection, through);
    }

    fn apply_one(&mut self, change: ReadChange) {
        match change {
            ReadChange::Owner {
                stream,
                user_id,
                org_id,
            } => {
                self.owners.entry(stream).or_insert((user_id, org_id));
            }
            ReadChange::Audit(entry) => {
                let Some((user, org)) = self.owners.get(&entry.stream).cloned() else {
                    return;
                };
                let position = entry.feed_position;
                if self.audit.insert(position, entry).is_none() {
                    if let Some(user) = user {
                        self.audit_by_user.entry(user).or_default().insert(position);
                    }
                    self.audit_by_org.entry(org).or_default().insert(position);
                }
            }
            ReadChange::LinkIssued { row, feed_position } => {
                if self.links.contains_key(&row.code) {
                    return;
                }
                self.links_by_user
                    .entry(row.issued.user_id.clone())
                    .or_default()
                    .push(row.code.clone());
                self.links.insert(
                    row.code.clone(),
                    Link {
                        row,
                        delivery_position: feed_position,
                        failures: BTreeSet::new(),
                        ended: false,
                        issued_position: feed_position,
                    },
                );
            }
            ReadChange::LinkDelivered {
                code,
                state,
                failure,
                feed_position,
            } => {
                if let Some(link) = self.links.get_mut(&code)
                    && link.delivery_position < feed_position
                {
                    link.row.delivery = state;
                    link.row.failure = failure;
                    link.delivery_position = feed_position;
                }
            }
            ReadChange::LinkCheckFailed {
                code,
                feed_position,
            } => {
                if let Some(link) = self.links.get_mut(&code) {
                    link.failures.insert(feed_position);
                    link.row.failed_checks = u32::try_from(link.failures.len()).unwrap_or(u32::MAX);
                }
            }
            ReadChange::LinkEnded { code, .. } => {
                if let Some(link) = self.links.get_mut(&code) {
                    link.ended = true;
                }
            }
        }
    }

    pub(super) fn link_rows(&self, user_id: &UserId) -> Vec<LinkRow> {
        let mut links: Vec<&Link> = self
            .links_by_user
            .get(user_id)
            .into_iter()
            .flatten()
            .filter_map(|code| self.links.get(code))
            .filter(|link| !link.ended)
            .collect();
        links.sort_by_key(|link| std::cmp::Reverse(link.issued_position));
        links.into_iter().map(|link| link.row.clone()).collect()
    }

    pub(super) fn audit_page(
        &self,
        scope: &AuditScope,
        before: Option<u64>,
        limit: usize,
    ) -> Vec<AuditEntry> {
        let positions = match scope {
            AuditScope::User(user) => self.audit_by_user.get(user),
            AuditScope::Org(org) => self.audit_by_org.get(org),
        };
        let Some(positions) = positions else {
            return Vec::new();
        };
        positions
            .range(..before.unwrap_or(u64::MAX))
            .rev()
            .take(limit)
            .filter_map(|position| self.audit.get(position).cloned())
            .collect()
    }
}
