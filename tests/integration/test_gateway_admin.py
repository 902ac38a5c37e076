"""The signed admin API: every status code of SPEC.md, state untouched by
bad input, the audit trail and its verifier, cutoverctl, bad directives."""

import json
import os
import re
import secrets
import subprocess
import threading
import time

import pytest

import harness
from gateway import Gateway


@pytest.fixture(scope="module")
def gw():
    g = Gateway("admin")
    yield g
    g.destroy()


def state_of(gw):
    st = gw.status()
    return st["version"], st["state"], st["rules"]


def strip_counts(rules):
    return [{k: v for k, v in r.items() if k != "requests"} for r in rules]


BAD_DIALS = [
    ({"percent": -1, "reason": "x"}, "invalid_percent"),
    ({"percent": 100.001, "reason": "x"}, "invalid_percent"),
    ({"percent": "abc", "reason": "x"}, "invalid_percent"),
    ('{"percent": NaN, "reason": "x"}', "malformed_json"),
    ('{"percent": 1e999, "reason": "x"}', "invalid_percent"),
    ({"percent": 10}, "invalid_request"),
    ({"percent": 10, "reason": "   "}, "invalid_request"),
    ({"percent": 10, "reason": "x", "colour": "red"}, "invalid_request"),
    ({"percent": 10, "reason": 5}, "invalid_request"),
    ({"percent": 10, "reason": "x", "stores": "S001", "rule": "p"},
     "invalid_request"),
    ({"percent": 10, "reason": "x", "stores": ["S 1"], "rule": "p"},
     "invalid_request"),
    ({"percent": 10, "reason": "x", "rule": "nosuch"}, "unknown_rule"),
    ({"percent": 10, "reason": "x", "rule": "default",
      "stores": ["S1"]}, "invalid_request"),
    ('{"percent": 10, "reason": "x", "percent": 20}', "invalid_request"),
    ('{"percent": 10, "reason": "x"', "malformed_json"),
    ('[10]', "invalid_request"),
    ('', "malformed_json"),
    ('{"percent": 10, "reason": "x"} trailing', "malformed_json"),
    ({"percent": 10, "reason": "x", "expect_version": -3},
     "invalid_request"),
]


@pytest.mark.parametrize("body,code", BAD_DIALS)
def test_bad_dial_is_400_and_changes_nothing(gw, body, code):
    before = state_of(gw)
    s, h, out = gw.admin("POST", "dial", body)
    assert s == 400, out
    assert h["content-type"] == "application/json"
    assert out["error"]["code"] == code, out
    assert out["error"]["message"]
    after = state_of(gw)
    assert (after[0], after[1], strip_counts(after[2])) == \
        (before[0], before[1], strip_counts(before[2]))


def test_body_over_64k_is_413(gw):
    before = gw.status()["version"]
    body = json.dumps({"percent": 10, "reason": "x" * 70000})
    s, _, out = gw.admin("POST", "dial", body)
    assert s == 413 and out["error"]["code"] == "body_too_large"
    assert gw.status()["version"] == before


def test_get_to_dial_is_405(gw):
    before = gw.status()["version"]
    s, h, out = gw.admin("GET", "dial")
    assert s == 405 and h["allow"] == "POST"
    assert out["error"]["code"] == "method_not_allowed"
    s, h, out = gw.admin("POST", "status", {})
    assert s == 405
    assert gw.status()["version"] == before


def test_unsigned_metrics_location(gw):
    s, h, body = harness.http("GET", "http://127.0.0.1:%d/metrics" % gw.port)
    assert s == 200 and h["content-type"].startswith("text/plain")
    assert 'cutover_state_version{zone="erp"}' in body.decode()
    s, _, _ = harness.http("POST", "http://127.0.0.1:%d/metrics" % gw.port,
                           "x")
    assert s == 405


def test_unknown_call_is_404(gw):
    s, _, out = gw.admin("GET", "nope", key="viewer")
    assert s == 404 and out["error"]["code"] == "not_found"


