"""compare/: the result store against real PostgreSQL (idempotent inserts,
the outbox across a PostgreSQL stop/start), cutover-report's figures against
direct SQL, and cutover-compare's exit codes and output on fixture files."""

import csv
import io
import json
import os
import struct
import subprocess
import time

import pytest

import harness

FIX = os.path.join(harness.ROOT, "tests", "fixtures", "compare")
RULES = os.path.join(FIX, "rules.json")
COMPARE = harness.bin_path("cutover-compare")
REPORT = harness.bin_path("cutover-report")
ROUTE = "POST /api/v1/orders"


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          **kw)


def order(i, total="10.00", qty=1, phone="13800000000"):
    return {"order_id": "ORD%06d" % i, "store_id": "S%03d" % (i % 7 + 1),
            "channel": ["pos", "eshop", "miniapp"][i % 3],
            "member": {"phone": phone},
            "lines": [{"sku": "SKU%05d" % (i % 50), "qty": qty,
                       "unit_price": "10.00", "amount": "10.00"}],
            "total": total, "points_earned": 10,
            "created_at": "2026-11-21T10:00:%02dZ" % (i % 60)}


def pair_line(i, prefix, kind="equal"):
    """One line of `cutover-compare store` input; kind says how B differs."""
    a = order(i)
    b = order(i)
    sb = 201
    body_b = None
    if kind == "total":
        b["total"] = "10.50"
    elif kind == "qty":
        b["lines"][0]["qty"] = 2
        b["member"]["phone"] = "13999999999"
    elif kind == "unparseable":
        body_b = '{"order_id": '
    elif kind == "shadow_failed":
        sb = 0
        body_b = ""
    b["created_at"] = "2026-11-21T11:11:11Z"    # ignored by the rules
    return json.dumps({
        "record_id": "%s%026x" % (prefix, i), "time_us": int(time.time() * 1e6),
        "zone": "erp", "method": "POST", "uri": "/api/v1/orders",
        "store": a["store_id"], "channel": a["channel"], "side": "legacy",
        "status_a": 201, "status_b": sb, "a": json.dumps(a),
        "b": body_b if body_b is not None else json.dumps(b)})


KINDS = ["equal"] * 14 + ["total", "qty", "unparseable", "shadow_failed"]


def write_pairs(path, n, prefix, start=0):
    expect = {"equal": 0, "total": 0, "qty": 0, "unparseable": 0,
              "shadow_failed": 0}
    with open(path, "w") as f:
        for i in range(start, start + n):
            kind = KINDS[i % len(KINDS)]
            expect[kind] += 1
            f.write(pair_line(i, prefix, kind) + "\n")
    return expect


def store(db, path, outbox=None, batch=None, rules=RULES):
    argv = [COMPARE, "store", "--db", db]
    if rules:
        argv += ["--rules", rules]
    if outbox:
        argv += ["--outbox", outbox]
    if batch:
        argv += ["--batch", str(batch)]
    r = run(argv + [path])
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def filled(pg, tmpdir_module):
    """A database with 3600 stored pairs of known kinds."""
    db = pg.createdb("compare_report")
    path = os.path.join(tmpdir_module, "pairs.jsonl")
    expect = write_pairs(path, 3600, "aa")
    out = store(db, path, os.path.join(tmpdir_module, "outbox"))
    assert out == {"stored": 3600, "pending": 0, "written": 3600,
                   "rejected": 0}
    return db, expect


@pytest.fixture(scope="module")
def tmpdir_module():
    path = harness.make_tempdir("compare")
    yield path
    harness.remove_tempdir(path)


def sql(pg, q):
    return pg.psql("compare_report", q)


# --- the store -------------------------------------------------------------

