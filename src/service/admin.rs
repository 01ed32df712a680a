//! Org and user lifecycle: what an embedder calls to mirror its directory into the streams the
//! link rules read.

use super::access::{Guard, admin_context};
use super::hints::Hinted;
use super::idempotency::Recorded;
use super::{Op, PasskeyLinks};
use crate::domain::{
    AddHuman, AddMachine, AddOrg, ChangeOrg, ChangeUser, Decide, ErasePersonalData, OrgChange,
    UserChange,
};
use crate::error::Error;
use crate::ids::{IdError, OrgId, StreamId, UserId};
use crate::ports::authorizer::{Authorizer, Caller, Permission};
use crate::ports::clock::Clock;
use crate::ports::notifier::Notifier;
use crate::ports::random::RandomSource;
use crate::ports::relying_party::RelyingParty;
use crate::store::EventStore;
use crate::wire::{
    AddHumanUserRequest, AddMachineUserRequest, AddOrgRequest, AddOrgResponse, AddUserResponse,
    DetailsResponse,
};

impl<S, N, A, C, R, P> PasskeyLinks<S, N, A, C, R, P>
where
    S: EventStore,
    N: Notifier,
    A: Authorizer,
    C: Clock,
    R: RandomSource,
    P: RelyingParty,
{
    /// Creates an org. Only the system caller may create orgs (`org.create` is held by no user).
    ///
    /// # Errors
    /// PermissionDenied for user callers, InvalidArgument for a bad name, AlreadyExists.
    pub async fn add_org(
        &self,
        caller: &Caller,
        request: AddOrgRequest,
    ) -> Result<AddOrgResponse, Error> {
        let op = Op::new("passkey_links.add_org")
            .caller(caller)
            .input_json(&request);
        self.traced(op, async {
            if !matches!(caller, Caller::System) {
                return Err(Error::permission_denied(Permission::OrgCreate.as_str()));
            }
            let org_id = OrgId::new(
                request
                    .org_id
                    .unwrap_or_else(|| self.call_random().new_id()),
            )?;
            let decision = AddOrg {
                org_id: org_id.clone(),
                name: request.name,
            };
            let outcome = || Recorded::Org {
                org_id: org_id.clone(),
            };
            let executed = self
                .execute_recording(&decision, &Guard::Open, outcome)
                .await?;
            let org_id = match executed.recalled() {
                Some(Recorded::Org { org_id: first }) => first.clone(),
                _ => org_id,
            };
            Ok(AddOrgResponse {
                details: executed.details(&StreamId::org(&org_id))?,
                org_id: org_id.as_str().to_owned(),
            })
        })
        .await
    }

    /// Deactivates, reactivates or removes an org (permission `org.write` in it).
    ///
    /// # Errors
    /// NotFound, PermissionDenied, FailedPrecondition.
    pub async fn update_org(
        &self,
        caller: &Caller,
        org_id: &str,
        change: OrgChange,
    ) -> Result<DetailsResponse, Error> {
        let op = Op::new("passkey_links.update_org")
            .caller(caller)
            .input(org_id)
            .input(format!("{change:?}"));
        self.traced(op, async {
            let org_id = OrgId::new(org_id)?;
            let guard = Guard::on_org(caller, Permission::OrgWrite, org_id.clone());
            let decision = ChangeOrg {
                org_id: org_id.clone(),
                change,
            };
            self.execute_for_details(&decision, &guard, &StreamId::org(&org_id))
                .await
        })
        .await
    }

    /// Creates a human user in the org context (permission `user.write` there).
    ///
    /// # Errors
    /// InvalidArgument, NotFound/FailedPrecondition (org), PermissionDenied, AlreadyExists.
    pub async fn add_human_user(
        &self,
        caller: &Caller,
        org_context: Option<&str>,
        request: AddHumanUserRequest,
    ) -> Result<AddUserResponse, Error> {
        self.traced(
            Op::new("passkey_links.add_human_user")
                .caller(caller)
                .input(org_context.unwrap_or_default())
                .input_json(&request),
            async {
                let org_id = creation_org(caller, org_context)?;
                let user_id = self.new_user_id(request.user_id)?;
                let guard = Guard::on_org(caller, Permission::UserWrite, org_id.clone());
                let decision = AddHuman {
                    user_id: user_id.clone(),
                    org_id,
                    user_name: request.user_name,
                    display_name: request.display_name,
                    email: request.email,
                    email_verified: request.is_email_verified,
                    preferred_language: request.preferred_language,
                };
                self.add_user(&decision, &guard, user_id).await
            },
        )
        .await
    }

    /// Creates a machine user in the org context (permission `user.write` there).
    ///
    /// # Errors
    /// As [`PasskeyLinks::add_human_user`].
    pub async fn add_machine_user(
        &self,
        caller: &Caller,
        org_context: Option<&str>,
        request: AddMachineUserRequest,
    ) -> Result<AddUserResponse, Error> {
        self.traced(
            Op::new("passkey_links.add_machine_user")
                .caller(caller)
                .input(org_context.unwrap_or_default())
                .input_json(&request),
            async {
                let org_id = creation_org(caller, org_context)?;
                let user_id = self.new_user_id(request.user_id)?;
                let guard = Guard::on_org(caller, Permission::UserWrite, org_id.clone());
                let decision = AddMachine {
                    user_id: user_id.clone(),
                    org_id,
                    user_name: request.user_name,
                    name: request.name,
                };
                self.add_user(&decision, &guard, user_id).await
            },
        )
        .await
    }

    /// Runs a user creation; a retry answers with the user the first run created.
    async fn add_user<D: Decide + Hinted>(
        &self,
        decision: &D,
        guard: &Guard,
        user_id: UserId,
    ) -> Result<AddUserResponse, Error> {
        let outcome = || Recorded::User {
            user_id: user_id.clone(),
        };
        let executed = self.execute_recording(decision, guard, outcome).await?;
        let user_id = match executed.recalled() {
            Some(Recorded::User { user_id: first }) => first.clone(),
            _ => user_id,
        };
        Ok(AddUserResponse {
            details: executed.details(&StreamId::user(&user_id))?,
            user_id: user_id.as_str().to_owned(),
        })
    }

    /// Changes a user: email change/verification, deactivate, reactivate, lock, unlock, remove
    /// (permission `user.write` in the user's actual org). Lock, deactivate, remove and an
    /// email change kill every earlier code for good.
    ///
    /// # Errors
    /// NotFound, PermissionDenied, FailedPrecondition, InvalidArgument.
    pub async fn update_user(
        &self,
        caller: &Caller,
        org_context: Option<&str>,
        user_id: &str,
        change: UserChange,
    ) -> Result<DetailsResponse, Error> {
        let op = Op::new("passkey_links.update_user")
            .caller(caller)
            .user(user_id)
            .input(org_context.unwrap_or_default())
            .input(format!("{change:?}"));
        self.traced(op, async {
            let user_id = UserId::new(user_id)?;
            let org_context = admin_context(caller, org_context)?;
            let guard = match caller {
                Caller::System => Guard::Open,
                Caller::User(principal) => Guard::OnUser {
                    principal: principal.clone(),
                    permission: Permission::UserWrite,
                    user_id: user_id.clone(),
                    org_context: org_context.clone(),
                },
            };
            let decision = ChangeUser {
                user_id: user_id.clone(),
                org_context,
                change,
            };
            self.execute_for_details(&decision, &guard, &StreamId::user(&user_id))
                .await
        })
        .await
    }

    /// Erases a user's personal data (GDPR Art. 17) by crypto-shredding (permission
    /// `user.write` in the user's actual org; a removed user, whom no one else finds, by the
    /// system caller): records
    /// `user.personal_data.erased`, then destroys the key the user's names, email and passkey
    /// names were sealed under. Every event still folds; those fields read as erased
    /// everywhere — states, snapshots, the audit trail — and the user's links die, it gets no
    /// new ones and logs in no more. Erasing again appends nothing and destroys the key again
    /// (a retry after a failure between the two steps completes the erasure).
    ///
    /// # Errors
    /// NotFound, PermissionDenied, and the store's failures.
    pub async fn erase_user_personal_data(
        &self,
        caller: &Caller,
        org_context: Option<&str>,
        user_id: &str,
    ) -> Result<DetailsResponse, Error> {
        let op = Op::new("passkey_links.erase_user_personal_data")
            .caller(caller)
            .user(user_id)
            .input(org_context.unwrap_or_default());
        self.traced(op, async {
            let user_id = UserId::new(user_id)?;
            let org_context = admin_context(caller, org_context)?;
            let guard = match caller {
                Caller::System => Guard::Open,
                Caller::User(principal) => Guard::OnUser {
                    principal: principal.clone(),
                    permission: Permission::UserWrite,
                    user_id: user_id.clone(),
                    org_context: org_context.clone(),
                },
            };
            let decision = ErasePersonalData {
                user_id: user_id.clone(),
                org_context,
            };
            let response = self
                .execute_for_details(&decision, &guard, &StreamId::user(&user_id))
                .await?;
            self.repo
                .erase_personal_data(&self.store, user_id.as_str())
                .await?;
            Ok(response)
        })
        .await
    }

    fn new_user_id(&self, requested: Option<String>) -> Result<UserId, Error> {
        Ok(UserId::new(
            requested.unwrap_or_else(|| self.call_random().new_id()),
        )?)
    }
}

/// The org a new user is created in: the org context (the system caller must name one).
fn creation_org(caller: &Caller, org_context: Option<&str>) -> Result<OrgId, Error> {
    admin_context(caller, org_context)?.ok_or_else(|| IdError::Empty { kind: "org" }.into())
}
