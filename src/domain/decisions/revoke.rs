//! Revoking a code of a user, as seen from an org context.

use crate::domain::code::{CodeEvent, CodeState, CodeStatus};
use crate::domain::user::UserState;
use crate::domain::{Change, Ctx, Decide, DomainError, Missing, Outcome, StreamKey, View};
use crate::ids::{CodeId, OrgId, UserId};

/// Revoke a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeCode {
    /// The code's user.
    pub user_id: UserId,
    /// The code.
    pub code_id: CodeId,
    /// Org context of the admin call.
    pub org_context: Option<OrgId>,
}

impl Decide for RevokeCode {
    type State<'a> = (&'a CodeState, &'a UserState);

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        view.require(&[
            StreamKey::code(&self.code_id),
            StreamKey::user(&self.user_id),
        ])?;
        Ok((view.code(&self.code_id)?, view.user(&self.user_id)?))
    }

    fn decide(&self, (code, user): Self::State<'_>, _: &Ctx<'_>) -> Outcome {
        if let Err(err) = user.locate(self.org_context.as_ref()) {
            return Outcome::Reject(err);
        }
        match code.issued() {
            Some(issued) if issued.user_id == self.user_id => {}
            _ => return Outcome::Reject(DomainError::CodeNotFound),
        }
        match code.status() {
            CodeStatus::Requested | CodeStatus::Usable => {
                Outcome::Accept(vec![Change::code(&self.code_id, CodeEvent::Revoked {})])
            }
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
            code_id: code(1),
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
}
