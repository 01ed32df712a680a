//! Test access to PostgreSQL: a fresh schema per store, from `PASSKEY_LINKS_DATABASE_URL`.
#![allow(dead_code)]

use std::io::Write;

/// Says a test was skipped. Written to stderr directly, so that the test harness's output
/// capture does not hide it in a passing run.
pub fn skipped(why: &str) {
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
}

/// The database URL, or `None` after printing why the caller is skipped.
pub fn database_url() -> Option<String> {
    match std::env::var("PASSKEY_LINKS_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            skipped("no database (set PASSKEY_LINKS_DATABASE_URL, or run scripts/test-all.sh)");
            None
        }
    }
}

/// A store in a fresh schema that nothing migrated yet.
#[cfg(feature = "postgres")]
pub async fn fresh_schema_store() -> Option<passkey_links::store::postgres::PostgresStore> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let url = database_url()?;
    let schema = format!(
        "f_{}_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    Some(
        passkey_links::store::postgres::PostgresStore::connect(&url, 4)
            .expect("database configuration")
            .in_schema(&schema)
            .expect("schema name"),
    )
}

#[cfg(feature = "postgres")]
pub async fn store() -> Option<passkey_links::store::postgres::PostgresStore> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let url = database_url()?;
    let schema = format!(
        "t_{}_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let store = passkey_links::store::postgres::PostgresStore::connect(&url, 24)
        .expect("database configuration")
        .in_schema(&schema)
        .expect("schema name");
    store.migrate().await.expect("migrate");
    Some(store)
}
