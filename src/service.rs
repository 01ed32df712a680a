//! The application service: the only place that does I/O. Every entry point loads the streams
//! its command names, authorizes, decides (pure), and appends with the versions it decided on,
//! retrying a bounded number of times when a concurrent writer got there first.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::domain::code::{Delivery, DeliveryOutcome, IssueLink, PresentCode};
use crate::domain::org::OrgCommand;
use crate::domain::user::{AddHuman, UserCommand};
use crate::domain::{self, Command, Decision, DomainError, Event, State, World};
use crate::error::{Error, ErrorKind};
use crate::ids::{AggregateKind, CodeId, OrgId, StreamId, UserId};
use crate::link::{Link, LinkConfig, LinkValues, UrlTemplate};
use crate::policy::Policy;
use crate::ports::authorizer::{Authorizer, Caller, Permission, Principal};
use crate::ports::clock::{Clock, SystemClock, truncate_to_micros};
use crate::ports::notifier::{Envelope, Message, Notifier};
use crate::ports::random::{OsRandom, RandomSource, SourceRng};
use crate::ports::store::{EventStore, ExpectedVersion, NewEvent, StoreError, StreamAppend};
use crate::secret::Secret;
use crate::wire::{
    AddHumanUserRequest, AddMachineUserRequest, AddMyPasswordlessLinkResponse, AddOrgRequest,
    AddOrgResponse, AddPasswordlessRegistrationRequest, AddPasswordlessRegistrationResponse,
    AddUserResponse, CheckLinkRequest, CheckLinkResponse, ConsumeLinkRequest,
    CreatePasskeyRegistrationLinkRequest, CreatePasskeyRegistrationLinkResponse, Details,
    DetailsResponse, PasskeyRegistrationCode, ProtoDuration, RevokeLinkRequest,
    SendPasswordlessLinkResponse, SendPasswordlessRegistrationRequest,
    SendPasswordlessRegistrationResponse,
};

/// Service configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where links point.
    pub links: LinkConfig,
    /// Issuance and check rules.
    pub policy: Policy,
    /// Attempts per command when concurrent writers conflict (≥ 1).
    pub max_attempts: u32,
    /// Folded org and user states kept in memory, so loading reads only new events.
    pub state_cache_capacity: usize,
}

impl Config {
    /// Default policy, 8 attempts, 10,000 cached states.
    pub fn new(links: LinkConfig) -> Self {
        Self {
            links,
            policy: Policy::default(),
            max_attempts: 8,
            state_cache_capacity: 10_000,
        }
    }

    /// Replaces the policy.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }
}

/// Timestamps of a stream's first and last events, for `details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct StreamMeta {
    created_at: Option<DateTime<Utc>>,
    changed_at: Option<DateTime<Utc>>,
}

impl StreamMeta {
    fn touch(&mut self, at: DateTime<Utc>) {
        self.created_at.get_or_insert(at);
        self.changed_at = Some(at);
    }
}

/// Stream timestamps of the few streams one command touches (a short list beats hashing).
#[derive(Debug, Default)]
struct Metas(Vec<(StreamId, StreamMeta)>);

impl Metas {
    fn get(&self, stream: &StreamId) -> StreamMeta {
        self.0
            .iter()
            .find(|(s, _)| s == stream)
            .map(|(_, meta)| *meta)
            .unwrap_or_default()
    }

    fn set(&mut self, stream: &StreamId, meta: StreamMeta) {
        match self.0.iter_mut().find(|(s, _)| s == stream) {
            Some(entry) => entry.1 = meta,
            None => self.0.push((stream.clone(), meta)),
        }
    }

    fn touch(&mut self, stream: &StreamId, at: DateTime<Utc>) {
        let mut meta = self.get(stream);
        meta.touch(at);
        self.set(stream, meta);
    }
}

/// Folded states of growing streams (orgs, users) by stream, so a load reads only the events
/// after the cached version. Bounded: when full it starts over, which costs one full read per
/// stream, never correctness (stored events are immutable, and only states of stored prefixes
/// are ever cached).
#[derive(Debug, Default)]
struct StateCache {
    entries: Mutex<HashMap<StreamId, (State, StreamMeta)>>,
}

impl StateCache {
    fn cacheable(stream: &StreamId) -> bool {
        matches!(stream.kind, AggregateKind::Org | AggregateKind::User)
    }

    fn get(&self, stream: &StreamId) -> Option<(State, StreamMeta)> {
        if !Self::cacheable(stream) {
            return None;
        }
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(stream)
            .cloned()
    }

    fn put(&self, stream: &StreamId, state: State, meta: StreamMeta, capacity: usize) {
        if !Self::cacheable(stream) || capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = entries.get_mut(stream) {
            if entry.0.version() < state.version() {
                *entry = (state, meta);
            }
            return;
        }
        if entries.len() >= capacity {
            entries.clear();
        }
        entries.insert(stream.clone(), (state, meta));
    }
}

