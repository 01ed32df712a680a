-- append
SELECT stream_type, stream_id, version, "position"
FROM passkey_links_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17);

-- small_append (1 rows, 0 guard entries)
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position;

-- small_append (1 rows, 0 guard entries, keyed)
WITH w AS (
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position
),
k AS (
  INSERT INTO passkey_links_idempotency (key, outcome, streams, recorded_at)
  SELECT $10::text, $11::jsonb,
         (SELECT jsonb_agg(jsonb_build_array(stream_type, stream_id, version) ORDER BY position) FROM w),
         $12::timestamptz
  WHERE EXISTS (SELECT 1 FROM w)
)
SELECT stream_type, stream_id, version, position FROM w;

-- small_append (1 rows, 1 guard entries)
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($12::int8 = 0 OR (SELECT $13::uuid IS NULL OR x.event_id = $13
                    FROM passkey_links_events x
                    WHERE x.stream_type = $10::text AND x.stream_id = $11::text AND x.version = $12) IS TRUE)
  AND (NOT $14::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $10 AND x.stream_id = $11 AND x.version = $12 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position;

-- small_append (1 rows, 1 guard entries, keyed)
WITH w AS (
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($12::int8 = 0 OR (SELECT $13::uuid IS NULL OR x.event_id = $13
                    FROM passkey_links_events x
                    WHERE x.stream_type = $10::text AND x.stream_id = $11::text AND x.version = $12) IS TRUE)
  AND (NOT $14::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $10 AND x.stream_id = $11 AND x.version = $12 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position
),
k AS (
  INSERT INTO passkey_links_idempotency (key, outcome, streams, recorded_at)
  SELECT $15::text, $16::jsonb,
         (SELECT jsonb_agg(jsonb_build_array(stream_type, stream_id, version) ORDER BY position) FROM w),
         $17::timestamptz
  WHERE EXISTS (SELECT 1 FROM w)
)
SELECT stream_type, stream_id, version, position FROM w;

-- small_append (1 rows, 2 guard entries)
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($12::int8 = 0 OR (SELECT $13::uuid IS NULL OR x.event_id = $13
                    FROM passkey_links_events x
                    WHERE x.stream_type = $10::text AND x.stream_id = $11::text AND x.version = $12) IS TRUE)
  AND (NOT $14::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $10 AND x.stream_id = $11 AND x.version = $12 + 1) IS NULL)
  AND ($17::int8 = 0 OR (SELECT $18::uuid IS NULL OR x.event_id = $18
                    FROM passkey_links_events x
                    WHERE x.stream_type = $15::text AND x.stream_id = $16::text AND x.version = $17) IS TRUE)
  AND (NOT $19::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $15 AND x.stream_id = $16 AND x.version = $17 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position;

-- small_append (1 rows, 2 guard entries, keyed)
WITH w AS (
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($12::int8 = 0 OR (SELECT $13::uuid IS NULL OR x.event_id = $13
                    FROM passkey_links_events x
                    WHERE x.stream_type = $10::text AND x.stream_id = $11::text AND x.version = $12) IS TRUE)
  AND (NOT $14::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $10 AND x.stream_id = $11 AND x.version = $12 + 1) IS NULL)
  AND ($17::int8 = 0 OR (SELECT $18::uuid IS NULL OR x.event_id = $18
                    FROM passkey_links_events x
                    WHERE x.stream_type = $15::text AND x.stream_id = $16::text AND x.version = $17) IS TRUE)
  AND (NOT $19::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $15 AND x.stream_id = $16 AND x.version = $17 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position
),
k AS (
  INSERT INTO passkey_links_idempotency (key, outcome, streams, recorded_at)
  SELECT $20::text, $21::jsonb,
         (SELECT jsonb_agg(jsonb_build_array(stream_type, stream_id, version) ORDER BY position) FROM w),
         $22::timestamptz
  WHERE EXISTS (SELECT 1 FROM w)
)
SELECT stream_type, stream_id, version, position FROM w;

-- small_append (1 rows, 3 guard entries)
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($12::int8 = 0 OR (SELECT $13::uuid IS NULL OR x.event_id = $13
                    FROM passkey_links_events x
                    WHERE x.stream_type = $10::text AND x.stream_id = $11::text AND x.version = $12) IS TRUE)
  AND (NOT $14::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $10 AND x.stream_id = $11 AND x.version = $12 + 1) IS NULL)
  AND ($17::int8 = 0 OR (SELECT $18::uuid IS NULL OR x.event_id = $18
                    FROM passkey_links_events x
                    WHERE x.stream_type = $15::text AND x.stream_id = $16::text AND x.version = $17) IS TRUE)
  AND (NOT $19::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $15 AND x.stream_id = $16 AND x.version = $17 + 1) IS NULL)
  AND ($22::int8 = 0 OR (SELECT $23::uuid IS NULL OR x.event_id = $23
                    FROM passkey_links_events x
                    WHERE x.stream_type = $20::text AND x.stream_id = $21::text AND x.version = $22) IS TRUE)
  AND (NOT $24::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $20 AND x.stream_id = $21 AND x.version = $22 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position;

-- small_append (1 rows, 3 guard entries, keyed)
WITH w AS (
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($12::int8 = 0 OR (SELECT $13::uuid IS NULL OR x.event_id = $13
                    FROM passkey_links_events x
                    WHERE x.stream_type = $10::text AND x.stream_id = $11::text AND x.version = $12) IS TRUE)
  AND (NOT $14::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $10 AND x.stream_id = $11 AND x.version = $12 + 1) IS NULL)
  AND ($17::int8 = 0 OR (SELECT $18::uuid IS NULL OR x.event_id = $18
                    FROM passkey_links_events x
                    WHERE x.stream_type = $15::text AND x.stream_id = $16::text AND x.version = $17) IS TRUE)
  AND (NOT $19::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $15 AND x.stream_id = $16 AND x.version = $17 + 1) IS NULL)
  AND ($22::int8 = 0 OR (SELECT $23::uuid IS NULL OR x.event_id = $23
                    FROM passkey_links_events x
                    WHERE x.stream_type = $20::text AND x.stream_id = $21::text AND x.version = $22) IS TRUE)
  AND (NOT $24::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $20 AND x.stream_id = $21 AND x.version = $22 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position
),
k AS (
  INSERT INTO passkey_links_idempotency (key, outcome, streams, recorded_at)
  SELECT $25::text, $26::jsonb,
         (SELECT jsonb_agg(jsonb_build_array(stream_type, stream_id, version) ORDER BY position) FROM w),
         $27::timestamptz
  WHERE EXISTS (SELECT 1 FROM w)
)
SELECT stream_type, stream_id, version, position FROM w;

