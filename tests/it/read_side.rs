//! The read side on every store: the read models a projection keeps (live links, audit
//! trails), their queries' authorization, and the projection runner's checkpoint.
#![allow(dead_code)]

use chrono::Duration;
use passkey_links::prelude::*;
use passkey_links::read::ProjectionStore;
use passkey_links::read::{ProjectionRunner, ReadModels};
use passkey_links::store::FeedEvent;
use serde_json::Value;

use crate::scenarios::{Fixture, Inspect, assert_clean, check_request, link_params};

/// A stream's owners: its user (if any) and its org.
type Owner = (Option<String>, String);

fn runner<S: EventStore + ProjectionStore + Clone>(
    store: &S,
) -> ProjectionRunner<S, ReadModels<S>> {
    ProjectionRunner::new(store.clone(), ReadModels::new(store.clone())).batch_size(7)
}

async fn live<S: EventStore + ProjectionStore + Clone + Inspect>(
    f: &Fixture<S>,
    caller: &Caller,
    user: &str,
) -> Result<Vec<LiveLink>, Error> {
    let request = ListLiveLinksRequest {
        user_id: user.to_owned(),
    };
    Ok(f.service
        .list_live_links(caller, None, request)
        .await?
        .result)
}

fn audit_of_user(user: &str, page_token: Option<String>, size: u32) -> ListAuditTrailRequest {
    ListAuditTrailRequest {
        user_id: Some(user.to_owned()),
        page_token,
        page_size: Some(size),
        ..Default::default()
    }
}

/// Every entry of a trail, page by page.
async fn whole_trail<S: EventStore + ProjectionStore + Clone + Inspect>(
    f: &Fixture<S>,
    request: impl Fn(Option<String>) -> ListAuditTrailRequest,
) -> Vec<AuditEvent> {
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let page = f
            .service
            .list_audit_trail(&Caller::System, None, request(token))
            .await
            .unwrap();
        all.extend(page.result);
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => return all,
        }
    }
}

pub async fn live_links_follow_issuance_delivery_checks_and_ends<
    S: EventStore + ProjectionStore + Clone + Inspect,
