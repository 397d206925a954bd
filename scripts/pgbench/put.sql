-- A put of one item at version -1 on random existing keys: one statement that writes
-- and counts the change in its connection's usage shard.
-- $1 = 'pgbench'::bytea
-- $2 = 'pgbench'::bytea
-- $3 = convert_to('bench-key-' || lpad(:k::text, 8, '0'), 'UTF8')
-- $4 = VALUE
\set k random(0, 999)
-- statement: ANY_ALONE
WITH w AS (INSERT INTO vss_objects AS o (user_token, store_id, key, version, sequence, value) VALUES ($1, $2, $3, 1, nextval('vss_creation_seq') * 1024, $4) ON CONFLICT (user_token, store_id, key) DO UPDATE SET version = 1, value = EXCLUDED.value, prev_len = octet_length(o.value) RETURNING octet_length($4::bytea)::bigint + CASE WHEN o.prev_len IS NULL THEN octet_length($3::bytea) ELSE -o.prev_len END AS bytes, CASE WHEN o.prev_len IS NULL THEN 1 ELSE 0 END AS keys), u AS (INSERT INTO vss_usage AS u (user_token, shard, bytes, keys) SELECT $1, 1 + pg_backend_pid() % 15, bytes, keys FROM w WHERE bytes <> 0 OR keys <> 0 ON CONFLICT (user_token, shard) DO UPDATE SET bytes = u.bytes + EXCLUDED.bytes, keys = u.keys + EXCLUDED.keys) SELECT 1;
