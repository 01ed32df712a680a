//! Registering a passkey with a code, as ZITADEL's v2 RegisterPasskey and
//! VerifyPasskeyRegistration: the code is checked and a ceremony recorded on the user stream;
//! then the relying party's verdict on the browser's response either registers the passkey —
//! code consumed, passkey added, credential id claimed, in one atomic decision — or closes the
//! ceremony. A ceremony is single-use; only a credential the relying party verified is ever
//! registered.

use chrono::{DateTime, Utc};

use super::check::PresentCode;
use crate::domain::code::{CodeEvent, CodeState, Presented, refusal};
use crate::domain::credential::{CredentialEvent, CredentialState};
use crate::domain::org::OrgState;
use crate::domain::passkey::{
    CEREMONY_LIFETIME, CeremonyFailure, CeremonyState, MAX_PASSKEYS, RegisteredPasskey,
    VerifiedCredential,
};
use crate::domain::text::{MAX_NAME_LEN, display_text};
use crate::domain::user::{UserEvent, UserState};
use crate::domain::{
    Change, CheckFailure, Ctx, Decide, DomainError, Missing, Outcome, StreamKey, View,
};
use crate::ids::{CodeId, PasskeyId, UserId};
use crate::secret::{Secret, SecretDigest};

/// Start a registration with a presented code: the code is checked like a check (failures
/// recorded, generic error) and the relying party's ceremony is recorded, open for at most
/// [`CEREMONY_LIFETIME`] and never past the code's expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartPasskeyRegistration {
    /// The presented code.
    pub presented: PresentCode,
    /// The fresh passkey id.
    pub passkey_id: PasskeyId,
    /// The relying party's ceremony state.
    pub ceremony: CeremonyState,
    /// The digest of the secret the browser is answered with (see
    /// [`crate::domain::Ceremony::secret_digest`]).
    pub secret_digest: SecretDigest,
}

impl Decide for StartPasskeyRegistration {
    type State<'a> = (&'a CodeState, &'a UserState, Option<&'a OrgState>);

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        view.require(&self.presented.streams())?;
        let user = view.user(&self.presented.user_id)?;
        Ok((
            view.code(&self.presented.code_id)?,
            user,
            view.org_of(user)?,
        ))
    }

    fn decide(&self, (code, user, org): Self::State<'_>, ctx: &Ctx<'_>) -> Outcome {
        if let Some(refused) = self.presented.refuse(code, user, org, ctx) {
            return refused;
        }
        if user.passkeys().len() >= MAX_PASSKEYS {
            return Outcome::Reject(DomainError::TooManyPasskeys);
        }
        let taken =
            user.passkey(&self.passkey_id).is_some() || user.ceremony(&self.passkey_id).is_some();
        if taken {
            return Outcome::Reject(DomainError::PasskeyAlreadyExists);
        }
        let Some(issued) = code.issued() else {
            return Outcome::Reject(DomainError::CodeNotFound);
        };
        let expires_at = ceremony_expiry(ctx.now, issued.expires_at);
        Outcome::Accept(vec![Change::user(
            &self.presented.user_id,
            UserEvent::PasskeyRegistrationStarted {
                passkey_id: self.passkey_id.clone(),
                code_id: self.presented.code_id.clone(),
                ceremony: self.ceremony.clone(),
                expires_at,
                secret_digest: Some(self.secret_digest),
            },
        )])
    }
}

/// Read the user of a passkey ceremony with the code the ceremony was started with (appends
/// nothing): what finishing the ceremony needs, read before the relying party judges the
/// browser's response. The code is named by the user event that started the ceremony.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadCeremony {
    /// The user.
    pub user_id: UserId,
    /// The passkey whose ceremony is read.
    pub passkey_id: PasskeyId,
}

