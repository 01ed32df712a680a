//! The HTTP layer an embedder writes: ZITADEL's paths, a bearer-token table, the
//! `x-zitadel-orgid` header, errors as grpc-gateway answers them, and the login UI page a
//! registration link opens. Shared by the example binary and its HTTP and browser tests.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use passkey_links::prelude::*;
use passkey_links::read::{ProjectionRunner, ProjectionStore, ReadModels};
use passkey_links::webauthn::WebauthnRelyingParty;
use serde::Deserialize;

/// The service as the example runs it: any store, mail recorded (and logged), passkeys
/// verified by webauthn-rs.
pub type Service<S> =
    PasskeyLinks<S, RecordingNotifier, StaticGrants, SystemClock, OsRandom, WebauthnRelyingParty>;

/// The application state: the service, the token table, the read models' runner and the
/// metrics recorder's handle.
pub struct App<S> {
    /// The service.
    pub service: Service<S>,
    /// Bearer token → caller.
    pub tokens: HashMap<String, Caller>,
    /// What the notifier was handed.
    pub notifier: RecordingNotifier,
    /// Keeps the live-links and audit read models (the binary runs its `follow` in the
    /// background; tests call `catch_up`).
    pub read_models: ProjectionRunner<S, ReadModels<S>>,
    /// Renders what the `metrics` facade recorded, for `GET /metrics`.
    pub metrics: PrometheusHandle,
}

/// The process's Prometheus recorder (installed once, as the `metrics` facade's global one).
fn prometheus() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // If something installed a recorder first, this one renders nothing: that
            // recorder has the numbers.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Well-known ids and tokens of the demo data.
