//! An axum server exposing ZITADEL's passwordless-link paths on top of `passkey-links`.
//!
//! ```sh
//! cargo run --features tracing --example axum_server            # 127.0.0.1:8080
//! cargo run --features tracing --example axum_server 127.0.0.1:3000
//! ```
//!
//! Demo tokens: `acme-admin-token`, `globex-admin-token`, `ada-token`, `bob-token`.
//! Delivered emails are printed to stderr (the notifier only records them).

#[path = "axum_server/app.rs"]
mod app;

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()?;
    if !addr.ip().is_loopback() {
        return Err("this demo serves on a loopback address only".into());
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = app::build(&format!("http://{local}")).await?;
    let notifier = app.notifier.clone();
    tokio::spawn(async move {
        // Show what the mailer would send (a real notifier emails it).
        let mut shown = 0;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let delivered = notifier.delivered();
            for envelope in &delivered[shown..] {
                if let passkey_links::prelude::Message::RegistrationLink {
                    recipient, link, ..
                } = &envelope.message
                {
                    eprintln!("mail to {recipient}: {}", link.expose());
                }
            }
            shown = delivered.len();
        }
    });
    eprintln!("listening on http://{local}");
    axum::serve(listener, app::router(app)).await?;
    Ok(())
}
