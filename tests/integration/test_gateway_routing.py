"""Routing through real nginx: split accuracy, stickiness, rules, and a
dial that changes without a reload and survives reload and restart."""

import os
import re

import pytest

import harness
from gateway import Gateway


@pytest.fixture
def gw():
    g = Gateway()
    yield g
    g.destroy()


def keyed(n, channel="pos", prefix="S"):
    return [{"X-Store-Id": "%s%06d" % (prefix, i), "X-Channel": channel}
            for i in range(n)]


def metric(text, name, **labels):
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r"(\w+)\{([^}]*)\} (\S+)$", line)
        if m and m.group(1) == name:
            got = ",".join(sorted(m.group(2).split(",")))
            if got == want:
                return float(m.group(3))
    raise KeyError("%s{%s} not in metrics" % (name, want))


def test_split_accuracy_and_counters(gw):
    """10 000 distinct keys at 1 %, 10 % and 50 %: each share within 1.5
    points, and the gateway's own counters agree with what upstreams saw."""
    reqs = keyed(10000)
    total_new = 0
    for pct in (1, 10, 50):
        out = gw.dial(pct, reason="split %d" % pct)
        assert out["rules"][-1]["percent"] == pct
        sides = gw.sides(reqs)
        share = 100.0 * sides.count("new") / len(sides)
        assert abs(share - pct) <= 1.5, (pct, share)
        total_new += sides.count("new")

    st = gw.status()
    assert st["counters"]["requests_new"] == total_new
    assert st["counters"]["requests_new"] + \
        st["counters"]["requests_legacy"] == 30000
    s, _, text = gw.admin("GET", "metrics", key="viewer")
    assert s == 200
    assert metric(text, "cutover_requests_total", zone="erp", side="new",
                  rule="default") == total_new
    assert metric(text, "cutover_dial_percent", zone="erp",
                  rule="default") == 50
    # store and channel ids never become labels
    assert "S000001" not in text and "pos" not in text


def test_sticky_and_raise_only_moves_to_new(gw):
    reqs = keyed(2000)
    gw.dial(10)
    first = gw.sides(reqs)
    assert gw.sides(reqs) == first, "same key, same side"
    gw.dial(20)
    second = gw.sides(reqs)
    for a, b in zip(first, second):
        assert not (a == "new" and b == "legacy"), "raising moved a key back"
    assert second.count("new") > first.count("new")
    gw.dial(10)
    assert gw.sides(reqs) == first, "lowering again restores the old split"


def test_bucket_is_the_documented_hash(gw):
    """$cutover_bucket of store S001 channel pos is pinned (4589)."""
    s, h, _ = harness.http("GET", "http://127.0.0.1:%d/api/x" % gw.port,
                           headers={"X-Store-Id": "S001", "X-Channel": "pos"})
    assert s == 200 and h["x-cutover-bucket"] == "4589"
    assert re.fullmatch(r"[0-9a-f]{32}", h["x-cutover-request-id"])
    gw.dial(45.89)
    assert gw.sides([{"X-Store-Id": "S001", "X-Channel": "pos"}]) == \
        ["legacy"]
    gw.dial(45.9)
    assert gw.sides([{"X-Store-Id": "S001", "X-Channel": "pos"}]) == ["new"]


def test_store_and_channel_rules(gw):
    gw.dial(100, rule="pilot", stores=["S001", "S002"])
    gw.dial(100, rule="eshop", channels=["eshop"])
    gw.dial(0, rule="mini_pos", stores=["S003"], channels=["pos"])
    st = gw.status()
    assert [r["id"] for r in st["rules"]] == ["pilot", "eshop", "mini_pos",
                                              "default"]

    def one(store, channel):
        h = {"X-Store-Id": store, "X-Channel": channel}
        _, hdrs, body = harness.http("GET", "http://127.0.0.1:%d/api/x"
                                     % gw.port, headers=h)
        return hdrs["x-cutover-rule"], body.decode().strip()

    assert one("S001", "pos") == ("pilot", "new")
    assert one("S002", "marketplace") == ("pilot", "new")
    assert one("S003", "eshop") == ("eshop", "new")
    assert one("S003", "pos") == ("mini_pos", "legacy")
    assert one("S004", "pos") == ("default", "legacy")
    assert one("S0011", "pos") == ("default", "legacy")

    # every store of the pilot goes new whatever its bucket
    assert set(gw.sides(keyed(300, "pos", prefix="X"))) == {"legacy"}


