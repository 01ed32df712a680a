//! The HTTP layer an embedder writes: ZITADEL's paths, a bearer-token table, the
//! `x-zitadel-orgid` header, and errors as grpc-gateway answers them. Shared by the example
//! binary and its HTTP integration test.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use passkey_links::prelude::*;

/// The service as the example runs it: in memory, mail recorded (and logged).
pub type Service = PasskeyLinks<InMemoryStore, RecordingNotifier, StaticGrants>;

/// The application state: the service and the token table.
pub struct App {
    /// The service.
    pub service: Service,
    /// Bearer token → caller.
    pub tokens: HashMap<String, Caller>,
    /// What the notifier was handed.
    pub notifier: RecordingNotifier,
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

/// Builds the demo: two orgs, four users, three tokens; links point at `base_url`.
///
/// # Errors
/// When the base URL is invalid or the demo data cannot be created.
pub async fn build(base_url: &str) -> Result<Arc<App>, Box<dyn std::error::Error + Send + Sync>> {
    let store = InMemoryStore::new();
    let notifier = RecordingNotifier::new();
    let config = Config::new(LinkConfig::new(BaseUrl::parse(base_url)?));
    let sys = Caller::System;
    let setup = PasskeyLinks::new(
        store.clone(),
        notifier.clone(),
        StaticGrants::new(),
        config.clone(),
    );
    for (org, name) in [(demo::ACME, "ACME"), (demo::GLOBEX, "Globex")] {
        setup
            .add_org(
                &sys,
                AddOrgRequest {
                    name: name.into(),
                    org_id: Some(org.into()),
                },
            )
            .await?;
    }
    for (org, user, verified) in [
        (demo::ACME, demo::ADA, true),
        (demo::ACME, demo::BOB, false),
        (demo::GLOBEX, demo::CAROL, true),
    ] {
        setup
            .add_human_user(
                &sys,
                Some(org),
                AddHumanUserRequest {
                    user_id: Some(user.into()),
                    user_name: user.into(),
                    display_name: user.to_uppercase(),
                    email: format!("{user}@example.com"),
                    is_email_verified: verified,
                    preferred_language: Some("en".into()),
                },
            )
            .await?;
    }
    setup
        .add_machine_user(
            &sys,
            Some(demo::ACME),
            AddMachineUserRequest {
                user_id: Some(demo::BOT.into()),
                user_name: "bot".into(),
                name: "CI bot".into(),
            },
        )
        .await?;
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
    let service = PasskeyLinks::new(store, notifier.clone(), grants, config);
    Ok(Arc::new(App {
        service,
        tokens,
        notifier,
    }))
}

/// The routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/management/v1/users/{user_id}/passwordless/_link",
            post(add_registration),
        )
        .route(
            "/management/v1/users/{user_id}/passwordless/_send_link",
            post(send_registration),
        )
        .route("/auth/v1/users/me/passwordless/_link", post(add_my_link))
        .route(
            "/auth/v1/users/me/passwordless/_send_link",
            post(send_my_link),
        )
        .route(
            "/v2/users/{user_id}/passkeys/registration_link",
            post(create_registration_link),
        )
        .route("/v1/passkey_links/_check", post(check_link))
        .route("/v1/passkey_links/_consume", post(consume_link))
        .with_state(app)
}

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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.kind().http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.0.to_body())).into_response()
    }
}

type Answer<T> = Result<Json<T>, ApiError>;

/// `Authorization: Bearer <token>` → caller; anything else is Unauthenticated.
fn caller(app: &App, headers: &HeaderMap) -> Result<Caller, ApiError> {
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

async fn add_registration(
    State(app): State<Arc<App>>,
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

async fn send_registration(
    State(app): State<Arc<App>>,
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

async fn add_my_link(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Answer<AddMyPasswordlessLinkResponse> {
    let caller = caller(&app, &headers)?;
    Ok(Json(app.service.add_my_passwordless_link(&caller).await?))
}

async fn send_my_link(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Answer<SendPasswordlessLinkResponse> {
    let caller = caller(&app, &headers)?;
    Ok(Json(app.service.send_my_passwordless_link(&caller).await?))
}

async fn create_registration_link(
    State(app): State<Arc<App>>,
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

/// Opened by the login UI when the user follows the link: no token, the code is the credential.
async fn check_link(
    State(app): State<Arc<App>>,
    body: Result<Json<CheckCodeRequest>, JsonRejection>,
) -> Answer<CheckCodeResponse> {
    let Json(request) = body?;
    Ok(Json(app.service.check_code(request).await?))
}

/// Called once the WebAuthn ceremony produced the credential.
async fn consume_link(
    State(app): State<Arc<App>>,
    body: Result<Json<ConsumeCodeRequest>, JsonRejection>,
) -> Answer<DetailsResponse> {
    let Json(request) = body?;
    Ok(Json(app.service.consume_code(request).await?))
}
