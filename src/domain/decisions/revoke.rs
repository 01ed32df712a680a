//! Revoking a code of a user, and delivering again one whose delivery failed — each as seen
//! from an org context, the code named by its id (the link's holder) or by its reference (an
//! admin, who never learns the id).

use crate::domain::code::{CodeEvent, CodeState, CodeStatus};
use crate::domain::org::OrgState;
use crate::domain::user::UserState;
use crate::domain::{
    Change, Ctx, Decide, DomainError, Missing, Outcome, PendingDelivery, StreamKey, View,
    pending_delivery,
};
use crate::ids::{CodeId, CodeRef, OrgId, UserId};

/// How a command names a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedCode {
    /// By its id (from its link).
    Id(CodeId),
    /// By its reference (what read models and admin screens show).
    Reference(CodeRef),
}

impl NamedCode {
    /// The code's id, as `user` knows it (a reference names one of the user's codes of the last
    /// day); `None` when the user has no such code.
    fn id_in(&self, user: &UserState) -> Option<CodeId> {
        match self {
            Self::Id(code_id) => Some(code_id.clone()),
            Self::Reference(reference) => user.code_by_reference(reference).cloned(),
        }
    }
}

/// A code found by how it was named: its id and its state.
type Found<'a> = Option<(CodeId, &'a CodeState)>;

/// The user, and the code the user knows by `named` (`None`: no such code).
fn user_and_code<'a>(
    view: &View<'a>,
    user_id: &UserId,
    named: &NamedCode,
) -> Result<(&'a UserState, Found<'a>), Missing> {
    if let NamedCode::Id(code_id) = named {
        // Both at once: the id is known without the user.
        view.require(&[StreamKey::code(code_id), StreamKey::user(user_id)])?;
    }
    let user = view.user(user_id)?;
    let Some(code_id) = named.id_in(user) else {
        return Ok((user, None));
    };
    let code = view.code(&code_id)?;
    Ok((user, Some((code_id, code))))
}

/// Revoke a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeCode {
    /// The code's user.
    pub user_id: UserId,
    /// The code.
    pub code: NamedCode,
    /// Org context of the admin call.
    pub org_context: Option<OrgId>,
}

impl Decide for RevokeCode {
    type State<'a> = (&'a UserState, Found<'a>);

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        user_and_code(view, &self.user_id, &self.code)
    }

    fn decide(&self, (user, code): Self::State<'_>, _: &Ctx<'_>) -> Outcome {
        if let Err(err) = user.locate(self.org_context.as_ref()) {
            return Outcome::Reject(err);
        }
        let Some((code_id, code)) = code else {
            return Outcome::Reject(DomainError::CodeNotFound);
        };
        match code.issued() {
            Some(issued) if issued.user_id == self.user_id => {}
            _ => return Outcome::Reject(DomainError::CodeNotFound),
        }
        match code.status() {
            CodeStatus::Requested | CodeStatus::Usable | CodeStatus::DeliveryFailed => {
                Outcome::Accept(vec![Change::code(&code_id, CodeEvent::Revoked {})])
            }
            _ => Outcome::Reject(DomainError::CodeClosed),
        }
    }
}

/// Deliver again a code whose delivery failed — the same link, to the same verified address —
/// if it would still work once sent (unexpired, its user and org as they were).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedeliverCode {
    /// The code's user.
    pub user_id: UserId,
    /// The code.
    pub code: NamedCode,
    /// Org context of the admin call.
    pub org_context: Option<OrgId>,
    /// Whether the outbox delivers it (else the request does).
    pub outbox: bool,
}

impl Decide for RedeliverCode {
    type State<'a> = (&'a UserState, Found<'a>, Option<&'a OrgState>);

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        let (user, code) = user_and_code(view, &self.user_id, &self.code)?;
        Ok((user, code, view.org_of(user)?))
    }

    fn decide(&self, (user, code, org): Self::State<'_>, ctx: &Ctx<'_>) -> Outcome {
        if let Err(err) = user.locate(self.org_context.as_ref()) {
            return Outcome::Reject(err);
        }
        let Some((code_id, code)) = code else {
            return Outcome::Reject(DomainError::CodeNotFound);
        };
        match code.issued() {
            Some(issued) if issued.user_id == self.user_id => {}
            _ => return Outcome::Reject(DomainError::CodeNotFound),
        }
        if code.status() != CodeStatus::DeliveryFailed {
            return Outcome::Reject(DomainError::CodeClosed);
        }
        let event = CodeEvent::RedeliveryRequested {
            outbox: self.outbox,
        };
        let mut again = code.clone();
        again.apply(&event);
        let skew = ctx.policy.clock_skew_tolerance();
        match pending_delivery(&again, Some(user), org, ctx.now, skew) {
            PendingDelivery::Send => Outcome::Accept(vec![Change::code(&code_id, event)]),
            _ => Outcome::Reject(DomainError::CodeClosed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CheckFailure;
    use crate::domain::test_support::*;
    use crate::testing::given;

    #[test]
    fn revoked_codes_are_refused() {
        let revoke = |org_context| RevokeCode {
            user_id: user(),
            code: NamedCode::Id(code(1)),
            org_context,
        };
        given(returned_code_history())
            .when(&revoke(Some(org())), t0())
            .then([Change::code(&code(1), CodeEvent::Revoked {})])
            .when(&check(1, secret(1)), t0())
            .then_refused(
                [failed(1, CheckFailure::Revoked)],
                DomainError::CodeInvalid(CheckFailure::Revoked),
            )
            .when(&revoke(Some(org())), t0())
            .then_error(DomainError::CodeClosed);
        given(returned_code_history())
            .when(&revoke(Some(other_org())), t0())
            .then_error(DomainError::UserNotFound);
    }

    #[test]
    fn a_reference_names_the_users_own_code() {
        let by_reference = |reference| RevokeCode {
            user_id: user(),
            code: NamedCode::Reference(reference),
            org_context: None,
        };
        given(returned_code_history())
            .when(&by_reference(code(2).reference()), t0())
            .then_error(DomainError::CodeNotFound)
            .when(&by_reference(code(1).reference()), t0())
            .then([Change::code(&code(1), CodeEvent::Revoked {})]);
    }
}
