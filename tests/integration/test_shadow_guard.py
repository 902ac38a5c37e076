"""The mismatch guard of cutover-shadowd: past its threshold it rolls the
gateway back through the signed admin API with a key of the role guard;
when the gateway cannot be reached it tries again and counts it."""

import os
import re
import subprocess

import pytest

import harness
from guardkit import GuardGateway, SwitchableCore, wait_for
from test_shadow import SHADOWD, Backend, metrics, record, start_shadowd, \
    write_log


@pytest.fixture
def sides():
    new, legacy = Backend("new"), Backend("legacy")
    yield new, legacy
    new.stop()
    legacy.stop()


def guard_cfg(url, key, **over):
    cfg = {"mismatch": "1%", "window": "60s", "min_pairs": 20,
           "admin_url": url, "key_id": "sentry", "key_file": key}
    cfg.update(over)
    return cfg


def test_mismatch_rolls_the_gateway_back(tmpdir_w, sides):
    new, legacy = sides
    core = SwitchableCore()
    gw = GuardGateway("shadow-guard", None, core)
    proc = None
    try:
        gw.dial(30, reason="pilot")
        # served by new; legacy answers otherwise: every pair differs
        write_log(os.path.join(tmpdir_w, "erp.log"),
                  [record(i, "S%03d" % (i % 7), "new", seq=i)
                   for i in range(40)])
        proc = start_shadowd(tmpdir_w, new.url, legacy.url,
                             guard=guard_cfg(gw.admin_url,
                                             os.path.join(gw.dir,
                                                          "sentry.key")))
        assert wait_for(lambda: gw.status()["state"] == "rolled_back",
                        10) is not None
        entry = gw.history(1)[0]
        assert entry["action"] == "rollback" and entry["key_id"] == "sentry"
        assert re.match(r"^guard: mismatch 100% > 1% over 60s on rule "
                        r"default \((\d+) pairs\)$", entry["reason"]), entry
        assert int(re.search(r"\((\d+) pairs", entry["reason"]).group(1)) \
            >= 20
        assert wait_for(lambda: metrics(proc).get(
            "cutover_guard_rollbacks_total") == 1, 2) is not None
        m = metrics(proc)
        assert m['cutover_guard_trips_total{reason="mismatch"}'] == 1
        assert m["cutover_guard_rollback_pending"] == 0
    finally:
        if proc:
            proc.stop()
        gw.destroy()
        core.close()


def test_unreachable_gateway_is_retried_and_counted(tmpdir_w, sides):
    new, legacy = sides
    key = os.path.join(tmpdir_w, "sentry.key")
    with open(key, "w") as f:
        f.write("d4" * 32 + "\n")
    write_log(os.path.join(tmpdir_w, "erp.log"),
              [record(i, "S%03d" % (i % 7), "new", seq=i) for i in range(30)])
    url = "http://127.0.0.1:%d/cutover/" % harness.free_port()
    proc = start_shadowd(tmpdir_w, new.url, legacy.url,
                         guard=guard_cfg(url, key))
    try:
        assert wait_for(lambda: metrics(proc).get(
            "cutover_guard_rollback_failures_total", 0) >= 2, 8) is not None
        m = metrics(proc)
        assert m["cutover_guard_rollback_pending"] == 1
        assert m["cutover_guard_rollbacks_total"] == 0
        assert m['cutover_guard_trips_total{reason="mismatch"}'] == 1
    finally:
        proc.stop()
    with open(os.path.join(tmpdir_w, "shadowd.log")) as f:
        assert "trying again" in f.read()


@pytest.mark.parametrize("over,message", [
    ({"mismatch": "150%"}, "mismatch: want a percent"),
    ({"window": "0s"}, "window: want a duration"),
    ({"colour": "red"}, "unknown key \"colour\""),
    ({"key_file": "/nonexistent/key"}, "key_file \"/nonexistent/key\""),
    ({"admin_url": "ftp://x/"}, "admin_url"),
])
def test_bad_guard_config_is_refused(tmpdir_w, over, message):
    key = os.path.join(tmpdir_w, "k")
    with open(key, "w") as f:
        f.write("d4" * 32 + "\n")
    cfg = os.path.join(tmpdir_w, "c.json")
    import json
    with open(cfg, "w") as f:
        json.dump({"log": os.path.join(tmpdir_w, "erp.log"),
                   "checkpoint": os.path.join(tmpdir_w, "ck"),
                   "new": "http://127.0.0.1:1", "legacy": "http://127.0.0.1:1",
                   "outbox": os.path.join(tmpdir_w, "outbox"),
                   "guard": guard_cfg("http://127.0.0.1:1/cutover/", key,
                                      **over)}, f)
    r = subprocess.run([SHADOWD, "--config", cfg], capture_output=True)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr.decode(), r.stderr
