//! The PostgreSQL dialect both PostgreSQL stores speak (tokio-postgres with deadpool, feature
//! `postgres`; sqlx, feature `sqlx-postgres`): one schema and its migrations, every statement,
//! the parameters a call binds, how rows read back, and the failure classes. A driver adds only
//! how it binds, runs and reads — so the two stores behave alike and interoperate on one
//! database.
//!
//! | file | what |
//! |---|---|
//! | `statements.rs` | every statement, built once per schema, golden-tested |
//! | `params.rs` | batches, guards, loads and read-model changes as array parameters |
//! | `rows.rs` | rows read back as events, snapshots, keys, conflicts, read-model rows |
//! | `failure.rs` | failure classes by SQLSTATE, the deadline of a call |

pub(crate) mod failure;
pub(crate) mod params;
pub(crate) mod rows;
pub(crate) mod statements;

/// How long one store call may take, connecting and waiting for a pooled connection included,
/// unless configured otherwise.
pub const DEFAULT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// The versioned migrations, in order: version, name, SQL (the files of `migrations/`, which
/// sqlx's migrator also runs as they are).
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "events",
        include_str!("../../../migrations/0001_events.sql"),
    ),
    (
        2,
        "idempotency",
        include_str!("../../../migrations/0002_idempotency.sql"),
    ),
    (3, "feed", include_str!("../../../migrations/0003_feed.sql")),
    (
        4,
        "read_models",
        include_str!("../../../migrations/0004_read_models.sql"),
    ),
    (
        5,
        "snapshots",
        include_str!("../../../migrations/0005_snapshots.sql"),
    ),
    (
        6,
        "event_ids",
        include_str!("../../../migrations/0006_event_ids.sql"),
    ),
    (
        7,
        "references_and_retries",
        include_str!("../../../migrations/0007_references_and_retries.sql"),
    ),
    (
        8,
        "personal_keys",
        include_str!("../../../migrations/0008_personal_keys.sql"),
    ),
    (
        9,
        "planned_statements",
        include_str!("../../../migrations/0009_planned_statements.sql"),
    ),
];

/// The table that lists the migrations applied (one for both stores: a database migrated by
/// one is migrated for the other).
pub(crate) const CREATE_VERSION_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS passkey_links_schema_migrations (
    version bigint PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";
/// Whether migration `$1` is applied.
pub(crate) const IS_APPLIED: &str =
    "SELECT 1 FROM passkey_links_schema_migrations WHERE version = $1";
/// Records migration `$1` (`$2`: its name) as applied.
pub(crate) const RECORD_APPLIED: &str =
    "INSERT INTO passkey_links_schema_migrations (version, name) VALUES ($1, $2)";

/// Whether a failed migration lost a race with another migrator (it created or renamed the same
/// object first, or — every transaction serializable — got in the way): look again.
pub(crate) fn migration_raced(err: &crate::store::StoreError) -> bool {
    use crate::store::StoreError;
    matches!(err, StoreError::Internal(message) | StoreError::Unavailable(message)
        if ["23505", "42P07", "42710", "42703", "40001", "40P01"]
            .iter()
            .any(|state| message.contains(state)))
}

/// How often a migration that lost a race is tried again.
pub(crate) const MIGRATION_ATTEMPTS: usize = 8;

/// Sets the search path of a migration's transaction to `schema` (`None`: leaves it).
pub(crate) fn search_path(schema: Option<&str>) -> String {
    match schema {
        Some(schema) => format!("SET LOCAL search_path TO \"{schema}\""),
        None => "SELECT 1".to_owned(),
    }
}

/// Whether `name` may name a schema: a lowercase identifier of at most 63 bytes.
pub(crate) fn valid_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}
