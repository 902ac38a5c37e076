"""The whole dual-run stack on loopback, as `make demo` and the end-to-end
tests run it: a throwaway PostgreSQL, cutover-newcore, legacy-store-sim
behind cutover-legacy-adapter, nginx with the cutover module recording
every write, and cutover-shadowd comparing into a results database."""

import json
import os
import re
import subprocess
import time

import harness

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
            cutover_record_reads {reads};
            cutover_log {dir}/log/erp.log segment=16m max=1g;
            add_header X-Cutover-Side $cutover_side always;
            proxy_pass http://$cutover_upstream;
        }}
        location /cutover/ {{
            allow 127.0.0.1; deny all;
            cutover_admin erp;
            cutover_admin_keys {dir}/keys;
        }}
        location = /metrics {{
            allow 127.0.0.1; deny all;
            cutover_metrics erp;
        }}
    }}
"""


class Stack:
    def __init__(self, directory, reads="10%", rules=None, pg=None,
                 legacy_pg=None, shadowd=None, guard=None):
        self.dir = directory
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o777)
        for sub in ("state", "log", "outbox", "logs"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
            os.chmod(os.path.join(self.dir, sub), 0o777)
        self.reads = reads
        self.rules = rules
        self.procs = {}
        self.nginx = None
        self.pg = pg
        self.own_pg = pg is None
        self.legacy_pg = legacy_pg      # the legacy ledger's own cluster
        self.shadowd_extra = shadowd or {}
        self.guard = guard              # cutover_guard parameters
        self.ports = {k: harness.free_port() for k in
                      ("newcore", "legacy", "adapter", "gateway", "shadow")}

    @property
    def gateway(self):
        return "http://127.0.0.1:%d" % self.ports["gateway"]

    def log(self, name):
        return os.path.join(self.dir, "logs", name + ".log")

    def start(self, name, argv, port):
        self.procs[name] = harness.Proc(argv, self.log(name), port=port,
                                        timeout=60)
        return self.procs[name]

    def run(self, name, argv):
        with open(self.log(name), "ab") as f:
            r = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT,
                               timeout=600)
        if r.returncode != 0:
            raise RuntimeError("%s failed, see %s" % (name, self.log(name)))

    def up(self, say=lambda msg: None):
        b = harness.bin_path
        if self.pg is None:
            say("== starting a throwaway PostgreSQL cluster")
            self.pg = harness.Pg("stack-pg").start()
        tag = os.path.basename(self.dir).replace("-", "_")
        self.newdb = self.pg.createdb("newcore_" + tag)
        self.legdb = (self.legacy_pg or self.pg).createdb("legacy_" + tag)
        self.resdb = self.pg.createdb("results_" + tag)

        say("== seeding both ledgers (200 stores x 2000 SKUs, 10000 members)")
        t = time.monotonic()
        self.run("newcore-seed", [b("cutover-newcore"), "--db", self.newdb,
                                  "--init-schema", "--seed"])
        self.run("legacy-seed", [b("legacy-store-sim"), "--db", self.legdb,
                                 "--init-schema", "--seed"])
        say("   seeded in %.1f s" % (time.monotonic() - t))

        say("== starting the new core, the legacy stand-in and its adapter")
        self.start("newcore", [b("cutover-newcore"), "--listen",
                               "127.0.0.1:%d" % self.ports["newcore"],
                               "--db", self.newdb], self.ports["newcore"])
        self.start("legacy-store-sim",
                   [b("legacy-store-sim"), "--listen",
                    "127.0.0.1:%d" % self.ports["legacy"], "--db",
                    self.legdb], self.ports["legacy"])
        self.start("legacy-adapter",
                   [b("cutover-legacy-adapter"), "--listen",
                    "127.0.0.1:%d" % self.ports["adapter"], "--legacy",
                    "http://127.0.0.1:%d" % self.ports["legacy"], "--map",
                    os.path.join(harness.ROOT, "legacy_adapter", "map.json")],
                   self.ports["adapter"])

        say("== starting nginx with the cutover module")
        for name in ("keys", "operator.key"):
            with open(os.path.join(self.dir, name), "w") as f:
                f.write("release-mgr operator %s\n" % OPERATOR_SECRET)
        conf = NGINX_CONF.format(
            dir=self.dir, newcore=self.ports["newcore"],
            adapter=self.ports["adapter"], port=self.ports["gateway"],
            reads=self.reads)
        if self.guard:
            conf = conf.replace("erp.state;\n", "erp.state;\n    cutover_guard "
                                "erp %s;\n" % self.guard, 1)
        self.nginx = harness.Nginx(conf,
                                   directory=os.path.join(self.dir, "nginx"))
        self.nginx.start(self.ports["gateway"])

        say("== starting cutover-shadowd")
        self.shadowd_config = os.path.join(self.dir, "shadowd.json")
        cfg = {"log": os.path.join(self.dir, "log", "erp.log"),
               "checkpoint": os.path.join(self.dir, "state", "erp.ckpt"),
               "new": "http://127.0.0.1:%d" % self.ports["newcore"],
               "legacy": "http://127.0.0.1:%d" % self.ports["adapter"],
               "concurrency": 32, "timeout_ms": 5000, "retries": 3,
               "results_db": self.resdb,
               "outbox": os.path.join(self.dir, "outbox"),
               "metrics_listen": "127.0.0.1:%d" % self.ports["shadow"]}
        if self.rules:
            cfg["rules"] = self.rules
        cfg.update(self.shadowd_extra)
        with open(self.shadowd_config, "w") as f:
            json.dump(cfg, f, indent=1)
        self.start_shadowd()

    def start_shadowd(self):
        return self.start("shadowd", [harness.bin_path("cutover-shadowd"),
                                      "--config", self.shadowd_config],
                          self.ports["shadow"])

    def ctl(self, *args):
        r = subprocess.run([harness.bin_path("cutoverctl"), "--url",
                            self.gateway + "/cutover/", "--key-file",
                            os.path.join(self.dir, "operator.key")]
                           + list(args), capture_output=True, text=True,
                           timeout=30)
        return r.returncode, r.stdout + r.stderr

    def shadow_metrics(self):
        _, _, body = harness.http("GET", "http://127.0.0.1:%d/metrics"
                                  % self.ports["shadow"])
        out = {}
        for line in body.decode().splitlines():
            m = re.match(r"(cutover_shadow_\w+)(\{[^}]*\})? (\S+)$", line)
            if m:
                out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
        return out

    def gateway_records(self):
        """Records nginx has written to the dual-run log so far."""
        _, _, body = harness.http("GET", self.gateway + "/metrics")
        m = re.search(r'^cutover_records_total\{zone="erp"\} (\d+)$',
                      body.decode(), re.M)
        return int(m.group(1))

    def wait_shadow(self, timeout=120):
        """Waits until shadowd has read and finished every record nginx
        wrote.  A record is written just after its client has the answer,
        so the gateway's count is read until it stops moving first."""
        deadline = time.monotonic() + timeout
        written = -1
        while time.monotonic() < deadline:
            now = self.gateway_records()
            if now == written:
                break
            written = now
            time.sleep(0.2)
        m, calm = {}, 0
        while time.monotonic() < deadline:
            m = self.shadow_metrics()
            idle = m.get("cutover_shadow_lag_records", 1) == 0 and \
                m.get("cutover_shadow_lag_bytes", 1) == 0 and \
                m.get("cutover_shadow_inflight", 1) == 0
            calm = calm + 1 if idle else 0
            if calm == 3:
                return m
            time.sleep(0.2)
        return m

    def report(self, *args):
        r = subprocess.run([harness.bin_path("cutover-report"), "--db",
                            self.resdb] + list(args), capture_output=True,
                           text=True, timeout=60)
        return r.returncode, r.stdout + r.stderr

    def down(self):
        for p in reversed(list(self.procs.values())):
            p.stop()
        bad = []
        if self.nginx:
            self.nginx.stop()
            bad = self.nginx.bad_log_lines()
        if self.pg is not None and self.own_pg:
            self.pg.destroy()
        return bad