-- small_append (1 rows, 4 guard entries)
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($12::int8 = 0 OR (SELECT $13::uuid IS NULL OR x.event_id = $13
                    FROM passkey_links_events x
                    WHERE x.stream_type = $10::text AND x.stream_id = $11::text AND x.version = $12) IS TRUE)
  AND (NOT $14::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $10 AND x.stream_id = $11 AND x.version = $12 + 1) IS NULL)
  AND ($17::int8 = 0 OR (SELECT $18::uuid IS NULL OR x.event_id = $18
                    FROM passkey_links_events x
                    WHERE x.stream_type = $15::text AND x.stream_id = $16::text AND x.version = $17) IS TRUE)
  AND (NOT $19::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $15 AND x.stream_id = $16 AND x.version = $17 + 1) IS NULL)
  AND ($22::int8 = 0 OR (SELECT $23::uuid IS NULL OR x.event_id = $23
                    FROM passkey_links_events x
                    WHERE x.stream_type = $20::text AND x.stream_id = $21::text AND x.version = $22) IS TRUE)
  AND (NOT $24::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $20 AND x.stream_id = $21 AND x.version = $22 + 1) IS NULL)
  AND ($27::int8 = 0 OR (SELECT $28::uuid IS NULL OR x.event_id = $28
                    FROM passkey_links_events x
                    WHERE x.stream_type = $25::text AND x.stream_id = $26::text AND x.version = $27) IS TRUE)
  AND (NOT $29::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $25 AND x.stream_id = $26 AND x.version = $27 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position;

-- small_append (1 rows, 4 guard entries, keyed)
WITH w AS (
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($12::int8 = 0 OR (SELECT $13::uuid IS NULL OR x.event_id = $13
                    FROM passkey_links_events x
                    WHERE x.stream_type = $10::text AND x.stream_id = $11::text AND x.version = $12) IS TRUE)
  AND (NOT $14::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $10 AND x.stream_id = $11 AND x.version = $12 + 1) IS NULL)
  AND ($17::int8 = 0 OR (SELECT $18::uuid IS NULL OR x.event_id = $18
                    FROM passkey_links_events x
                    WHERE x.stream_type = $15::text AND x.stream_id = $16::text AND x.version = $17) IS TRUE)
  AND (NOT $19::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $15 AND x.stream_id = $16 AND x.version = $17 + 1) IS NULL)
  AND ($22::int8 = 0 OR (SELECT $23::uuid IS NULL OR x.event_id = $23
                    FROM passkey_links_events x
                    WHERE x.stream_type = $20::text AND x.stream_id = $21::text AND x.version = $22) IS TRUE)
  AND (NOT $24::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $20 AND x.stream_id = $21 AND x.version = $22 + 1) IS NULL)
  AND ($27::int8 = 0 OR (SELECT $28::uuid IS NULL OR x.event_id = $28
                    FROM passkey_links_events x
                    WHERE x.stream_type = $25::text AND x.stream_id = $26::text AND x.version = $27) IS TRUE)
  AND (NOT $29::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $25 AND x.stream_id = $26 AND x.version = $27 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position
),
k AS (
  INSERT INTO passkey_links_idempotency (key, outcome, streams, recorded_at)
  SELECT $30::text, $31::jsonb,
         (SELECT jsonb_agg(jsonb_build_array(stream_type, stream_id, version) ORDER BY position) FROM w),
         $32::timestamptz
  WHERE EXISTS (SELECT 1 FROM w)
)
SELECT stream_type, stream_id, version, position FROM w;

-- small_append (2 rows, 0 guard entries)
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position;

-- small_append (2 rows, 0 guard entries, keyed)
WITH w AS (
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position
),
k AS (
  INSERT INTO passkey_links_idempotency (key, outcome, streams, recorded_at)
  SELECT $19::text, $20::jsonb,
         (SELECT jsonb_agg(jsonb_build_array(stream_type, stream_id, version) ORDER BY position) FROM w),
         $21::timestamptz
  WHERE EXISTS (SELECT 1 FROM w)
)
SELECT stream_type, stream_id, version, position FROM w;

