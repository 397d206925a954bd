-- vss-rs PostgreSQL schema, version 6: the quota judged by a function that a
-- write calls only when it changed its user's usage.
--
-- Version 5 judged a quota in the write's own statement: a few more plan nodes
-- (the sum of the user's other shards, the comparison) that PostgreSQL sets up
-- on every execution, even for the many writes that change no usage (an
-- overwrite with a value of the same length). From version 6 the write's count
-- in shard 0 calls vss_judge_quota from its RETURNING, which runs only for the
-- usage row it changed; the function returns at once for a change that raises
-- nothing that has a limit, and otherwise sums the other shards and has
-- vss_require_quota judge them (kept: it owns the comparison and the message the
-- store reads, and servers of version 5 still running during an upgrade call it).
CREATE FUNCTION vss_judge_quota(
    owner bytea, shard_bytes bigint, shard_keys bigint, added_bytes bigint, added_keys bigint,
    max_bytes bigint, max_keys bigint
) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    total_bytes bigint;
    total_keys bigint;
BEGIN
    -- Nothing rose that has a limit: nothing to judge.
    IF (added_bytes <= 0 OR max_bytes IS NULL) AND (added_keys <= 0 OR max_keys IS NULL) THEN
        RETURN true;
    END IF;
    -- Shard 0 as this write leaves it (its row is locked to the commit) and
    -- the other shards as committed: writes under a quota count only in shard 0.
    SELECT shard_bytes + COALESCE(sum(u.bytes), 0), shard_keys + COALESCE(sum(u.keys), 0)
        INTO total_bytes, total_keys
        FROM vss_usage u
        WHERE u.user_token = owner AND u.shard > 0;
    -- vss_require_quota judges (and words the refusal), as in version 5.
    RETURN vss_require_quota(total_bytes - added_bytes, total_keys - added_keys,
        total_bytes, total_keys, max_bytes, max_keys);
END
$$;
