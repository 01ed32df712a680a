-- passkey-links event store, schema version 2: idempotency keys. A command run with a key
-- records it here in the same statement as its events; a retry with the same key finds what
-- the first run wrote instead of acting twice. Rows are small and may be pruned after the
-- retry window of the applications (e.g. DELETE ... WHERE recorded_at < now() - interval '7 days').

CREATE TABLE IF NOT EXISTS passkey_links_idempotency (
    key text PRIMARY KEY,
    outcome jsonb NOT NULL,
    -- [[stream_type, stream_id, version], ...]: the events the batch wrote.
    streams jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
