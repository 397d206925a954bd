-- deleteObject at version -1 of keys written for this round ('del-<round>-<client>-<n>',
-- by scripts/bench-postgres), each once: run with -t, as many as each client has.
-- $1 = 'pgbench'::bytea
-- $2 = 'pgbench'::bytea
-- $3 = convert_to('del-' || :round || '-' || :client_id || '-' || :n, 'UTF8')
-- Run with -D n=0: each client counts from there (its keys are numbered from 1).
\set n :n + 1
-- statement: DELETE_OBJECT
WITH w AS (DELETE FROM vss_objects WHERE user_token = $1 AND store_id = $2 AND key = $3 RETURNING -(octet_length(key)::bigint + octet_length(value)) AS bytes, -1 AS keys), u AS (INSERT INTO vss_usage AS u (user_token, shard, bytes, keys) SELECT $1, 1 + pg_backend_pid() % 15, bytes, keys FROM w WHERE bytes <> 0 OR keys <> 0 ON CONFLICT (user_token, shard) DO UPDATE SET bytes = u.bytes + EXCLUDED.bytes, keys = u.keys + EXCLUDED.keys) SELECT 1;
