-- vss-rs PostgreSQL schema, version 1.
--
-- Identifiers and keys are bytea: compared byte by byte (no collation), any
-- UTF-8 including NUL, and a key prefix is a plain byte range.

-- Creation order of keys. One value per put that creates keys; a put's items get
-- value * 1024 + their index in the request, so the order is strictly increasing
-- per store, follows request order inside a put, and fits in bigint.
CREATE SEQUENCE vss_creation_seq AS bigint MINVALUE 1 MAXVALUE 9007199254740991;

-- One row per (user, store) whose global version was ever set; absent means 0.
-- Puts that carry a global version serialise on this row.
CREATE TABLE vss_stores (
    user_token bytea NOT NULL,
    store_id bytea NOT NULL,
    global_version bigint NOT NULL,
    PRIMARY KEY (user_token, store_id)
);

CREATE TABLE vss_objects (
    user_token bytea NOT NULL,
    store_id bytea NOT NULL,
    key bytea NOT NULL,
    version bigint NOT NULL,
    -- Kept by updates and overwrites, renewed by delete and re-create.
    sequence bigint NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (user_token, store_id, key)
);

-- Listing: newest first within one store, answered from the index alone.
CREATE INDEX vss_objects_listing
    ON vss_objects (user_token, store_id, sequence DESC) INCLUDE (key, version);

-- Aborts the statement (and its transaction) when a put's condition does not hold.
-- SQLSTATE VS409 is mapped to CONFLICT by the server; nothing else is.
CREATE FUNCTION vss_require(ok boolean, what text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION USING ERRCODE = 'VS409', MESSAGE = 'vss condition failed: ' || what;
    END IF;
    RETURN true;
END
$$;
