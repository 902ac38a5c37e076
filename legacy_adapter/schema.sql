-- legacy-store-sim: the stand-in legacy system's ledger, schema
-- "legacy", with the old system's pinyin names: md store (mendian),
-- qd channel (qudao), sp goods (shangpin), kc stock (kucun),
-- hy member (huiyuan), xsd sales order (xiaoshoudan), mx lines,
-- qqlsh request serial numbers (qingqiu liushuihao), idempotency.
CREATE SCHEMA IF NOT EXISTS legacy;
CREATE TABLE IF NOT EXISTS legacy.md (
    mdbh  text PRIMARY KEY,
    mdmc  text NOT NULL,
    zt    smallint NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS legacy.md_qd (
    mdbh  text NOT NULL,
    qd    smallint NOT NULL,
    PRIMARY KEY (mdbh, qd)
);
CREATE TABLE IF NOT EXISTS legacy.sp (
    spbm     text PRIMARY KEY,
    spmc     text NOT NULL,
    lsj_fen  bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS legacy.kc (
    mdbh  text NOT NULL,
    spbm  text NOT NULL,
    kcsl  integer NOT NULL,
    ydsl  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (mdbh, spbm)
);
CREATE TABLE IF NOT EXISTS legacy.hy (
    hyh   text PRIMARY KEY,
    jf    integer NOT NULL,
    hydj  smallint NOT NULL
);
CREATE SEQUENCE IF NOT EXISTS legacy.djh_seq;
CREATE TABLE IF NOT EXISTS legacy.xsd (
    djh      text PRIMARY KEY,
    mdbh     text NOT NULL,
    qd       smallint NOT NULL,
    hyh      text,
    zt       smallint NOT NULL,
    zje_fen  bigint NOT NULL,
    jf       integer NOT NULL,
    zffs     smallint,
    cjsj     timestamptz NOT NULL DEFAULT now(),
    qxsj     timestamptz
);
CREATE TABLE IF NOT EXISTS legacy.xsd_mx (
    djh     text NOT NULL REFERENCES legacy.xsd (djh),
    hh      integer NOT NULL,
    spbm    text NOT NULL,
    sl      integer NOT NULL,
    dj_fen  bigint NOT NULL,
    je_fen  bigint NOT NULL,
    PRIMARY KEY (djh, hh)
);
CREATE TABLE IF NOT EXISTS legacy.qqlsh (
    qqlsh  text PRIMARY KEY,
    jk     text NOT NULL,
    zy     text NOT NULL,
    xy     text,
    cjsj   timestamptz NOT NULL DEFAULT now()
);
-- The stand-in's --idempotency-ttl purge deletes by age in batches.
CREATE INDEX IF NOT EXISTS qqlsh_cjsj ON legacy.qqlsh (cjsj);
