-- The first page of a listing (100 keys, newest first) of the 1000 keys the script wrote:
-- 101 rows, as the server reads one more than the page to know whether another follows.
-- $1 = 'pgbench'::bytea
-- $2 = 'pgbench'::bytea
-- $3 = 101
-- statement: LIST_FIRST
SELECT (SELECT s.global_version FROM vss_stores s WHERE s.user_token = $1 AND s.store_id = $2), array_agg(o.key), array_agg(o.version), array_agg(o.sequence) FROM (SELECT key, version, sequence FROM vss_objects WHERE user_token = $1 AND store_id = $2 AND sequence > 0 ORDER BY sequence DESC LIMIT $3) AS o;
