//! A directory sync at scale, in memory (the scenario on every store is
//! `scenarios::a_directory_sync_appends_only_what_differs`).

use passkey_links::prelude::*;

use crate::scenarios::Fixture;

/// Ten thousand unchanged users: the second sync appends nothing (in memory: the count, not
/// the time, is the point; BENCHMARKS.md has the time per user).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sync_of_ten_thousand_unchanged_users_appends_nothing() {
    let store = passkey_links::store::InMemoryStore::new();
    let f = Fixture::new(store.clone()).await;
    let sys = Caller::System;
    let person = |n: usize| EnsureHumanUserRequest {
        user_id: format!("u{n}"),
        user_name: format!("user{n}"),
        display_name: format!("User {n}"),
        email: format!("user{n}@example.com"),
        is_email_verified: !n.is_multiple_of(3),
        ..Default::default()
    };
    for run in 0..2 {
        let before = store.len();
        let mut changed = 0;
        for n in 0..10_000 {
            let ensured = f
                .service
                .ensure_human_user(&sys, Some(&f.org_a), person(n))
                .await
                .unwrap();
            changed += usize::from(ensured.changed);
        }
        if run == 0 {
            assert_eq!(changed, 10_000);
        } else {
            assert_eq!(
                (changed, store.len()),
                (0, before),
                "the second sync appended"
            );
        }
    }
}
