"""cutover-shadowd and cutover-logtool against real processes.

Records are written with `cutover-logtool write` (as nginx would write
them), replayed by the real cutover-shadowd to two small HTTP back ends
(one per side) that record every delivery and, like the real back ends,
apply each Idempotency-Key once.
"""

import base64
import hashlib
import http.server
import json
import os
import random
import re
import socket
import subprocess
import threading
import time

import pytest

import harness

SHADOWD = harness.bin_path("cutover-shadowd")
LOGTOOL = harness.bin_path("cutover-logtool")


class Backend:
    """One side: records deliveries, idempotent per Idempotency-Key."""

    def __init__(self, name, delay=0.0, fail_status=None, host="127.0.0.1"):
        self.name = name
        self.delay = delay
        self.fail_status = fail_status
        self.lock = threading.Lock()
        self.deliveries = []        # (key, method, path, headers, body)
        self.applied = {}           # key -> response body
        self.per_store = {}         # store -> [seq, ...] in apply order
        self.active = 0
        self.max_active = 0
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _serve(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                backend.handle(self, body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve
            do_HEAD = _serve

        server = http.server.ThreadingHTTPServer
        if ":" in host:
            server = type("Server6", (server,),
                          {"address_family": socket.AF_INET6})
        self.httpd = server((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = "http://%s:%d" % ("[%s]" % host if ":" in host else host,
                                     self.port)
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def handle(self, req, body):
        key = req.headers.get("Idempotency-Key")
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.deliveries.append((key, req.command, req.path,
                                    {k.lower(): v for k, v in
                                     req.headers.items()}, body))
        try:
            if self.delay:
                time.sleep(self.delay * random.random())
            if self.fail_status:
                status, out = self.fail_status, b'{"error":{"code":"x"}}'
            else:
                with self.lock:
                    if key not in self.applied:
                        self.applied[key] = json.dumps(
                            {"side": self.name, "path": req.path,
                             "sha256": hashlib.sha256(body).hexdigest()}
                        ).encode()
                        store = req.headers.get("X-Store-Id")
                        try:
                            seq = json.loads(body or b"{}").get("seq")
                        except ValueError:
                            seq = None
                        self.per_store.setdefault(store, []).append(seq)
                    out = self.applied[key]
                status = 201 if req.command == "POST" else 200
            req.send_response(status)
            req.send_header("Content-Type", "application/json")
            req.send_header("Content-Length", str(len(out)))
            req.end_headers()
            if req.command != "HEAD":
                req.wfile.write(out)
        except (BrokenPipeError, ConnectionResetError):
            pass                        # shadowd abandoned it (SIGTERM)
        finally:
            with self.lock:
                self.active -= 1

    def keys(self):
        with self.lock:
            return [d[0] for d in self.deliveries]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def record(i, store, side, seq=None, body=None, time_us=None, extra=None):
    """One record as a JSON line for `cutover-logtool write`."""
    if body is None:
        body = json.dumps({"store_id": store, "seq": seq, "n": i,
                           "pad": "x" * (i % 50)})
    rec = {"id": "%032x" % (0xC0FFEE000000 + i), "side": side,
           "zone": "erp", "rule": "default", "bucket": i % 10000,
           "key": "%s:pos" % store, "store": store, "channel": "pos",
           "version": 1, "method": "POST", "uri": "/api/v1/orders?n=%d" % i,
           "req_headers": [["Content-Type", "application/json"],
                           ["X-Store-Id", store], ["X-Channel", "pos"],
                           ["Connection", "keep-alive"],
                           ["Host", "gateway.example"],
                           ["Transfer-Encoding", "chunked"],
                           ["X-Empty", ""],
                           ["X-Long", "v" * (9000 if i % 50 == 0 else 9)]],
           "req_body": body, "status": 201,
           "resp_headers": [["Content-Type", "application/json"]],
           "resp_body": '{"side":"%s"}' % side,
           "content_type": "application/json", "upstream_ms": 1.5}
    if time_us is not None:
        rec["time_us"] = time_us
    rec.update(extra or {})
    return rec


def write_log(log, records, segment_size=None):
    argv = [LOGTOOL, "write", log]
    if segment_size:
        argv += ["--segment-size", str(segment_size)]
    text = "".join(json.dumps(r) + "\n" for r in records)
    r = subprocess.run(argv, input=text.encode(), capture_output=True)
    assert r.returncode == 0, r.stderr.decode()


def segments(log):
    d, base = os.path.split(log)
    return sorted(f for f in os.listdir(d)
                  if re.fullmatch(re.escape(base) + r"\.\d{20}", f))


def start_shadowd(tmp, new, legacy, name="shadowd", host="127.0.0.1",
                  **over):
    mport = harness.free_port()
    bracketed = "[%s]" % host if ":" in host else host
    cfg = {"log": os.path.join(tmp, "erp.log"),
           "checkpoint": os.path.join(tmp, "erp.ckpt"),
           "new": new, "legacy": legacy,
           "outbox": os.path.join(tmp, "outbox"),
           "metrics_listen": "%s:%d" % (bracketed, mport),
           "concurrency": 16, "timeout_ms": 2000, "retries": 3,
           "retry_backoff_ms": 20, "poll_ms": 20, "grace_ms": 200,
           "flush_ms": 50}
    cfg.update(over)
    path = os.path.join(tmp, name + ".json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    proc = harness.Proc([SHADOWD, "--config", path],
                        os.path.join(tmp, name + ".log"), port=mport,
                        host=host)
    proc.metrics_url = "http://%s:%d/metrics" % (bracketed, mport)
    proc.cfg = cfg
    proc.cfg_path = path
    return proc


def metrics(proc):
    status, _, body = harness.http("GET", proc.metrics_url)
    assert status == 200
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def caught_up(proc, read=None, corrupt=None, unread=False):
    """One scrape (two could straddle the start, when nothing is read
    and nothing held yet): nothing held (with unread, no log bytes left
    either), and as many records read, or corrupt frames seen, as given."""
    m = metrics(proc)
    return (m["cutover_shadow_lag_records"] == 0
            and (not unread or m["cutover_shadow_lag_bytes"] == 0)
            and (read is None or m["cutover_shadow_records_read_total"]
                 == read)
            and (corrupt is None
                 or m["cutover_shadow_corrupt_frames_total"] >= corrupt))


def wait_for(cond, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s" % what)


def read_checkpoint(tmp):
    with open(os.path.join(tmp, "erp.ckpt")) as f:
        m = re.fullmatch(r"seq (\d+) off (\d+)\n", f.read())
    return int(m.group(1)), int(m.group(2))


@pytest.fixture
def sides():
    new, legacy = Backend("new"), Backend("legacy")
    yield new, legacy
    new.stop()
    legacy.stop()


# ---------------------------------------------------------------------------


def test_programs_answer_help_and_usage_errors(tmpdir_w):
    for prog in (SHADOWD, LOGTOOL):
        r = subprocess.run([prog, "--help"], capture_output=True)
        assert r.returncode == 0 and b"usage" in r.stdout
        r = subprocess.run([prog, "--bogus"], capture_output=True)
        assert r.returncode == 2
    bad = os.path.join(tmpdir_w, "bad.json")
    with open(bad, "w") as f:
        f.write('{"log": "/x", "concurrency": -1}')
    r = subprocess.run([SHADOWD, "--config", bad], capture_output=True)
    assert r.returncode == 2
    assert b"concurrency" in r.stderr


def test_logtool_round_trip_keeps_bodies(tmpdir_w):
    log = os.path.join(tmpdir_w, "erp.log")
    blob = bytes(range(256)) * 3
    recs = [record(1, "S001", "new"), record(2, "S002", "legacy")]
    del recs[1]["resp_body"]
    recs[1]["resp_body_b64"] = base64.b64encode(blob).decode()
    write_log(log, recs)
    r = subprocess.run([LOGTOOL, "dump", log], capture_output=True)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert [x["id"] for x in lines] == [recs[0]["id"], recs[1]["id"]]
    assert lines[0]["req_body"] == recs[0]["req_body"]
    assert base64.b64decode(lines[1]["resp_body_b64"]) == blob
    assert lines[1]["resp_sha256"] == hashlib.sha256(blob).hexdigest()
    assert lines[1]["resp_body_len"] == len(blob)
    # --from starts at a frame boundary given by a previous dump
    r = subprocess.run([LOGTOOL, "dump", log, "--from", "%d:%d" % (
        lines[1]["segment"], lines[1]["offset"])], capture_output=True)
    assert [json.loads(x)["id"] for x in r.stdout.decode().splitlines()] \
        == [recs[1]["id"]]
    # a bad line is refused with its number, lines before it are kept
    r = subprocess.run([LOGTOOL, "write", log],
                       input=b'{"uri": "/ok"}\n{"uri": 5}\n',
                       capture_output=True)
    assert r.returncode == 1 and b"line 2" in r.stderr


def test_every_record_replayed_once_to_the_other_side(tmpdir_w, sides):
    new, legacy = sides
    log = os.path.join(tmpdir_w, "erp.log")
    stores = ["S%03d" % i for i in range(1, 9)]
    recs, seqs = [], {}
    for i in range(400):
        store = stores[i % len(stores)]
        seqs[store] = seqs.get(store, 0) + 1
        recs.append(record(i, store, "new" if i % 3 else "legacy",
                           seq=seqs[store]))
    write_log(log, recs, segment_size=16384)
    assert len(segments(log)) >= 4
    new.delay = legacy.delay = 0.004

    proc = start_shadowd(tmpdir_w, new.url, legacy.url)
    try:
        wait_for(lambda: len(new.keys()) + len(legacy.keys()) >= 400,
                 what="400 deliveries")
        wait_for(lambda: caught_up(proc, unread=True), what="lag 0")
        m = metrics(proc)
    finally:
        assert proc.stop() == 0

    # exactly once, to the side that did NOT serve it
    by_id = {r["id"]: r for r in recs}
    to_new, to_legacy = new.keys(), legacy.keys()
    assert len(to_new) + len(to_legacy) == 400
    assert sorted(to_new + to_legacy) == sorted(by_id)
    assert all(by_id[k]["side"] == "legacy" for k in to_new)
    assert all(by_id[k]["side"] == "new" for k in to_legacy)

    for key, method, path, headers, body in new.deliveries + \
            legacy.deliveries:
        rec = by_id[key]
        assert method == "POST" and path == rec["uri"]
        assert hashlib.sha256(body).digest() == \
            hashlib.sha256(rec["req_body"].encode()).digest()
        assert headers["x-cutover-request-id"] == key
        assert headers["x-cutover-replay"] == "1"
        assert headers["x-store-id"] == rec["store"]
        assert headers["content-type"] == "application/json"
        assert headers.get("host", "").startswith("127.0.0.1")
        assert "transfer-encoding" not in headers
        assert headers["x-empty"] == ""
        assert headers["x-long"] == dict(rec["req_headers"])["X-Long"]

    # per-store log order on each side, while stores ran concurrently
    for side in (new, legacy):
        for store, got in side.per_store.items():
            assert got == sorted(got), (side.name, store, got)
    assert new.max_active + legacy.max_active > 2

    assert m["cutover_shadow_records_read_total"] == 400
    assert m["cutover_shadow_replayed_total"] == 400
    assert m["cutover_shadow_failed_total"] == 0
    assert m["cutover_shadow_corrupt_frames_total"] == 0
    verdicts = sum(v for k, v in m.items()
                   if k.startswith("cutover_shadow_verdicts_total"))
    assert verdicts == 400

    # the checkpoint is at the end of the log; consumed segments are gone
    segs = segments(log)
    seq, off = read_checkpoint(tmpdir_w)
    assert len(segs) == 1 and int(segs[0].rsplit(".", 1)[1]) == seq
    assert off == os.path.getsize(os.path.join(tmpdir_w, segs[0]))


@pytest.mark.skipif(not harness.has_ipv6_loopback(),
                    reason="no IPv6 loopback (ip -6 addr show lo)")
def test_shadowd_over_ipv6(tmpdir_w):
    """Both sides and the metrics listener on [::1]."""
    new, legacy = Backend("new", host="::1"), Backend("legacy", host="::1")
    try:
        write_log(os.path.join(tmpdir_w, "erp.log"),
                  [record(i, "S%03d" % (i % 4 + 1),
                          "new" if i % 2 else "legacy") for i in range(20)])
        proc = start_shadowd(tmpdir_w, new.url, legacy.url, host="::1")
        try:
            wait_for(lambda: len(new.keys()) + len(legacy.keys()) >= 20,
                     what="20 deliveries over IPv6")
            wait_for(lambda: caught_up(proc, read=20), what="lag 0")
        finally:
            assert proc.stop() == 0
        assert len(new.keys()) == 10 and len(legacy.keys()) == 10
    finally:
        new.stop()
        legacy.stop()


SCHED_IDLE = 5


def proc_nice_and_cpu(pid):
    """The (niceness, scheduling policy) of each thread, and user + system
    CPU seconds."""
    nice = set()
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            fields = f.read().rsplit(")", 1)[1].split()
            nice.add((int(fields[16]), int(fields[38])))
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return nice, (int(fields[11]) + int(fields[12])) / os.sysconf(
        "SC_CLK_TCK")


def test_methods_replayed_alike_on_reused_transfers_and_nice(tmpdir_w,
                                                             sides):
    """One key, so its records go one after the other over the same
    reused transfer: each keeps its own method and body whatever the one
    before it was.  shadowd runs at the configured niceness and under
    SCHED_IDLE (every thread) and reports its own CPU time."""
    new, legacy = sides
    shapes = [("POST", "{\"a\":1}"), ("GET", ""), ("HEAD", ""),
              ("DELETE", ""), ("PUT", "{\"b\":2}"), ("GET", "{\"c\":3}"),
              ("HEAD", ""), ("POST", ""), ("GET", ""), ("PATCH", "{}"),
              ("DELETE", "{\"d\":4}"), ("GET", "")]
    recs = [record(i, "S001", "legacy", body=body,
                   extra={"method": method})
            for i, (method, body) in enumerate(shapes * 3)]
    write_log(os.path.join(tmpdir_w, "erp.log"), recs)

    proc = start_shadowd(tmpdir_w, new.url, legacy.url, nice=13)
    try:
        wait_for(lambda: caught_up(proc, read=len(recs)), what="lag 0")
        m = metrics(proc)
        nice, cpu = proc_nice_and_cpu(proc.pid)
    finally:
        assert proc.stop() == 0

    got = [(d[0], d[1], d[4], d[3].get("content-length"))
           for d in new.deliveries]
    want = [(r["id"], r["method"], r["req_body"].encode(),
             str(len(r["req_body"])) if r["req_body"]
             or r["method"] in ("POST", "PUT", "PATCH") else None)
            for r in recs]
    assert got == want
    assert m["cutover_shadow_replayed_total"] == len(recs)

    assert nice == {(13, SCHED_IDLE)}
    assert m["cutover_shadow_nice"] == 13
    assert m["cutover_shadow_sched_idle"] == 1
    assert 0 < m["cutover_shadow_process_cpu_seconds_total"] <= cpu + 0.02
    with open(proc.log_path) as f:
        assert re.search(r"\[info\] cutover-shadowd: niceness 13 "
                         r"\(was \d+\)", f.read())


def test_a_niceness_it_may_not_set_is_a_warning_not_a_stop(tmpdir_w,
                                                          sides):
    """Started at niceness 15 by a user who may not lower it, shadowd
    warns once and replays at 15."""
    new, legacy = sides
    write_log(os.path.join(tmpdir_w, "erp.log"),
              [record(i, "S%03d" % i, "legacy") for i in range(10)])
    mport = harness.free_port()
    cfg = {"log": os.path.join(tmpdir_w, "erp.log"),
           "checkpoint": os.path.join(tmpdir_w, "erp.ckpt"),
           "new": new.url, "legacy": legacy.url,
           "outbox": os.path.join(tmpdir_w, "outbox"),
           "metrics_listen": "127.0.0.1:%d" % mport, "poll_ms": 20}
    path = os.path.join(tmpdir_w, "shadowd.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    argv = ["nice", "-n", "15", SHADOWD, "--config", path]
    if os.geteuid() == 0:
        argv[:0] = ["setpriv", "--reuid=nobody", "--regid=nogroup",
                    "--clear-groups"]
    proc = harness.Proc(argv, os.path.join(tmpdir_w, "shadowd.log"),
                        port=mport)
    proc.metrics_url = "http://127.0.0.1:%d/metrics" % mport
    try:
        wait_for(lambda: caught_up(proc, read=10), what="lag 0")
        m = metrics(proc)
        nice, _ = proc_nice_and_cpu(proc.pid)
    finally:
        assert proc.stop() == 0
    assert len(new.keys()) == 10
    assert m["cutover_shadow_replayed_total"] == 10
    assert m["cutover_shadow_nice"] == 15 and nice == {(15, SCHED_IDLE)}
    with open(proc.log_path) as f:
        text = f.read()
    assert re.search(r"\[warn\] cutover-shadowd: cannot set niceness 10 "
                     r"\(it stays 15\): Permission denied", text), text


def test_kill9_mid_stream_loses_and_duplicates_nothing(tmpdir_w, sides):
    new, legacy = sides
    log = os.path.join(tmpdir_w, "erp.log")
    n = 1500
    recs = [record(i, "S%03d" % (i % 20), "legacy", seq=i // 20)
            for i in range(n)]
    write_log(log, recs, segment_size=65536)
    new.delay = 0.002

    proc = start_shadowd(tmpdir_w, new.url, legacy.url, concurrency=8)
    wait_for(lambda: len(new.keys()) >= n // 3, what="a third delivered")
    proc.kill9()
    first = len(new.keys())
    assert first < n

    # more traffic arrives while shadowd is down
    more = [record(n + i, "S%03d" % (i % 20), "legacy",
                   seq=(n + i) // 20) for i in range(200)]
    write_log(log, more, segment_size=65536)
    proc = start_shadowd(tmpdir_w, new.url, legacy.url, name="shadowd2",
                         concurrency=8)
    try:
        wait_for(lambda: len(new.applied) >= n + 200, what="all applied")
        wait_for(lambda: metrics(proc)["cutover_shadow_lag_records"] == 0,
                 what="lag 0")
    finally:
        assert proc.stop() == 0

    keys = new.keys()
    expected = {r["id"] for r in recs + more}
    assert set(keys) == expected                   # nothing lost
    assert len(new.applied) == len(expected)       # each applied once
    counts = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    # only records in flight or not yet durable at the kill come twice
    again = [k for k, c in counts.items() if c > 1]
    assert max(counts.values()) <= 2
    assert len(again) < n // 2
    for store, got in new.per_store.items():
        assert got == sorted(got), store


def dead_letter(proc, *args):
    r = subprocess.run([SHADOWD, "dead-letter"] + list(args)
                       + ["--config", proc.cfg_path], capture_output=True,
                       text=True, timeout=30)
    return r.returncode, [json.loads(x) for x in r.stdout.splitlines()], \
        r.stderr


def outcomes(m):
    """What became of the records read, summed: with the lag at 0 it
    equals cutover_shadow_records_read_total."""
    return sum(m["cutover_shadow_%s_total" % k] for k in
               ("replayed", "failed", "primary_refused", "indeterminate",
                "dead_lettered", "corrupt_records"))


def test_reads_give_up_after_retries_writes_wait_for_the_shadow(
        tmpdir_w, sides):
    """Reads to a shadow that answers 503 are given up after `retries`;
    writes are not: the key waits (in order) while other keys go on, the
    checkpoint does not pass them across a kill -9, and once the shadow
    is back every write reaches it in order."""
    new, legacy = sides
    legacy.fail_status = 503
    log = os.path.join(tmpdir_w, "erp.log")
    reads = [record(i, "R%03d" % i, "new", extra={"method": "GET",
                                                  "req_body": ""})
             for i in range(4)]
    held = [record(10 + i, "W001", "new", seq=i + 1) for i in range(3)]
    going = [record(20 + i, "W002", "legacy", seq=i + 1) for i in range(3)]
    write_log(log, reads + held + going)

    proc = start_shadowd(tmpdir_w, new.url, legacy.url, retries=2,
                         retry_backoff_ms=10, retry_backoff_max_ms=200,
                         timeout_ms=300)
    try:
        wait_for(lambda: metrics(proc)["cutover_shadow_failed_total"] == 4,
                 what="4 reads given up")
        wait_for(lambda: len(new.applied) == 3, what="other keys go on")
        time.sleep(1.0)
        m = metrics(proc)
    finally:
        proc.kill9()
    assert m["cutover_shadow_failed_total"] == 4
    assert m["cutover_shadow_replayed_total"] == 3
    assert m["cutover_shadow_retrying"] == 1        # W001's head only
    assert m['cutover_shadow_retrying_by_reason{reason="503"}'] == 1
    assert m["cutover_shadow_oldest_wait_seconds"] >= 0.8
    assert m['cutover_shadow_retries_total{reason="503"}'] > 8
    assert m["cutover_shadow_lag_records"] >= 3
    # the key is held: only its first record was tried
    posts = {d[0] for d in legacy.deliveries if d[1] == "POST"}
    assert posts == {held[0]["id"]}
    with open(proc.log_path) as f:
        assert "failed after 3 attempts" in f.read()

    # restarted with the shadow back: the checkpoint held them
    legacy.fail_status = None
    proc = start_shadowd(tmpdir_w, new.url, legacy.url, name="shadowd2")
    try:
        wait_for(lambda: len(legacy.applied) == 3 + 0, what="writes applied")
        wait_for(lambda: caught_up(proc), what="lag 0")
        m = metrics(proc)
    finally:
        assert proc.stop() == 0
    assert legacy.per_store["W001"] == [1, 2, 3]
    assert m["cutover_shadow_retrying"] == 0
    assert m["cutover_shadow_oldest_wait_seconds"] == 0


def test_shadow_answers_decide_retry_or_difference(tmpdir_w, sides):
    """A 4xx from the shadow for a write the primary applied is a
    difference, at once; another 5xx is tried `retries` more times, then
    compared as what it is."""
    new, legacy = sides
    log = os.path.join(tmpdir_w, "erp.log")
    legacy.fail_status = 409
    write_log(log, [record(1, "S001", "new")])
    proc = start_shadowd(tmpdir_w, new.url, legacy.url, retries=2,
                         retry_backoff_ms=10)
    try:
        wait_for(lambda: caught_up(proc, read=1), what="409 compared")
        legacy.fail_status = 500
        write_log(log, [record(2, "S002", "new")])
        wait_for(lambda: caught_up(proc, read=2), what="500 compared")
        m = metrics(proc)
    finally:
        assert proc.stop() == 0
    assert m["cutover_shadow_retried_total"] == 2       # the 500 only
    assert m['cutover_shadow_retries_total{reason="5xx"}'] == 2
    assert m["cutover_shadow_replayed_total"] == 1
    assert m["cutover_shadow_failed_total"] == 1
    assert m['cutover_shadow_verdicts_total{verdict="different"}'] == 2
    assert [d[0] for d in legacy.deliveries].count(
        "%032x" % (0xC0FFEE000000 + 1)) == 1


def test_primary_outcome_decides_what_is_replayed(tmpdir_w, sides, pg):
    """Only writes the primary applied reach the other side; refused ones
    are stored as primary_refused, those of unknown outcome as
    indeterminate (and listed by cutover-report for reconciliation); a
    client retry under the same Idempotency-Key is replayed under it."""
    new, legacy = sides
    db = pg.createdb("shadow_outcomes")
    log = os.path.join(tmpdir_w, "erp.log")
    key = [["Idempotency-Key", "till-9-ticket-4"]]
    recs = [record(1, "S001", "new"),
            record(2, "S001", "new", extra={"status": 409}),
            record(3, "S001", "new", extra={"status": 422}),
            record(4, "S002", "new", extra={"status": 502}),
            record(5, "S002", "new", extra={"status": 504}),
            record(6, "S002", "new", extra={"status": 499}),
            record(7, "S003", "new", extra={"status": 502}),
            record(8, "S003", "new", extra={"status": 201}),
            record(9, "S004", "legacy", extra={"method": "GET",
                                               "req_body": "",
                                               "status": 404}),
            record(10, "S004", "legacy", extra={
                "method": "PUT", "status": 400,
                "uri": "/api/v1/inventory/adjust"})]
    for r in recs[6:8]:
        r["req_headers"] = r["req_headers"] + key
    write_log(log, recs)

    proc = start_shadowd(tmpdir_w, new.url, legacy.url, results_db=db,
                         replay={"PUT /api/v1/inventory/{x}": "always"})
    try:
        wait_for(lambda: caught_up(proc, read=10), what="all durable")
        m = metrics(proc)
    finally:
        assert proc.stop() == 0
    ids = lambda *n: sorted("%032x" % (0xC0FFEE000000 + i) for i in n)
    assert sorted(legacy.keys()) == sorted(ids(1) + ["till-9-ticket-4"])
    assert sorted(new.keys()) == ids(9, 10)
    assert m["cutover_shadow_primary_refused_total"] == 2
    assert m["cutover_shadow_indeterminate_total"] == 4
    assert m["cutover_shadow_replayed_total"] == 4
    assert outcomes(m) == m["cutover_shadow_records_read_total"] == 10
    # compared pairs only count what was compared
    pairs = sum(v for k, v in m.items()
                if k.startswith("cutover_shadow_pairs_total"))
    assert pairs == 4

    got = pg.psql("shadow_outcomes", "SELECT record_id || ' ' || verdict || "
                  "' ' || shadow_status FROM compare_pairs WHERE verdict IN "
                  "('primary_refused', 'indeterminate') ORDER BY record_id")
    assert got.split("\n") == [
        "%s %s 0" % (i, v) for i, v in
        zip(ids(2, 3, 4, 5, 6, 7), ["primary_refused"] * 2
            + ["indeterminate"] * 4)]

    report = harness.bin_path("cutover-report")
    r = subprocess.run([report, "--db", pg.conninfo("shadow_outcomes"),
                        "--format", "json", "summary"], capture_output=True,
                       text=True)
    row = json.loads(r.stdout)
    row = row[0] if isinstance(row, list) else row
    assert row["primary_refused"] == 2 and row["indeterminate"] == 4
    assert row["pairs"] == 10
    r = subprocess.run([report, "--db", pg.conninfo("shadow_outcomes"),
                        "--format", "json", "indeterminate"],
                       capture_output=True, text=True)
    rows = json.loads(r.stdout)
    assert sorted(x["record_id"] for x in rows) == ids(4, 5, 6, 7)
    assert {x["primary_status"] for x in rows} == {502, 504, 499}


def test_max_wait_parks_a_key_until_an_operator_acts(tmpdir_w, sides):
    """After max_wait_ms a key's stuck write and all later writes of the
    key go to the dead-letter store (the checkpoint passes them once they
    are there); `dead-letter replay` hands them back, replayed in order;
    `discard` sets them aside; both are in the actions log."""
    new, legacy = sides
    legacy.fail_status = 503
    log = os.path.join(tmpdir_w, "erp.log")
    write_log(log, [record(i, "W001", "new", seq=i + 1) for i in range(3)]
              + [record(10, "W002", "legacy", seq=1)])
    proc = start_shadowd(tmpdir_w, new.url, legacy.url, max_wait_ms=300,
                         retry_backoff_ms=20, retry_backoff_max_ms=50)
    try:
        wait_for(lambda: metrics(proc)["cutover_shadow_dead_lettered_total"]
                 == 3, what="3 parked")
        wait_for(lambda: caught_up(proc, read=4), what="checkpoint past")
        # the shadow is back, but the key stays parked: no reordering
        legacy.fail_status = None
        write_log(log, [record(3 + i, "W001", "new", seq=4 + i)
                        for i in range(2)])
        wait_for(lambda: metrics(proc)["cutover_shadow_dead_lettered_total"]
                 == 5, what="later records parked")
        m = metrics(proc)
        assert m["cutover_shadow_dead_letter_keys"] == 1
        assert outcomes(m) == m["cutover_shadow_records_read_total"] == 6
        assert "W001" not in legacy.per_store

        rc, lines, err = dead_letter(proc, "list")
        assert rc == 0, err
        assert len(lines) == 1 and lines[0]["key"] == "W001"
        assert lines[0]["records"] == 5 and lines[0]["state"] == "parked"
        assert lines[0]["reason"] == "max_wait"
        rc, lines, err = dead_letter(proc, "list", "--key", "W001")
        assert [x["id"] for x in lines] == [
            "%032x" % (0xC0FFEE000000 + i) for i in range(5)]

        rc, lines, err = dead_letter(proc, "replay", "--key", "W001",
                                     "--reason", "legacy back")
        assert rc == 0 and lines[0]["records"] == 5, err
        wait_for(lambda: legacy.per_store.get("W001") == [1, 2, 3, 4, 5],
                 what="dead letters replayed in order")
        wait_for(lambda: metrics(proc)["cutover_shadow_dead_letter_keys"]
                 == 0, what="unparked")
        wait_for(lambda: dead_letter(proc, "list")[1] == [],
                 what="store empty")
        # the key goes on as usual
        write_log(log, [record(5, "W001", "new", seq=6)])
        wait_for(lambda: legacy.per_store["W001"][-1] == 6, what="unparked")

        # discard: set aside, logged; the key goes on without them
        legacy.fail_status = 503
        write_log(log, [record(20, "W003", "new", seq=1)])
        wait_for(lambda: metrics(proc)["cutover_shadow_dead_lettered_total"]
                 == 6, what="W003 parked")
        legacy.fail_status = None
        rc, lines, err = dead_letter(proc, "discard", "--key", "W003")
        assert rc == 0 and lines[0]["records"] == 1, err
        write_log(log, [record(21, "W003", "new", seq=2)])
        wait_for(lambda: legacy.per_store.get("W003") == [2],
                 what="W003 goes on")
        m = metrics(proc)
    finally:
        assert proc.stop() == 0
    assert m["cutover_shadow_dead_letter_replays_total"] == 5
    dl = os.path.join(tmpdir_w, "erp.ckpt.dead-letter")
    assert len(os.listdir(os.path.join(dl, "discarded"))) == 1
    with open(os.path.join(dl, "actions.log")) as f:
        actions = [json.loads(x) for x in f]
    assert [(a["action"], a["key"], a["records"]) for a in actions] == [
        ("replay", "W001", 5), ("discard", "W003", 1)]
    assert actions[0]["reason"] == "legacy back" and actions[0]["user"]
    rc, _, err = dead_letter(proc, "bogus")
    assert rc == 2
    rc, _, err = dead_letter(proc, "replay", "--key", "W404")
    assert rc == 1 and "no parked records of key \"W404\"" in err


def test_corrupt_frames_are_skipped_and_counted(tmpdir_w, sides):
    new, legacy = sides
    log = os.path.join(tmpdir_w, "erp.log")
    recs = [record(i, "S%03d" % i, "legacy") for i in range(6)]
    write_log(log, recs[:3])
    seg = os.path.join(tmpdir_w, segments(log)[0])
    with open(seg, "ab") as f:
        f.write(b"\x00garbage from a bad disk\xff" * 3)
    write_log(log, recs[3:])
    # flip one byte inside the last record's payload: bad CRC
    size = os.path.getsize(seg)
    with open(seg, "r+b") as f:
        f.seek(size - 40)
        b = f.read(1)
        f.seek(size - 40)
        f.write(bytes([b[0] ^ 0x55]))

    proc = start_shadowd(tmpdir_w, new.url, legacy.url)
    try:
        wait_for(lambda: len(new.keys()) >= 5, what="5 deliveries")
        wait_for(lambda: caught_up(proc, corrupt=2),
                 what="corrupt frames counted")
        m = metrics(proc)
    finally:
        assert proc.stop() == 0
    assert sorted(new.keys()) == sorted(r["id"] for r in recs[:5])
    assert m["cutover_shadow_corrupt_frames_total"] == 2
    with open(proc.log_path) as f:
        text = f.read()
    assert re.search(r"\[warn\].*corrupt frame in segment .* at offset \d+",
                     text)
    assert "bad crc" in text


def test_metrics_show_lag_while_the_shadow_is_slow(tmpdir_w, sides):
    new, legacy = sides
    log = os.path.join(tmpdir_w, "erp.log")
    old = int((time.time() - 30) * 1e6)
    recs = [record(i, "S001", "legacy", seq=i, time_us=old)
            for i in range(40)]
    write_log(log, recs)
    new.delay = 0.1                    # one store: strictly one at a time

    proc = start_shadowd(tmpdir_w, new.url, legacy.url)
    try:
        # the very first scrape already shows the backlog: a monitor (or
        # a script waiting for lag 0) must never see a false "caught up"
        m = metrics(proc)
        assert m["cutover_shadow_lag_bytes"] + \
            m["cutover_shadow_lag_records"] > 0
        wait_for(lambda: len(new.keys()) >= 2, what="replay started")
        m = metrics(proc)
        assert m["cutover_shadow_lag_records"] > 10
        assert m["cutover_shadow_lag_seconds"] >= 30
        assert m["cutover_shadow_inflight"] <= 1
        assert new.max_active == 1
    finally:
        assert proc.stop() == 0
    # SIGTERM: what was durable is checkpointed, the rest comes next time
    seq, off = read_checkpoint(tmpdir_w)
    assert (seq, off) != (1, 0)
    done = len(new.applied)
    assert done < 40
    proc = start_shadowd(tmpdir_w, new.url, legacy.url, name="shadowd2")
    new.delay = 0
    try:
        wait_for(lambda: len(new.applied) == 40, what="the rest")
    finally:
        proc.stop()
    assert new.per_store["S001"] == list(range(40))


def outbox_count(tmp):
    d = os.path.join(tmp, "outbox")
    return sum(int(m.group(1)) for f in os.listdir(d)
               for m in [re.fullmatch(r"\d{20}-(\d+)\.bson", f)] if m)


def test_results_reach_postgresql_with_verdicts(tmpdir_w, sides, pg):
    new, legacy = sides
    db = pg.createdb("shadow_results")
    log = os.path.join(tmpdir_w, "erp.log")
    recs = []
    for i in range(40):
        rec = record(i, "S%03d" % (i % 4), "legacy")
        if i % 2 == 0:              # what the new side will answer
            rec["resp_body"] = json.dumps(
                {"side": "new", "path": rec["uri"],
                 "sha256": hashlib.sha256(
                     rec["req_body"].encode()).hexdigest()})
        recs.append(rec)
    write_log(log, recs)

    # shadow bodies kept only up to 16 bytes: compared by their SHA-256
    proc = start_shadowd(tmpdir_w, new.url, legacy.url, results_db=db,
                         body_limit=16)
    try:
        wait_for(lambda: caught_up(proc, read=40), what="all durable")
        m = metrics(proc)
    finally:
        assert proc.stop() == 0
    assert m['cutover_shadow_verdicts_total{verdict="equal"}'] == 20
    assert m['cutover_shadow_verdicts_total{verdict="different"}'] == 20
    assert pg.psql("shadow_results",
                   "SELECT count(*) FROM compare_pairs") == "40"
    ids = pg.psql("shadow_results", "SELECT record_id FROM compare_pairs "
                  "ORDER BY record_id").split("\n")
    assert ids == sorted(r["id"] for r in recs)
    assert pg.psql("shadow_results", "SELECT DISTINCT side_served || ' ' || "
                   "primary_status || ' ' || shadow_status FROM "
                   "compare_pairs") == "legacy 201 201"


def test_outbox_holds_every_result_and_rate_limit_holds(tmpdir_w, sides):
    new, legacy = sides
    log = os.path.join(tmpdir_w, "erp.log")
    recs = [record(i, "S%03d" % i, "legacy") for i in range(30)]
    write_log(log, recs)
    times = []
    orig = new.handle

    def timed(req, body):
        times.append(time.monotonic())
        orig(req, body)
    new.handle = timed

    proc = start_shadowd(tmpdir_w, new.url, legacy.url, rate_limit=40)
    try:
        wait_for(lambda: caught_up(proc, read=30), what="all durable")
    finally:
        assert proc.stop() == 0
    assert len(times) == 30
    # 30 records at 40/s with a burst of 5: at least 25/40 s
    assert times[-1] - times[0] >= 0.5
    assert outbox_count(tmpdir_w) == 30


def test_real_new_core_applies_each_replay_once(tmpdir_w, sides, pg):
    """Orders the legacy side served, replayed on the real new core: each
    applied once, stock moved once, even when the whole log is replayed
    again (a lost checkpoint): the Idempotency-Key makes it safe."""
    _, legacy = sides
    conninfo = pg.createdb("shadow_newcore")
    core = harness.bin_path("cutover-newcore")
    r = subprocess.run([core, "--db", conninfo, "--init-schema", "--seed"],
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    port = harness.free_port()
    newcore = harness.Proc([core, "--listen", "127.0.0.1:%d" % port,
                            "--db", conninfo],
                           os.path.join(tmpdir_w, "newcore.log"), port=port)
    url = "http://127.0.0.1:%d" % port
    stores = ["S00%d" % i for i in range(1, 5)]

    def available(store):
        st, _, body = harness.http(
            "GET", "%s/api/v1/inventory/%s/SKU00042" % (url, store))
        assert st == 200
        return json.loads(body)["available"]

    try:
        before = {s: available(s) for s in stores}
        recs = []
        for i in range(60):
            store = stores[i % 4]
            body = json.dumps({"order_id": "SHD-%04d" % i,
                               "store_id": store, "channel": "pos",
                               "member_id": None,
                               "lines": [{"sku": "SKU00042", "qty": 1}],
                               "payment": {"method": "card"}})
            recs.append(record(i, store, "legacy", body=body))
        log = os.path.join(tmpdir_w, "erp.log")
        write_log(log, recs)

        for run in ("first", "again"):
            if run == "again":
                os.unlink(os.path.join(tmpdir_w, "erp.ckpt"))
            proc = start_shadowd(tmpdir_w, url, legacy.url, name=run,
                                 delete_consumed=False)
            try:
                wait_for(lambda: caught_up(proc, read=60),
                         what="60 replayed")
                m = metrics(proc)
            finally:
                assert proc.stop() == 0
            assert m["cutover_shadow_replayed_total"] == 60
            assert pg.psql("shadow_newcore", "SELECT count(*) FROM "
                           "newcore.orders WHERE order_id LIKE 'SHD-%'") \
                == "60"
            assert {s: before[s] - available(s) for s in stores} == \
                {s: 15 for s in stores}
    finally:
        assert newcore.stop() == 0


def test_tails_a_growing_log_across_rotations(tmpdir_w, sides):
    """shadowd starts before the first segment exists, then follows the
    writer through several rotations (the writer keeps its segment open,
    as an nginx worker does, via one logtool process per batch)."""
    new, legacy = sides
    log = os.path.join(tmpdir_w, "erp.log")
    # a small window: reading pauses until the checkpoint catches up
    proc = start_shadowd(tmpdir_w, new.url, legacy.url, grace_ms=100,
                         window=7, window_mb=1)
    try:
        recs = []
        for batch in range(4):
            more = [record(batch * 40 + i, "S%03d" % (i % 3), "legacy",
                           seq=batch * 40 + i) for i in range(40)]
            write_log(log, more, segment_size=6000)
            recs += more
            time.sleep(0.15)
        wait_for(lambda: len(new.applied) == 160, what="160 replayed")
        wait_for(lambda: caught_up(proc, unread=True), what="caught up")
    finally:
        assert proc.stop() == 0
    assert sorted(new.keys()) == sorted(r["id"] for r in recs)
    for store, got in new.per_store.items():
        assert got == sorted(got), store
    assert len(segments(log)) == 1


def test_checkpoint_waits_while_results_are_not_durable(tmpdir_w, sides, pg):
    """No outbox and PostgreSQL down: replays go on, but the checkpoint
    stays before every record whose result is not stored, so a kill -9
    then replays them again and every result lands once PostgreSQL is
    back."""
    new, legacy = sides
    db = pg.createdb("shadow_wait")
    log = os.path.join(tmpdir_w, "erp.log")
    recs = [record(i, "S%03d" % (i % 3), "legacy") for i in range(20)]
    proc = start_shadowd(tmpdir_w, new.url, legacy.url, results_db=db,
                         outbox=None)
    try:
        pg.stop()
        write_log(log, recs)
        wait_for(lambda: len(new.applied) == 20, what="20 replayed")
        time.sleep(0.5)
        m = metrics(proc)
        assert m["cutover_shadow_lag_records"] == 20
        assert not os.path.exists(os.path.join(tmpdir_w, "erp.ckpt")) \
            or read_checkpoint(tmpdir_w) == (1, 0)
    finally:
        proc.kill9()
        pg.start()
    with open(proc.log_path) as f:
        assert f.read().count("result store flush failed") == 1

    proc = start_shadowd(tmpdir_w, new.url, legacy.url, name="shadowd2",
                         results_db=db, outbox=None)
    try:
        wait_for(lambda: caught_up(proc, read=20), what="all durable")
    finally:
        assert proc.stop() == 0
    assert pg.psql("shadow_wait", "SELECT count(*) FROM compare_pairs") \
        == "20"
    assert len(new.applied) == 20 and len(new.keys()) == 40


def test_logtool_dump_feeds_back_into_write(tmpdir_w):
    fixture = os.path.join(harness.ROOT, "tests", "fixtures", "shadow",
                           "orders.jsonl")
    a, b = os.path.join(tmpdir_w, "a.log"), os.path.join(tmpdir_w, "b.log")
    with open(fixture, "rb") as f:
        r = subprocess.run([LOGTOOL, "write", a], stdin=f,
                           capture_output=True)
    assert r.returncode == 0, r.stderr
    first = subprocess.run([LOGTOOL, "dump", a], capture_output=True,
                           check=True).stdout
    subprocess.run([LOGTOOL, "write", b], input=first, check=True)
    second = subprocess.run([LOGTOOL, "dump", b], capture_output=True,
                            check=True).stdout
    assert first == second
    recs = [json.loads(x) for x in first.decode().splitlines()]
    assert len(recs) == 5
    assert [r["side"] for r in recs] == ["legacy", "new", "legacy",
                                        "legacy", "new"]
    assert json.loads(recs[0]["resp_body"])["order_id"] == "FX-0001"
