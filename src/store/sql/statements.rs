//! Every SQL statement of the PostgreSQL stores, built once per store (per schema) and pinned by a
//! golden test of its text (`tests/golden/postgres_statements.sql`). Nothing formats SQL per call.
//!
//! The hot statements — the guarded append, the conflict report, reads and loads — are
//! functions of the schema (migration 9, `migrations/0009_planned_statements.sql`, which pins
//! their bodies): each carries its own planner settings, so no session needs any. The rest are
//! plain statements.
//!
//! Probes of the events table are scalar subqueries with equalities on the unique
//! (stream, version) key: the planner keeps each one an index probe whatever the table's size
//! when the plan was made. Events are read with their columns in one order ([`EVENT_COLUMNS`]),
//! decoded by `rows::decode_event`.

/// The columns an event is read with, in the order `rows::decode_event` expects.
pub(crate) const EVENT_COLUMNS: &str =
    "version, position, event_id, event_type, schema_version, payload, recorded_at";

/// The unique constraint that makes versions unique per stream.
pub const VERSION_CONSTRAINT: &str = "passkey_links_events_stream_version";
/// The primary key of the idempotency table: a violation is a repeated key.
pub(crate) const KEY_CONSTRAINT: &str = "passkey_links_idempotency_pkey";

/// The store's statements, for one schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statements {
    /// `$1..$9`: the rows (stream type, id, version after the expectation, counted from the
    /// stream's end, event id, type, schema version, payload text, time); `$10..$14`: the guard
    /// (stream type, id, version, event id or null, nothing may follow); `$15, $16, $17`: the
    /// idempotency key, outcome and time, or nulls.
    pub(crate) append: String,
    /// The same append for a small batch, one statement per shape ([`Statements::small_append`]).
    small_appends: Vec<String>,
    /// Per stream (`$1` types, `$2` ids, `$3` versions): its version now, and the id of its
    /// event at the version given.
    pub(crate) standing: String,
    /// Per stream (`$1` types, `$2` ids, `$3` after) at most `$4` events.
    pub(crate) read_many: String,
    /// Streams from snapshots or versions, the streams their events name, and the users'
    /// personal data keys.
    pub(crate) load_many: String,
    pub(crate) read_snapshots: String,
    pub(crate) write_snapshot: String,
    /// Gives feed positions to the visible events that have none.
    pub(crate) sequence_feed: String,
    pub(crate) read_feed: String,
    /// The newest feed position, counting events not yet given one.
    pub(crate) feed_head: String,
    pub(crate) recall: String,
    /// A user's personal data key (`$1`): no row, or its key (null once erased).
    pub(crate) personal_key: String,
    /// Keeps `$2` as user `$1`'s key unless the user has a row; answers the row's key (no row
    /// when a concurrent writer's row is not visible yet).
    pub(crate) create_personal_key: String,
    /// Clears user `$1`'s key for good.
    pub(crate) erase_personal_key: String,
    pub(crate) prune_idempotency: String,
    pub(crate) all_events: String,
    pub(crate) schema_versions: String,
    /// The server's clock.
    pub(crate) store_time: String,
    pub(crate) checkpoint: String,
    pub(crate) record_checkpoint: String,
    pub(crate) insert_owners: String,
    pub(crate) insert_audit: String,
    pub(crate) insert_links: String,
    pub(crate) deliver_links: String,
    pub(crate) insert_link_failures: String,
    pub(crate) end_links: String,
    pub(crate) link_rows: String,
    pub(crate) audit_page_user: String,
    pub(crate) audit_page_org: String,
}