pub mod demo {
    /// ACME org.
    pub const ACME: &str = "acme";
    /// Globex org.
    pub const GLOBEX: &str = "globex";
    /// A verified human in ACME.
    pub const ADA: &str = "ada";
    /// A human in ACME without a verified email.
    pub const BOB: &str = "bob";
    /// A machine user in ACME.
    pub const BOT: &str = "ci-bot";
    /// A verified human in Globex.
    pub const CAROL: &str = "carol";
    /// The embedding system itself (creates orgs and users).
    pub const SYSTEM_TOKEN: &str = "system-token";
    /// ACME admin (every permission in ACME).
    pub const ADMIN_TOKEN: &str = "acme-admin-token";
    /// Globex admin (every permission in Globex only).
    pub const GLOBEX_ADMIN_TOKEN: &str = "globex-admin-token";
    /// ACME support desk (only `user.read` in ACME).
    pub const SUPPORT_TOKEN: &str = "acme-support-token";
    /// Ada herself.
    pub const ADA_TOKEN: &str = "ada-token";
    /// Bob himself.
    pub const BOB_TOKEN: &str = "bob-token";
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Creates something unless it exists already (a restarted demo on PostgreSQL finds its data).
fn created<T>(result: Result<T, Error>) -> Result<(), BoxError> {
    match result {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(Box::new(err)),
    }
}

/// Builds the demo on `store`: two orgs, four users, the tokens; links point at `base_url`,
/// whose host is also the WebAuthn relying party id (`http://localhost:8080` → `localhost`).
///
/// # Errors
/// When the base URL is invalid or the demo data cannot be created.
pub async fn build<S: EventStore + ProjectionStore + Clone>(
    store: S,
    base_url: &str,
) -> Result<Arc<App<S>>, BoxError> {
    let base = BaseUrl::parse(base_url)?;
    let origin = base.origin();
    let rp_id = url::Url::parse(&origin)?
        .host_str()
        .ok_or("the base URL needs a host")?
        .to_owned();
    let relying_party = WebauthnRelyingParty::new(&rp_id, "passkey-links demo", &[&origin])?;
    let notifier = RecordingNotifier::new();
    let config = Config::new(LinkConfig::new(base));
    let sys = Caller::System;
    let setup = PasskeyLinks::new(
        store.clone(),
        notifier.clone(),
        StaticGrants::new(),
        config.clone(),
    );
    for (org, name) in [(demo::ACME, "ACME"), (demo::GLOBEX, "Globex")] {
        let request = AddOrgRequest {
            name: name.into(),
            org_id: Some(org.into()),
        };
        created(setup.add_org(&sys, request).await)?;
    }
    for (org, user, verified) in [
        (demo::ACME, demo::ADA, true),
        (demo::ACME, demo::BOB, false),
        (demo::GLOBEX, demo::CAROL, true),
    ] {
        let request = AddHumanUserRequest {
            user_id: Some(user.into()),
            user_name: user.into(),
            display_name: user.to_uppercase(),
            email: format!("{user}@example.com"),
            is_email_verified: verified,
            preferred_language: Some("en".into()),
        };
        created(setup.add_human_user(&sys, Some(org), request).await)?;
    }
    let bot = AddMachineUserRequest {
        user_id: Some(demo::BOT.into()),
        user_name: "bot".into(),
        name: "CI bot".into(),
    };
    created(setup.add_machine_user(&sys, Some(demo::ACME), bot).await)?;
    let all = Permission::ALL;
    let id = |s: &str| UserId::new(s);
    let org = |s: &str| OrgId::new(s);
    let grants = StaticGrants::new()
        .grant(&id("acme-admin")?, &org(demo::ACME)?, all)
        .grant(&id("globex-admin")?, &org(demo::GLOBEX)?, all)
        .grant(
            &id("acme-support")?,
            &org(demo::ACME)?,
            [Permission::UserRead],
        );
    let tokens = HashMap::from([
        (demo::SYSTEM_TOKEN.to_owned(), Caller::System),
        (
            demo::ADMIN_TOKEN.to_owned(),
            Caller::user(id("acme-admin")?, org(demo::ACME)?),
        ),
        (
            demo::GLOBEX_ADMIN_TOKEN.to_owned(),
            Caller::user(id("globex-admin")?, org(demo::GLOBEX)?),
        ),
        (
            demo::SUPPORT_TOKEN.to_owned(),
            Caller::user(id("acme-support")?, org(demo::ACME)?),
        ),
        (
            demo::ADA_TOKEN.to_owned(),
            Caller::user(id(demo::ADA)?, org(demo::ACME)?),
        ),
        (
            demo::BOB_TOKEN.to_owned(),
            Caller::user(id(demo::BOB)?, org(demo::ACME)?),
        ),
    ]);
    let read_models = ProjectionRunner::new(store.clone(), ReadModels::new(store.clone()));
    let service = PasskeyLinks::new(store, notifier.clone(), grants, config)
        .with_relying_party(relying_party);
    Ok(Arc::new(App {
        service,
        tokens,
        notifier,
        read_models,
        metrics: prometheus(),
    }))
}

/// The routes.
pub fn router<S: EventStore + ProjectionStore + Clone + 'static>(app: Arc<App<S>>) -> Router {
    Router::new()
        .route(
            "/management/v1/users/{user_id}/passwordless/_link",
            post(add_registration::<S>),
        )
        .route(
            "/management/v1/users/{user_id}/passwordless/_send_link",
            post(send_registration::<S>),
        )
        .route(
            "/auth/v1/users/me/passwordless/_link",
            post(add_my_link::<S>),
        )
        .route(
            "/auth/v1/users/me/passwordless/_send_link",
            post(send_my_link::<S>),
        )
        .route(
            "/v2/users/{user_id}/passkeys/registration_link",
            post(create_registration_link::<S>),
        )
        .route(
            "/management/v1/users/{user_id}/passwordless",
            get(list_live_links::<S>),
        )
        .route(
            "/management/v1/users/{user_id}/passwordless/{code_reference}/_revoke",
            post(revoke_code::<S>),
        )
        .route(
            "/management/v1/users/{user_id}/passwordless/{code_reference}/_redeliver",
            post(redeliver_code::<S>),
        )
        .route("/v2/users/{user_id}/passkeys", post(register_passkey::<S>))
        .route(
            "/v2/users/{user_id}/passkeys/_search",
            post(list_passkeys::<S>),
        )
        .route(
            "/v2/users/{user_id}/passkeys/{passkey_id}",
            post(verify_passkey::<S>).delete(remove_passkey::<S>),
        )
        .route("/v2/passkeys/login/_start", post(start_login::<S>))
        .route("/v2/passkeys/login/_finish", post(finish_login::<S>))
        .route("/login", get(sign_in_page))
        .route("/v1/passkey_links/_check", post(check_code::<S>))
        .route("/v1/passkey_links/_renew", post(renew_link::<S>))
        .route("/v1/orgs", post(add_org::<S>))
        .route("/v1/orgs/{org_id}", get(get_org::<S>).put(ensure_org::<S>))
        .route("/v1/orgs/{org_id}/users", post(add_user::<S>))
        .route("/v1/orgs/{org_id}/users/{user_id}", put(ensure_user::<S>))
        .route("/v2/users/{user_id}", get(get_user::<S>))
        .route(
            "/v2/users/{user_id}/personal_data",
            delete(erase_personal_data::<S>),
        )
        .route(DEFAULT_LINK_PATH, get(login_page::<S>))
        .route("/healthz", get(healthz::<S>))
        .route("/metrics", get(render_metrics::<S>))
        .layer(axum::middleware::from_fn(idempotency_key))
        .with_state(app)
}

