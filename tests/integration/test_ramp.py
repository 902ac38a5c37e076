"""POST ramp: the dial rises on schedule, each step audited; it survives a
restart without a burst of missed steps; a rollback or a manual dial ends
it; bad input changes nothing."""

import re
import time

import pytest

from guardkit import GuardGateway, SwitchableCore, wait_for


@pytest.fixture
def core():
    c = SwitchableCore()
    yield c
    c.close()


@pytest.fixture
def gw(core):
    g = GuardGateway("ramp", None, core)
    yield g
    g.destroy()


def ramp(gw, to, step, every, reason="ramp up", rule=None, key="ops"):
    body = {"to": to, "step": step, "every": every, "reason": reason}
    if rule:
        body["rule"] = rule
    return gw.admin("POST", "ramp", body, key=key)


def percent(gw, rule="default"):
    return [r for r in gw.status()["rules"] if r["id"] == rule][0]["percent"]


def test_ramp_steps_on_time(gw):
    gw.dial(5, reason="start")
    t0 = time.time()
    s, _, out = ramp(gw, 20, 5, "1s")
    assert s == 200, out
    r = out["rules"][0]["ramp"]
    assert r["to"] == 20 and r["step"] == 5 and r["every"] == 1
    assert int(t0) + 1 <= r["next_at"] <= int(t0) + 2
    assert gw.history(1)[0]["action"] == "ramp"

    seen = []
    def reached(p):
        def pred():
            cur = percent(gw)
            if not seen or seen[-1][1] != cur:
                seen.append((time.time() - t0, cur))
            return cur == p
        return pred

    for p in (10, 15, 20):
        assert wait_for(reached(p), 3) is not None, seen
    # one step a second, none early (the tick runs once a second)
    times = dict((p, t) for t, p in seen)
    assert 0.5 <= times[10] <= 2.6, seen
    assert 0.5 <= times[15] - times[10] <= 2.2, seen
    assert 0.5 <= times[20] - times[15] <= 2.2, seen

    st = gw.status()
    assert st["rules"][0].get("ramp") is None and st["state"] == "active"
    time.sleep(1.2)
    assert percent(gw) == 20                       # it stops at "to"

    hist = gw.history(4)
    steps = [h for h in hist if h["action"] == "dial"]
    assert len(steps) == 3
    for h in steps:
        assert h["key_id"] == "ramp" and h["result"] == "accepted"
        assert h["reason"].startswith("ramp:"), h["reason"]
    assert [h["to"]["percent"] for h in reversed(steps)] == [10, 15, 20]


def test_ramp_last_step_stops_at_to(gw):
    gw.dial(10, reason="start")
    s, _, out = ramp(gw, 12, 5, "1s")
    assert s == 200
    assert wait_for(lambda: percent(gw) == 12, 3) is not None
    assert gw.status()["rules"][0].get("ramp") is None


def test_rollback_ends_the_ramp(gw):
    gw.dial(5, reason="start")
    assert ramp(gw, 50, 5, "1s")[0] == 200
    s, _, out = gw.admin("POST", "rollback", {"reason": "stop"})
    assert s == 200 and out["rules"][0].get("ramp") is None
    time.sleep(2.2)
    st = gw.status()
    assert st["state"] == "rolled_back" and st["rules"][0]["percent"] == 0
    assert st["rules"][0].get("ramp") is None


def test_manual_dial_ends_the_ramp(gw):
    gw.dial(5, reason="start")
    assert ramp(gw, 50, 5, "1s")[0] == 200
    out = gw.dial(7, reason="by hand")
    assert out["rules"][0].get("ramp") is None
    time.sleep(2.2)
    assert percent(gw) == 7


def test_a_dial_of_another_rule_keeps_the_ramp(gw):
    gw.dial(5, reason="start")
    assert ramp(gw, 50, 5, "10m")[0] == 200
    gw.dial(30, rule="pilot", stores=["S1"], reason="pilot")
    rules = {r["id"]: r for r in gw.status()["rules"]}
    assert rules["default"]["ramp"]["to"] == 50
    assert rules["pilot"].get("ramp") is None


def test_ramp_survives_a_restart_without_a_burst(gw):
    gw.dial(10, reason="start")
    assert ramp(gw, 60, 10, "2s")[0] == 200
    with open(gw.state_file) as f:
        assert "\nramp default 6000 1000 2 " in f.read()
    gw.nginx.stop()
    time.sleep(3)                  # a step missed while down
    t0 = time.time()
    gw.nginx.start(gw.port)
    st = gw.status()
    r = st["rules"][0]
    assert r["percent"] == 10, st          # no burst of missed steps
    assert r["ramp"]["to"] == 60
    assert int(t0) + 1 <= r["ramp"]["next_at"] <= int(t0) + 3
    assert wait_for(lambda: percent(gw) == 20, 4) is not None
    time.sleep(0.5)
    assert percent(gw) == 20
    assert "a ramp resumes" in gw.nginx.log_text()