/// Who may run a command, checked after loading and before deciding.
enum Guard {
    /// Self-service, the system, or a redemption (the code is the credential).
    Open,
    /// `principal` needs `permission` in the actual org of `user_id` as seen from `org_context`.
    OnUser {
        principal: Principal,
        permission: Permission,
        user_id: UserId,
        org_context: Option<OrgId>,
    },
    /// `principal` needs `permission` in `org_id`.
    OnOrg {
        principal: Principal,
        permission: Permission,
        org_id: OrgId,
    },
}

/// States and timestamps after a command was appended.
struct Executed<T> {
    world: World,
    metas: Metas,
    prepared: T,
}

impl<T> Executed<T> {
    fn details(&self, stream: &StreamId) -> Result<Details, Error> {
        let meta = self.metas.get(stream);
        let resource_owner = match stream.kind {
            AggregateKind::Org => Some(stream.id.clone()),
            _ => self
                .world
                .resource_owner(stream)
                .map(|org| org.as_str().to_owned()),
        };
        match (meta.created_at, meta.changed_at, resource_owner) {
            (Some(creation_date), Some(change_date), Some(resource_owner)) => Ok(Details {
                sequence: self.world.version(stream),
                creation_date,
                change_date,
                resource_owner,
            }),
            _ => Err(internal(format!("no details for stream {stream}"))),
        }
    }
}

fn internal(message: String) -> Error {
    Error::new(
        ErrorKind::Internal,
        "PKL-SVC-01",
        "Errors.Internal",
        message,
    )
}

fn delivery_unavailable() -> Error {
    Error::new(
        ErrorKind::Unavailable,
        "PKL-NOTIFY-01",
        "Errors.Notification.Failed",
        "the link could not be delivered; it will never work, request a new one",
    )
}

fn too_many_conflicts() -> Error {
    Error::new(
        ErrorKind::Aborted,
        "PKL-SVC-02",
        "Errors.Concurrency",
        "too many concurrent changes, retry",
    )
}

fn parse_context(org_context: Option<&str>) -> Result<Option<OrgId>, Error> {
    org_context.map(OrgId::new).transpose().map_err(Error::from)
}

/// The passkey registration link service.
///
/// Generic over its ports; `C` and `R` default to the system clock and the OS CSPRNG.
///
/// ```
/// use passkey_links::prelude::*;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let links = LinkConfig::new(BaseUrl::parse("https://id.example.com").unwrap());
/// let service = PasskeyLinks::new(
///     InMemoryStore::new(),
///     RecordingNotifier::new(),
///     StaticGrants::new(),
///     Config::new(links),
/// );
/// let org = service
///     .add_org(&Caller::System, AddOrgRequest { name: "ACME".into(), ..Default::default() })
///     .await
///     .unwrap();
/// let user = service
///     .add_human_user(
///         &Caller::System,
///         Some(&org.org_id),
///         AddHumanUserRequest {
///             user_name: "ada".into(),
///             display_name: "Ada".into(),
///             email: "ada@example.com".into(),
///             is_email_verified: true,
///             ..Default::default()
///         },
///     )
///     .await
///     .unwrap();
/// let me = Caller::user(
///     UserId::new(user.user_id).unwrap(),
///     OrgId::new(org.org_id).unwrap(),
/// );
/// let response = service.add_my_passwordless_link(&me).await.unwrap();
/// assert!(response.link.starts_with("https://id.example.com/ui/login/login/passwordless/init?"));
/// assert_eq!(response.expiration.to_string(), "3600s");
/// assert_eq!(response.details.sequence, 1);
/// # });
/// ```
pub struct PasskeyLinks<S, N, A, C = SystemClock, R = OsRandom> {
    store: S,
    notifier: N,
    authorizer: A,
    clock: C,
    random: R,
    config: Config,
    cache: StateCache,
}

impl<S, N, A, C, R> std::fmt::Debug for PasskeyLinks<S, N, A, C, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasskeyLinks")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, N, A> PasskeyLinks<S, N, A>
where
    S: EventStore,
    N: Notifier,
    A: Authorizer,
{
    /// A service on the system clock and the OS CSPRNG.
    pub fn new(store: S, notifier: N, authorizer: A, config: Config) -> Self {
        Self {
            store,
            notifier,
            authorizer,
            clock: SystemClock,
            random: OsRandom,
            config,
            cache: StateCache::default(),
        }
    }
}

