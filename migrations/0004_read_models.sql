-- passkey-links event store, schema version 4: projection checkpoints and the read models the
-- crate ships. Every row names the feed position it comes from, so applying a change twice
-- (projections run at least once per event) leaves the tables as applying it once.

CREATE TABLE IF NOT EXISTS passkey_links_checkpoints (
    name text PRIMARY KEY,
    position bigint NOT NULL
);

-- Who owns each stream: its audit entries list under this user and org.
CREATE TABLE IF NOT EXISTS passkey_links_owners (
    stream_type text NOT NULL,
    stream_id text NOT NULL,
    user_id text,
    org_id text NOT NULL,
    PRIMARY KEY (stream_type, stream_id)
);

CREATE TABLE IF NOT EXISTS passkey_links_audit (
    feed_position bigint PRIMARY KEY,
    user_id text,
    org_id text NOT NULL,
    stream_type text NOT NULL,
    stream_id text NOT NULL,
    version bigint NOT NULL,
    event_type text NOT NULL,
    recorded_at timestamptz NOT NULL,
    detail jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS passkey_links_audit_by_user
    ON passkey_links_audit (user_id, feed_position DESC) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS passkey_links_audit_by_org
    ON passkey_links_audit (org_id, feed_position DESC);

CREATE TABLE IF NOT EXISTS passkey_links_links (
    code_id text PRIMARY KEY,
    user_id text NOT NULL,
    issued jsonb NOT NULL,
    issued_position bigint NOT NULL,
    delivery text NOT NULL,
    delivery_position bigint NOT NULL,
    ended boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS passkey_links_links_by_user
    ON passkey_links_links (user_id, issued_position DESC);

CREATE TABLE IF NOT EXISTS passkey_links_link_failures (
    code_id text NOT NULL,
    feed_position bigint NOT NULL,
    PRIMARY KEY (code_id, feed_position)
);
