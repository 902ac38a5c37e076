"""cutover-reconcile against both real databases: the new core and the
legacy stand-in (behind its adapter) seeded alike by their own programs,
differences made through each system's own API, and the bad inputs."""

import json
import os
import subprocess
import threading
import time

import pytest

import harness

RECONCILE = harness.bin_path("cutover-reconcile")
REPORT = harness.bin_path("cutover-report")
CORE = harness.bin_path("cutover-newcore")
SIM = harness.bin_path("legacy-store-sim")
ADAPTER = harness.bin_path("cutover-legacy-adapter")

STORES, SKUS = 20, 500          # 10 000 stock rows a side


def on_hand(s, n):
    return 20 + (s * 31 + n * 17) % 181


def points(m):
    return (m * 97) % 5000


class Env:
    pass


@pytest.fixture(scope="module")
def env(pg):
    e = Env()
    e.pg = pg
    e.dir = harness.make_tempdir("reconcile")
    e.procs = []
    e.new = pg.createdb("rec_new")
    e.legacy = pg.createdb("rec_legacy")
    e.results = pg.createdb("rec_results")
    seed = ["--seed", "--seed-stores", str(STORES), "--seed-skus", str(SKUS)]
    for argv in ([CORE, "--db", e.new, "--init-schema"] + seed,
                 [SIM, "--db", e.legacy, "--init-schema"] + seed):
        r = subprocess.run(argv, capture_output=True, timeout=120)
        assert r.returncode == 0, r.stderr.decode()
    try:
        port = harness.free_port()
        e.procs.append(harness.Proc(
            [CORE, "--listen", "127.0.0.1:%d" % port, "--db", e.new,
             "--threads", "2"], os.path.join(e.dir, "newcore.log"),
            port=port))
        e.core = "http://127.0.0.1:%d" % port
        port = harness.free_port()
        e.procs.append(harness.Proc(
            [SIM, "--listen", "127.0.0.1:%d" % port, "--db", e.legacy,
             "--threads", "2", "--no-quirks"],
            os.path.join(e.dir, "sim.log"), port=port))
        sim = "http://127.0.0.1:%d" % port
        port = harness.free_port()
        e.procs.append(harness.Proc(
            [ADAPTER, "--listen", "127.0.0.1:%d" % port, "--legacy", sim,
             "--threads", "2"], os.path.join(e.dir, "adapter.log"),
            port=port, cwd=harness.ROOT))
        e.adapter = "http://127.0.0.1:%d" % port
    except Exception:
        for p in e.procs:
            p.stop()
        harness.remove_tempdir(e.dir)
        raise
    yield e
    for p in reversed(e.procs):
        assert p.stop() == 0, "%s exit code" % p.argv[0]
    harness.remove_tempdir(e.dir)


def api(base, method, path, body=None):
    status, _, data = harness.http(method, base + path,
                                   json.dumps(body) if body else None,
                                   {"Content-Type": "application/json"})
    return status, (json.loads(data) if data else None)


def adjust(base, store, sku, delta):
    st, r = api(base, "POST", "/api/v1/inventory/adjust",
                {"store_id": store, "sku": sku, "delta": delta,
                 "reason": "stocktake"})
    assert st == 200, r
    return r


def place(base, order_id, store, sku, qty, member):
    st, r = api(base, "POST", "/api/v1/orders",
                {"order_id": order_id, "store_id": store, "channel": "pos",
                 "member_id": member, "lines": [{"sku": sku, "qty": qty}],
                 "payment": {"method": "card"}})
    assert st == 201, r
    return r


def cancel(base, order_id):
    st, r = api(base, "POST", "/api/v1/orders/%s/cancel" % order_id)
    assert st == 200 and r["status"] == "cancelled", r
    return r


