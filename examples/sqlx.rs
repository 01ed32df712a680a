//! The quickstart flow on the sqlx store: the application's own `sqlx::PgPool`, handed in as
//! it is (no session settings of the library's).
//!
//! ```sh
//! DATABASE_URL="postgres://user:password@localhost:5432/db" \
//!     cargo run --features sqlx-postgres --example sqlx
//! ```
//!
//! `DATABASE_URL` (or `PASSKEY_LINKS_DATABASE_URL`) is a URL or a libpq key/value string such as
//! `host=/var/run/postgresql user=postgres`. Each run uses a fresh schema (`quickstart_<time>`),
//! dropped at the end unless `KEEP_SCHEMA=1`.

mod support;

use passkey_links::store::sqlx::{SqlxStore, parse_options, sqlx};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL")
        .or_else(|_| std::env::var("PASSKEY_LINKS_DATABASE_URL"))
        .map_err(|_| "set DATABASE_URL to a PostgreSQL connection string")?;
    // The application's pool, as it already has one.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(parse_options(&url)?)
        .await?;
    let schema = format!("quickstart_{}", chrono::Utc::now().timestamp_micros());
    let store = SqlxStore::new(pool.clone()).in_schema(&schema)?;
    store.migrate().await?;
    let events = store.clone();
    let result = support::run(store, || {
        let events = events.clone();
        async move { Ok(events.all_events().await?) }
    })
    .await;
    if std::env::var("KEEP_SCHEMA").as_deref() != Ok("1") {
        sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .execute(&pool)
            .await?;
    }
    result
}
