"""legacy_adapter end to end: the stand-in legacy store system (its dialect,
its seed, its quirks on and off), the adapter's canonical answers, legacy
failures (down, slow, garbage) and the store-system migration into the new
core, all against the session PostgreSQL cluster."""

import concurrent.futures
import http.client
import http.server
import json
import os
import struct
import subprocess
import threading
import time

import pytest

import harness

FIXTURES = os.path.join(harness.ROOT, "tests", "fixtures", "legacy")
SIM = harness.bin_path("legacy-store-sim")
ADAPTER = harness.bin_path("cutover-legacy-adapter")
NEWCORE = harness.bin_path("cutover-newcore")


# --- a little BSON, enough for the legacy dialect ---------------------------

def bson_encode(doc):
    out = b""
    for key, v in (doc.items() if isinstance(doc, dict)
                   else ((str(i), x) for i, x in enumerate(doc))):
        k = key.encode() + b"\0"
        if isinstance(v, bool):
            out += b"\x08" + k + (b"\1" if v else b"\0")
        elif isinstance(v, int):
            if -2**31 <= v < 2**31:
                out += b"\x10" + k + struct.pack("<i", v)
            else:
                out += b"\x12" + k + struct.pack("<q", v)
        elif isinstance(v, float):
            out += b"\x01" + k + struct.pack("<d", v)
        elif isinstance(v, str):
            s = v.encode() + b"\0"
            out += b"\x02" + k + struct.pack("<i", len(s)) + s
        elif v is None:
            out += b"\x0a" + k
        elif isinstance(v, dict):
            out += b"\x03" + k + bson_encode(v)
        elif isinstance(v, list):
            out += b"\x04" + k + bson_encode(v)
        else:
            raise TypeError(type(v))
    return struct.pack("<i", len(out) + 5) + out + b"\0"


def bson_decode(data, as_list=False):
    (n,) = struct.unpack_from("<i", data)
    assert n == len(data), "BSON length %d != %d" % (n, len(data))
    pos, items = 4, []
    while data[pos] != 0:
        t = data[pos]
        end = data.index(b"\0", pos + 1)
        key = data[pos + 1:end].decode()
        pos = end + 1
        if t == 0x01:
            (v,) = struct.unpack_from("<d", data, pos)
            pos += 8
        elif t == 0x02:
            (ln,) = struct.unpack_from("<i", data, pos)
            v = data[pos + 4:pos + 4 + ln - 1].decode()
            pos += 4 + ln
        elif t in (0x03, 0x04):
            (ln,) = struct.unpack_from("<i", data, pos)
            v = bson_decode(data[pos:pos + ln], as_list=(t == 0x04))
            pos += ln
        elif t == 0x08:
            v = data[pos] == 1
            pos += 1
        elif t == 0x0a:
            v = None
        elif t == 0x10:
            (v,) = struct.unpack_from("<i", data, pos)
            pos += 4
        elif t == 0x12:
            (v,) = struct.unpack_from("<q", data, pos)
            pos += 8
        else:
            raise ValueError("BSON type %#x" % t)
        items.append((key, v))
    return [v for _, v in items] if as_list else dict(items)


# --- seed formulas (the demo data set of --seed, new_core/README.md) -------

def price_fen(n):
    return 100 + (n * 7919) % 49900


def on_hand(s, n):
    return 20 + (s * 31 + n * 17) % 181


def points(m):
    return (m * 97) % 5000


def tier(p):
    return "gold" if p >= 3000 else "silver" if p >= 1000 else "standard"


def yuan(fen):
    return "%s%d.%02d" % ("-" if fen < 0 else "", abs(fen) // 100,
                          abs(fen) % 100)


# --- processes --------------------------------------------------------------

class Env:
    pass


def start_sim(env, name, *extra):
    port = harness.free_port()
    p = harness.Proc([SIM, "--listen", "127.0.0.1:%d" % port, "--db", env.db,
                      "--threads", "4"] + list(extra),
                     os.path.join(env.dir, name + ".log"), port=port)
    env.procs.append(p)
    return p, "http://127.0.0.1:%d" % port


def start_adapter(env, name, legacy_url, *extra):
    port = harness.free_port()
    p = harness.Proc([ADAPTER, "--listen", "127.0.0.1:%d" % port,
                      "--legacy", legacy_url, "--threads", "4"] + list(extra),
                     os.path.join(env.dir, name + ".log"), port=port,
                     cwd=harness.ROOT)
    env.procs.append(p)
    return p, "http://127.0.0.1:%d" % port


