//! The quickstart flow against PostgreSQL.
//!
//! ```sh
//! DATABASE_URL="postgres://user:password@localhost:5432/db" \
//!     cargo run --features postgres --example postgres
//! ```
//!
//! `DATABASE_URL` (or `PASSKEY_LINKS_DATABASE_URL`) is a URL or a libpq key/value string such as
//! `host=/var/run/postgresql user=postgres`. Each run uses a fresh schema (`quickstart_<time>`),
//! dropped at the end unless `KEEP_SCHEMA=1`.

mod support;

use passkey_links::store::postgres::PostgresStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL")
        .or_else(|_| std::env::var("PASSKEY_LINKS_DATABASE_URL"))
        .map_err(|_| "set DATABASE_URL to a PostgreSQL connection string")?;
    let schema = format!("quickstart_{}", chrono::Utc::now().timestamp_micros());
    let store = PostgresStore::connect(&url, 4)?.in_schema(&schema)?;
    store.migrate().await?;
    let events = store.clone();
    let result = support::run(store.clone(), || {
        let events = events.clone();
        async move { Ok(events.all_events().await?) }
    })
    .await;
    if std::env::var("KEEP_SCHEMA").as_deref() != Ok("1") {
        let client = store.pool().get().await?;
        client
            .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await?;
    }
    result
}