-- small_append (2 rows, 1 guard entries)
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($21::int8 = 0 OR (SELECT $22::uuid IS NULL OR x.event_id = $22
                    FROM passkey_links_events x
                    WHERE x.stream_type = $19::text AND x.stream_id = $20::text AND x.version = $21) IS TRUE)
  AND (NOT $23::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $19 AND x.stream_id = $20 AND x.version = $21 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position;

-- small_append (2 rows, 1 guard entries, keyed)
WITH w AS (
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($21::int8 = 0 OR (SELECT $22::uuid IS NULL OR x.event_id = $22
                    FROM passkey_links_events x
                    WHERE x.stream_type = $19::text AND x.stream_id = $20::text AND x.version = $21) IS TRUE)
  AND (NOT $23::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $19 AND x.stream_id = $20 AND x.version = $21 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position
),
k AS (
  INSERT INTO passkey_links_idempotency (key, outcome, streams, recorded_at)
  SELECT $24::text, $25::jsonb,
         (SELECT jsonb_agg(jsonb_build_array(stream_type, stream_id, version) ORDER BY position) FROM w),
         $26::timestamptz
  WHERE EXISTS (SELECT 1 FROM w)
)
SELECT stream_type, stream_id, version, position FROM w;

-- small_append (2 rows, 2 guard entries)
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($21::int8 = 0 OR (SELECT $22::uuid IS NULL OR x.event_id = $22
                    FROM passkey_links_events x
                    WHERE x.stream_type = $19::text AND x.stream_id = $20::text AND x.version = $21) IS TRUE)
  AND (NOT $23::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $19 AND x.stream_id = $20 AND x.version = $21 + 1) IS NULL)
  AND ($26::int8 = 0 OR (SELECT $27::uuid IS NULL OR x.event_id = $27
                    FROM passkey_links_events x
                    WHERE x.stream_type = $24::text AND x.stream_id = $25::text AND x.version = $26) IS TRUE)
  AND (NOT $28::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $24 AND x.stream_id = $25 AND x.version = $26 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position;

-- small_append (2 rows, 2 guard entries, keyed)
WITH w AS (
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($21::int8 = 0 OR (SELECT $22::uuid IS NULL OR x.event_id = $22
                    FROM passkey_links_events x
                    WHERE x.stream_type = $19::text AND x.stream_id = $20::text AND x.version = $21) IS TRUE)
  AND (NOT $23::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $19 AND x.stream_id = $20 AND x.version = $21 + 1) IS NULL)
  AND ($26::int8 = 0 OR (SELECT $27::uuid IS NULL OR x.event_id = $27
                    FROM passkey_links_events x
                    WHERE x.stream_type = $24::text AND x.stream_id = $25::text AND x.version = $26) IS TRUE)
  AND (NOT $28::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $24 AND x.stream_id = $25 AND x.version = $26 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position
),
k AS (
  INSERT INTO passkey_links_idempotency (key, outcome, streams, recorded_at)
  SELECT $29::text, $30::jsonb,
         (SELECT jsonb_agg(jsonb_build_array(stream_type, stream_id, version) ORDER BY position) FROM w),
         $31::timestamptz
  WHERE EXISTS (SELECT 1 FROM w)
)
SELECT stream_type, stream_id, version, position FROM w;

-- small_append (2 rows, 3 guard entries)
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($21::int8 = 0 OR (SELECT $22::uuid IS NULL OR x.event_id = $22
                    FROM passkey_links_events x
                    WHERE x.stream_type = $19::text AND x.stream_id = $20::text AND x.version = $21) IS TRUE)
  AND (NOT $23::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $19 AND x.stream_id = $20 AND x.version = $21 + 1) IS NULL)
  AND ($26::int8 = 0 OR (SELECT $27::uuid IS NULL OR x.event_id = $27
                    FROM passkey_links_events x
                    WHERE x.stream_type = $24::text AND x.stream_id = $25::text AND x.version = $26) IS TRUE)
  AND (NOT $28::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $24 AND x.stream_id = $25 AND x.version = $26 + 1) IS NULL)
  AND ($31::int8 = 0 OR (SELECT $32::uuid IS NULL OR x.event_id = $32
                    FROM passkey_links_events x
                    WHERE x.stream_type = $29::text AND x.stream_id = $30::text AND x.version = $31) IS TRUE)
  AND (NOT $33::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $29 AND x.stream_id = $30 AND x.version = $31 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position;

-- small_append (2 rows, 3 guard entries, keyed)
WITH w AS (
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($21::int8 = 0 OR (SELECT $22::uuid IS NULL OR x.event_id = $22
                    FROM passkey_links_events x
                    WHERE x.stream_type = $19::text AND x.stream_id = $20::text AND x.version = $21) IS TRUE)
  AND (NOT $23::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $19 AND x.stream_id = $20 AND x.version = $21 + 1) IS NULL)
  AND ($26::int8 = 0 OR (SELECT $27::uuid IS NULL OR x.event_id = $27
                    FROM passkey_links_events x
                    WHERE x.stream_type = $24::text AND x.stream_id = $25::text AND x.version = $26) IS TRUE)
  AND (NOT $28::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $24 AND x.stream_id = $25 AND x.version = $26 + 1) IS NULL)
  AND ($31::int8 = 0 OR (SELECT $32::uuid IS NULL OR x.event_id = $32
                    FROM passkey_links_events x
                    WHERE x.stream_type = $29::text AND x.stream_id = $30::text AND x.version = $31) IS TRUE)
  AND (NOT $33::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $29 AND x.stream_id = $30 AND x.version = $31 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position
),
k AS (
  INSERT INTO passkey_links_idempotency (key, outcome, streams, recorded_at)
  SELECT $34::text, $35::jsonb,
         (SELECT jsonb_agg(jsonb_build_array(stream_type, stream_id, version) ORDER BY position) FROM w),
         $36::timestamptz
  WHERE EXISTS (SELECT 1 FROM w)
)
SELECT stream_type, stream_id, version, position FROM w;

