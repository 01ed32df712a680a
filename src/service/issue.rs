//! Issuance: the five entry points that create a registration code, returned or emailed.

use super::access::{Guard, admin_context, principal};
use super::deliver::registration_envelope;
use super::engine::Executed;
use super::idempotency::{self, FirstRun, Recorded, result_gone};
use super::{Op, PasskeyLinks};
use crate::domain::code::{CodeState, CodeStatus};
use crate::domain::{Delivery, DeliveryOutcome, DomainError, IssueCode, ReadCode};
use crate::error::{Error, catalogue};
use crate::ids::{CodeId, OrgId, StreamId, UserId};
use crate::link::{Link, LinkValues, UrlTemplate};
use crate::ports::authorizer::{Authorizer, Caller, Permission};
use crate::ports::clock::Clock;
use crate::ports::notifier::Notifier;
use crate::ports::random::{RandomSource, RngSource, source_rng};
use crate::ports::relying_party::RelyingParty;
use crate::secret::Secret;
use crate::store::EventStore;
use crate::wire::{
    AddMyPasswordlessLinkResponse, AddPasswordlessRegistrationRequest,
    AddPasswordlessRegistrationResponse, CreatePasskeyRegistrationLinkRequest,
    CreatePasskeyRegistrationLinkResponse, Details, DetailsResponse, PasskeyRegistrationCode,
    ProtoDuration, SendPasswordlessLinkResponse, SendPasswordlessRegistrationRequest,
    SendPasswordlessRegistrationResponse,
};

/// A code that was issued and appended.
struct Issued {
    executed: Executed,
    code_id: CodeId,
    secret: Secret,
    link: Link,
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
    /// Mgmt v1 AddPasswordlessRegistration: an admin gets a link for a user back. The org
    /// context is the `x-zitadel-orgid` header (default: the caller's org); the permission
    /// `user.credential.write` is checked in the user's actual org.
    ///
    /// # Errors
    /// NotFound (no such user in the org context, or a caller without any grant in the user's
    /// org), PermissionDenied, FailedPrecondition (machine, inactive or locked user, inactive
    /// org), ResourceExhausted (rate limit), InvalidArgument.
    pub async fn add_passwordless_registration(
        &self,
        caller: &Caller,
        org_context: Option<&str>,
        request: AddPasswordlessRegistrationRequest,
    ) -> Result<AddPasswordlessRegistrationResponse, Error> {
        let op = Op::new("passkey_links.add_passwordless_registration")
            .caller(caller)
            .user(&request.user_id)
            .input(org_context.unwrap_or_default());
        self.traced(op, async {
            let user_id = UserId::new(request.user_id)?;
            let org_context = admin_context(caller, org_context)?;
            let guard = Guard::on_user(
                caller,
                Permission::UserCredentialWrite,
                &user_id,
                &org_context,
            );
            self.issue_returned_link(caller, guard, user_id, org_context)
                .await
        })
        .await
    }

    /// Auth v1 AddMyPasswordlessLink: the authenticated user gets a link for themself.
    ///
    /// # Errors
    /// Unauthenticated for the system caller; otherwise as
    /// [`PasskeyLinks::add_passwordless_registration`] without PermissionDenied.
    pub async fn add_my_passwordless_link(
        &self,
        caller: &Caller,
    ) -> Result<AddMyPasswordlessLinkResponse, Error> {
        let op = Op::new("passkey_links.add_my_passwordless_link").caller(caller);
        self.traced(op, async {
            let me = principal(caller)?;
            self.issue_returned_link(
                caller,
                Guard::Open,
                me.user_id.clone(),
                Some(me.org_id.clone()),
            )
            .await
        })
        .await
    }

