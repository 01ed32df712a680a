-- passkey-links event store, schema version 1: every stream in one table.
-- Plain SQL for PostgreSQL and PostgreSQL-compatible engines (CockroachDB, YugabyteDB); no
-- advisory locks. Apply with PostgresStore::migrate() or any migration tool, in the schema the
-- store uses (search_path).

CREATE TABLE IF NOT EXISTS passkey_links_events (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_type text NOT NULL,
    stream_id text NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    event_type text NOT NULL,
    schema_version smallint NOT NULL,
    payload jsonb NOT NULL,
    recorded_at timestamptz NOT NULL,
    CONSTRAINT passkey_links_events_stream_version UNIQUE (stream_type, stream_id, version)
);
