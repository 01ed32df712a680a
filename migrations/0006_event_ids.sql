-- passkey-links event store, schema version 6: every event's id, drawn by its writer. Whether
-- the event a reader saw is still the last of its stream is answered by the stream's version
-- and the id of the event at it: after a database is restored to an earlier point, versions and
-- positions are handed out again, to other events; ids never are. Events written before this
-- migration get random ids (a cache or snapshot that named them by position is then re-read
-- once). On a large table this rewrites it: apply it in a maintenance window.

ALTER TABLE passkey_links_events
    ADD COLUMN IF NOT EXISTS event_id uuid NOT NULL DEFAULT gen_random_uuid();
