//! How each decision loads faster: the [`LoadHints`] the service gives the repository per
//! decision. A decision says what it reads and decides ([`crate::domain::Decide`]); what may be
//! read ahead, presumed empty, or kept for the next step of the same command is the service's
//! knowledge, here, with the payload field names the store follows (pinned by the tests below).

use crate::domain::{
    AddHuman, AddMachine, AddOrg, ChangeOrg, ChangeUser, CheckCode, Delivery, EnsureHuman,
    EnsureMachine, EnsureOrg, ErasePersonalData, FinishPasskeyLogin, FinishPasskeyRegistration,
    IssueCode, ReadCeremony, ReadCode, ReadDeadLink, ReadDelivery, ReadLogin, ReadLoginUser,
    ReadOrg, ReadUser, ReadUserAndOrg, RecordDelivery, RedeliverCode, RemovePasskey, RevokeCode,
    StartPasskeyRegistration,
};
use crate::ids::{AggregateKind, StreamId};
use crate::repo::LoadHints;
use crate::store::Follow;

/// The payload field of a user's first event (human or machine added) naming its org.
const USER_ORG_FIELD: &str = "orgId";
/// The stored type of the user event that starts a passkey ceremony …
const CEREMONY_STARTED: &str = "user.human.passwordless.token.added";
/// … its field naming the passkey …
const CEREMONY_PASSKEY_FIELD: &str = "passkeyId";
/// … and its field naming the code.
const CEREMONY_CODE_FIELD: &str = "codeId";
/// The payload fields of a credential id's claim naming its user and the user's org.
const CLAIM_USER_FIELD: &str = "userId";
/// See [`CLAIM_USER_FIELD`].
const CLAIM_ORG_FIELD: &str = "orgId";

/// A decision's load hints.
pub(crate) trait Hinted {
    /// Beyond what every decision gets ([`base`]): none.
    fn hints(&self) -> LoadHints {
        base()
    }
}

/// What every decision gets: a user read without a cached state brings its org along (decisions
/// that read a user read its org next).
fn base() -> LoadHints {
    LoadHints {
        follow_kind: vec![(
            AggregateKind::User,
            Follow::new(0, USER_ORG_FIELD, AggregateKind::Org),
        )],
        ..LoadHints::default()
    }
}

impl Hinted for IssueCode {
    fn hints(&self) -> LoadHints {
        let code = StreamId::code(&self.code_id);
        LoadHints {
            // The org the caller names is, almost always, the user's.
            prefetch: self.org_context.iter().map(StreamId::org).collect(),
            // The code id is drawn fresh for this decision.
            fresh: vec![code.clone()],
            // A code mailed now has its delivery recorded right after.
            read_again: match self.delivery {
                Delivery::Email { .. } => vec![code],
                Delivery::Returned | Delivery::Outbox { .. } => Vec::new(),
            },
            ..base()
        }
    }
}

impl Hinted for ReadCeremony {
    fn hints(&self) -> LoadHints {
        let started = Follow::latest(
            0,
            CEREMONY_CODE_FIELD,
            AggregateKind::Code,
            CEREMONY_STARTED,
            CEREMONY_PASSKEY_FIELD,
            self.passkey_id.as_str(),
        );
        LoadHints {
            follow: vec![(StreamId::user(&self.user_id), started)],
            // The finish that follows decides on the same user, validated when it commits.
            read_for_commit: true,
            ..base()
        }
    }
}

impl Hinted for FinishPasskeyRegistration {
    fn hints(&self) -> LoadHints {
        LoadHints {
            // A verified credential id is claimed for the first time.
            fresh: self
                .verification
                .as_ref()
                .map(|credential| credential.credential_id.stream())
                .into_iter()
                .collect(),
            ..base()
        }
    }
}

impl Hinted for ReadLogin {
    fn hints(&self) -> LoadHints {
        let mut hints = base();
        // A claim names its user and the user's org: all three in one read.
        hints.follow_kind.extend([
            (
                AggregateKind::Credential,
                Follow::new(0, CLAIM_USER_FIELD, AggregateKind::User),
            ),
            (
                AggregateKind::Credential,
                Follow::new(0, CLAIM_ORG_FIELD, AggregateKind::Org),
            ),
        ]);
        LoadHints {
            // The finish that follows decides on the same claim, user and org, validated when
            // it commits.
            read_for_commit: true,
            ..hints
        }
    }
}

impl Hinted for ReadLoginUser {
    fn hints(&self) -> LoadHints {
        LoadHints {
            // Only lists the credentials a login may use: the finish judges what stands.
            read_for_commit: true,
            ..base()
        }
    }
}

macro_rules! base_hints {
    ($($decision:ty),* $(,)?) => {$(impl Hinted for $decision {})*};
}

