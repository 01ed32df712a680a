//! An application with its own deadpool 0.13 pool uses the library's store beside it.

use passkey_links::store::EventStore;
use passkey_links::store::postgres::{ConnectOptions, PostgresStore, parse_config};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "host=/tmp user=postgres".into());
    // The application's own pool, on its deadpool version.
    let config: tokio_postgres::Config = url.parse()?;
    let manager = deadpool_postgres::Manager::new(config.clone(), tokio_postgres::NoTls);
    let own = deadpool_postgres::Pool::builder(manager).max_size(4).build()?;
    // The library's store, from the same driver configuration: no deadpool type crosses.
    let store = PostgresStore::connect_with(parse_config(&url)?, ConnectOptions::default())?;
    // Or from the library's own re-export, when the application wants the store's pool type.
    let _pool: &passkey_links::store::postgres::deadpool_postgres::Pool = store.pool();
    if std::env::var_os("DATABASE_URL").is_some() {
        own.get().await?.simple_query("SELECT 1").await?;
        store.migrate().await?;
        println!("store answers: {:?}", store.read_feed(0, 1).await?.len());
    }
    Ok(())
}