-- small_append (2 rows, 4 guard entries)
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($21::int8 = 0 OR (SELECT $22::uuid IS NULL OR x.event_id = $22
                    FROM passkey_links_events x
                    WHERE x.stream_type = $19::text AND x.stream_id = $20::text AND x.version = $21) IS TRUE)
  AND (NOT $23::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $19 AND x.stream_id = $20 AND x.version = $21 + 1) IS NULL)
  AND ($26::int8 = 0 OR (SELECT $27::uuid IS NULL OR x.event_id = $27
                    FROM passkey_links_events x
                    WHERE x.stream_type = $24::text AND x.stream_id = $25::text AND x.version = $26) IS TRUE)
  AND (NOT $28::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $24 AND x.stream_id = $25 AND x.version = $26 + 1) IS NULL)
  AND ($31::int8 = 0 OR (SELECT $32::uuid IS NULL OR x.event_id = $32
                    FROM passkey_links_events x
                    WHERE x.stream_type = $29::text AND x.stream_id = $30::text AND x.version = $31) IS TRUE)
  AND (NOT $33::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $29 AND x.stream_id = $30 AND x.version = $31 + 1) IS NULL)
  AND ($36::int8 = 0 OR (SELECT $37::uuid IS NULL OR x.event_id = $37
                    FROM passkey_links_events x
                    WHERE x.stream_type = $34::text AND x.stream_id = $35::text AND x.version = $36) IS TRUE)
  AND (NOT $38::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $34 AND x.stream_id = $35 AND x.version = $36 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position;

-- small_append (2 rows, 4 guard entries, keyed)
WITH w AS (
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($21::int8 = 0 OR (SELECT $22::uuid IS NULL OR x.event_id = $22
                    FROM passkey_links_events x
                    WHERE x.stream_type = $19::text AND x.stream_id = $20::text AND x.version = $21) IS TRUE)
  AND (NOT $23::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $19 AND x.stream_id = $20 AND x.version = $21 + 1) IS NULL)
  AND ($26::int8 = 0 OR (SELECT $27::uuid IS NULL OR x.event_id = $27
                    FROM passkey_links_events x
                    WHERE x.stream_type = $24::text AND x.stream_id = $25::text AND x.version = $26) IS TRUE)
  AND (NOT $28::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $24 AND x.stream_id = $25 AND x.version = $26 + 1) IS NULL)
  AND ($31::int8 = 0 OR (SELECT $32::uuid IS NULL OR x.event_id = $32
                    FROM passkey_links_events x
                    WHERE x.stream_type = $29::text AND x.stream_id = $30::text AND x.version = $31) IS TRUE)
  AND (NOT $33::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $29 AND x.stream_id = $30 AND x.version = $31 + 1) IS NULL)
  AND ($36::int8 = 0 OR (SELECT $37::uuid IS NULL OR x.event_id = $37
                    FROM passkey_links_events x
                    WHERE x.stream_type = $34::text AND x.stream_id = $35::text AND x.version = $36) IS TRUE)
  AND (NOT $38::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $34 AND x.stream_id = $35 AND x.version = $36 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position
),
k AS (
  INSERT INTO passkey_links_idempotency (key, outcome, streams, recorded_at)
  SELECT $39::text, $40::jsonb,
         (SELECT jsonb_agg(jsonb_build_array(stream_type, stream_id, version) ORDER BY position) FROM w),
         $41::timestamptz
  WHERE EXISTS (SELECT 1 FROM w)
)
SELECT stream_type, stream_id, version, position FROM w;

-- small_append (3 rows, 0 guard entries)
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2),
             ($19::text, $20::text, $21::int8, $22::bool, $23::uuid, $24::text, $25::int2, $26::text, $27::timestamptz, 3)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position;

-- small_append (3 rows, 0 guard entries, keyed)
WITH w AS (
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2),
             ($19::text, $20::text, $21::int8, $22::bool, $23::uuid, $24::text, $25::int2, $26::text, $27::timestamptz, 3)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position
),
k AS (
  INSERT INTO passkey_links_idempotency (key, outcome, streams, recorded_at)
  SELECT $28::text, $29::jsonb,
         (SELECT jsonb_agg(jsonb_build_array(stream_type, stream_id, version) ORDER BY position) FROM w),
         $30::timestamptz
  WHERE EXISTS (SELECT 1 FROM w)
)
SELECT stream_type, stream_id, version, position FROM w;