def test_store_counts_and_idempotent(pg, filled, tmpdir_module):
    db, expect = filled
    rows = dict(line.split("|") for line in sql(
        pg, "SELECT verdict, count(*) FROM compare_pairs GROUP BY 1")
        .splitlines())
    assert int(rows["equal"]) == expect["equal"]
    assert int(rows["different"]) == expect["total"] + expect["qty"]
    assert int(rows["unparseable"]) == expect["unparseable"]
    assert int(rows["shadow_failed"]) == expect["shadow_failed"]
    # "total": one difference; "qty": the quantity and the masked phone
    ndiffs = int(sql(pg, "SELECT count(*) FROM compare_diffs"))
    assert ndiffs == expect["total"] + 2 * expect["qty"]
    # the same records again: nothing doubles
    path = os.path.join(tmpdir_module, "pairs.jsonl")
    store(db, path)
    assert int(sql(pg, "SELECT count(*) FROM compare_pairs")) == 3600
    assert int(sql(pg, "SELECT count(*) FROM compare_diffs")) == ndiffs
    # ... even when compared again without rules (more differences): the
    # first result of a record stands, its differences included
    store(db, path, rules=None)
    assert int(sql(pg, "SELECT count(*) FROM compare_diffs")) == ndiffs
    assert sql(pg, "SELECT count(*) FROM compare_pairs p WHERE ndiffs <> "
                   "(SELECT count(*) FROM compare_diffs d "
                   "WHERE d.record_id = p.record_id)") == "0"


def test_masked_values_stored_as_hmac_only(pg, filled):
    rows = sql(pg, "SELECT a, b FROM compare_diffs "
                   "WHERE path = '$.member.phone'").splitlines()
    assert rows
    for row in rows:
        a, b = row.split("|")
        assert a.startswith('"hmac:') and b.startswith('"hmac:')
    clear = sql(pg, "SELECT count(*) FROM compare_diffs WHERE "
                    "a LIKE '%13800000000%' OR b LIKE '%13999999999%'")
    assert clear == "0"
    paths = set(sql(pg, "SELECT DISTINCT path FROM compare_diffs")
                .splitlines())
    assert "$.total" in paths and "$.member.phone" in paths
    assert all(p.startswith("$.lines[sku=SKU") for p in
               paths - {"$.total", "$.member.phone"})


def test_outbox_across_postgres_stop(pg, tmpdir_w):
    db = pg.createdb("compare_outbox")
    outbox = os.path.join(tmpdir_w, "outbox")
    first = os.path.join(tmpdir_w, "first.jsonl")
    second = os.path.join(tmpdir_w, "second.jsonl")
    write_pairs(first, 900, "bb", 0)
    write_pairs(second, 300, "bb", 900)
    store(db, os.path.join(tmpdir_w, "first.jsonl"), outbox)   # schema
    pg.psql("compare_outbox", "TRUNCATE compare_pairs CASCADE")
    pg.stop()
    try:
        out = store(db, first, outbox, batch=200)
        assert out["pending"] == 900 and out["written"] == 0
        files = [f for f in os.listdir(outbox) if f.endswith(".bson")]
        assert len(files) == 5          # 4 x 200 + 100, each fsynced
    finally:
        pg.start()
    out = store(db, second, outbox)
    assert out == {"stored": 300, "pending": 0, "written": 1200,
                   "rejected": 0}
    assert os.listdir(outbox) == []
    assert pg.psql("compare_outbox",
                   "SELECT count(*), count(DISTINCT record_id) "
                   "FROM compare_pairs") == "1200|1200"