impl<S, N, A, C, R> PasskeyLinks<S, N, A, C, R>
where
    S: EventStore,
    N: Notifier,
    A: Authorizer,
    C: Clock,
    R: RandomSource,
{
    /// Replaces the clock.
    pub fn with_clock<C2: Clock>(self, clock: C2) -> PasskeyLinks<S, N, A, C2, R> {
        PasskeyLinks {
            store: self.store,
            notifier: self.notifier,
            authorizer: self.authorizer,
            clock,
            random: self.random,
            config: self.config,
            cache: self.cache,
        }
    }

    /// Replaces the id and secret source.
    pub fn with_random<R2: RandomSource>(self, random: R2) -> PasskeyLinks<S, N, A, C, R2> {
        PasskeyLinks {
            store: self.store,
            notifier: self.notifier,
            authorizer: self.authorizer,
            clock: self.clock,
            random,
            config: self.config,
            cache: self.cache,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The event store.
    pub fn store(&self) -> &S {
        &self.store
    }

    fn now(&self) -> DateTime<Utc> {
        truncate_to_micros(self.clock.now())
    }

    // ---- link issuance -------------------------------------------------------------------

    /// Mgmt v1 AddPasswordlessRegistration: an admin gets a link for a user back. The org
    /// context is the `x-zitadel-orgid` header (default: the caller's org); the permission
    /// `user.credential.write` is checked in the user's actual org.
    ///
    /// # Errors
    /// NotFound (no such user in the org context), PermissionDenied, FailedPrecondition (machine,
    /// inactive or locked user, inactive org), ResourceExhausted (rate limit), InvalidArgument.
    #[cfg_attr(
        feature = "tracing",
        tracing::instrument(
            name = "passkey_links.add_passwordless_registration",
            skip_all,
            fields(caller = %caller, user_id = %request.user_id, org_context = ?org_context),
            ret(level = "info"),
            err(level = "warn", Display)
        )
    )]
    pub async fn add_passwordless_registration(
        &self,
        caller: &Caller,
        org_context: Option<&str>,
        request: AddPasswordlessRegistrationRequest,
    ) -> Result<AddPasswordlessRegistrationResponse, Error> {
        let user_id = UserId::new(request.user_id)?;
        let org_context = self.admin_context(caller, org_context)?;
        let guard = self.user_guard(
            caller,
            Permission::UserCredentialWrite,
            &user_id,
            &org_context,
        );
        self.issue_returned_link(guard, user_id, org_context).await
    }

    /// Auth v1 AddMyPasswordlessLink: the authenticated user gets a link for themself.
    ///
    /// # Errors
    /// Unauthenticated for the system caller; otherwise as
    /// [`PasskeyLinks::add_passwordless_registration`] without PermissionDenied.
    #[cfg_attr(
        feature = "tracing",
        tracing::instrument(
            name = "passkey_links.add_my_passwordless_link",
            skip_all,
            fields(caller = %caller),
            ret(level = "info"),
            err(level = "warn", Display)
        )
    )]
    pub async fn add_my_passwordless_link(
        &self,
        caller: &Caller,
    ) -> Result<AddMyPasswordlessLinkResponse, Error> {
        let me = principal(caller)?;
        self.issue_returned_link(Guard::Open, me.user_id.clone(), Some(me.org_id.clone()))
            .await
    }

    /// Mgmt v1 SendPasswordlessRegistration: the link is emailed to the user's verified address
    /// (permission `user.write` in the user's actual org).
    ///
    /// # Errors
    /// As [`PasskeyLinks::add_passwordless_registration`], plus FailedPrecondition without a
    /// verified email and Unavailable when the notifier fails (the code is then never usable).
    #[cfg_attr(
        feature = "tracing",
        tracing::instrument(
            name = "passkey_links.send_passwordless_registration",
            skip_all,
            fields(caller = %caller, user_id = %request.user_id, org_context = ?org_context),
            ret(level = "info"),
            err(level = "warn", Display)
        )
    )]
    pub async fn send_passwordless_registration(
        &self,
        caller: &Caller,
        org_context: Option<&str>,
        request: SendPasswordlessRegistrationRequest,
    ) -> Result<SendPasswordlessRegistrationResponse, Error> {
        let user_id = UserId::new(request.user_id)?;
        let org_context = self.admin_context(caller, org_context)?;
        let guard = self.user_guard(caller, Permission::UserWrite, &user_id, &org_context);
        let details = self
            .issue_and_send(guard, user_id, org_context, None)
            .await?;
        Ok(DetailsResponse { details })
    }

    /// Auth v1 SendMyPasswordlessLink (ZITADEL's SendPasswordlessLink): the authenticated user
    /// has a link emailed to their verified address.
    ///
    /// # Errors
    /// As [`PasskeyLinks::send_passwordless_registration`] without PermissionDenied.
    #[cfg_attr(
        feature = "tracing",
        tracing::instrument(
            name = "passkey_links.send_my_passwordless_link",
            skip_all,
            fields(caller = %caller),
            ret(level = "info"),
            err(level = "warn", Display)
        )
    )]
    pub async fn send_my_passwordless_link(
        &self,
        caller: &Caller,
    ) -> Result<SendPasswordlessLinkResponse, Error> {
        let me = principal(caller)?;
        let details = self
            .issue_and_send(
                Guard::Open,
                me.user_id.clone(),
                Some(me.org_id.clone()),
                None,
            )
            .await?;
        Ok(DetailsResponse { details })
    }

    /// User v2 CreatePasskeyRegistrationLink: `sendLink` (optionally with a `urlTemplate`) or
    /// `returnCode`. Permission `user.passkey.write` in the user's actual org, unless the caller
    /// is the user.
    ///
    /// # Errors
    /// As the v1 variants; InvalidArgument (`Errors.User.InvalidURLTemplate`) for a bad template
    /// or both media at once.
    #[cfg_attr(
        feature = "tracing",
        tracing::instrument(
            name = "passkey_links.create_passkey_registration_link",
            skip_all,
            fields(caller = %caller, user_id = %request.user_id, return_code = request.return_code.is_some()),
            ret(level = "info"),
            err(level = "warn", Display)
        )
    )]
    pub async fn create_passkey_registration_link(
        &self,
        caller: &Caller,
        request: CreatePasskeyRegistrationLinkRequest,
    ) -> Result<CreatePasskeyRegistrationLinkResponse, Error> {
        let user_id = UserId::new(request.user_id)?;
        let guard = self.user_guard(caller, Permission::UserPasskeyWrite, &user_id, &None);
        match (request.send_link, request.return_code) {
            (Some(_), Some(_)) => Err(Error::new(
                ErrorKind::InvalidArgument,
                "PKL-INPUT-07",
                "Errors.Invalid.Argument",
                "choose either sendLink or returnCode",
            )),
            (None, Some(_)) => {
                let (executed, code_id, secret) = self
                    .issue(guard, user_id, None, Delivery::Returned, None)
                    .await?;
                Ok(CreatePasskeyRegistrationLinkResponse {
                    details: executed.details(&StreamId::code(&code_id))?,
                    code: Some(PasskeyRegistrationCode {
                        id: code_id.as_str().to_owned(),
                        code: secret.expose().to_owned(),
                    }),
                })
            }
            (send_link, None) => {
                let template = send_link
                    .and_then(|send| send.url_template)
                    .map(|raw| UrlTemplate::parse(&raw))
                    .transpose()
                    .map_err(|err| Error::from(DomainError::InvalidUrlTemplate(err)))?;
                let details = self.issue_and_send(guard, user_id, None, template).await?;
                Ok(CreatePasskeyRegistrationLinkResponse {
                    details,
                    code: None,
                })
            }
        }
    }

    async fn issue_returned_link(
        &self,
        guard: Guard,
        user_id: UserId,
        org_context: Option<OrgId>,
    ) -> Result<AddPasswordlessRegistrationResponse, Error> {
        let (executed, code_id, _) = self
            .issue(guard, user_id, org_context, Delivery::Returned, None)
            .await?;
        Ok(AddPasswordlessRegistrationResponse {
            details: executed.details(&StreamId::code(&code_id))?,
            link: executed.prepared.link.into_exposed(),
            expiration: ProtoDuration(self.config.policy.lifetime()),
        })
    }

    /// Issues a code and renders its link before anything is appended, so a link that cannot be
    /// rendered (foreign origin) appends nothing.
    async fn issue(
        &self,
        guard: Guard,
        user_id: UserId,
        org_context: Option<OrgId>,
        delivery: Delivery,
        template: Option<&UrlTemplate>,
    ) -> Result<(Executed<Prepared>, CodeId, Secret), Error> {
        let code_id = CodeId::new(self.random.new_id())?;
        let secret = self
            .config
            .policy
            .secret()
            .generate(&mut SourceRng(&self.random));
        let command = Command::IssueLink(IssueLink {
            user_id: user_id.clone(),
            org_context,
            code_id: code_id.clone(),
            secret_digest: secret.digest(),
            delivery,
        });
        let executed = self
            .execute(&command, &guard, |world| {
                let user = world.user(&user_id);
                let org_id = user.org_id.as_ref().ok_or(DomainError::UserNotFound)?;
                let values = LinkValues {
                    user_id: &user_id,
                    org_id,
                    code_id: &code_id,
                    secret: &secret,
                };
                let link = self
                    .config
                    .links
                    .render(template, &values)
                    .map_err(DomainError::InvalidUrlTemplate)?;
                Ok(Prepared {
                    link,
                    org_id: org_id.clone(),
                    recipient: user.verified_email().cloned(),
                })
            })
            .await?;
        Ok((executed, code_id, secret))
    }

    /// The send flow: append `requested`, hand the link to the notifier, then append `sent` or
    /// `delivery failed`. A crash in between leaves a code that is never usable.
    async fn issue_and_send(
        &self,
        guard: Guard,
        user_id: UserId,
        org_context: Option<OrgId>,
        template: Option<UrlTemplate>,
    ) -> Result<Details, Error> {
        let delivery = Delivery::Email {
            url_template: template.as_ref().map(|t| t.as_str().to_owned()),
        };
        let (executed, code_id, _secret) = self
            .issue(
                guard,
                user_id.clone(),
                org_context,
                delivery,
                template.as_ref(),
            )
            .await?;
        let expires_at = executed
            .world
            .code(&code_id)
            .issued
            .as_ref()
            .map(|issued| issued.expires_at)
            .ok_or_else(|| internal("issued code without issuance facts".into()))?;
        let Prepared {
            link,
            org_id,
            recipient,
        } = executed.prepared;
        let recipient = recipient.ok_or(DomainError::EmailNotVerified)?;
        let envelope = Envelope {
            idempotency_key: code_id.as_str().to_owned(),
            message: Message::RegistrationLink {
                recipient,
                user_id,
                org_id,
                code_id: code_id.clone(),
                link,
                expires_at,
            },
        };
        let outcome = match self.notifier.deliver(&envelope).await {
            Ok(receipt) => DeliveryOutcome::Sent {
                message_id: receipt.message_id,
            },
            Err(err) => DeliveryOutcome::Failed(err.failure()),
        };
        let failed = matches!(outcome, DeliveryOutcome::Failed(_));
        let recorded = self
            .execute(
                &Command::RecordDelivery {
                    code_id: code_id.clone(),
                    outcome,
                },
                &Guard::Open,
                |_| Ok(()),
            )
            .await?;
        if failed {
            return Err(delivery_unavailable());
        }
        recorded.details(&StreamId::code(&code_id))
    }

    // ---- redemption ----------------------------------------------------------------------

    /// Checks a link the user opened, without consuming it (it may be opened many times: mail
    /// scanners prefetch links). Every failure on an existing code is recorded with its reason;
    /// the caller always gets the same `Errors.User.Code.Invalid`.
    ///
    /// # Errors
    /// InvalidArgument for any unusable code or malformed ids.
    #[cfg_attr(
        feature = "tracing",
        tracing::instrument(
            name = "passkey_links.check_link",
            skip_all,
            fields(user_id = %request.user_id, code_id = %request.code_id),
            ret(level = "info"),
            err(level = "warn", Display)
        )
    )]
    pub async fn check_link(&self, request: CheckLinkRequest) -> Result<CheckLinkResponse, Error> {
        let presented = present(request.user_id, request.code_id, request.code)?;
        let code_id = presented.code_id.clone();
        let executed = self
            .execute(&Command::CheckCode(presented), &Guard::Open, |_| Ok(()))
            .await?;
        let issued = executed
            .world
            .code(&code_id)
            .issued
            .as_ref()
            .ok_or_else(|| internal("usable code without issuance facts".into()))?;
        Ok(CheckLinkResponse {
            details: executed.details(&StreamId::code(&code_id))?,
            user_id: issued.user_id.as_str().to_owned(),
            org_id: issued.org_id.as_str().to_owned(),
            expiration_date: issued.expires_at,
        })
    }

    /// Consumes a link once the passkey ceremony finished: in one atomic append the code is
    /// consumed, the passkey added to the user and its credential id claimed. The user then gets
    /// a security notice.
    ///
    /// # Errors
    /// InvalidArgument (unusable code, bad passkey), AlreadyExists (credential id registered).
    #[cfg_attr(
        feature = "tracing",
        tracing::instrument(
            name = "passkey_links.consume_link",
            skip_all,
            fields(user_id = %request.user_id, code_id = %request.code_id),
            ret(level = "info"),
            err(level = "warn", Display)
        )
    )]
    pub async fn consume_link(
        &self,
        request: ConsumeLinkRequest,
    ) -> Result<DetailsResponse, Error> {
        let presented = present(request.user_id, request.code_id, request.code)?;
        let code_stream = StreamId::code(&presented.code_id);
        let user_id = presented.user_id.clone();
        let code_id = presented.code_id.clone();
        let passkey_name = request.passkey.name.clone();
        let command = Command::ConsumeCode {
            presented,
            passkey: request.passkey,
        };
        let executed = self.execute(&command, &Guard::Open, |_| Ok(())).await?;
        let details = executed.details(&code_stream)?;
        let user = executed.world.user(&user_id);
        if let (Some(recipient), Some(org_id)) = (user.verified_email(), user.org_id.as_ref()) {
            let notice = Envelope {
                idempotency_key: format!("passkey-added:{code_id}"),
                message: Message::PasskeyAdded {
                    recipient: recipient.clone(),
                    user_id: user_id.clone(),
                    org_id: org_id.clone(),
                    passkey_name,
                    added_at: details.change_date,
                },
            };
            // The passkey is registered; a lost notice must not turn that into an error. Only the
            // failure class is logged: the notifier's own text is not ours to vouch for.
            if let Err(_err) = self.notifier.deliver(&notice).await {
                #[cfg(feature = "tracing")]
                tracing::warn!(
                    user_id = %user_id,
                    reason = ?_err.failure(),
                    "passkey-added notice not delivered"
                );
            }
        }
        Ok(DetailsResponse { details })
    }

    /// Revokes a link (permission `user.credential.write` in the user's actual org, unless the
    /// caller is the user).
    ///
    /// # Errors
    /// NotFound, PermissionDenied, FailedPrecondition (already consumed/revoked).
    #[cfg_attr(
        feature = "tracing",
        tracing::instrument(
            name = "passkey_links.revoke_link",
            skip_all,
            fields(caller = %caller, user_id = %request.user_id, code_id = %request.code_id, org_context = ?org_context),
            ret(level = "info"),
            err(level = "warn", Display)
        )
    )]
    pub async fn revoke_link(
        &self,
        caller: &Caller,
        org_context: Option<&str>,
        request: RevokeLinkRequest,
    ) -> Result<DetailsResponse, Error> {
        let user_id = UserId::new(request.user_id)?;
        let code_id = CodeId::new(request.code_id)?;
        let org_context = self.admin_context(caller, org_context)?;
        let guard = self.user_guard(
            caller,
            Permission::UserCredentialWrite,
            &user_id,
            &org_context,
        );
        let command = Command::RevokeCode {
            user_id,
            code_id: code_id.clone(),
            org_context,
        };
        self.execute_for_details(&command, &guard, StreamId::code(&code_id))
            .await
    }

    // ---- org and user lifecycle --------------------------------------------------------

    /// Creates an org. Only the system caller may create orgs.
    ///
    /// # Errors
    /// PermissionDenied for user callers, InvalidArgument for a bad name.
    #[cfg_attr(
        feature = "tracing",
        tracing::instrument(
            name = "passkey_links.add_org",
            skip_all,
            fields(caller = %caller),
            ret(level = "info"),
            err(level = "warn", Display)
        )
    )]
    pub async fn add_org(
        &self,
        caller: &Caller,
        request: AddOrgRequest,
    ) -> Result<AddOrgResponse, Error> {
        if !matches!(caller, Caller::System) {
            return Err(Error::permission_denied("org.create"));
        }
        let org_id = OrgId::new(request.org_id.unwrap_or_else(|| self.random.new_id()))?;
        let command = Command::Org {
            org_id: org_id.clone(),
            command: OrgCommand::Add { name: request.name },
        };
        let executed = self.execute(&command, &Guard::Open, |_| Ok(())).await?;
        Ok(AddOrgResponse {
            details: executed.details(&StreamId::org(&org_id))?,
            org_id: org_id.as_str().to_owned(),
        })
    }

    /// Deactivates, reactivates or removes an org (permission `org.write` in it).
    ///
    /// # Errors
    /// NotFound, PermissionDenied, FailedPrecondition.
    #[cfg_attr(
        feature = "tracing",
        tracing::instrument(
            name = "passkey_links.update_org",
            skip_all,
            fields(caller = %caller, org_id = %org_id, command = ?command),
            ret(level = "info"),
            err(level = "warn", Display)
        )
    )]
    pub async fn update_org(
        &self,
        caller: &Caller,
        org_id: &str,
        command: OrgCommand,
    ) -> Result<DetailsResponse, Error> {
        let org_id = OrgId::new(org_id)?;
        let guard = org_guard(caller, Permission::OrgWrite, org_id.clone());
        let command = Command::Org {
            org_id: org_id.clone(),
            command,
        };
        self.execute_for_details(&command, &guard, StreamId::org(&org_id))
            .await
    }

    /// Creates a human user in the org context (permission `user.write` there).
    ///
    /// # Errors
    /// InvalidArgument, NotFound/FailedPrecondition (org), PermissionDenied.
    #[cfg_attr(
        feature = "tracing",
        tracing::instrument(
            name = "passkey_links.add_human_user",
            skip_all,
            fields(caller = %caller, org_context = ?org_context),
            ret(level = "info"),
            err(level = "warn", Display)
        )
    )]
    pub async fn add_human_user(
        &self,
        caller: &Caller,
        org_context: Option<&str>,
        request: AddHumanUserRequest,
    ) -> Result<AddUserResponse, Error> {
        let org_id = self.creation_org(caller, org_context)?;
        let user_id = request.user_id;
        let command = UserCommand::AddHuman(AddHuman {
            org_id: org_id.clone(),
            user_name: request.user_name,
            display_name: request.display_name,
            email: request.email,
            email_verified: request.is_email_verified,
            preferred_language: request.preferred_language,
        });
        self.add_user(caller, org_id, user_id, command).await
    }

    /// Creates a machine user in the org context (permission `user.write` there).
    ///
    /// # Errors
    /// As [`PasskeyLinks::add_human_user`].
    #[cfg_attr(
        feature = "tracing",
        tracing::instrument(
            name = "passkey_links.add_machine_user",
            skip_all,
            fields(caller = %caller, org_context = ?org_context),
            ret(level = "info"),
            err(level = "warn", Display)
        )
    )]
    pub async fn add_machine_user(
        &self,
        caller: &Caller,
        org_context: Option<&str>,
        request: AddMachineUserRequest,
    ) -> Result<AddUserResponse, Error> {
        let org_id = self.creation_org(caller, org_context)?;
        let command = UserCommand::AddMachine {
            org_id: org_id.clone(),
            user_name: request.user_name,
            name: request.name,
        };
        self.add_user(caller, org_id, request.user_id, command)
            .await
    }

    async fn add_user(
        &self,
        caller: &Caller,
        org_id: OrgId,
        user_id: Option<String>,
        command: UserCommand,
    ) -> Result<AddUserResponse, Error> {
        let user_id = UserId::new(user_id.unwrap_or_else(|| self.random.new_id()))?;
        let guard = org_guard(caller, Permission::UserWrite, org_id);
        let command = Command::User {
            user_id: user_id.clone(),
            command,
        };
        let executed = self.execute(&command, &guard, |_| Ok(())).await?;
        Ok(AddUserResponse {
            details: executed.details(&StreamId::user(&user_id))?,
            user_id: user_id.as_str().to_owned(),
        })
    }

    /// Changes a user: email change/verification, deactivate, reactivate, lock, unlock, remove
    /// (permission `user.write` in the user's actual org).
    ///
    /// # Errors
    /// NotFound, PermissionDenied, FailedPrecondition, InvalidArgument.
    #[cfg_attr(
        feature = "tracing",
        tracing::instrument(
            name = "passkey_links.update_user",
            skip_all,
            fields(caller = %caller, user_id = %user_id, org_context = ?org_context, command = command.name()),
            ret(level = "info"),
            err(level = "warn", Display)
        )
    )]
    pub async fn update_user(
        &self,
        caller: &Caller,
        org_context: Option<&str>,
        user_id: &str,
        command: UserCommand,
    ) -> Result<DetailsResponse, Error> {
        let user_id = UserId::new(user_id)?;
        if command.creates_in().is_some() {
            return Err(internal("use add_human_user / add_machine_user".into()));
        }
        let org_context = self.admin_context(caller, org_context)?;
        let guard = match caller {
            Caller::System => Guard::Open,
            Caller::User(principal) => Guard::OnUser {
                principal: principal.clone(),
                permission: Permission::UserWrite,
                user_id: user_id.clone(),
                org_context: org_context.clone(),
            },
        };
        let command = Command::User {
            user_id: user_id.clone(),
            command,
        };
        let executed = self
            .execute(&command, &guard, |world| {
                world.user(&user_id).locate(org_context.as_ref())?;
                Ok(())
            })
            .await?;
        Ok(DetailsResponse {
            details: executed.details(&StreamId::user(&user_id))?,
        })
    }

    // ---- the one execution mechanism ---------------------------------------------------

    /// The org context of an admin call: the header, else the caller's own org; the system
    /// caller without a header sees every org.
    fn admin_context(
        &self,
        caller: &Caller,
        org_context: Option<&str>,
    ) -> Result<Option<OrgId>, Error> {
        Ok(match (parse_context(org_context)?, caller) {
            (Some(context), _) => Some(context),
            (None, Caller::User(principal)) => Some(principal.org_id.clone()),
            (None, Caller::System) => None,
        })
    }

    fn creation_org(&self, caller: &Caller, org_context: Option<&str>) -> Result<OrgId, Error> {
        self.admin_context(caller, org_context)?.ok_or_else(|| {
            Error::from(DomainError::InvalidId(crate::ids::IdError::Empty {
                kind: "org",
            }))
        })
    }

    fn user_guard(
        &self,
        caller: &Caller,
        permission: Permission,
        user_id: &UserId,
        org_context: &Option<OrgId>,
    ) -> Guard {
        match caller {
            Caller::User(principal) if &principal.user_id != user_id => Guard::OnUser {
                principal: principal.clone(),
                permission,
                user_id: user_id.clone(),
                org_context: org_context.clone(),
            },
            _ => Guard::Open,
        }
    }

    async fn authorize(&self, guard: &Guard, world: &World) -> Result<(), Error> {
        let (principal, permission, org) = match guard {
            Guard::Open => return Ok(()),
            Guard::OnUser {
                principal,
                permission,
                user_id,
                org_context,
            } => {
                // NotFound before PermissionDenied: never reveal users of other orgs. The
                // permission is checked in the user's actual org (ZITADEL checked the header's).
                let org = world.user(user_id).locate(org_context.as_ref())?;
                (principal, *permission, org.clone())
            }
            Guard::OnOrg {
                principal,
                permission,
                org_id,
            } => (principal, *permission, org_id.clone()),
        };
        if self
            .authorizer
            .is_permitted(principal, permission, &org)
            .await?
        {
            Ok(())
        } else {
            Err(Error::permission_denied(permission.as_str()))
        }
    }

    /// Runs a command whose answer is the `details` of `stream`.
    async fn execute_for_details(
        &self,
        command: &Command,
        guard: &Guard,
        stream: StreamId,
    ) -> Result<DetailsResponse, Error> {
        let executed = self.execute(command, guard, |_| Ok(())).await?;
        Ok(DetailsResponse {
            details: executed.details(&stream)?,
        })
    }

    /// Loads what `command` needs, authorizes, decides, runs `prepare` on the decided world
    /// (it may refuse: nothing is appended then), and appends. Conflicts are retried.
    async fn execute<T>(
        &self,
        command: &Command,
        guard: &Guard,
        prepare: impl Fn(&World) -> Result<T, DomainError>,
    ) -> Result<Executed<T>, Error> {
        let attempts = self.config.max_attempts.max(1);
        for _ in 0..attempts {
            let now = self.now();
            let (mut world, mut metas) = self.load(command).await?;
            self.authorize(guard, &world).await?;
            let decision = domain::decide(&world, command, &self.config.policy, now)?;
            let prepared = prepare(&world)?;
            match self.append(&world, &decision, now).await {
                Ok(()) => {}
                Err(StoreError::Conflict { .. }) => {
                    // Let the writer that won finish before deciding again.
                    YieldNow(false).await;
                    continue;
                }
                Err(other) => return Err(other.into()),
            }
            for change in &decision.changes {
                world.apply(change);
                metas.touch(&change.stream, now);
            }
            for change in &decision.changes {
                if !StateCache::cacheable(&change.stream) {
                    continue;
                }
                if let Some(state) = world.state(&change.stream) {
                    self.cache.put(
                        &change.stream,
                        state,
                        metas.get(&change.stream),
                        self.config.state_cache_capacity,
                    );
                }
            }
            if let Some(refusal) = decision.refusal {
                return Err(refusal.into());
            }
            return Ok(Executed {
                world,
                metas,
                prepared,
            });
        }
        Err(too_many_conflicts())
    }

    async fn load(&self, command: &Command) -> Result<(World, Metas), Error> {
        let mut world = World::new();
        let mut metas = Metas::default();
        loop {
            let mut loaded_any = false;
            for stream in command.streams(&world) {
                if world.contains(&stream) {
                    continue;
                }
                let (state, meta) = self.load_stream(&stream).await?;
                metas.set(&stream, meta);
                world.insert(stream, state);
                loaded_any = true;
            }
            if !loaded_any {
                return Ok((world, metas));
            }
        }
    }

    async fn load_stream(&self, stream: &StreamId) -> Result<(State, StreamMeta), Error> {
        let (mut state, mut meta) = self
            .cache
            .get(stream)
            .unwrap_or_else(|| (State::empty(stream.kind), StreamMeta::default()));
        let events = self.store.read(stream, state.version()).await?;
        if events.is_empty() {
            return Ok((state, meta));
        }
        for recorded in events {
            let version = recorded.version;
            let corrupt = |reason: String| StoreError::Corrupt {
                stream: stream.clone(),
                version,
                reason,
            };
            if version != state.version() + 1 {
                return Err(corrupt(format!("expected version {}", state.version() + 1)).into());
            }
            let event = Event::decode(
                stream.kind,
                &recorded.event_type,
                recorded.schema_version,
                recorded.payload,
            )
            .map_err(|err| corrupt(err.to_string()))?;
            state.apply(&event);
            meta.touch(recorded.recorded_at);
        }
        self.cache.put(
            stream,
            state.clone(),
            meta,
            self.config.state_cache_capacity,
        );
        Ok((state, meta))
    }

    async fn append(
        &self,
        world: &World,
        decision: &Decision,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if decision.changes.is_empty() {
            return Ok(());
        }
        let mut batch: Vec<StreamAppend> = Vec::new();
        for change in &decision.changes {
            let (event_type, payload) = change
                .event
                .encode()
                .map_err(|err| StoreError::Internal(err.to_string()))?;
            let event = NewEvent {
                event_type,
                schema_version: domain::SCHEMA_VERSION,
                payload,
                recorded_at: now,
            };
            match batch.iter_mut().find(|a| a.stream == change.stream) {
                Some(append) => append.events.push(event),
                None => batch.push(StreamAppend {
                    stream: change.stream.clone(),
                    expected: ExpectedVersion::from_loaded(world.version(&change.stream)),
                    events: vec![event],
                }),
            }
        }
        self.store.append(batch).await.map(|_| ())
    }
}

/// Yields to the executor once (runtime-agnostic): a retry after a conflict must not starve the
/// task that won, which may share this worker thread.
struct YieldNow(bool);

impl std::future::Future for YieldNow {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

/// What the issuance prepared before appending.
struct Prepared {
    link: Link,
    org_id: OrgId,
    recipient: Option<crate::domain::text::Email>,
}

/// The system may do anything; a user needs `permission` in `org_id`.
fn org_guard(caller: &Caller, permission: Permission, org_id: OrgId) -> Guard {
    match caller {
        Caller::System => Guard::Open,
        Caller::User(principal) => Guard::OnOrg {
            principal: principal.clone(),
            permission,
            org_id,
        },
    }
}

/// A presented code from a request's raw ids.
fn present(user_id: String, code_id: String, secret: Secret) -> Result<PresentCode, Error> {
    Ok(PresentCode {
        user_id: UserId::new(user_id)?,
        code_id: CodeId::new(code_id)?,
        secret,
    })
}

fn principal(caller: &Caller) -> Result<&Principal, Error> {
    match caller {
        Caller::User(principal) => Ok(principal),
        Caller::System => Err(Error::unauthenticated()),
    }
}
