-- passkey-links event store, schema version 5: snapshots of folded org and user states, so a
-- cold load reads only the events after the newest one. One row per stream, replaced only by a
-- snapshot of a later version. Opaque to the store; readers check that the event a snapshot
-- was taken at is still stored before they use it.

CREATE TABLE IF NOT EXISTS passkey_links_snapshots (
    stream_type text NOT NULL,
    stream_id text NOT NULL,
    version bigint NOT NULL,
    state jsonb NOT NULL,
    PRIMARY KEY (stream_type, stream_id)
);
