//! Logging in with a passkey. A login starts for a named user (their passkeys are what the
//! browser may use) or for any discoverable credential, and finishes with an assertion the
//! relying party verified against the login's state: the finish decides, over the credential's
//! claim, its user and the user's org, whether the login stands — and records it either way on
//! the user, in one atomic append against the versions read (a lock that lands between start
//! and finish refuses the login). The caller only ever learns that a refused login failed.

use chrono::{DateTime, Utc};

use crate::domain::credential::{CredentialId, CredentialState};
use crate::domain::login::{
    AssertionVerification, LoginFailure, LoginId, MAX_RECENT_LOGINS, user_handle,
};
use crate::domain::org::OrgState;
use crate::domain::passkey::CeremonyFailure;
use crate::domain::user::{UserEvent, UserKind, UserState, UserStatus};
use crate::domain::{Change, Ctx, Decide, DomainError, Missing, Outcome, View};
use crate::ids::{PasskeyId, UserId};

/// Read a user a login names (appends nothing, refuses nothing: a login start answers the
/// same shape whether the user exists or not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadLoginUser {
    /// The user.
    pub user_id: UserId,
}

impl Decide for ReadLoginUser {
    type State<'a> = &'a UserState;

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        view.user(&self.user_id)
    }

    fn decide(&self, _: &UserState, _: &Ctx<'_>) -> Outcome {
        Outcome::Accept(Vec::new())
    }
}

/// Read what finishing a login with a credential needs — its claim, its user and the user's
/// org — before the relying party verifies the assertion (appends nothing). A credential no
/// user holds is refused here: nothing to verify it with, no user to record on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadLogin {
    /// The credential the assertion names.
    pub credential_id: CredentialId,
}

/// The states a login reads: the credential's claim, its user and the user's org.
fn login_states<'a>(
    view: &View<'a>,
    credential_id: &CredentialId,
) -> Result<
    (
        &'a CredentialState,
        Option<&'a UserState>,
        Option<&'a OrgState>,
    ),
    Missing,
> {
    let claim = view.credential(credential_id)?;
    let user = claim.claimed_by().map(|u| view.user(u)).transpose()?;
    let org = user.map(|user| view.org_of(user)).transpose()?.flatten();
    Ok((claim, user, org))
}

impl Decide for ReadLogin {
    type State<'a> = (
        &'a CredentialState,
        Option<&'a UserState>,
        Option<&'a OrgState>,
    );

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        login_states(view, &self.credential_id)
    }

    fn decide(&self, (claim, user, _): Self::State<'_>, _: &Ctx<'_>) -> Outcome {
        // A removed user is read on: the finish records the refusal on it.
        let known = |user: &UserState| user.status() != UserStatus::Missing;
        if claim.claimed_by().is_some() && user.is_some_and(known) {
            Outcome::Accept(Vec::new())
        } else {
            Outcome::Reject(DomainError::LoginFailed(LoginFailure::UnknownPasskey))
        }
    }
}

/// Finish a login: the relying party's verdict on the assertion (`None` when there was nothing
/// to verify it with: the credential's passkey was removed), judged with the credential's user
/// and org as they stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishPasskeyLogin {
    /// The credential the assertion names.
    pub credential_id: CredentialId,
    /// The user handle the authenticator returned (unsigned: checked, never trusted).
    pub user_handle: Option<Vec<u8>>,
    /// The user the login was started for, if it named one.
    pub named_user: Option<UserId>,
    /// The login.
    pub login_id: LoginId,
    /// When the login's state expires.
    pub login_expires_at: DateTime<Utc>,
    /// The relying party's verdict.
    pub verification: Option<AssertionVerification>,
}

impl FinishPasskeyLogin {
    fn refuse(
        user_id: &UserId,
        passkey_id: Option<&PasskeyId>,
        reason: LoginFailure,
        rejection: Option<CeremonyFailure>,
    ) -> Outcome {
        Outcome::RecordAndRefuse(
            vec![Change::user(
                user_id,
                UserEvent::LoginFailed {
                    passkey_id: passkey_id.cloned(),
                    reason,
                    rejection,
                },
            )],
            DomainError::LoginFailed(reason),
        )
    }

    /// Why the user or org refuses any login now, if they do.
    fn stopped(user: &UserState, org: Option<&OrgState>) -> Option<LoginFailure> {
        if user.kind() != Some(UserKind::Human) {
            return Some(LoginFailure::UserNotHuman);
        }
        if user.personal_data_erased() {
            return Some(LoginFailure::UserErased);
        }
        match user.status() {
            UserStatus::Locked => return Some(LoginFailure::UserLocked),
            UserStatus::Inactive => return Some(LoginFailure::UserInactive),
            UserStatus::Removed | UserStatus::Missing => return Some(LoginFailure::UserRemoved),
            _ => {}
        }
        match org.map(OrgState::require_active) {
            Some(Ok(())) => None,
            _ => Some(LoginFailure::OrgNotActive),
        }
    }
}

