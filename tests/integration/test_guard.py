"""cutover_guard: the gateway rolls back by itself on errors and latency
of the new side, within about a second, and only then; action=alert; the
role guard; bad thresholds."""

import http.client
import os
import re
import time

import pytest

import harness
from guardkit import GuardGateway, Load, SwitchableCore, wait_for

GUARD = "error_rate=5% latency_p99=300ms window=3s min_requests=50"
REASON = re.compile(r"^guard: error_rate (\d+(\.\d)?)% > 5% over 3s on rule "
                    r"default \((\d+) requests\)$")


@pytest.fixture
def core():
    c = SwitchableCore()
    yield c
    c.close()


@pytest.fixture
def gw(core):
    g = GuardGateway("guard", GUARD, core)
    yield g
    g.destroy()


def rolled_back(gw):
    return gw.status()["state"] == "rolled_back"


def test_trips_on_errors_within_a_second_and_not_again(gw, core):
    gw.dial(100, reason="all to new")
    load = Load(gw.port)
    try:
        time.sleep(1.5)
        st = gw.status()
        assert st["state"] == "active"
        g = st["guard"]["rules"][0]
        assert g["id"] == "default" and g["requests"] >= 50, st["guard"]
        assert g["error_rate"] == 0

        core.fail_every = 3                 # a third of the answers: 500
        took = wait_for(lambda: rolled_back(gw), 4)
        assert took is not None, gw.status()["guard"]
        # the rate crosses 5% within a few hundred requests; the check runs
        # each second: a trip within ~1 s (plus the thread-pool write)
        assert took < 2.0, took
    finally:
        statuses = load.stop()
    assert statuses.get(500, 0) > 0

    hist = gw.history(5)
    trip = hist[0]
    assert trip["action"] == "rollback" and trip["key_id"] == "guard"
    assert trip["result"] == "accepted"
    m = REASON.match(trip["reason"])
    assert m, trip["reason"]
    assert float(m.group(1)) > 5 and int(m.group(3)) >= 50
    assert trip["to"]["state"] == "rolled_back"

    st = gw.status()
    last = st["guard"]["last_trip"]
    assert last["rule"] == "default" and last["kind"] == "error_rate"
    assert last["action"] == "rollback" and last["persisted"] is True
    assert last["reason"] == trip["reason"]
    assert gw.metric("cutover_guard_trips_total", rule="default",
                     reason="error_rate") == 1
    assert gw.metric("cutover_upstream_errors_total", rule="default",
                     side="new") > 0
    assert gw.metric("cutover_upstream_response_seconds_count",
                     rule="default", side="new") > 50
    assert "rolled back by the guard" in gw.nginx.log_text()
    assert re.search(r"\[warn\].*guard: error_rate", gw.nginx.log_text())

    # dial up again at once with the new core healthy: the window starts
    # afresh, so the errors from before the rollback do not trip it again
    core.healthy()
    gw.dial(100, reason="fixed")
    load = Load(gw.port)
    try:
        time.sleep(2.5)
    finally:
        load.stop()
    assert gw.status()["state"] == "active"
    assert gw.metric("cutover_guard_trips_total", rule="default",
                     reason="error_rate") == 1
    assert gw.history(1)[0]["reason"] == "fixed"


def test_trips_on_latency(gw, core):
    gw.dial(100, reason="all to new")
    core.slow_ms = 450
    load = Load(gw.port, threads=16)
    try:
        took = wait_for(lambda: rolled_back(gw), 8)
    finally:
        load.stop()
    assert took is not None, gw.status()["guard"]
    trip = gw.history(1)[0]
    assert trip["key_id"] == "guard"
    m = re.match(r"^guard: latency p99 (\d+)ms > 300ms over 3s on rule "
                 r"default \((\d+) requests\)$", trip["reason"])
    assert m, trip["reason"]
    # every answer took at least 450 ms (the histogram reads within 5 %;
    # a loaded machine may add queueing on top)
    assert 450 * 0.95 <= int(m.group(1)) <= 5000, trip["reason"]
    assert gw.metric("cutover_guard_trips_total", rule="default",
                     reason="latency") == 1


