//! Creating users and changing their lifecycle.

use super::{MAX_LANGUAGE_LEN, UserEvent, UserKind, UserState, UserStatus};
use crate::domain::org::OrgState;
use crate::domain::text::{Email, MAX_NAME_LEN, display_text, validate_text};
use crate::domain::{Change, Ctx, Decide, DomainError, Missing, Outcome, StreamKey, View};
use crate::ids::{OrgId, UserId};

fn require_new(user: &UserState, org: &OrgState) -> Result<(), DomainError> {
    if user.status != UserStatus::Missing {
        return Err(DomainError::UserAlreadyExists);
    }
    org.require_active()
}

/// Create a human user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddHuman {
    /// The new user's id.
    pub user_id: UserId,
    /// Owning org.
    pub org_id: OrgId,
    /// Login name.
    pub user_name: String,
    /// Display name.
    pub display_name: String,
    /// Email address (unvalidated text; validated by the decision).
    pub email: String,
    /// Whether the email is verified already.
    pub email_verified: bool,
    /// Preferred language tag.
    pub preferred_language: Option<String>,
}

impl Decide for AddHuman {
    type State<'a> = (&'a UserState, &'a OrgState);

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        view.require(&[StreamKey::user(&self.user_id), StreamKey::org(&self.org_id)])?;
        Ok((view.user(&self.user_id)?, view.org(&self.org_id)?))
    }

    fn decide(&self, (user, org): Self::State<'_>, _: &Ctx<'_>) -> Outcome {
        let event = (|| {
            let user_name = display_text("user name", &self.user_name, MAX_NAME_LEN)?;
            let display_name = display_text("display name", &self.display_name, MAX_NAME_LEN)?;
            if let Some(language) = &self.preferred_language {
                validate_text("preferred language", language, MAX_LANGUAGE_LEN)?;
            }
            let email = Email::parse(self.email.clone())?;
            require_new(user, org)?;
            Ok(UserEvent::HumanAdded {
                org_id: self.org_id.clone(),
                user_name,
                display_name,
                email,
                email_verified: self.email_verified,
                preferred_language: self.preferred_language.clone(),
            })
        })();
        event.map(|e| vec![Change::user(&self.user_id, e)]).into()
    }
}

/// Create a machine user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddMachine {
    /// The new user's id.
    pub user_id: UserId,
    /// Owning org.
    pub org_id: OrgId,
    /// Login name.
    pub user_name: String,
    /// Display name.
    pub name: String,
}

impl Decide for AddMachine {
    type State<'a> = (&'a UserState, &'a OrgState);

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        view.require(&[StreamKey::user(&self.user_id), StreamKey::org(&self.org_id)])?;
        Ok((view.user(&self.user_id)?, view.org(&self.org_id)?))
    }

    fn decide(&self, (user, org): Self::State<'_>, _: &Ctx<'_>) -> Outcome {
        let event = (|| {
            let user_name = display_text("user name", &self.user_name, MAX_NAME_LEN)?;
            let name = display_text("name", &self.name, MAX_NAME_LEN)?;
            require_new(user, org)?;
            Ok(UserEvent::MachineAdded {
                org_id: self.org_id.clone(),
                user_name,
                name,
            })
        })();
        event.map(|e| vec![Change::user(&self.user_id, e)]).into()
    }
}

/// A lifecycle change of an existing user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserChange {
    /// Change the email (unverifies it, kills earlier codes).
    ChangeEmail {
        /// New address (unvalidated text).
        email: String,
    },
    /// Verify the current email.
    VerifyEmail,
    /// Deactivate (kills earlier codes).
    Deactivate,
    /// Reactivate (earlier codes stay dead).
    Reactivate,
    /// Lock (kills earlier codes).
    Lock,
    /// Unlock (earlier codes stay dead).
    Unlock,
    /// Remove.
    Remove,
}

impl UserChange {
    /// A short name for logs (never the change's data).
    pub fn name(&self) -> &'static str {
        match self {
            Self::ChangeEmail { .. } => "change_email",
            Self::VerifyEmail => "verify_email",
            Self::Deactivate => "deactivate",
            Self::Reactivate => "reactivate",
            Self::Lock => "lock",
            Self::Unlock => "unlock",
            Self::Remove => "remove",
        }
    }
}