-- small_append (3 rows, 1 guard entries)
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2),
             ($19::text, $20::text, $21::int8, $22::bool, $23::uuid, $24::text, $25::int2, $26::text, $27::timestamptz, 3)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($30::int8 = 0 OR (SELECT $31::uuid IS NULL OR x.event_id = $31
                    FROM passkey_links_events x
                    WHERE x.stream_type = $28::text AND x.stream_id = $29::text AND x.version = $30) IS TRUE)
  AND (NOT $32::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $28 AND x.stream_id = $29 AND x.version = $30 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position;

-- small_append (3 rows, 1 guard entries, keyed)
WITH w AS (
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2),
             ($19::text, $20::text, $21::int8, $22::bool, $23::uuid, $24::text, $25::int2, $26::text, $27::timestamptz, 3)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($30::int8 = 0 OR (SELECT $31::uuid IS NULL OR x.event_id = $31
                    FROM passkey_links_events x
                    WHERE x.stream_type = $28::text AND x.stream_id = $29::text AND x.version = $30) IS TRUE)
  AND (NOT $32::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $28 AND x.stream_id = $29 AND x.version = $30 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position
),
k AS (
  INSERT INTO passkey_links_idempotency (key, outcome, streams, recorded_at)
  SELECT $33::text, $34::jsonb,
         (SELECT jsonb_agg(jsonb_build_array(stream_type, stream_id, version) ORDER BY position) FROM w),
         $35::timestamptz
  WHERE EXISTS (SELECT 1 FROM w)
)
SELECT stream_type, stream_id, version, position FROM w;

-- small_append (3 rows, 2 guard entries)
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2),
             ($19::text, $20::text, $21::int8, $22::bool, $23::uuid, $24::text, $25::int2, $26::text, $27::timestamptz, 3)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($30::int8 = 0 OR (SELECT $31::uuid IS NULL OR x.event_id = $31
                    FROM passkey_links_events x
                    WHERE x.stream_type = $28::text AND x.stream_id = $29::text AND x.version = $30) IS TRUE)
  AND (NOT $32::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $28 AND x.stream_id = $29 AND x.version = $30 + 1) IS NULL)
  AND ($35::int8 = 0 OR (SELECT $36::uuid IS NULL OR x.event_id = $36
                    FROM passkey_links_events x
                    WHERE x.stream_type = $33::text AND x.stream_id = $34::text AND x.version = $35) IS TRUE)
  AND (NOT $37::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $33 AND x.stream_id = $34 AND x.version = $35 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position;

-- small_append (3 rows, 2 guard entries, keyed)
WITH w AS (
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2),
             ($19::text, $20::text, $21::int8, $22::bool, $23::uuid, $24::text, $25::int2, $26::text, $27::timestamptz, 3)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($30::int8 = 0 OR (SELECT $31::uuid IS NULL OR x.event_id = $31
                    FROM passkey_links_events x
                    WHERE x.stream_type = $28::text AND x.stream_id = $29::text AND x.version = $30) IS TRUE)
  AND (NOT $32::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $28 AND x.stream_id = $29 AND x.version = $30 + 1) IS NULL)
  AND ($35::int8 = 0 OR (SELECT $36::uuid IS NULL OR x.event_id = $36
                    FROM passkey_links_events x
                    WHERE x.stream_type = $33::text AND x.stream_id = $34::text AND x.version = $35) IS TRUE)
  AND (NOT $37::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $33 AND x.stream_id = $34 AND x.version = $35 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position
),
k AS (
  INSERT INTO passkey_links_idempotency (key, outcome, streams, recorded_at)
  SELECT $38::text, $39::jsonb,
         (SELECT jsonb_agg(jsonb_build_array(stream_type, stream_id, version) ORDER BY position) FROM w),
         $40::timestamptz
  WHERE EXISTS (SELECT 1 FROM w)
)
SELECT stream_type, stream_id, version, position FROM w;

-- small_append (3 rows, 3 guard entries)
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2),
             ($19::text, $20::text, $21::int8, $22::bool, $23::uuid, $24::text, $25::int2, $26::text, $27::timestamptz, 3)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($30::int8 = 0 OR (SELECT $31::uuid IS NULL OR x.event_id = $31
                    FROM passkey_links_events x
                    WHERE x.stream_type = $28::text AND x.stream_id = $29::text AND x.version = $30) IS TRUE)
  AND (NOT $32::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $28 AND x.stream_id = $29 AND x.version = $30 + 1) IS NULL)
  AND ($35::int8 = 0 OR (SELECT $36::uuid IS NULL OR x.event_id = $36
                    FROM passkey_links_events x
                    WHERE x.stream_type = $33::text AND x.stream_id = $34::text AND x.version = $35) IS TRUE)
  AND (NOT $37::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $33 AND x.stream_id = $34 AND x.version = $35 + 1) IS NULL)
  AND ($40::int8 = 0 OR (SELECT $41::uuid IS NULL OR x.event_id = $41
                    FROM passkey_links_events x
                    WHERE x.stream_type = $38::text AND x.stream_id = $39::text AND x.version = $40) IS TRUE)
  AND (NOT $42::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $38 AND x.stream_id = $39 AND x.version = $40 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position;

-- small_append (3 rows, 3 guard entries, keyed)
WITH w AS (
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2),
             ($19::text, $20::text, $21::int8, $22::bool, $23::uuid, $24::text, $25::int2, $26::text, $27::timestamptz, 3)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($30::int8 = 0 OR (SELECT $31::uuid IS NULL OR x.event_id = $31
                    FROM passkey_links_events x
                    WHERE x.stream_type = $28::text AND x.stream_id = $29::text AND x.version = $30) IS TRUE)
  AND (NOT $32::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $28 AND x.stream_id = $29 AND x.version = $30 + 1) IS NULL)
  AND ($35::int8 = 0 OR (SELECT $36::uuid IS NULL OR x.event_id = $36
                    FROM passkey_links_events x
                    WHERE x.stream_type = $33::text AND x.stream_id = $34::text AND x.version = $35) IS TRUE)
  AND (NOT $37::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $33 AND x.stream_id = $34 AND x.version = $35 + 1) IS NULL)
  AND ($40::int8 = 0 OR (SELECT $41::uuid IS NULL OR x.event_id = $41
                    FROM passkey_links_events x
                    WHERE x.stream_type = $38::text AND x.stream_id = $39::text AND x.version = $40) IS TRUE)
  AND (NOT $42::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $38 AND x.stream_id = $39 AND x.version = $40 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position
),
k AS (
  INSERT INTO passkey_links_idempotency (key, outcome, streams, recorded_at)
  SELECT $43::text, $44::jsonb,
         (SELECT jsonb_agg(jsonb_build_array(stream_type, stream_id, version) ORDER BY position) FROM w),
         $45::timestamptz
  WHERE EXISTS (SELECT 1 FROM w)
)
SELECT stream_type, stream_id, version, position FROM w;

