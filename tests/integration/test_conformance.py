"""One canonical API on both sides: the new core (on its PostgreSQL) and the
legacy adapter (in front of legacy-store-sim on its PostgreSQL) answer the
same bad requests with the same status and error code, in the JSON error
shape; and both keep serving while 2 000 slow clients hold connections."""

import json
import os
import resource
import socket
import subprocess
import threading
import time
import uuid

import pytest

import harness

NEWCORE = harness.bin_path("cutover-newcore")
SIM = harness.bin_path("legacy-store-sim")
ADAPTER = harness.bin_path("cutover-legacy-adapter")

# the slow-client test holds this many connections to each back end
SLOW = 2000
# the back ends' --request-timeout in this module
DEADLINE = 5


class Side:
    def __init__(self, name, proc, port):
        self.name = name
        self.proc = proc
        self.port = port
        self.url = "http://127.0.0.1:%d" % port


def limits():
    return ["--request-timeout", "%ds" % DEADLINE, "--per-ip-connections",
            str(SLOW + 500), "--max-connections", str(SLOW + 1000)]


@pytest.fixture(scope="module")
def sides(pg):
    tmp = harness.make_tempdir("conformance")
    procs = []
    try:
        newdb = pg.createdb("conf_newcore")
        legdb = pg.createdb("conf_legacy")
        r = subprocess.run([NEWCORE, "--db", newdb, "--init-schema",
                            "--seed"], capture_output=True, timeout=120)
        assert r.returncode == 0, r.stderr.decode()
        r = subprocess.run([SIM, "--db", legdb, "--init-schema", "--seed"],
                           capture_output=True, timeout=120)
        assert r.returncode == 0, r.stderr.decode()

        ports = [harness.free_port() for _ in range(3)]
        core = harness.Proc([NEWCORE, "--listen", "127.0.0.1:%d" % ports[0],
                             "--db", newdb] + limits(),
                            os.path.join(tmp, "newcore.log"), port=ports[0])
        procs.append(core)
        sim = harness.Proc([SIM, "--listen", "127.0.0.1:%d" % ports[1],
                            "--db", legdb, "--no-quirks"],
                           os.path.join(tmp, "sim.log"), port=ports[1])
        procs.append(sim)
        adapter = harness.Proc([ADAPTER, "--listen",
                                "127.0.0.1:%d" % ports[2], "--legacy",
                                "http://127.0.0.1:%d" % ports[1]] + limits(),
                               os.path.join(tmp, "adapter.log"),
                               port=ports[2], cwd=harness.ROOT)
        procs.append(adapter)
        yield {"newcore": Side("newcore", core, ports[0]),
               "adapter": Side("adapter", adapter, ports[2])}
        for p in reversed(procs):
            assert p.stop() == 0, p.log_tail()
        procs = []
    finally:
        for p in procs:
            p.stop()
        harness.remove_tempdir(tmp)


def order(**over):
    body = {"store_id": "S010", "channel": "pos",
            "lines": [{"sku": "SKU00010", "qty": 1}],
            "payment": {"method": "card"}}
    body.update(over)
    return body


def lines(n):
    return [{"sku": "SKU%05d" % (i % 2000 + 1), "qty": 1} for i in range(n)]