/// Change an existing user, as seen from an org context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeUser {
    /// The user.
    pub user_id: UserId,
    /// Org context of an admin call; `None`: any org (the system).
    pub org_context: Option<OrgId>,
    /// The change.
    pub change: UserChange,
}

impl Decide for ChangeUser {
    type State<'a> = &'a UserState;

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        view.user(&self.user_id)
    }

    fn decide(&self, user: &UserState, _: &Ctx<'_>) -> Outcome {
        use UserStatus::*;
        if let Err(err) = user.locate(self.org_context.as_ref()) {
            return Outcome::Reject(err);
        }
        let conflict = |name| Outcome::Reject(DomainError::UserStateConflict(name));
        let erased = matches!(
            self.change,
            UserChange::ChangeEmail { .. } | UserChange::VerifyEmail
        ) && user.erased;
        if erased {
            return Outcome::Reject(DomainError::PersonalDataErased);
        }
        let event = match &self.change {
            UserChange::ChangeEmail { email } => {
                let email = match Email::parse(email.clone()) {
                    Ok(email) => email,
                    Err(err) => return Outcome::Reject(err),
                };
                if user.kind != Some(UserKind::Human) {
                    return Outcome::Reject(DomainError::UserNotHuman);
                }
                if user.email.as_ref() == Some(&email) {
                    return Outcome::Reject(DomainError::EmailUnchanged);
                }
                UserEvent::EmailChanged { email }
            }
            UserChange::VerifyEmail => {
                if user.kind != Some(UserKind::Human) {
                    return Outcome::Reject(DomainError::UserNotHuman);
                }
                if user.email_verified {
                    return Outcome::Reject(DomainError::EmailUnchanged);
                }
                UserEvent::EmailVerified {}
            }
            UserChange::Deactivate => match user.status {
                Initial | Active | Locked => UserEvent::Deactivated {},
                _ => return conflict("deactivate"),
            },
            UserChange::Reactivate => match user.status {
                Inactive => UserEvent::Reactivated {},
                _ => return conflict("reactivate"),
            },
            UserChange::Lock => match user.status {
                Initial | Active => UserEvent::Locked {},
                _ => return conflict("lock"),
            },
            UserChange::Unlock => match user.status {
                Locked => UserEvent::Unlocked {},
                _ => return conflict("unlock"),
            },
            UserChange::Remove => UserEvent::Removed {},
        };
        Outcome::Accept(vec![Change::user(&self.user_id, event)])
    }
}

/// Erase a user's personal data (GDPR Art. 17): records it, so the service destroys the key the
/// data was sealed under. A removed user's data is erased too; erasing twice appends nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasePersonalData {
    /// The user.
    pub user_id: UserId,
    /// Org context of an admin call; `None`: any org (the system).
    pub org_context: Option<OrgId>,
}

