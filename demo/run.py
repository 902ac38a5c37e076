"""make demo: the whole dual-run cutover on one machine.

Starts a throwaway PostgreSQL, the new ERP core, the stand-in legacy store
system behind its adapter, nginx with the cutover module (recording every
write) and cutover-shadowd; drives store and channel traffic while the dial
goes 0 -> 10 -> 50 %, rolls back, waits for the shadow to catch up, checks
that both ledgers moved in step and prints the comparison report.

DEMO_KEEP=1 leaves everything running until Ctrl-C.
"""

import concurrent.futures
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import harness  # noqa: E402

ROOT = harness.ROOT
OUT = os.path.join(ROOT, "build", "demo")
CHANNELS = ["pos", "eshop", "miniapp", "marketplace"]
OPERATOR_SECRET = "5e" * 32

NGINX_CONF = """
    cutover_zone erp size=1m state={dir}/state/erp.state;

    upstream new_core {{ server 127.0.0.1:{newcore}; keepalive 16; }}
    upstream legacy   {{ server 127.0.0.1:{adapter}; keepalive 16; }}

    server {{
        listen 127.0.0.1:{port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";

        location /api/ {{
            cutover erp;
            cutover_upstreams new=new_core legacy=legacy;
            cutover_record writes;
            cutover_record_reads 10%;
            cutover_log {dir}/log/erp.log segment=16m max=1g;
            add_header X-Cutover-Side $cutover_side always;
            proxy_pass http://$cutover_upstream;
        }}
        location /cutover/ {{
            allow 127.0.0.1; deny all;
            cutover_admin erp;
            cutover_admin_keys {dir}/keys;
        }}
    }}
"""


def say(msg=""):
    print(msg, flush=True)


