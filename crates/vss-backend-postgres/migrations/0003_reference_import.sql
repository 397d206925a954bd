-- vss-rs PostgreSQL schema, version 3.
--
-- The reference VSS server (lightningdevkit/vss-server) keeps its data in the table
-- vss_db of the same database. While that table exists, this server opens the
-- database only after `vss-admin import-reference` copied it, and only while vss_db
-- is unchanged since (see src/reference.rs). This row records the last copy.
CREATE TABLE vss_reference_import (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    -- 'imported': vss_objects and vss_stores were made equal to vss_db;
    -- 'exported': vss_db was made equal to them (the way back).
    state text NOT NULL CHECK (state IN ('imported', 'exported')),
    -- vss_db's row count, newest sort_order, created_at and last_updated_at, read
    -- in the snapshot of the copy: any later write to vss_db changes it.
    source_fingerprint text NOT NULL,
    source_rows bigint NOT NULL,
    done_at timestamptz NOT NULL DEFAULT now(),
    -- Set by the first server that opens the database after an import.
    serving_since timestamptz
);
