//! Bringing a user in step with the embedder's directory: the directory's view (names, email
//! and whether it is verified, language, state) against the user's stream, and only what
//! differs appended — nothing when nothing does, so a full sync runs again at no cost. The
//! change events are the lifecycle's own, so an email change or a lock kills links exactly as
//! the lifecycle rules say.

use super::{MAX_LANGUAGE_LEN, UserEvent, UserKind, UserState, UserStatus};
use crate::domain::org::{DirectoryState, OrgState};
use crate::domain::text::{Email, MAX_NAME_LEN, display_text, validate_text};
use crate::domain::{Change, Ctx, Decide, DomainError, Missing, Outcome, StreamKey, View};
use crate::ids::{OrgId, UserId};

/// Bring a human user in step with the directory (creating it if it is missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnsureHuman {
    /// The user's id (the directory's).
    pub user_id: UserId,
    /// The org it belongs to.
    pub org_id: OrgId,
    /// Login name.
    pub user_name: String,
    /// Display name.
    pub display_name: String,
    /// Email address (unvalidated text).
    pub email: String,
    /// Whether the directory verified it.
    pub email_verified: bool,
    /// Preferred language tag.
    pub preferred_language: Option<String>,
    /// Active, inactive or locked.
    pub state: DirectoryState,
}

/// Bring a machine user in step with the directory (creating it if it is missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnsureMachine {
    /// The user's id (the directory's).
    pub user_id: UserId,
    /// The org it belongs to.
    pub org_id: OrgId,
    /// Login name.
    pub user_name: String,
    /// Display name.
    pub name: String,
    /// Active, inactive or locked.
    pub state: DirectoryState,
}

/// The profile as it is to be stored.
struct Profile {
    user_name: String,
    display_name: String,
    preferred_language: Option<String>,
}

impl Profile {
    fn checked(
        user_name: &str,
        display_name: &str,
        preferred_language: Option<&str>,
    ) -> Result<Self, DomainError> {
        if let Some(language) = preferred_language {
            validate_text("preferred language", language, MAX_LANGUAGE_LEN)?;
        }
        Ok(Self {
            user_name: display_text("user name", user_name, MAX_NAME_LEN)?,
            display_name: display_text("display name", display_name, MAX_NAME_LEN)?,
            preferred_language: preferred_language.map(str::to_owned),
        })
    }

    fn differs_from(&self, user: &UserState) -> bool {
        user.user_name() != self.user_name
            || user.display_name() != self.display_name
            || user.preferred_language() != self.preferred_language.as_deref()
    }

    fn changed(self) -> UserEvent {
        UserEvent::ProfileChanged {
            user_name: self.user_name,
            display_name: self.display_name,
            preferred_language: self.preferred_language,
        }
    }
}

/// The users the decisions read: the user and the org the directory puts it in.
fn user_and_org<'a>(
    view: &View<'a>,
    user_id: &UserId,
    org_id: &OrgId,
) -> Result<(&'a UserState, &'a OrgState), Missing> {
    view.require(&[StreamKey::user(user_id), StreamKey::org(org_id)])?;
    Ok((view.user(user_id)?, view.org(org_id)?))
}

/// An existing user as the directory sees it: in that org, of that kind, not removed.
fn existing(user: &UserState, org_id: &OrgId, kind: UserKind) -> Result<(), DomainError> {
    user.locate(Some(org_id))?;
    if user.status == UserStatus::Removed {
        return Err(DomainError::UserNotFound);
    }
    // An erased person stays erased: the directory must stop listing them.
    if user.erased {
        return Err(DomainError::PersonalDataErased);
    }
    if user.kind != Some(kind) {
        return Err(DomainError::UserStateConflict(
            "the directory has another kind of user",
        ));
    }
    Ok(())
}

