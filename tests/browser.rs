//! A real browser enrolls a passkey from the emailed link and signs in with it: headless
//! Chromium with a virtual WebAuthn authenticator (Chrome DevTools Protocol `WebAuthn` domain:
//! CTAP2, internal transport, resident keys, user verification), driven over CDP by
//! chromiumoxide, against the axum example on loopback.
//!
//! Without a Chromium binary (`CHROMIUM`, or `chromium` / `chromium-browser` on the PATH) it
//! prints `skipped: no chromium` and passes; `.ci/run` installs Debian's `chromium`.

#[path = "../examples/axum_server/app.rs"]
#[allow(dead_code)]
mod app;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::emulation::SetFocusEmulationEnabledParams;
use chromiumoxide::cdp::browser_protocol::target::CreateTargetParams;
use chromiumoxide::cdp::browser_protocol::web_authn::{
    AddVirtualAuthenticatorParams, AuthenticatorId, AuthenticatorProtocol, AuthenticatorTransport,
    Ctap2Version, EnableParams, GetCredentialsParams, VirtualAuthenticatorOptions,
};
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::page::{Page, ScreenshotParams};
use futures::StreamExt;
use passkey_links::domain::CredentialId;
use passkey_links::prelude::*;
use passkey_links::store::InMemoryStore;
use serde_json::{Value, json};

fn chromium() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

type App = Arc<app::App<InMemoryStore>>;

