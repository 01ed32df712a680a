-- passkey-links event store, schema version 3: the global feed. Identity positions are handed
-- out before commit, so a slow transaction can commit a lower position after a reader passed
-- it. Feed positions are given to events only once they are visible, in that order, by whoever
-- reads the feed (one reader at a time holds the head row): a reader that has seen feed
-- position P never afterwards finds an event at or below P. The write path is unchanged.

ALTER TABLE passkey_links_events ADD COLUMN IF NOT EXISTS feed_position bigint;
CREATE UNIQUE INDEX IF NOT EXISTS passkey_links_events_feed
    ON passkey_links_events (feed_position);
-- The events still waiting for a feed position: few at any time.
CREATE INDEX IF NOT EXISTS passkey_links_events_unsequenced
    ON passkey_links_events (position) WHERE feed_position IS NULL;

CREATE TABLE IF NOT EXISTS passkey_links_feed_head (
    id smallint PRIMARY KEY CHECK (id = 1),
    last bigint NOT NULL
);
INSERT INTO passkey_links_feed_head (id, last) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