-- small_append (3 rows, 4 guard entries)
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2),
             ($19::text, $20::text, $21::int8, $22::bool, $23::uuid, $24::text, $25::int2, $26::text, $27::timestamptz, 3)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($30::int8 = 0 OR (SELECT $31::uuid IS NULL OR x.event_id = $31
                    FROM passkey_links_events x
                    WHERE x.stream_type = $28::text AND x.stream_id = $29::text AND x.version = $30) IS TRUE)
  AND (NOT $32::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $28 AND x.stream_id = $29 AND x.version = $30 + 1) IS NULL)
  AND ($35::int8 = 0 OR (SELECT $36::uuid IS NULL OR x.event_id = $36
                    FROM passkey_links_events x
                    WHERE x.stream_type = $33::text AND x.stream_id = $34::text AND x.version = $35) IS TRUE)
  AND (NOT $37::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $33 AND x.stream_id = $34 AND x.version = $35 + 1) IS NULL)
  AND ($40::int8 = 0 OR (SELECT $41::uuid IS NULL OR x.event_id = $41
                    FROM passkey_links_events x
                    WHERE x.stream_type = $38::text AND x.stream_id = $39::text AND x.version = $40) IS TRUE)
  AND (NOT $42::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $38 AND x.stream_id = $39 AND x.version = $40 + 1) IS NULL)
  AND ($45::int8 = 0 OR (SELECT $46::uuid IS NULL OR x.event_id = $46
                    FROM passkey_links_events x
                    WHERE x.stream_type = $43::text AND x.stream_id = $44::text AND x.version = $45) IS TRUE)
  AND (NOT $47::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $43 AND x.stream_id = $44 AND x.version = $45 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position;

-- small_append (3 rows, 4 guard entries, keyed)
WITH w AS (
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2),
             ($19::text, $20::text, $21::int8, $22::bool, $23::uuid, $24::text, $25::int2, $26::text, $27::timestamptz, 3)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($30::int8 = 0 OR (SELECT $31::uuid IS NULL OR x.event_id = $31
                    FROM passkey_links_events x
                    WHERE x.stream_type = $28::text AND x.stream_id = $29::text AND x.version = $30) IS TRUE)
  AND (NOT $32::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $28 AND x.stream_id = $29 AND x.version = $30 + 1) IS NULL)
  AND ($35::int8 = 0 OR (SELECT $36::uuid IS NULL OR x.event_id = $36
                    FROM passkey_links_events x
                    WHERE x.stream_type = $33::text AND x.stream_id = $34::text AND x.version = $35) IS TRUE)
  AND (NOT $37::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $33 AND x.stream_id = $34 AND x.version = $35 + 1) IS NULL)
  AND ($40::int8 = 0 OR (SELECT $41::uuid IS NULL OR x.event_id = $41
                    FROM passkey_links_events x
                    WHERE x.stream_type = $38::text AND x.stream_id = $39::text AND x.version = $40) IS TRUE)
  AND (NOT $42::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $38 AND x.stream_id = $39 AND x.version = $40 + 1) IS NULL)
  AND ($45::int8 = 0 OR (SELECT $46::uuid IS NULL OR x.event_id = $46
                    FROM passkey_links_events x
                    WHERE x.stream_type = $43::text AND x.stream_id = $44::text AND x.version = $45) IS TRUE)
  AND (NOT $47::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $43 AND x.stream_id = $44 AND x.version = $45 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position
),
k AS (
  INSERT INTO passkey_links_idempotency (key, outcome, streams, recorded_at)
  SELECT $48::text, $49::jsonb,
         (SELECT jsonb_agg(jsonb_build_array(stream_type, stream_id, version) ORDER BY position) FROM w),
         $50::timestamptz
  WHERE EXISTS (SELECT 1 FROM w)
)
SELECT stream_type, stream_id, version, position FROM w;

-- small_append (4 rows, 0 guard entries)
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2),
             ($19::text, $20::text, $21::int8, $22::bool, $23::uuid, $24::text, $25::int2, $26::text, $27::timestamptz, 3),
             ($28::text, $29::text, $30::int8, $31::bool, $32::uuid, $33::text, $34::int2, $35::text, $36::timestamptz, 4)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position;

-- small_append (4 rows, 0 guard entries, keyed)
WITH w AS (
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2),
             ($19::text, $20::text, $21::int8, $22::bool, $23::uuid, $24::text, $25::int2, $26::text, $27::timestamptz, 3),
             ($28::text, $29::text, $30::int8, $31::bool, $32::uuid, $33::text, $34::int2, $35::text, $36::timestamptz, 4)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position
),
k AS (
  INSERT INTO passkey_links_idempotency (key, outcome, streams, recorded_at)
  SELECT $37::text, $38::jsonb,
         (SELECT jsonb_agg(jsonb_build_array(stream_type, stream_id, version) ORDER BY position) FROM w),
         $39::timestamptz
  WHERE EXISTS (SELECT 1 FROM w)
)
SELECT stream_type, stream_id, version, position FROM w;