def test_outbox_drains_in_the_same_process(pg, tmpdir_w):
    """One long-lived writer (as in cutover-shadowd): results made durable
    one by one go to the outbox while PostgreSQL is down and are written
    by the same process once it is back."""
    db = pg.createdb("compare_live")
    outbox = os.path.join(tmpdir_w, "outbox")
    p = subprocess.Popen([COMPARE, "store", "--rules", RULES, "--db", db,
                          "--outbox", outbox, "--batch", "1", "-"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        for i in range(20):
            p.stdin.write(pair_line(i, "ee") + "\n")
        p.stdin.flush()
        time.sleep(0.5)
        pg.stop()
        try:
            for i in range(20, 60):
                p.stdin.write(pair_line(i, "ee") + "\n")
                p.stdin.flush()
            time.sleep(1.0)
            waiting = [f for f in os.listdir(outbox) if f.endswith(".bson")]
            assert len(waiting) >= 30
        finally:
            pg.start()
        time.sleep(2.5)             # past the reconnect back-off
        for i in range(60, 70):
            p.stdin.write(pair_line(i, "ee") + "\n")
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert json.loads(out) == {"stored": 70, "pending": 0, "written": 70,
                               "rejected": 0}
    assert pg.psql("compare_live", "SELECT count(*) FROM compare_pairs") \
        == "70"
    assert [f for f in os.listdir(outbox) if f.endswith(".bson")] == []


def test_refused_record_set_aside(pg, tmpdir_w):
    """PostgreSQL up but refusing one record: the rest go in, the refused
    one waits in a .rejected file, nothing blocks."""
    db = pg.createdb("compare_reject")
    path = os.path.join(tmpdir_w, "p.jsonl")
    write_pairs(path, 50, "dd")
    outbox = os.path.join(tmpdir_w, "outbox")
    first = os.path.join(tmpdir_w, "first.jsonl")
    with open(first, "w") as f:
        f.write(pair_line(1000, "dd") + "\n")
    store(db, first, outbox)                             # schema
    pg.psql("compare_reject", "ALTER TABLE compare_pairs ADD CONSTRAINT "
            "no_s003 CHECK (store <> 'S003')")
    out = store(db, path, outbox)
    refused = sum(1 for i in range(50) if i % 7 + 1 == 3)
    assert out["rejected"] == refused and out["pending"] == 0
    assert int(pg.psql("compare_reject", "SELECT count(*) FROM "
                       "compare_pairs")) == 1 + 50 - refused
    kept = [f for f in os.listdir(outbox) if f.endswith(".rejected")]
    assert len(kept) == 1
    assert os.path.getsize(os.path.join(outbox, kept[0])) > 0


def test_no_database_no_outbox_is_an_error(tmpdir_w):
    path = os.path.join(tmpdir_w, "p.jsonl")
    write_pairs(path, 3, "cc")
    port = harness.free_port()
    r = run([COMPARE, "store", "--db",
             "host=127.0.0.1 port=%d dbname=x connect_timeout=2" % port,
             path])
    assert r.returncode == 2
    assert "database" in r.stderr


# --- cutover-report against direct SQL -------------------------------------

def report(db, *args):
    return run([REPORT, "--db", db] + list(args))


def test_report_summary_matches_sql(pg, filled):
    db, expect = filled
    r = report(db, "--format", "json", "summary")
    assert r.returncode == 1, r.stderr          # differences found
    s = json.loads(r.stdout)[0]
    assert s["pairs"] == int(sql(pg, "SELECT count(*) FROM compare_pairs"))
    assert s["different"] == int(sql(
        pg, "SELECT count(*) FROM compare_pairs WHERE verdict='different'"))
    assert s["unparseable"] == expect["unparseable"]
    assert s["shadow_failed"] == expect["shadow_failed"]
    assert s["differences"] == int(sql(pg, "SELECT count(*) "
                                           "FROM compare_diffs"))
    compared = 3600 - expect["shadow_failed"]
    mism = expect["total"] + expect["qty"] + expect["unparseable"]
    assert abs(float(s["mismatch_pct"]) - 100.0 * mism / compared) < 0.01


def test_report_by_store_and_route_match_sql(pg, filled):
    db, _ = filled
    r = report(db, "--format", "json", "stores")
    assert r.returncode == 1
    got = {row["store"]: (row["pairs"], row["mismatches"])
           for row in json.loads(r.stdout)}
    want = {}
    for line in sql(pg, "SELECT store, count(*), count(*) FILTER (WHERE "
                        "verdict IN ('different','unparseable')) FROM "
                        "compare_pairs GROUP BY 1").splitlines():
        s, n, m = line.split("|")
        want[s] = (int(n), int(m))
    assert got == want
    r = report(db, "--format", "csv", "routes")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [x["route"] for x in rows] == [ROUTE]
    assert int(rows[0]["pairs"]) == 3600
    samples = rows[0]["sample_ids"].split()
    assert len(samples) == 3
    for rid in samples:
        assert sql(pg, "SELECT verdict FROM compare_pairs WHERE record_id='%s'"
                   % rid) in ("different", "unparseable")


def test_report_fields_samples_export(pg, filled):
    db, expect = filled
    r = report(db, "--format", "json", "--limit", "1000", "fields")
    fields = {(x["path"], x["kind"]): x["differences"]
              for x in json.loads(r.stdout)}
    assert fields[("$.total", "value")] == expect["total"]
    qty = sum(n for (p, k), n in fields.items() if p.endswith("].qty"))
    assert qty == expect["qty"]
    r = report(db, "--format", "json", "--limit", "5", "samples")
    samples = json.loads(r.stdout)
    assert len(samples) == 5
    assert all(s["verdict"] != "equal" for s in samples)
    r = report(db, "--format", "csv", "export")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 3600
    assert r.stdout.count("\n") >= 3601
    r = report(db, "--format", "json", "hours")
    hours = json.loads(r.stdout)
    assert sum(h["pairs"] for h in hours) == 3600
    assert sum(h["mismatches"] for h in hours) == \
        expect["total"] + expect["qty"] + expect["unparseable"]
    r = report(db, "summary")                        # text
    assert r.returncode == 1 and "mismatch_pct" in r.stdout


def test_report_exit_codes(pg, filled):
    db, _ = filled
    r = report(db, "--since", "2999-01-01T00:00:00Z", "--format", "json",
               "summary")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["pairs"] == 0
    r = report(db, "--since", "1h", "summary")
    assert r.returncode == 1
    empty = pg.createdb("compare_empty")
    r = report(empty, "--init-schema", "routes")
    assert r.returncode == 0, r.stderr
    assert report(db, "nonsense").returncode == 2
    assert report(db, "--since", "yesterday-ish", "summary").returncode == 2
    assert run([REPORT, "summary"]).returncode == 2
    port = harness.free_port()
    r = report("host=127.0.0.1 port=%d dbname=x" % port, "summary")
    assert r.returncode == 2 and "database" in r.stderr
    assert run([REPORT, "--help"]).returncode == 0


# --- cutover-compare on fixture files ----------------------------------------

def compare(*args):
    return run([COMPARE] + list(args))


def fx(name):
    return os.path.join(FIX, name)


def test_compare_equal_under_rules():
    r = compare("--rules", RULES, "--route", ROUTE, fx("order_legacy.json"),
                fx("order_new.json"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == ""
    # without rules the same pair differs: order, decimals, times
    r = compare(fx("order_legacy.json"), fx("order_new.json"))
    assert r.returncode == 1
    kinds = {json.loads(l)["kind"] for l in r.stdout.splitlines()}
    assert "value" in kinds


def test_compare_differences_output():
    r = compare("--rules", RULES, "--route", ROUTE, fx("order_legacy.json"),
                fx("order_new_wrong.json"))
    assert r.returncode == 1
    diffs = [json.loads(l) for l in r.stdout.splitlines()]
    by_path = {d["path"]: d for d in diffs}
    assert by_path["$.lines[sku=SKU00042].qty"] == {
        "path": "$.lines[sku=SKU00042].qty", "kind": "value", "a": 2, "b": 3}
    assert by_path["$.total"]["a"] == "273.50"
    assert by_path["$.coupon"]["kind"] == "extra"
    phone = by_path["$.member.phone"]
    assert phone["a"].startswith("hmac:") and phone["b"].startswith("hmac:")
    assert "13800138000" not in r.stdout and "13900139000" not in r.stdout
    assert "$.created_at" not in by_path
    # swapping sides: same count, missing for extra
    r2 = compare("--rules", RULES, "--route", ROUTE,
                 fx("order_new_wrong.json"), fx("order_legacy.json"))
    d2 = [json.loads(l) for l in r2.stdout.splitlines()]
    assert len(d2) == len(diffs)
    assert {d["path"]: d["kind"] for d in d2}["$.coupon"] == "missing"


def test_compare_unparseable_and_errors(tmpdir_w):
    r = compare(fx("order_legacy.json"), fx("truncated.json"))
    assert r.returncode == 2
    assert "unparseable on the B side" in r.stderr
    r = compare(fx("truncated.json"), fx("order_legacy.json"))
    assert "unparseable on the A side" in r.stderr
    bad = os.path.join(tmpdir_w, "bad_rules.json")
    with open(bad, "w") as f:
        f.write('{"routes": [{"match": "GET /a"}, {"match": "POST /b", '
                '"tolerance": {"$.total": {"abs": "cheap"}}}]}')
    r = compare("--rules", bad, fx("order_legacy.json"), fx("order_new.json"))
    assert r.returncode == 2
    assert "rule 2 (POST /b)" in r.stderr and "$.total" in r.stderr
    assert compare(fx("order_legacy.json")).returncode == 2
    assert compare("--bogus", "a", "b").returncode == 2
    assert compare("--help").returncode == 0
    assert compare(fx("order_legacy.json"), "/nonexistent").returncode == 2


def to_bson(doc):
    """A small BSON encoder (objects, arrays, strings, int64, bool, null)."""
    def element(key, v):
        k = key.encode() + b"\0"
        if isinstance(v, bool):
            return b"\x08" + k + (b"\x01" if v else b"\x00")
        if isinstance(v, int):
            return b"\x12" + k + struct.pack("<q", v)
        if isinstance(v, str):
            b = v.encode() + b"\0"
            return b"\x02" + k + struct.pack("<i", len(b)) + b
        if v is None:
            return b"\x0a" + k
        if isinstance(v, list):
            return b"\x04" + k + document({str(i): x
                                           for i, x in enumerate(v)})
        return b"\x03" + k + document(v)

    def document(d):
        body = b"".join(element(k, v) for k, v in d.items()) + b"\0"
        return struct.pack("<i", len(body) + 4) + body

    return document(doc)


def test_compare_json_against_bson(tmpdir_w):
    with open(fx("order_new.json")) as f:
        doc = json.load(f)
    bson_path = os.path.join(tmpdir_w, "order_new.bson")
    with open(bson_path, "wb") as f:
        f.write(to_bson(doc))
    r = compare("--rules", RULES, "--route", ROUTE, fx("order_legacy.json"),
                bson_path)
    assert r.returncode == 0, r.stdout + r.stderr
    doc["lines"][0]["qty"] = 5
    with open(bson_path, "wb") as f:
        f.write(to_bson(doc))
    r = compare("--rules", RULES, "--route", ROUTE, fx("order_legacy.json"),
                bson_path)
    assert r.returncode == 1
    assert json.loads(r.stdout) == {"path": "$.lines[sku=SKU00007].qty",
                                    "kind": "value", "a": 1, "b": 5}
    with open(bson_path, "wb") as f:
        f.write(to_bson(doc)[:-7])                 # cut short
    r = compare(fx("order_legacy.json"), bson_path)
    assert r.returncode == 2 and "on the B side" in r.stderr


def test_compare_deep_and_huge_bodies(tmpdir_w):
    deep = os.path.join(tmpdir_w, "deep.json")
    with open(deep, "w") as f:
        f.write("[" * 100000 + "]" * 100000)
    huge = os.path.join(tmpdir_w, "huge.json")
    with open(huge, "w") as f:
        f.write('{"pad": "' + "x" * (50 * 1024 * 1024) + '"}')
    for path in (deep, huge):
        t = time.monotonic()
        r = compare(fx("order_legacy.json"), path)
        assert r.returncode == 2, r.stderr
        assert "unparseable/too large" in r.stderr
        assert "on the B side" in r.stderr
        assert time.monotonic() - t < 10


def test_compare_corpus_never_crashes():
    """Every JSONTestSuite file as B: y_ parse, n_ unparseable, no crash."""
    for name, path in harness.json_cases():
        r = compare(path, path)
        assert r.returncode in (0, 1, 2), name
        if name.startswith("y_"):
            assert r.returncode == 0, (name, r.stdout, r.stderr)
        elif name.startswith("n_"):
            assert r.returncode == 2 and "unparseable" in r.stderr, name


def test_learn_noise_then_ignore(tmpdir_w):
    answers = []
    for i in range(4):
        body = {"member_id": "M000123", "points": 120, "tier": "gold",
                "served_by": "node-%d" % i,
                "history": [{"at": "2026-11-21T10:00:0%dZ" % i, "n": 1}]}
        p = os.path.join(tmpdir_w, "a%d.json" % i)
        with open(p, "w") as f:
            json.dump(body, f)
        answers.append(p)
    rules = os.path.join(tmpdir_w, "learned.json")
    r = compare("learn", "--route", "GET /api/v1/members/{id}",
                "--write-rules", rules, *answers)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["pairs"] == 3
    noisy = {n["path"]: n["count"] for n in out["noisy"]}
    assert noisy == {"$.served_by": 3, "$.history[*].at": 3}
    with open(rules) as f:
        assert json.load(f) == out["rules"]
    # before: the two answers differ; with the learned rules: equal
    assert compare("--route", "GET /api/v1/members/M000123", answers[0],
                   answers[3]).returncode == 1
    r = compare("--rules", rules, "--route", "GET /api/v1/members/M000123",
                answers[0], answers[3])
    assert r.returncode == 0, r.stdout + r.stderr
