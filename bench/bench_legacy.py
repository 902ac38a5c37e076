"""Benchmark of the legacy adapter: what the anti-corruption layer adds.
The same business call is made straight to legacy-store-sim in its own
dialect (BSON, the baseline) and through cutover-legacy-adapter (canonical
JSON, mapped to BSON and back), with wrk at 8 connections, median of
rounds, and at 1 connection for the adapter's own cost; the issue's budget
is at most 1 ms added to p99.  Orders are measured saturated (capacity)
and paced at the same offered rate on both paths (the added latency).

For order writes at saturation it also prints the added p99 round by
round (adapter p99 minus direct p99 of the same round), their median and
spread beside the 1 ms budget, and the same with both paths loaded at
once (4 connections each, "paired"), so that whatever else runs on the
machine weighs on both alike within a round.  LEGACY_BENCH_BEFORE=DIR (the
build/bin of
an earlier build) runs that build's sim and adapter too, on a database of
their own, in the same rounds, and prints its added p99 as "before"."""

import concurrent.futures
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import harness  # noqa: E402
import wrk  # noqa: E402

SECONDS = int(os.environ.get("LEGACY_BENCH_SECONDS", "5"))
BEFORE = os.environ.get("LEGACY_BENCH_BEFORE")
ROUNDS = int(os.environ.get("LEGACY_BENCH_ROUNDS", "3"))
CONNS = 8
PACE_MS = 6


def lua_bytes(data):
    return '"' + "".join("\\%d" % b for b in data) + '"'


def bson_member(hyh):
    key = b"hyh\0"
    s = hyh.encode() + b"\0"
    body = b"\x02" + key + len(s).to_bytes(4, "little") + s
    return (len(body) + 5).to_bytes(4, "little") + body + b"\0"