/// The lifecycle events from the user's status to the directory's state.
fn state_changes(status: UserStatus, target: DirectoryState) -> Vec<UserEvent> {
    use UserStatus::*;
    match (target, status) {
        (DirectoryState::Active, Locked) => vec![UserEvent::Unlocked {}],
        (DirectoryState::Active, Inactive) => vec![UserEvent::Reactivated {}],
        (DirectoryState::Locked, Missing | Initial | Active) => vec![UserEvent::Locked {}],
        (DirectoryState::Locked, Inactive) => {
            vec![UserEvent::Reactivated {}, UserEvent::Locked {}]
        }
        (DirectoryState::Inactive, Missing | Initial | Active | Locked) => {
            vec![UserEvent::Deactivated {}]
        }
        _ => Vec::new(),
    }
}

fn accept(user_id: &UserId, events: Vec<UserEvent>) -> Outcome {
    Outcome::Accept(
        events
            .into_iter()
            .map(|event| Change::user(user_id, event))
            .collect(),
    )
}

impl Decide for EnsureHuman {
    type State<'a> = (&'a UserState, &'a OrgState);

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        user_and_org(view, &self.user_id, &self.org_id)
    }

    fn decide(&self, (user, org): Self::State<'_>, _: &Ctx<'_>) -> Outcome {
        let events = (|| {
            let profile = Profile::checked(
                &self.user_name,
                &self.display_name,
                self.preferred_language.as_deref(),
            )?;
            let email = Email::parse(self.email.clone())?;
            let mut events = Vec::new();
            if user.status == UserStatus::Missing {
                org.require_active()?;
                events.push(UserEvent::HumanAdded {
                    org_id: self.org_id.clone(),
                    user_name: profile.user_name,
                    display_name: profile.display_name,
                    email,
                    email_verified: self.email_verified,
                    preferred_language: profile.preferred_language,
                });
            } else {
                existing(user, &self.org_id, UserKind::Human)?;
                if profile.differs_from(user) {
                    events.push(profile.changed());
                }
                // A new address — or the directory withdrawing its verification — is an email
                // change: unverified, and every earlier link dies.
                let withdrawn = user.email_verified && !self.email_verified;
                if user.email.as_ref() != Some(&email) || withdrawn {
                    events.push(UserEvent::EmailChanged { email });
                    if self.email_verified {
                        events.push(UserEvent::EmailVerified {});
                    }
                } else if self.email_verified && !user.email_verified {
                    events.push(UserEvent::EmailVerified {});
                }
            }
            events.extend(state_changes(user.status, self.state));
            Ok(events)
        })();
        match events {
            Ok(events) => accept(&self.user_id, events),
            Err(err) => Outcome::Reject(err),
        }
    }
}

impl Decide for EnsureMachine {
    type State<'a> = (&'a UserState, &'a OrgState);