def test_ramp_survives_a_reload(gw):
    gw.dial(10, reason="start")
    assert ramp(gw, 30, 10, "1s")[0] == 200
    gw.nginx.reload()
    assert wait_for(lambda: percent(gw) == 30, 5) is not None


BAD_RAMPS = [
    ({"to": 5, "step": 5, "every": "1s", "reason": "x"}, 400,
     "invalid_request"),                                 # at the dial
    ({"to": 4, "step": 5, "every": "1s", "reason": "x"}, 400,
     "invalid_request"),                                 # below it
    ({"to": 50, "step": 0, "every": "1s", "reason": "x"}, 400,
     "invalid_request"),
    ({"to": 50, "step": -5, "every": "1s", "reason": "x"}, 400,
     "invalid_percent"),
    ({"to": 50, "step": 5, "every": "soon", "reason": "x"}, 400,
     "invalid_request"),
    ({"to": 50, "step": 5, "every": "0s", "reason": "x"}, 400,
     "invalid_request"),
    ({"to": 50, "step": 5, "every": 10, "reason": "x"}, 400,
     "invalid_request"),
    ({"to": 150, "step": 5, "every": "1s", "reason": "x"}, 400,
     "invalid_percent"),
    ({"to": 50, "step": 5, "every": "1s"}, 400, "invalid_request"),
    ({"to": 50, "step": 5, "reason": "x"}, 400, "invalid_request"),
    ({"to": 50, "step": 5, "every": "1s", "reason": "x", "speed": 2}, 400,
     "invalid_request"),
    ({"to": 50, "step": 5, "every": "1s", "reason": "x", "rule": "nosuch"},
     404, "unknown_rule"),
    ('{"to": 50', 400, "malformed_json"),
]


@pytest.mark.parametrize("body,status,code", BAD_RAMPS)
def test_bad_ramp_changes_nothing(gw, body, status, code):
    gw.dial(5, reason="start")
    before = gw.status()
    with open(gw.state_file) as f:
        state_before = f.read()
    s, _, out = gw.admin("POST", "ramp", body)
    assert s == status and out["error"]["code"] == code, out
    after = gw.status()
    assert after["version"] == before["version"]
    assert after["rules"][0].get("ramp") is None
    with open(gw.state_file) as f:
        assert f.read() == state_before


def test_viewer_may_not_ramp(gw):
    s, _, out = ramp(gw, 50, 5, "1s", key="viewer")
    assert s == 403


def test_guard_trip_ends_the_ramp(core):
    gw = GuardGateway("ramp-guard",
                      "error_rate=5% window=3s min_requests=30", core)
    try:
        from guardkit import Load
        gw.dial(50, reason="start")
        # a ramp still far from its end when the guard trips (each step
        # starts the window afresh, so steps come slower than the window)
        assert ramp(gw, 100, 1, "2s")[0] == 200
        core.fail_every = 2
        load = Load(gw.port)
        try:
            assert wait_for(lambda: gw.status()["state"] == "rolled_back",
                            15) is not None
        finally:
            load.stop()
        time.sleep(1.5)
        st = gw.status()
        assert st["rules"][0]["percent"] == 0
        assert st["rules"][0].get("ramp") is None
    finally:
        gw.destroy()


def test_cutoverctl_ramp(gw):
    gw.dial(5, reason="start")
    rc, out = gw.ctl("ramp", "25", "--step", "5", "--every", "10m",
                     "--reason", "overnight")
    assert rc == 0, out
    assert re.search(r"ramp: rule default to 25% by 5% every 600s, next "
                     r"step at \d{4}-\d\d-\d\dT", out), out
    st = gw.status()
    assert st["rules"][0]["ramp"]["to"] == 25
    rc, out = gw.ctl("status")
    assert rc == 0 and "ramp: rule default to 25%" in out, out
    rc, out = gw.ctl("guard")
    assert rc == 0 and "no cutover_guard on this zone" in out, out
    # bad input is refused before anything is sent
    for args in (["ramp", "25", "--step", "5", "--every", "soon"],
                 ["ramp", "25", "--every", "1m"],
                 ["ramp", "250", "--step", "5", "--every", "1m"]):
        rc, out = gw.ctl(*(args + ["--reason", "x"]))
        assert rc == 2, (args, out)
    rc, out = gw.ctl("ramp", "3", "--step", "5", "--every", "1m",
                     "--reason", "down")
    assert rc == 1 and "to must be above" in out, out
