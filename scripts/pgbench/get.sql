-- The statement vss-server runs for `getObject` (crates/vss-backend-postgres/src/sql.rs,
-- checked by its test `pgbench_scripts_run_the_stores_statements`), on random keys of
-- the 1000 that scripts/bench-postgres writes. $N lines name each parameter's value.
-- $1 = 'pgbench'::bytea
-- $2 = 'pgbench'::bytea
-- $3 = convert_to('bench-key-' || lpad(:k::text, 8, '0'), 'UTF8')
\set k random(0, 999)
-- statement: GET
SELECT version, value FROM vss_objects WHERE user_token = $1 AND store_id = $2 AND key = $3;