    /// Mgmt v1 SendPasswordlessRegistration: the link is emailed to the user's verified address
    /// (permission `user.write` in the user's actual org).
    ///
    /// # Errors
    /// As [`PasskeyLinks::add_passwordless_registration`], plus FailedPrecondition without a
    /// verified email and Unavailable when the notifier fails (the code is then never usable).
    pub async fn send_passwordless_registration(
        &self,
        caller: &Caller,
        org_context: Option<&str>,
        request: SendPasswordlessRegistrationRequest,
    ) -> Result<SendPasswordlessRegistrationResponse, Error> {
        let op = Op::new("passkey_links.send_passwordless_registration")
            .caller(caller)
            .user(&request.user_id)
            .input(org_context.unwrap_or_default());
        self.traced(op, async {
            let user_id = UserId::new(request.user_id)?;
            let org_context = admin_context(caller, org_context)?;
            let guard = Guard::on_user(caller, Permission::UserWrite, &user_id, &org_context);
            let details = self
                .issue_and_send(caller, guard, user_id, org_context, None)
                .await?;
            Ok(DetailsResponse { details })
        })
        .await
    }

    /// Auth v1 SendMyPasswordlessLink (ZITADEL's SendPasswordlessLink): the authenticated user
    /// has a link emailed to their verified address.
    ///
    /// # Errors
    /// As [`PasskeyLinks::send_passwordless_registration`] without PermissionDenied.
    pub async fn send_my_passwordless_link(
        &self,
        caller: &Caller,
    ) -> Result<SendPasswordlessLinkResponse, Error> {
        let op = Op::new("passkey_links.send_my_passwordless_link").caller(caller);
        self.traced(op, async {
            let me = principal(caller)?;
            let details = self
                .issue_and_send(
                    caller,
                    Guard::Open,
                    me.user_id.clone(),
                    Some(me.org_id.clone()),
                    None,
                )
                .await?;
            Ok(DetailsResponse { details })
        })
        .await
    }

    /// User v2 CreatePasskeyRegistrationLink: `sendLink` (optionally with a `urlTemplate`) or
    /// `returnCode`. Permission `user.passkey.write` in the user's actual org, unless the caller
    /// is the user.
    ///
    /// # Errors
    /// As the v1 variants; InvalidArgument (`Errors.User.InvalidURLTemplate`) for a bad template
    /// or both media at once.
    pub async fn create_passkey_registration_link(
        &self,
        caller: &Caller,
        request: CreatePasskeyRegistrationLinkRequest,
    ) -> Result<CreatePasskeyRegistrationLinkResponse, Error> {
        let op = Op::new("passkey_links.create_passkey_registration_link")
            .caller(caller)
            .user(&request.user_id)
            .input_json(&request.send_link)
            .input_json(&request.return_code);
        self.traced(op, async {
            let user_id = UserId::new(request.user_id)?;
            let guard = Guard::on_user(caller, Permission::UserPasskeyWrite, &user_id, &None);
            match (request.send_link, request.return_code) {
                (Some(_), Some(_)) => {
                    Err(DomainError::InvalidArgument("choose either sendLink or returnCode").into())
                }
                (None, Some(_)) => {
                    let issued = self
                        .issue(caller, guard, user_id, None, Delivery::Returned)
                        .await?;
                    Ok(CreatePasskeyRegistrationLinkResponse {
                        details: issued.executed.details(&StreamId::code(&issued.code_id))?,
                        code: Some(PasskeyRegistrationCode {
                            id: issued.code_id.as_str().to_owned(),
                            code: issued.secret.expose().to_owned(),
                        }),
                    })
                }
                (send_link, None) => {
                    let template = send_link
                        .and_then(|send| send.url_template)
                        .map(|raw| UrlTemplate::parse(&raw))
                        .transpose()
                        .map_err(DomainError::InvalidUrlTemplate)?;
                    let details = self
                        .issue_and_send(caller, guard, user_id, None, template)
                        .await?;
                    Ok(CreatePasskeyRegistrationLinkResponse {
                        details,
                        code: None,
                    })
                }
            }
        })
        .await
    }

    async fn issue_returned_link(
        &self,
        caller: &Caller,
        guard: Guard,
        user_id: UserId,
        org_context: Option<OrgId>,
    ) -> Result<AddPasswordlessRegistrationResponse, Error> {
        let issued = self
            .issue(caller, guard, user_id, org_context, Delivery::Returned)
            .await?;
        Ok(AddPasswordlessRegistrationResponse {
            details: issued.executed.details(&StreamId::code(&issued.code_id))?,
            link: issued.link.into_exposed(),
            expiration: ProtoDuration(self.config.policy().lifetime()),
        })
    }

