-- append
WITH w AS (
  INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
  SELECT n.t, n.i,
         n.v + CASE WHEN n.from_end THEN
                 COALESCE((SELECT max(x.version) FROM passkey_links_events x
                           WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
               ELSE 0 END,
         n.id, n.e, n.s, n.d::jsonb, n.r
  FROM unnest($1::text[], $2::text[], $3::int8[], $4::bool[], $5::uuid[], $6::text[], $7::int2[],
              $8::text[], $9::timestamptz[])
       WITH ORDINALITY AS n(t, i, v, from_end, id, e, s, d, r, seq)
  WHERE NOT EXISTS (
    SELECT 1
    FROM unnest($10::text[], $11::text[], $12::int8[], $13::uuid[], $14::bool[]) AS g(t, i, v, id, last)
    WHERE (g.v > 0 AND (SELECT g.id IS NULL OR x.event_id = g.id
                        FROM passkey_links_events x
                        WHERE x.stream_type = g.t AND x.stream_id = g.i AND x.version = g.v)
                       IS NOT TRUE)
       OR (g.last AND (SELECT x.version FROM passkey_links_events x
                       WHERE x.stream_type = g.t AND x.stream_id = g.i AND x.version = g.v + 1)
                      IS NOT NULL))
  ORDER BY n.seq
  RETURNING stream_type, stream_id, version, position
),
k AS (
  INSERT INTO passkey_links_idempotency (key, outcome, streams, recorded_at)
  SELECT $15::text, $16::jsonb,
         (SELECT jsonb_agg(jsonb_build_array(stream_type, stream_id, version) ORDER BY position) FROM w),
         $17::timestamptz
  WHERE $15::text IS NOT NULL AND EXISTS (SELECT 1 FROM w)
)
SELECT stream_type, stream_id, version, position FROM w;

-- standing
SELECT COALESCE((SELECT max(x.version) FROM passkey_links_events x
                  WHERE x.stream_type = s.t AND x.stream_id = s.i), 0),
       (SELECT x.event_id FROM passkey_links_events x
        WHERE x.stream_type = s.t AND x.stream_id = s.i AND x.version = s.v)
FROM unnest($1::text[], $2::text[], $3::int8[]) WITH ORDINALITY AS s(t, i, v, n)
ORDER BY s.n;

-- read_many
SELECT s.n, e.version, e.position, e.event_id, e.event_type, e.schema_version, e.payload, e.recorded_at
FROM unnest($1::text[], $2::text[], $3::int8[]) WITH ORDINALITY AS s(t, i, after_version, n)
CROSS JOIN LATERAL (
  SELECT version, position, event_id, event_type, schema_version, payload, recorded_at
  FROM passkey_links_events x
  WHERE x.stream_type = s.t AND x.stream_id = s.i AND x.version > s.after_version
  ORDER BY x.version
  LIMIT $4
) e
ORDER BY s.n, e.version;

-- load_many
WITH asked AS (
  SELECT t, i, after, n
  FROM unnest($1::text[], $2::text[], $3::int8[]) WITH ORDINALITY AS u(t, i, after, n)
),
-- Per follow, one probe of its source's first event, or one backward walk of its last events
-- for the newest that matches: correlated subqueries, so no plan can drive the lookup from the
-- events table.
followed AS (
  SELECT f.t,
         CASE WHEN f.et IS NULL THEN
           (SELECT x.payload ->> f.field
            FROM asked JOIN passkey_links_events x
              ON x.stream_type = asked.t AND x.stream_id = asked.i AND x.version = 1
            WHERE asked.n = f.src)
         ELSE
           (SELECT y.payload ->> f.field
            FROM asked CROSS JOIN LATERAL (
              SELECT x.version, x.event_type, x.payload
              FROM passkey_links_events x
              WHERE x.stream_type = asked.t AND x.stream_id = asked.i
              ORDER BY x.version DESC
              LIMIT 64
            ) y
            WHERE asked.n = f.src AND y.event_type = f.et AND y.payload ->> f.k = f.v
            ORDER BY y.version DESC
            LIMIT 1)
         END AS i,
         -1::int8 AS after, $8::int8 + f.n AS n
  FROM unnest($5::text[], $6::text[], $7::int8[], $9::text[], $10::text[], $11::text[])
       WITH ORDINALITY AS f(t, field, src, et, k, v, n)
),
s AS (
  SELECT t, i, after, n FROM asked
  UNION ALL
  SELECT t, i, after, n FROM followed WHERE i IS NOT NULL
),
snap AS (
  SELECT s.n, s.i, x.version, x.state
  FROM s JOIN passkey_links_snapshots x ON x.stream_type = s.t AND x.stream_id = s.i
  WHERE s.after < 0
),
start AS (
  SELECT s.t, s.i, s.n,
         CASE WHEN s.after >= 0 THEN s.after ELSE COALESCE(snap.version - 1, 0) END AS after
  FROM s LEFT JOIN snap ON snap.n = s.n
)
SELECT snap.n, true AS snapshot, snap.version, NULL::int8, NULL::uuid, NULL::text, NULL::int2,
       snap.state, NULL::timestamptz, snap.i, false AS personal, NULL::bytea
FROM snap
UNION ALL
SELECT start.n, false, e.version, e.position, e.event_id, e.event_type, e.schema_version,
       e.payload, e.recorded_at, start.i, false, NULL::bytea
FROM start CROSS JOIN LATERAL (
  SELECT version, position, event_id, event_type, schema_version, payload, recorded_at
  FROM passkey_links_events x
  WHERE x.stream_type = start.t AND x.stream_id = start.i AND x.version > start.after
  ORDER BY x.version
  LIMIT $4
) e
UNION ALL
-- A user's personal data key (null once erased), so its sealed events open without another
-- round trip.
SELECT s.n, false, NULL::int8, NULL::int8, NULL::uuid, NULL::text, NULL::int2, NULL::jsonb,
       NULL::timestamptz, s.i, true, k.key
FROM s JOIN passkey_links_personal_keys k ON k.user_id = s.i
WHERE s.t = 'user'
ORDER BY 1, 2 DESC, 3;

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

