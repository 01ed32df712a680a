-- passkey-links event store, schema version 8: one data key per user, under which the user's
-- personal data (names, email, passkey names) in events and snapshots is sealed. Kept apart
-- from the events so that destroying a key erases what it sealed wherever the events are:
-- an erased user's row keeps no key (and no key is ever made for the user again).

CREATE TABLE IF NOT EXISTS passkey_links_personal_keys (
    user_id text PRIMARY KEY,
    key bytea,
    erased_at timestamptz,
    CHECK ((key IS NULL) = (erased_at IS NOT NULL))
);
