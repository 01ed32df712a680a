//! Consuming a presented code: checked exactly as a check, then in one atomic decision the code
//! is consumed, the passkey added to the user and its credential id claimed.

use super::check::PresentCode;
use crate::domain::code::{CodeEvent, CodeState};
use crate::domain::credential::{CredentialEvent, CredentialState, NewPasskey};
use crate::domain::org::OrgState;
use crate::domain::user::{UserEvent, UserState};
use crate::domain::{Change, Ctx, Decide, DomainError, Missing, Outcome, View};

/// Consume a presented code: in one decision the code is consumed, the passkey added to the user
/// and its credential id claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumeCode {
    /// The presented code.
    pub presented: PresentCode,
    /// The passkey to register.
    pub passkey: NewPasskey,
}

impl Decide for ConsumeCode {
    type State<'a> = (
        &'a CodeState,
        &'a UserState,
        Option<&'a OrgState>,
        &'a CredentialState,
    );

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        let [code, user] = self.presented.streams();
        view.require(&[code, user, self.passkey.credential_id.stream()])?;
        let user = view.user(&self.presented.user_id)?;
        Ok((
            view.code(&self.presented.code_id)?,
            user,
            view.org_of(user)?,
            view.credential(&self.passkey.credential_id)?,
        ))
    }

    fn decide(&self, (code, user, org, credential): Self::State<'_>, ctx: &Ctx<'_>) -> Outcome {
        if let Err(err) = self.passkey.validate() {
            return Outcome::Reject(err);
        }
        if let Some(refused) = self.presented.refuse(code, user, org, ctx) {
            return refused;
        }
        if credential.claimed_by().is_some() {
            return Outcome::Reject(DomainError::CredentialAlreadyClaimed);
        }
        let Some(org_id) = code.org_id().cloned() else {
            return Outcome::Reject(DomainError::CodeNotFound);
        };
        let PresentCode {
            user_id, code_id, ..
        } = &self.presented;
        let passkey = &self.passkey;
        Outcome::Accept(vec![
            Change::code(
                code_id,
                CodeEvent::CheckSucceeded {
                    credential_id: passkey.credential_id.clone(),
                },
            ),
            Change::user(
                user_id,
                UserEvent::PasskeyAdded {
                    code_id: code_id.clone(),
                    credential_id: passkey.credential_id.clone(),
                    public_key: passkey.public_key.clone(),
                    name: passkey.name.clone(),
                },
            ),
            Change::credential(
                &passkey.credential_id,
                CredentialEvent::Claimed {
                    user_id: user_id.clone(),
                    org_id,
                    code_id: code_id.clone(),
                },
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CheckFailure;
    use crate::domain::test_support::*;
    use crate::ids::{OrgId, UserId};
    use crate::testing::given;

    #[test]
    fn a_consumed_code_is_never_accepted_again() {
        let key = passkey(b"cred-1");
        given(returned_code_history())
            .when(&consume(1, secret(1), key.clone()), t0())
            .then([
                Change::code(
                    &code(1),
                    CodeEvent::CheckSucceeded {
                        credential_id: key.credential_id.clone(),
                    },
                ),
                Change::user(
                    &user(),
                    UserEvent::PasskeyAdded {
                        code_id: code(1),
                        credential_id: key.credential_id.clone(),
                        public_key: key.public_key.clone(),
                        name: key.name.clone(),
                    },
                ),
                Change::credential(
                    &key.credential_id,
                    CredentialEvent::Claimed {
                        user_id: user(),
                        org_id: org(),
                        code_id: code(1),
                    },
                ),
            ])
            .when(&check(1, secret(1)), t0())
            .then_refused(
                [failed(1, CheckFailure::Consumed)],
                DomainError::CodeInvalid(CheckFailure::Consumed),
            )
            .when(&consume(1, secret(1), passkey(b"cred-2")), t0())
            .then_refused(
                [failed(1, CheckFailure::Consumed)],
                DomainError::CodeInvalid(CheckFailure::Consumed),
            );
    }

    #[test]
    fn a_credential_id_claimed_by_another_user_is_rejected() {
        let key = passkey(b"shared-credential");
        let mut history = returned_code_history();
        history.push(Change::credential(
            &key.credential_id,
            CredentialEvent::Claimed {
                user_id: UserId::new("someone-else").unwrap(),
                org_id: OrgId::new("org-2").unwrap(),
                code_id: code(77),
            },
        ));
        given(history)
            .when(&consume(1, secret(1), key), t0())
            .then_error(DomainError::CredentialAlreadyClaimed);
    }
}