def test_401_cases(gw):
    before = gw.status()["version"]
    body = json.dumps({"percent": 5, "reason": "x"})
    url = "http://127.0.0.1:%d/cutover/dial" % gw.port

    # missing
    s, h, out = harness.http("POST", url, body)
    assert s == 401 and h["www-authenticate"] == "CUTOVER-HMAC-SHA256"
    # malformed (the message outlives the parse that made it: the answer
    # goes out after the refusal's audit entry is written)
    s, _, out = harness.http("POST", url, body,
                             {"Authorization": "Basic b3BzOm9wcw=="})
    assert s == 401
    assert json.loads(out)["error"]["message"] == \
        "Authorization is not CUTOVER-HMAC-SHA256"
    # unknown key
    hdr = harness.sign_headers("POST", "/cutover/dial", body, "mallory",
                               "a1" * 32)
    assert harness.http("POST", url, body, hdr)[0] == 401
    # wrong secret
    hdr = harness.sign_headers("POST", "/cutover/dial", body, "ops",
                               "ff" * 32)
    assert harness.http("POST", url, body, hdr)[0] == 401
    # body changed after signing
    hdr = harness.sign_headers("POST", "/cutover/dial", body, "ops",
                               "a1" * 32)
    assert harness.http("POST", url, body.replace("5", "6"), hdr)[0] == 401
    # stale and future timestamps
    for skew in (-301, 301):
        s, _, out = gw.admin("POST", "dial", body, ts=int(time.time()) + skew)
        assert s == 401 and "300" in out["error"]["message"]
    # replayed nonce, across both workers
    nonce = secrets.token_hex(16)
    assert gw.admin("GET", "status", key="viewer", nonce=nonce)[0] == 200
    for _ in range(4):
        s, _, out = gw.admin("GET", "status", key="viewer", nonce=nonce)
        assert s == 401 and "nonce" in out["error"]["message"]

    assert gw.status()["version"] == before
    s, _, text = gw.admin("GET", "metrics", key="viewer")
    for reason in ("missing", "bad_format", "unknown_key", "bad_signature",
                   "stale", "replay"):
        m = re.search(r'cutover_auth_failures_total\{zone="erp",reason="%s"\}'
                      r' (\d+)' % reason, text)
        assert m and int(m.group(1)) >= 1, reason


def test_403_viewer_cannot_dial(gw):
    before = gw.status()["version"]
    s, _, out = gw.admin("POST", "dial", {"percent": 5, "reason": "x"},
                         key="viewer")
    assert s == 403 and out["error"]["code"] == "forbidden"
    s, _, out = gw.admin("POST", "rollback", {"reason": "x"}, key="viewer")
    assert s == 403
    assert gw.status()["version"] == before


def test_409_expect_version(gw):
    v = gw.status()["version"]
    s, _, out = gw.admin("POST", "dial", {"percent": 7, "reason": "x",
                                          "expect_version": v + 5})
    assert s == 409 and out["error"]["code"] == "version_conflict"
    assert gw.status()["version"] == v
    s, _, out = gw.admin("POST", "dial", {"percent": 7, "reason": "x",
                                          "expect_version": v})
    assert s == 200 and out["version"] == v + 1


def test_rollback_and_history(gw):
    gw.dial(40, rule="pilot2", stores=["S010"], reason="pilot store 10")
    s, _, out = gw.admin("POST", "rollback", {"reason": "new core 5xx"})
    assert s == 200 and out["state"] == "rolled_back"
    assert all(r["percent"] == 0 for r in out["rules"])
    s, _, hist = gw.admin("GET", "history?limit=2", key="viewer")
    assert s == 200 and len(hist) == 2
    assert hist[0]["action"] == "rollback" and hist[0]["result"] == "accepted"
    assert hist[0]["reason"] == "new core 5xx" and hist[0]["key_id"] == "ops"
    assert hist[0]["seq"] == hist[1]["seq"] + 1
    assert hist[0]["to"]["state"] == "rolled_back"
    for field in ("seq", "time", "key_id", "action", "from", "to", "reason",
                  "hash"):
        assert field in hist[0]
    s, _, out = gw.admin("GET", "history?limit=0", key="viewer")
    assert s == 400
    # a dial brings the zone back to active
    assert gw.dial(1)["state"] == "active"


def test_refusals_are_audited(gw):
    """A signed refusal is an entry of its own; an unsigned one (here a
    GET, refused before any signature is read) only counts toward the
    next "refusals" entry (test_control.py)."""
    n0 = len(open(gw.audit_file).readlines()) \
        if os.path.exists(gw.audit_file) else 0
    gw.admin("POST", "dial", {"percent": 200, "reason": "too much"})
    gw.admin("POST", "dial", {"percent": 2, "reason": "x"}, key="viewer")
    assert gw.admin("GET", "dial")[0] == 405
    lines = [json.loads(l) for l in open(gw.audit_file).readlines()[n0:]]
    lines = [e for e in lines if e["action"] != "refusals"]
    assert [e["result"] for e in lines] == ["refused:invalid_percent",
                                            "refused:forbidden"]
    assert lines[0]["reason"] == "too much"
    assert lines[1]["key_id"] == "viewer"