-- small_append (4 rows, 1 guard entries)
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2),
             ($19::text, $20::text, $21::int8, $22::bool, $23::uuid, $24::text, $25::int2, $26::text, $27::timestamptz, 3),
             ($28::text, $29::text, $30::int8, $31::bool, $32::uuid, $33::text, $34::int2, $35::text, $36::timestamptz, 4)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($39::int8 = 0 OR (SELECT $40::uuid IS NULL OR x.event_id = $40
                    FROM passkey_links_events x
                    WHERE x.stream_type = $37::text AND x.stream_id = $38::text AND x.version = $39) IS TRUE)
  AND (NOT $41::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $37 AND x.stream_id = $38 AND x.version = $39 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position;

-- small_append (4 rows, 1 guard entries, keyed)
WITH w AS (
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2),
             ($19::text, $20::text, $21::int8, $22::bool, $23::uuid, $24::text, $25::int2, $26::text, $27::timestamptz, 3),
             ($28::text, $29::text, $30::int8, $31::bool, $32::uuid, $33::text, $34::int2, $35::text, $36::timestamptz, 4)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($39::int8 = 0 OR (SELECT $40::uuid IS NULL OR x.event_id = $40
                    FROM passkey_links_events x
                    WHERE x.stream_type = $37::text AND x.stream_id = $38::text AND x.version = $39) IS TRUE)
  AND (NOT $41::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $37 AND x.stream_id = $38 AND x.version = $39 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position
),
k AS (
  INSERT INTO passkey_links_idempotency (key, outcome, streams, recorded_at)
  SELECT $42::text, $43::jsonb,
         (SELECT jsonb_agg(jsonb_build_array(stream_type, stream_id, version) ORDER BY position) FROM w),
         $44::timestamptz
  WHERE EXISTS (SELECT 1 FROM w)
)
SELECT stream_type, stream_id, version, position FROM w;

-- small_append (4 rows, 2 guard entries)
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2),
             ($19::text, $20::text, $21::int8, $22::bool, $23::uuid, $24::text, $25::int2, $26::text, $27::timestamptz, 3),
             ($28::text, $29::text, $30::int8, $31::bool, $32::uuid, $33::text, $34::int2, $35::text, $36::timestamptz, 4)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($39::int8 = 0 OR (SELECT $40::uuid IS NULL OR x.event_id = $40
                    FROM passkey_links_events x
                    WHERE x.stream_type = $37::text AND x.stream_id = $38::text AND x.version = $39) IS TRUE)
  AND (NOT $41::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $37 AND x.stream_id = $38 AND x.version = $39 + 1) IS NULL)
  AND ($44::int8 = 0 OR (SELECT $45::uuid IS NULL OR x.event_id = $45
                    FROM passkey_links_events x
                    WHERE x.stream_type = $42::text AND x.stream_id = $43::text AND x.version = $44) IS TRUE)
  AND (NOT $46::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $42 AND x.stream_id = $43 AND x.version = $44 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position;

-- small_append (4 rows, 2 guard entries, keyed)
WITH w AS (
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2),
             ($19::text, $20::text, $21::int8, $22::bool, $23::uuid, $24::text, $25::int2, $26::text, $27::timestamptz, 3),
             ($28::text, $29::text, $30::int8, $31::bool, $32::uuid, $33::text, $34::int2, $35::text, $36::timestamptz, 4)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($39::int8 = 0 OR (SELECT $40::uuid IS NULL OR x.event_id = $40
                    FROM passkey_links_events x
                    WHERE x.stream_type = $37::text AND x.stream_id = $38::text AND x.version = $39) IS TRUE)
  AND (NOT $41::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $37 AND x.stream_id = $38 AND x.version = $39 + 1) IS NULL)
  AND ($44::int8 = 0 OR (SELECT $45::uuid IS NULL OR x.event_id = $45
                    FROM passkey_links_events x
                    WHERE x.stream_type = $42::text AND x.stream_id = $43::text AND x.version = $44) IS TRUE)
  AND (NOT $46::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $42 AND x.stream_id = $43 AND x.version = $44 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position
),
k AS (
  INSERT INTO passkey_links_idempotency (key, outcome, streams, recorded_at)
  SELECT $47::text, $48::jsonb,
         (SELECT jsonb_agg(jsonb_build_array(stream_type, stream_id, version) ORDER BY position) FROM w),
         $49::timestamptz
  WHERE EXISTS (SELECT 1 FROM w)
)
SELECT stream_type, stream_id, version, position FROM w;

-- small_append (4 rows, 3 guard entries)
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2),
             ($19::text, $20::text, $21::int8, $22::bool, $23::uuid, $24::text, $25::int2, $26::text, $27::timestamptz, 3),
             ($28::text, $29::text, $30::int8, $31::bool, $32::uuid, $33::text, $34::int2, $35::text, $36::timestamptz, 4)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($39::int8 = 0 OR (SELECT $40::uuid IS NULL OR x.event_id = $40
                    FROM passkey_links_events x
                    WHERE x.stream_type = $37::text AND x.stream_id = $38::text AND x.version = $39) IS TRUE)
  AND (NOT $41::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $37 AND x.stream_id = $38 AND x.version = $39 + 1) IS NULL)
  AND ($44::int8 = 0 OR (SELECT $45::uuid IS NULL OR x.event_id = $45
                    FROM passkey_links_events x
                    WHERE x.stream_type = $42::text AND x.stream_id = $43::text AND x.version = $44) IS TRUE)
  AND (NOT $46::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $42 AND x.stream_id = $43 AND x.version = $44 + 1) IS NULL)
  AND ($49::int8 = 0 OR (SELECT $50::uuid IS NULL OR x.event_id = $50
                    FROM passkey_links_events x
                    WHERE x.stream_type = $47::text AND x.stream_id = $48::text AND x.version = $49) IS TRUE)
  AND (NOT $51::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $47 AND x.stream_id = $48 AND x.version = $49 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position;

-- small_append (4 rows, 3 guard entries, keyed)
WITH w AS (
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2),
             ($19::text, $20::text, $21::int8, $22::bool, $23::uuid, $24::text, $25::int2, $26::text, $27::timestamptz, 3),
             ($28::text, $29::text, $30::int8, $31::bool, $32::uuid, $33::text, $34::int2, $35::text, $36::timestamptz, 4)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($39::int8 = 0 OR (SELECT $40::uuid IS NULL OR x.event_id = $40
                    FROM passkey_links_events x
                    WHERE x.stream_type = $37::text AND x.stream_id = $38::text AND x.version = $39) IS TRUE)
  AND (NOT $41::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $37 AND x.stream_id = $38 AND x.version = $39 + 1) IS NULL)
  AND ($44::int8 = 0 OR (SELECT $45::uuid IS NULL OR x.event_id = $45
                    FROM passkey_links_events x
                    WHERE x.stream_type = $42::text AND x.stream_id = $43::text AND x.version = $44) IS TRUE)
  AND (NOT $46::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $42 AND x.stream_id = $43 AND x.version = $44 + 1) IS NULL)
  AND ($49::int8 = 0 OR (SELECT $50::uuid IS NULL OR x.event_id = $50
                    FROM passkey_links_events x
                    WHERE x.stream_type = $47::text AND x.stream_id = $48::text AND x.version = $49) IS TRUE)
  AND (NOT $51::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $47 AND x.stream_id = $48 AND x.version = $49 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position
),
k AS (
  INSERT INTO passkey_links_idempotency (key, outcome, streams, recorded_at)
  SELECT $52::text, $53::jsonb,
         (SELECT jsonb_agg(jsonb_build_array(stream_type, stream_id, version) ORDER BY position) FROM w),
         $54::timestamptz
  WHERE EXISTS (SELECT 1 FROM w)
)
SELECT stream_type, stream_id, version, position FROM w;