>(
    store: S,
) {
    let f = Fixture::new(store).await;
    let run = runner(&f.store);
    let returned = f.admin_link(&f.ada).await.unwrap();
    let (_, _, returned_id, _) = link_params(&returned.link);
    // Not projected yet: the read model trails the store.
    assert!(live(&f, &f.admin_a, &f.ada).await.unwrap().is_empty());
    assert!(run.catch_up().await.unwrap() > 0);
    let links = live(&f, &f.admin_a, &f.ada).await.unwrap();
    assert_eq!(links.len(), 1);
    let reference = |id: &str| CodeId::new(id).unwrap().reference().as_str().to_owned();
    assert_eq!(links[0].code_reference, reference(&returned_id));
    // The code id itself is not in the answer (it leaves only inside the link).
    assert!(
        !serde_json::to_string(&links)
            .unwrap()
            .contains(&returned_id)
    );
    assert_eq!(links[0].delivery, "RETURNED");
    assert_eq!(links[0].issued_at, f.clock.now());
    assert_eq!(links[0].expires_at, f.clock.now() + Duration::hours(1));

    // A sent link supersedes the returned one (one live link per user).
    f.clock.advance(Duration::seconds(5));
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
    let mail = f.notifier.last_link(&UserId::new(&f.ada).unwrap()).unwrap();
    let (user, _, sent_id, secret) = link_params(mail.expose());
    // Another last character (a secret ending in `x` stays wrong with `y`).
    let last = if secret.ends_with('x') { 'y' } else { 'x' };
    let wrong = format!("{}{last}", &secret[..secret.len() - 1]);
    f.service
        .check_code(check_request(&user, &sent_id, &wrong))
        .await
        .unwrap_err();
    run.catch_up().await.unwrap();
    let links = live(&f, &f.admin_a, &f.ada).await.unwrap();
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0].code_reference, reference(&sent_id));
    assert_eq!(links[0].delivery, "SENT");
    assert_eq!(links[0].failed_checks, 1);
    // The user sees their own; a reader with user.read in the org too.
    let ada = Caller::user(UserId::new(&f.ada).unwrap(), OrgId::new(&f.org_a).unwrap());
    assert_eq!(live(&f, &ada, &f.ada).await.unwrap(), links);
    assert_eq!(live(&f, &f.reader_a, &f.ada).await.unwrap(), links);

    // A lock kills it at once — the liveness rule reads the user's current state.
    f.service
        .update_user(&f.admin_a, None, &f.ada, UserChange::Lock)
        .await
        .unwrap();
    assert!(live(&f, &f.admin_a, &f.ada).await.unwrap().is_empty());
    f.service
        .update_user(&f.admin_a, None, &f.ada, UserChange::Unlock)
        .await
        .unwrap();
    assert!(live(&f, &f.admin_a, &f.ada).await.unwrap().is_empty());

    // A new link, revoked: gone once projected; another one expires.
    let fresh = f.admin_link(&f.ada).await.unwrap();
    let (_, _, fresh_id, _) = link_params(&fresh.link);
    run.catch_up().await.unwrap();
    assert_eq!(live(&f, &f.admin_a, &f.ada).await.unwrap().len(), 1);
    f.service
        .revoke_code(
            &f.admin_a,
            None,
            RevokeCodeRequest {
                user_id: f.ada.clone(),
                code_id: Some(fresh_id),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    run.catch_up().await.unwrap();
    assert!(live(&f, &f.admin_a, &f.ada).await.unwrap().is_empty());
    f.admin_link(&f.ada).await.unwrap();
    run.catch_up().await.unwrap();
    assert_eq!(live(&f, &f.admin_a, &f.ada).await.unwrap().len(), 1);
    f.clock.advance(Duration::hours(1));
    assert!(live(&f, &f.admin_a, &f.ada).await.unwrap().is_empty());
}

pub async fn audit_trails_list_every_event_newest_first_without_secrets<
    S: EventStore + ProjectionStore + Clone + Inspect,
>(
    store: S,
) {
    let f = Fixture::new(store).await;
    let mut secrets = Vec::new();
    for _ in 0..3 {
        let response = f.admin_link(&f.ada).await.unwrap();
        f.clock.advance(Duration::seconds(1));
        secrets.push(link_params(&response.link).3);
    }
    let (user, _, code_id, code) = link_params(&f.admin_link(&f.ada).await.unwrap().link);
    secrets.push(code.clone());
    f.enroll(&user, &code_id, &code).await.unwrap();
    f.admin_link(&f.carol).await.map(|_| ()).unwrap_err(); // carol is in org B: admin A cannot see her
    f.service
        .send_passwordless_registration(
            &f.admin_b,
            None,
            SendPasswordlessRegistrationRequest {
                user_id: f.carol.clone(),
            },
        )
        .await
        .unwrap();
    runner(&f.store).catch_up().await.unwrap();

    // What the trail must be, worked out from the stored events independently: the user's
    // stream and every stream whose first event names the user.
    let all = f.store.all_events().await;
    let owner = |event: &passkey_links::store::RecordedEvent| -> Option<Owner> {
        let first = all
            .iter()
            .find(|e| e.stream == event.stream && e.version == 1)?;
        let p = &first.payload;
        match first.event_type.as_str() {
            "org.added" => Some((None, event.stream.id().to_owned())),
            "user.human.added" | "user.machine.added" => Some((
                Some(event.stream.id().to_owned()),
                p["orgId"].as_str()?.to_owned(),
            )),
            _ => Some((
                Some(p["userId"].as_str()?.to_owned()),
                p["orgId"].as_str()?.to_owned(),
            )),
        }
    };
    let expected = |keep: &dyn Fn(&Owner) -> bool| -> Vec<(String, u64)> {
        let mut expected: Vec<(String, u64)> = all
            .iter()
            .filter(|e| owner(e).is_some_and(|o| keep(&o)))
            .map(|e| {
                // A code's stream is listed by its reference: its id stays in the link.
                let id = match e.stream.kind() {
                    passkey_links::ids::AggregateKind::Code => CodeId::new(e.stream.id())
                        .unwrap()
                        .reference()
                        .as_str()
                        .to_owned(),
                    _ => e.stream.id().to_owned(),
                };
                (format!("{}/{id}", e.stream.kind()), e.version)
            })
            .collect();
        expected.reverse();
        expected
    };
    let ada = f.ada.clone();
    let trail = whole_trail(&f, |token| audit_of_user(&ada, token, 4)).await;
    let seen: Vec<(String, u64)> = trail
        .iter()
        .map(|e| {
            (
                format!("{}/{}", e.aggregate_type, e.aggregate_id),
                e.sequence,
            )
        })
        .collect();
    let want = expected(&|(user, _)| user.as_deref() == Some(f.ada.as_str()));
    assert!(want.len() > 10, "{want:?}");
    assert_eq!(seen, want);
    assert!(
        trail.windows(2).all(|w| w[0].position > w[1].position),
        "newest first"
    );
    let org_a = f.org_a.clone();
    let org_trail = whole_trail(&f, |token| ListAuditTrailRequest {
        org_id: Some(org_a.clone()),
        page_token: token,
        page_size: Some(5),
        ..Default::default()
    })
    .await;
    let org_seen: Vec<(String, u64)> = org_trail
        .iter()
        .map(|e| {
            (
                format!("{}/{}", e.aggregate_type, e.aggregate_id),
                e.sequence,
            )
        })
        .collect();
    assert_eq!(org_seen, expected(&|(_, org)| *org == f.org_a));
    assert!(!org_seen.iter().any(|(s, _)| s.contains(&f.carol)));

    // Never a secret, a digest, key material or ceremony state.
    let text = serde_json::to_string(&org_trail).unwrap();
    assert_clean("audit trail", &text, &secrets);
    for entry in &org_trail {
        if let Value::Object(fields) = &entry.payload {
            for redacted in [
                "secretDigest",
                "publicKey",
                "adapterCredential",
                "ceremony",
                "codeId",
            ] {
                assert!(!fields.contains_key(redacted), "{entry:?}");
            }
        }
    }
    let digests: Vec<String> = all
        .iter()
        .filter_map(|e| e.payload.get("secretDigest")?.as_str().map(str::to_owned))
        .collect();
    assert!(!digests.is_empty());
    for digest in digests {
        assert!(!text.contains(&digest));
    }
    // A page past the end is empty; a bad token or size is InvalidArgument and reads nothing.
    let last = trail.last().unwrap().position.to_string();
    let past = f
        .service
        .list_audit_trail(&Caller::System, None, audit_of_user(&f.ada, Some(last), 10))
        .await
        .unwrap();
    assert!(past.result.is_empty() && past.next_page_token.is_none());
    for bad in [
        audit_of_user(&f.ada, Some("x".into()), 10),
        audit_of_user(&f.ada, None, 0),
        audit_of_user(&f.ada, None, 1001),
        ListAuditTrailRequest::default(),
        ListAuditTrailRequest {
            user_id: Some(f.ada.clone()),
            org_id: Some(f.org_a.clone()),
            ..Default::default()
        },
    ] {
        let err = f
            .service
            .list_audit_trail(&Caller::System, None, bad)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err:?}");
    }
}