/// A batch of at most this many rows, guarded by at most [`SMALL_GUARD`] entries — every
/// command's — is appended by a plain statement of its own shape, one parameter per value
/// ([`Statements::small_append`]); larger batches by the array form ([`Statements::append`]).
///
/// Why two forms (BENCHMARKS.md, "Small batches, one parameter per value"): the array form
/// needs the planner settings its function carries, and entering that function, receiving and
/// unnesting fourteen arrays and sorting them cost a two-row issuance more server time than
/// its inserts. The per-value form needs no settings: its custom and generic plans cost about
/// the same, so the server settles on the generic plan after five calls, and that plan probes the
/// unique (stream, version) index — except one made while the table is a few pages that were
/// analyzed, which scans them (cheaper while they are few) until autovacuum's next analyze of
/// the grown table has the server plan it again.
pub(crate) const SMALL_ROWS: usize = 4;
/// See [`SMALL_ROWS`].
pub(crate) const SMALL_GUARD: usize = 4;

/// An append whose only collisions were on `Any` streams (a concurrent writer took the version
/// the statement counted to) is tried this often.
pub(crate) const ANY_RETRIES: usize = 8;
/// Events given feed positions by one reader at a time, at most.
pub(crate) const SEQUENCE_BATCH: i64 = 10_000;
/// A sequencing that keeps losing to concurrent readers is retried this often.
pub(crate) const SEQUENCE_RETRIES: usize = 8;

