-- cutover compare: the result store (PostgreSQL 15).  Version 1.
-- Applied by compare_store_open() (and cutover-report --init-schema) in one
-- transaction under an advisory lock; every statement is idempotent.

CREATE TABLE IF NOT EXISTS compare_schema (
    version     integer     PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- one row per compared pair
CREATE TABLE IF NOT EXISTS compare_pairs (
    record_id       text             PRIMARY KEY,
    at              timestamptz      NOT NULL,
    zone            text             NOT NULL,
    method          text             NOT NULL,
    route           text             NOT NULL,
    uri             text             NOT NULL,
    store           text             NOT NULL,
    channel         text             NOT NULL,
    side_served     text             NOT NULL,
    primary_status  integer          NOT NULL,
    shadow_status   integer          NOT NULL,
    primary_ms      double precision,
    shadow_ms       double precision,
    verdict         text             NOT NULL,
    ndiffs          integer          NOT NULL,
    detail          text             NOT NULL,
    stored_at       timestamptz      NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS compare_pairs_at ON compare_pairs (at);
CREATE INDEX IF NOT EXISTS compare_pairs_route ON compare_pairs (route, at);

-- one row per difference; values of masked fields are HMACs only
CREATE TABLE IF NOT EXISTS compare_diffs (
    record_id   text     NOT NULL
                REFERENCES compare_pairs (record_id) ON DELETE CASCADE,
    seq         integer  NOT NULL,
    path        text     NOT NULL,
    kind        text     NOT NULL,
    a           text,
    b           text,
    PRIMARY KEY (record_id, seq)
);

CREATE INDEX IF NOT EXISTS compare_diffs_path ON compare_diffs (path, kind);

INSERT INTO compare_schema (version) VALUES (1) ON CONFLICT DO NOTHING;
