"""Recording through real nginx (2 workers): every write exactly once,
bodies faithful (binary, gzip, chunked, empty, over the limit, spilled to a
temp file), a full log drops and counts without touching clients, and a
reload under traffic loses nothing."""

import base64
import concurrent.futures
import gzip
import hashlib
import http.server
import json
import os
import subprocess
import threading
import time

import pytest

import harness
from gateway import SECRETS

BIG = bytes(range(256)) * 4096          # 1 MiB, binary
BIN = bytes(range(256)) * 3


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen = []

    def log_message(self, *args):
        pass

    def _send(self, status, body, headers=(), chunked=False):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 100):
                part = body[i:i + 100]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        if status != 204:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        Upstream.seen.append(dict(self.headers))
        p = self.path
        if p.endswith("/bin"):
            self._send(200, BIN, [("Content-Type", "application/octet-stream")])
        elif p.endswith("/gz"):
            self._send(200, gzip.compress(b'{"a": 1}' * 50),
                       [("Content-Type", "application/json"),
                        ("Content-Encoding", "gzip")])
        elif p.endswith("/chunked"):
            self._send(200, b"x" * 1234, [("Content-Type", "text/plain")],
                       chunked=True)
        elif p.endswith("/empty"):
            self._send(204, b"")
        elif p.endswith("/big"):
            self._send(200, BIG, [("Content-Type", "application/octet-stream")])
        else:
            self._send(200, b'{"ok": true}', [("Content-Type",
                                               "application/json")])

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        Upstream.seen.append(dict(self.headers))
        self._send(201, b'{"echo": "%s"}' % hashlib.sha256(body).hexdigest()
                   .encode(), [("Content-Type", "application/json")])


CONF = """
    cutover_zone erp size=1m state={dir}/erp.state;
    upstream new_core {{ server 127.0.0.1:{up}; keepalive 8; }}
    upstream legacy {{ server 127.0.0.1:{up}; keepalive 8; }}
    server {{
        listen 127.0.0.1:{port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_buffer_size 4k;
        proxy_buffers 4 4k;
        location /api/ {{
            cutover erp;
            cutover_record all;
            cutover_log {dir}/log/erp.log segment={segment} {max};
            cutover_body_limit 64k;
            proxy_pass http://$cutover_upstream;
        }}
        location /cutover/ {{
            cutover_admin erp;
            cutover_admin_keys {dir}/keys;
        }}
    }}
"""


class Env:
    def __init__(self, segment="1m", max_=""):
        Upstream.seen = []
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
        self.srv.daemon_threads = True
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.port = harness.free_port()
        self.dir = harness.make_tempdir("record")
        os.makedirs(os.path.join(self.dir, "log"))
        os.chmod(os.path.join(self.dir, "log"), 0o777)
        with open(os.path.join(self.dir, "keys"), "w") as f:
            f.write("viewer viewer %s\n" % SECRETS["viewer"][1])
        self.nginx = harness.Nginx(CONF.format(
            dir=self.dir, up=self.srv.server_address[1], port=self.port,
            segment=segment, max=max_), directory=self.dir)
        self.nginx.start(self.port)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def records(self, expect=None, timeout=5.0):
        """The log's records; with expect, waits until there are that
        many."""
        return harness.log_records(os.path.join(self.dir, "log", "erp.log"),
                                   expect, timeout)

    def metrics(self):
        h = harness.sign_headers("GET", "/cutover/metrics", "", "viewer",
                                 SECRETS["viewer"][1])
        s, _, body = harness.http("GET", self.url("/cutover/metrics"), None, h)
        assert s == 200
        out = {}
        for line in body.decode().splitlines():
            if line.startswith("cutover_records"):
                name, value = line.rsplit(" ", 1)
                out[name] = int(value)
        return out

    def destroy(self):
        self.nginx.stop()
        bad = self.nginx.bad_log_lines()
        self.nginx.destroy()
        self.srv.shutdown()
        assert not bad, bad


@pytest.fixture
def env():
    e = Env()
    yield e
    e.destroy()


def body_of(rec, name):
    if name in rec:
        return rec[name].encode()
    return base64.b64decode(rec.get(name + "_b64", ""))


def post(env, i):
    body = json.dumps({"store_id": "S%03d" % (i % 50), "n": i,
                       "pad": "p" * (i % 300)})
    s, h, data = harness.http("POST", env.url("/api/v1/orders"), body,
                              {"X-Store-Id": "S%03d" % (i % 50),
                               "X-Channel": "pos",
                               "Content-Type": "application/json"})
    assert s == 201
    return body


