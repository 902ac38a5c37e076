"""Fleet mode: three gateways follow one dial kept in PostgreSQL.

One PostgreSQL cluster of its own (it is stopped and started here) and three
gateways on loopback, shared by the cases of this file, which run in order:
propagation, a race, the audit chain, PostgreSQL down, a restart, cutoverctl.
"""

import json
import os
import signal
import subprocess
import threading
import time

import pytest

import gateway
import harness


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

    def history(self):
        """The local audit trail's entries, oldest first."""
        with open(self.audit_file) as f:
            return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def fleet():
    pg = harness.Pg("fleetpg").start()
    conninfo = pg.createdb("fleet") + " connect_timeout=2"
    gws = []
    try:
        for name in ("gw1", "gw2", "gw3"):
            gws.append(FleetGateway(name, conninfo))
        wait_for(lambda: all(g.status()["fleet"]["connected"] for g in gws),
                 5, "every gateway connected")
        yield pg, gws
    finally:
        for g in gws:
            g.destroy()
        pg.destroy()


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError("timed out waiting for " + what)


def fleet_rows(pg, sql):
    out = pg.psql("fleet", sql)
    return [line.split("|") for line in out.splitlines() if line]


def changes(entries):
    """(time, action, to, reason) of the accepted changes of a trail."""
    return [(e["time"], e["action"], json.dumps(e["to"], sort_keys=True),
             e["reason"]) for e in entries
            if e["result"] == "accepted"
            and e["action"] in ("dial", "rollback")]


def test_propagation_within_one_second(fleet):
    pg, gws = fleet
    v0 = gws[0].status()["version"]
    t0 = time.monotonic()
    out = gws[0].dial(25, reason="fleet: 25% everywhere")
    assert out["version"] == v0 + 1

    seen = {}
    deadline = time.monotonic() + 3
    while len(seen) < 2 and time.monotonic() < deadline:
        for g in gws[1:]:
            if g.gw_name not in seen and g.status()["version"] == v0 + 1:
                seen[g.gw_name] = time.monotonic() - t0
        time.sleep(0.005)
    print("fleet propagation: %s" % ", ".join(
        "%s %.0f ms" % (k, v * 1000) for k, v in sorted(seen.items())))
    assert sorted(seen) == ["gw2", "gw3"], seen
    assert max(seen.values()) < 1.0, seen

    for g in gws:
        st = g.status()
        assert st["rules"][-1]["percent"] == 25
        assert st["fleet"]["version_seen"] == v0 + 1
        # the state file is the local copy
        with open(g.state_file) as f:
            assert ("\nversion %d\n" % (v0 + 1)) in f.read()
    # and traffic routes by it: some keys on the new core on gw3
    sides = gws[2].sides([{"X-Store-Id": "s%d" % i} for i in range(200)])
    assert 20 < sides.count("new") < 90, sides.count("new")
    assert pg.psql("fleet", "SELECT version FROM cutover.zones "
                   "WHERE zone = 'erp'") == str(v0 + 1)
    # every gateway reports what it applied
    wait_for(lambda: fleet_rows(pg, "SELECT gateway, version_applied FROM "
                                    "cutover.gateways ORDER BY gateway")
             == [["gw1", str(v0 + 1)], ["gw2", str(v0 + 1)],
                 ["gw3", str(v0 + 1)]], 2, "the gateways' rows")
    assert pg.psql("fleet", "SELECT version FROM cutover.schema_version") \
        == "1"
    m = harness.http("GET", "http://127.0.0.1:%d/metrics" % gws[1].port)[2]
    assert 'cutover_fleet_connected{zone="erp",gateway="gw2"} 1' \
        in m.decode()
    assert 'cutover_fleet_applies_total{zone="erp"} 1' in m.decode()