class MisbehavingLegacy(http.server.BaseHTTPRequestHandler):
    """A misbehaving legacy system; `mode` says how, requests are kept."""
    mode = "garbage"
    seen = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        MisbehavingLegacy.seen.append((self.path, dict(self.headers), body))
        mode = MisbehavingLegacy.mode
        if mode == "garbage":
            self._send(200, "application/bson", b"\x30\0\0\0\x02code\0")
        elif mode == "html":
            self._send(200, "text/html", b"<html>maintenance</html>")
        elif mode == "http500":
            self._send(500, "application/json", b'{"code":0}')
        elif mode == "badjson":
            self._send(200, "application/json", b'{"code":0,"data":{')
        elif mode == "unknown_code":
            self._send(200, "application/json",
                       b'{"code":4242,"msg":"?","data":null}')
        elif mode == "missing_field":
            self._send(200, "application/bson",
                       bson_encode({"code": 0, "msg": "ok",
                                    "data": {"hyh": "M000001"}}))
        else:   # a good member answer
            self._send(200, "application/bson",
                       bson_encode({"code": 0, "msg": "ok",
                                    "data": {"hyh": "M000001", "jf": 97,
                                             "hydj": 1, "ignored": "x"}}))

    def _send(self, status, ctype, body):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def env(pg):
    e = Env()
    e.pg = pg
    e.dir = harness.make_tempdir("legacy")
    e.procs = []
    e.db = pg.createdb("legacy_it")
    r = subprocess.run([SIM, "--db", e.db, "--init-schema", "--seed"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    e.sim_q, e.sim_q_url = start_sim(e, "sim-quirks")
    e.sim_c, e.sim_c_url = start_sim(e, "sim-clean", "--no-quirks")
    e.ad_q, e.q = start_adapter(e, "adapter-quirks", e.sim_q_url)
    e.ad_c, e.c = start_adapter(e, "adapter-clean", e.sim_c_url)
    e.faulty = http.server.ThreadingHTTPServer(("127.0.0.1", 0), MisbehavingLegacy)
    threading.Thread(target=e.faulty.serve_forever, daemon=True).start()
    e.ad_faulty, e.s = start_adapter(
        e, "adapter-faulty", "http://127.0.0.1:%d" % e.faulty.server_address[1])
    yield e
    e.faulty.shutdown()
    for p in reversed(e.procs):
        assert p.stop() == 0, "%s exit code" % p.argv[0]
    harness.remove_tempdir(e.dir)


def call(base, method, path, body=None, headers=None):
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    if isinstance(body, dict):
        body = json.dumps(body)
    status, h, data = harness.http(method, base + path, body, hdrs)
    return status, (json.loads(data) if data else None), h


def sim_call(url, path, body, as_bson=True):
    if as_bson:
        status, h, data = harness.http(
            "POST", url + path, bson_encode(body),
            {"Content-Type": "application/bson"})
        assert h["content-type"] == "application/bson"
        return status, bson_decode(data)
    status, h, data = harness.http("POST", url + path, json.dumps(body),
                                   {"Content-Type": "application/json"})
    return status, json.loads(data)


# --- the sim on its own -----------------------------------------------------

def test_sim_seed_matches_formulas(env):
    q = env.pg.psql
    assert q("legacy_it", "SELECT count(*) FROM legacy.md") == "200"
    assert q("legacy_it", "SELECT count(*) FROM legacy.md_qd") == "800"
    assert q("legacy_it", "SELECT count(*) FROM legacy.kc") == "400000"
    assert q("legacy_it", "SELECT count(*) FROM legacy.hy") == "10000"
    assert q("legacy_it", "SELECT count(*) FROM legacy.sp WHERE lsj_fen <>"
             " 100 + (substr(spbm, 4)::int * 7919) % 49900") == "0"
    assert q("legacy_it", "SELECT min(spbm), max(spbm), min(lsj_fen),"
             " max(lsj_fen) FROM legacy.sp") == "SKU00001|SKU02000|%d|%d" % (
                 min(map(price_fen, range(1, 2001))),
                 max(map(price_fen, range(1, 2001))))
    assert q("legacy_it", "SELECT mdmc FROM legacy.md WHERE mdbh = 'S007'") \
        == "Store 007"


def test_sim_dialect_bson_and_json(env):
    for as_bson in (True, False):
        st, r = sim_call(env.sim_c_url, "/lsapi/hy/query", {"hyh": "M000123"},
                         as_bson)
        assert st == 200
        assert r == {"code": 0, "msg": "成功",
                     "data": {"hyh": "M000123", "jf": points(123),
                              "hydj": 2}}
    st, r = sim_call(env.sim_c_url, "/lsapi/kc/query",
                     {"mdbh": "S007", "spbm": "SKU01999"})
    assert r["data"] == {"mdbh": "S007", "spbm": "SKU01999",
                         "kcsl": on_hand(7, 1999), "ydsl": 0,
                         "kysl": on_hand(7, 1999)}


def test_sim_errors_are_200_envelopes(env):
    st, r = sim_call(env.sim_c_url, "/lsapi/hy/query", {"hyh": "M999999"})
    assert (st, r["code"], r["data"]) == (200, 1004, None)
    st, r = sim_call(env.sim_c_url, "/lsapi/hy/query", {})
    assert (st, r["code"]) == (200, 1001)
    st, h, data = harness.http("POST", env.sim_c_url + "/lsapi/hy/query",
                               b"\x10\0\0\0garbage",
                               {"Content-Type": "application/bson"})
    assert st == 200 and bson_decode(data)["code"] == 1001
    st, r = sim_call(env.sim_c_url, "/lsapi/nothing/here", {})
    assert r["code"] == 1001


def test_sim_order_time_is_china_time(env):
    st, r = sim_call(env.sim_c_url, "/lsapi/xsd/create",
                     {"mdbh": "S150", "qd": 2,
                      "mx": [{"spbm": "SKU00150", "sl": 1}]})
    assert r["code"] == 0, r
    d = r["data"]
    assert d["qd"] == 2 and d["zt"] == 1 and d["zje_fen"] == price_fen(150)
    cjsj = time.strptime(d["cjsj"], "%Y%m%d%H%M%S")
    utc_now = time.time()
    china = time.mktime(cjsj) - time.mktime(time.gmtime(0))
    assert abs(china - (utc_now + 8 * 3600)) < 120


def test_sim_serial_number_applies_once(env):
    body = {"qqlsh": "sim-once-1", "mdbh": "S151", "qd": 1,
            "mx": [{"spbm": "SKU00151", "sl": 3}]}
    before = on_hand(151, 151)
    first = sim_call(env.sim_c_url, "/lsapi/xsd/create", body)[1]
    again = sim_call(env.sim_c_url, "/lsapi/xsd/create", body, False)[1]
    assert first["code"] == 0 and again == first
    st, r = sim_call(env.sim_c_url, "/lsapi/kc/query",
                     {"mdbh": "S151", "spbm": "SKU00151"})
    assert r["data"]["kcsl"] == before - 3
    body["mx"][0]["sl"] = 4
    assert sim_call(env.sim_c_url, "/lsapi/xsd/create", body)[1]["code"] \
        == 3003


def test_sim_serial_numbers_expire(env):
    """--idempotency-ttl: answered serial numbers are purged in batches in
    the background while writes go on; a replay after that is new."""
    env.pg.psql("legacy_it", "INSERT INTO legacy.qqlsh (qqlsh, jk, zy, xy,"
                " cjsj) SELECT 'old-' || g, 'xsd/create', 'h', '{}', now() -"
                " interval '1 day' FROM generate_series(1, 50000) g")
    p, url = start_sim(env, "sim-ttl", "--no-quirks", "--idempotency-ttl",
                       "2s")
    try:
        body = {"qqlsh": "sim-ttl-1", "mdbh": "S152", "qd": 1,
                "mx": [{"spbm": "SKU00152", "sl": 1}]}
        first = sim_call(url, "/lsapi/xsd/create", body)[1]
        assert first["code"] == 0
        assert sim_call(url, "/lsapi/xsd/create", body)[1] == first

        slowest, during, t0 = 0.0, 0, time.monotonic()
        while True:
            left = int(env.pg.psql("legacy_it", "SELECT count(*) FROM "
                                   "legacy.qqlsh WHERE qqlsh LIKE 'old-%'"))
            if left == 0:
                break
            assert time.monotonic() - t0 < 20, p.log_tail()
            t1 = time.monotonic()
            r = sim_call(url, "/lsapi/kc/adjust",
                         {"qqlsh": "w-%f" % t1, "mdbh": "S152",
                          "spbm": "SKU00153", "tzsl": 1, "tzyy": 1})[1]
            slowest = max(slowest, time.monotonic() - t1)
            during += left < 50000
            assert r["code"] == 0, r
        assert during > 0 and slowest < 1.0, (during, slowest)

        deadline = time.monotonic() + 10
        while env.pg.psql("legacy_it", "SELECT count(*) FROM legacy.qqlsh "
                          "WHERE qqlsh = 'sim-ttl-1'") != "0":
            assert time.monotonic() < deadline, p.log_tail()
            time.sleep(0.2)
        again = sim_call(url, "/lsapi/xsd/create", body)[1]
        assert again["code"] == 0
        assert again["data"]["djh"] != first["data"]["djh"]
        assert "purged" in p.log_tail(100)
    finally:
        assert p.stop() == 0
        env.procs.remove(p)


def test_sim_reseed_is_clean(env, pg):
    db = pg.createdb("legacy_reseed")
    for _ in range(2):
        r = subprocess.run([SIM, "--db", db, "--init-schema", "--seed"],
                           capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr.decode()
    assert pg.psql("legacy_reseed", "SELECT count(*), sum(kcsl) FROM"
                   " legacy.kc") == "400000|%d" % sum(
                       on_hand(s, n) for s in range(1, 201)
                       for n in range(1, 2001))


def test_sim_usage(env):
    assert subprocess.run([SIM, "--help"], capture_output=True).returncode == 0
    assert subprocess.run([SIM, "--bogus"], capture_output=True).returncode == 2
    assert subprocess.run([SIM, "--db", env.db, "--quirks", "teleport",
                           "--seed"], capture_output=True).returncode == 2


# --- quirks on (default) and off ---------------------------------------------

def order(store, sku, qty, member=None, price=None, **more):
    line = {"sku": sku, "qty": qty}
    if price is not None:
        line["unit_price"] = price
    body = {"store_id": store, "channel": "pos", "member_id": member,
            "lines": [line], "payment": {"method": "card"}}
    body.update(more)
    return body


def test_quirk_points_floor(env):
    st, r, _ = call(env.q, "POST", "/api/v1/orders",
                    order("S010", "SKU00010", 1, "M000010", "10.99"))
    assert st == 201 and r["total"] == "10.99" and r["points_earned"] == 10
    st, r, _ = call(env.c, "POST", "/api/v1/orders",
                    order("S011", "SKU00011", 1, "M000011", "10.99"))
    assert st == 201 and r["points_earned"] == 11
    st, m, _ = call(env.c, "GET", "/api/v1/members/M000011")
    assert m["points"] == points(11) + 11


def test_quirk_oversell(env):
    have = on_hand(20, 20)
    st, r, _ = call(env.c, "POST", "/api/v1/orders",
                    order("S020", "SKU00020", have + 5))
    assert st == 409 and r["error"]["code"] == "out_of_stock"
    assert "SKU00020" in r["error"]["message"]
    st, inv, _ = call(env.c, "GET", "/api/v1/inventory/S020/SKU00020")
    assert inv["on_hand"] == have
    st, r, _ = call(env.q, "POST", "/api/v1/orders",
                    order("S020", "SKU00020", have + 5))
    assert st == 201
    st, inv, _ = call(env.q, "GET", "/api/v1/inventory/S020/SKU00020")
    assert inv == {"store_id": "S020", "sku": "SKU00020", "on_hand": -5,
                   "reserved": 0, "available": -5}


def test_quirk_cancel_keeps_points(env):
    for base, member, keeps in ((env.q, "M000030", True),
                                (env.c, "M000031", False)):
        m = int(member[1:])
        st, o, _ = call(base, "POST", "/api/v1/orders",
                        order("S030", "SKU00030", 1, member, "25.00"))
        assert st == 201 and o["points_earned"] == 25
        st, c, _ = call(base, "POST", "/api/v1/orders/%s/cancel"
                        % o["order_id"], headers={"Idempotency-Key":
                                                  "cancel-" + member})
        assert st == 200 and c["status"] == "cancelled"
        st, mem, _ = call(base, "GET", "/api/v1/members/" + member)
        assert mem["points"] == points(m) + (25 if keeps else 0)
    st, inv, _ = call(env.c, "GET", "/api/v1/inventory/S030/SKU00030")
    assert inv["on_hand"] == on_hand(30, 30)


# --- the adapter: canonical answers -----------------------------------------

def test_adapter_order_lifecycle(env):
    body = {"store_id": "S042", "channel": "miniapp", "member_id": "M000042",
            "lines": [{"sku": "SKU00042", "qty": 2},
                      {"sku": "SKU00043", "qty": 1, "unit_price": "129.00"}],
            "payment": {"method": "wallet"}}
    st, o, h = call(env.c, "POST", "/api/v1/orders", body,
                    {"Idempotency-Key": "life-1"})
    assert st == 201 and h["content-type"].startswith("application/json")
    assert list(o) == ["order_id", "store_id", "channel", "member_id",
                       "status", "lines", "total", "points_earned",
                       "created_at"]
    total = 2 * price_fen(42) + 12900
    assert o["lines"] == [
        {"sku": "SKU00042", "qty": 2, "unit_price": yuan(price_fen(42)),
         "amount": yuan(2 * price_fen(42))},
        {"sku": "SKU00043", "qty": 1, "unit_price": "129.00",
         "amount": "129.00"}]
    assert (o["store_id"], o["channel"], o["member_id"], o["status"]) == \
        ("S042", "miniapp", "M000042", "paid")
    assert o["total"] == yuan(total)
    assert o["points_earned"] == (total + 50) // 100
    assert time.strptime(o["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs(time.mktime(time.strptime(o["created_at"],
                                         "%Y-%m-%dT%H:%M:%SZ"))
               - time.mktime(time.gmtime())) < 120

    st, again, _ = call(env.c, "GET", "/api/v1/orders/" + o["order_id"])
    assert st == 200 and again == o
    st, inv, _ = call(env.c, "GET", "/api/v1/inventory/S042/SKU00042")
    assert inv["on_hand"] == on_hand(42, 42) - 2
    st, c, _ = call(env.c, "POST", "/api/v1/orders/%s/cancel" % o["order_id"])
    assert st == 200 and c["status"] == "cancelled"
    assert {k: v for k, v in c.items() if k != "status"} == \
        {k: v for k, v in o.items() if k != "status"}
    st, inv, _ = call(env.c, "GET", "/api/v1/inventory/S042/SKU00042")
    assert inv["on_hand"] == on_hand(42, 42)
    st, c2, _ = call(env.c, "POST", "/api/v1/orders/%s/cancel"
                     % o["order_id"])
    assert st == 200 and c2 == c


def test_adapter_idempotency(env):
    body = order("S043", "SKU00044", 2, None)
    st, first, _ = call(env.c, "POST", "/api/v1/orders", body,
                        {"Idempotency-Key": "idem-43"})
    st2, again, _ = call(env.c, "POST", "/api/v1/orders", body,
                         {"Idempotency-Key": "idem-43"})
    assert st == st2 == 201 and again == first
    st, inv, _ = call(env.c, "GET", "/api/v1/inventory/S043/SKU00044")
    assert inv["on_hand"] == on_hand(43, 44) - 2
    body["lines"][0]["qty"] = 3
    st, r, _ = call(env.c, "POST", "/api/v1/orders", body,
                    {"Idempotency-Key": "idem-43"})
    assert st == 422 and r["error"]["code"] == "idempotency_mismatch"


def test_adapter_concurrent_replays_apply_once(env):
    body = json.dumps(order("S044", "SKU00045", 1, None))
    results = []

    def send():
        results.append(call(env.c, "POST", "/api/v1/orders", body,
                            {"Idempotency-Key": "race-44"})[:2])

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [s for s, _ in results] == [201] * 8
    assert len({r["order_id"] for _, r in results}) == 1
    st, inv, _ = call(env.c, "GET", "/api/v1/inventory/S044/SKU00045")
    assert inv["on_hand"] == on_hand(44, 45) - 1


def test_adapter_client_order_id(env):
    body = order("S045", "SKU00046", 1, None, order_id="TILL-45-0001")
    st, o, _ = call(env.c, "POST", "/api/v1/orders", body,
                    {"Idempotency-Key": "till-1"})
    assert st == 201 and o["order_id"] == "TILL-45-0001"
    st, r, _ = call(env.c, "POST", "/api/v1/orders", body,
                    {"Idempotency-Key": "till-2"})
    assert st == 409 and r["error"]["code"] == "duplicate_order"


def test_adapter_inventory_and_members(env):
    st, inv, _ = call(env.c, "POST", "/api/v1/inventory/adjust",
                      {"store_id": "S046", "sku": "SKU00047", "delta": 50,
                       "reason": "receipt"}, {"Idempotency-Key": "adj-46"})
    assert st == 200 and inv == {"store_id": "S046", "sku": "SKU00047",
                                 "on_hand": on_hand(46, 47) + 50,
                                 "reserved": 0,
                                 "available": on_hand(46, 47) + 50}
    st, again, _ = call(env.c, "POST", "/api/v1/inventory/adjust",
                        {"store_id": "S046", "sku": "SKU00047", "delta": 50,
                         "reason": "receipt"}, {"Idempotency-Key": "adj-46"})
    assert again == inv
    st, r, _ = call(env.c, "POST", "/api/v1/inventory/adjust",
                    {"store_id": "S046", "sku": "SKU00047", "delta": -10000,
                     "reason": "damage"})
    assert st == 409 and r["error"]["code"] == "out_of_stock"
    st, m, _ = call(env.c, "GET", "/api/v1/members/M003100")
    assert st == 200 and m == {"member_id": "M003100",
                               "points": points(3100),
                               "tier": tier(points(3100))}


@pytest.mark.parametrize("method,path,body,status,code", [
    ("POST", "/api/v1/orders", "{not json", 400, "invalid_request"),
    ("POST", "/api/v1/orders", "[1,2]", 400, "invalid_request"),
    ("POST", "/api/v1/orders", {"store_id": "S001", "channel": "pos",
                                "lines": [{"sku": "SKU00001", "qty": 1}],
                                "coupon": "X"}, 400, "invalid_request"),
    ("POST", "/api/v1/orders", {"store_id": "S001", "channel": "fax",
                                "lines": [{"sku": "SKU00001", "qty": 1}]},
     400, "invalid_request"),
    ("POST", "/api/v1/orders", {"store_id": "S001", "channel": "pos",
                                "lines": [{"sku": "SKU00001", "qty": 1,
                                           "unit_price": "1.001"}]},
     400, "invalid_request"),
    ("POST", "/api/v1/orders", {"store_id": "S001", "channel": "pos",
                                "lines": [{"sku": "SKU00001", "qty": 1,
                                           "unit_price": "5.00"}],
                                "payment": {"method": "cash",
                                            "amount": "6.00"}},
     400, "invalid_request"),
    ("POST", "/api/v1/orders", {"store_id": "S001", "channel": "pos",
                                "member_id": "M999999",
                                "lines": [{"sku": "SKU00001", "qty": 1}]},
     404, "not_found"),
    ("POST", "/api/v1/orders", {"store_id": "S999", "channel": "pos",
                                "lines": [{"sku": "SKU00001", "qty": 1}]},
     404, "not_found"),
    ("POST", "/api/v1/orders", {"store_id": "S001", "channel": "pos",
                                "lines": [{"sku": "SKU99999", "qty": 1}]},
     404, "not_found"),
    ("GET", "/api/v1/orders/NO-SUCH", None, 404, "not_found"),
    ("GET", "/api/v1/inventory/S001/SKU99999", None, 404, "not_found"),
    ("GET", "/api/v1/members/M999999", None, 404, "not_found"),
    ("GET", "/api/v1/nothing", None, 404, "not_found"),
    ("GET", "/api/v1/orders", None, 405, "method_not_allowed"),
    ("DELETE", "/api/v1/members/M000001", None, 405, "method_not_allowed"),
])
def test_adapter_errors(env, method, path, body, status, code):
    if isinstance(body, dict) and "payment" not in body:
        body = dict(body, payment={"method": "cash"})
    st, r, _ = call(env.c, method, path, body)
    assert st == status and r["error"]["code"] == code, r
    assert isinstance(r["error"]["message"], str) and r["error"]["message"]


def test_adapter_payment_is_required(env):
    body = order("S001", "SKU00001", 1)
    del body["payment"]
    st, r, _ = call(env.c, "POST", "/api/v1/orders", body)
    assert st == 400 and r["error"]["message"] == "$.payment: missing"


def test_adapter_logs_legacy_code(env):
    call(env.c, "GET", "/api/v1/members/M999998",
         headers={"X-Cutover-Request-Id": "ab" * 16})
    time.sleep(0.1)
    with open(env.ad_c.log_path, errors="replace") as f:
        log = f.read()
    assert "legacy code 1004 -> 404 (request id %s)" % ("ab" * 16) in log


# --- the adapter against a misbehaving or absent legacy system ---------------

def test_adapter_forwards_headers_and_speaks_bson(env):
    MisbehavingLegacy.mode = "member"
    MisbehavingLegacy.seen.clear()
    st, r, _ = call(env.s, "POST", "/api/v1/orders",
                    order("S001", "SKU00001", 1, None),
                    {"Idempotency-Key": "fwd-1",
                     "X-Cutover-Request-Id": "cd" * 16})
    path, headers, body = MisbehavingLegacy.seen[-1]
    assert path == "/lsapi/xsd/create"
    assert headers["Content-Type"] == "application/bson"
    assert headers["Idempotency-Key"] == "fwd-1"
    assert headers["X-Cutover-Request-Id"] == "cd" * 16
    assert bson_decode(body) == {"mdbh": "S001", "qd": 1, "hyh": None,
                                 "mx": [{"spbm": "SKU00001", "sl": 1}],
                                 "zf": {"zffs": 2}, "qqlsh": "fwd-1"}
    assert st == 502     # a member answer is not an order: never invented
    st, m, _ = call(env.s, "GET", "/api/v1/members/M000001")
    assert st == 200 and m == {"member_id": "M000001", "points": 97,
                               "tier": "standard"}


@pytest.mark.parametrize("mode", ["garbage", "html", "http500", "badjson",
                                  "unknown_code", "missing_field"])
def test_adapter_legacy_garbage_is_502(env, mode):
    MisbehavingLegacy.mode = mode
    st, r, _ = call(env.s, "GET", "/api/v1/members/M000001")
    assert st == 502 and r["error"]["code"] == "bad_gateway", r
    assert env.ad_faulty.alive()


def test_adapter_legacy_down_is_502(env):
    port = harness.free_port()
    p, base = start_adapter(env, "adapter-down", "http://127.0.0.1:%d" % port)
    st, r, _ = call(base, "GET", "/api/v1/members/M000001")
    assert st == 502 and r["error"]["code"] == "unavailable"
    st, h, _ = call(base, "GET", "/health")
    assert st == 503 and h["legacy"] == "down"
    st, h, _ = call(env.c, "GET", "/health")
    assert st == 200 and h == {"status": "ok", "legacy": "up"}


def test_adapter_legacy_slow_is_504(env):
    slow, slow_url = start_sim(env, "sim-slow", "--delay-ms", "1500")
    p, base = start_adapter(env, "adapter-slow", slow_url,
                            "--timeout-ms", "300")
    t0 = time.monotonic()
    st, r, _ = call(base, "GET", "/api/v1/members/M000001")
    assert st == 504 and r["error"]["code"] == "timeout"
    assert time.monotonic() - t0 < 1.2
    assert p.alive()


def test_adapter_threads_bound_the_legacy_calls(env):
    """--threads 1: one legacy call at a time; a request that gets none
    within --timeout-ms is a 504 then, not an answer whenever one frees."""
    slow, slow_url = start_sim(env, "sim-slow-pool", "--delay-ms", "600")
    p, base = start_adapter(env, "adapter-one-call", slow_url,
                            "--threads", "1", "--timeout-ms", "900")

    def read(_):
        t0 = time.monotonic()
        st = call(base, "GET", "/api/v1/members/M000001")[0]
        return st, time.monotonic() - t0

    with concurrent.futures.ThreadPoolExecutor(3) as ex:
        got = sorted(ex.map(read, range(3)))
    # the first call 0-0.6 s, the second 0.6-1.2 s, the third gives up at
    # 0.9 s while the second still holds the one call
    assert [st for st, _ in got] == [200, 200, 504], got
    assert 1.1 < max(t for st, t in got if st == 200) < 2.5, got
    assert got[2][1] < 1.5, got
    assert p.alive()


def test_adapter_bad_map_fails_at_start(env):
    for name, want in (("bad_map_type.json",
                        "line 8: objects.member[1].type"),
                       ("bad_map_syntax.json", "line 4")):
        r = subprocess.run([ADAPTER, "--listen", "127.0.0.1:1", "--legacy",
                            env.sim_c_url, "--map",
                            os.path.join(FIXTURES, name)],
                           capture_output=True, timeout=10)
        assert r.returncode == 1
        assert want in r.stderr.decode(), r.stderr.decode()
    assert subprocess.run([ADAPTER, "--help"],
                          capture_output=True).returncode == 0
    assert subprocess.run([ADAPTER, "--listen", "x"],
                          capture_output=True).returncode == 2
    assert subprocess.run([ADAPTER, "export", "--new-db", "x"],
                          capture_output=True).returncode == 2


# --- the migration into the new core ------------------------------------------

def export(legacy_db, new_db, *extra):
    r = subprocess.run([ADAPTER, "export", "--legacy-db", legacy_db,
                        "--new-db", new_db, "--json"] + list(extra),
                       capture_output=True, timeout=120, cwd=harness.ROOT)
    out = r.stdout.decode()
    return r.returncode, (json.loads(out) if out.strip() else None), \
        r.stderr.decode()


@pytest.mark.skipif(not os.path.exists(NEWCORE),
                    reason="cutover-newcore not built")
def test_migration_balances_on_full_seed(pg):
    old = pg.createdb("legacy_mig")
    new = pg.createdb("newcore_mig")
    for argv in ([SIM, "--db", old, "--init-schema", "--seed"],
                 [NEWCORE, "--db", new, "--init-schema"]):
        r = subprocess.run(argv, capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr.decode()
    # dirty data an old system accumulates
    pg.psql("legacy_mig", """
        INSERT INTO legacy.sp VALUES (' sku00001 ', 'dup', 100);
        INSERT INTO legacy.md VALUES ('S#01', 'bad code', 1);
        INSERT INTO legacy.md_qd VALUES ('S001', 9);
        UPDATE legacy.kc SET kcsl = -7
            WHERE mdbh = 'S002' AND spbm = 'SKU00002';
        INSERT INTO legacy.xsd (djh, mdbh, qd, zt, zje_fen, jf)
            VALUES ('LSOPEN1', 'S001', 1, 1, 12345, 0),
                   ('LSVOID1', 'S001', 1, 2, 500, 0);
    """)
    rc, rep, err = export(old, new)
    assert rc == 0, err
    t = {x["table"]: x for x in rep["tables"]}
    units = sum(on_hand(s, n) for s in range(1, 201) for n in range(1, 2001))
    bad = on_hand(2, 2)
    assert rep["balanced"] is True
    assert (t["stores"]["legacy_rows"], t["stores"]["migrated_rows"],
            t["stores"]["rejected_rows"]) == (201, 200, 1)
    assert (t["channels"]["legacy_rows"], t["channels"]["new_rows"]) == \
        (801, 800)
    assert (t["skus"]["legacy_rows"], t["skus"]["new_rows"]) == (2001, 2000)
    assert t["skus"]["new_total"] == sum(price_fen(n) for n in range(1, 2001))
    assert (t["stock"]["legacy_rows"], t["stock"]["new_rows"],
            t["stock"]["rejected_rows"]) == (400000, 399999, 1)
    assert t["stock"]["legacy_total"] == units - bad - 7
    assert t["stock"]["new_total"] == units - bad
    assert t["stock"]["rejected_total"] == -7
    assert t["members"]["new_total"] == sum(points(m)
                                            for m in range(1, 10001))
    assert rep["open_orders"] == {"legacy_count": 1, "legacy_fen": 12345,
                                  "new_count": 0, "new_fen": 0}
    kinds = {(i["kind"], i["table"], i["key"]) for i in rep["issues"]}
    assert ("duplicate", "skus", "SKU00001") in kinds
    assert ("bad_code", "stores", "S#01") in kinds
    assert ("bad_code", "channels", "S001") in kinds
    assert ("negative_stock", "stock", "S002/SKU00002") in kinds
    assert rep["issue_count"] == 4

    # what landed is what the report says, ledger openings included
    assert pg.psql("newcore_mig", "SELECT count(*), sum(on_hand) FROM"
                   " newcore.stock") == "399999|%d" % (units - bad)
    assert pg.psql("newcore_mig", "SELECT sum(delta) FROM newcore.ledger"
                   " WHERE kind = 'stock'") == str(units - bad)
    assert pg.psql("newcore_mig", "SELECT channels FROM newcore.stores WHERE"
                   " store_id = 'S001'") == "{pos,eshop,miniapp,marketplace}"
    assert pg.psql("newcore_mig", "SELECT price_fen FROM newcore.skus WHERE"
                   " sku = 'SKU00001'") == str(price_fen(1))
    assert pg.psql("newcore_mig", "SELECT tier FROM newcore.members WHERE"
                   " member_id = 'M003100'") == tier(points(3100))

    # a second run refuses a filled core, --replace redoes it cleanly
    rc, _, err = export(old, new)
    assert rc == 1 and "already holds" in err
    rc, rep2, err = export(old, new, "--replace")
    assert rc == 0 and rep2["balanced"], err
    assert pg.psql("newcore_mig", "SELECT count(*) FROM newcore.ledger") == \
        str(399999 + 10000)


# --- the legacy system's own database goes away and comes back --------------

def test_sim_database_down_is_503_then_recovers(env):
    own = harness.Pg("legacy-dbdown").start()
    procs = []
    try:
        db = own.createdb("legacy_down")
        r = subprocess.run([SIM, "--db", db, "--init-schema"],
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr.decode()
        own.psql("legacy_down", "INSERT INTO legacy.hy VALUES"
                 " ('M000007', 679, 1)")
        sub = Env()
        sub.dir, sub.db, sub.procs = env.dir, db, procs
        sim, sim_url = start_sim(sub, "sim-dbdown")
        ad, base = start_adapter(sub, "adapter-dbdown", sim_url)
        want = {"member_id": "M000007", "points": 679, "tier": "standard"}
        assert call(base, "GET", "/api/v1/members/M000007")[:2] == (200, want)
        own.stop()
        st, r, _ = call(base, "GET", "/api/v1/members/M000007")
        assert st == 503 and r["error"]["code"] == "unavailable"
        own.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            st, r, _ = call(base, "GET", "/api/v1/members/M000007")
            if st == 200:
                break
            time.sleep(0.2)
        assert (st, r) == (200, want)
        with open(sim.log_path, errors="replace") as f:
            assert "[error] legacy-store-sim: database" in f.read()
    finally:
        for p in procs:
            p.stop()
        own.destroy()


def test_sim_database_restart_costs_no_request(env):
    """After a restart of the legacy database every connection the sim
    holds is dead; the first request on each reconnects it and is served
    (a 503 here used to send a client back for a second try), and an
    order made then is applied once."""
    own = harness.Pg("legacy-dbrestart").start()
    procs = []
    try:
        db = own.createdb("legacy_restart")
        r = subprocess.run([SIM, "--db", db, "--init-schema", "--seed",
                            "--seed-stores", "1", "--seed-skus", "1"],
                           capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr.decode()
        sub = Env()
        sub.dir, sub.db, sub.procs = env.dir, db, procs
        sim, sim_url = start_sim(sub, "sim-dbrestart")
        ad, base = start_adapter(sub, "adapter-dbrestart", sim_url)
        path = "/api/v1/members/M000007"
        want = {"member_id": "M000007", "points": points(7),
                "tier": tier(points(7))}

        def read(_):
            return call(base, "GET", path)[:2]

        # every one of the sim's 4 connections made and used
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            assert list(ex.map(read, range(32))) == [(200, want)] * 32
        own.restart()
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            got = list(ex.map(read, range(16)))
        assert got == [(200, want)] * 16
        sale = {"store_id": "S001", "channel": "pos",
                "lines": [{"sku": "SKU00001", "qty": 1}],
                "payment": {"method": "cash"}}
        own.restart()
        st, r, _ = call(base, "POST", "/api/v1/orders", sale,
                        {"Idempotency-Key": "restart-1"})
        assert st == 201, r
        assert own.psql("legacy_restart", "SELECT count(*) FROM legacy.xsd"
                        " WHERE djh = '%s'" % r["order_id"]) == "1"
        assert own.psql("legacy_restart", "SELECT count(*) FROM legacy.xsd"
                        ) == "1"
        with open(sim.log_path, errors="replace") as f:
            log = f.read()
        assert "database connection was lost, reconnected" in log
        assert "[error]" not in log
    finally:
        for p in procs:
            p.stop()
        own.destroy()


# --- addresses: IPv6 and host names on both ends ----------------------------

@pytest.mark.parametrize("sim_listen,legacy,ad_listen,host", [
    ("[::1]:%d", "http://[::1]:%d", "[::1]:%d", "::1"),
    ("localhost:%d", "http://localhost:%d", "localhost:%d", "localhost"),
])
def test_adapter_ipv6_and_host_names(env, sim_listen, legacy, ad_listen,
                                     host):
    if "::1" in sim_listen and not harness.has_ipv6_loopback():
        pytest.skip("no ::1 on lo (ip -6 addr show lo)")
    sp, ap = harness.free_port(), harness.free_port()
    sim = harness.Proc([SIM, "--listen", sim_listen % sp, "--db", env.db],
                       os.path.join(env.dir, "sim-addr.log"))
    ad = harness.Proc([ADAPTER, "--listen", ad_listen % ap, "--legacy",
                       legacy % sp], os.path.join(env.dir, "ad-addr.log"),
                      cwd=harness.ROOT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                c = http.client.HTTPConnection(host, ap, timeout=5)
                c.request("GET", "/api/v1/members/M000001")
                r = c.getresponse()
                data = r.read()
                c.close()
                if r.status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, ad.log_tail() + sim.log_tail()
            time.sleep(0.05)
        member = json.loads(data)
        assert member["member_id"] == "M000001"
        assert sorted(member) == ["member_id", "points", "tier"]
        assert ("listening on " + ad_listen % ap) in ad.log_tail()
        assert ("listening on " + sim_listen % sp) in sim.log_tail()
    finally:
        assert ad.stop() == 0
        assert sim.stop() == 0


def test_listen_errors_are_named(env):
    for argv in [[SIM, "--db", env.db, "--listen", "[::1:80"],
                 [SIM, "--db", env.db, "--listen", "127.0.0.1:0"],
                 [ADAPTER, "--legacy", "http://x", "--listen", "nohost:1x"],
                 [ADAPTER, "--legacy", "http://x", "--listen", "1.2.3.4"],
                 [ADAPTER, "--legacy", "http://x", "--listen", "*:1",
                  "--request-timeout", "2d"],
                 [ADAPTER, "--legacy", "http://x", "--listen", "*:1",
                  "--threads", "0"],
                 [SIM, "--db", env.db, "--seed", "--idempotency-ttl", "1y"]]:
        r = subprocess.run(argv, capture_output=True, text=True,
                           cwd=harness.ROOT)
        assert r.returncode == 2, argv
        assert r.stderr.strip(), argv


# --- dual-run parity: the adapter answers as the new core does ---------------

@pytest.mark.skipif(not os.path.exists(NEWCORE),
                    reason="cutover-newcore not built")
def test_adapter_answers_like_the_new_core(env, pg):
    db = pg.createdb("newcore_parity")
    r = subprocess.run([NEWCORE, "--db", db, "--init-schema", "--seed"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    port = harness.free_port()
    core = harness.Proc([NEWCORE, "--listen", "127.0.0.1:%d" % port,
                         "--db", db], os.path.join(env.dir, "newcore.log"),
                        port=port)
    new = "http://127.0.0.1:%d" % port
    pay = {"method": "card"}
    calls = [
        ("POST", "/api/v1/orders", {
            "order_id": "PAR-1", "store_id": "S180", "channel": "eshop",
            "member_id": "M009000", "payment": pay,
            "lines": [{"sku": "SKU01800", "qty": 3},
                      {"sku": "SKU01801", "qty": 1, "unit_price": "0.99"}]},
         "par-1"),
        ("GET", "/api/v1/orders/PAR-1", None, None),
        ("GET", "/api/v1/members/M009000", None, None),
        ("GET", "/api/v1/inventory/S180/SKU01800", None, None),
        ("POST", "/api/v1/orders/PAR-1/cancel", None, "par-2"),
        ("POST", "/api/v1/orders/PAR-1/cancel", None, "par-3"),
        ("GET", "/api/v1/members/M009000", None, None),
        ("GET", "/api/v1/inventory/S180/SKU01800", None, None),
        ("POST", "/api/v1/inventory/adjust", {
            "store_id": "S180", "sku": "SKU01802", "delta": -3,
            "reason": "stocktake"}, "par-4"),
        ("POST", "/api/v1/inventory/adjust", {
            "store_id": "S180", "sku": "SKU01802", "delta": -100000,
            "reason": "damage"}, None),
        ("POST", "/api/v1/orders", {
            "store_id": "S180", "channel": "pos", "payment": pay,
            "lines": [{"sku": "SKU01803", "qty": 10000}]}, None),
        ("POST", "/api/v1/orders", {
            "store_id": "S180", "channel": "pos", "payment": pay,
            "lines": [{"sku": "SKU01803", "qty": 10001}]}, None),
        ("POST", "/api/v1/inventory/adjust", {
            "store_id": "S180", "sku": "SKU01802", "delta": 0,
            "reason": "stocktake"}, None),
        ("POST", "/api/v1/orders", {
            "store_id": "S180", "channel": "pos", "payment": pay,
            "member_id": "M999999", "lines": [{"sku": "SKU01803",
                                               "qty": 1}]}, None),
        ("POST", "/api/v1/orders", {
            "store_id": "S180", "channel": "pos", "lines": [{
                "sku": "SKU01803", "qty": 1, "unit_price": "1.00"}],
            "payment": {"method": "cash", "amount": "2.00"}}, None),
        ("POST", "/api/v1/orders", {
            "store_id": "S180", "channel": "pos", "payment": pay,
            "lines": []}, None),
        ("GET", "/api/v1/orders/PAR-404", None, None),
        ("GET", "/api/v1/members/M999999", None, None),
    ]
    try:
        for method, path, body, key in calls:
            headers = {"Idempotency-Key": key} if key else {}
            answers = []
            for base in (new, env.c):
                st, r, _ = call(base, method, path, body, headers)
                if r and "created_at" in r:
                    del r["created_at"]     # ms on one side, s on the other
                if r and "error" in r:
                    r = r["error"]["code"]  # messages differ by design
                answers.append((st, r))
            assert answers[0] == answers[1], "%s %s" % (method, path)
    finally:
        core.stop()