    fn state<'a>(&self, view: &View<'a>) -> Result<Self::State<'a>, Missing> {
        user_and_org(view, &self.user_id, &self.org_id)
    }

    fn decide(&self, (user, org): Self::State<'_>, _: &Ctx<'_>) -> Outcome {
        let events = (|| {
            let profile = Profile::checked(&self.user_name, &self.name, None)?;
            let mut events = Vec::new();
            if user.status == UserStatus::Missing {
                org.require_active()?;
                events.push(UserEvent::MachineAdded {
                    org_id: self.org_id.clone(),
                    user_name: profile.user_name,
                    name: profile.display_name,
                });
            } else {
                existing(user, &self.org_id, UserKind::Machine)?;
                if profile.differs_from(user) {
                    events.push(profile.changed());
                }
            }
            // A new machine user is active at once.
            let status = match user.status {
                UserStatus::Missing => UserStatus::Active,
                status => status,
            };
            events.extend(state_changes(status, self.state));
            Ok(events)
        })();
        match events {
            Ok(events) => accept(&self.user_id, events),
            Err(err) => Outcome::Reject(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CheckFailure;
    use crate::domain::decisions::{CheckCode, Delivery};
    use crate::domain::test_support::*;
    use crate::testing::given;

    /// The directory's view of the fixture's user as it is.
    fn as_is() -> EnsureHuman {
        EnsureHuman {
            user_id: user(),
            org_id: org(),
            user_name: "ada".into(),
            display_name: "Ada Lovelace".into(),
            email: "ada@example.com".into(),
            email_verified: true,
            preferred_language: Some("en".into()),
            state: DirectoryState::Active,
        }
    }

    #[test]
    fn an_unchanged_user_appends_nothing() {
        given(world()).when(&as_is(), t0()).then([]);
    }

    #[test]
    fn a_missing_user_is_created_in_the_directorys_state() {
        let new = EnsureHuman {
            user_id: UserId::new("grace").unwrap(),
            state: DirectoryState::Locked,
            preferred_language: Some("de".into()),
            ..as_is()
        };
        let grace = UserId::new("grace").unwrap();
        given(world())
            .when(&new, t0())
            .then([
                Change::user(
                    &grace,
                    UserEvent::HumanAdded {
                        org_id: org(),
                        user_name: "ada".into(),
                        display_name: "Ada Lovelace".into(),
                        email: Email::parse("ada@example.com").unwrap(),
                        email_verified: true,
                        preferred_language: Some("de".into()),
                    },
                ),
                Change::user(&grace, UserEvent::Locked {}),
            ])
            .when(&new, t0())
            .then([]);
    }

    #[test]
    fn drift_appends_exactly_the_change_events_and_kills_links_as_the_lifecycle_does() {
        let u = user();
        let renamed = EnsureHuman {
            display_name: "Ada L.".into(),
            preferred_language: Some("fr".into()),
            ..as_is()
        };
        let new_address = EnsureHuman {
            email: "ada@new.example.com".into(),
            ..renamed.clone()
        };
        given(returned_code_history())
            .when(&renamed, t0())
            .then([Change::user(
                &u,
                UserEvent::ProfileChanged {
                    user_name: "ada".into(),
                    display_name: "Ada L.".into(),
                    preferred_language: Some("fr".into()),
                },
            )])
            // A rename leaves links alone.
            .when(&check(1, secret(1)), t0())
            .then([])
            .when(&new_address, t0())
            .then([
                Change::user(
                    &u,
                    UserEvent::EmailChanged {
                        email: Email::parse("ada@new.example.com").unwrap(),
                    },
                ),
                Change::user(&u, UserEvent::EmailVerified {}),
            ])
            .when(&check(1, secret(1)), t0())
            .then_refused(
                [failed(1, CheckFailure::EmailChanged)],
                DomainError::CodeInvalid(CheckFailure::EmailChanged),
            )
            .when(&new_address, t0())
            .then([]);
    }

    #[test]
    fn states_follow_the_directory() {
        let u = user();
        let state = |state| EnsureHuman { state, ..as_is() };
        given(returned_code_history())
            .when(&state(DirectoryState::Locked), t0())
            .then([Change::user(&u, UserEvent::Locked {})])
            .when(&state(DirectoryState::Inactive), t0())
            .then([Change::user(&u, UserEvent::Deactivated {})])
            .when(&state(DirectoryState::Locked), t0())
            .then([
                Change::user(&u, UserEvent::Reactivated {}),
                Change::user(&u, UserEvent::Locked {}),
            ])
            .when(&state(DirectoryState::Active), t0())
            .then([Change::user(&u, UserEvent::Unlocked {})])
            // The lock killed the link for good.
            .when(&CheckCode(present(1, secret(1))), t0())
            .then_refused(
                [failed(1, CheckFailure::UserStopped)],
                DomainError::CodeInvalid(CheckFailure::UserStopped),
            )
            .when(&issue(2, Delivery::Returned), t0())
            .then_any();
    }

    #[test]
    fn a_user_elsewhere_or_of_another_kind_is_refused() {
        given(world())
            .when(
                &EnsureHuman {
                    org_id: other_org(),
                    ..as_is()
                },
                t0(),
            )
            .then_error(DomainError::UserNotFound)
            .when(
                &EnsureMachine {
                    user_id: user(),
                    org_id: org(),
                    user_name: "ada".into(),
                    name: "Ada".into(),
                    state: DirectoryState::Active,
                },
                t0(),
            )
            .then_error(DomainError::UserStateConflict(
                "the directory has another kind of user",
            ));
    }
}
