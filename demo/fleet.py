"""make demo, fleet part: two gateways follow one dial kept in PostgreSQL.

Starts a throwaway PostgreSQL and two gateways in fleet mode ("fleet=...
gateway=gw1|gw2"); a dial on gw1 reaches gw2, a rollback on gw2 rolls both
back, and cutoverctl with both URLs shows whether they agree.
"""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import gateway  # noqa: E402
import harness  # noqa: E402


def say(msg=""):
    print(msg, flush=True)


class FleetGateway(gateway.Gateway):
    def __init__(self, name, conninfo):
        self.fleet = conninfo
        self.gw_name = name
        super().__init__(name=name, workers=2)

    def conf(self):
        return super().conf().replace(
            "state={dir}/state/erp.state;".format(dir=self.dir),
            'state={dir}/state/erp.state "fleet={fleet}" gateway={gw};'
            .format(dir=self.dir, fleet=self.fleet, gw=self.gw_name))


def follow(g, version, t0):
    while time.monotonic() - t0 < 3:
        st = g.status()
        if st["version"] == version:
            return st, time.monotonic() - t0
        time.sleep(0.005)
    raise SystemExit("%s did not follow" % g.gw_name)


def ctl(gws, *args):
    r = subprocess.run([harness.bin_path("cutoverctl"), "--url",
                        ",".join(g.admin_url for g in gws), "--key-file",
                        os.path.join(gws[0].dir, "ops.key")] + list(args),
                       capture_output=True, timeout=30)
    return r.returncode, r.stdout.decode() + r.stderr.decode()


def run(gws):
    gw1, gw2 = gws
    say("== fleet mode: two gateways, one dial in PostgreSQL")
    time.sleep(0.5)

    t0 = time.monotonic()
    out = gw1.dial(30, reason="demo: 30% through gw1")
    st, dt = follow(gw2, out["version"], t0)
    say("dial 30%% on gw1 (version %d): gw2 routes by it after %.0f ms "
        "(%s%% on the new core)" % (out["version"], dt * 1000,
                                    st["rules"][-1]["percent"]))
    rc, text = ctl(gws, "status")
    say("cutoverctl status, both URLs (exit %d):\n%s" % (rc, text.rstrip()))

    t0 = time.monotonic()
    s, _, body = gw2.admin("POST", "rollback",
                           {"reason": "demo: rollback on gw2"})
    assert s == 200, body
    st, dt = follow(gw1, body["version"], t0)
    say("rollback on gw2 (version %d): gw1 is %s after %.0f ms"
        % (body["version"], st["state"], dt * 1000))
    rc, text = ctl(gws, "-o", "json", "status")
    say("cutoverctl -o json status (exit %d, 3 = all rolled back):\n%s"
        % (rc, text.rstrip()))


def main():
    pg = harness.Pg("demo-fleet").start()
    gws = []
    try:
        conninfo = pg.createdb("fleet")
        for name in ("gw1", "gw2"):
            gws.append(FleetGateway(name, conninfo))
        run(gws)
    finally:
        for g in gws:
            g.destroy()
        pg.destroy()


if __name__ == "__main__":
    main()
