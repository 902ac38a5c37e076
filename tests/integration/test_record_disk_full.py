"""The dual-run log on a full disk (a 2 MB tmpfs): clients get every
answer, drops are counted as disk_full and said about once a second, no
frame is left torn, recording resumes by itself once there is room, and
the gap (first and last request id, count) is logged for
reconciliation."""

import concurrent.futures
import http.server
import json
import os
import re
import subprocess
import threading
import time

import pytest

import harness
from gateway import SECRETS
from test_record import CONF, Upstream


class DiskFullEnv:
    def __init__(self):
        Upstream.seen = []
        self.dir = harness.make_tempdir("diskfull")
        self.log_dir = os.path.join(self.dir, "log")
        os.makedirs(self.log_dir)
        self.mounted = os.system("mount -t tmpfs -o size=2m,mode=0777 tmpfs "
                                 "%s 2>/dev/null" % self.log_dir) == 0
        if not self.mounted:
            harness.remove_tempdir(self.dir)
            pytest.skip("cannot mount a tmpfs here (needs root)")
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
        self.srv.daemon_threads = True
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.port = harness.free_port()
        with open(os.path.join(self.dir, "keys"), "w") as f:
            f.write("viewer viewer %s\n" % SECRETS["viewer"][1])
        self.nginx = harness.Nginx(CONF.format(
            dir=self.dir, up=self.srv.server_address[1], port=self.port,
            segment="256k", max=""), directory=self.dir)
        self.nginx.start(self.port)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def post(self, i):
        body = json.dumps({"n": i, "pad": "p" * 4000})
        s, _, _ = harness.http("POST", self.url("/api/v1/orders"), body,
                               {"X-Store-Id": "S%03d" % (i % 50),
                                "Content-Type": "application/json"})
        return s

    def metrics(self):
        h = harness.sign_headers("GET", "/cutover/metrics", "", "viewer",
                                 SECRETS["viewer"][1])
        s, _, body = harness.http("GET", self.url("/cutover/metrics"), None, h)
        assert s == 200
        out = {}
        for m in re.finditer(r'^cutover_records_total\{[^}]*\} (\d+)$|'
                             r'^cutover_records_dropped_total\{[^}]*'
                             r'reason="(\w+)"\} (\d+)$', body.decode(), re.M):
            if m.group(1) is not None:
                out["written"] = int(m.group(1))
            else:
                out[m.group(2)] = int(m.group(3))
        return out

    def settled(self, total, timeout=10):
        """Metrics once every request is written or dropped."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.metrics()
            done = m["written"] + sum(v for k, v in m.items()
                                      if k != "written")
            if done >= total or time.monotonic() > deadline:
                return m
            time.sleep(0.05)

    def dump(self):
        return subprocess.run([harness.bin_path("cutover-logtool"), "dump",
                               os.path.join(self.log_dir, "erp.log")],
                              capture_output=True, text=True, timeout=60)

    def destroy(self):
        self.nginx.stop()
        bad = self.nginx.bad_log_lines()
        os.system("umount %s" % self.log_dir)
        self.nginx.destroy()
        self.srv.shutdown()
        assert not bad, bad


@pytest.fixture
def env():
    e = DiskFullEnv()
    yield e
    e.destroy()


DROP_LINE = re.compile(r"records? dropped since the last report "
                       r"\(disk_full: the disk is full\)")
GAP_LINE = re.compile(r"(recording resumed|the worker exits before "
                      r"recording resumed); gap of (\d+) records? not "
                      r"recorded \(disk_full=\d+\) from request id "
                      r"([0-9a-f]{32}) at \S+ to request id ([0-9a-f]{32})")


def test_full_disk_drops_whole_records_and_resumes(env):
    start = time.monotonic()
    n = 700
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        statuses = list(ex.map(env.post, range(n)))
    assert statuses == [201] * n            # clients never notice
    m = env.settled(n)
    elapsed = time.monotonic() - start
    assert m["disk_full"] > 0 and m["written"] > 0, m
    assert m["error"] == 0 and m["full"] == 0, m
    assert m["written"] + m["disk_full"] == n, m

    text = env.nginx.log_text()
    drops = [l for l in text.splitlines() if DROP_LINE.search(l)]
    assert drops and "No space left on device" in drops[0]
    # about once a second, not once a record
    assert len(drops) <= elapsed + 2, (len(drops), elapsed)

    # no torn frame: every record written reads back, no CRC error
    r = env.dump()
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == m["written"]

    # room again: recording resumes by itself
    assert os.system("mount -o remount,size=8m %s" % env.log_dir) == 0
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        assert list(ex.map(env.post, range(n, n + 40))) == [201] * 40
    m2 = env.settled(n + 40)
    assert m2["written"] == m["written"] + 40, (m, m2)
    assert m2["disk_full"] == m["disk_full"]
    r = env.dump()
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == m2["written"]
    recorded = {json.loads(l)["id"] for l in r.stdout.splitlines()}

    # each worker's gap is logged once it writes again (or as it exits):
    # together they account for every drop, and their ends are requests
    # that are not in the log
    env.nginx.stop()
    gaps = GAP_LINE.findall(env.nginx.log_text())
    assert any(g[0] == "recording resumed" for g in gaps), gaps
    assert sum(int(g[1]) for g in gaps) == m["disk_full"]
    for g in gaps:
        assert g[2] not in recorded and g[3] not in recorded
    sent = {h["X-Cutover-Request-Id"] for h in Upstream.seen}
    for g in gaps:
        assert g[2] in sent and g[3] in sent
