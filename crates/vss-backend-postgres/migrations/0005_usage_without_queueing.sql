-- vss-rs PostgreSQL schema, version 5: usage counted without queueing a
-- user's writes behind one row.
--
-- Version 4 made every write of a user take that user's usage row first and
-- hold it to its commit, so one user's writes ran one at a time. From version
-- 5 a write takes its usage row last, after its object rows, and counts its
-- change in one of 16 shards of the user's usage:
-- - shard 0 takes the writes under a quota, which queue there and judge the
--   sum of all shards (the quota needs an order among them);
-- - shards 1 to 15 take the other writes, by connection (`1 + pg_backend_pid()
--   % 15`), so writes of one user on different connections do not queue.
-- A user's usage is the sum of their shards; a shard may be negative.
--
-- To count its change, a write must know the length it replaces, read from
-- the row version it locked: upserts and updates record it in `prev_len`,
-- which their RETURNING then reads (the column means nothing else).
ALTER TABLE vss_objects ADD COLUMN prev_len integer;

-- The counts of version 4 are exact (its writers are waited for by the lock
-- this ALTER takes, and fail afterwards, as the columns they name are gone):
-- they become shard 0.
ALTER TABLE vss_usage
    DROP COLUMN bytes_before,
    DROP COLUMN keys_before,
    ADD COLUMN shard smallint NOT NULL DEFAULT 0;
ALTER TABLE vss_usage DROP CONSTRAINT vss_usage_pkey;
ALTER TABLE vss_usage ADD PRIMARY KEY (user_token, shard);
ALTER TABLE vss_usage ALTER COLUMN shard DROP DEFAULT;
ALTER TABLE vss_usage ADD CONSTRAINT vss_usage_shard CHECK (shard BETWEEN 0 AND 15);

-- Counts every user's usage again from vss_objects, into shard 0 (after an
-- import replaced vss_objects). The caller holds the lock that keeps writers
-- out.
CREATE OR REPLACE FUNCTION vss_recount_usage() RETURNS void
LANGUAGE sql VOLATILE AS $$
    DELETE FROM vss_usage;
    INSERT INTO vss_usage (user_token, shard, bytes, keys)
        SELECT user_token, 0, sum(octet_length(key) + octet_length(value)), count(*)
        FROM vss_objects GROUP BY user_token;
$$;
