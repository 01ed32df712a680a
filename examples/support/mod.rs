//! The quickstart flow, shared by the in-memory and the PostgreSQL examples: every step prints
//! one JSON line.

use std::future::Future;

use passkey_links::ids::StreamId;
use passkey_links::prelude::*;
use passkey_links::store::RecordedEvent;
use passkey_links::webauthn::WebauthnRelyingParty;
use serde::Serialize;
use serde_json::{Value, json};
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_proto::{CreationChallengeResponse, RequestChallengeResponse};

type BoxError = Box<dyn std::error::Error>;

/// The relying party of the quickstart.
const RP_ID: &str = "id.example.com";
/// Its origin.
const ORIGIN: &str = "https://id.example.com";

/// The software authenticator stores no resident keys; a real one (or a browser's virtual one)
/// honours the instruction, which the relying party cannot verify either way.
fn without_resident_key(mut options: CreationChallengeResponse) -> CreationChallengeResponse {
    if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
        selection.require_resident_key = false;
        selection.resident_key = None;
    }
    options
}

/// One JSON line: `{"step":…,"<key>":…}`, with `step` first and struct fields in their order.
fn emit(step: &str, key: &str, value: &impl Serialize) -> Result<(), serde_json::Error> {
    println!(
        "{{\"step\":{},\"{key}\":{}}}",
        serde_json::to_string(step)?,
        serde_json::to_string(value)?
    );
    Ok(())
}

/// A stored event as the last line shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StoredEvent {
    stream: StreamId,
    version: u64,
    #[serde(rename = "type")]
    event_type: String,
    schema_version: u16,
    recorded_at: String,
    payload: Value,
}

/// What the notifier was handed (the link carries the secret: shown here on purpose).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Delivered<'a> {
    recipient: &'a str,
    link: &'a str,
    user_id: &'a str,
    org_id: &'a str,
    code: &'a str,
    expires_at: String,
    idempotency_key: &'a str,
}

