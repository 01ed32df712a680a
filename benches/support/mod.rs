//! What the PostgreSQL benches share.

use passkey_links::store::postgres::PostgresStore;

/// Writes versions 2 through `last` of user `user`'s stream in one statement — each event's
/// type and payload are SQL expressions over `g`, its version — then analyzes the table, as a
/// history written long ago (or restored) would stand.
pub async fn bulk_user_events(
    store: &PostgresStore,
    user: &str,
    last: i64,
    event_type: &str,
    payload: &str,
) {
    let mut client = store.pool().get().await.unwrap();
    let sql = format!(
        "INSERT INTO {} (stream_type, stream_id, version, event_type, schema_version, payload,
                         recorded_at)
         SELECT 'user', $1, g, {event_type}, 1, {payload}, '2026-01-01T00:00:00Z'
         FROM generate_series(2::bigint, $2::bigint) g",
        store.table()
    );
    let tx = client.transaction().await.unwrap();
    // A million rows take longer than the pool's statement timeout.
    tx.batch_execute("SET LOCAL statement_timeout = 0")
        .await
        .unwrap();
    tx.execute(&sql, &[&user, &last]).await.unwrap();
    tx.commit().await.unwrap();
    client
        .batch_execute(&format!("ANALYZE {}", store.table()))
        .await
        .unwrap();
}
