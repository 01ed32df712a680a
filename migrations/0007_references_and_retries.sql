-- passkey-links event store, schema version 7.
-- The shipped read models name codes by their derived reference, never by their id (the id
-- leaves the library only inside its link), and a code whose delivery failed stays listed with
-- why. They are rebuilt from the feed: this migration empties them and resets their checkpoint
-- (the projection runner fills them again on its next run).
TRUNCATE passkey_links_owners, passkey_links_audit, passkey_links_links,
         passkey_links_link_failures;
DELETE FROM passkey_links_checkpoints WHERE name = 'passkey_links.read_models';
ALTER TABLE passkey_links_links RENAME COLUMN code_id TO code_ref;
ALTER TABLE passkey_links_link_failures RENAME COLUMN code_id TO code_ref;
ALTER TABLE passkey_links_links ADD COLUMN IF NOT EXISTS failure text;

-- Idempotency records are pruned by age (PasskeyLinks::prune_idempotency_keys).
CREATE INDEX IF NOT EXISTS passkey_links_idempotency_recorded_at
    ON passkey_links_idempotency (recorded_at);