/// `Idempotency-Key: <uuid>` on any request: the command the handler runs is recorded under the
/// key, and a retry with it answers as the first run did instead of acting twice. One layer
/// serves every route: the key travels with the handler's future.
async fn idempotency_key(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(value) = request.headers().get("idempotency-key") else {
        return next.run(request).await;
    };
    let key = value
        .to_str()
        .map_err(|_| {
            Error::new(
                ErrorKind::InvalidArgument,
                "HTTP-IDEMPOTENCY-01",
                "Errors.Invalid.Argument",
                "the Idempotency-Key header is not text",
            )
        })
        .and_then(|text| IdempotencyKey::new(text).map_err(Error::from));
    match key {
        Ok(key) => key.scope(next.run(request)).await,
        Err(err) => ApiError(err).into_response(),
    }
}

/// The path the default link opens, below the base URL.
pub const DEFAULT_LINK_PATH: &str = passkey_links::DEFAULT_LINK_PATH;

/// An error answered as grpc-gateway would: its HTTP status and the ZITADEL error body.
pub struct ApiError(Error);

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        Self(err)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        Self(Error::new(
            ErrorKind::InvalidArgument,
            "HTTP-JSON-01",
            "Errors.Invalid.Argument",
            format!("malformed request body: {}", rejection.body_text()),
        ))
    }
}

/// The same idempotency key with another request: 422, as the IETF Idempotency-Key draft says.
const KEY_REUSED: &str = "PKL-SVC-04";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = if self.0.id() == KEY_REUSED {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::from_u16(self.0.kind().http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        };
        (status, Json(self.0.to_body())).into_response()
    }
}

type Answer<T> = Result<Json<T>, ApiError>;
type Shared<S> = State<Arc<App<S>>>;

/// `Authorization: Bearer <token>` → caller; anything else is Unauthenticated.
fn caller<S>(app: &App<S>, headers: &HeaderMap) -> Result<Caller, ApiError> {
    headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .and_then(|token| app.tokens.get(token.trim()))
        .cloned()
        .ok_or_else(|| ApiError(Error::unauthenticated()))
}

fn org_context(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-zitadel-orgid")
        .and_then(|value| value.to_str().ok())
}

async fn add_registration<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Answer<AddPasswordlessRegistrationResponse> {
    let caller = caller(&app, &headers)?;
    let request = AddPasswordlessRegistrationRequest { user_id };
    Ok(Json(
        app.service
            .add_passwordless_registration(&caller, org_context(&headers), request)
            .await?,
    ))
}

async fn send_registration<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Answer<SendPasswordlessRegistrationResponse> {
    let caller = caller(&app, &headers)?;
    let request = SendPasswordlessRegistrationRequest { user_id };
    Ok(Json(
        app.service
            .send_passwordless_registration(&caller, org_context(&headers), request)
            .await?,
    ))
}

async fn add_my_link<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    headers: HeaderMap,
) -> Answer<AddMyPasswordlessLinkResponse> {
    let caller = caller(&app, &headers)?;
    Ok(Json(app.service.add_my_passwordless_link(&caller).await?))
}

async fn send_my_link<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    headers: HeaderMap,
) -> Answer<SendPasswordlessLinkResponse> {
    let caller = caller(&app, &headers)?;
    Ok(Json(app.service.send_my_passwordless_link(&caller).await?))
}

async fn create_registration_link<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<CreatePasskeyRegistrationLinkRequest>, JsonRejection>,
) -> Answer<CreatePasskeyRegistrationLinkResponse> {
    let caller = caller(&app, &headers)?;
    let Json(mut request) = body?;
    request.user_id = user_id;
    Ok(Json(
        app.service
            .create_passkey_registration_link(&caller, request)
            .await?,
    ))
}

/// v2 RegisterPasskey with the link's code: no token, the code is the credential.
async fn register_passkey<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    Path(user_id): Path<String>,
    body: Result<Json<RegisterPasskeyRequest>, JsonRejection>,
) -> Answer<RegisterPasskeyResponse> {
    let Json(mut request) = body?;
    request.user_id = user_id;
    Ok(Json(app.service.register_passkey(request).await?))
}

/// v2 VerifyPasskeyRegistration: the ceremony is bound to the registering browser's challenge.
async fn verify_passkey<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    Path((user_id, passkey_id)): Path<(String, String)>,
    body: Result<Json<VerifyPasskeyRegistrationRequest>, JsonRejection>,
) -> Answer<VerifyPasskeyRegistrationResponse> {
    let Json(mut request) = body?;
    request.user_id = user_id;
    request.passkey_id = passkey_id;
    Ok(Json(
        app.service.verify_passkey_registration(request).await?,
    ))
}