def test_no_trip_at_one_percent(gw, core):
    gw.dial(100, reason="all to new")
    core.fail_every = 100
    load = Load(gw.port)
    try:
        time.sleep(4)
        st = gw.status()
    finally:
        statuses = load.stop()
    assert statuses.get(500, 0) >= 5, statuses
    assert st["state"] == "active"
    g = st["guard"]["rules"][0]
    assert g["requests"] >= 100 and 0.5 <= g["error_rate"] <= 1.5, g
    assert st["guard"]["last_trip"] is None
    assert gw.metric("cutover_guard_trips_total", rule="default",
                     reason="error_rate") == 0


def test_alert_changes_nothing(core):
    gw = GuardGateway("guard-alert", GUARD + " action=alert", core)
    try:
        gw.dial(100, reason="all to new")
        version = gw.status()["version"]
        core.fail_every = 2
        load = Load(gw.port)
        try:
            took = wait_for(lambda: any(h["action"] == "guard_alert"
                                        for h in gw.history(3)), 4)
            time.sleep(2)               # still failing, within the window
        finally:
            load.stop()
        assert took is not None and took < 2.5
        # one alert per window, not one a second
        assert [h["action"] for h in gw.history(10)].count(
            "guard_alert") == 1
        st = gw.status()
        assert st["state"] == "active" and st["version"] == version
        assert st["rules"][0]["percent"] == 100
        assert st["guard"]["last_trip"]["action"] == "alert"
        entry = [h for h in gw.history(5) if h["action"] == "guard_alert"][0]
        assert entry["key_id"] == "guard" and entry["result"] == "recorded"
        assert REASON.match(entry["reason"]), entry["reason"]
        assert gw.metric("cutover_guard_trips_total", rule="default",
                         reason="error_rate") >= 1
    finally:
        gw.destroy()


def test_guard_role_may_roll_back_and_not_dial(core):
    gw = GuardGateway("guard-role", None, core)
    try:
        gw.dial(20, reason="pilot")
        s, _, out = gw.admin("POST", "dial", {"percent": 50, "reason": "x"},
                             key="sentry")
        assert s == 403 and out["error"]["code"] == "forbidden"
        assert "guard role" not in out["error"]["message"]
        s, _, out = gw.admin("POST", "ramp", {"to": 50, "step": 5,
                                              "every": "1m", "reason": "x"},
                             key="sentry")
        assert s == 403
        s, _, out = gw.admin("GET", "status", key="sentry")
        assert s == 200 and out["rules"][0]["percent"] == 20
        assert out["guard"] is None
        s, _, out = gw.admin("POST", "rollback", {"reason": "guard: by hand"},
                             key="sentry")
        assert s == 200 and out["state"] == "rolled_back"
        assert gw.history(1)[0]["key_id"] == "sentry"
        # a viewer may not roll back
        s, _, out = gw.admin("POST", "rollback", {"reason": "x"},
                             key="viewer")
        assert s == 403 and "guard role" in out["error"]["message"]
    finally:
        gw.destroy()


BAD_GUARDS = [
    ("error_rate=150% window=30s", "error_rate: want a percent"),
    ("error_rate=0% window=30s", "error_rate: want a percent"),
    ("error_rate=2% window=0s", "window: want a duration"),
    ("error_rate=2% window=1h", "window: want a duration"),
    ("error_rate=2% latency_p99=fast", "latency_p99: want a time"),
    ("error_rate=2% colour=red", "unknown parameter \"colour\""),
    ("error_rate=2% action=panic", "action: want rollback or alert"),
    ("error_rate=2% min_requests=lots", "min_requests: want a whole"),
    ("window=30s", "no threshold"),
]