/// The axum example on 127.0.0.1, with links (and the WebAuthn origin) on `localhost`.
async fn serve() -> (App, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://localhost:{}", listener.local_addr().unwrap().port());
    let app = app::build(InMemoryStore::new(), &base).await.unwrap();
    let router = app::router(app.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (app, base)
}

async fn launch(executable: PathBuf) -> Browser {
    let profile = std::env::temp_dir().join(format!(
        "passkey-links-chromium-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    ));
    let config = BrowserConfig::builder()
        .chrome_executable(executable)
        .new_headless_mode()
        .no_sandbox()
        .user_data_dir(profile)
        .window_size(900, 700)
        .request_timeout(Duration::from_secs(30))
        .args([
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
        ])
        .build()
        .unwrap();
    let (browser, mut handler) = Browser::launch(config).await.unwrap();
    tokio::spawn(async move { while handler.next().await.is_some() {} });
    browser
}

/// A tab with its own virtual authenticator: a platform passkey provider with user
/// verification and resident keys, present and verifying automatically.
async fn tab(browser: &Browser) -> (Page, AuthenticatorId) {
    // A window of its own, and focus emulated: WebAuthn needs a focused document, and racing
    // tabs must both have it.
    let target = CreateTargetParams::builder()
        .url("about:blank")
        .new_window(true)
        .build()
        .unwrap();
    let page = browser.new_page(target).await.unwrap();
    page.execute(SetFocusEmulationEnabledParams::new(true))
        .await
        .unwrap();
    page.execute(EnableParams::default()).await.unwrap();
    let options = VirtualAuthenticatorOptions::builder()
        .protocol(AuthenticatorProtocol::Ctap2)
        .ctap2_version(Ctap2Version::Ctap21)
        .transport(AuthenticatorTransport::Internal)
        .has_resident_key(true)
        .has_user_verification(true)
        .is_user_verified(true)
        .automatic_presence_simulation(true)
        .build()
        .unwrap();
    let added = page
        .execute(AddVirtualAuthenticatorParams::new(options))
        .await
        .unwrap();
    (page, added.result.authenticator_id)
}

async fn eval(page: &Page, js: &str) -> Value {
    let params = EvaluateParams::builder()
        .expression(js)
        .await_promise(true)
        .return_by_value(true)
        .build()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(15), page.evaluate_expression(params))
        .await
        .expect("the page answers within 15 s")
        .unwrap()
        .value()
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits until the enrollment page shows its outcome: `true` for success.
async fn outcome(page: &Page) -> bool {
    for _ in 0..200 {
        let shown = eval(
            page,
            "({ok: !document.getElementById('success').hidden, \
              failed: !document.getElementById('failure').hidden, \
              text: document.getElementById('failure').textContent})",
        )
        .await;
        if shown["ok"] == json!(true) {
            return true;
        }
        if shown["failed"] == json!(true) {
            say(&format!(
                "a tab was refused (one of two racing tabs must be): {}",
                shown["text"]
            ));
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the enrollment page showed no outcome");
}

async fn open_and_register(page: &Page, link: &str) {
    page.goto(link).await.unwrap();
    page.find_element("#register")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Clicks "Sign in with a passkey" on the sign-in page and waits for its outcome: the user
/// signed in, or the failure it showed.
async fn sign_in(page: &Page) -> Result<String, String> {
    eval(page, "document.getElementById('sign-in').click()").await;
    for _ in 0..200 {
        let shown = eval(
            page,
            "({ok: !document.getElementById('signed-in').hidden, \
              user: document.getElementById('signed-in').dataset.userId ?? null, \
              failed: !document.getElementById('login-failed').hidden, \
              text: document.getElementById('login-failed').textContent, \
              busy: document.getElementById('sign-in').disabled})",
        )
        .await;
        if shown["busy"] == json!(false) {
            if shown["ok"] == json!(true) {
                return Ok(shown["user"].as_str().unwrap_or_default().to_owned());
            }
            if shown["failed"] == json!(true) {
                return Err(shown["text"].as_str().unwrap_or_default().to_owned());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the sign-in page showed no outcome");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_enrolls_a_passkey_from_the_emailed_link_and_signs_in_with_it() {
    let Some(executable) = chromium() else {
        say("skipped: no chromium");
        return;
    };
    tokio::time::timeout(Duration::from_secs(110), journey(executable))
        .await
        .expect("the browser journey took longer than 110 s");
}

async fn journey(executable: PathBuf) {
    let (app, base) = serve().await;
    let mut browser = launch(executable).await;
    let ada = UserId::new(app::demo::ADA).unwrap();

    // The admin has the link emailed; the browser opens it from the mail.
    app.service
        .send_passwordless_registration(
            &Caller::System,
            None,
            SendPasswordlessRegistrationRequest {
                user_id: ada.as_str().into(),
            },
        )
        .await
        .unwrap();
    let link = app.notifier.last_link(&ada).unwrap();
    let (page, authenticator) = tab(&browser).await;
    open_and_register(&page, link.expose()).await;
    assert!(outcome(&page).await, "the enrollment succeeded");
    let png = tokio::time::timeout(
        Duration::from_secs(15),
        page.screenshot(ScreenshotParams::builder().build()),
    )
    .await
    .expect("a screenshot within 15 s")
    .unwrap();
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser");
    std::fs::create_dir_all(&shots).unwrap();
    std::fs::write(shots.join("enroll-success.png"), png).unwrap();

    // The library stores the virtual authenticator's own (resident) credential.
    let credentials = page
        .execute(GetCredentialsParams::new(authenticator))
        .await
        .unwrap()
        .result
        .credentials;
    assert_eq!(credentials.len(), 1);
    assert!(credentials[0].is_resident_credential);
    let raw = STANDARD
        .decode(AsRef::<str>::as_ref(&credentials[0].credential_id))
        .unwrap();
    let credential_id = CredentialId::new(raw).unwrap();
    let listed = app
        .service
        .list_passkeys(
            &Caller::System,
            None,
            ListPasskeysRequest {
                user_id: ada.as_str().into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.result.len(), 1);
    assert_eq!(listed.result[0].name, "My passkey");

    // Signing in from the example's sign-in page: a discoverable login with the passkey the
    // virtual authenticator keeps (it returns the user handle itself).
    page.goto(format!("{base}/login")).await.unwrap();
    assert_eq!(sign_in(&page).await, Ok(ada.as_str().to_owned()));
    let png = tokio::time::timeout(
        Duration::from_secs(15),
        page.screenshot(ScreenshotParams::builder().build()),
    )
    .await
    .expect("a screenshot within 15 s")
    .unwrap();
    std::fs::write(shots.join("sign-in-success.png"), png).unwrap();
    // Locked, the same passkey signs in no more: the page says only that it failed.
    app.service
        .update_user(&Caller::System, None, ada.as_str(), UserChange::Lock)
        .await
        .unwrap();
    let refused = sign_in(&page).await.unwrap_err();
    assert!(refused.contains("login failed"), "{refused}");
    app.service
        .update_user(&Caller::System, None, ada.as_str(), UserChange::Unlock)
        .await
        .unwrap();
    assert_eq!(sign_in(&page).await, Ok(ada.as_str().to_owned()));
    let _ = credential_id;

    // The same link again: the clear "already used" page.
    page.goto(link.expose()).await.unwrap();
    let invalid = eval(
        &page,
        "document.getElementById('link-invalid')?.textContent ?? ''",
    )
    .await;
    assert!(
        invalid.as_str().unwrap().contains("already been used"),
        "{invalid}"
    );
    // Two tabs racing one link: at most one passkey.
    let carol = UserId::new(app::demo::CAROL).unwrap();
    app.service
        .send_passwordless_registration(
            &Caller::System,
            None,
            SendPasswordlessRegistrationRequest {
                user_id: carol.as_str().into(),
            },
        )
        .await
        .unwrap();
    let link = app.notifier.last_link(&carol).unwrap();
    let (first, _) = tab(&browser).await;
    let (second, _) = tab(&browser).await;
    for page in [&first, &second] {
        page.goto(link.expose()).await.unwrap();
    }
    // Clicked from script: a background tab is not rendered, so it takes no pointer input.
    let click = |page: &Page| {
        let page = page.clone();
        async move {
            eval(&page, "document.getElementById('register').click()").await;
        }
    };
    for page in [&first, &second] {
        let focused = eval(page, "document.hasFocus()").await;
        assert_eq!(focused, json!(true), "a racing tab has the focus");
    }
    futures::join!(click(&first), click(&second));
    let (a, b) = futures::join!(outcome(&first), outcome(&second));
    let listed = app
        .service
        .list_passkeys(
            &Caller::System,
            None,
            ListPasskeysRequest {
                user_id: carol.as_str().into(),
            },
        )
        .await
        .unwrap();
    let ready = listed
        .result
        .iter()
        .filter(|p| p.state == passkey_links::domain::PasskeyState::Ready)
        .count();
    assert_eq!(ready, 1, "one passkey from two racing tabs");
    assert!(a ^ b, "exactly one tab succeeded: {a} {b}");

    // A dead link's page offers a fresh one: Carol's first link is superseded by a second; opening the first shows the page, its button has a new link mailed to the
    // address on file, and that link enrolls.
    let send_carol = || {
        app.service.send_passwordless_registration(
            &Caller::System,
            None,
            SendPasswordlessRegistrationRequest {
                user_id: carol.as_str().into(),
            },
        )
    };
    send_carol().await.unwrap();
    let superseded = app.notifier.last_link(&carol).unwrap();
    send_carol().await.unwrap();
    let newest = app.notifier.last_link(&carol).unwrap();
    let (page, _) = tab(&browser).await;
    page.goto(superseded.expose()).await.unwrap();
    eval(&page, "document.getElementById('renew').click()").await;
    let mut renewed = false;
    for _ in 0..100 {
        let sent = eval(&page, "!document.getElementById('renew-sent').hidden").await;
        if sent == json!(true) {
            renewed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(renewed, "the page acknowledged the request");
    let fresh = app.notifier.last_link(&carol).unwrap();
    assert_ne!(fresh.expose(), newest.expose(), "a new link was mailed");
    let png = tokio::time::timeout(
        Duration::from_secs(15),
        page.screenshot(ScreenshotParams::builder().build()),
    )
    .await
    .expect("a screenshot within 15 s")
    .unwrap();
    std::fs::write(shots.join("fresh-link-requested.png"), png).unwrap();
    open_and_register(&page, fresh.expose()).await;
    assert!(outcome(&page).await, "the fresh link enrolls");

    browser.close().await.unwrap();
    let _ = browser.wait().await;
}