impl Decide for ReadCeremony {
    type State<'a> = &'a UserState;

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        let user = view.user(&self.user_id)?;
        if let Some(ceremony) = user.ceremony(&self.passkey_id) {
            view.require(&[StreamKey::code(&ceremony.code_id)])?;
        }
        Ok(user)
    }

    /// No open ceremony of the passkey (unknown, finished, or another user's): NotFound.
    fn decide(&self, user: &UserState, _: &Ctx<'_>) -> Outcome {
        match user.locate(None) {
            Ok(_) if user.ceremony(&self.passkey_id).is_some() => Outcome::Accept(Vec::new()),
            Ok(_) | Err(DomainError::UserNotFound) => Outcome::Reject(DomainError::PasskeyNotFound),
            Err(err) => Outcome::Reject(err),
        }
    }
}

/// Finish a registration with the relying party's verdict on the browser's response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishPasskeyRegistration {
    /// The user.
    pub user_id: UserId,
    /// The passkey whose ceremony the response answers.
    pub passkey_id: PasskeyId,
    /// The name for the passkey (1–200 characters).
    pub name: String,
    /// The relying party's verdict.
    pub verification: Result<VerifiedCredential, CeremonyFailure>,
    /// The ceremony's secret, as the browser presents it.
    pub ceremony_secret: Secret,
}

impl FinishPasskeyRegistration {
    fn close(&self, reason: CeremonyFailure) -> Change {
        Change::user(
            &self.user_id,
            UserEvent::PasskeyRegistrationFailed {
                passkey_id: self.passkey_id.clone(),
                reason,
            },
        )
    }

    fn code_of<'a>(&self, user: &'a UserState) -> Option<&'a CodeId> {
        user.ceremony(&self.passkey_id).map(|c| &c.code_id)
    }
}

impl Decide for FinishPasskeyRegistration {
    type State<'a> = (
        &'a UserState,
        Option<&'a CodeState>,
        Option<&'a OrgState>,
        Option<&'a CredentialState>,
    );

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        let user = view.user(&self.user_id)?;
        let mut streams: Vec<StreamKey<'_>> = self
            .code_of(user)
            .map(StreamKey::code)
            .into_iter()
            .collect();
        if let Ok(credential) = &self.verification {
            streams.push(StreamKey::credential(&credential.credential_id));
        }
        streams.extend(user.org_id().map(StreamKey::org));
        view.require(&streams)?;
        let code = self.code_of(user).map(|id| view.code(id)).transpose()?;
        let credential = match &self.verification {
            Ok(credential) => Some(view.credential(&credential.credential_id)?),
            Err(_) => None,
        };
        Ok((user, code, view.org_of(user)?, credential))
    }

    fn decide(&self, (user, code, org, credential): Self::State<'_>, ctx: &Ctx<'_>) -> Outcome {
        let name = match display_text("passkey name", &self.name, MAX_NAME_LEN) {
            Ok(name) => name,
            Err(err) => return Outcome::Reject(err),
        };
        // Unknown, replayed (closed) or another user's ceremony — or not this browser's: a
        // response without the ceremony's secret closes nothing (whoever could read the stored
        // ceremony must not be able to kill it either).
        let (Some(ceremony), Some(code)) = (user.ceremony(&self.passkey_id), code) else {
            return Outcome::Reject(DomainError::PasskeyNotFound);
        };
        if !ceremony.answered_by(&self.ceremony_secret) {
            return Outcome::Reject(DomainError::PasskeyNotFound);
        }
        let refuse = |reason: CeremonyFailure| {
            Outcome::RecordAndRefuse(
                vec![self.close(reason)],
                DomainError::PasskeyVerificationFailed(reason),
            )
        };
        if ctx.now >= ceremony.expires_at {
            return refuse(CeremonyFailure::Expired);
        }
        let verified = match &self.verification {
            Ok(verified) => verified,
            Err(reason) => return refuse(*reason),
        };
        // The ceremony proves the secret was presented; the code must still be live.
        let presented = Presented {
            user_id: &self.user_id,
            secret: None,
        };
        let skew = ctx.policy.clock_skew_tolerance();
        if let Some(reason) = refusal(&presented, code, user, org, ctx.now, skew) {
            let mut changes = vec![self.close(CeremonyFailure::CodeUnusable)];
            if !matches!(reason, CheckFailure::UnknownCode | CheckFailure::Exhausted) {
                changes.push(Change::code(
                    &ceremony.code_id,
                    CodeEvent::CheckFailed { reason },
                ));
            }
            return Outcome::RecordAndRefuse(changes, DomainError::CodeInvalid(reason));
        }
        if credential.is_some_and(|c| c.claimed_by().is_some()) {
            return Outcome::RecordAndRefuse(
                vec![self.close(CeremonyFailure::CredentialClaimed)],
                DomainError::CredentialAlreadyClaimed,
            );
        }
        let Some(org_id) = code.org_id().cloned() else {
            return Outcome::Reject(DomainError::CodeNotFound);
        };
        Outcome::Accept(vec![
            Change::user(
                &self.user_id,
                UserEvent::PasskeyRegistered(RegisteredPasskey {
                    passkey_id: self.passkey_id.clone(),
                    code_id: ceremony.code_id.clone(),
                    name,
                    credential: verified.clone(),
                }),
            ),
            Change::code(
                &ceremony.code_id,
                CodeEvent::CheckSucceeded {
                    credential_id: verified.credential_id.clone(),
                },
            ),
            Change::credential(
                &verified.credential_id,
                CredentialEvent::Claimed {
                    user_id: self.user_id.clone(),
                    org_id,
                    code_id: ceremony.code_id.clone(),
                    passkey_id: Some(self.passkey_id.clone()),
                },
            ),
        ])
    }
}

