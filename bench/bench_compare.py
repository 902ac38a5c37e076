"""compare/: pairs compared per second per core (1 KB and 16 KB JSON order
pairs under the orders rules: sets, tolerances, ignore, mask) beside
libbson's own JSON reader + bson_equal on the same pair, and results stored
per second into PostgreSQL in batches of 500 beside one transaction per
result."""

import os
import subprocess

import harness
import wrk

BENCH = os.path.join(harness.BUILD, "tests", "bench_compare")
PAIRS_GOAL = 50000.0        # 1 KB pairs compared per second per core
STORE_GOAL = 20000.0        # results stored per second


def run(*args):
    r = subprocess.run([BENCH] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError("bench_compare %s: %s" % (args, r.stderr))
    return dict((line.split()[0], (int(line.split()[1]),
                                   float(line.split()[2])))
                for line in r.stdout.splitlines())


def line(name, value, unit, base):
    print("%s: %.0f %s  (baseline: %.0f, ratio: %.2f)"
          % (name, value, unit, base, value / base if base else 0.0),
          flush=True)


def main():
    subprocess.run(["make", "-s", "-C", harness.ROOT,
                    "build/tests/bench_compare"], check=True)
    for name, size in (("compare_pairs_1k", 1100),
                       ("compare_pairs_16k", 19500)):
        out = run("pairs", size, 3)
        line("%s (%d B)" % (name, out["pairs"][0]), out["pairs"][1],
             "pairs/s/core", out["baseline"][1])
        if name == "compare_pairs_1k":
            wrk.figure("compare_pairs_1k_vs_goal", out["pairs"][1],
                       PAIRS_GOAL)
    pg = harness.Pg("bench-compare").start()
    try:
        db = pg.createdb("bench_compare")
        run("store", db, 10, 10)                 # schema, warm-up
        batched = run("store", db, 40000, 500)["store"][1]
        single = run("store", db, 2000, 1)["store"][1]
        line("compare_store", batched, "results/s", single)
        wrk.figure("compare_store_vs_goal", batched, STORE_GOAL)
        rows = pg.psql("bench_compare", "SELECT count(*) FROM compare_pairs")
        print("compare_store_rows: %s rows  (baseline: 42010, ratio: %.2f)"
              % (rows, int(rows) / 42010.0))
    finally:
        pg.destroy()


if __name__ == "__main__":
    main()