def reconcile(env, *args, new=None, legacy=None):
    """(exit code, parsed -o json or None, stderr)."""
    argv = [RECONCILE, "--new", new or env.new,
            "--legacy", legacy or env.legacy, "-o", "json"] + list(args)
    r = subprocess.run(argv, capture_output=True, timeout=120,
                       cwd=harness.ROOT)
    out = r.stdout.decode()
    return r.returncode, (json.loads(out) if out.strip() else None), \
        r.stderr.decode()


def diffs(doc):
    return sorted((d["ledger"], json.dumps(d["key"], sort_keys=True),
                   d["kind"], json.dumps(d["new"], sort_keys=True),
                   json.dumps(d["legacy"], sort_keys=True))
                  for d in doc["differences"])


def expect(ledger, key, kind, new, legacy):
    return (ledger, json.dumps(key, sort_keys=True), kind,
            json.dumps(new, sort_keys=True), json.dumps(legacy, sort_keys=True))


def write_map(env, name, text):
    path = os.path.join(env.dir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


STOCK_MAP = """{
  "stock": {
    "key": ["store_id", "sku"],
    "values": {"on_hand": "integer"},
    "new": "SELECT store_id, sku, on_hand FROM newcore.stock",
    "legacy": %s
  }
}
"""


# --- agreement ---------------------------------------------------------------

def test_identical_seeds_agree(env):
    rc, doc, err = reconcile(env)
    assert rc == 0, err
    by = {l["ledger"]: l for l in doc["ledgers"]}
    assert set(by) == {"stock", "points", "orders"}
    assert by["stock"]["rows_new"] == by["stock"]["rows_legacy"] == \
        STORES * SKUS
    assert by["points"]["rows_new"] == by["points"]["rows_legacy"] == 10000
    assert all(l["differences"] == 0 and l["rows_fetched"] == 0
               for l in doc["ledgers"])
    assert doc["differences"] == []
    # the text form says so too
    r = subprocess.run([RECONCILE, "--new", env.new, "--legacy", env.legacy],
                       capture_output=True, timeout=60)
    assert r.returncode == 0 and b"the ledgers agree" in r.stdout


def test_the_same_traffic_on_both_sides_agrees(env):
    for base in (env.core, env.adapter):
        place(base, "REC-BOTH-1", "S002", "SKU00003", 2, "M000021")
        place(base, "REC-BOTH-2", "S002", "SKU00004", 1, None)
        cancel(base, "REC-BOTH-2")
        adjust(base, "S002", "SKU00005", 7)
    rc, doc, err = reconcile(env)
    assert rc == 0, (err, doc)
    orders = [l for l in doc["ledgers"] if l["ledger"] == "orders"][0]
    assert orders["rows_new"] == orders["rows_legacy"] == 2


# --- differences made through each system's API ------------------------------

def test_differences_found_with_kind_and_values(env):
    # a stock adjustment on the new core only
    adjust(env.core, "S003", "SKU00007", 5)
    # an order on the legacy system only
    lo = place(env.adapter, "REC-LEGACY-ONLY", "S004", "SKU00010", 2,
               "M000050")
    # an order on both, cancelled on the new core only
    place(env.core, "REC-CANCEL-1", "S005", "SKU00020", 1, "M000060")
    co = place(env.adapter, "REC-CANCEL-1", "S005", "SKU00020", 1, "M000060")
    cancel(env.core, "REC-CANCEL-1")
    assert lo["points_earned"] > 0 and co["points_earned"] > 0

    rc, doc, err = reconcile(env, "--stats")
    assert rc == 1, err
    lines20 = "SKU00020:1"
    assert diffs(doc) == sorted([
        expect("stock", {"store_id": "S003", "sku": "SKU00007"}, "value",
               {"on_hand": on_hand(3, 7) + 5}, {"on_hand": on_hand(3, 7)}),
        expect("stock", {"store_id": "S004", "sku": "SKU00010"}, "value",
               {"on_hand": on_hand(4, 10)}, {"on_hand": on_hand(4, 10) - 2}),
        expect("stock", {"store_id": "S005", "sku": "SKU00020"}, "value",
               {"on_hand": on_hand(5, 20)},
               {"on_hand": on_hand(5, 20) - 1}),
        expect("points", {"member_id": "M000050"}, "value",
               {"points": points(50)},
               {"points": points(50) + lo["points_earned"]}),
        expect("points", {"member_id": "M000060"}, "value",
               {"points": points(60)},
               {"points": points(60) + co["points_earned"]}),
        expect("orders", {"order_id": "REC-LEGACY-ONLY"}, "missing_new",
               None, {"store_id": "S004", "channel": "pos", "status": "paid",
                      "total": float(lo["total"]),
                      "points_earned": lo["points_earned"],
                      "lines": "SKU00010:2"}),
        expect("orders", {"order_id": "REC-CANCEL-1"}, "value",
               {"store_id": "S005", "channel": "pos", "status": "cancelled",
                "total": float(co["total"]),
                "points_earned": co["points_earned"], "lines": lines20},
               {"store_id": "S005", "channel": "pos", "status": "paid",
                "total": float(co["total"]),
                "points_earned": co["points_earned"], "lines": lines20}),
    ])
    by = {l["ledger"]: l for l in doc["ledgers"]}
    assert by["stock"]["differences"] == 3
    assert by["stock"]["rows_fetched"] <= 2 * 3 * 64
    assert by["stock"]["stats"]["queries"] >= 3
    # the total keeps its two places in the JSON text
    raw = subprocess.run([RECONCILE, "--new", env.new, "--legacy", env.legacy,
                          "-o", "json", "--ledger", "orders"],
                         capture_output=True, timeout=60).stdout.decode()
    assert '"total": %s' % co["total"] in raw

    # the same operations on the other side heal every difference
    adjust(env.adapter, "S003", "SKU00007", 5)
    place(env.core, "REC-LEGACY-ONLY", "S004", "SKU00010", 2, "M000050")
    cancel(env.adapter, "REC-CANCEL-1")
    rc, doc, err = reconcile(env)
    assert rc == 0, (err, doc)


def test_store_limits_the_comparison(env):
    adjust(env.core, "S007", "SKU00001", 3)
    try:
        rc, doc, err = reconcile(env, "--ledger", "stock", "--store",
                                 "S001,S002")
        assert rc == 0, err
        assert doc["ledgers"][0]["rows_new"] == 2 * SKUS
        rc, doc, err = reconcile(env, "--ledger", "stock", "--store", "S007")
        assert rc == 1
        assert doc["ledgers"][0]["rows_legacy"] == SKUS
        assert diffs(doc) == [expect(
            "stock", {"store_id": "S007", "sku": "SKU00001"}, "value",
            {"on_hand": on_hand(7, 1) + 3}, {"on_hand": on_hand(7, 1)})]
    finally:
        adjust(env.adapter, "S007", "SKU00001", 3)


def test_settle_drops_a_difference_that_heals(env):
    adjust(env.core, "S008", "SKU00002", 4)      # heals during the wait
    adjust(env.core, "S009", "SKU00003", 6)      # does not
    argv = [RECONCILE, "--new", env.new, "--legacy", env.legacy, "-o",
            "json", "--settle", "4s", "--ledger", "stock"]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = p.stderr.readline().decode()
        assert "2 differences, checking again in 4000 ms" in line, line
        adjust(env.adapter, "S008", "SKU00002", 4)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 1, err
    doc = json.loads(out)
    assert diffs(doc) == [expect(
        "stock", {"store_id": "S009", "sku": "SKU00003"}, "value",
        {"on_hand": on_hand(9, 3) + 6}, {"on_hand": on_hand(9, 3)})]
    assert doc["ledgers"][0]["differences"] == 1
    adjust(env.adapter, "S009", "SKU00003", 6)
    rc, doc, err = reconcile(env, "--ledger", "stock", "--settle", "100ms")
    assert rc == 0, err


# --- the result store and the report -----------------------------------------

def test_results_and_the_ledgers_report(env):
    adjust(env.core, "S010", "SKU00010", 2)
    try:
        rc, doc, err = reconcile(env, "--results", env.results)
        assert rc == 1, err
        r = subprocess.run([REPORT, "--db", env.results, "--format", "json",
                            "ledgers"], capture_output=True, timeout=60)
        assert r.returncode == 1, r.stderr.decode()
        rows = json.loads(r.stdout)
        stock = [x for x in rows if x["ledger"] == "stock"]
        assert len(stock) == 1
        assert stock[0]["kind"] == "value" and stock[0]["differences"] == 1
        assert stock[0]["key"] == {"store_id": "S010", "sku": "SKU00010"}
        assert stock[0]["new"] == {"on_hand": on_hand(10, 10) + 2}
        assert {x["ledger"] for x in rows} == {"stock", "points", "orders"}
        assert all(x["status"] == "agree" for x in rows
                   if x["ledger"] != "stock")
        for fmt, want in (("csv", b"S010"), ("text", b"SKU00010")):
            r = subprocess.run([REPORT, "--db", env.results, "--format", fmt,
                                "ledgers"], capture_output=True, timeout=60)
            assert r.returncode == 1 and want in r.stdout
    finally:
        adjust(env.adapter, "S010", "SKU00010", 2)

    # a failed run is stored as failed, with why, and nothing else
    bad = "host=127.0.0.1 port=%d user=postgres dbname=x connect_timeout=3" \
        % harness.free_port()
    rc, doc, err = reconcile(env, "--results", env.results, legacy=bad)
    assert rc == 2 and doc is None
    last = env.pg.psql("rec_results", "SELECT status, error LIKE '%legacy%',"
                       " (SELECT count(*) FROM reconcile_ledgers l WHERE"
                       " l.run_id = r.run_id) FROM reconcile_runs r"
                       " ORDER BY run_id DESC LIMIT 1")
    assert last == "failed|t|0"
    rc, doc, err = reconcile(env, "--results", env.results)
    assert rc == 0, err
    r = subprocess.run([REPORT, "--db", env.results, "--format", "json",
                        "ledgers"], capture_output=True, timeout=60)
    assert r.returncode == 0
    assert all(x["differences"] == 0 for x in json.loads(r.stdout))


# --- bad input and faults ----------------------------------------------------

def test_unreachable_database_is_named(env):
    dead = "host=127.0.0.1 port=%d user=postgres connect_timeout=3" \
        % harness.free_port()
    for side in ("new", "legacy"):
        rc, doc, err = reconcile(env, **{side: dead})
        assert rc == 2 and doc is None
        assert "cannot connect to the %s database" % side in err, err


def test_bad_map_file_names_file_and_line(env):
    path = write_map(env, "broken.json",
                     '{\n  "stock": {\n    "key": ["store_id" "sku"]\n')
    rc, doc, err = reconcile(env, "--map", path)
    assert rc == 2 and "broken.json:3:" in err, err
    path = write_map(env, "nokey.json", '{"stock": {\n"values": {}}}\n')
    rc, doc, err = reconcile(env, "--map", path)
    assert rc == 2 and "nokey.json:1:" in err and '"key"' in err, err
    rc, doc, err = reconcile(env, "--map", os.path.join(env.dir, "none.json"))
    assert rc == 2 and "none.json" in err
    rc, doc, err = reconcile(env, "--ledger", "stock,refunds")
    assert rc == 2 and 'no ledger "refunds"' in err


def test_sql_error_shows_the_query(env):
    path = write_map(env, "badsql.json", STOCK_MAP % json.dumps(
        "SELECT mdbh AS store_id, spbm AS sku, kcsl AS on_hand"
        " FROM legacy.nosuch"))
    rc, doc, err = reconcile(env, "--map", path)
    assert rc == 2, err
    assert "legacy database, ledger stock" in err
    assert 'relation "legacy.nosuch" does not exist' in err
    assert "badsql.json line 6" in err and "FROM legacy.nosuch" in err


def test_ledger_missing_on_one_side(env):
    # the new core's database holds no legacy tables
    rc, doc, err = reconcile(env, "--ledger", "points", legacy=env.new)
    assert rc == 2
    assert "legacy database, ledger points" in err
    assert 'relation "legacy.hy" does not exist' in err


def test_null_values_and_non_ascii_keys(env):
    path = write_map(env, "null.json", STOCK_MAP % json.dumps(
        "SELECT mdbh AS store_id, spbm AS sku, NULLIF(kcsl, %d) AS on_hand"
        " FROM legacy.kc" % on_hand(1, 1)))
    rc, doc, err = reconcile(env, "--map", path)
    assert rc == 2 and "NULL" in err and "legacy database" in err, err
    path = write_map(env, "utf8.json", STOCK_MAP % json.dumps(
        "SELECT mdbh || '\u95e8\u5e97' AS store_id, spbm AS sku,"
        " kcsl AS on_hand FROM legacy.kc"))
    rc, doc, err = reconcile(env, "--map", path)
    assert rc == 2 and "not printable ASCII" in err, err


def test_empty_side(env):
    path = write_map(env, "empty.json", STOCK_MAP % json.dumps(
        "SELECT mdbh AS store_id, spbm AS sku, kcsl AS on_hand"
        " FROM legacy.kc WHERE false"))
    rc, doc, err = reconcile(env, "--map", path)
    assert rc == 2 and "the legacy side is empty" in err, err


def test_nearly_everything_differs_is_said_early_and_capped(env):
    path = write_map(env, "offbyone.json", STOCK_MAP % json.dumps(
        "SELECT mdbh AS store_id, spbm AS sku, kcsl + 1 AS on_hand"
        " FROM legacy.kc"))
    rc, doc, err = reconcile(env, "--map", path, "--list", "50")
    assert rc == 1
    assert "nearly everything differs" in err
    assert doc["ledgers"][0]["differences"] == STORES * SKUS
    assert len(doc["differences"]) == 50 and doc["truncated"] is True


def test_connection_lost_mid_run(env):
    adjust(env.core, "S011", "SKU00011", 1)
    try:
        argv = [RECONCILE, "--new", env.new, "--legacy", env.legacy,
                "--settle", "3s", "--ledger", "stock", "--results",
                env.results]
        p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        line = p.stderr.readline().decode()
        assert "checking again" in line, line
        env.pg.psql("postgres", "SELECT pg_terminate_backend(pid) FROM"
                    " pg_stat_activity WHERE application_name ="
                    " 'cutover-reconcile' AND datname = 'rec_legacy'")
        out, err = p.communicate(timeout=60)
        assert p.returncode == 2, err
        assert b"connection to the legacy database lost" in err, err
        assert env.pg.psql("rec_results", "SELECT status FROM reconcile_runs"
                           " ORDER BY run_id DESC LIMIT 1") == "failed"
    finally:
        adjust(env.adapter, "S011", "SKU00011", 1)


def test_usage(env):
    for argv in ([RECONCILE], [RECONCILE, "--new", "x"],
                 [RECONCILE, "--new", "x", "--legacy", "y", "--settle", "1y"],
                 [RECONCILE, "--new", "x", "--legacy", "y", "-o", "xml"]):
        r = subprocess.run(argv, capture_output=True, timeout=10)
        assert r.returncode == 2
    r = subprocess.run([RECONCILE, "--help"], capture_output=True, timeout=10)
    assert r.returncode == 0 and b"--settle" in r.stdout
    r = subprocess.run([CORE, "--db", "x", "--seed-stores", "0", "--seed"],
                       capture_output=True, timeout=10)
    assert r.returncode == 2
    r = subprocess.run([SIM, "--db", "x", "--seed-skus", "5"],
                       capture_output=True, timeout=10)
    assert r.returncode == 2
