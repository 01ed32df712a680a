-- append
SELECT stream_type, stream_id, version, "position"
FROM passkey_links_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17);

-- standing
SELECT version, event_id FROM passkey_links_standing($1, $2, $3);

-- read_many
SELECT n, version, position, event_id, event_type, schema_version, payload, recorded_at FROM passkey_links_read_many($1, $2, $3, $4);

-- load_many
SELECT n, snapshot, version, "position", event_id, event_type, schema_version, payload,
       recorded_at, stream_id, personal, key
FROM passkey_links_load_many($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11);

-- read_snapshots
SELECT s.n, x.version, x.state
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS s(t, i, n)
JOIN passkey_links_snapshots x ON x.stream_type = s.t AND x.stream_id = s.i;

-- write_snapshot
INSERT INTO passkey_links_snapshots (stream_type, stream_id, version, state) VALUES ($1, $2, $3, $4)
ON CONFLICT (stream_type, stream_id) DO UPDATE
SET version = EXCLUDED.version, state = EXCLUDED.state
WHERE passkey_links_snapshots.version < EXCLUDED.version;

-- sequence_feed
WITH head AS (
  SELECT last FROM passkey_links_feed_head WHERE id = 1 FOR UPDATE SKIP LOCKED
),
waiting AS (
  SELECT position, row_number() OVER (ORDER BY position) AS n
  FROM passkey_links_events
  WHERE feed_position IS NULL AND EXISTS (SELECT 1 FROM head)
  ORDER BY position
  LIMIT $1
),
given AS (
  UPDATE passkey_links_events e SET feed_position = (SELECT last FROM head) + w.n
  FROM waiting w
  WHERE e.position = w.position AND e.feed_position IS NULL
  RETURNING w.n
)
UPDATE passkey_links_feed_head SET last = last + (SELECT max(n) FROM given)
WHERE id = 1 AND EXISTS (SELECT 1 FROM given);

-- read_feed
SELECT feed_position, stream_type, stream_id, version, position, event_id, event_type, schema_version, payload, recorded_at
FROM passkey_links_events WHERE feed_position > $1 ORDER BY feed_position LIMIT $2;

-- feed_head
SELECT coalesce((SELECT last FROM passkey_links_feed_head WHERE id = 1), 0)
     + (SELECT count(*) FROM passkey_links_events WHERE feed_position IS NULL);

-- recall
SELECT outcome, streams FROM passkey_links_idempotency WHERE key = $1;

-- personal_key
SELECT key FROM passkey_links_personal_keys WHERE user_id = $1;

-- create_personal_key
WITH i AS (
  INSERT INTO passkey_links_personal_keys (user_id, key) VALUES ($1, $2)
  ON CONFLICT (user_id) DO NOTHING
  RETURNING key
)
SELECT key FROM i
UNION ALL
SELECT key FROM passkey_links_personal_keys WHERE user_id = $1
LIMIT 1;

-- erase_personal_key
INSERT INTO passkey_links_personal_keys AS k (user_id, key, erased_at)
VALUES ($1, NULL, statement_timestamp())
ON CONFLICT (user_id) DO UPDATE SET key = NULL, erased_at = COALESCE(k.erased_at, EXCLUDED.erased_at);

-- prune_idempotency
DELETE FROM passkey_links_idempotency WHERE recorded_at < $1;

-- all_events
SELECT stream_type, stream_id, version, position, event_id, event_type, schema_version, payload, recorded_at FROM passkey_links_events ORDER BY position;

-- schema_versions
SELECT version FROM passkey_links_schema_migrations ORDER BY version;

-- store_time
SELECT statement_timestamp();

-- checkpoint
SELECT position FROM passkey_links_checkpoints WHERE name = $1;

-- record_checkpoint
INSERT INTO passkey_links_checkpoints (name, position) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET position = GREATEST(passkey_links_checkpoints.position, EXCLUDED.position);

-- insert_owners
INSERT INTO passkey_links_owners (stream_type, stream_id, user_id, org_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
ON CONFLICT DO NOTHING;

-- insert_audit
INSERT INTO passkey_links_audit (feed_position, user_id, org_id, stream_type, stream_id,
                      version, event_type, recorded_at, detail)
SELECT a.p, o.user_id, o.org_id, a.t, a.i, a.v, a.e, a.r, a.d
FROM unnest($1::int8[], $2::text[], $3::text[], $4::int8[], $5::text[],
            $6::timestamptz[], $7::jsonb[]) AS a(p, t, i, v, e, r, d)
JOIN passkey_links_owners o ON o.stream_type = a.t AND o.stream_id = a.i
ON CONFLICT (feed_position) DO NOTHING;

-- insert_links
INSERT INTO passkey_links_links (code_ref, user_id, issued, issued_position, delivery, delivery_position)
SELECT c, u, i, p, d, p
FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::int8[], $5::text[]) AS x(c, u, i, p, d)
ON CONFLICT (code_ref) DO NOTHING;

-- deliver_links
UPDATE passkey_links_links l SET delivery = u.s, failure = u.f, delivery_position = u.p
FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) AS u(c, s, f, p)
WHERE l.code_ref = u.c AND l.delivery_position < u.p;

-- insert_link_failures
INSERT INTO passkey_links_link_failures (code_ref, feed_position)
SELECT * FROM unnest($1::text[], $2::int8[]) ON CONFLICT DO NOTHING;

-- end_links
UPDATE passkey_links_links SET ended = true WHERE code_ref = ANY($1::text[]);

-- link_rows
SELECT l.code_ref, l.issued, l.delivery, l.failure,
       (SELECT count(*) FROM passkey_links_link_failures f WHERE f.code_ref = l.code_ref)
FROM passkey_links_links l
WHERE l.user_id = $1 AND NOT l.ended
ORDER BY l.issued_position DESC;

-- audit_page_user
SELECT feed_position, stream_type, stream_id, version, event_type, recorded_at, detail
 FROM passkey_links_audit WHERE user_id = $1 AND feed_position < $2
 ORDER BY feed_position DESC LIMIT $3;

-- audit_page_org
SELECT feed_position, stream_type, stream_id, version, event_type, recorded_at, detail
 FROM passkey_links_audit WHERE org_id = $1 AND feed_position < $2
 ORDER BY feed_position DESC LIMIT $3;

