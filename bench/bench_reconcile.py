"""Benchmark of cutover-reconcile: the ledger states of the new core and the
legacy stand-in, seeded alike (--seed-stores/--seed-skus), with differences
made on the legacy side.  The keyed hash bisection is set beside the naive
way (both ledgers fetched whole and merged: the same program with a fetch
threshold above the ledger's size), and the cost curve is given at 10 k,
100 k and 1 M stock rows a side (100 differences) and at 10, 1 000 and
100 000 differences (1 M rows).  The goal at 1 M rows with 100 differences:
all found, none false, within 10 s, at most 1 % of the rows fetched."""

import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import harness  # noqa: E402
import wrk  # noqa: E402

RECONCILE = harness.bin_path("cutover-reconcile")
CORE = harness.bin_path("cutover-newcore")
SIM = harness.bin_path("legacy-store-sim")
SKUS = 2000
SIZES = [int(x) for x in os.environ.get(
    "RECONCILE_BENCH_STORES", "5,50,500").split(",")]


def seed(pg, stores):
    new = pg.createdb("bn%d" % stores)
    legacy = pg.createdb("bl%d" % stores)
    t = time.time()
    for argv in ([CORE, "--db", new, "--init-schema"],
                 [SIM, "--db", legacy, "--init-schema"]):
        subprocess.run(argv + ["--seed", "--seed-stores", str(stores),
                               "--seed-skus", str(SKUS)],
                       check=True, capture_output=True, timeout=600)
    return new, legacy, time.time() - t


def differ(pg, stores, n, delta):
    """Changes on_hand of n stock rows spread over the legacy ledger (every
    k-th row in key order); returns their keys."""
    rows = stores * SKUS
    step = max(rows // n, 1)
    pg.psql("bl%d" % stores,
            "UPDATE legacy.kc k SET kcsl = kcsl + (%d) FROM"
            " (SELECT mdbh, spbm FROM (SELECT mdbh, spbm, row_number() OVER"
            " (ORDER BY mdbh COLLATE \"C\", spbm COLLATE \"C\") AS rn"
            " FROM legacy.kc) x WHERE rn %% %d = 1 LIMIT %d) d"
            " WHERE k.mdbh = d.mdbh AND k.spbm = d.spbm"
            % (delta, step, n))
    out = pg.psql("bl%d" % stores,
                  "SELECT mdbh || '/' || spbm FROM (SELECT mdbh, spbm,"
                  " row_number() OVER (ORDER BY mdbh COLLATE \"C\", spbm"
                  " COLLATE \"C\") AS rn FROM legacy.kc) x WHERE rn %% %d = 1"
                  " LIMIT %d" % (step, n))
    return set(out.split("\n")) if out else set()


def run(new, legacy, *extra):
    t = time.time()
    r = subprocess.run([RECONCILE, "--new", new, "--legacy", legacy,
                        "--ledger", "stock", "-o", "json", "--stats",
                        "--list", "200000"] + list(extra),
                       capture_output=True, timeout=1200)
    wall = time.time() - t
    if r.returncode not in (0, 1):
        raise RuntimeError(r.stderr.decode())
    doc = json.loads(r.stdout)
    found = {"%s/%s" % (d["key"]["store_id"], d["key"]["sku"])
             for d in doc["differences"]}
    return doc["ledgers"][0], found, wall


def case(pg, new, legacy, stores, n, baseline=False):
    want = differ(pg, stores, n, 1)
    try:
        led, found, wall = run(new, legacy)
        line = ("%9d rows  %6d diffs: %6.2f s, found %d (missing %d, false"
                " %d), fetched %d rows (%.2f %%), %.1f MB moved, %d queries,"
                " %d levels"
                % (stores * SKUS, n, wall, len(found), len(want - found),
                   len(found - want), led["rows_fetched"],
                   100.0 * led["rows_fetched"] / (2 * stores * SKUS),
                   led["stats"]["bytes"] / 1e6,
                   led["stats"]["queries"], led["stats"]["levels"]))
        if baseline:
            bled, bfound, bwall = run(new, legacy, "--fetch-rows",
                                      str(10 * stores * SKUS))
            assert bfound == found
            line += ("\n%31s baseline, both ledgers fetched whole and"
                     " merged: %6.2f s, %.1f MB moved; bisection/baseline:"
                     " time %.2f, bytes %.3f"
                     % ("", bwall, bled["stats"]["bytes"] / 1e6,
                        wall / bwall,
                        led["stats"]["bytes"] / bled["stats"]["bytes"]))
        print(line, flush=True)
        if baseline and stores * SKUS == 1000000:
            wrk.figure("reconcile_1m_time_vs_fetch_all", wall, bwall,
                       "lower")
            wrk.figure("reconcile_1m_bytes_vs_fetch_all",
                       led["stats"]["bytes"], bled["stats"]["bytes"],
                       "lower")
        return wall, found == want, led
    finally:
        differ(pg, stores, n, -1)


def main():
    pg = harness.Pg("bench-reconcile").start()
    try:
        for stores in SIZES:
            new, legacy, secs = seed(pg, stores)
            print("seeded %d stock rows a side (both programs) in %.1f s"
                  % (stores * SKUS, secs), flush=True)
            led, found, wall = run(new, legacy)
            print("%9d rows       agree: %6.2f s, fetched %d rows"
                  % (stores * SKUS, wall, led["rows_fetched"]), flush=True)
            case(pg, new, legacy, stores, 100, baseline=True)
            if stores == SIZES[-1]:
                wall, ok, led = case(pg, new, legacy, stores, 100)
                goal = (ok and wall <= 10.0
                        and led["rows_fetched"] <= 0.01 * 2 * stores * SKUS)
                print("goal (1 M rows, 100 differences: all found, none"
                      " false, <= 10 s, <= 1 %% fetched): %s"
                      % ("met" if goal else "NOT met"), flush=True)
                for n in (10, 1000, 100000):
                    case(pg, new, legacy, stores, n)
    finally:
        pg.destroy()


if __name__ == "__main__":
    main()
