-- cutover-reconcile: its runs in the comparison result store (PostgreSQL
-- 15), beside compare/schema.sql's tables.  Version 1.  Applied by
-- cutover-reconcile --results and by cutover-report ledgers in one
-- transaction under an advisory lock; every statement is idempotent.

-- one row per run; a failed run has no ledgers and says why
CREATE TABLE IF NOT EXISTS reconcile_runs (
    run_id       bigserial        PRIMARY KEY,
    started_at   timestamptz      NOT NULL,
    finished_at  timestamptz      NOT NULL DEFAULT now(),
    status       text             NOT NULL
                 CHECK (status IN ('agree', 'differ', 'failed')),
    error        text,
    stores       text,
    settle_ms    bigint           NOT NULL DEFAULT 0,
    seconds      double precision NOT NULL DEFAULT 0
);

-- per run and ledger: the rows in scope and what was found
CREATE TABLE IF NOT EXISTS reconcile_ledgers (
    run_id        bigint           NOT NULL
                  REFERENCES reconcile_runs ON DELETE CASCADE,
    ledger        text             NOT NULL,
    rows_new      bigint           NOT NULL,
    rows_legacy   bigint           NOT NULL,
    differences   bigint           NOT NULL,
    listed        bigint           NOT NULL,
    rows_fetched  bigint           NOT NULL,
    seconds       double precision NOT NULL,
    PRIMARY KEY (run_id, ledger)
);

-- the listed differences (key and values as cutover-reconcile -o json)
CREATE TABLE IF NOT EXISTS reconcile_differences (
    run_id  bigint NOT NULL REFERENCES reconcile_runs ON DELETE CASCADE,
    ledger  text   NOT NULL,
    kind    text   NOT NULL
            CHECK (kind IN ('value', 'missing_new', 'missing_legacy')),
    key     jsonb  NOT NULL,
    new     jsonb,
    legacy  jsonb
);

CREATE INDEX IF NOT EXISTS reconcile_differences_run
    ON reconcile_differences (run_id, ledger);