def test_racing_dials_one_wins(fleet):
    pg, gws = fleet
    v = gws[0].status()["version"]
    results = {}

    def dial(g, pct):
        results[g.gw_name] = g.admin("POST", "dial", {
            "percent": pct, "expect_version": v,
            "reason": "race from " + g.gw_name})

    threads = [threading.Thread(target=dial, args=(gws[0], 30)),
               threading.Thread(target=dial, args=(gws[1], 40))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    codes = sorted(r[0] for r in results.values())
    assert codes == [200, 409], results
    winner = [k for k, r in results.items() if r[0] == 200][0]
    loser = [k for k, r in results.items() if r[0] == 409][0]
    assert results[loser][2]["error"]["code"] == "version_conflict", \
        results[loser]
    pct = 30 if winner == "gw1" else 40
    wait_for(lambda: all(g.status()["version"] == v + 1 for g in gws), 2,
             "the winner everywhere")
    for g in gws:
        assert g.status()["rules"][-1]["percent"] == pct


def test_ramp_refused_on_a_fleet_zone(fleet):
    """A ramp is kept per gateway; on a fleet zone the fleet's next apply
    would undo its steps, so it is refused and nothing changes."""
    pg, gws = fleet
    v = gws[0].status()["version"]
    s, _, out = gws[0].admin("POST", "ramp", {
        "rule": "default", "to": 50, "step": 5, "every": "1s",
        "reason": "ramp on a fleet"})
    assert s == 409 and out["error"]["code"] == "fleet_zone", (s, out)
    assert all(g.status()["version"] == v for g in gws)


def test_same_audit_chain_everywhere(fleet):
    pg, gws = fleet
    rows = fleet_rows(pg, "SELECT seq, hash, line, time, action, to_json, "
                          "reason FROM cutover.audit WHERE zone = 'erp' "
                          "ORDER BY seq")
    assert len(rows) >= 2
    prev = "0" * 64
    for i, (seq, h, line, _, _, _, _) in enumerate(rows):
        e = json.loads(line)
        assert e["seq"] == i + 1 == int(seq)
        assert e["prev"] == prev, "the fleet's chain is broken at %s" % seq
        assert e["hash"] == h
        prev = h
    fleet_changes = changes([json.loads(r[2]) for r in rows])
    assert len(fleet_changes) == len(rows)
    for g in gws:
        assert changes(g.history()) == fleet_changes, g.gw_name


def test_database_down(fleet):
    pg, gws = fleet
    before = gws[0].status()
    assert before["state"] == "active"
    pg.stop()
    try:
        wait_for(lambda: not any(g.status()["fleet"]["connected"]
                                 for g in gws), 5, "every gateway to notice")
        # traffic unharmed, on the last state
        sides = gws[0].sides([{"X-Store-Id": "s%d" % i} for i in range(100)])
        assert "new" in sides and "legacy" in sides
        # no dial without the fleet
        s, _, out = gws[1].admin("POST", "dial", {"percent": 80,
                                                  "reason": "no fleet"})
        assert s == 503, (s, out)
        assert out["error"]["code"] == "fleet_unavailable", out
        # a rollback applies here at once
        t0 = time.monotonic()
        s, _, out = gws[2].admin("POST", "rollback",
                                 {"reason": "fleet down, roll back"})
        assert s == 200, out
        assert time.monotonic() - t0 < 1.0
        st = gws[2].status()
        assert st["state"] == "rolled_back"
        assert st["fleet"]["rollback_pending"] is True
        sides = gws[2].sides([{"X-Store-Id": "s%d" % i} for i in range(50)])
        assert set(sides) == {"legacy"}
        # the others cannot know yet
        assert gws[0].status()["state"] == "active"
    finally:
        pg.start()

    wait_for(lambda: all(g.status()["state"] == "rolled_back" for g in gws),
             6, "the rollback to reach the fleet")
    wait_for(lambda: len({g.status()["version"] for g in gws}) == 1, 2,
             "one version")
    rows = fleet_rows(pg, "SELECT gateway, reason FROM cutover.audit "
                          "WHERE action = 'rollback'")
    assert rows == [["gw3", "fleet down, roll back"]], rows
    for g in gws:
        rb = [e for e in g.history() if e["action"] == "rollback"
              and e["result"] == "accepted"]
        assert len(rb) == 1, (g.gw_name, rb)
        assert g.status()["fleet"]["rollback_pending"] is False
    assert "cutover_fleet_writebacks_total{zone=\"erp\"} 1" in \
        harness.http("GET", "http://127.0.0.1:%d/metrics" % gws[2].port)[2] \
        .decode()


def test_pending_rollback_survives_restart(fleet):
    """A rollback made without the fleet, then a restart of that gateway
    before the database is back: the rollback is not forgotten."""
    pg, gws = fleet
    out = gws[0].dial(15, reason="active before the outage")
    wait_for(lambda: all(g.status()["version"] == out["version"]
                         for g in gws), 2, "one version")
    pg.stop()
    try:
        wait_for(lambda: not gws[2].status()["fleet"]["connected"], 5,
                 "gw3 to notice")
        s, _, body = gws[2].admin("POST", "rollback",
                                  {"reason": "outage, then a restart"})
        assert s == 200, body
        gws[2].nginx.stop()
    finally:
        pg.start()
    wait_for(lambda: all(g.status()["fleet"]["connected"] for g in gws[:2]),
             5, "gw1 and gw2 back")
    assert gws[0].status()["state"] == "active"
    gws[2].nginx.start(gws[2].port)
    wait_for(lambda: all(g.status()["state"] == "rolled_back" for g in gws),
             5, "the rollback to reach the fleet after the restart")
    rows = fleet_rows(pg, "SELECT gateway FROM cutover.audit WHERE reason = "
                          "'outage, then a restart'")
    assert rows == [["gw3"]], rows
    assert not os.path.exists(gws[2].state_file + ".fleet-pending")


def test_listener_taken_over(fleet):
    """The worker that listens exits: another worker of that gateway takes
    its place, and changes still arrive."""
    pg, gws = fleet
    g = gws[1]

    def listener():
        lines = [l for l in g.nginx.log_text().splitlines()
                 if "this worker listens to the fleet" in l]
        return int(lines[-1].split("] ")[1].split("#")[0]) if lines else 0

    pid = listener()
    assert pid in g.nginx.worker_pids()
    os.kill(pid, signal.SIGQUIT)
    wait_for(lambda: listener() not in (0, pid), 5, "another listener")
    out = gws[0].dial(35, reason="after the takeover")
    wait_for(lambda: g.status()["version"] == out["version"], 1.5,
             "gw2 to follow")

    # a reload: the new workers take the listener over
    g.nginx.reload()
    out = gws[0].dial(36, reason="after a reload")
    wait_for(lambda: g.status()["version"] == out["version"], 1.5,
             "gw2 to follow after the reload")


def test_restarted_gateway_catches_up(fleet):
    pg, gws = fleet
    gws[2].nginx.stop()
    out = gws[0].dial(10, reason="while gw3 was away")
    t0 = time.monotonic()
    gws[2].nginx.start(gws[2].port)
    wait_for(lambda: gws[2].status()["version"] == out["version"], 3,
             "gw3 to catch up")
    print("fleet catch-up from nginx start: %.0f ms"
          % ((time.monotonic() - t0) * 1000))
    st = gws[2].status()
    assert st["state"] == "active" and st["rules"][-1]["percent"] == 10
    assert changes(gws[2].history())[-1][3] == "while gw3 was away"
    # the state file holds it too
    with open(gws[2].state_file) as f:
        assert ("\nversion %d\n" % out["version"]) in f.read()


def test_fleet_parameters_checked(tmpdir_w):
    conf = gateway.GATEWAY.format(new=1, legacy=2, port=harness.free_port(),
                                  dir=tmpdir_w)
    for params, msg in (('"fleet=dbname=x"', "fleet= and gateway= go "
                                             "together"),
                        ("gateway=gw1", "fleet= and gateway= go together"),
                        ('"fleet=dbname=x" gateway=a/b',
                         'invalid gateway name "a/b"')):
        ngx = harness.Nginx(conf.replace(
            "state=%s/state/erp.state;" % tmpdir_w,
            "state=%s/state/erp.state %s;" % (tmpdir_w, params)),
            directory=tmpdir_w)
        ok, out = ngx.test_config()
        assert not ok and msg in out, out


def ctl(gws, *args):
    urls = ",".join(g.admin_url for g in gws)
    r = subprocess.run([harness.bin_path("cutoverctl"), "--url", urls,
                        "--key-file", os.path.join(gws[0].dir, "ops.key")]
                       + list(args), capture_output=True, timeout=30)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def test_cutoverctl_three_urls(fleet):
    pg, gws = fleet
    wait_for(lambda: len({g.status()["version"] for g in gws}) == 1, 2,
             "one version")
    v = gws[0].status()["version"]
    rc, out, err = ctl(gws, "status")
    assert rc == 0, (out, err)
    assert len(out.strip().splitlines()) >= 3
    for g in gws:
        assert g.gw_name in out

    rc, out = gws[0].ctl("status")
    assert rc == 0, out
    assert "fleet: gateway gw1, connected, version seen %d" % v in out, out

    rc, out, err = ctl(gws, "-o", "json", "status")
    assert rc == 0, (out, err)
    rows = json.loads(out)
    assert [r["gateway"] for r in rows] == ["gw1", "gw2", "gw3"]
    assert {(r["state"], r["version"]) for r in rows} == {("active", v)}
    assert rows[0]["url"] == gws[0].admin_url

    # one gateway away: exit 1
    gws[1].nginx.stop()
    try:
        rc, out, err = ctl(gws, "status")
        assert rc == 1, (out, err)
    finally:
        gws[1].nginx.start(gws[1].port)
    wait_for(lambda: gws[1].status()["fleet"]["connected"], 3, "gw2 back")

    rc, out, err = ctl(gws, "rollback", "--reason", "ctl rolls back the fleet")
    assert rc == 0, (out, err)
    wait_for(lambda: all(g.status()["state"] == "rolled_back" for g in gws),
             2, "all rolled back")
    wait_for(lambda: ctl(gws, "status")[0] == 3, 2, "status exit 3")

    # gateways that disagree: exit 4 (one rolled back while the fleet's
    # database is away), then one state again when it is back
    gws[0].dial(20, reason="active again")
    wait_for(lambda: ctl(gws, "status")[0] == 0, 2, "status exit 0")
    pg.stop()
    try:
        wait_for(lambda: not gws[1].status()["fleet"]["connected"], 5,
                 "gw2 to notice")
        s, _, out = gws[1].admin("POST", "rollback", {"reason": "gw2 alone"})
        assert s == 200, out
        rc, out, err = ctl(gws, "-o", "json", "status")
        assert rc == 4, (out, err)
        assert [r["state"] for r in json.loads(out)] == \
            ["active", "rolled_back", "active"]
    finally:
        pg.start()
    wait_for(lambda: ctl(gws, "status")[0] == 3, 6, "one state again")
