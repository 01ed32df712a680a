//! Redemption: checking a code when its link is opened, and revoking it. Registering a passkey
//! with a code is in `passkeys.rs`.

use super::access::{Guard, admin_context};
use super::engine::Executed;
use super::{Op, PasskeyLinks};
use crate::domain::{CheckCode, DomainError, NamedCode, PresentCode, RevokeCode};
use crate::error::Error;
use crate::ids::{CodeId, CodeRef, StreamId, UserId};
use crate::ports::authorizer::{Authorizer, Caller, Permission};
use crate::ports::clock::Clock;
use crate::ports::notifier::Notifier;
use crate::ports::random::RandomSource;
use crate::ports::relying_party::RelyingParty;
use crate::secret::Secret;
use crate::store::EventStore;
use crate::wire::{CheckCodeRequest, CheckCodeResponse, DetailsResponse, RevokeCodeRequest};

/// A presented code from a request's raw ids.
pub(crate) fn present(
    user_id: String,
    code_id: String,
    secret: Secret,
) -> Result<PresentCode, Error> {
    if secret.expose().len() > crate::secret::MAX_SECRET_LEN {
        return Err(DomainError::InvalidArgument("the code is longer than any code issued").into());
    }
    Ok(PresentCode {
        user_id: UserId::new(user_id)?,
        code_id: CodeId::new(code_id)?,
        secret,
    })
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
    /// Checks the code of a link the user opened, without consuming it (it may be opened many
    /// times: mail scanners prefetch links). Every failure on an existing code is recorded with
    /// its reason; the caller always gets the same `Errors.User.Code.Invalid`.
    ///
    /// # Errors
    /// InvalidArgument for any unusable code or malformed ids.
    pub async fn check_code(&self, request: CheckCodeRequest) -> Result<CheckCodeResponse, Error> {
        let op = Op::new("passkey_links.check_code")
            .user(&request.user_id)
            .code(&request.code_id)
            .input(request.code.digest().as_bytes());
        self.traced(op, async {
            let presented = present(request.user_id, request.code_id, request.code)?;
            let code_id = presented.code_id.clone();
            let executed = self.execute(&CheckCode(presented), &Guard::Open).await?;
            let issued = executed
                .view()
                .code(&code_id)
                .ok()
                .and_then(|code| code.issued().cloned())
                .ok_or_else(|| Error::internal("usable code without issuance facts"))?;
            Ok(CheckCodeResponse {
                details: executed.details(&StreamId::code(&code_id))?,
                user_id: issued.user_id.as_str().to_owned(),
                org_id: issued.org_id.as_str().to_owned(),
                expiration_date: issued.expires_at,
            })
        })
        .await
    }

    /// Revokes a code, named by its reference (an admin) or its id (the link's holder):
    /// permission `user.credential.write` in the user's actual org, unless the caller is the
    /// user.
    ///
    /// # Errors
    /// NotFound, PermissionDenied, FailedPrecondition (already consumed/revoked),
    /// InvalidArgument (neither or both of `codeReference` and `codeId`).
    pub async fn revoke_code(
        &self,
        caller: &Caller,
        org_context: Option<&str>,
        request: RevokeCodeRequest,
    ) -> Result<DetailsResponse, Error> {
        let op = Op::new("passkey_links.revoke_code")
            .caller(caller)
            .user(&request.user_id)
            .code(request.code_id.as_deref().unwrap_or_default())
            .input(request.code_reference.as_deref().unwrap_or_default())
            .input(org_context.unwrap_or_default());
        self.traced(op, async {
            let user_id = UserId::new(request.user_id)?;
            let code = named_code(request.code_reference, request.code_id)?;
            let org_context = admin_context(caller, org_context)?;
            let guard = Guard::on_user(
                caller,
                Permission::UserCredentialWrite,
                &user_id,
                &org_context,
            );
            let decision = RevokeCode {
                user_id: user_id.clone(),
                code: code.clone(),
                org_context,
            };
            let executed = self.execute(&decision, &guard).await?;
            let code_id = named_id(&executed, &user_id, &code)?;
            Ok(DetailsResponse {
                details: executed.details(&StreamId::code(&code_id))?,
            })
        })
        .await
    }
}

/// The code a request names: by reference or by id, exactly one.
pub(super) fn named_code(
    reference: Option<String>,
    code_id: Option<String>,
) -> Result<NamedCode, Error> {
    match (reference, code_id) {
        (Some(reference), None) => Ok(NamedCode::Reference(CodeRef::parse(&reference)?)),
        (None, Some(code_id)) => Ok(NamedCode::Id(CodeId::new(code_id)?)),
        _ => Err(DomainError::InvalidArgument("name the code by codeReference or codeId").into()),
    }
}

/// The id of the code `named` names, as the executed decision's user knows it.
pub(super) fn named_id(
    executed: &Executed,
    user_id: &UserId,
    named: &NamedCode,
) -> Result<CodeId, Error> {
    match named {
        NamedCode::Id(code_id) => Ok(code_id.clone()),
        NamedCode::Reference(reference) => executed
            .view()
            .user(user_id)
            .ok()
            .and_then(|user| user.code_by_reference(reference).cloned())
            .ok_or_else(|| Error::internal("a decided code without its id")),
    }
}