impl Statements {
    /// The statements on the tables of `schema` (`None`: the search path).
    pub(crate) fn new(schema: Option<&str>) -> Self {
        let named = |table: &str| match schema {
            Some(schema) => format!("\"{schema}\".{table}"),
            None => table.to_owned(),
        };
        let events = named("passkey_links_events");
        let keys = named("passkey_links_idempotency");
        let head = named("passkey_links_feed_head");
        let snapshots = named("passkey_links_snapshots");
        let migrations = named("passkey_links_schema_migrations");
        let checkpoints = named("passkey_links_checkpoints");
        let owners = named("passkey_links_owners");
        let audit = named("passkey_links_audit");
        let links = named("passkey_links_links");
        let failures = named("passkey_links_link_failures");
        let personal_keys = named("passkey_links_personal_keys");
        // The hot statements, as functions with their own planner settings (migration 9).
        let append_fn = named("passkey_links_append");
        let standing_fn = named("passkey_links_standing");
        let read_many_fn = named("passkey_links_read_many");
        let load_many_fn = named("passkey_links_load_many");
        let columns = EVENT_COLUMNS;
        let audit_page = |column: &str| {
            format!(
                "SELECT feed_position, stream_type, stream_id, version, event_type, recorded_at, detail
 FROM {audit} WHERE {column} = $1 AND feed_position < $2
 ORDER BY feed_position DESC LIMIT $3"
            )
        };
        let mut small_appends = Vec::new();
        for rows in 1..=SMALL_ROWS {
            for guards in 0..=SMALL_GUARD {
                for keyed in [false, true] {
                    small_appends.push(small_append(&events, &keys, rows, guards, keyed));
                }
            }
        }
        Self {
            small_appends,
            append: format!(
                "SELECT stream_type, stream_id, version, \"position\"
FROM {append_fn}($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
            ),
            standing: format!("SELECT version, event_id FROM {standing_fn}($1, $2, $3)"),
            read_many: format!(
                "SELECT n, {columns} FROM {read_many_fn}($1, $2, $3, $4)"
            ),
            load_many: format!(
                "SELECT n, snapshot, version, \"position\", event_id, event_type, schema_version, payload,
       recorded_at, stream_id, personal, key
FROM {load_many_fn}($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ),
            read_snapshots: format!(
                "SELECT s.n, x.version, x.state
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS s(t, i, n)
JOIN {snapshots} x ON x.stream_type = s.t AND x.stream_id = s.i"
            ),
            write_snapshot: format!(
                "INSERT INTO {snapshots} (stream_type, stream_id, version, state) VALUES ($1, $2, $3, $4)
ON CONFLICT (stream_type, stream_id) DO UPDATE
SET version = EXCLUDED.version, state = EXCLUDED.state
WHERE {snapshots}.version < EXCLUDED.version"
            ),
            sequence_feed: format!(
                "WITH head AS (
  SELECT last FROM {head} WHERE id = 1 FOR UPDATE SKIP LOCKED
),
waiting AS (
  SELECT position, row_number() OVER (ORDER BY position) AS n
  FROM {events}
  WHERE feed_position IS NULL AND EXISTS (SELECT 1 FROM head)
  ORDER BY position
  LIMIT $1
),
given AS (
  UPDATE {events} e SET feed_position = (SELECT last FROM head) + w.n
  FROM waiting w
  WHERE e.position = w.position AND e.feed_position IS NULL
  RETURNING w.n
)
UPDATE {head} SET last = last + (SELECT max(n) FROM given)
WHERE id = 1 AND EXISTS (SELECT 1 FROM given)"
            ),
            read_feed: format!(
                "SELECT feed_position, stream_type, stream_id, {columns}
FROM {events} WHERE feed_position > $1 ORDER BY feed_position LIMIT $2"
            ),
            feed_head: format!(
                "SELECT coalesce((SELECT last FROM {head} WHERE id = 1), 0)
     + (SELECT count(*) FROM {events} WHERE feed_position IS NULL)"
            ),
            recall: format!("SELECT outcome, streams FROM {keys} WHERE key = $1"),
            personal_key: format!("SELECT key FROM {personal_keys} WHERE user_id = $1"),
            create_personal_key: format!(
                "WITH i AS (
  INSERT INTO {personal_keys} (user_id, key) VALUES ($1, $2)
  ON CONFLICT (user_id) DO NOTHING
  RETURNING key
)
SELECT key FROM i
UNION ALL
SELECT key FROM {personal_keys} WHERE user_id = $1
LIMIT 1"
            ),
            erase_personal_key: format!(
                "INSERT INTO {personal_keys} AS k (user_id, key, erased_at)
VALUES ($1, NULL, statement_timestamp())
ON CONFLICT (user_id) DO UPDATE SET key = NULL, erased_at = COALESCE(k.erased_at, EXCLUDED.erased_at)"
            ),
            prune_idempotency: format!("DELETE FROM {keys} WHERE recorded_at < $1"),
            all_events: format!(
                "SELECT stream_type, stream_id, {columns} FROM {events} ORDER BY position"
            ),
            schema_versions: format!("SELECT version FROM {migrations} ORDER BY version"),
            store_time: "SELECT statement_timestamp()".to_owned(),
            checkpoint: format!("SELECT position FROM {checkpoints} WHERE name = $1"),
            record_checkpoint: format!(
                "INSERT INTO {checkpoints} (name, position) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET position = GREATEST({checkpoints}.position, EXCLUDED.position)"
            ),
            insert_owners: format!(
                "INSERT INTO {owners} (stream_type, stream_id, user_id, org_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
ON CONFLICT DO NOTHING"
            ),
            insert_audit: format!(
                "INSERT INTO {audit} (feed_position, user_id, org_id, stream_type, stream_id,
                      version, event_type, recorded_at, detail)
SELECT a.p, o.user_id, o.org_id, a.t, a.i, a.v, a.e, a.r, a.d
FROM unnest($1::int8[], $2::text[], $3::text[], $4::int8[], $5::text[],
            $6::timestamptz[], $7::jsonb[]) AS a(p, t, i, v, e, r, d)
JOIN {owners} o ON o.stream_type = a.t AND o.stream_id = a.i
ON CONFLICT (feed_position) DO NOTHING"
            ),
            insert_links: format!(
                "INSERT INTO {links} (code_ref, user_id, issued, issued_position, delivery, delivery_position)
SELECT c, u, i, p, d, p
FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::int8[], $5::text[]) AS x(c, u, i, p, d)
ON CONFLICT (code_ref) DO NOTHING"
            ),
            deliver_links: format!(
                "UPDATE {links} l SET delivery = u.s, failure = u.f, delivery_position = u.p
FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) AS u(c, s, f, p)
WHERE l.code_ref = u.c AND l.delivery_position < u.p"
            ),
            insert_link_failures: format!(
                "INSERT INTO {failures} (code_ref, feed_position)
SELECT * FROM unnest($1::text[], $2::int8[]) ON CONFLICT DO NOTHING"
            ),
            end_links: format!("UPDATE {links} SET ended = true WHERE code_ref = ANY($1::text[])"),
            link_rows: format!(
                "SELECT l.code_ref, l.issued, l.delivery, l.failure,
       (SELECT count(*) FROM {failures} f WHERE f.code_ref = l.code_ref)
FROM {links} l
WHERE l.user_id = $1 AND NOT l.ended
ORDER BY l.issued_position DESC"
            ),
            audit_page_user: audit_page("user_id"),
            audit_page_org: audit_page("org_id"),
        }
    }

    /// The per-value append of a batch of `rows` rows under `guards` guard entries, recording
    /// an idempotency key or not; `None` for a batch too large (use [`Statements::append`]).
    /// Its parameters: per row the nine of [`Statements::append`]'s rows, then per guard entry
    /// its five, then (keyed) the key, its outcome and time.
    pub(crate) fn small_append(&self, rows: usize, guards: usize, keyed: bool) -> Option<&str> {
        if rows == 0 || rows > SMALL_ROWS || guards > SMALL_GUARD {
            return None;
        }
        let index = ((rows - 1) * (SMALL_GUARD + 1) + guards) * 2 + usize::from(keyed);
        self.small_appends.get(index).map(String::as_str)
    }

    /// Every statement with its name, in declaration order (for the golden test).
    #[cfg(test)]
    fn named(&self) -> Vec<(String, &str)> {
        let mut small = Vec::new();
        for rows in 1..=SMALL_ROWS {
            for guards in 0..=SMALL_GUARD {
                for keyed in [false, true] {
                    let name = format!(
                        "small_append ({rows} rows, {guards} guard entries{})",
                        if keyed { ", keyed" } else { "" }
                    );
                    small.extend(
                        self.small_append(rows, guards, keyed)
                            .map(|sql| (name, sql)),
                    );
                }
            }
        }
        let named: Vec<(&str, &str)> = vec![
            ("append", &self.append),
            ("standing", &self.standing),
            ("read_many", &self.read_many),
            ("load_many", &self.load_many),
            ("read_snapshots", &self.read_snapshots),
            ("write_snapshot", &self.write_snapshot),
            ("sequence_feed", &self.sequence_feed),
            ("read_feed", &self.read_feed),
            ("feed_head", &self.feed_head),
            ("recall", &self.recall),
            ("personal_key", &self.personal_key),
            ("create_personal_key", &self.create_personal_key),
            ("erase_personal_key", &self.erase_personal_key),
            ("prune_idempotency", &self.prune_idempotency),
            ("all_events", &self.all_events),
            ("schema_versions", &self.schema_versions),
            ("store_time", &self.store_time),
            ("checkpoint", &self.checkpoint),
            ("record_checkpoint", &self.record_checkpoint),
            ("insert_owners", &self.insert_owners),
            ("insert_audit", &self.insert_audit),
            ("insert_links", &self.insert_links),
            ("deliver_links", &self.deliver_links),
            ("insert_link_failures", &self.insert_link_failures),
            ("end_links", &self.end_links),
            ("link_rows", &self.link_rows),
            ("audit_page_user", &self.audit_page_user),
            ("audit_page_org", &self.audit_page_org),
        ];
        let mut named: Vec<(String, &str)> = named
            .into_iter()
            .map(|(name, sql)| (name.to_owned(), sql))
            .collect();
        named.splice(1..1, small);
        named
    }
}