def test_slow_disk_does_not_stall_the_worker(tmpdir_w):
    """Every fsync takes 300 ms (a preloaded shim, as on a loaded disk):
    a dial answers only once its state and audit entry are durable, but
    the requests its worker serves meanwhile do not wait for the disk."""
    shim = os.path.join(tmpdir_w, "fsync_delay.so")
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", shim,
                    os.path.join(harness.ROOT, "tests", "integration",
                                 "fsync_delay.c"), "-ldl"], check=True)
    g = Gateway("slowdisk", workers=1,
                env={"LD_PRELOAD": shim, "CUTOVER_FSYNC_DELAY_MS": "300"})
    try:
        answers = []
        change = threading.Thread(target=lambda: answers.append(
            g.admin("POST", "dial", {"percent": 5, "reason": "slow disk"})))
        t0 = time.monotonic()
        change.start()
        time.sleep(0.05)
        waits = []
        while change.is_alive() and len(waits) < 20:
            t1 = time.monotonic()
            g.sides([{"X-Store-Id": "S%03d" % len(waits),
                      "X-Channel": "pos"}])
            waits.append(time.monotonic() - t1)
        change.join()
        took = time.monotonic() - t0
        assert answers[0][0] == 200, answers
        # state file, audit entry and directory: three fsyncs of 300 ms
        assert took >= 0.85, took
        assert len(waits) >= 3 and max(waits) < 0.2, waits
        last = json.loads(open(g.audit_file).readlines()[-1])
        assert last["result"] == "accepted" and last["reason"] == "slow disk"
    finally:
        g.destroy()


def test_audit_verify_detects_tampering(gw, tmpdir_w):
    for p in (3, 4, 5):
        gw.dial(p, reason="step %d" % p)
    rc, out = gw.ctl("audit", "verify", gw.audit_file)
    assert rc == 0 and "intact" in out, out

    lines = open(gw.audit_file).readlines()
    n = len(lines)
    cases = {
        "edited": lines[:2] + [lines[2].replace('"step', '"STEP')
                               if "step" in lines[2]
                               else lines[2].replace('"x"', '"y"')]
        + lines[3:],
        "removed": lines[:2] + lines[3:],
        "reordered": lines[:2] + [lines[3], lines[2]] + lines[4:],
    }
    for name, text in cases.items():
        if text == lines:
            text = lines[:2] + [lines[2].replace('"dial"', '"diax"')] + \
                lines[3:]
        path = os.path.join(tmpdir_w, name)
        with open(path, "w") as f:
            f.writelines(text)
        rc, out = gw.ctl("audit", "verify", path)
        assert rc == 1, (name, out)
        assert "BROKEN at line 3" in out, (name, out)
    assert n >= 4


def test_cutoverctl(gw):
    rc, out = gw.ctl("dial", "12.5", "--reason", "ctl raise")
    assert rc == 0, out
    assert re.search(r"default\s+12.5\b", out), out
    rc, out = gw.ctl("status")
    assert rc == 0 and "state active" in out and "REQ NEW" in out, out
    rc, out = gw.ctl("-o", "json", "status")
    assert rc == 0 and json.loads(out)["state"] == "active"
    rc, out = gw.ctl("dial", "100", "--rule", "ctlpilot", "--store",
                     "S001,S002", "--channel", "pos", "--reason", "pilot")
    assert rc == 0, out
    rule = [r for r in gw.status()["rules"] if r["id"] == "ctlpilot"][0]
    assert rule["stores"] == ["S001", "S002"] and rule["channels"] == ["pos"]
    rc, out = gw.ctl("history", "--limit", "3")
    assert rc == 0 and "ctl raise" in out, out
    rc, out = gw.ctl("rollback", "--reason", "ctl rollback")
    assert rc == 3, out
    rc, out = gw.ctl("status")
    assert rc == 3 and "rolled_back" in out

    # errors: usage 2, refused 1, unreachable 1
    assert gw.ctl("dial", "abc", "--reason", "x")[0] == 2
    assert gw.ctl("dial", "10")[0] == 2
    assert gw.ctl("frobnicate")[0] == 2
    rc, out = gw.ctl("dial", "10", "--reason", "x", key="viewer")
    assert rc == 1 and "403" in out
    r = subprocess.run([harness.bin_path("cutoverctl"), "--url",
                        "http://127.0.0.1:1/cutover/", "--key-file",
                        os.path.join(gw.dir, "ops.key"), "status"],
                       capture_output=True)
    assert r.returncode == 1
    env = dict(os.environ, CUTOVER_URL=gw.admin_url,
               CUTOVER_KEY_FILE=os.path.join(gw.dir, "viewer.key"))
    r = subprocess.run([harness.bin_path("cutoverctl"), "status"], env=env,
                       capture_output=True)
    assert r.returncode == 3
    gw.dial(0)


