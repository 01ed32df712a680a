//! Logs (feature `tracing`) carry ids, outcomes and error kinds but never a secret.
//!
//! Its own test binary with a global subscriber: tracing caches per-callsite interest
//! process-wide, so a thread-local subscriber raced other tests hitting the same callsites.

#[path = "it/authenticator.rs"]
mod authenticator;
#[path = "it/scenarios.rs"]
mod scenarios;

#[cfg(not(feature = "tracing"))]
#[test]
fn log_hygiene() {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "skipped: log hygiene needs the `tracing` feature (scripts/test-all.sh runs it)"
    );
}

#[cfg(feature = "tracing")]
mod logs {
    use passkey_links::prelude::*;

    use super::scenarios::{Fixture, assert_clean, check_request, link_params};

    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    // The only test in this binary: the global subscriber sees everything it does.
    #[tokio::test]
    async fn logs_carry_ids_and_outcomes_but_no_secret() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();

        let f = Fixture::new(InMemoryStore::new()).await;
        let added = f
            .service
            .add_my_passwordless_link(&f.me(&f.ada))
            .await
            .unwrap();
        let (user, _, code_id, code) = link_params(&added.link);
        f.service
            .check_code(check_request(&user, &code_id, "wrong"))
            .await
            .unwrap_err();
        f.enroll(&user, &code_id, &code).await.unwrap();
        f.service
            .send_my_passwordless_link(&f.me(&f.carol))
            .await
            .unwrap();
        let sent = f
            .notifier
            .last_link(&UserId::new(&f.carol).unwrap())
            .unwrap();
        let sent_code = link_params(sent.expose()).3;

        // A person synced, renamed, re-addressed and erased: no name or address is logged.
        let person = |name: &str, email: &str| EnsureHumanUserRequest {
            user_id: "lena".into(),
            user_name: "lena.loggedout".into(),
            display_name: name.into(),
            email: email.into(),
            is_email_verified: true,
            ..Default::default()
        };
        let sys = Caller::System;
        for (name, email) in [
            ("Lena Loggedout", "lena.loggedout@example.org"),
            ("Lena Renamedlog", "lena.readdressed@example.org"),
        ] {
            f.service
                .ensure_human_user(&sys, Some(&f.org_a), person(name, email))
                .await
                .unwrap();
        }
        f.service
            .erase_user_personal_data(&sys, None, "lena")
            .await
            .unwrap();
        f.service
            .ensure_human_user(
                &sys,
                Some(&f.org_a),
                person("Lena Loggedout", "x@example.org"),
            )
            .await
            .unwrap_err();

        let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("erase_user_personal_data"), "{log}");
        for personal in ["Loggedout", "Renamedlog", "lena.", "example.org"] {
            assert!(!log.contains(personal), "{personal} reached the log: {log}");
        }
        assert!(
            log.contains("passkey_links.add_my_passwordless_link"),
            "{log}"
        );
        // Logs name a code by its derived reference, never by its confidential id.
        let reference = CodeId::new(&code_id).unwrap().reference();
        assert!(log.contains(&format!("code=\"{reference}\"")), "{log}");
        assert!(
            !log.contains(&code_id),
            "the code id reached the log: {log}"
        );
        assert!(
            log.contains("InvalidArgument"),
            "failures carry their kind: {log}"
        );
        assert_clean("the log", &log, &[code, sent_code]);
    }
}