/// A holder of `user.read` (or `org.read`) learns nothing a link could be guessed against or
/// exhausted with: no answer of the read side — live links, the user's and the org's audit
/// trail, the passkey list — carries a code id (or secret) of a mailed link, a returned one, or
/// one a passkey was registered with; wrong guesses need the code id, so the reader cannot
/// burn the user's link.
pub async fn readers_learn_no_code_id<S: EventStore + ProjectionStore + Clone + Inspect>(store: S) {
    let f = Fixture::new(store).await;
    let returned = f.admin_link(&f.ada).await.unwrap().link;
    let (user, _, used_id, used_secret) = link_params(&returned);
    f.enroll(&user, &used_id, &used_secret).await.unwrap();
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
    let mailed = f.notifier.last_link(&UserId::new(&f.ada).unwrap()).unwrap();
    let (_, _, mailed_id, mailed_secret) = link_params(mailed.expose());
    runner(&f.store).catch_up().await.unwrap();
    // The audit trails as any caller allowed to read them sees them (they are the same pages).
    let reader = &f.reader_a;
    let mut seen = serde_json::to_string(&live(&f, reader, &f.ada).await.unwrap()).unwrap();
    seen += &serde_json::to_string(&whole_trail(&f, |token| audit_of_user(&f.ada, token, 7)).await)
        .unwrap();
    let org_a = f.org_a.clone();
    seen += &serde_json::to_string(
        &whole_trail(&f, |token| ListAuditTrailRequest {
            org_id: Some(org_a.clone()),
            page_token: token,
            page_size: Some(9),
            ..Default::default()
        })
        .await,
    )
    .unwrap();
    seen += &serde_json::to_string(
        &f.service
            .list_passkeys(
                reader,
                None,
                ListPasskeysRequest {
                    user_id: f.ada.clone(),
                },
            )
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(seen.len() > 1_000, "the answers were read");
    assert_clean(
        "what a reader is shown",
        &seen,
        &[
            mailed_id.clone(),
            used_id,
            mailed_secret.clone(),
            used_secret,
        ],
    );
    // What it is shown instead — the reference — burns nothing: as a code id it names no code.
    let reference = CodeId::new(&mailed_id)
        .unwrap()
        .reference()
        .as_str()
        .to_owned();
    assert!(seen.contains(&reference));
    for _ in 0..5 {
        let guess = check_request(&f.ada, &reference, "guess-000000000000000000");
        assert!(f.service.check_code(guess).await.is_err());
    }
    f.service
        .check_code(check_request(&f.ada, &mailed_id, &mailed_secret))
        .await
        .expect("the mailed link still works");
}

pub async fn read_queries_are_authorized_like_commands<
    S: EventStore + ProjectionStore + Clone + Inspect,
>(
    store: S,
) {
    let f = Fixture::new(store).await;
    runner(&f.store).catch_up().await.unwrap();
    let org_trail = |org: &str| ListAuditTrailRequest {
        org_id: Some(org.to_owned()),
        ..Default::default()
    };
    let kind = |result: Result<_, Error>| result.map(|_: Vec<LiveLink>| ()).map_err(|e| e.kind());
    let trail_kind =
        |result: Result<ListAuditTrailResponse, Error>| result.map(|_| ()).map_err(|e| e.kind());
    // No grant in the user's org: exactly a nonexistent user's answer.
    for caller in [&f.nobody, &f.admin_b] {
        let nobody_ada = kind(live(&f, caller, &f.ada).await);
        let nobody_ghost = kind(live(&f, &f.admin_a, "ghost").await);
        if std::ptr::eq(caller, &f.admin_b) {
            assert_eq!(nobody_ada, nobody_ghost);
        }
        assert_eq!(nobody_ghost, Err(ErrorKind::NotFound));
    }
    assert_eq!(
        kind(live(&f, &f.admin_b, &f.ada).await),
        Err(ErrorKind::NotFound)
    );
    assert_eq!(
        trail_kind(
            f.service
                .list_audit_trail(&f.admin_b, None, audit_of_user(&f.ada, None, 10))
                .await
        ),
        Err(ErrorKind::NotFound)
    );
    // A grant in the org but not the permission: PermissionDenied. The user and readers: fine.
    let no_read = Caller::user(
        UserId::new("writer-a").unwrap(),
        OrgId::new(&f.org_a).unwrap(),
    );
    let _ = no_read;
    assert_eq!(kind(live(&f, &f.reader_a, &f.ada).await), Ok(()));
    let bob = Caller::user(UserId::new(&f.bob).unwrap(), OrgId::new(&f.org_a).unwrap());
    assert_eq!(kind(live(&f, &bob, &f.bob).await), Ok(()));
    assert_eq!(
        kind(live(&f, &bob, &f.ada).await),
        Err(ErrorKind::NotFound),
        "bob holds no grant"
    );
    assert_eq!(
        trail_kind(
            f.service
                .list_audit_trail(&f.reader_a, None, org_trail(&f.org_a))
                .await
        ),
        Err(ErrorKind::PermissionDenied),
        "user.read is not org.read"
    );
    assert_eq!(
        trail_kind(
            f.service
                .list_audit_trail(&f.admin_a, None, org_trail(&f.org_a))
                .await
        ),
        Ok(())
    );
    // Another org's trail: a caller without grants there cannot tell it from a missing org.
    let foreign = f
        .service
        .list_audit_trail(&f.admin_a, None, org_trail(&f.org_b))
        .await
        .unwrap_err();
    let missing = f
        .service
        .list_audit_trail(&Caller::System, None, org_trail("no-such-org"))
        .await
        .unwrap_err();
    assert_eq!(foreign.kind(), ErrorKind::NotFound);
    assert_eq!(foreign.to_string(), missing.to_string());
}

pub async fn the_runner_resumes_from_its_checkpoint<
    S: EventStore + ProjectionStore + Clone + Inspect,
>(
    store: S,
) {
    let f = Fixture::new(store).await;
    let first = runner(&f.store).catch_up().await.unwrap();
    let events = f.store.all_events().await.len() as u64;
    assert_eq!(first, events);
    let checkpoint = f
        .store
        .checkpoint(passkey_links::read::READ_MODELS)
        .await
        .unwrap();
    let feed: Vec<FeedEvent> = f.store.read_feed(0, 1000).await.unwrap();
    assert_eq!(checkpoint, feed.last().unwrap().feed_position);
    // A second runner (another process) starts where the first stopped.
    assert_eq!(runner(&f.store).catch_up().await.unwrap(), 0);
    f.admin_link(&f.ada).await.unwrap();
    assert_eq!(runner(&f.store).catch_up().await.unwrap(), 2);
    // Following: picks up what arrives, and stops when told.
    let run = runner(&f.store).poll_interval(std::time::Duration::from_millis(10));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let follow = run.follow(async {
        let _ = stopped.await;
    });
    let drive = async {
        f.service
            .update_user(&f.admin_a, None, &f.bob, UserChange::Lock)
            .await
            .unwrap();
        let feed = f.store.read_feed(0, 1000).await.unwrap();
        let target = feed.last().unwrap().feed_position;
        for _ in 0..500 {
            let at = f.store.checkpoint(passkey_links::read::READ_MODELS).await;
            if at.unwrap() >= target {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let at = f.store.checkpoint(passkey_links::read::READ_MODELS).await;
        stop.send(()).unwrap();
        (at.unwrap(), target)
    };
    let (followed, (at, target)) = tokio::join!(follow, drive);
    followed.unwrap();
    assert_eq!(at, target);
    assert_eq!(run.catch_up().await.unwrap(), 0);
}

/// One `#[tokio::test]` per read-side scenario for a backend (as `service_scenarios!`).
#[macro_export]
macro_rules! read_side_scenarios {
    ($store:ident) => {
        $crate::read_side_scenarios!(@each $store,
            live_links_follow_issuance_delivery_checks_and_ends,
            audit_trails_list_every_event_newest_first_without_secrets,
            read_queries_are_authorized_like_commands,
            readers_learn_no_code_id,
            the_runner_resumes_from_its_checkpoint
        );
    };
    (@each $store:ident, $($name:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some(store) = $store().await else { return };
            $crate::read_side::$name(store).await;
        }
    )*};
}