# (name, method, path, body, status, code, text the message must hold)
TABLE = [
    ("unknown field", "POST", "/api/v1/orders", order(coupon="X1"),
     400, "invalid_request", "coupon"),
    ("unknown line field", "POST", "/api/v1/orders",
     order(lines=[{"sku": "SKU00010", "qty": 1, "gift": True}]),
     400, "invalid_request", "gift"),
    ("unknown payment field", "POST", "/api/v1/orders",
     order(payment={"method": "card", "tip": "1.00"}),
     400, "invalid_request", "tip"),
    ("unknown adjust field", "POST", "/api/v1/inventory/adjust",
     {"store_id": "S010", "sku": "SKU00010", "delta": 1,
      "reason": "receipt", "note": "x"}, 400, "invalid_request", "note"),
    ("order id with a slash", "POST", "/api/v1/orders",
     order(order_id="A/1"), 400, "invalid_request", "order_id"),
    ("order id with a quote", "POST", "/api/v1/orders",
     order(order_id='A"1'), 400, "invalid_request", "order_id"),
    ("order id with a space", "POST", "/api/v1/orders",
     order(order_id="A 1"), 400, "invalid_request", "order_id"),
    ("order id of 65", "POST", "/api/v1/orders", order(order_id="A" * 65),
     400, "invalid_request", "order_id"),
    ("empty order id", "POST", "/api/v1/orders", order(order_id=""),
     400, "invalid_request", "order_id"),
    ("store id with a slash", "POST", "/api/v1/orders",
     order(store_id="S/1"), 400, "invalid_request", "store_id"),
    ("sku with a quote", "POST", "/api/v1/orders",
     order(lines=[{"sku": 'SKU"1', "qty": 1}]), 400, "invalid_request",
     "sku"),
    ("101 lines", "POST", "/api/v1/orders", order(lines=lines(101)),
     400, "invalid_request", "100 lines"),
    ("5 000 lines", "POST", "/api/v1/orders", order(lines=lines(5000)),
     413, "invalid_request", "65536"),
    ("70 KB body", "POST", "/api/v1/orders",
     json.dumps(order(order_id="x" * 70000)), 413, "invalid_request",
     "65536"),
    ("bad JSON", "POST", "/api/v1/orders", '{"store_id": ',
     400, "invalid_request", ""),
    ("empty body", "POST", "/api/v1/orders", "", 400, "invalid_request", ""),
    ("array body", "POST", "/api/v1/orders", "[1]", 400, "invalid_request",
     ""),
    ("PUT orders", "PUT", "/api/v1/orders", "{}", 405,
     "method_not_allowed", ""),
    ("GET orders", "GET", "/api/v1/orders", None, 405,
     "method_not_allowed", ""),
    ("DELETE member", "DELETE", "/api/v1/members/M000001", None, 405,
     "method_not_allowed", ""),
    ("odd method", "BREW", "/api/v1/orders", None, 405,
     "method_not_allowed", ""),
    ("POST health", "POST", "/health", "{}", 405, "method_not_allowed", ""),
    ("unknown route", "GET", "/api/v1/nothing", None, 404, "not_found", ""),
    ("outside the API", "GET", "/nothing", None, 404, "not_found", ""),
    ("order path with a quote", "GET", "/api/v1/orders/a%22b", None, 404,
     "not_found", ""),
    ("order path of 65", "GET", "/api/v1/orders/" + "A" * 65, None, 404,
     "not_found", ""),
    ("cancel of a bad id", "POST", "/api/v1/orders/a%20b/cancel", None, 404,
     "not_found", ""),
    ("trailing slash", "GET", "/api/v1/members/", None, 404, "not_found",
     ""),
]


def ask(side, method, path, body):
    if isinstance(body, dict):
        body = json.dumps(body)
    return harness.http(method, side.url + path, body,
                        {"Content-Type": "application/json",
                         "Idempotency-Key": str(uuid.uuid4())})


@pytest.mark.parametrize("name,method,path,body,status,code,text", TABLE,
                         ids=[row[0] for row in TABLE])
def test_same_answer_on_both_sides(sides, name, method, path, body, status,
                                   code, text):
    for side in sides.values():
        st, hdrs, data = ask(side, method, path, body)
        where = "%s: %s %s" % (side.name, method, path[:60])
        assert hdrs.get("content-type") == "application/json", where
        e = json.loads(data)
        assert list(e) == ["error"], (where, e)
        assert (st, e["error"]["code"]) == (status, code), (where, e)
        assert isinstance(e["error"]["message"], str), where
        assert text in e["error"]["message"], (where, e)
        if status == 405:
            assert hdrs.get("allow") in ("GET", "POST"), where


def test_ids_with_dots_work_on_both_sides(sides):
    """The id alphabet [A-Za-z0-9._-] is accepted whole on both sides."""
    oid = "PO.%s_x-1" % uuid.uuid4().hex[:8]
    for side in sides.values():
        st, _, data = ask(side, "POST", "/api/v1/orders",
                          order(order_id=oid))
        assert st == 201, (side.name, data)
        st, _, data = ask(side, "GET", "/api/v1/orders/" + oid, None)
        assert st == 200 and json.loads(data)["order_id"] == oid, side.name


# --- slow clients ------------------------------------------------------------