async fn list_passkeys<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Answer<ListPasskeysResponse> {
    let caller = caller(&app, &headers)?;
    let request = ListPasskeysRequest { user_id };
    Ok(Json(
        app.service
            .list_passkeys(&caller, org_context(&headers), request)
            .await?,
    ))
}

async fn remove_passkey<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    Path((user_id, passkey_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer<RemovePasskeyResponse> {
    let caller = caller(&app, &headers)?;
    let request = RemovePasskeyRequest {
        user_id,
        passkey_id,
    };
    Ok(Json(
        app.service
            .remove_passkey(&caller, org_context(&headers), request)
            .await?,
    ))
}

/// A user's live links, newest first, as the read model has them (with why a delivery failed).
async fn list_live_links<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Answer<ListLiveLinksResponse> {
    let caller = caller(&app, &headers)?;
    let request = ListLiveLinksRequest { user_id };
    Ok(Json(
        app.service
            .list_live_links(&caller, org_context(&headers), request)
            .await?,
    ))
}

/// Revokes a link, named by the reference live links show.
async fn revoke_code<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    Path((user_id, code_reference)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer<DetailsResponse> {
    let caller = caller(&app, &headers)?;
    let request = RevokeCodeRequest {
        user_id,
        code_reference: Some(code_reference),
        code_id: None,
    };
    Ok(Json(
        app.service
            .revoke_code(&caller, org_context(&headers), request)
            .await?,
    ))
}

/// Delivers again a link whose delivery failed (the same link).
async fn redeliver_code<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    Path((user_id, code_reference)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer<DetailsResponse> {
    let caller = caller(&app, &headers)?;
    let request = RedeliverCodeRequest {
        user_id,
        code_reference,
    };
    Ok(Json(
        app.service
            .redeliver_code(&caller, org_context(&headers), request)
            .await?,
    ))
}

/// Liveness and lag: 200 with each projection's lag behind the feed while the store answers,
/// 503 when it does not. (A deployment with the outbox adds its worker's `health()`.)
async fn healthz<S: EventStore + ProjectionStore + Clone>(State(app): Shared<S>) -> Response {
    match app.read_models.health().await {
        Ok(health) => Json(serde_json::json!({
            "status": "ok",
            "projections": [{
                "name": health.name,
                "feedHead": health.feed_head,
                "checkpoint": health.checkpoint,
                "lag": health.lag,
            }],
        }))
        .into_response(),
        Err(err) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "unavailable", "error": err.id() })),
        )
            .into_response(),
    }
}

/// What the `metrics` facade recorded, in Prometheus's text format (the projection gauges are
/// set by the health query first).
async fn render_metrics<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
) -> Response {
    let _ = app.read_models.health().await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

/// Starts a login with a passkey (no token: the login is the authentication). The answer's
/// `loginState` is sealed: the page keeps it and posts it back with the assertion.
async fn start_login<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    body: Result<Json<StartPasskeyLoginRequest>, JsonRejection>,
) -> Answer<StartPasskeyLoginResponse> {
    let Json(request) = body?;
    Ok(Json(app.service.start_passkey_login(request).await?))
}

/// Finishes a login. A real server would now create its own session for the user named in the
/// answer; a refused login is 401 "login failed", whatever the reason.
async fn finish_login<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    body: Result<Json<FinishPasskeyLoginRequest>, JsonRejection>,
) -> Answer<FinishPasskeyLoginResponse> {
    let Json(request) = body?;
    Ok(Json(app.service.finish_passkey_login(request).await?))
}

/// The sign-in page: one button, a discoverable passkey login.
async fn sign_in_page() -> Response {
    (StatusCode::OK, page_headers(), Html(SIGN_IN_PAGE)).into_response()
}

/// What every page of the demo is served with.
fn page_headers() -> [(header::HeaderName, &'static str); 3] {
    [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
        ),
    ]
}

/// Opened by the login UI when the user follows the link: no token, the code is the credential.
async fn check_code<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    body: Result<Json<CheckCodeRequest>, JsonRejection>,
) -> Answer<CheckCodeResponse> {
    let Json(request) = body?;
    Ok(Json(app.service.check_code(request).await?))
}

/// Creates an org (system token).
async fn add_org<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    headers: HeaderMap,
    body: Result<Json<AddOrgRequest>, JsonRejection>,
) -> Answer<AddOrgResponse> {
    let caller = caller(&app, &headers)?;
    let Json(request) = body?;
    Ok(Json(app.service.add_org(&caller, request).await?))
}

