-- A put of one item at version 0 (create) on keys never written: each client numbers
-- its own, under the round given with -D round=N.
-- $1 = 'pgbench'::bytea
-- $2 = 'pgbench'::bytea
-- $3 = convert_to('create-' || :round || '-' || :client_id || '-' || :n, 'UTF8')
-- $4 = VALUE
-- Run with -D n=0: each client counts from there.
\set n :n + 1
-- statement: CREATE_ALONE
WITH w AS (INSERT INTO vss_objects (user_token, store_id, key, version, sequence, value) VALUES ($1, $2, $3, 1, nextval('vss_creation_seq') * 1024, $4) ON CONFLICT (user_token, store_id, key) DO NOTHING RETURNING octet_length($3::bytea)::bigint + octet_length($4::bytea) AS bytes, 1 AS keys), u AS (INSERT INTO vss_usage AS u (user_token, shard, bytes, keys) SELECT $1, 1 + pg_backend_pid() % 15, bytes, keys FROM w WHERE bytes <> 0 OR keys <> 0 ON CONFLICT (user_token, shard) DO UPDATE SET bytes = u.bytes + EXCLUDED.bytes, keys = u.keys + EXCLUDED.keys) SELECT vss_require(EXISTS (SELECT 1 FROM w), 'create');
