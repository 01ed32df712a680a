//! Passkeys: registering one with a link's code through the WebAuthn relying party (v2
//! RegisterPasskey, VerifyPasskeyRegistration), listing and removing them. (Logging in with one
//! is `login.rs`.)

use super::access::{Guard, admin_context};
use super::idempotency::Recorded;
use super::redeem::present;
use super::{Op, PasskeyLinks};
use crate::domain::{
    CheckCode, DomainError, FinishPasskeyRegistration, MAX_NAME_LEN, PasskeyState, ReadCeremony,
    ReadUser, RemovePasskey, StartPasskeyRegistration, UserState, user_handle,
};
use crate::error::Error;
use crate::ids::{PasskeyId, StreamId, UserId};
use crate::ports::authorizer::{Authorizer, Caller, Permission};
use crate::ports::clock::Clock;
use crate::ports::notifier::{Envelope, Message, Notifier};
use crate::ports::random::RandomSource;
use crate::ports::relying_party::{RegistrationRequest, RelyingParty};
use crate::store::EventStore;
use crate::wire::{
    DetailsResponse, ListDetails, ListPasskeysRequest, ListPasskeysResponse, PasskeySummary,
    RegisterPasskeyRequest, RegisterPasskeyResponse, RemovePasskeyRequest,
    VerifyPasskeyRegistrationRequest,
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
    /// User v2 RegisterPasskey with the code of a registration link: checks the code like
    /// [`PasskeyLinks::check_code`] (failures recorded, generic error), starts the WebAuthn
    /// ceremony and records it on the user. No authentication: the code is the credential.
    ///
    /// # Errors
    /// InvalidArgument (no or unusable code), FailedPrecondition (no relying party, too many
    /// passkeys).
    pub async fn register_passkey(
        &self,
        request: RegisterPasskeyRequest,
    ) -> Result<RegisterPasskeyResponse, Error> {
        let op = Op::new("passkey_links.register_passkey").user(&request.user_id);
        let op = match &request.code {
            Some(code) => op.code(&code.id).input(code.code.digest().as_bytes()),
            None => op,
        };
        self.traced(op, async {
            let code = request.code.ok_or(DomainError::InvalidArgument(
                "a passkey is registered with the code of a registration link",
            ))?;
            let presented = present(request.user_id, code.id, code.code)?;
            let user_id = presented.user_id.clone();
            // Check first, exactly as opening the link does: a bad code answers the same
            // generic error, recorded, before any ceremony exists.
            let checked = self
                .execute(&CheckCode(presented.clone()), &Guard::Open)
                .await?;
            let user = checked
                .view()
                .user(&user_id)
                .map_err(|_| Error::internal("a checked code without its user"))?;
            let started = self
                .relying_party
                .start_registration(&self.registration_request(&user_id, user))
                .await?;
            let passkey_id = PasskeyId::new(self.call_random().new_id())?;
            let (_, key) = self.keys.current();
            let secret = ceremony_secret(key, &user_id, &passkey_id);
            let decision = StartPasskeyRegistration {
                presented,
                passkey_id: passkey_id.clone(),
                ceremony: started.ceremony,
                secret_digest: secret.digest(),
            };
            // The creation options are not secret: a retry answers with the first run's.
            let outcome = || Recorded::Ceremony {
                passkey_id: passkey_id.clone(),
                creation_options: started.creation_options.clone(),
            };
            let executed = self
                .execute_recording(&decision, &Guard::Open, outcome)
                .await?;
            let (passkey_id, options, secret) = match executed.recalled() {
                Some(Recorded::Ceremony {
                    passkey_id,
                    creation_options,
                }) => {
                    // The first run's secret, under whichever of the deployment's keys it
                    // was derived.
                    let stored = executed
                        .view()
                        .user(&user_id)
                        .ok()
                        .and_then(|user| user.ceremony(passkey_id))
                        .and_then(|ceremony| ceremony.secret_digest);
                    let secret = self
                        .keys
                        .keys()
                        .map(|(_, key)| ceremony_secret(key, &user_id, passkey_id))
                        .find(|secret| stored.as_ref().is_some_and(|d| secret.matches(d)))
                        .ok_or_else(super::idempotency::result_gone)?;
                    (passkey_id.clone(), creation_options.clone(), secret)
                }
                Some(_) => {
                    return Err(Error::internal(
                        "a recalled registration without its passkey",
                    ));
                }
                None => (passkey_id, started.creation_options, secret),
            };
            Ok(RegisterPasskeyResponse {
                details: executed.details(&StreamId::user(&user_id))?,
                passkey_id: passkey_id.as_str().to_owned(),
                public_key_credential_creation_options: options,
                ceremony_secret: secret.expose().to_owned(),
            })
        })
        .await
    }

    fn registration_request(&self, user_id: &UserId, user: &UserState) -> RegistrationRequest {
        let name = |preferred: &str| {
            if preferred.is_empty() {
                user_id.as_str().to_owned()
            } else {
                preferred.to_owned()
            }
        };
        RegistrationRequest::new(
            user_handle(user_id),
            name(user.user_name()),
            name(user.display_name()),
            user.passkeys()
                .iter()
                .map(|p| p.credential.credential_id.clone())
                .collect(),
            self.config.user_verification(),
        )
    }

    /// User v2 VerifyPasskeyRegistration: the relying party verifies the browser's
    /// `publicKeyCredential` against the recorded ceremony; then in one atomic append the
    /// passkey is added, the code consumed and the credential id claimed, and the user gets a
    /// security notice. A failed verification is recorded and closes the ceremony.
    ///
    /// # Errors
    /// NotFound (no open ceremony: unknown, finished or another user's), InvalidArgument
    /// (rejected response, bad name, unusable code), AlreadyExists (credential id registered).
    pub async fn verify_passkey_registration(
        &self,
        request: VerifyPasskeyRegistrationRequest,
    ) -> Result<DetailsResponse, Error> {
        let op = Op::new("passkey_links.verify_passkey_registration")
            .user(&request.user_id)
            .input(&request.passkey_id)
            .input(&request.passkey_name)
            .input_json(&request.public_key_credential);
        self.traced(op, async {
            let user_id = UserId::new(request.user_id)?;
            let passkey_id = PasskeyId::new(request.passkey_id)?;
            let passkey_name =
                crate::domain::display_text("passkey name", &request.passkey_name, MAX_NAME_LEN)?;
            super::login::within_size(&request.public_key_credential)?;
            // The user, its org and the ceremony's code, in one read (or none, when cached: the
            // finish below commits only if the user still ends with the event read here). No
            // open ceremony is NotFound — or, for a retry of the run that finished it, that
            // run's answer.
            let read = ReadCeremony {
                user_id: user_id.clone(),
                passkey_id: passkey_id.clone(),
            };
            let read = self.execute(&read, &Guard::Open).await?;
            if read.first_run.is_some() {
                let details = read.details(&StreamId::user(&user_id))?;
                return Ok(DetailsResponse { details });
            }
            let ceremony_secret = request.ceremony_secret.ok_or(DomainError::InvalidArgument(
                "a registration is finished with the ceremonySecret its start answered",
            ))?;
            // Only the browser that started the ceremony holds its secret: anyone else (a
            // reader of the stored ceremony included) finds no ceremony, and nothing is
            // evaluated or recorded.
            let ceremony = read
                .view()
                .user(&user_id)
                .ok()
                .and_then(|user| user.ceremony(&passkey_id))
                .filter(|ceremony| ceremony.answered_by(&ceremony_secret))
                .map(|ceremony| ceremony.state.clone())
                .ok_or(DomainError::PasskeyNotFound)?;
            let verification = self
                .relying_party
                .finish_registration(&ceremony, &request.public_key_credential)
                .await?;
            let decision = FinishPasskeyRegistration {
                user_id: user_id.clone(),
                passkey_id,
                name: passkey_name.clone(),
                verification,
                ceremony_secret,
            };
            let executed = self.execute(&decision, &Guard::Open).await?;
            let details = executed.details(&StreamId::user(&user_id))?;
            let view = executed.view();
            if let Ok(user) = view.user(&user_id) {
                let org = view.org_of(user).ok().flatten();
                let addressee = super::deliver::addressee(user, org);
                self.notify_passkey_added(&user_id, user, addressee, passkey_name, &details)
                    .await;
            }
            Ok(DetailsResponse { details })
        })
        .await
    }

    /// The passkey-added security notice. The passkey is registered; a lost notice must not
    /// turn that into an error. Only the failure class is logged: the notifier's text is not
    /// ours.
    async fn notify_passkey_added(
        &self,
        user_id: &UserId,
        user: &UserState,
        addressee: crate::ports::notifier::Addressee,
        passkey_name: String,
        details: &crate::wire::Details,
    ) {
        let (Some(recipient), Some(org_id)) = (user.verified_email(), user.org_id()) else {
            return;
        };
        let notice = Envelope {
            idempotency_key: format!("passkey-added:{}:{}", user_id, details.sequence),
            message: Message::PasskeyAdded {
                recipient: recipient.clone(),
                user_id: user_id.clone(),
                org_id: org_id.clone(),
                addressee,
                passkey_name,
                added_at: details.change_date,
            },
        };
        if let Err(_err) = self.notifier.deliver(&notice).await {
            #[cfg(feature = "tracing")]
            tracing::warn!(
                user_id = %user_id,
                reason = ?_err.failure(),
                "passkey-added notice not delivered"
            );
        }
    }

    /// User v2 ListPasskeys: the user themself, or a caller with `user.read` in the user's org.
    ///
    /// # Errors
    /// NotFound (no such user for the caller), PermissionDenied.
    pub async fn list_passkeys(
        &self,
        caller: &Caller,
        org_context: Option<&str>,
        request: ListPasskeysRequest,
    ) -> Result<ListPasskeysResponse, Error> {
        let op = Op::new("passkey_links.list_passkeys")
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
            let ready = user.passkeys().iter().map(|passkey| PasskeySummary {
                id: passkey.id.as_str().to_owned(),
                state: PasskeyState::Ready,
                name: passkey.name.clone(),
            });
            let pending = user.ceremonies().map(|ceremony| PasskeySummary {
                id: ceremony.passkey_id.as_str().to_owned(),
                state: PasskeyState::NotReady,
                name: String::new(),
            });
            let result: Vec<PasskeySummary> = ready.chain(pending).collect();
            Ok(ListPasskeysResponse {
                details: ListDetails::of(&details, result.len()),
                result,
            })
        })
        .await
    }

    /// User v2 RemovePasskey: the user themself, or a caller with `user.passkey.write` in the
    /// user's org. The credential id stays claimed: it can never be registered again.
    ///
    /// # Errors
    /// NotFound (user or passkey), PermissionDenied.
    pub async fn remove_passkey(
        &self,
        caller: &Caller,
        org_context: Option<&str>,
        request: RemovePasskeyRequest,
    ) -> Result<DetailsResponse, Error> {
        let op = Op::new("passkey_links.remove_passkey")
            .caller(caller)
            .user(&request.user_id)
            .input(&request.passkey_id)
            .input(org_context.unwrap_or_default());
        self.traced(op, async {
            let user_id = UserId::new(request.user_id)?;
            let passkey_id = PasskeyId::new(request.passkey_id)?;
            let org_context = admin_context(caller, org_context)?;
            let guard =
                Guard::on_user(caller, Permission::UserPasskeyWrite, &user_id, &org_context);
            let decision = RemovePasskey {
                user_id: user_id.clone(),
                passkey_id,
                org_context,
            };
            self.execute_for_details(&decision, &guard, &StreamId::user(&user_id))
                .await
        })
        .await
    }
}

/// What starts a ceremony's secret: derived from a deployment key, the user and the passkey id
/// (so a retry under an idempotency key answers the same one on any instance); only its digest
/// is stored.
fn ceremony_secret(
    key: &crate::secret::DeliveryKey,
    user_id: &UserId,
    passkey_id: &PasskeyId,
) -> crate::secret::Secret {
    use base64::Engine as _;
    let mac = key.mac(
        "passkey-links ceremony secret v1",
        &[user_id.as_str().as_bytes(), passkey_id.as_str().as_bytes()],
    );
    crate::secret::Secret::presented(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac))
}