/// Brings an org in step with the embedder's directory (system token for a new org, or
/// `org.write` in it).
async fn ensure_org<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    Path(org_id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<EnsureOrgRequest>, JsonRejection>,
) -> Answer<EnsureResponse> {
    let caller = caller(&app, &headers)?;
    let Json(mut request) = body?;
    request.org_id = org_id;
    Ok(Json(app.service.ensure_org(&caller, request).await?))
}

/// Brings a human user in step with the embedder's directory (`user.write` in the org).
async fn ensure_user<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    Path((org_id, user_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<EnsureHumanUserRequest>, JsonRejection>,
) -> Answer<EnsureResponse> {
    let caller = caller(&app, &headers)?;
    let Json(mut request) = body?;
    request.user_id = user_id;
    Ok(Json(
        app.service
            .ensure_human_user(&caller, Some(&org_id), request)
            .await?,
    ))
}

/// Reads a user back (the user, or `user.read` in its org).
async fn get_user<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Answer<GetUserResponse> {
    let caller = caller(&app, &headers)?;
    let request = GetUserRequest { user_id };
    Ok(Json(
        app.service
            .get_user(&caller, org_context(&headers), request)
            .await?,
    ))
}

/// Erases a user's personal data by crypto-shredding (`user.write` in its org).
async fn erase_personal_data<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Answer<DetailsResponse> {
    let caller = caller(&app, &headers)?;
    Ok(Json(
        app.service
            .erase_user_personal_data(&caller, org_context(&headers), &user_id)
            .await?,
    ))
}

/// Reads an org back (`org.read` in it).
async fn get_org<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    Path(org_id): Path<String>,
    headers: HeaderMap,
) -> Answer<GetOrgResponse> {
    let caller = caller(&app, &headers)?;
    Ok(Json(
        app.service
            .get_org(&caller, GetOrgRequest { org_id })
            .await?,
    ))
}

/// Creates a human user in an org (system token, or `user.write` there).
async fn add_user<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    Path(org_id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<AddHumanUserRequest>, JsonRejection>,
) -> Answer<AddUserResponse> {
    let caller = caller(&app, &headers)?;
    let Json(request) = body?;
    Ok(Json(
        app.service
            .add_human_user(&caller, Some(&org_id), request)
            .await?,
    ))
}

/// The query of a registration link.
#[derive(Debug, Deserialize)]
pub struct LinkQuery {
    #[serde(rename = "userID", default)]
    user_id: String,
    #[serde(rename = "codeID", default)]
    code_id: String,
    #[serde(default)]
    code: String,
}

/// The page a registration link opens: the code is checked (not consumed: mail scanners
/// prefetch links); a usable code gets the enrollment page, anything else a clear page.
async fn login_page<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    Query(link): Query<LinkQuery>,
) -> Response {
    let request: Result<CheckCodeRequest, _> = serde_json::from_value(serde_json::json!({
        "userId": link.user_id, "codeId": link.code_id, "code": link.code,
    }));
    let checked = match request {
        Ok(request) => app.service.check_code(request).await.ok(),
        Err(_) => None,
    };
    let headers = page_headers();
    // The values go into a JSON block: `<` is escaped so no value can close the tag.
    let values = serde_json::json!({
        "userId": link.user_id, "codeId": link.code_id, "code": link.code,
    })
    .to_string()
    .replace('<', "\\u003c");
    match checked {
        Some(_) => {
            let page = ENROLL_PAGE.replace("{{VALUES}}", &values);
            (StatusCode::OK, headers, Html(page)).into_response()
        }
        // A dead link's page offers a fresh one (sent only if it died of age).
        None => {
            let page = INVALID_PAGE.replace("{{VALUES}}", &values);
            (StatusCode::BAD_REQUEST, headers, Html(page)).into_response()
        }
    }
}

/// A fresh link for the holder of a dead one (no token: the dead link's secret is the
/// credential); always the same answer.
async fn renew_link<S: EventStore + ProjectionStore + Clone>(
    State(app): Shared<S>,
    body: Result<Json<RequestFreshLinkRequest>, JsonRejection>,
) -> Answer<RequestFreshLinkResponse> {
    let Json(request) = body?;
    Ok(Json(app.service.request_fresh_link(request).await?))
}

const INVALID_PAGE: &str = include_str!("invalid.html");
const ENROLL_PAGE: &str = include_str!("enroll.html");
const SIGN_IN_PAGE: &str = include_str!("login.html");
