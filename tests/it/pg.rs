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

/// Connection options for sqlx from the database URL.
#[cfg(feature = "sqlx-postgres")]
pub fn sqlx_options() -> Option<sqlx::postgres::PgConnectOptions> {
    let url = database_url()?;
    Some(passkey_links::store::sqlx::parse_options(&url).expect("database URL"))
}

/// An application's sqlx pool (default settings) whose search path is `schema`.
#[cfg(feature = "sqlx-postgres")]
pub fn sqlx_pool(schema: &str, max_connections: u32) -> Option<sqlx::PgPool> {
    let options = sqlx_options()?.options([("search_path", schema)]);
    Some(
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(max_connections)
            .connect_lazy_with(options),
    )
}

/// An sqlx store on a fresh schema, migrated by the store.
#[cfg(feature = "sqlx-postgres")]
pub async fn sqlx_store() -> Option<passkey_links::store::sqlx::SqlxStore> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let schema = format!(
        "x_{}_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let store = passkey_links::store::sqlx::SqlxStore::new(sqlx_pool("public", 24)?)
        .in_schema(&schema)
        .expect("schema name");
    store.migrate().await.expect("migrate");
    Some(store)
}

/// A `pg_dump` of `schema`: every table, as an operator's backup holds it.
pub async fn dump_schema(schema: &str) -> String {
    let url = database_url().expect("a database");
    let schema = schema.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(pg_dump())
            .args(["--no-owner", "--schema", &schema, "--dbname", &url])
            .output()
            .expect("pg_dump runs")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dump = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(dump.contains("passkey_links_events"), "a dump of the store");
    dump
}

/// The `pg_dump` beside the server's binaries (`PG_DUMP` names another).
fn pg_dump() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("PG_DUMP") {
        return path.into();
    }
    let mut found: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|version| version.path().join("bin/pg_dump"))
        .filter(|path| path.exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| "pg_dump".into())
}