def test_json_corpus_through_admin_api(gw):
    """Every JSONTestSuite case as a signed dial body: never a 5xx; n_
    cases are malformed_json, y_ cases parse (then fail validation)."""
    version = gw.status()["version"]
    for name, path in harness.json_cases():
        with open(path, "rb") as f:
            body = f.read()
        s, _, out = gw.admin("POST", "dial", body)
        assert s in (400, 413), (name, s, out)
        if name.startswith("n_") and s == 400:
            assert out["error"]["code"] == "malformed_json", name
        if name.startswith("y_"):
            assert out["error"]["code"] != "malformed_json", name
    assert gw.status()["version"] == version


BAD_CONFIGS = [
    ("cutover_zone erp size=1m;", "needs state="),
    ("cutover_zone erp size=10k state={dir}/s;", "too small"),
    ("cutover_zone erp size=abc state={dir}/s;", "invalid zone size"),
    ("cutover_zone e!rp state={dir}/s;", "invalid zone name"),
    ("cutover_zone erp state={dir}/s colour=red;", "invalid parameter"),
    ("cutover_zone erp state={dir}/s; cutover_zone erp state={dir}/t;",
     "duplicate cutover zone"),
    ("cutover_zone erp state={dir}/s; server { listen 127.0.0.1:1; "
     "location / { cutover erp; cutover_upstreams new=a old=b; } }",
     "expected new=<upstream>"),
    ("cutover_zone erp state={dir}/s; server { listen 127.0.0.1:1; "
     "location / { cutover_admin erp; } }", "needs cutover_admin_keys"),
    ("cutover_zone erp state={dir}/s; server { listen 127.0.0.1:1; "
     "location / { cutover_admin erp; cutover_admin_keys {dir}/badkeys; } }",
     "line 2: unknown role"),
    ("cutover_zone erp state={dir}/s; server { listen 127.0.0.1:1; "
     "location / { cutover_admin erp; cutover_admin_keys {dir}/nokeys; } }",
     "cannot open keys file"),
    ("server { listen 127.0.0.1:1; location / { cutover nozone; } }",
     "zero size shared memory zone \"nozone\""),
]


@pytest.mark.parametrize("conf,message", BAD_CONFIGS)
def test_bad_directives_fail_nginx_t(conf, message, tmpdir_w):
    with open(os.path.join(tmpdir_w, "badkeys"), "w") as f:
        f.write("ops operator " + "a1" * 32 + "\nbob king " + "b2" * 32 + "\n")
    n = harness.Nginx(conf, directory=tmpdir_w)
    ok, out = n.test_config()
    assert not ok
    assert message in out, out
    if "zero size" not in message:
        assert re.search(r"in %s:\d+" % re.escape(n.conf), out), out


def test_big_rule_is_audited(gw):
    """A rule of 1500 stores: accepted, in the state, audited in full or
    counted, and the trail still verifies."""
    stores = ["BIG%04d" % i for i in range(1500)]
    out = gw.dial(5, rule="wave1", stores=stores, reason="wave 1 stores")
    rule = [r for r in out["rules"] if r["id"] == "wave1"][0]
    assert rule["stores"] == stores
    last = json.loads(open(gw.audit_file).readlines()[-1])
    assert last["result"] == "accepted" and last["to"]["id"] == "wave1"
    rc, text = gw.ctl("audit", "verify", gw.audit_file)
    assert rc == 0, text
    gw.dial(0, rule="wave1", reason="wave 1 off")
