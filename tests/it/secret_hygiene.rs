//! Secret hygiene: across every flow, no plaintext secret (raw, base64 or hex) reaches a stored
//! event, an error body, or the `Debug` output of a public type.

use passkey_links::domain::{CheckCode, PresentCode};
use passkey_links::prelude::*;
use passkey_links::testing::given;
use passkey_links::{LinkValues, UrlTemplate};

use crate::scenarios::{
    Fixture, assert_clean, check_request, link_params, register_request, verify_request,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_events_errors_or_debug_output() {
    let store = InMemoryStore::new();
    let f = Fixture::new(store.clone()).await;
    let mut secrets = Vec::new();
    let mut debug = Vec::new();
    let mut errors = Vec::new();

    // Every issuing flow.
    let added = f
        .service
        .add_passwordless_registration(
            &f.admin_a,
            None,
            AddPasswordlessRegistrationRequest {
                user_id: f.ada.clone(),
            },
        )
        .await
        .unwrap();
    debug.push(format!("{added:?}"));
    secrets.push(link_params(&added.link).3);
    let mine = f
        .service
        .add_my_passwordless_link(&f.me(&f.carol))
        .await
        .unwrap();
    debug.push(format!("{mine:?}"));
    secrets.push(link_params(&mine.link).3);
    let returned = f
        .service
        .create_passkey_registration_link(
            &f.admin_a,
            CreatePasskeyRegistrationLinkRequest {
                user_id: f.ada.clone(),
                send_link: None,
                return_code: Some(ReturnCode {}),
            },
        )
        .await
        .unwrap();
    debug.push(format!("{returned:?}"));
    let returned_code = returned.code.clone().unwrap();
    secrets.push(returned_code.code.clone());
    f.service
        .send_passwordless_registration(
            &f.admin_a,
            None,
            SendPasswordlessRegistrationRequest {
                user_id: f.ada.clone(),
            },
        )
        .await
        .unwrap();
    f.service
        .send_my_passwordless_link(&f.me(&f.carol))
        .await
        .unwrap();
    f.service
        .create_passkey_registration_link(
            &f.admin_a,
            CreatePasskeyRegistrationLinkRequest {
                user_id: f.ada.clone(),
                send_link: Some(SendLink {
                    url_template: Some(
                        "https://app.example.com/set?c={{.Code}}&i={{.CodeID}}".into(),
                    ),
                }),
                return_code: None,
            },
        )
        .await
        .unwrap();
    for envelope in f.notifier.delivered() {
        debug.push(format!("{envelope:?}"));
        debug.push(format!("{:?}", envelope.message));
        if let Message::RegistrationLink { link, .. } = &envelope.message {
            debug.push(format!("{link:?}"));
            let url = url::Url::parse(link.expose()).unwrap();
            let code = url
                .query_pairs()
                .find(|(k, _)| k == "code" || k == "c")
                .unwrap()
                .1
                .into_owned();
            secrets.push(code);
        }
    }
    assert_eq!(secrets.len(), 6, "one secret per issued link");

    // Redemption flows, successful and failed, with their requests' Debug output.
    let (user, _, code_id, code) = link_params(&added.link);
    let request = check_request(&user, &code_id, &code);
    debug.push(format!("{request:?}"));
    // Ada's returned-link code was superseded by later links: every redemption fails.
    errors.push(f.service.check_code(request).await.unwrap_err());
    let register = register_request(&user, &code_id, &code);
    debug.push(format!("{register:?}"));
    errors.push(f.service.register_passkey(register).await.unwrap_err());
    let latest = f
        .notifier
        .last_link(&UserId::new(&f.carol).unwrap())
        .unwrap();
    let (user, _, code_id, code) = link_params(latest.expose());
    let enrolled = f.enroll(&user, &code_id, &code).await.unwrap();
    debug.push(format!("{:?}", enrolled.response));
    errors.push(
        f.service
            .register_passkey(register_request(&user, &code_id, &code))
            .await
            .unwrap_err(),
    );
    errors.push(
        f.service
            .verify_passkey_registration(verify_request(
                &user,
                &enrolled.started,
                &enrolled.response,
            ))
            .await
            .unwrap_err(),
    );

    // Domain values that hold secrets.
    let secret = Secret::presented(code.clone());
    debug.push(format!("{secret:?}"));
    let decision = CheckCode(PresentCode {
        user_id: UserId::new(&user).unwrap(),
        code_id: CodeId::new(&code_id).unwrap(),
        secret: secret.clone(),
    });
    debug.push(format!("{decision:?}"));
    let outcome = given([]).when(&decision, f.clock.now());
    debug.push(format!("{:?}", outcome.outcome()));
    let template = UrlTemplate::parse("https://id.example.com/x?c={{.Code}}").unwrap();
    let values = LinkValues {
        user_id: &UserId::new(&user).unwrap(),
        org_id: &OrgId::new(&f.org_a).unwrap(),
        code_id: &CodeId::new(&code_id).unwrap(),
        secret: &secret,
    };
    debug.push(format!("{values:?}"));
    debug.push(format!(
        "{:?}",
        f.service
            .config()
            .links()
            .render_template(&template, &values)
    ));
    debug.push(format!("{:?}", f.service));
    debug.push(format!("{store:?}"));
    debug.push(format!("{:?}", f.notifier));

    for error in &errors {
        assert_clean(
            "an error body",
            &serde_json::to_string(&error.to_body()).unwrap(),
            &secrets,
        );
        assert_clean("an error", &format!("{error:?} {error}"), &secrets);
    }
    for text in &debug {
        assert_clean("Debug output", text, &secrets);
    }
    let events = store.all_events();
    assert!(events.len() > 20);
    for event in events {
        let stored = format!("{} {} {}", event.event_type, event.stream, event.payload);
        assert_clean("a stored event", &stored, &secrets);
    }
}