def slow_clients(port, n):
    """n connections from 127.0.0.2, each sending a request line and one
    header, then nothing more than a byte now and then."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        s.setblocking(False)
        socks.append(s)
    return socks


def closed(s):
    """True when the server closed the connection."""
    try:
        return s.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


@pytest.mark.parametrize("which", ["newcore", "adapter"])
def test_slow_clients_leave_normal_requests_served(sides, which):
    side = sides[which]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < SLOW + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (min(hard, SLOW + 1000), hard))
    t0 = time.monotonic()
    socks = slow_clients(side.port, SLOW)
    stop = threading.Event()

    def trickle():
        while not stop.wait(1.0):
            for s in socks:
                try:
                    s.send(b"X")
                except OSError:
                    pass

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        served = []
        for i in range(10):
            t1 = time.monotonic()
            st, _, data = harness.http("GET", side.url +
                                       "/api/v1/members/M%06d" % (i + 1),
                                       timeout=5)
            served.append((st, time.monotonic() - t1))
        assert [st for st, _ in served] == [200] * 10, served
        assert max(d for _, d in served) < 3, served
        # all of them were let in and are still held: the deadline, not
        # a limit on accepting, is what ends them
        held = time.monotonic() - t0
        assert held < DEADLINE, "connecting took %.1fs" % held
        assert sum(closed(s) for s in socks) == 0

        deadline = t0 + DEADLINE + 4
        while time.monotonic() < deadline:
            if all(closed(s) for s in socks):
                break
            time.sleep(0.25)
        gone = time.monotonic() - t0
        left = sum(not closed(s) for s in socks)
        assert left == 0, "%d slow connections still open after %.1fs" % (
            left, gone)
        assert gone >= DEADLINE - 1
    finally:
        stop.set()
        t.join()
        for s in socks:
            s.close()
    assert side.proc.alive()
    assert "without a whole request within %ds" % DEADLINE in \
        side.proc.log_tail(50)
    # and normal service afterwards
    st, _, _ = harness.http("GET", side.url + "/api/v1/members/M000001")
    assert st == 200


@pytest.mark.parametrize("which", ["newcore", "adapter"])
def test_per_address_limit(sides, which, tmpdir_w):
    """--per-ip-connections: one address past its share is turned away
    while another address is served."""
    side = sides[which]
    port = harness.free_port()
    argv = list(side.proc.argv)
    i = argv.index("--listen")
    argv[i + 1] = "127.0.0.1:%d" % port
    argv[argv.index("--per-ip-connections") + 1] = "5"
    p = harness.Proc(argv, os.path.join(tmpdir_w, "limited.log"), port=port,
                     cwd=harness.ROOT)
    try:
        # wait_port's probe connection must be gone before counting
        time.sleep(0.3)
        socks = slow_clients(port, 10)
        time.sleep(0.5)
        shut = sum(closed(s) for s in socks)
        st, _, _ = harness.http("GET", "http://127.0.0.1:%d/api/v1/members/"
                                "M000001" % port)
        for s in socks:
            s.close()
        assert shut == 5
        assert st == 200
    finally:
        assert p.stop() == 0


@pytest.mark.parametrize("key,status", [
    ("k" * 255, 201), ("k" * 256, 400), ("a b", 400), ("caf\u00e9", 400),
    ("~!#$%&'*+-.^_`|", 201)],
    ids=["255 chars", "256 chars", "a space", "not ASCII", "punctuation"])
def test_same_idempotency_keys_on_both_sides(sides, key, status):
    """Both sides take the same Idempotency-Keys (1-255 printable ASCII
    characters; the legacy system's serial numbers hold 64, the adapter
    maps a longer key to one) and refuse the same ones alike; a key sent
    again gets the first answer."""
    for side in sides.values():
        body = json.dumps(order(order_id="IK-%s" % uuid.uuid4().hex[:12]))
        head = {"Content-Type": "application/json",
                "Idempotency-Key": key.encode("utf-8").decode("latin-1")}
        st, hdrs, data = harness.http("POST", side.url + "/api/v1/orders",
                                      body, head)
        where = "%s: key of %d" % (side.name, len(key))
        assert st == status, (where, data)
        if status == 201:
            again = harness.http("POST", side.url + "/api/v1/orders", body,
                                 head)
            assert (again[0], json.loads(again[2])) \
                == (st, json.loads(data)), where
        if status == 400:
            e = json.loads(data)["error"]
            assert e["code"] == "invalid_request", (where, e)
            assert "Idempotency-Key must be 1-255 printable ASCII" \
                in e["message"], (where, e)
