-- The first page of a listing (100 keys, newest first) of the 1000 keys the script wrote.
-- $1 = 'pgbench'::bytea
-- $2 = 'pgbench'::bytea
-- $3 = 100
-- statement: LIST_FIRST
SELECT g.global_version, o.key, o.version, o.sequence FROM (SELECT COALESCE((SELECT s.global_version FROM vss_stores s WHERE s.user_token = $1 AND s.store_id = $2), 0) AS global_version) AS g LEFT JOIN LATERAL (SELECT key, version, sequence FROM vss_objects WHERE user_token = $1 AND store_id = $2 AND sequence > 0 ORDER BY sequence DESC LIMIT $3) AS o ON true;
