//! Keeping the library's orgs and users in step with the embedder's directory — ensure, not
//! add: each call takes the directory's view and appends only what differs, so a full sync is
//! idempotent and cheap to run again — and reading them back.

use super::access::{Guard, admin_context};
use super::{Op, PasskeyLinks};
use crate::domain::org::OrgStatus;
use crate::domain::user::{UserKind, UserStatus};
use crate::domain::{EnsureHuman, EnsureMachine, EnsureOrg, ReadOrg, ReadUser};
use crate::error::Error;
use crate::ids::{IdError, OrgId, StreamId, UserId};
use crate::ports::authorizer::{Authorizer, Caller, Permission};
use crate::ports::clock::Clock;
use crate::ports::notifier::Notifier;
use crate::ports::random::RandomSource;
use crate::ports::relying_party::RelyingParty;
use crate::store::EventStore;
use crate::wire::{
    EmailView, EnsureHumanUserRequest, EnsureMachineUserRequest, EnsureOrgRequest, EnsureResponse,
    GetOrgRequest, GetOrgResponse, GetUserRequest, GetUserResponse, HumanView, MachineView,
    OrgView, ProfileView, UserView,
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
    /// Brings an org in step with the directory: creates it (the system caller only, as
    /// [`PasskeyLinks::add_org`]), renames, deactivates or reactivates it — only what differs;
    /// nothing when nothing does. Permission `org.write` in the org for an existing one.
    ///
    /// # Errors
    /// InvalidArgument, NotFound (a removed org; an org a user caller has no grant in),
    /// PermissionDenied.
    pub async fn ensure_org(
        &self,
        caller: &Caller,
        request: EnsureOrgRequest,
    ) -> Result<EnsureResponse, Error> {
        let op = Op::new("passkey_links.ensure_org")
            .caller(caller)
            .input_json(&request);
        self.traced(op, async {
            let org_id = OrgId::new(request.org_id)?;
            let guard = Guard::on_org(caller, Permission::OrgWrite, org_id.clone());
            let decision = EnsureOrg {
                org_id: org_id.clone(),
                name: request.name,
                state: request.state,
            };
            let executed = self.execute(&decision, &guard).await?;
            Ok(EnsureResponse {
                details: executed.details(&StreamId::org(&org_id))?,
                changed: executed.appended > 0,
            })
        })
        .await
    }

    /// Brings a human user in step with the directory (permission `user.write` in the org
    /// context, which is the user's org): creates it, or appends exactly the change events —
    /// profile changed, email changed (and verified), locked/unlocked,
    /// deactivated/reactivated — that make it match; nothing when nothing differs. An email
    /// change or a lock kills earlier links, as the lifecycle rules say.
    ///
    /// # Errors
    /// InvalidArgument, NotFound (a user of another org, a removed user), FailedPrecondition
    /// (another kind of user; an inactive org for a new user), PermissionDenied.
    pub async fn ensure_human_user(
        &self,
        caller: &Caller,
        org_context: Option<&str>,
        request: EnsureHumanUserRequest,
    ) -> Result<EnsureResponse, Error> {
        let op = Op::new("passkey_links.ensure_human_user")
            .caller(caller)
            .user(&request.user_id)
            .input(org_context.unwrap_or_default())
            .input_json(&request);
        self.traced(op, async {
            let (user_id, org_id, guard) = directory_user(caller, org_context, request.user_id)?;
            let decision = EnsureHuman {
                user_id: user_id.clone(),
                org_id,
                user_name: request.user_name,
                display_name: request.display_name,
                email: request.email,
                email_verified: request.is_email_verified,
                preferred_language: request.preferred_language,
                state: request.state,
            };
            let executed = self.execute(&decision, &guard).await?;
            Ok(EnsureResponse {
                details: executed.details(&StreamId::user(&user_id))?,
                changed: executed.appended > 0,
            })
        })
        .await
    }

    /// Brings a machine user in step with the directory, as
    /// [`PasskeyLinks::ensure_human_user`].
    ///
    /// # Errors
    /// As [`PasskeyLinks::ensure_human_user`].
    pub async fn ensure_machine_user(
        &self,
        caller: &Caller,
        org_context: Option<&str>,
        request: EnsureMachineUserRequest,
    ) -> Result<EnsureResponse, Error> {
        let op = Op::new("passkey_links.ensure_machine_user")
            .caller(caller)
            .user(&request.user_id)
            .input(org_context.unwrap_or_default())
            .input_json(&request);
        self.traced(op, async {
            let (user_id, org_id, guard) = directory_user(caller, org_context, request.user_id)?;
            let decision = EnsureMachine {
                user_id: user_id.clone(),
                org_id,
                user_name: request.user_name,
                name: request.name,
                state: request.state,
            };
            let executed = self.execute(&decision, &guard).await?;
            Ok(EnsureResponse {
                details: executed.details(&StreamId::user(&user_id))?,
                changed: executed.appended > 0,
            })
        })
        .await
    }

    /// Reads a user back (GetUserByID): the user themself, or `user.read` in the user's org; a
    /// caller without any grant there gets exactly a nonexistent user's answer.
    ///
    /// # Errors
    /// NotFound, PermissionDenied, InvalidArgument.
    pub async fn get_user(
        &self,
        caller: &Caller,
        org_context: Option<&str>,
        request: GetUserRequest,
    ) -> Result<GetUserResponse, Error> {
        let op = Op::new("passkey_links.get_user")
            .caller(caller)
            .user(&request.user_id)
            .input(org_context.unwrap_or_default());
        self.traced(op, async {
            let user_id = UserId::new(request.user_id)?;
            let org_context = admin_context(caller, org_context)?;
            let guard = Guard::on_user(caller, Permission::UserRead, &user_id, &org_context);
            let read = ReadUser {
                user_id: user_id.clone(),
                org_context,
            };
            let executed = self.execute(&read, &guard).await?;
            let details = executed.details(&StreamId::user(&user_id))?;
            let user = executed
                .view()
                .user(&user_id)
                .map_err(|_| Error::internal("a read user without its state"))?;
            let state = match user.status() {
                UserStatus::Initial => "USER_STATE_INITIAL",
                UserStatus::Inactive => "USER_STATE_INACTIVE",
                UserStatus::Locked => "USER_STATE_LOCKED",
                _ => "USER_STATE_ACTIVE",
            };
            let human = (user.kind() == Some(UserKind::Human)).then(|| HumanView {
                profile: ProfileView {
                    display_name: user.display_name().to_owned(),
                    preferred_language: user.preferred_language().map(str::to_owned),
                },
                email: EmailView {
                    email: user
                        .email()
                        .map(|email| email.as_str().to_owned())
                        .unwrap_or_default(),
                    is_verified: user.email_verified(),
                },
            });
            let machine = (user.kind() == Some(UserKind::Machine)).then(|| MachineView {
                name: user.display_name().to_owned(),
            });
            Ok(GetUserResponse {
                user: UserView {
                    user_id: user_id.as_str().to_owned(),
                    state: state.to_owned(),
                    username: user.user_name().to_owned(),
                    organization_id: details.resource_owner.clone(),
                    human,
                    machine,
                },
                details,
            })
        })
        .await
    }

    /// Reads an org back: `org.read` in it; a caller without any grant there gets exactly a
    /// nonexistent org's answer.
    ///
    /// # Errors
    /// NotFound, PermissionDenied, InvalidArgument.
    pub async fn get_org(
        &self,
        caller: &Caller,
        request: GetOrgRequest,
    ) -> Result<GetOrgResponse, Error> {
        let op = Op::new("passkey_links.get_org")
            .caller(caller)
            .input(&request.org_id);
        self.traced(op, async {
            let org_id = OrgId::new(request.org_id)?;
            let guard = Guard::on_org(caller, Permission::OrgRead, org_id.clone());
            let read = ReadOrg {
                org_id: org_id.clone(),
            };
            let executed = self.execute(&read, &guard).await?;
            let details = executed.details(&StreamId::org(&org_id))?;
            let org = executed
                .view()
                .org(&org_id)
                .map_err(|_| Error::internal("a read org without its state"))?;
            let state = match org.status() {
                OrgStatus::Inactive => "ORG_STATE_INACTIVE",
                _ => "ORG_STATE_ACTIVE",
            };
            Ok(GetOrgResponse {
                org: OrgView {
                    id: org_id.as_str().to_owned(),
                    details,
                    state: state.to_owned(),
                    name: org.name().to_owned(),
                },
            })
        })
        .await
    }
}

/// A directory user's id, its org (the org context: the directory names it) and the guard:
/// `user.write` in that org.
fn directory_user(
    caller: &Caller,
    org_context: Option<&str>,
    user_id: String,
) -> Result<(UserId, OrgId, Guard), Error> {
    let user_id = UserId::new(user_id)?;
    let org_id = admin_context(caller, org_context)?
        .ok_or_else(|| Error::from(IdError::Empty { kind: "org" }))?;
    let guard = Guard::on_org(caller, Permission::UserWrite, org_id.clone());
    Ok((user_id, org_id, guard))
}
