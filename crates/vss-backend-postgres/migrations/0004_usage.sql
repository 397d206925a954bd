-- vss-rs PostgreSQL schema, version 4: what each user stores, for quotas.
--
-- One row per user who ever wrote: keys, and bytes of keys plus values. Every
-- write transaction takes its user's row first (FOR UPDATE, through the
-- upsert that also remembers the usage before the write), so one user's
-- writes are serialised on it and each statement can count its own change
-- exactly; `bytes_before`/`keys_before` let the last statement of a put judge
-- the quota against the usage before the put.
CREATE TABLE vss_usage (
    user_token bytea PRIMARY KEY,
    bytes bigint NOT NULL,
    keys bigint NOT NULL,
    bytes_before bigint NOT NULL,
    keys_before bigint NOT NULL
);

-- Counts every user's usage again from vss_objects: once here for the data
-- already stored, and after an import replaced vss_objects. The caller holds
-- the lock that keeps writers out (the migration: a SHARE lock on vss_objects).
CREATE FUNCTION vss_recount_usage() RETURNS void
LANGUAGE sql VOLATILE AS $$
    DELETE FROM vss_usage;
    INSERT INTO vss_usage (user_token, bytes, keys, bytes_before, keys_before)
        SELECT user_token, sum(octet_length(key) + octet_length(value)), count(*), 0, 0
        FROM vss_objects GROUP BY user_token;
$$;

-- Writers of a server still running the previous version wait here until the
-- migration committed, so nothing they write is missed by the count.
LOCK TABLE vss_objects IN SHARE MODE;
SELECT vss_recount_usage();

-- Aborts a put whose quota does not admit it: when it raises bytes or keys
-- above a limit (NULL: no limit). SQLSTATE VS507 carries the usage before and
-- after as `bytes_before keys_before bytes keys`, from which the server words
-- the answer; nothing else raises it.
CREATE FUNCTION vss_require_quota(
    bytes_before bigint, keys_before bigint, bytes bigint, keys bigint,
    max_bytes bigint, max_keys bigint
) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF (bytes > bytes_before AND bytes > max_bytes) OR (keys > keys_before AND keys > max_keys) THEN
        RAISE EXCEPTION USING ERRCODE = 'VS507',
            MESSAGE = format('%s %s %s %s', bytes_before, keys_before, bytes, keys);
    END IF;
    RETURN true;
END
$$;