-- small_append (4 rows, 4 guard entries)
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2),
             ($19::text, $20::text, $21::int8, $22::bool, $23::uuid, $24::text, $25::int2, $26::text, $27::timestamptz, 3),
             ($28::text, $29::text, $30::int8, $31::bool, $32::uuid, $33::text, $34::int2, $35::text, $36::timestamptz, 4)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($39::int8 = 0 OR (SELECT $40::uuid IS NULL OR x.event_id = $40
                    FROM passkey_links_events x
                    WHERE x.stream_type = $37::text AND x.stream_id = $38::text AND x.version = $39) IS TRUE)
  AND (NOT $41::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $37 AND x.stream_id = $38 AND x.version = $39 + 1) IS NULL)
  AND ($44::int8 = 0 OR (SELECT $45::uuid IS NULL OR x.event_id = $45
                    FROM passkey_links_events x
                    WHERE x.stream_type = $42::text AND x.stream_id = $43::text AND x.version = $44) IS TRUE)
  AND (NOT $46::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $42 AND x.stream_id = $43 AND x.version = $44 + 1) IS NULL)
  AND ($49::int8 = 0 OR (SELECT $50::uuid IS NULL OR x.event_id = $50
                    FROM passkey_links_events x
                    WHERE x.stream_type = $47::text AND x.stream_id = $48::text AND x.version = $49) IS TRUE)
  AND (NOT $51::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $47 AND x.stream_id = $48 AND x.version = $49 + 1) IS NULL)
  AND ($54::int8 = 0 OR (SELECT $55::uuid IS NULL OR x.event_id = $55
                    FROM passkey_links_events x
                    WHERE x.stream_type = $52::text AND x.stream_id = $53::text AND x.version = $54) IS TRUE)
  AND (NOT $56::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $52 AND x.stream_id = $53 AND x.version = $54 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position;

-- small_append (4 rows, 4 guard entries, keyed)
WITH w AS (
INSERT INTO passkey_links_events (stream_type, stream_id, version, event_id, event_type, schema_version, payload, recorded_at)
SELECT n.t, n.i,
       n.v + CASE WHEN n.from_end THEN
               COALESCE((SELECT max(x.version) FROM passkey_links_events x
                         WHERE x.stream_type = n.t AND x.stream_id = n.i), 0)
             ELSE 0 END,
       n.id, n.e, n.s, n.d::jsonb, n.r
FROM (VALUES ($1::text, $2::text, $3::int8, $4::bool, $5::uuid, $6::text, $7::int2, $8::text, $9::timestamptz, 1),
             ($10::text, $11::text, $12::int8, $13::bool, $14::uuid, $15::text, $16::int2, $17::text, $18::timestamptz, 2),
             ($19::text, $20::text, $21::int8, $22::bool, $23::uuid, $24::text, $25::int2, $26::text, $27::timestamptz, 3),
             ($28::text, $29::text, $30::int8, $31::bool, $32::uuid, $33::text, $34::int2, $35::text, $36::timestamptz, 4)) AS n(t, i, v, from_end, id, e, s, d, r, seq)
WHERE ($39::int8 = 0 OR (SELECT $40::uuid IS NULL OR x.event_id = $40
                    FROM passkey_links_events x
                    WHERE x.stream_type = $37::text AND x.stream_id = $38::text AND x.version = $39) IS TRUE)
  AND (NOT $41::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $37 AND x.stream_id = $38 AND x.version = $39 + 1) IS NULL)
  AND ($44::int8 = 0 OR (SELECT $45::uuid IS NULL OR x.event_id = $45
                    FROM passkey_links_events x
                    WHERE x.stream_type = $42::text AND x.stream_id = $43::text AND x.version = $44) IS TRUE)
  AND (NOT $46::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $42 AND x.stream_id = $43 AND x.version = $44 + 1) IS NULL)
  AND ($49::int8 = 0 OR (SELECT $50::uuid IS NULL OR x.event_id = $50
                    FROM passkey_links_events x
                    WHERE x.stream_type = $47::text AND x.stream_id = $48::text AND x.version = $49) IS TRUE)
  AND (NOT $51::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $47 AND x.stream_id = $48 AND x.version = $49 + 1) IS NULL)
  AND ($54::int8 = 0 OR (SELECT $55::uuid IS NULL OR x.event_id = $55
                    FROM passkey_links_events x
                    WHERE x.stream_type = $52::text AND x.stream_id = $53::text AND x.version = $54) IS TRUE)
  AND (NOT $56::bool OR (SELECT x.version FROM passkey_links_events x
                             WHERE x.stream_type = $52 AND x.stream_id = $53 AND x.version = $54 + 1) IS NULL)
ORDER BY n.seq
RETURNING stream_type, stream_id, version, position
),
k AS (
  INSERT INTO passkey_links_idempotency (key, outcome, streams, recorded_at)
  SELECT $57::text, $58::jsonb,
         (SELECT jsonb_agg(jsonb_build_array(stream_type, stream_id, version) ORDER BY position) FROM w),
         $59::timestamptz
  WHERE EXISTS (SELECT 1 FROM w)
)
SELECT stream_type, stream_id, version, position FROM w;

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