def test_every_write_recorded_exactly_once(env):
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        bodies = list(ex.map(lambda i: post(env, i), range(600)))
    recs = env.records(600)
    assert len(recs) == 600
    assert len({r["id"] for r in recs}) == 600
    assert sorted(hashlib.sha256(body_of(r, "req_body")).hexdigest()
                  for r in recs) == \
        sorted(hashlib.sha256(b.encode()).hexdigest() for b in bodies)
    for r in recs:
        assert r["status"] == 201 and r["method"] == "POST"
        assert r["store"] == r["key"].split(":")[0]
        # the primary answered with the hash of what it received
        assert json.loads(body_of(r, "resp_body"))["echo"] == \
            hashlib.sha256(body_of(r, "req_body")).hexdigest()
    m = env.metrics()
    assert m['cutover_records_total{zone="erp"}'] == 600
    assert sum(v for k, v in m.items() if "dropped" in k) == 0


def test_request_ids_reach_the_upstream(env):
    post(env, 1)
    harness.http("POST", env.url("/api/v1/orders"), "{}",
                 {"X-Store-Id": "S1", "Idempotency-Key": "till-7-0042"})
    # two workers may write the two records in either order: match by id
    recs = {r["id"]: r for r in env.records(2)}
    sent = [h for h in Upstream.seen if "X-Cutover-Request-Id" in h]
    assert len(sent) == 2 and len(recs) == 2
    assert set(recs) == {h["X-Cutover-Request-Id"] for h in sent}
    assert sent[0]["Idempotency-Key"] == sent[0]["X-Cutover-Request-Id"]
    # a client's own key is kept for both sides
    assert sent[1]["Idempotency-Key"] == "till-7-0042"
    assert ["Idempotency-Key", "till-7-0042"] in \
        recs[sent[1]["X-Cutover-Request-Id"]]["req_headers"]


@pytest.mark.parametrize("kind", ["bin", "gz", "chunked", "empty", "big",
                                  "json"])
def test_response_bodies_recorded_faithfully(env, kind):
    s, h, data = harness.http("GET", env.url("/api/v1/" + kind),
                              headers={"X-Store-Id": "S001",
                                       "Accept-Encoding": "gzip"})
    assert s in (200, 204)
    rec = env.records(1)[-1]
    assert rec["status"] == s
    assert rec["resp_sha256"] == hashlib.sha256(data).hexdigest()
    assert rec["resp_body_len"] == len(data)
    kept = body_of(rec, "resp_body")
    assert data.startswith(kept)
    if kind == "big":
        assert rec["resp_truncated"] and len(kept) == 64 * 1024
    else:
        assert not rec["resp_truncated"] and kept == data
    if kind == "gz":
        assert ["Content-Encoding", "gzip"] in rec["resp_headers"]
        assert gzip.decompress(kept).startswith(b'{"a": 1}')


def test_request_over_limit_is_dropped_and_counted(env):
    s, _, _ = harness.http("POST", env.url("/api/v1/orders"),
                           "x" * (70 * 1024), {"X-Store-Id": "S1"})
    assert s == 201
    time.sleep(0.2)
    assert env.records() == []
    assert env.metrics()['cutover_records_dropped_total{zone="erp",'
                         'reason="too_large"}'] == 1
    assert "over cutover_body_limit" in env.nginx.log_text()


def test_full_log_drops_without_client_errors():
    e = Env(segment="8k", max_="max=16k")
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            list(ex.map(lambda i: post(e, i), range(400)))   # all 201
        deadline = time.monotonic() + 5
        while True:
            m = e.metrics()
            written = m['cutover_records_total{zone="erp"}']
            dropped = m['cutover_records_dropped_total{zone="erp",'
                        'reason="full"}']
            if written + dropped >= 400 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert dropped > 0 and written > 0
        assert written + dropped == 400
        assert len(e.records(written)) == written
        assert "is full" in e.nginx.log_text()
    finally:
        e.destroy()


def test_reload_under_traffic_loses_no_record(env):
    stop = threading.Event()
    sent = []

    def traffic():
        i = 0
        while not stop.is_set():
            sent.append(post(env, i))
            i += 1

    threads = [threading.Thread(target=traffic) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(3):
        env.nginx.reload()
    stop.set()
    for t in threads:
        t.join()
    recs = env.records(len(sent))
    assert len(sent) > 50
    assert len(recs) == len(sent)
    assert len({r["id"] for r in recs}) == len(sent)
