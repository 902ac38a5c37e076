"""Recording cost (issue 5): plain proxy_pass (1.0), nginx's own mirror to
the shadow, cutover with every request recorded and cutover-shadowd
replaying to a fast shadow, then to a shadow answering in 200 ms.

Goals: recorded >= 0.90x plain req/s and p99 + <= 0.5 ms; slow-shadow
client figures within 5 % of the fast-shadow run; shadowd replay rate.

The primary and the shadows run in two nginx instances: the shadows stand
in for the new core on other hosts and run under SCHED_IDLE, so that what
the clients share the cores with is the gateway's own work (nginx, and
cutover-shadowd, itself under SCHED_IDLE by default), not the other
system's.  shadowd's replay rate while clients saturate the cores is
therefore what it gets from idle CPU (its lag grows, and it catches up
after); its drain rate is bench_shadow_cpu's figure."""

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

ECHO = "/usr/lib/nginx/modules/ngx_http_echo_module.so"

PRIMARY = """
    server {{ listen 127.0.0.1:{a}; location / {{ return 200 '{body}'; }} }}
"""

# the other side: a fast shadow and one answering in 200 ms
SHADOWS = """
    server {{ listen 127.0.0.1:{b}; location / {{ return 200 '{body}'; }} }}
    server {{ listen 127.0.0.1:{s};
              location / {{ echo_sleep 0.2; echo '{body}'; }} }}
"""

UPSTREAMS = PRIMARY + SHADOWS

# The cutover location of the recorded front: routing (dial at 0 %, every
# request to legacy=primary) and every request recorded.
RECORDED = """
                  cutover erp;
                  cutover_upstreams new=shadow legacy=primary;
                  cutover_record all;
                  cutover_log {dir}/log/erp.log;
                  proxy_pass http://$cutover_upstream;
"""

FRONT = """
    cutover_zone erp size=1m state={dir}/erp.state;
    upstream primary {{ server 127.0.0.1:{a}; keepalive 64; }}
    upstream shadow  {{ server 127.0.0.1:{b}; keepalive 64; }}
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    server {{ listen 127.0.0.1:{plain};
              location / {{ proxy_pass http://primary; }} }}
    server {{ listen 127.0.0.1:{mirror};
              location / {{ mirror /m; proxy_pass http://primary; }}
              location = /m {{ internal;
                               proxy_pass http://shadow$request_uri; }} }}
    server {{ listen 127.0.0.1:{rec};
              location / {{""" + RECORDED + """              }} }}
"""


def metric(port, name):
    """The sum of a metric's series (all labels) on port's /metrics."""
    _, _, body = harness.http("GET", "http://127.0.0.1:%d/metrics" % port)
    return sum(float(v) for v in re.findall(
        r"^%s(?:\{[^}]*\})? (\S+)$" % name, body.decode(), re.M))