/// The per-value append of one shape: the rows as a `VALUES` list inserted in order, each guard
/// entry as conditions on parameters alone (evaluated once per call: the event at its version
/// has its id, and nothing follows when it must be the last), the key recorded with what was
/// written. The same checks as the array form, which says why each probe is a scalar subquery.
fn small_append(events: &str, keys: &str, rows: usize, guards: usize, keyed: bool) -> String {
    let mut next = 0;
    let mut param = || {
        next += 1;
        next
    };
    let values: Vec<String> = (1..=rows)
        .map(|seq| {
            let [t, i, v, from_end, id, e, s, d, r] = [(); 9].map(|()| param());
            format!(
                "(${t}::text, ${i}::text, ${v}::int8, ${from_end}::bool, ${id}::uuid, ${e}::text, ${s}::int2, ${d}::text, ${r}::timestamptz, {seq})"
            )
        })
        .collect();
    let conditions: Vec<String> = (0..guards)
        .map(|_| {
            let [t, i, v, id, last] = [(); 5].map(|()| param());
            format!(
                "(${v}::int8 = 0 OR (SELECT ${id}::uuid IS NULL OR x.event_id = ${id}
                    FROM {events} x
                    WHERE x.stream_type = ${t}::text AND x.stream_id = ${i}::text AND x.version = ${v}) IS TRUE)
  AND (NOT ${last}::bool OR (SELECT x.version FROM {events} x
                             WHERE x.stream_type = ${t} AND x.stream_id = ${i} AND x.version = ${v} + 1) IS NULL)"
            )
        })
        .collect();
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("\nWHERE {}", conditions.join("\n  AND "))
    };
    let insert = format!(
        "INSERT INTO {events} (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM {events} x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES {}) AS n(t, i, v, from_end, id, e, s, d, r, seq){filter}
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position",
        values.join(",\n             ")
    );
    if !keyed {
        return insert;
    }
    let [key, outcome, at] = [(); 3].map(|()| param());
    format!(
        "WITH w AS (
{insert}
),
k AS (
  INSERT INTO {keys} (key, outcome, streams, recorded_at)
  SELECT ${key}::text, ${outcome}::jsonb,
         (SELECT jsonb_agg(jsonb_build_array(stream_type, stream_id, version) ORDER BY position) FROM w),
         ${at}::timestamptz
  WHERE EXISTS (SELECT 1 FROM w)
)
SELECT stream_type, stream_id, version, position FROM w"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN: &str = include_str!("../../../tests/golden/postgres_statements.sql");

    fn render(statements: &Statements) -> String {
        statements
            .named()
            .into_iter()
            .map(|(name, sql)| format!("-- {name}\n{sql};\n\n"))
            .collect()
    }

    /// Every statement's text, for the search path, is exactly the golden file's: a change to
    /// any statement is a reviewed change to that file (`PASSKEY_LINKS_UPDATE_GOLDEN=1 cargo
    /// test --features postgres --lib sql` rewrites it).
    #[test]
    fn statements_match_the_golden_file() {
        let rendered = render(&Statements::new(None));
        if std::env::var_os("PASSKEY_LINKS_UPDATE_GOLDEN").is_some() {
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/golden/postgres_statements.sql"
            );
            std::fs::write(path, &rendered).unwrap();
            return;
        }
        assert_eq!(
            rendered, GOLDEN,
            "a statement changed: review and update the golden file"
        );
    }

    /// The follow window the load function was created with is the one the port documents.
    #[test]
    fn the_load_function_looks_through_the_follow_window() {
        let (_, _, planned) = crate::store::sql::MIGRATIONS[8];
        assert!(planned.contains(&format!("LIMIT {}\n", crate::store::FOLLOW_WINDOW)));
    }

    /// In a schema, every table is qualified by it and nothing else changes.
    #[test]
    fn a_schema_qualifies_every_table() {
        let plain = Statements::new(None);
        let tenant = Statements::new(Some("tenant_7"));
        for ((name, a), (_, b)) in plain.named().into_iter().zip(tenant.named()) {
            let name = name.as_str();
            if !a.contains("passkey_links_") {
                // Touches no table (the server's clock): the same in every schema.
                assert_eq!(a, b, "{name}");
                continue;
            }
            assert!(b.contains("\"tenant_7\".passkey_links_"), "{name}");
            assert_eq!(a, b.replace("\"tenant_7\".", ""), "{name}");
        }
    }
}
