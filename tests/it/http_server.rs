//! Drives the axum example over real HTTP on 127.0.0.1: every endpoint's success JSON and one
//! request per error class, with the exact error body.

#[path = "../../examples/axum_server/app.rs"]
#[allow(dead_code)]
mod app;

use app::demo;
use passkey_links::store::InMemoryStore;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::authenticator::Authenticator;

struct Server {
    /// Where requests go.
    base: String,
    /// What links point at (the WebAuthn relying party is its host).
    links: String,
    client: Client,
    app: std::sync::Arc<app::App<InMemoryStore>>,
}

async fn start() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let links = format!("http://localhost:{port}");
    let app = app::build(InMemoryStore::new(), &links).await.unwrap();
    let router = app::router(app.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Server {
        base: format!("http://127.0.0.1:{port}"),
        links,
        client: Client::new(),
        app,
    }
}

impl Server {
    async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .delete(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn get(&self, path_and_query: &str) -> (StatusCode, String) {
        let response = self
            .client
            .get(format!("{}{path_and_query}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    async fn get_as(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        org: Option<&str>,
        body: Value,
    ) -> (StatusCode, Value) {
        let mut request = self.client.post(format!("{}{path}", self.base)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(org) = org {
            request = request.header("x-zitadel-orgid", org);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

fn error_body(code: i32, message: &str, id: &str, key: &str) -> Value {
    json!({
        "code": code,
        "message": format!("{message} ({id})"),
        "details": [{"@type": "type.googleapis.com/zitadel.v1.ErrorDetail", "id": id, "message": key}]
    })
}

fn assert_details(details: &Value, sequence: &str, owner: &str) {
    assert_eq!(
        keys(details),
        ["changeDate", "creationDate", "resourceOwner", "sequence"]
    );
    assert_eq!(details["sequence"], json!(sequence));
    assert_eq!(details["resourceOwner"], json!(owner));
    assert!(details["changeDate"].as_str().unwrap().ends_with('Z'));
}

/// An `Idempotency-Key` header makes a retried request answer as the first one did: the same
/// link, one code issued; a bad key is a 400 before anything runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_the_same_idempotency_key_gets_the_same_link() {
    let s = start().await;
    let path = format!("/management/v1/users/{}/passwordless/_link", demo::ADA);
    let send = |key: &'static str| {
        s.client
            .post(format!("{}{path}", s.base))
            .bearer_auth(demo::ADMIN_TOKEN)
            .header("idempotency-key", key)
            .json(&json!({}))
            .send()
    };
    let first: Value = send("0f8e7d6c-retry").await.unwrap().json().await.unwrap();
    let events = s.app.service.store().len();
    let retry: Value = send("0f8e7d6c-retry").await.unwrap().json().await.unwrap();
    assert_eq!(retry, first, "the same answer, the same link");
    assert_eq!(s.app.service.store().len(), events, "nothing appended");
    let other: Value = send("another-key").await.unwrap().json().await.unwrap();
    assert_ne!(
        other["link"], first["link"],
        "another key is another request"
    );
    let response = send("not a key").await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // The same key on another user's link: another request under a used key is 422, and
    // nothing runs.
    let events = s.app.service.store().len();
    let response = s
        .client
        .post(format!(
            "{}/management/v1/users/{}/passwordless/_link",
            s.base,
            demo::BOB
        ))
        .bearer_auth(demo::ADMIN_TOKEN)
        .header("idempotency-key", "0f8e7d6c-retry")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["details"][0]["id"], "PKL-SVC-04");
    assert_eq!(s.app.service.store().len(), events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_over_http() {
    let s = start().await;
    let mgmt =
        |user: &str, action: &str| format!("/management/v1/users/{user}/passwordless/{action}");

    // AddPasswordlessRegistration.
    let (status, body) = s
        .post(
            &mgmt(demo::ADA, "_link"),
            Some(demo::ADMIN_TOKEN),
            None,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(keys(&body), ["details", "expiration", "link"]);
    assert_details(&body["details"], "1", demo::ACME);
    assert_eq!(body["expiration"], json!("3600s"));
    let prefix = format!(
        "{}/ui/login/login/passwordless/init?userID=ada&orgID=acme&codeID=",
        s.links
    );
    assert!(
        body["link"].as_str().unwrap().starts_with(&prefix),
        "{body}"
    );

    // SendPasswordlessRegistration, with the org header.
    let (status, body) = s
        .post(
            &mgmt(demo::ADA, "_send_link"),
            Some(demo::ADMIN_TOKEN),
            Some(demo::ACME),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(keys(&body), ["details"]);
    assert_details(&body["details"], "2", demo::ACME);

    // AddMyPasswordlessLink and SendMyPasswordlessLink (body `{}`).
    let (status, body) = s
        .post(
            "/auth/v1/users/me/passwordless/_link",
            Some(demo::ADA_TOKEN),
            None,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(keys(&body), ["details", "expiration", "link"]);
    let (status, body) = s
        .post(
            "/auth/v1/users/me/passwordless/_send_link",
            Some(demo::ADA_TOKEN),
            None,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(keys(&body), ["details"]);
    assert_details(&body["details"], "2", demo::ACME);

    // v2: sendLink with a template, then returnCode.
    let v2 = format!("/v2/users/{}/passkeys/registration_link", demo::CAROL);
    let template = format!(
        "{}/passkey/set?userId={{{{.UserID}}}}&code={{{{.Code}}}}",
        s.links
    );
    let (status, body) = s
        .post(
            &v2,
            Some(demo::GLOBEX_ADMIN_TOKEN),
            None,
            json!({"sendLink": {"urlTemplate": template}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(keys(&body), ["details"]);
    assert_details(&body["details"], "2", demo::GLOBEX);
    let (status, body) = s
        .post(
            &v2,
            Some(demo::GLOBEX_ADMIN_TOKEN),
            None,
            json!({"returnCode": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(keys(&body), ["code", "details"]);
    assert_details(&body["details"], "1", demo::GLOBEX);
    let code = body["code"].clone();
    assert_eq!(keys(&code), ["code", "id"]);

    // Check, then the WebAuthn ceremony over v2 RegisterPasskey / VerifyPasskeyRegistration.
    let presented = json!({"userId": demo::CAROL, "codeId": code["id"], "code": code["code"]});
    let (status, body) = s
        .post("/v1/passkey_links/_check", None, None, presented.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        keys(&body),
        ["details", "expirationDate", "orgId", "userId"]
    );
    assert_eq!(body["orgId"], json!(demo::GLOBEX));
    // The login UI page the link opens.
    let page = format!(
        "/ui/login/login/passwordless/init?userID={}&orgID={}&codeID={}&code={}",
        demo::CAROL,
        demo::GLOBEX,
        code["id"].as_str().unwrap(),
        code["code"].as_str().unwrap()
    );
    let (status, html) = s.get(&page).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("navigator.credentials.create"), "{html}");
    let register = json!({"code": code.clone()});
    let passkeys = format!("/v2/users/{}/passkeys", demo::CAROL);
    let (status, started) = s.post(&passkeys, None, None, register.clone()).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    assert_eq!(
        keys(&started),
        [
            "ceremonySecret",
            "details",
            "passkeyId",
            "publicKeyCredentialCreationOptions"
        ]
    );
    assert_eq!(
        started["publicKeyCredentialCreationOptions"]["publicKey"]["rp"]["id"],
        json!("localhost")
    );
    let passkey_id = started["passkeyId"].as_str().unwrap();
    let response =
        Authenticator::on(&s.links).create(&started["publicKeyCredentialCreationOptions"]);
    let (status, body) = s
        .post(
            &format!("{passkeys}/{passkey_id}"),
            None,
            None,
            json!({
                "publicKeyCredential": response,
                "passkeyName": "YubiKey",
                "ceremonySecret": started["ceremonySecret"],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(keys(&body), ["details"]);
    let sequence = |details: &Value| {
        details["sequence"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let verified_at = sequence(&started["details"]) + 1;
    assert_details(&body["details"], &verified_at.to_string(), demo::GLOBEX);
    let (status, listed) = s
        .post(
            &format!("{passkeys}/_search"),
            Some(demo::GLOBEX_ADMIN_TOKEN),
            None,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(
        listed["result"],
        json!([{"id": passkey_id, "state": "AUTH_FACTOR_STATE_READY", "name": "YubiKey"}])
    );
    assert_eq!(listed["details"]["totalResult"], json!("1"));
    // The used link now opens the clear "already used" page, never a stack trace.
    let (status, html) = s.get(&page).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("already been used"), "{html}");
    let (status, body) = s
        .delete(
            &format!("{passkeys}/{passkey_id}"),
            demo::GLOBEX_ADMIN_TOKEN,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_details(
        &body["details"],
        &(verified_at + 1).to_string(),
        demo::GLOBEX,
    );

    // ---- one request per error class, exact bodies ----
    let (status, body) = s
        .post(&mgmt(demo::ADA, "_link"), None, None, json!({}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        error_body(
            16,
            "no authenticated caller",
            "PKL-AUTH-01",
            "Errors.Token.Invalid"
        )
    );
    let (status, body) = s
        .post(
            &mgmt(demo::ADA, "_link"),
            Some("stolen-token"),
            None,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], json!(16));

    // Globex's admin names ACME as org context (ZITADEL's cross-org bug): it holds nothing in
    // ACME, so it learns nothing either — exactly the nonexistent user's answer.
    let (status, body) = s
        .post(
            &mgmt(demo::ADA, "_link"),
            Some(demo::GLOBEX_ADMIN_TOKEN),
            Some(demo::ACME),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        error_body(5, "user not found", "PKL-USER-01", "Errors.User.NotFound")
    );
    // ACME's support desk holds a grant in ACME, but not this one: denied.
    let (status, body) = s
        .post(
            &mgmt(demo::ADA, "_link"),
            Some(demo::SUPPORT_TOKEN),
            None,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        error_body(
            7,
            "permission user.credential.write missing in the user's organization",
            "PKL-AUTH-02",
            "Errors.PermissionDenied"
        )
    );

    let (status, body) = s
        .post(
            &mgmt(demo::CAROL, "_link"),
            Some(demo::ADMIN_TOKEN),
            None,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        error_body(5, "user not found", "PKL-USER-01", "Errors.User.NotFound")
    );

    let (status, body) = s.post(&passkeys, None, None, register).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        error_body(
            3,
            "the code is invalid",
            "PKL-CODE-02",
            "Errors.User.Code.Invalid"
        )
    );

    let (status, body) = s
        .post(
            "/auth/v1/users/me/passwordless/_send_link",
            Some(demo::BOB_TOKEN),
            None,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        error_body(
            9,
            "user has no verified email",
            "PKL-USER-07",
            "Errors.User.Email.NotVerified"
        )
    );

    // Carol had 2 links this hour; 3 more reach the limit of 5, the 6th is refused.
    for _ in 0..3 {
        let (status, _) = s
            .post(
                &mgmt(demo::CAROL, "_link"),
                Some(demo::GLOBEX_ADMIN_TOKEN),
                None,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, body) = s
        .post(
            &mgmt(demo::CAROL, "_link"),
            Some(demo::GLOBEX_ADMIN_TOKEN),
            None,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        body,
        error_body(
            8,
            "too many links issued for this user, try again later",
            "PKL-CODE-01",
            "Errors.User.Code.TooManyRequests"
        )
    );

    s.app.notifier.set_failing(true);
    let (status, body) = s
        .post(
            "/auth/v1/users/me/passwordless/_send_link",
            Some(demo::ADA_TOKEN),
            None,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        error_body(
            14,
            "the link could not be delivered; it does not work unless redelivered \
             (redeliver_code) — or request a new one",
            "PKL-NOTIFY-01",
            "Errors.Notification.Failed"
        )
    );

    // The failed link stays listed, with why; it can be redelivered — the same link — once
    // the notifier is back.
    s.app.notifier.set_failing(false);
    s.app.read_models.catch_up().await.unwrap();
    let listed = format!("/management/v1/users/{}/passwordless", demo::ADA);
    let (status, body) = s.get_as(&listed, demo::ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let failed = body["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|link| link["delivery"] == "FAILED")
        .unwrap_or_else(|| panic!("{body}"))
        .clone();
    assert_eq!(failed["failure"], "unavailable");
    let reference = failed["codeReference"].as_str().unwrap();
    let mails = s.app.notifier.delivered().len();
    let redeliver = format!(
        "/management/v1/users/{}/passwordless/{reference}/_redeliver",
        demo::ADA
    );
    let (status, body) = s
        .post(&redeliver, Some(demo::SUPPORT_TOKEN), None, json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a reader may not: {body}");
    let (status, body) = s
        .post(&redeliver, Some(demo::ADMIN_TOKEN), None, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(s.app.notifier.delivered().len(), mails + 1);
    let revoke = format!(
        "/management/v1/users/{}/passwordless/{reference}/_revoke",
        demo::ADA
    );
    let (status, body) = s
        .post(&revoke, Some(demo::ADMIN_TOKEN), None, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Directory sync over HTTP: ensure twice (the second changes nothing), read back.
    let ensure = json!({
        "userName": "hedy", "displayName": "Hedy", "email": "hedy@example.com",
        "isEmailVerified": true, "preferredLanguage": "de", "state": "ACTIVE"
    });
    let path = format!("/v1/orgs/{}/users/hedy", demo::ACME);
    for changed in [true, false] {
        let response = s
            .client
            .put(format!("{}{path}", s.base))
            .bearer_auth(demo::ADMIN_TOKEN)
            .json(&ensure)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["changed"], json!(changed), "{body}");
    }
    let (status, body) = s.get_as("/v2/users/hedy", demo::SUPPORT_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["human"]["email"]["email"], "hedy@example.com");
    let (status, _) = s.get_as("/v2/users/hedy", demo::GLOBEX_ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = s
        .get_as(&format!("/v1/orgs/{}", demo::ACME), demo::ADMIN_TOKEN)
        .await;
    assert_eq!(
        (status, body["org"]["name"].clone()),
        (StatusCode::OK, json!("ACME"))
    );

    // Health and metrics.
    let (status, body) = s.get("/healthz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert!(
        health["projections"][0]["lag"].as_u64().unwrap() > 0,
        "{health}"
    );
    s.app.read_models.catch_up().await.unwrap();
    let (_, body) = s.get("/healthz").await;
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["projections"][0]["lag"], 0, "{health}");
    let (status, body) = s.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    // The library records them only with its `metrics` feature on.
    let recorded = if cfg!(feature = "metrics") {
        &[
            "passkey_links_operations_total",
            "passkey_links_deliveries_total",
            "passkey_links_projection_lag",
        ][..]
    } else {
        &[]
    };
    for metric in recorded {
        assert!(body.contains(metric), "{metric} in {body}");
    }

    // A malformed body is InvalidArgument in the same error shape.
    let (status, body) = s
        .post(
            &v2,
            Some(demo::GLOBEX_ADMIN_TOKEN),
            None,
            json!({"sendLink": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], json!(3));
}