impl Decide for ErasePersonalData {
    type State<'a> = &'a UserState;

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        view.user(&self.user_id)
    }

    fn decide(&self, user: &UserState, _: &Ctx<'_>) -> Outcome {
        let Some(org) = user.org_id.as_ref() else {
            return Outcome::Reject(DomainError::UserNotFound);
        };
        if self
            .org_context
            .as_ref()
            .is_some_and(|context| context != org)
        {
            return Outcome::Reject(DomainError::UserNotFound);
        }
        if user.erased {
            return Outcome::Accept(Vec::new());
        }
        Outcome::Accept(vec![Change::user(
            &self.user_id,
            UserEvent::PersonalDataErased {},
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_support::*;
    use crate::domain::text::ERASED;
    use crate::testing::given;

    fn change(change: UserChange) -> ChangeUser {
        ChangeUser {
            user_id: user(),
            org_context: None,
            change,
        }
    }

    #[test]
    fn user_lifecycle() {
        let u = user();
        given(world())
            .when(&change(UserChange::Lock), t0())
            .then([Change::user(&u, UserEvent::Locked {})])
            .when(&change(UserChange::Lock), t0())
            .then_error(DomainError::UserStateConflict("lock"))
            .when(&change(UserChange::Unlock), t0())
            .then([Change::user(&u, UserEvent::Unlocked {})])
            .when(&change(UserChange::Deactivate), t0())
            .then([Change::user(&u, UserEvent::Deactivated {})])
            .when(&change(UserChange::Reactivate), t0())
            .then([Change::user(&u, UserEvent::Reactivated {})])
            .when(
                &change(UserChange::ChangeEmail {
                    email: "not an email".into(),
                }),
                t0(),
            )
            .then_error(DomainError::InvalidEmail)
            .when(
                &change(UserChange::ChangeEmail {
                    email: "ada@example.com".into(),
                }),
                t0(),
            )
            .then_error(DomainError::EmailUnchanged)
            .when(
                &change(UserChange::ChangeEmail {
                    email: "ada@new.example.com".into(),
                }),
                t0(),
            )
            .then([Change::user(
                &u,
                UserEvent::EmailChanged {
                    email: Email::parse("ada@new.example.com").unwrap(),
                },
            )])
            .when(&change(UserChange::VerifyEmail), t0())
            .then([Change::user(&u, UserEvent::EmailVerified {})])
            .when(&change(UserChange::Remove), t0())
            .then([Change::user(&u, UserEvent::Removed {})])
            .when(&change(UserChange::Remove), t0())
            .then_error(DomainError::UserNotFound);
    }

    #[test]
    fn erasure_forgets_the_person_kills_links_and_happens_once() {
        let u = user();
        let erase = ErasePersonalData {
            user_id: u.clone(),
            org_context: Some(org()),
        };
        let elsewhere = ErasePersonalData {
            org_context: Some(other_org()),
            ..erase.clone()
        };
        given(world())
            .when(&elsewhere, t0())
            .then_error(DomainError::UserNotFound)
            .when(&change(UserChange::Remove), t0())
            .then([Change::user(&u, UserEvent::Removed {})])
            .when(&erase, t0())
            .then([Change::user(&u, UserEvent::PersonalDataErased {})])
            .when(&erase, t0())
            .then([]);
        given(world())
            .when(&erase, t0())
            .then([Change::user(&u, UserEvent::PersonalDataErased {})])
            .when(
                &change(UserChange::ChangeEmail {
                    email: "ada@new.example.com".into(),
                }),
                t0(),
            )
            .then_error(DomainError::PersonalDataErased);
        let mut state = UserState::default();
        for change in world() {
            if let crate::domain::Event::User(event) = change.event() {
                state.apply(event);
            }
        }
        let before = state.version();
        state.apply(&UserEvent::PersonalDataErased {});
        assert_eq!(state.user_name(), ERASED);
        assert_eq!(state.display_name(), ERASED);
        assert_eq!(state.email(), Some(&Email::erased()));
        assert!(state.passkeys().iter().all(|p| p.name == ERASED));
        assert!(state.stopped_since(before), "earlier links die");
        assert_eq!(
            state.require_code_eligible(),
            Err(DomainError::PersonalDataErased)
        );
        given([])
            .when(&erase, t0())
            .then_error(DomainError::UserNotFound);
    }

    #[test]
    fn a_user_outside_the_org_context_is_not_found() {
        given(world())
            .when(
                &ChangeUser {
                    user_id: user(),
                    org_context: Some(other_org()),
                    change: UserChange::Lock,
                },
                t0(),
            )
            .then_error(DomainError::UserNotFound);
    }

    #[test]
    fn users_are_created_only_in_active_orgs() {
        let add = AddHuman {
            user_id: user(),
            org_id: org(),
            user_name: "ada".into(),
            display_name: "Ada Lovelace".into(),
            email: "ada@example.com".into(),
            email_verified: true,
            preferred_language: Some("en".into()),
        };
        given([org_added(&org())])
            .when(&add, t0())
            .then([human_added(&user(), &org(), true)])
            .when(&add, t0())
            .then_error(DomainError::UserAlreadyExists);
        given([])
            .when(&add, t0())
            .then_error(DomainError::OrgNotFound);
    }
}