    /// Whether the per-user rate limit applies to `caller`.
    fn rate_limited(&self, caller: &Caller) -> bool {
        let scope = self.config.policy().rate_limit_scope();
        match caller {
            Caller::System => scope.system,
            Caller::User(_) => scope.users,
        }
    }

    /// Issues a code (fresh id and secret), then renders its link. An emailed code's secret
    /// derives from the current deployment key and the code id (its key id recorded with it):
    /// whoever holds the key — the outbox's worker, another instance answering a retry —
    /// renders the same link, and the secret is stored nowhere. A returned code's secret is
    /// drawn from the command's randomness (derived from the deployment key under an
    /// idempotency key). The decision has already checked that a template renders to an
    /// allowed origin, before anything was appended.
    async fn issue(
        &self,
        caller: &Caller,
        guard: Guard,
        user_id: UserId,
        org_context: Option<OrgId>,
        delivery: Delivery,
    ) -> Result<Issued, Error> {
        let code_id = CodeId::new(self.call_random().new_id())?;
        let secret_config = self.config.policy().secret();
        let emailed = delivery.emailed().is_some();
        let (secret, key_id) = if emailed {
            let (key_id, key) = self.keys.current();
            (
                key.derive(secret_config, code_id.as_str()),
                Some(key_id.to_owned()),
            )
        } else {
            (
                secret_config.generate(&mut source_rng(&self.call_random())),
                None,
            )
        };
        let template = delivery.emailed().flatten().cloned();
        let decision = IssueCode {
            user_id: user_id.clone(),
            org_context,
            code_id: code_id.clone(),
            secret_digest: secret.digest(),
            delivery,
            rate_limited: self.rate_limited(caller),
            key_id,
        };
        let outcome = || Recorded::Code {
            code_id: code_id.clone(),
        };
        let executed = self.execute_recording(&decision, &guard, outcome).await?;
        let (code_id, secret) = match &executed.first_run {
            None => (code_id, secret),
            Some(first) => self.first_runs_code(&executed, first, code_id, secret, emailed)?,
        };
        let org_id = executed
            .view()
            .user(&user_id)
            .ok()
            .and_then(|user| user.org_id().cloned())
            .ok_or_else(|| Error::internal("issued code without its user's org"))?;
        let values = LinkValues {
            user_id: &user_id,
            org_id: &org_id,
            code_id: &code_id,
            secret: &secret,
        };
        let link = self
            .config
            .links()
            .render(template.as_ref(), &values)
            .map_err(|_| Error::internal("a checked template failed to render"))?;
        Ok(Issued {
            executed,
            code_id,
            secret,
            link,
        })
    }

    /// A retry's code and secret: the first run's, which this process reproduces when it holds
    /// the deployment key the first run derived them from (an emailed code's key is recorded
    /// with it; a returned code's randomness with the key's record). `PKL-SVC-05` otherwise.
    fn first_runs_code(
        &self,
        executed: &Executed,
        first: &FirstRun,
        drawn: CodeId,
        secret: Secret,
        emailed: bool,
    ) -> Result<(CodeId, Secret), Error> {
        let Recorded::Code { code_id } = &first.outcome else {
            return Err(Error::internal("a recalled issuance without its code"));
        };
        let code = executed
            .view()
            .code(code_id)
            .map_err(|_| Error::internal("a recalled issuance without its code's state"))?;
        let issued = code.issued().ok_or_else(result_gone)?;
        let secret_config = self.config.policy().secret();
        let secret = if emailed {
            self.delivery_secret(code_id, code)
                .ok_or_else(result_gone)?
        } else if *code_id == drawn {
            secret
        } else {
            // The first run drew under another (rotated) deployment key.
            let rng =
                idempotency::first_run_rng(&self.keys, &first.key_id).ok_or_else(result_gone)?;
            let source = RngSource(std::sync::Mutex::new(rng));
            if source.new_id() != code_id.as_str() {
                return Err(result_gone());
            }
            secret_config.generate(&mut source_rng(&source))
        };
        if !secret.matches(&issued.secret_digest) {
            return Err(result_gone());
        }
        Ok((code_id.clone(), secret))
    }