class Shadowd:
    def __init__(self, d, target):
        self.port = harness.free_port()
        cfg = {"log": os.path.join(d, "log", "erp.log"),
               "checkpoint": os.path.join(d, "erp.ckpt"),
               "new": target, "legacy": target, "concurrency": 256,
               "timeout_ms": 5000, "retries": 1,
               "outbox": os.path.join(d, "outbox"),
               "metrics_listen": "127.0.0.1:%d" % self.port}
        os.makedirs(cfg["outbox"], exist_ok=True)
        path = os.path.join(d, "shadowd.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        self.proc = harness.Proc([harness.bin_path("cutover-shadowd"),
                                  "--config", path],
                                 os.path.join(d, "shadowd.log"),
                                 port=self.port)

    def drain(self, timeout=300):
        """Waits until the backlog is replayed, so it does not run under
        the next measurement."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if metric(self.port, "cutover_shadow_lag_bytes") == 0 and \
                    metric(self.port, "cutover_shadow_lag_records") == 0:
                return
            time.sleep(0.2)

    def replayed(self):
        return metric(self.port, "cutover_shadow_replayed_total")

    def stop(self):
        self.proc.stop()


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(worker, url, seconds, script, cpu, conns=32):
    """wrk's figures, and the front worker's CPU per request into cpu."""
    c0 = cpu_seconds(worker)
    r = wrk.run(url, seconds, conns=conns, script=script)
    cpu.append((cpu_seconds(worker) - c0) / r["requests"] * 1e6)
    return r


def start_front(name, a, b, plain, mirror, rec):
    """The front nginx (FRONT: plain, mirror and recorded servers) in a new
    temp dir with the log's directory, and wrk's script; returns (dir,
    nginx, script)."""
    d = harness.make_tempdir(name)
    os.makedirs(os.path.join(d, "log"))
    os.chmod(os.path.join(d, "log"), 0o777)
    front = harness.Nginx(FRONT.format(a=a, b=b, plain=plain, mirror=mirror,
                                       rec=rec, dir=d),
                          workers=1, directory=d, log_level="warn")
    front.start(rec)
    script = os.path.join(d, "stores.lua")
    with open(script, "w") as f:
        f.write(wrk.LUA_STORES)
    return d, front, script


def alternate(i, a, b):
    """Round i's order of a pair measured back to back: a first in even
    rounds, b first in odd ones, so drift on a shared machine falls on
    both alike."""
    return (a, b) if i % 2 == 0 else (b, a)


def restart(shadowd, d, target):
    """The next shadowd on the same log and checkpoint, for target, with
    an empty outbox (the benchmark stores no results in PostgreSQL)."""
    shadowd.stop()
    shutil.rmtree(os.path.join(d, "outbox"), ignore_errors=True)
    return Shadowd(d, target)


def main(rounds=int(os.environ.get("BENCH_ROUNDS", "5")),
         seconds=int(os.environ.get("BENCH_SECONDS", "5"))):
    a, b, s, plain, mirror, rec = (harness.free_port() for _ in range(6))
    up = harness.Nginx(PRIMARY.format(a=a, body=BODY), workers=1,
                       name="bench-up", log_level="warn")
    up.start(a)
    # The shadows stand in for the new core, which runs on other hosts:
    # under SCHED_IDLE their CPU yields to the gateway's, as another host's
    # would not be taken from it at all.  Their cost is not the gateway's.
    other = harness.Nginx(SHADOWS.format(b=b, s=s, body=BODY), workers=1,
                          name="bench-shadow", log_level="warn",
                          main="load_module %s;" % ECHO)
    other.start(s)
    for pid in [other.proc.pid] + other.worker_pids():
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
    d, front, script = start_front("bench-rec", a, b, plain, mirror, rec)
    url = "http://127.0.0.1:%d/"
    fast, slow = "http://127.0.0.1:%d" % b, "http://127.0.0.1:%d" % s
    shadowd = Shadowd(d, fast)
    try:
        for port in (plain, mirror, rec):
            wrk.run(url % port, 2, script=script)
        res = {"plain": [], "mirror": [], "rec": [], "alone": [],
               "slow": []}
        rate = []
        cpu = {"plain": [], "alone": []}
        worker = front.worker_pids()[0]
        for i in range(rounds):
            # a fresh shadowd (and outbox) each round, on an empty log
            shadowd = restart(shadowd, d, fast)
            shadowd.drain()
            os.sync()
            # plain and recorded (the module's own cost: shadowd paused, its
            # lag grows) back to back, their order alternating by round, so
            # drift on this shared machine falls on both alike
            shadowd.proc.signal(signal.SIGSTOP)
            for k in alternate(i, "plain", "alone"):
                res[k].append(measured(worker, url % (plain if k == "plain"
                                                      else rec),
                                       seconds, script, cpu[k]))
            shadowd.proc.signal(signal.SIGCONT)
            shadowd.drain()
            res["mirror"].append(wrk.run(url % mirror, seconds,
                                         script=script))
            r0, t0 = shadowd.replayed(), time.monotonic()
            res["rec"].append(wrk.run(url % rec, seconds, script=script))
            rate.append((shadowd.replayed() - r0) / (time.monotonic() - t0))
            shadowd.drain()
            # the same with a 200 ms shadow, from an empty log: its backlog
            # grows by the whole run, and the next round's fast shadowd
            # replays it first
            shadowd = restart(shadowd, d, slow)
            res["slow"].append(wrk.run(url % rec, seconds, script=script))
        m = {k: wrk.median_of(v) for k, v in res.items()}
        for k in ("plain", "alone", "rec", "slow"):
            print("rounds %-6s %s req/s" % (k, " ".join(
                "%.0f" % r["rps"] for r in res[k])))
        print("wrk -c32 -t1, %d x %d s per figure, medians; every request "
              "recorded on the cutover front" % (rounds, seconds))
        wrk.line("req/s recorded (shadowd paused) vs plain",
                 m["alone"]["rps"], "req/s", m["plain"]["rps"],
                 figure_name="record_rps")
        pairs = [r["rps"] / p["rps"]
                 for r, p in zip(res["alone"], res["plain"])]
        print("  same, per round (back-to-back pairs): %s; median %.3f"
              % (" ".join("%.3f" % x for x in pairs),
                 statistics.median(pairs)))
        wrk.line("p99 recorded (shadowd paused) vs plain",
                 m["alone"]["p99"], "ms", m["plain"]["p99"],
                 better="lower", figure_name="record_p99")
        wrk.line("front worker CPU per request, recorded vs plain",
                 statistics.median(cpu["alone"]), "us",
                 statistics.median(cpu["plain"]), better="lower",
                 figure_name="record_cpu_per_request")
        wrk.line("req/s recorded + shadowd replaying vs plain",
                 m["rec"]["rps"], "req/s", m["plain"]["rps"],
                 figure_name="record_replaying_rps")
        wrk.line("req/s nginx mirror vs plain proxy_pass",
                 m["mirror"]["rps"], "req/s", m["plain"]["rps"])
        wrk.line("req/s recorded vs nginx mirror", m["rec"]["rps"], "req/s",
                 m["mirror"]["rps"], figure_name="record_vs_mirror_rps")
        wrk.line("p99 recorded + shadowd replaying vs plain",
                 m["rec"]["p99"], "ms", m["plain"]["p99"], better="lower")
        print("p99 added by recording: %+.3f ms (shadowd paused), %+.3f ms "
              "(shadowd replaying on the same 2 cores)"
              % (m["alone"]["p99"] - m["plain"]["p99"],
                 m["rec"]["p99"] - m["plain"]["p99"]))
        wrk.line("req/s with a 200 ms shadow vs fast shadow",
                 m["slow"]["rps"], "req/s", m["rec"]["rps"],
                 figure_name="record_slow_shadow_rps")
        wrk.line("p99 with a 200 ms shadow vs fast shadow",
                 m["slow"]["p99"], "ms", m["rec"]["p99"], better="lower",
                 figure_name="record_slow_shadow_p99")
        rate.sort()
        print("shadowd replay rate while clients saturate the cores (fast "
              "shadow, median; idle CPU only): %.0f records/s"
              % rate[len(rate) // 2])
    finally:
        shadowd.stop()
        front.destroy()
        other.destroy()
        up.destroy()


if __name__ == "__main__":
    main()