def script(dirname, name, text):
    path = os.path.join(dirname, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def measure_rounds(paths, conns=CONNS):
    """Per (direct, adapter) pair of (url, lua), the rounds [(d, a), ...],
    paths alternating within each round so that a drift of the database
    over the run (its tables grow with every order) weighs on all alike."""
    rounds = [[] for _ in paths]
    for _ in range(ROUNDS):
        for i, (direct, adapter) in enumerate(paths):
            d = wrk.run(direct[0], SECONDS, conns, 1, direct[1])
            a = wrk.run(adapter[0], SECONDS, conns, 1, adapter[1])
            rounds[i].append((d, a))
    return rounds


def measure_paired(paths, conns=CONNS // 2):
    """As measure_rounds, but direct and adapter load run at the same time
    (conns each)."""
    rounds = [[] for _ in paths]
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        for _ in range(ROUNDS):
            for i, (direct, adapter) in enumerate(paths):
                d = ex.submit(wrk.run, direct[0], SECONDS, conns, 1,
                              direct[1])
                a = ex.submit(wrk.run, adapter[0], SECONDS, conns, 1,
                              adapter[1])
                rounds[i].append((d.result(), a.result()))
    return rounds


def measure(direct, adapter, conns=CONNS):
    """Medians for (url, lua) direct and through the adapter."""
    rounds = measure_rounds([(direct, adapter)], conns)[0]
    return (wrk.median_of([d for d, _ in rounds]),
            wrk.median_of([a for _, a in rounds]))


def added_line(name, rounds, budget=1.0):
    """The added p99 of each round, their median and spread, the budget."""
    added = [a["p99"] - d["p99"] for d, a in rounds]
    med = statistics.median(added)
    print("%-44s %10.3f ms     (budget: %.3f ms, %s; rounds: %s;"
          " spread %.3f ms)" % (name, med, budget,
                                "within" if med <= budget else "OVER",
                                ", ".join("%.3f" % x for x in added),
                                max(added) - min(added)), flush=True)


def start_pair(pg, tmp, bindir, tag):
    """A seeded sim and an adapter in front of it: (sim URL, adapter URL,
    processes)."""
    db = pg.createdb("legacy_bench" + tag)
    sim = os.path.join(bindir, "legacy-store-sim")
    subprocess.run([sim, "--db", db, "--init-schema", "--seed"],
                   check=True, capture_output=True)
    sp, ap = harness.free_port(), harness.free_port()
    procs = [harness.Proc([sim, "--db", db, "--listen", "127.0.0.1:%d" % sp,
                           "--threads", "8"],
                          os.path.join(tmp, "sim%s.log" % tag), port=sp)]
    procs.append(harness.Proc(
        [os.path.join(bindir, "cutover-legacy-adapter"), "--listen",
         "127.0.0.1:%d" % ap, "--legacy", "http://127.0.0.1:%d" % sp],
        os.path.join(tmp, "adapter%s.log" % tag), port=ap, cwd=harness.ROOT))
    return ("http://127.0.0.1:%d" % sp, "http://127.0.0.1:%d" % ap, procs)


def main():
    pg = harness.Pg("bench-legacy").start()
    tmp = tempfile.mkdtemp(prefix="bench-legacy-")
    procs = []
    try:
        base, front, started = start_pair(pg, tmp, harness.BIN, "")
        procs += started
        if BEFORE:
            old_base, old_front, started = start_pair(pg, tmp, BEFORE,
                                                      "_before")
            procs += started

        direct_member = script(tmp, "member.lua", """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/bson"
wrk.body = %s
""" % lua_bytes(bson_member("M000042")))
        order_json = ('{"store_id":"S001","channel":"pos","lines":'
                      '[{"sku":"SKU00001","qty":1}],'
                      '"payment":{"method":"cash"}}')
        adapter_order = script(tmp, "order.lua", """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '%s'
""" % order_json)
        # the same order in the dialect (JSON here: wrk's body is text)
        direct_order = script(tmp, "order_direct.lua", """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"mdbh":"S001","qd":1,"mx":[{"spbm":"SKU00001","sl":1}],' ..
           '"zf":{"zffs":1}}'
""")

        d, a = measure((base + "/lsapi/hy/query", direct_member),
                       (front + "/api/v1/members/M000042", None))
        wrk.line("legacy member read req/s", a["rps"], "req/s", d["rps"])
        wrk.line("legacy member read p99", a["p99"], "ms", d["p99"],
                 better="lower")
        wrk.line("legacy member read p99 added", a["p99"] - d["p99"], "ms",
                 1.0, better="lower")
        # one connection: the adapter's own cost, least blurred by the
        # contention of wrk, sim, adapter and PostgreSQL on two cores
        d, a = measure((base + "/lsapi/hy/query", direct_member),
                       (front + "/api/v1/members/M000042", None), 1)
        wrk.line("legacy member read p50 added, 1 conn", a["p50"] - d["p50"],
                 "ms", 1.0, better="lower")
        wrk.line("legacy member read p99 added, 1 conn", a["p99"] - d["p99"],
                 "ms", 1.0, better="lower")
        # saturated: the closed loop's latency is its queue (8 / rate),
        # so this pair measures capacity; the adapter's CPU competes with
        # the sim and PostgreSQL for the same two cores
        paths = [((base + "/lsapi/xsd/create", direct_order),
                  (front + "/api/v1/orders", adapter_order))]
        if BEFORE:
            paths.append(((old_base + "/lsapi/xsd/create", direct_order),
                          (old_front + "/api/v1/orders", adapter_order)))
        rounds = measure_rounds(paths)
        d = wrk.median_of([r[0] for r in rounds[0]])
        a = wrk.median_of([r[1] for r in rounds[0]])
        wrk.line("legacy order create req/s, saturated", a["rps"], "req/s",
                 d["rps"], figure_name="legacy_order_saturated_rps")
        wrk.line("legacy order create p99, saturated", a["p99"], "ms",
                 d["p99"], better="lower")
        wrk.line("legacy order create p99 added, saturated",
                 a["p99"] - d["p99"], "ms", 1.0, better="lower")
        added_line("legacy order p99 added, saturated, by round",
                   rounds[0])
        if BEFORE:
            added_line("  the same, before", rounds[1])
        rounds = measure_paired(paths)
        added_line("legacy order p99 added, saturated, paired",
                   rounds[0])
        if BEFORE:
            added_line("  the same, before", rounds[1])
        bad = a["non2xx"] + sum(r[1]["non2xx"] for r in rounds[0])
        # paced: each connection pauses PACE_MS between orders, about
        # half the direct capacity offered to both paths, so p99 is the
        # latency the adapter adds rather than a longer queue
        for lua in (direct_order, adapter_order):
            with open(lua, "a") as f:
                f.write("delay = function() return %d end\n" % PACE_MS)
        d, a = measure((base + "/lsapi/xsd/create", direct_order),
                       (front + "/api/v1/orders", adapter_order))
        wrk.line("legacy order create req/s, paced", a["rps"], "req/s",
                 d["rps"], figure_name="legacy_order_paced_rps")
        wrk.line("legacy order create p99, paced", a["p99"], "ms", d["p99"],
                 better="lower", figure_name="legacy_order_paced_p99")
        wrk.line("legacy order create p99 added, paced", a["p99"] - d["p99"],
                 "ms", 1.0, better="lower")
        bad += a["non2xx"]
        if bad:
            print("legacy order create: %d non-2xx answers" % bad)
    finally:
        for p in procs:
            p.stop()
        pg.destroy()
        harness.remove_tempdir(tmp)


if __name__ == "__main__":
    main()