class Demo:
    def __init__(self):
        shutil.rmtree(OUT, ignore_errors=True)
        os.makedirs(OUT)
        for sub in ("state", "log", "outbox", "logs"):
            os.makedirs(os.path.join(OUT, sub))
            os.chmod(os.path.join(OUT, sub), 0o777)
        os.chmod(OUT, 0o777)
        self.procs = []
        self.nginx = None
        self.pg = None
        self.ports = {k: harness.free_port() for k in
                      ("newcore", "legacy", "adapter", "gateway", "shadow")}

    def log(self, name):
        return os.path.join(OUT, "logs", name + ".log")

    def start(self, name, argv, port):
        p = harness.Proc(argv, self.log(name), port=port, timeout=60)
        self.procs.append(p)
        return p

    def run(self, name, argv):
        with open(self.log(name), "ab") as f:
            r = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT,
                               timeout=600)
        if r.returncode != 0:
            raise RuntimeError("%s failed, see %s" % (name, self.log(name)))

    def up(self):
        b = harness.bin_path
        say("== starting a throwaway PostgreSQL cluster")
        self.pg = harness.Pg("demo-pg").start()
        newdb = self.pg.createdb("newcore")
        legdb = self.pg.createdb("legacy")
        self.resdb = self.pg.createdb("results")

        say("== seeding both ledgers (200 stores x 2000 SKUs, 10000 members)")
        t = time.monotonic()
        self.run("newcore-seed", [b("cutover-newcore"), "--db", newdb,
                                  "--init-schema", "--seed"])
        self.run("legacy-seed", [b("legacy-store-sim"), "--db", legdb,
                                 "--init-schema", "--seed"])
        say("   seeded in %.1f s" % (time.monotonic() - t))

        say("== starting the new core, the legacy stand-in and its adapter")
        self.start("newcore", [b("cutover-newcore"), "--listen",
                               "127.0.0.1:%d" % self.ports["newcore"],
                               "--db", newdb], self.ports["newcore"])
        self.start("legacy-store-sim", [b("legacy-store-sim"), "--listen",
                                        "127.0.0.1:%d" % self.ports["legacy"],
                                        "--db", legdb], self.ports["legacy"])
        self.start("legacy-adapter", [b("cutover-legacy-adapter"), "--listen",
                                      "127.0.0.1:%d" % self.ports["adapter"],
                                      "--legacy", "http://127.0.0.1:%d"
                                      % self.ports["legacy"],
                                      "--map", os.path.join(
                                          ROOT, "legacy_adapter", "map.json")],
                   self.ports["adapter"])

        say("== starting nginx with the cutover module")
        with open(os.path.join(OUT, "keys"), "w") as f:
            f.write("release-mgr operator %s\n" % OPERATOR_SECRET)
        with open(os.path.join(OUT, "operator.key"), "w") as f:
            f.write("release-mgr operator %s\n" % OPERATOR_SECRET)
        self.nginx = harness.Nginx(NGINX_CONF.format(
            dir=OUT, newcore=self.ports["newcore"],
            adapter=self.ports["adapter"], port=self.ports["gateway"]),
            directory=os.path.join(OUT, "nginx"))
        self.nginx.start(self.ports["gateway"])

        say("== starting cutover-shadowd")
        cfg = {"log": os.path.join(OUT, "log", "erp.log"),
               "checkpoint": os.path.join(OUT, "state", "erp.ckpt"),
               "new": "http://127.0.0.1:%d" % self.ports["newcore"],
               "legacy": "http://127.0.0.1:%d" % self.ports["adapter"],
               "concurrency": 32, "timeout_ms": 5000, "retries": 3,
               "rules": os.path.join(HERE, "rules.json"),
               "results_db": self.resdb,
               "outbox": os.path.join(OUT, "outbox"),
               "metrics_listen": "127.0.0.1:%d" % self.ports["shadow"]}
        with open(os.path.join(OUT, "shadowd.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        self.start("shadowd", [b("cutover-shadowd"), "--config",
                               os.path.join(OUT, "shadowd.json")],
                   self.ports["shadow"])

    def ctl(self, *args):
        r = subprocess.run([harness.bin_path("cutoverctl"), "--url",
                            "http://127.0.0.1:%d/cutover/"
                            % self.ports["gateway"], "--key-file",
                            os.path.join(OUT, "operator.key")] + list(args),
                           capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout + r.stderr

    def request(self, rnd, i, phase):
        store = "S%03d" % rnd.randint(1, 200)
        channel = rnd.choice(CHANNELS)
        h = {"X-Store-Id": store, "X-Channel": channel,
             "Content-Type": "application/json"}
        url = "http://127.0.0.1:%d" % self.ports["gateway"]
        kind = rnd.random()
        if kind < 0.6:
            member = rnd.choice([None, "M%06d" % rnd.randint(1, 10000)])
            lines = [{"sku": "SKU%05d" % rnd.randint(1, 2000),
                      "qty": rnd.randint(1, 3)}
                     for _ in range(rnd.randint(1, 3))]
            seen = set()
            lines = [l for l in lines
                     if not (l["sku"] in seen or seen.add(l["sku"]))]
            body = {"order_id": "D%s-%s-%05d" % (phase, store, i),
                    "store_id": store, "channel": channel,
                    "member_id": member, "lines": lines,
                    "payment": {"method": rnd.choice(["cash", "card",
                                                      "wallet"])}}
            self.touched.update((store, l["sku"]) for l in lines)
            s, hd, _ = harness.http("POST", url + "/api/v1/orders",
                                    json.dumps(body), h)
        elif kind < 0.9:
            sku = "SKU%05d" % rnd.randint(1, 2000)
            s, hd, _ = harness.http("GET", url + "/api/v1/inventory/%s/%s"
                                    % (store, sku), None, h)
        else:
            s, hd, _ = harness.http("GET", url + "/api/v1/members/M%06d"
                                    % rnd.randint(1, 10000), None, h)
        return s, hd.get("x-cutover-side", "?")

    def traffic(self, phase, n=400):
        rnd = random.Random(phase)
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            res = list(ex.map(lambda i: self.request(rnd, i, phase),
                              range(n)))
        sides = [s for _, s in res]
        bad = [st for st, _ in res if st >= 500]
        say("   %d requests: %d to the new core, %d to legacy, %d 5xx"
            % (n, sides.count("new"), sides.count("legacy"), len(bad)))

    def shadow_metrics(self):
        s, _, body = harness.http("GET", "http://127.0.0.1:%d/metrics"
                                  % self.ports["shadow"])
        out = {}
        for line in body.decode().splitlines():
            m = re.match(r"(cutover_shadow_\w+)(\{[^}]*\})? (\S+)$", line)
            if m:
                out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
        return out

    def wait_shadow(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.shadow_metrics()
            if m.get("cutover_shadow_lag_records", 1) == 0 and \
                    m.get("cutover_shadow_inflight", 1) == 0:
                return m
            time.sleep(0.5)
        return self.shadow_metrics()

    def ledgers_in_step(self):
        same = differ = 0
        for store, sku in sorted(self.touched)[:300]:
            a = harness.http("GET", "http://127.0.0.1:%d/api/v1/inventory/%s/%s"
                             % (self.ports["newcore"], store, sku))[2]
            b = harness.http("GET", "http://127.0.0.1:%d/api/v1/inventory/%s/%s"
                             % (self.ports["adapter"], store, sku))[2]
            try:
                if json.loads(a)["on_hand"] == json.loads(b)["on_hand"]:
                    same += 1
                else:
                    differ += 1
            except (ValueError, KeyError):
                differ += 1
        return same, differ

    def main(self):
        self.touched = set()
        self.up()
        for phase, pct in (("a", 0), ("b", 10), ("c", 50)):
            rc, out = self.ctl("dial", str(pct), "--reason",
                               "demo: dial to %d %%" % pct)
            say("== dial %d %%  (cutoverctl exit %d)" % (pct, rc))
            self.traffic(phase)
        say("== rollback: the new core misbehaves, everything back to legacy")
        rc, out = self.ctl("rollback", "--reason", "demo: roll back")
        say("   cutoverctl rollback exit %d (3 = rolled back)" % rc)
        self.traffic("d")

        say("== cutoverctl status")
        say(self.ctl("status")[1].rstrip())
        say("== cutoverctl history")
        say(self.ctl("history", "--limit", "5")[1].rstrip())

        say("== waiting for cutover-shadowd to replay everything")
        m = self.wait_shadow()
        say("   read %d, replayed %d, failed %d, lag %d records"
            % (m.get("cutover_shadow_records_read_total", 0),
               m.get("cutover_shadow_replayed_total", 0),
               m.get("cutover_shadow_failed_total", 0),
               m.get("cutover_shadow_lag_records", -1)))
        same, differ = self.ledgers_in_step()
        say("== stock of %d touched store/SKU pairs: %d equal on both "
            "systems, %d differ" % (same + differ, same, differ))

        say("== comparison report (cutover-report)")
        b = harness.bin_path
        for rep in ("summary", "routes", "fields"):
            r = subprocess.run([b("cutover-report"), "--db", self.resdb,
                                "--limit", "10", rep], capture_output=True,
                               text=True)
            say(r.stdout.rstrip() or r.stderr.rstrip())
        for fmt in ("json", "csv"):
            path = os.path.join(OUT, "report." + fmt)
            with open(path, "w") as f:
                subprocess.run([b("cutover-report"), "--db", self.resdb,
                                "--format", fmt, "export"], stdout=f)
        say("\nreport: %s/report.json and report.csv; logs: %s/logs; "
            "nginx: %s" % (OUT, OUT, self.nginx.dir))
        say("results database: %s" % self.resdb)

    def down(self):
        for p in reversed(self.procs):
            p.stop()
        if self.nginx:
            self.nginx.stop()
            bad = self.nginx.bad_log_lines()
            if bad:
                say("nginx error log has:\n" + "\n".join(bad[:10]))
        if self.pg:
            self.pg.destroy()


def main():
    d = Demo()
    try:
        d.main()
        if os.environ.get("DEMO_KEEP") == "1":
            say("DEMO_KEEP=1: running; Ctrl-C stops everything")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        d.down()


if __name__ == "__main__":
    main()