/// When a ceremony started at `now` for a code expiring at `code_expires` closes.
fn ceremony_expiry(now: DateTime<Utc>, code_expires: DateTime<Utc>) -> DateTime<Utc> {
    (now + CEREMONY_LIFETIME).min(code_expires)
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use serde_json::json;

    use super::*;
    use crate::domain::test_support::*;
    use crate::domain::{CredentialId, PublicKey};
    use crate::ids::OrgId;
    use crate::testing::given;

    fn passkey_id(n: u32) -> PasskeyId {
        PasskeyId::new(format!("passkey-{n}")).unwrap()
    }

    fn ceremony_secret(n: u32) -> Secret {
        Secret::presented(format!("ceremony-secret-{n}-0123456789abcdef"))
    }

    fn start(n: u32, secret: crate::secret::Secret) -> StartPasskeyRegistration {
        StartPasskeyRegistration {
            presented: present(1, secret),
            passkey_id: passkey_id(n),
            ceremony: CeremonyState::new(json!({"challenge": format!("challenge-{n}")})),
            secret_digest: ceremony_secret(n).digest(),
        }
    }

    fn verified(credential: &[u8]) -> VerifiedCredential {
        VerifiedCredential::new(
            CredentialId::new(credential.to_vec()).unwrap(),
            PublicKey::new(vec![0xa5, 1, 2, 3]),
            0,
            json!({"cred": "adapter form"}),
        )
    }

    fn finish(
        n: u32,
        verification: Result<VerifiedCredential, CeremonyFailure>,
    ) -> FinishPasskeyRegistration {
        FinishPasskeyRegistration {
            user_id: user(),
            passkey_id: passkey_id(n),
            name: "iPhone".into(),
            verification,
            ceremony_secret: ceremony_secret(n),
        }
    }

    fn started(n: u32) -> Change {
        Change::user(
            &user(),
            UserEvent::PasskeyRegistrationStarted {
                passkey_id: passkey_id(n),
                code_id: code(1),
                ceremony: CeremonyState::new(json!({"challenge": format!("challenge-{n}")})),
                expires_at: t0() + CEREMONY_LIFETIME,
                secret_digest: Some(ceremony_secret(n).digest()),
            },
        )
    }

    #[test]
    fn a_verified_ceremony_registers_consumes_and_claims_in_one_decision() {
        let credential = verified(b"cred-1");
        given(returned_code_history())
            .when(&start(1, secret(1)), t0())
            .then([started(1)])
            .when(
                &finish(1, Ok(credential.clone())),
                t0() + Duration::minutes(1),
            )
            .then([
                Change::user(
                    &user(),
                    UserEvent::PasskeyRegistered(RegisteredPasskey {
                        passkey_id: passkey_id(1),
                        code_id: code(1),
                        name: "iPhone".into(),
                        credential: credential.clone(),
                    }),
                ),
                Change::code(
                    &code(1),
                    CodeEvent::CheckSucceeded {
                        credential_id: credential.credential_id.clone(),
                    },
                ),
                Change::credential(
                    &credential.credential_id,
                    CredentialEvent::Claimed {
                        user_id: user(),
                        org_id: org(),
                        code_id: code(1),
                        passkey_id: Some(passkey_id(1)),
                    },
                ),
            ])
            // Replaying the verified response: the ceremony is closed, nothing registered.
            .when(&finish(1, Ok(verified(b"cred-1"))), t0())
            .then_error(DomainError::PasskeyNotFound)
            // The consumed code is never accepted again, and starts no further ceremony.
            .when(&check(1, secret(1)), t0())
            .then_refused(
                [failed(1, CheckFailure::Consumed)],
                DomainError::CodeInvalid(CheckFailure::Consumed),
            )
            .when(&start(2, secret(1)), t0())
            .then_refused(
                [failed(1, CheckFailure::Consumed)],
                DomainError::CodeInvalid(CheckFailure::Consumed),
            );
    }

    #[test]
    fn a_wrong_secret_is_recorded_and_starts_nothing() {
        given(returned_code_history())
            .when(&start(1, secret(9)), t0())
            .then_refused(
                [failed(1, CheckFailure::WrongSecret)],
                DomainError::CodeInvalid(CheckFailure::WrongSecret),
            );
    }

    #[test]
    fn a_rejected_response_is_recorded_and_kills_the_ceremony() {
        let reason = CeremonyFailure::ChallengeMismatch;
        given(returned_code_history())
            .when(&start(1, secret(1)), t0())
            .then_any()
            .when(&finish(1, Err(reason)), t0())
            .then_refused(
                [Change::user(
                    &user(),
                    UserEvent::PasskeyRegistrationFailed {
                        passkey_id: passkey_id(1),
                        reason,
                    },
                )],
                DomainError::PasskeyVerificationFailed(reason),
            )
            // Killed: even a good response is refused now; the code itself still works.
            .when(&finish(1, Ok(verified(b"cred-1"))), t0())
            .then_error(DomainError::PasskeyNotFound)
            .when(&start(2, secret(1)), t0())
            .then_any();
    }

    #[test]
    fn a_ceremony_expires_after_five_minutes_and_never_outlives_its_code() {
        given(returned_code_history())
            .when(&start(1, secret(1)), t0())
            .then_any()
            .when(
                &finish(1, Ok(verified(b"cred-1"))),
                t0() + CEREMONY_LIFETIME,
            )
            .then_refused(
                [Change::user(
                    &user(),
                    UserEvent::PasskeyRegistrationFailed {
                        passkey_id: passkey_id(1),
                        reason: CeremonyFailure::Expired,
                    },
                )],
                DomainError::PasskeyVerificationFailed(CeremonyFailure::Expired),
            );
        let code_expires = t0() + Duration::hours(1);
        assert_eq!(
            ceremony_expiry(code_expires - Duration::minutes(1), code_expires),
            code_expires
        );
    }

    #[test]
    fn a_credential_id_claimed_by_another_user_is_refused_and_nothing_registered() {
        let credential = verified(b"shared-credential");
        let mut history = returned_code_history();
        history.push(Change::credential(
            &credential.credential_id,
            CredentialEvent::Claimed {
                user_id: UserId::new("someone-else").unwrap(),
                org_id: OrgId::new("org-2").unwrap(),
                code_id: code(77),
                passkey_id: None,
            },
        ));
        given(history)
            .when(&start(1, secret(1)), t0())
            .then_any()
            .when(&finish(1, Ok(credential)), t0())
            .then_refused(
                [Change::user(
                    &user(),
                    UserEvent::PasskeyRegistrationFailed {
                        passkey_id: passkey_id(1),
                        reason: CeremonyFailure::CredentialClaimed,
                    },
                )],
                DomainError::CredentialAlreadyClaimed,
            );
    }

    #[test]
    fn a_code_killed_during_the_ceremony_registers_nothing() {
        let lock = crate::domain::ChangeUser {
            user_id: user(),
            org_context: None,
            change: crate::domain::UserChange::Lock,
        };
        given(returned_code_history())
            .when(&start(1, secret(1)), t0())
            .then_any()
            .when(&lock, t0())
            .then_any()
            .when(&finish(1, Ok(verified(b"cred-1"))), t0())
            .then_refused(
                [
                    Change::user(
                        &user(),
                        UserEvent::PasskeyRegistrationFailed {
                            passkey_id: passkey_id(1),
                            reason: CeremonyFailure::CodeUnusable,
                        },
                    ),
                    failed(1, CheckFailure::UserNotActive),
                ],
                DomainError::CodeInvalid(CheckFailure::UserNotActive),
            );
    }

    #[test]
    fn only_one_of_two_ceremonies_on_one_code_registers() {
        given(returned_code_history())
            .when(&start(1, secret(1)), t0())
            .then_any()
            .when(&start(2, secret(1)), t0())
            .then_any()
            .when(&finish(1, Ok(verified(b"cred-1"))), t0())
            .then_any()
            .when(&finish(2, Ok(verified(b"cred-2"))), t0())
            .then_refused(
                [
                    Change::user(
                        &user(),
                        UserEvent::PasskeyRegistrationFailed {
                            passkey_id: passkey_id(2),
                            reason: CeremonyFailure::CodeUnusable,
                        },
                    ),
                    failed(1, CheckFailure::Consumed),
                ],
                DomainError::CodeInvalid(CheckFailure::Consumed),
            );
    }

    /// What is stored of a ceremony (its state, a challenge) does not finish it: a response
    /// without the browser's ceremony secret — a reader of the events answering with an
    /// authenticator of their own — is refused as if there were no ceremony, appends nothing,
    /// and leaves the ceremony for its browser.
    #[test]
    fn only_the_ceremony_secret_finishes_a_ceremony() {
        let hijack = |secret: Secret| FinishPasskeyRegistration {
            ceremony_secret: secret,
            ..finish(1, Ok(verified(b"attacker")))
        };
        given(returned_code_history())
            .when(&start(1, secret(1)), t0())
            .then_any()
            .when(&hijack(ceremony_secret(2)), t0())
            .then_error(DomainError::PasskeyNotFound)
            .when(&hijack(Secret::presented("")), t0())
            .then_error(DomainError::PasskeyNotFound)
            .when(
                &FinishPasskeyRegistration {
                    verification: Err(CeremonyFailure::ChallengeMismatch),
                    ..hijack(ceremony_secret(3))
                },
                t0(),
            )
            .then_error(DomainError::PasskeyNotFound)
            .when(&finish(1, Ok(verified(b"cred-1"))), t0())
            .then_any();
    }

    #[test]
    fn a_bad_name_appends_nothing() {
        given(returned_code_history())
            .when(&start(1, secret(1)), t0())
            .then_any()
            .when(
                &FinishPasskeyRegistration {
                    name: String::new(),
                    ..finish(1, Ok(verified(b"cred-1")))
                },
                t0(),
            )
            .then_error(DomainError::InvalidText {
                field: "passkey name",
                max: MAX_NAME_LEN,
            });
    }
}