    /// The secret of an emailed code: derived from the deployment key recorded with it (or,
    /// for a code recorded without one, whichever key of the ring derives its digest); `None`
    /// when this process holds no such key.
    pub(super) fn delivery_secret(&self, code_id: &CodeId, code: &CodeState) -> Option<Secret> {
        let issued = code.issued()?;
        let config = self.config.policy().secret();
        let derive = |key: &crate::secret::DeliveryKey| key.derive(config, code_id.as_str());
        match code.key_id() {
            Some(key_id) => self.keys.get(key_id).map(derive),
            None => self
                .keys
                .keys()
                .map(|(_, key)| derive(key))
                .find(|secret| secret.matches(&issued.secret_digest)),
        }
        .filter(|secret| secret.matches(&issued.secret_digest))
    }

    /// The send flow: append `requested`; then, synchronously, hand the link to the notifier
    /// and append `sent` or `delivery failed` (a crash in between leaves a code that is never
    /// usable) — or, with the outbox, return and leave delivery to the worker.
    pub(super) async fn issue_and_send(
        &self,
        caller: &Caller,
        guard: Guard,
        user_id: UserId,
        org_context: Option<OrgId>,
        template: Option<UrlTemplate>,
    ) -> Result<Details, Error> {
        let delivery = if self.config.delivers_from_outbox() {
            Delivery::Outbox {
                url_template: template,
            }
        } else {
            Delivery::Email {
                url_template: template,
            }
        };
        let issued = self
            .issue(caller, guard, user_id.clone(), org_context, delivery)
            .await?;
        if self.config.delivers_from_outbox() {
            return issued.executed.details(&StreamId::code(&issued.code_id));
        }
        if issued.executed.first_run.is_some() {
            // A retry of a send that recorded its code: if the first run got as far as
            // recording the delivery, answer with it instead of sending again.
            let read = ReadCode {
                code_id: issued.code_id.clone(),
            };
            let current = self.execute(&read, &Guard::Open).await?;
            let status = current.view().code(&issued.code_id).map(CodeState::status);
            match status {
                Ok(CodeStatus::Requested) => {}
                Ok(CodeStatus::DeliveryFailed) => {
                    return Err(Error::catalogued(
                        catalogue::DELIVERY_FAILED,
                        "the link could not be delivered; it will never work, request a new one",
                    ));
                }
                _ => return current.details(&StreamId::code(&issued.code_id)),
            }
        }
        let view = issued.executed.view();
        let (code, user) = (view.code(&issued.code_id), view.user(&user_id));
        let (Ok(code), Ok(user)) = (code, user) else {
            return Err(Error::internal("issued code without its states"));
        };
        let facts = code
            .issued()
            .ok_or_else(|| Error::internal("issued code without issuance facts"))?;
        let recipient = user
            .verified_email()
            .cloned()
            .ok_or(DomainError::EmailNotVerified)?;
        let org = view.org_of(user).ok().flatten();
        let envelope = registration_envelope(
            &issued.code_id,
            code,
            facts,
            (user, org),
            recipient,
            issued.link,
        );
        let (outcome, failure) = match self.notify(&envelope).await {
            Ok(receipt) => (
                DeliveryOutcome::Sent {
                    message_id: receipt.message_id,
                },
                None,
            ),
            Err(err) => (DeliveryOutcome::Failed(err.failure()), Some(err.failure())),
        };
        // The mail is out: its link must work. A store that fails transiently now is tried
        // again for a while; if it never answers, the answer says the send may be recorded
        // (the operation wrote `requested`), and a retry with the same key records it.
        let recorded = self
            .record_delivery(&issued.code_id, &user_id, outcome)
            .await?;
        if let Some(failure) = failure {
            crate::metrics::delivery(failure.name());
            return Err(Error::delivery_failed(failure));
        }
        crate::metrics::delivery("sent");
        match recorded {
            Some(recorded) => recorded.details(&StreamId::code(&issued.code_id)),
            // A concurrent retry recorded it first.
            None => {
                let read = ReadCode {
                    code_id: issued.code_id.clone(),
                };
                let current = self.execute(&read, &Guard::Open).await?;
                current.details(&StreamId::code(&issued.code_id))
            }
        }
    }
}
