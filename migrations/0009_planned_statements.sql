-- passkey-links event store, schema version 9: the hot statements (the guarded append, the
-- conflict report, reads and loads) as functions that carry their own planner settings, so a
-- pool with default settings — an application's own — gets the plans they need and no session
-- of the application gets the store's settings:
--
-- * a generic plan, made once per session: their shapes are fixed, and planning them afresh
--   for every call (custom plans for array parameters) costs several times running them;
-- * no JIT: a generic plan over a long stream estimates a third of it as the rows of any read,
--   which crosses the JIT threshold and compiles a one-row read for 5-30 ms;
-- * no sequential scans: a generic plan made while the tables are small would scan them, and
--   keep scanning them as they grow;
-- * the search path they were created with, so they find the store's tables in its schema.
--
-- Their bodies are the statements as they were (each reads and writes exactly as before).

CREATE OR REPLACE FUNCTION passkey_links_append(text[], text[], int8[], bool[], uuid[], text[], int2[], text[], timestamptz[], text[], text[], int8[], uuid[], bool[], text, jsonb, timestamptz)
RETURNS TABLE (stream_type text, stream_id text, version int8, "position" int8)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
SET jit = off
SET enable_seqscan = off
SET search_path FROM CURRENT
AS $function$
#variable_conflict use_column
BEGIN
  RETURN QUERY
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
END
$function$;

CREATE OR REPLACE FUNCTION passkey_links_standing(text[], text[], int8[])
RETURNS TABLE (version int8, event_id uuid)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET jit = off
SET enable_seqscan = off
SET search_path FROM CURRENT
AS $function$
#variable_conflict use_column
BEGIN
  RETURN QUERY
    SELECT COALESCE((SELECT max(x.version) FROM passkey_links_events x
                      WHERE x.stream_type = s.t AND x.stream_id = s.i), 0),
           (SELECT x.event_id FROM passkey_links_events x
            WHERE x.stream_type = s.t AND x.stream_id = s.i AND x.version = s.v)
    FROM unnest($1::text[], $2::text[], $3::int8[]) WITH ORDINALITY AS s(t, i, v, n)
    ORDER BY s.n;
END
$function$;

CREATE OR REPLACE FUNCTION passkey_links_read_many(text[], text[], int8[], int8)
RETURNS TABLE (n int8, version int8, "position" int8, event_id uuid, event_type text, schema_version int2, payload jsonb, recorded_at timestamptz)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET jit = off
SET enable_seqscan = off
SET search_path FROM CURRENT
AS $function$
#variable_conflict use_column
BEGIN
  RETURN QUERY
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
END
$function$;

CREATE OR REPLACE FUNCTION passkey_links_load_many(text[], text[], int8[], int8, text[], text[], int8[], int8, text[], text[], text[])
RETURNS TABLE (n int8, snapshot bool, version int8, "position" int8, event_id uuid, event_type text, schema_version int2, payload jsonb, recorded_at timestamptz, stream_id text, personal bool, key bytea)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET jit = off
SET enable_seqscan = off
SET search_path FROM CURRENT
AS $function$
#variable_conflict use_column
BEGIN
  RETURN QUERY
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
END
$function$;