def test_empty_key_goes_legacy_and_is_counted(gw):
    gw.dial(100)
    assert gw.sides([{}] * 20) == ["legacy"] * 20
    assert gw.sides([{"X-Channel": "pos"}] * 5) == ["legacy"] * 5
    assert gw.status()["counters"]["empty_key"] == 25
    # a custom key: ?uid=
    s, h, b = harness.http("GET", "http://127.0.0.1:%d/keyed/x?uid=42"
                           % gw.port)
    assert b == b"new\n"
    s, h, b = harness.http("GET", "http://127.0.0.1:%d/keyed/x" % gw.port)
    assert b == b"legacy\n"


def test_reload_and_restart_keep_the_dial(gw):
    gw.dial(30, rule="pilot", stores=["S001"])
    gw.dial(25)
    reqs = keyed(3000)
    before = gw.sides(reqs)
    version = gw.status()["version"]

    gw.nginx.reload()
    st = gw.status()
    assert st["version"] == version
    # counters live in the zone, kept across reload
    assert st["counters"]["requests_new"] + \
        st["counters"]["requests_legacy"] == 3000
    assert gw.sides(reqs) == before

    # a new zone size makes a new zone: the state comes from the file
    gw.nginx.reload(gw.conf().replace("size=1m", "size=2m"))
    st = gw.status()
    assert st["version"] == version
    assert gw.sides(reqs) == before

    gw.nginx.stop()
    gw.nginx.start(gw.port)
    st = gw.status()
    assert st["version"] == version
    assert [(r["id"], r["percent"]) for r in st["rules"]] == \
        [("pilot", 30), ("default", 25)]
    assert gw.sides(reqs) == before
    assert "state version %d loaded" % version in gw.nginx.log_text()


def test_corrupt_state_file_starts_at_zero(gw):
    gw.dial(60)
    gw.nginx.stop()
    with open(gw.state_file, "r+") as f:
        text = f.read()
        f.seek(0)
        f.write(text.replace("rule default 6000", "rule default 9000"))
    gw.nginx.start(gw.port)
    st = gw.status()
    assert st["rules"] == [{"id": "default", "stores": [], "channels": [],
                            "percent": 0,
                            "requests": {"new": 0, "legacy": 0}}]
    assert os.path.exists(gw.state_file + ".corrupt")
    assert "is corrupt (checksum mismatch)" in gw.nginx.log_text()
    assert set(gw.sides(keyed(200))) == {"legacy"}


def test_missing_state_file_starts_at_zero(gw):
    gw.dial(60)
    gw.nginx.stop()
    os.unlink(gw.state_file)
    gw.nginx.start(gw.port)
    assert gw.status()["rules"][0]["percent"] == 0
    assert "no state file" in gw.nginx.log_text()


def test_a_request_sees_one_state_never_a_mix(gw):
    """The dial flips between 0 % and 100 % while four clients send
    requests: every answer's side matches the dial of the version it
    reports (a torn read would pair one version with the other's dial)."""
    import http.client
    import threading

    dial_of = {gw.status()["version"]: 0}
    stop = threading.Event()
    seen = []

    def client(k):
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        i = 0
        while not stop.is_set():
            conn.request("GET", "/api/x", headers={
                "X-Store-Id": "S%d-%d" % (k, i), "X-Channel": "pos"})
            r = conn.getresponse()
            r.read()
            seen.append((int(r.getheader("X-Cutover-Version")),
                         r.getheader("X-Cutover-Side")))
            i += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for n in range(60):
        pct = 100 * ((n + 1) % 2)
        out = gw.dial(pct, reason="flip")
        dial_of[out["version"]] = pct
    stop.set()
    for t in threads:
        t.join()

    assert len(seen) > 200
    for version, side in seen:
        assert side == ("new" if dial_of[version] == 100 else "legacy"), \
            (version, side)
    assert len({v for v, _ in seen}) > 5