base_hints!(
    AddHuman,
    AddMachine,
    AddOrg,
    ChangeOrg,
    ChangeUser,
    CheckCode,
    EnsureHuman,
    EnsureMachine,
    EnsureOrg,
    ErasePersonalData,
    FinishPasskeyLogin,
    ReadCode,
    ReadDelivery,
    ReadOrg,
    ReadUser,
    ReadUserAndOrg,
    ReadDeadLink,
    RecordDelivery,
    RedeliverCode,
    RemovePasskey,
    RevokeCode,
    StartPasskeyRegistration,
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_support::{code, org, t0};
    use crate::domain::{CeremonyState, Email, Event, UserEvent};
    use crate::ids::PasskeyId;

    fn encoded(event: UserEvent) -> (String, serde_json::Value) {
        Event::User(event).encode().unwrap()
    }

    /// A store names a user's org from this field of its first event, whatever kind of user.
    #[test]
    fn a_users_first_event_names_its_org_in_the_org_field() {
        let added = [
            UserEvent::HumanAdded {
                org_id: org(),
                user_name: "ada".into(),
                display_name: "Ada".into(),
                email: Email::parse("ada@example.com").unwrap(),
                email_verified: true,
                preferred_language: None,
            },
            UserEvent::MachineAdded {
                org_id: org(),
                user_name: "bot".into(),
                name: "Bot".into(),
            },
        ];
        for event in added {
            let (_, payload) = encoded(event);
            assert_eq!(
                payload.get(USER_ORG_FIELD).and_then(|id| id.as_str()),
                Some(org().as_str())
            );
        }
    }

    /// A credential id's claim names its user and org in the fields a login's read follows.
    #[test]
    fn a_claim_names_its_user_and_org_where_the_follow_looks() {
        use crate::domain::CredentialEvent;
        let (_, payload) = Event::Credential(CredentialEvent::Claimed {
            user_id: crate::domain::test_support::user(),
            org_id: org(),
            code_id: code(1),
            passkey_id: None,
        })
        .encode()
        .unwrap();
        assert_eq!(
            payload.get(CLAIM_USER_FIELD).and_then(|v| v.as_str()),
            Some(crate::domain::test_support::user().as_str())
        );
        assert_eq!(
            payload.get(CLAIM_ORG_FIELD).and_then(|v| v.as_str()),
            Some(org().as_str())
        );
    }

    /// A ceremony's start is stored under the type the follow looks for, naming its passkey
    /// and its code in the fields it reads.
    #[test]
    fn a_ceremony_start_names_its_passkey_and_code_where_the_follow_looks() {
        let passkey_id = PasskeyId::new("pk1").unwrap();
        let (event_type, payload) = encoded(UserEvent::PasskeyRegistrationStarted {
            passkey_id: passkey_id.clone(),
            code_id: code(1),
            ceremony: CeremonyState::new(serde_json::json!({})),
            expires_at: t0(),
            secret_digest: None,
        });
        assert_eq!(event_type, CEREMONY_STARTED);
        assert_eq!(
            payload.get(CEREMONY_PASSKEY_FIELD).and_then(|v| v.as_str()),
            Some(passkey_id.as_str())
        );
        assert_eq!(
            payload.get(CEREMONY_CODE_FIELD).and_then(|v| v.as_str()),
            Some(code(1).as_str())
        );
    }

    /// A store finds a ceremony's code by the type and fields of the user event that started
    /// it: what reading the ceremony follows matches that event as stored, and no other
    /// passkey's.
    #[test]
    fn reading_a_ceremony_follows_the_event_that_started_it() {
        use crate::store::{EventId, RecordedEvent};
        let started = |n: u32| UserEvent::PasskeyRegistrationStarted {
            passkey_id: PasskeyId::new(format!("pk{n}")).unwrap(),
            code_id: code(1),
            ceremony: CeremonyState::new(serde_json::json!({})),
            expires_at: t0(),
            secret_digest: None,
        };
        let (event_type, payload) = encoded(started(1));
        let user = crate::domain::test_support::user();
        let recorded = RecordedEvent {
            stream: StreamId::user(&user),
            version: 7,
            position: 70,
            id: EventId::random(),
            event_type,
            schema_version: 1,
            payload,
            recorded_at: t0(),
        };
        let follows = |n: u32| {
            ReadCeremony {
                user_id: user.clone(),
                passkey_id: PasskeyId::new(format!("pk{n}")).unwrap(),
            }
            .hints()
            .follow
        };
        let [(source, follow)] = &follows(1)[..] else {
            panic!("one follow");
        };
        assert_eq!(source, &StreamId::user(&user));
        assert_eq!(
            follow.named_by(std::slice::from_ref(&recorded)),
            Some(StreamId::code(&code(1)))
        );
        assert_eq!(follows(2)[0].1.named_by(&[recorded]), None);
    }
}
