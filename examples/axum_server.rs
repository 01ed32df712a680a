//! An axum server exposing ZITADEL's passwordless-link and passkey paths on top of
//! `passkey-links`, with the login UI page a registration link opens.
//!
//! ```sh
//! cargo run --features tracing,postgres,metrics --example axum_server    # localhost:8080, in memory
//! DATABASE_URL=postgres://user:pw@localhost/db \
//!     cargo run --features tracing,postgres,metrics --example axum_server 3000   # on PostgreSQL
//! ```
//!
//! Demo tokens: `system-token`, `acme-admin-token`, `globex-admin-token`, `acme-support-token`,
//! `ada-token`, `bob-token`. Delivered emails are printed to stderr (the notifier only records
//! them). Links point at `http://localhost:<port>`, which is also the WebAuthn relying party.

#[path = "axum_server/app.rs"]
mod app;

use passkey_links::Message;
use passkey_links::read::ProjectionStore;
use passkey_links::store::EventStore;
use passkey_links::store::InMemoryStore;
use passkey_links::store::postgres::PostgresStore;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let port: u16 = std::env::args()
        .nth(1)
        .map(|arg| arg.parse())
        .transpose()?
        .unwrap_or(8080);
    // Loopback only: this demo has static tokens.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let base = format!("http://localhost:{}", listener.local_addr()?.port());
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let store = PostgresStore::connect(&url, 8)?;
            store.migrate().await?;
            eprintln!("events in PostgreSQL");
            serve(store, listener, &base).await
        }
        _ => serve(InMemoryStore::new(), listener, &base).await,
    }
}

async fn serve<S: EventStore + ProjectionStore + Clone + 'static>(
    store: S,
    listener: tokio::net::TcpListener,
    base: &str,
) -> Result<(), BoxError> {
    let app = app::build(store, base).await?;
    let following = app.clone();
    tokio::spawn(async move {
        // The read models follow the feed for as long as the server runs.
        if let Err(err) = following.read_models.follow(std::future::pending()).await {
            eprintln!("the read models stopped: {err}");
        }
    });
    let notifier = app.notifier.clone();
    tokio::spawn(async move {
        // Show what the mailer would send (a real notifier emails it).
        let mut shown = 0;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let delivered = notifier.delivered();
            for envelope in &delivered[shown..] {
                if let Message::RegistrationLink {
                    recipient, link, ..
                } = &envelope.message
                {
                    eprintln!("mail to {recipient}: {}", link.expose());
                }
            }
            shown = delivered.len();
        }
    });
    eprintln!("listening on {base}");
    axum::serve(listener, app::router(app)).await?;
    Ok(())
}
