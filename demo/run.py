"""make demo: the whole dual-run cutover on one machine.

Starts a throwaway PostgreSQL, the new ERP core, the stand-in legacy store
system behind its adapter, nginx with the cutover module (recording every
write) and cutover-shadowd; drives store and channel traffic while the dial
goes 0 -> 10 -> 50 %, rolls back, waits for the shadow to catch up, checks
that both ledgers moved in step, reconciles the two databases' ledgers
(then makes one side differ through its API and finds it) and prints the
comparison report.  Then the ramp dials up by itself, the new core is made
to fail, and the guard rolls back by itself.

DEMO_KEEP=1 leaves everything running until Ctrl-C.
"""

import concurrent.futures
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import harness  # noqa: E402
from stack import Stack  # noqa: E402

OUT = os.path.join(harness.ROOT, "build", "demo")
CHANNELS = ["pos", "eshop", "miniapp", "marketplace"]


def say(msg=""):
    print(msg, flush=True)


def one_request(stack, rnd, i, phase, touched):
    store = "S%03d" % rnd.randint(1, 200)
    channel = rnd.choice(CHANNELS)
    h = {"X-Store-Id": store, "X-Channel": channel,
         "Content-Type": "application/json"}
    kind = rnd.random()
    if kind < 0.6:
        skus = sorted({"SKU%05d" % rnd.randint(1, 2000)
                       for _ in range(rnd.randint(1, 3))})
        body = {"order_id": "D%s-%s-%05d" % (phase, store, i),
                "store_id": store, "channel": channel,
                "member_id": rnd.choice([None, "M%06d"
                                         % rnd.randint(1, 10000)]),
                "lines": [{"sku": s, "qty": rnd.randint(1, 3)} for s in skus],
                "payment": {"method": rnd.choice(["cash", "card", "wallet"])}}
        touched.update((store, s) for s in skus)
        s, hd, _ = harness.http("POST", stack.gateway + "/api/v1/orders",
                                json.dumps(body), h)
    elif kind < 0.9:
        s, hd, _ = harness.http("GET", stack.gateway
                                + "/api/v1/inventory/%s/SKU%05d"
                                % (store, rnd.randint(1, 2000)), None, h)
    else:
        s, hd, _ = harness.http("GET", stack.gateway
                                + "/api/v1/members/M%06d"
                                % rnd.randint(1, 10000), None, h)
    return s, hd.get("x-cutover-side", "?")


def traffic(stack, phase, touched, n=400):
    jobs = [(random.Random("%s%d" % (phase, i)), i) for i in range(n)]
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        res = list(ex.map(lambda j: one_request(stack, j[0], j[1], phase,
                                                touched), jobs))
    sides = [side for _, side in res]
    say("   %d requests: %d served by the new core, %d by legacy, %d 5xx"
        % (n, sides.count("new"), sides.count("legacy"),
           sum(1 for st, _ in res if st >= 500)))


def ledgers_in_step(stack, touched):
    same = differ = 0
    for store, sku in sorted(touched)[:300]:
        path = "/api/v1/inventory/%s/%s" % (store, sku)
        a = harness.http("GET", "http://127.0.0.1:%d%s"
                         % (stack.ports["newcore"], path))[2]
        b = harness.http("GET", "http://127.0.0.1:%d%s"
                         % (stack.ports["adapter"], path))[2]
        try:
            ok = json.loads(a)["on_hand"] == json.loads(b)["on_hand"]
        except (ValueError, KeyError):
            ok = False
        same += ok
        differ += not ok
    return same, differ


def head(text, n):
    lines = text.rstrip().split("\n")
    more = len(lines) - n
    return "\n".join(lines[:n] + (["   ... %d more lines" % more]
                                  if more > 0 else []))


def reconcile(stack):
    """cutover-reconcile over both databases, stored in the result store;
    then a stock adjustment on the new core only, found by the next run."""
    argv = [harness.bin_path("cutover-reconcile"), "--new", stack.newdb,
            "--legacy", stack.legdb, "--settle", "2s", "--results",
            stack.resdb]
    say("== reconciling the ledgers of both databases (cutover-reconcile)")
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    say(head(r.stdout, 12))
    say("   exit %d (0 agree, 1 differences: the legacy quirks, 2 error)%s"
        % (r.returncode, (": " + r.stderr.strip()) if r.returncode == 2
           else ""))
    body = json.dumps({"store_id": "S001", "sku": "SKU00001", "delta": 5,
                       "reason": "stocktake"})
    st = harness.http("POST", "http://127.0.0.1:%d/api/v1/inventory/adjust"
                      % stack.ports["newcore"], body,
                      {"Content-Type": "application/json"})[0]
    say("== stocktake +5 of SKU00001 at S001 on the new core only (HTTP %d);"
        " reconciling S001" % st)
    r = subprocess.run(argv[:5] + ["--ledger", "stock", "--store", "S001",
                                   "--results", stack.resdb],
                       capture_output=True, text=True, timeout=600)
    say(r.stdout.rstrip())
    say("   exit %d; in the report: cutover-report --db ... ledgers"
        % r.returncode)


