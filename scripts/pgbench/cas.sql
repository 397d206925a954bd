-- A conditional update: each client chains the versions of its own key ('own-<client>',
-- which scripts/bench-postgres writes and sets to one version before each round).
-- $1 = 'pgbench'::bytea
-- $2 = 'pgbench'::bytea
-- $3 = convert_to('own-' || :client_id, 'UTF8')
-- $4 = :v
-- $5 = VALUE
-- Run with -D v=N when every client's key is at version N.
-- statement: UPDATE_ALONE
WITH w AS (UPDATE vss_objects SET version = version + 1, value = $5, prev_len = octet_length(value) WHERE user_token = $1 AND store_id = $2 AND key = $3 AND version = $4 RETURNING octet_length($5::bytea)::bigint - prev_len AS bytes, 0 AS keys), u AS (INSERT INTO vss_usage AS u (user_token, shard, bytes, keys) SELECT $1, 1 + pg_backend_pid() % 15, bytes, keys FROM w WHERE bytes <> 0 OR keys <> 0 ON CONFLICT (user_token, shard) DO UPDATE SET bytes = u.bytes + EXCLUDED.bytes, keys = u.keys + EXCLUDED.keys) SELECT vss_require(EXISTS (SELECT 1 FROM w), 'update');
\set v :v + 1
