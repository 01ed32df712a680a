//! The quickstart flow, shared by the in-memory and the PostgreSQL examples: every step prints
//! one JSON line.

use std::future::Future;

use passkey_links::domain::NewPasskey;
use passkey_links::ids::StreamId;
use passkey_links::prelude::*;
use passkey_links::store::RecordedEvent;
use serde::Serialize;
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error>;

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
    let service = PasskeyLinks::new(store.clone(), notifier.clone(), grants, Config::new(links));
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

    // What the login UI does when Ada opens the link: read the query, check, then consume once
    // the WebAuthn ceremony produced a credential.
    let url = url::Url::parse(link.expose())?;
    let param = |key: &str| {
        url.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let presented =
        json!({"userId": param("userID"), "codeId": param("codeID"), "code": param("code")});
    let checked = service
        .check_code(serde_json::from_value(presented.clone())?)
        .await?;
    emit("check", "response", &checked)?;

    let mut consume = presented.clone();
    consume["passkey"] = json!({"credentialId": "cXVpY2tzdGFydC1jcmVk", "publicKey": "pQECAyYgASFYIA==", "name": "Ada's iPhone"});
    let _: NewPasskey = serde_json::from_value(consume["passkey"].clone())?;
    let consumed = service
        .consume_code(serde_json::from_value(consume.clone())?)
        .await?;
    emit("consume", "response", &consumed)?;

    let again = service
        .consume_code(serde_json::from_value(consume)?)
        .await
        .err()
        .ok_or("the same code was accepted twice")?;
    emit("consume_again", "error", &again.to_body())?;

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