/// Runs the flow on `store`; `all_events` reads back everything stored, for the last line.
pub async fn run<S, F, Fut>(store: S, all_events: F) -> Result<(), BoxError>
where
    S: EventStore + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Vec<RecordedEvent>, BoxError>>,
{
    let notifier = RecordingNotifier::new();
    let links = LinkConfig::new(BaseUrl::parse("https://id.example.com")?);

    // Bootstrap an org and a user as the embedding system.
    let bootstrap = PasskeyLinks::new(
        store.clone(),
        notifier.clone(),
        StaticGrants::new(),
        Config::new(links.clone()),
    );
    let org = bootstrap
        .add_org(
            &Caller::System,
            AddOrgRequest {
                name: "ACME".into(),
                ..Default::default()
            },
        )
        .await?;
    let ada = bootstrap
        .add_human_user(
            &Caller::System,
            Some(&org.org_id),
            AddHumanUserRequest {
                user_name: "ada".into(),
                display_name: "Ada Lovelace".into(),
                email: "ada@example.com".into(),
                is_email_verified: true,
                preferred_language: Some("en".into()),
                ..Default::default()
            },
        )
        .await?;

    // An admin holding user.credential.write in the org, and Ada herself.
    let org_id = OrgId::new(&org.org_id)?;
    let admin_id = UserId::new("admin-1")?;
    let grants = StaticGrants::new().grant(
        &admin_id,
        &org_id,
        [Permission::UserCredentialWrite, Permission::UserWrite],
    );
    // The WebAuthn relying party: the site users enroll their passkeys on.
    let relying_party = WebauthnRelyingParty::new(RP_ID, "Example ID", &[ORIGIN])?;
    let service = PasskeyLinks::new(store.clone(), notifier.clone(), grants, Config::new(links))
        .with_relying_party(relying_party.clone());
    let admin = Caller::user(admin_id, org_id.clone());
    let me = Caller::user(UserId::new(&ada.user_id)?, org_id);

    let added = service
        .add_passwordless_registration(
            &admin,
            None,
            AddPasswordlessRegistrationRequest {
                user_id: ada.user_id.clone(),
            },
        )
        .await?;
    emit("add_passwordless_registration", "response", &added)?;

    let sent = service.send_my_passwordless_link(&me).await?;
    emit("send_my_passwordless_link", "response", &sent)?;

    let delivered = notifier.delivered();
    let Some(Envelope {
        idempotency_key,
        message:
            Message::RegistrationLink {
                recipient,
                user_id,
                org_id,
                code,
                link,
                expires_at,
                ..
            },
    }) = delivered.last()
    else {
        return Err("the notifier received no link".into());
    };
    let message = Delivered {
        recipient: recipient.as_str(),
        link: link.expose(),
        user_id: user_id.as_str(),
        org_id: org_id.as_str(),
        code: code.as_str(),
        expires_at: passkey_links::wire::timestamp::format(expires_at),
        idempotency_key,
    };
    emit("delivered", "message", &message)?;

    // What the login UI does when Ada opens the link: read the query, check the code, then run
    // the WebAuthn ceremony with it (a software authenticator stands in for her phone).
    let url = url::Url::parse(link.expose())?;
    let param = |key: &str| {
        url.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let (user, code_id, code) = (param("userID"), param("codeID"), param("code"));
    let checked = service
        .check_code(serde_json::from_value(
            json!({"userId": user, "codeId": code_id, "code": code}),
        )?)
        .await?;
    emit("check", "response", &checked)?;

    let register = json!({"userId": user, "code": {"id": code_id, "code": code}});
    let started = service
        .register_passkey(serde_json::from_value(register.clone())?)
        .await?;
    emit("register_passkey", "response", &started)?;

    let mut authenticator = SoftPasskey::new(true);
    let options: CreationChallengeResponse =
        serde_json::from_value(started.public_key_credential_creation_options.clone())?;
    let options = without_resident_key(options);
    let credential = authenticator
        .do_registration(Url::parse(ORIGIN)?, options)
        .map_err(|err| format!("authenticator: {err:?}"))?;
    let verify = json!({
        "userId": user,
        "passkeyId": started.passkey_id,
        "publicKeyCredential": credential,
        "passkeyName": "Ada's iPhone",
        "ceremonySecret": started.ceremony_secret,
    });
    let verified = service
        .verify_passkey_registration(serde_json::from_value(verify)?)
        .await?;
    emit("verify_passkey_registration", "response", &verified)?;

    let again = service
        .register_passkey(serde_json::from_value(register)?)
        .await
        .err()
        .ok_or("the same code was accepted twice")?;
    emit("register_again", "error", &again.to_body())?;

    // A login with the new passkey, as a login page runs it: start (here for the user Ada
    // names; without a user, any discoverable passkey), the authenticator answers, finish.
    let login = service
        .start_passkey_login(StartPasskeyLoginRequest {
            user_id: Some(user.clone()),
        })
        .await?;
    let challenge: RequestChallengeResponse =
        serde_json::from_value(login.public_key_credential_request_options.clone())?;
    let assertion = authenticator
        .do_authentication(Url::parse(ORIGIN)?, challenge)
        .map_err(|err| format!("authenticator: {err:?}"))?;
    let logged_in = service
        .finish_passkey_login(serde_json::from_value(json!({
            "loginState": login.login_state,
            "publicKeyCredential": assertion,
        }))?)
        .await?;
    emit("login", "result", &logged_in)?;

    let events: Vec<StoredEvent> = all_events()
        .await?
        .into_iter()
        .map(|e| StoredEvent {
            recorded_at: passkey_links::wire::timestamp::format(&e.recorded_at),
            stream: e.stream,
            version: e.version,
            event_type: e.event_type,
            schema_version: e.schema_version,
            payload: e.payload,
        })
        .collect();
    emit("events", "events", &events)?;
    Ok(())
}
