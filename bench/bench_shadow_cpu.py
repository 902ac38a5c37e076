"""cutover-shadowd's CPU per record and drain rate.

nginx records every request (bench_record's front, wrk with random
stores) while cutover-shadowd is stopped (SIGSTOP); then it is resumed and
replays the backlog with no client load.  Measured: the drain rate
(records/s) and shadowd's CPU (utime + stime from /proc/<pid>/stat) per
100 000 records, against a fast shadow and a 200 ms one, medians of
BENCH_ROUNDS (3).  Baselines in the same run: the front nginx worker's CPU
for recording the same number of requests, and the 20 000 records/s goal;
with SHADOWD_BASELINE=<path of another cutover-shadowd> also that binary,
measured the same way (a before/after comparison); SHADOWD_NICE sets the
measured binary's "nice" (default 10: with other work on the machine it
drains slower by design, 0 compares like with like)."""

import json
import os
import re
import shutil
import signal
import statistics
import time

import harness
import wrk
from bench_gateway import BODY
from bench_record import (ECHO, UPSTREAMS, cpu_seconds, metric,
                          start_front)

GOAL = 20000.0
PER = 100000


class Shadowd:
    def __init__(self, binary, d, target, nice=None):
        self.port = harness.free_port()
        self.d = d
        cfg = {"log": os.path.join(d, "log", "erp.log"),
               "checkpoint": os.path.join(d, "erp.ckpt"),
               "new": target, "legacy": target, "concurrency": 256,
               "timeout_ms": 5000, "retries": 1,
               "outbox": os.path.join(d, "outbox"),
               "metrics_listen": "127.0.0.1:%d" % self.port}
        if nice is not None:
            cfg["nice"] = nice
        shutil.rmtree(cfg["outbox"], ignore_errors=True)
        os.makedirs(cfg["outbox"])
        path = os.path.join(d, "shadowd-cpu.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        self.proc = harness.Proc([binary, "--config", path],
                                 os.path.join(d, "shadowd.log"),
                                 port=self.port)

    def m(self, name):
        return metric(self.port, name)

    def drained(self, read):
        # the metrics are published by the replay loop: a value from before
        # the SIGSTOP is stale until records_read moves
        return (self.m("cutover_shadow_records_read_total") >= read
                and self.m("cutover_shadow_lag_bytes") == 0
                and self.m("cutover_shadow_lag_records") == 0)

    def drain(self, read=0, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.drained(read):
                return
            time.sleep(0.05)
        raise RuntimeError("shadowd did not drain its backlog")

    def done(self):
        return (self.m("cutover_shadow_replayed_total")
                + self.m("cutover_shadow_failed_total"))

    def stop(self):
        self.proc.stop()


def backlog(binary, d, target, url, seconds, conns, script, worker,
            nice=None):
    """One round: a backlog recorded with shadowd stopped, then drained.
    Returns (records, drain seconds, shadowd CPU s, front worker CPU s)."""
    sd = Shadowd(binary, d, target, nice)
    try:
        sd.drain()
        n0 = sd.done()
        r0 = sd.m("cutover_shadow_records_read_total")
        sd.proc.signal(signal.SIGSTOP)
        w0 = cpu_seconds(worker)
        wrk.run(url, seconds, conns=conns, script=script)
        front = cpu_seconds(worker) - w0
        time.sleep(0.3)             # the last records reach the log
        c0, t0 = cpu_seconds(sd.proc.pid), time.monotonic()
        sd.proc.signal(signal.SIGCONT)
        sd.drain(r0 + 1)
        t = time.monotonic() - t0
        cpu = cpu_seconds(sd.proc.pid) - c0
        return sd.done() - n0, t, cpu, front
    finally:
        sd.stop()


def summary(rows):
    med = lambda f: statistics.median(f(r) for r in rows)
    return {"rate": med(lambda r: r[0] / r[1]),
            "cpu": med(lambda r: r[2] / r[0] * PER),
            "front": med(lambda r: r[3] / r[0] * PER),
            "rounds": rows}


def report(tag, res, base):
    for name in ("fast", "slow"):
        r = res[name]
        print("%s %s: %s" % (tag, name, " ".join(
            "%d rec %.2fs cpu %.2fs" % (n, t, c)
            for n, t, c, _ in r["rounds"])))
        wrk.line("%s %s: shadowd CPU s/100k rec vs front" % (tag, name),
                 r["cpu"], "s", r["front"], better="lower")
        if base is not None:
            wrk.line("%s %s: shadowd CPU s/100k rec vs baseline"
                     % (tag, name), r["cpu"], "s", base[name]["cpu"],
                     better="lower")
    wrk.line("%s fast: drain records/s vs goal" % tag, res["fast"]["rate"],
             "rec/s", GOAL)
    wrk.line("%s slow: drain records/s vs 256/0.2s" % tag,
             res["slow"]["rate"], "rec/s", 256 / 0.2)
    if base is not None:
        wrk.line("%s fast: drain records/s vs baseline" % tag,
                 res["fast"]["rate"], "rec/s", base["fast"]["rate"])


def main(rounds=int(os.environ.get("BENCH_ROUNDS", "3")),
         fast_s=int(os.environ.get("BENCH_SECONDS", "3"))):
    binary = os.environ.get("SHADOWD_BIN",
                            harness.bin_path("cutover-shadowd"))
    baseline = os.environ.get("SHADOWD_BASELINE")
    # the niceness of the measured binary (a baseline built before the
    # "nice" setting takes none); unset: its default
    nice = os.environ.get("SHADOWD_NICE")
    nice = int(nice) if nice else None
    a, b, s, plain, mirror, rec = (harness.free_port() for _ in range(6))
    up = harness.Nginx(UPSTREAMS.format(a=a, b=b, s=s, body=BODY), workers=1,
                       name="bench-up", log_level="warn",
                       main="load_module %s;" % ECHO)
    up.start(s)
    d, front, script = start_front("bench-shadow-cpu", a, b, plain, mirror,
                                   rec)
    url = "http://127.0.0.1:%d/" % rec
    targets = {"fast": "http://127.0.0.1:%d" % b,
               "slow": "http://127.0.0.1:%d" % s}
    try:
        wrk.run(url, 1, script=script)
        worker = front.worker_pids()[0]
        print("backlog recorded by nginx with shadowd stopped, then "
              "drained; fast: wrk -c32 %d s, slow (200 ms, concurrency "
              "256): wrk -c2 1 s; medians of %d" % (fast_s, rounds))
        bins = [(t, p) for t, p in (("baseline", baseline),
                                    ("shadowd", binary)) if p is not None]
        rows = {(t, k): [] for t, _ in bins for k in targets}
        # the binaries take turns within each round: drift on this shared
        # machine falls on both alike
        for i in range(rounds):
            for tag, path in (bins if i % 2 == 0 else bins[::-1]):
                n = nice if tag == "shadowd" else None
                rows[tag, "fast"].append(backlog(
                    path, d, targets["fast"], url, fast_s, 32, script,
                    worker, n))
                rows[tag, "slow"].append(backlog(
                    path, d, targets["slow"], url, 1, 2, script, worker,
                    n))
        runs = {t: {k: summary(rows[t, k]) for k in targets}
                for t, _ in bins}
        if "baseline" in runs:
            report("baseline", runs["baseline"], None)
        report("shadowd", runs["shadowd"], runs.get("baseline"))
    finally:
        front.destroy()
        up.destroy()
        harness.remove_tempdir(d)


if __name__ == "__main__":
    main()