def run(stack):
    touched = set()
    stack.up(say)
    for phase, pct in (("a", 0), ("b", 10), ("c", 50)):
        rc, _ = stack.ctl("dial", str(pct), "--reason",
                          "demo: dial to %d %%" % pct)
        say("== dial %d %%  (cutoverctl exit %d)" % (pct, rc))
        traffic(stack, phase, touched)
    say("== rollback: the new core misbehaves, everything back to legacy")
    rc, _ = stack.ctl("rollback", "--reason", "demo: roll back")
    say("   cutoverctl rollback exit %d (3 = rolled back)" % rc)
    traffic(stack, "d", touched)

    say("== cutoverctl status")
    say(stack.ctl("status")[1].rstrip())
    say("== cutoverctl history")
    say(stack.ctl("history", "--limit", "5")[1].rstrip())

    say("== waiting for cutover-shadowd to replay everything on the other "
        "side")
    m = stack.wait_shadow()
    say("   read %d, replayed %d, failed %d, lag %d records"
        % (m.get("cutover_shadow_records_read_total", 0),
           m.get("cutover_shadow_replayed_total", 0),
           m.get("cutover_shadow_failed_total", 0),
           m.get("cutover_shadow_lag_records", -1)))
    say("   mismatch ratio (cutover_shadow_mismatch_ratio): served by new "
        "%.1f %%, served by legacy %.1f %%"
        % (100 * m.get('cutover_shadow_mismatch_ratio{zone="erp",'
                       'side="new"}', 0),
           100 * m.get('cutover_shadow_mismatch_ratio{zone="erp",'
                       'side="legacy"}', 0)))
    same, differ = ledgers_in_step(stack, touched)
    say("== stock of %d store/SKU pairs the traffic touched: %d equal on "
        "both systems, %d differ" % (same + differ, same, differ))

    reconcile(stack)

    say("== comparison report (cutover-report)")
    for rep in ("summary", "routes", "fields", "ledgers"):
        say(head(stack.report("--limit", "10", rep)[1], 12))
    for fmt in ("json", "csv"):
        with open(os.path.join(OUT, "report." + fmt), "w") as f:
            f.write(stack.report("--format", fmt, "export")[1])
    page = os.path.join(OUT, "report.html")
    rc, out = stack.report("--format", "html", "--rules",
                           os.path.join(HERE, "rules.json"), "--out", page)
    say("== the analyst's page (cutover-report --format html): %s%s"
        % (page, "" if rc in (0, 1) else "  FAILED: " + out.strip()))
    say("\nreport: %s/report.json and report.csv; logs: %s/logs; "
        "nginx: %s/nginx" % (OUT, OUT, OUT))

    guard_and_ramp(stack)


def dials(stack):
    st = json.loads(stack.ctl("-o", "json", "status")[1])
    return st["state"], st["rules"][-1]["percent"]


def guard_and_ramp(stack):
    """The ramp raises the dial while all is well; the new core fails and
    the guard (cutover_guard, error_rate=5% over 5s) rolls back."""
    stop = threading.Event()
    answers = {"ok": 0, "5xx": 0}

    def background():
        rnd = random.Random("ramp")
        i = 0
        while not stop.is_set():
            i += 1
            store = "S%03d" % rnd.randint(1, 200)
            s, _, _ = harness.http("GET", stack.gateway
                                   + "/api/v1/inventory/%s/SKU%05d"
                                   % (store, rnd.randint(1, 2000)), None,
                                   {"X-Store-Id": store, "X-Channel": "pos"})
            answers["5xx" if s >= 500 else "ok"] += 1

    say("\n== guard and ramp: dial 10 %, then a ramp to 40 % by 10 % every "
        "2 s")
    stack.ctl("dial", "10", "--reason", "demo: restart the cutover")
    threads = [threading.Thread(target=background) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        say(stack.ctl("ramp", "40", "--step", "10", "--every", "2s",
                      "--reason", "demo: dial up while all is well")[1]
            .rstrip())
        seen = None
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            state, pct = dials(stack)
            if pct != seen:
                say("   dial now %s %%" % pct)
                seen = pct
            if pct == 40:
                break
            time.sleep(0.2)

        time.sleep(1.5)                 # a while at 40 %
        say("== the new core goes down: nginx answers 502 for its share")
        stack.procs["newcore"].stop()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10:
            if dials(stack)[0] == "rolled_back":
                break
            time.sleep(0.1)
        say("   rolled back by the guard %.1f s after the core went down "
            "(answers so far: %d ok, %d 5xx)"
            % (time.monotonic() - t0, answers["ok"], answers["5xx"]))
        time.sleep(1)
        say("== cutoverctl guard")
        say(stack.ctl("guard")[1].rstrip())
        say("== cutoverctl history (the guard's entry on top)")
        say(stack.ctl("history", "--limit", "6")[1].rstrip())
    finally:
        stop.set()
        for t in threads:
            t.join()
    b = harness.bin_path
    stack.start("newcore", [b("cutover-newcore"), "--listen",
                            "127.0.0.1:%d" % stack.ports["newcore"],
                            "--db", stack.newdb], stack.ports["newcore"])


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    stack = Stack(OUT, rules=os.path.join(HERE, "rules.json"),
                  guard="error_rate=5% window=5s min_requests=20")
    try:
        run(stack)
        if os.environ.get("DEMO_KEEP") == "1":
            say("DEMO_KEEP=1: gateway %s, results %s; Ctrl-C stops "
                "everything" % (stack.gateway, stack.resdb))
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        bad = stack.down()
        if bad:
            say("nginx error log has:\n" + "\n".join(bad[:10]))
            sys.exit(1)


if __name__ == "__main__":
    main()