@pytest.mark.parametrize("params,message", BAD_GUARDS)
def test_bad_thresholds_fail_nginx_t(params, message):
    conf = """
    cutover_zone erp size=1m state={dir}/erp.state;
    cutover_guard erp %s;
    server { listen 127.0.0.1:1; location / { return 204; } }
    """ % params
    ng = harness.Nginx(conf, name="guard-bad")
    try:
        ok, out = ng.test_config()
        assert not ok, out
        assert "cutover_guard: " + message in out, out
        assert re.search(r"in %s:\d+" % re.escape(ng.conf), out), out
    finally:
        ng.destroy()


def test_guard_before_its_zone_fails_nginx_t():
    conf = """
    cutover_guard erp error_rate=2%;
    cutover_zone erp size=1m state={dir}/erp.state;
    server { listen 127.0.0.1:1; location / { return 204; } }
    """
    ng = harness.Nginx(conf, name="guard-order")
    try:
        ok, out = ng.test_config()
        assert not ok and "no cutover_zone \"erp\" before" in out, out
    finally:
        ng.destroy()


def test_cutoverctl_guard(gw, core):
    gw.dial(100, reason="all to new")
    load = Load(gw.port)
    try:
        time.sleep(1.2)
        rc, out = gw.ctl("guard")
        assert rc == 0, out
        assert "guard: window 3s, action rollback" in out
        assert re.search(r"^default\s+\d+\s+0\.00\s+[\d.]+$", out, re.M), out
        assert "last trip: none" in out
        core.fail_every = 2
        assert wait_for(lambda: rolled_back(gw), 4) is not None
    finally:
        load.stop()
    rc, out = gw.ctl("guard")
    assert re.search(r"last trip: \S+ \(rollback\) guard: error_rate", out), \
        out
    rc, out = gw.ctl("status")
    assert rc == 3 and "last trip:" in out, out


def test_trip_when_the_state_cannot_be_written(gw, core):
    """The rollback takes effect in memory at once and says so."""
    gw.dial(100, reason="all to new")
    state_dir = os.path.dirname(gw.state_file)
    os.chmod(state_dir, 0o555)          # workers (not root) cannot write
    try:
        core.fail_every = 2
        load = Load(gw.port)
        try:
            assert wait_for(lambda: rolled_back(gw), 4) is not None
            # the new side serves nothing from then on
            time.sleep(0.3)
            before = gw.metric("cutover_requests_total", side="new",
                               rule="default")
            time.sleep(0.5)
            assert gw.metric("cutover_requests_total", side="new",
                             rule="default") == before
        finally:
            load.stop()
        st = gw.status()
        assert st["guard"]["last_trip"]["persisted"] is False
        assert gw.history(1)[0]["key_id"] == "guard"     # the trail is
        assert re.search(r"rolled back by the guard, version \d+ \(in memory "
                         r"only", gw.nginx.log_text())
        assert gw.metric("cutover_state_persist_failures_total") >= 1
    finally:
        os.chmod(state_dir, 0o777)
    with open(gw.state_file) as f:
        assert "state active" in f.read()    # not durable, as it said


def send(gw, n):
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        for i in range(n):
            conn.request("GET", "/api/v1/items",
                         headers={"X-Store-Id": "S%d" % i})
            conn.getresponse().read()
    finally:
        conn.close()


def test_dial_change_starts_the_window_afresh(gw, core):
    """Errors counted before a dial change do not count after it: 30
    failing answers (under min_requests=50), a dial, then 60 good ones."""
    gw.dial(100, reason="all to new")
    time.sleep(1.1)                     # the dial's own restart is past
    core.fail_every = 1
    send(gw, 30)
    gw.dial(90, reason="a bit less")
    time.sleep(1.1)                     # the check sees the new dial
    core.healthy()
    send(gw, 80)
    time.sleep(1.1)                     # and the next check the window
    st = gw.status()
    assert st["state"] == "active", st["guard"]
    assert st["guard"]["last_trip"] is None
    assert st["guard"]["rules"][0]["error_rate"] == 0