impl Decide for FinishPasskeyLogin {
    type State<'a> = (
        &'a CredentialState,
        Option<&'a UserState>,
        Option<&'a OrgState>,
    );

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        login_states(view, &self.credential_id)
    }

    fn decide(&self, (claim, user, org): Self::State<'_>, ctx: &Ctx<'_>) -> Outcome {
        let unknown = Outcome::Reject(DomainError::LoginFailed(LoginFailure::UnknownPasskey));
        let known = user.filter(|u| u.status() != UserStatus::Missing);
        let (Some(user_id), Some(user)) = (claim.claimed_by(), known) else {
            return unknown;
        };
        let Some(passkey) = user.passkey_by_credential(&self.credential_id) else {
            return Self::refuse(user_id, None, LoginFailure::PasskeyRemoved, None);
        };
        let refuse =
            |reason, rejection| Self::refuse(user_id, Some(&passkey.id), reason, rejection);
        let assertion = match &self.verification {
            Some(Ok(assertion)) if assertion.credential_id == self.credential_id => assertion,
            Some(Ok(_)) => {
                return refuse(
                    LoginFailure::AssertionRejected,
                    Some(CeremonyFailure::InvalidResponse),
                );
            }
            Some(Err(rejection)) => {
                return refuse(LoginFailure::AssertionRejected, Some(*rejection));
            }
            None => return refuse(LoginFailure::PasskeyRemoved, None),
        };
        if self
            .user_handle
            .as_ref()
            .is_some_and(|handle| *handle != user_handle(user_id))
        {
            return refuse(LoginFailure::UserHandleMismatch, None);
        }
        if self
            .named_user
            .as_ref()
            .is_some_and(|named| named != user_id)
        {
            return refuse(LoginFailure::NotTheNamedUser, None);
        }
        if ctx.now >= self.login_expires_at {
            return refuse(LoginFailure::StateExpired, None);
        }
        if user.login_used(&self.login_id) {
            return refuse(LoginFailure::StateUsed, None);
        }
        if let Some(reason) = Self::stopped(user, org) {
            return refuse(reason, None);
        }
        if user.recent_logins(ctx.now) >= MAX_RECENT_LOGINS {
            return refuse(LoginFailure::TooManyLogins, None);
        }
        let mut changes = Vec::with_capacity(2);
        let stored = passkey.credential.sign_count;
        // Authenticators that do not count always present 0 (WebAuthn §6.1.1); one that counts
        // must present more than it did last time.
        let presented = assertion.sign_count;
        if (stored != 0 || presented != 0) && presented <= stored {
            let regressed = Change::user(
                user_id,
                UserEvent::PasskeySignCountRegressed {
                    passkey_id: passkey.id.clone(),
                    stored,
                    presented,
                },
            );
            if !ctx.policy.sign_count_regression_accepted() {
                return Outcome::RecordAndRefuse(
                    vec![regressed],
                    DomainError::LoginFailed(LoginFailure::SignCountRegressed),
                );
            }
            changes.push(regressed);
        }
        changes.push(Change::user(
            user_id,
            UserEvent::LoginSucceeded {
                passkey_id: passkey.id.clone(),
                sign_count: presented,
                backup_state: assertion.backup_state,
                login_id: self.login_id.clone(),
                login_expires_at: self.login_expires_at,
            },
        ));
        Outcome::Accept(changes)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use serde_json::json;

    use super::*;
    use crate::domain::passkey::{RegisteredPasskey, VerifiedCredential};
    use crate::domain::test_support::*;
    use crate::domain::{CredentialEvent, PublicKey, VerifiedAssertion};
    use crate::policy::Policy;
    use crate::testing::given;

    fn credential() -> CredentialId {
        CredentialId::new(b"credential-1".to_vec()).unwrap()
    }

    fn passkey_id() -> PasskeyId {
        PasskeyId::new("pk-1").unwrap()
    }

    /// Ada holds one passkey, last used with counter 5.
    fn enrolled() -> Vec<Change> {
        let mut history = world();
        let mut verified =
            VerifiedCredential::new(credential(), PublicKey::new(vec![1, 2, 3]), 5, json!({}));
        verified.user_verified = true;
        history.extend([
            Change::user(
                &user(),
                UserEvent::PasskeyRegistered(RegisteredPasskey {
                    passkey_id: passkey_id(),
                    code_id: code(1),
                    name: "key".into(),
                    credential: verified,
                }),
            ),
            Change::credential(
                &credential(),
                CredentialEvent::Claimed {
                    user_id: user(),
                    org_id: org(),
                    code_id: code(1),
                    passkey_id: Some(passkey_id()),
                },
            ),
        ]);
        history
    }

    fn finish(sign_count: u32) -> FinishPasskeyLogin {
        FinishPasskeyLogin {
            credential_id: credential(),
            user_handle: Some(user_handle(&user())),
            named_user: None,
            login_id: LoginId::new("login-1"),
            login_expires_at: t0() + Duration::minutes(5),
            verification: Some(Ok(VerifiedAssertion::new(
                credential(),
                sign_count,
                false,
                true,
            ))),
        }
    }

    fn failed(reason: LoginFailure) -> Change {
        Change::user(
            &user(),
            UserEvent::LoginFailed {
                passkey_id: Some(passkey_id()),
                reason,
                rejection: None,
            },
        )
    }

    fn succeeded(sign_count: u32, login: &str) -> Change {
        Change::user(
            &user(),
            UserEvent::LoginSucceeded {
                passkey_id: passkey_id(),
                sign_count,
                backup_state: false,
                login_id: LoginId::new(login),
                login_expires_at: t0() + Duration::minutes(5),
            },
        )
    }

    #[test]
    fn a_verified_login_succeeds_once_per_state() {
        given(enrolled())
            .when(&finish(6), t0())
            .then([succeeded(6, "login-1")])
            .when(&finish(7), t0())
            .then_refused(
                [failed(LoginFailure::StateUsed)],
                DomainError::LoginFailed(LoginFailure::StateUsed),
            );
    }

    #[test]
    fn a_locked_user_or_a_stopped_org_refuses_and_records() {
        let mut locked = enrolled();
        locked.push(Change::user(&user(), UserEvent::Locked {}));
        given(locked).when(&finish(6), t0()).then_refused(
            [failed(LoginFailure::UserLocked)],
            DomainError::LoginFailed(LoginFailure::UserLocked),
        );
        let mut stopped = enrolled();
        stopped.push(Change::org(&org(), crate::domain::OrgEvent::Deactivated {}));
        given(stopped).when(&finish(6), t0()).then_refused(
            [failed(LoginFailure::OrgNotActive)],
            DomainError::LoginFailed(LoginFailure::OrgNotActive),
        );
    }

    #[test]
    fn another_users_handle_an_expired_state_or_a_rejection_refuse() {
        let mut foreign = finish(6);
        foreign.user_handle = Some(vec![0; 16]);
        given(enrolled()).when(&foreign, t0()).then_refused(
            [failed(LoginFailure::UserHandleMismatch)],
            DomainError::LoginFailed(LoginFailure::UserHandleMismatch),
        );
        given(enrolled())
            .when(&finish(6), t0() + Duration::minutes(5))
            .then_refused(
                [failed(LoginFailure::StateExpired)],
                DomainError::LoginFailed(LoginFailure::StateExpired),
            );
        let mut rejected = finish(6);
        rejected.verification = Some(Err(CeremonyFailure::ChallengeMismatch));
        given(enrolled()).when(&rejected, t0()).then_refused(
            [Change::user(
                &user(),
                UserEvent::LoginFailed {
                    passkey_id: Some(passkey_id()),
                    reason: LoginFailure::AssertionRejected,
                    rejection: Some(CeremonyFailure::ChallengeMismatch),
                },
            )],
            DomainError::LoginFailed(LoginFailure::AssertionRejected),
        );
    }

    #[test]
    fn an_unknown_credential_records_nothing() {
        given(world())
            .when(&finish(6), t0())
            .then_error(DomainError::LoginFailed(LoginFailure::UnknownPasskey));
    }

    #[test]
    fn a_counter_that_did_not_grow_is_refused_unless_the_policy_accepts_it() {
        let regressed = Change::user(
            &user(),
            UserEvent::PasskeySignCountRegressed {
                passkey_id: passkey_id(),
                stored: 5,
                presented: 5,
            },
        );
        given(enrolled()).when(&finish(5), t0()).then_refused(
            [regressed.clone()],
            DomainError::LoginFailed(LoginFailure::SignCountRegressed),
        );
        given(enrolled())
            .with_policy(Policy::default().with_sign_count_regression_accepted(true))
            .when(&finish(5), t0())
            .then([regressed, succeeded(5, "login-1")]);
    }
}
