"""Internal redirects (error_page, try_files, X-Accel-Redirect, rewrite
... last): a request is routed once, with the decision of its first pass,
counted once and recorded once."""

import json
import os
import re
import subprocess
import time

import pytest

import harness
from gateway import SECRETS

UPSTREAMS = """
    server {{ listen 127.0.0.1:{new};
              location /api/missing {{ return 404 "new\\n"; }}
              location /xar/ {{ add_header X-Accel-Redirect /internal/x;
                               return 200 "not this\\n"; }}
              location / {{ return 200 "new\\n"; }} }}
    server {{ listen 127.0.0.1:{legacy};
              location /api/missing {{ return 404 "legacy\\n"; }}
              location /xar/ {{ add_header X-Accel-Redirect /internal/x;
                               return 200 "not this\\n"; }}
              location / {{ return 200 "legacy\\n"; }} }}
"""

# "erp" is dialed to 100 % new, "other" stays at 0 %: a second routing
# of the same request in a location of "other" would pick legacy.
CONF = """
    cutover_zone erp size=1m state={dir}/state/erp.state;
    cutover_zone other size=1m state={dir}/state/other.state;
    upstream new_core {{ server 127.0.0.1:{new}; keepalive 8; }}
    upstream legacy {{ server 127.0.0.1:{legacy}; keepalive 8; }}

    server {{
        listen 127.0.0.1:{port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        cutover_upstreams new=new_core legacy=legacy;
        cutover_record all;
        cutover_log {dir}/log/erp.log;
        add_header X-Request-Id $cutover_request_id always;

        location /api/ {{
            cutover erp;
            proxy_intercept_errors on;
            error_page 404 = @fallback;
            proxy_pass http://$cutover_upstream;
        }}
        location /plain/ {{
            cutover erp;
            proxy_intercept_errors on;
            error_page 404 /fallback.txt;
            proxy_pass http://$cutover_upstream/api/missing;
        }}
        location = /fallback.txt {{ return 200 "fallback\\n"; }}
        location /try/ {{
            cutover erp;
            root {dir}/www;
            try_files $uri @fallback;
        }}
        location /xar/ {{
            cutover erp;
            proxy_pass http://$cutover_upstream;
        }}
        location /rw/ {{
            cutover erp;
            set $first $cutover_side;
            rewrite ^/rw/(.*)$ /again/$1 last;
        }}
        location /again/ {{
            cutover other;
            proxy_pass http://$cutover_upstream;
        }}
        location /internal/ {{
            internal;
            cutover other;
            proxy_pass http://$cutover_upstream;
        }}
        location @fallback {{
            cutover other;
            proxy_pass http://$cutover_upstream;
        }}
        location /cutover/ {{
            cutover_admin erp;
            cutover_admin_keys {dir}/keys;
        }}
        location = /metrics/erp {{ cutover_metrics erp; }}
        location = /metrics/other {{ cutover_metrics other; }}
    }}
"""


class Env:
    def __init__(self):
        self.new = harness.free_port()
        self.legacy = harness.free_port()
        self.port = harness.free_port()
        self.up = harness.Nginx(UPSTREAMS.format(new=self.new,
                                                 legacy=self.legacy),
                                name="redir-up", workers=1)
        self.up.start(self.legacy)
        self.dir = harness.make_tempdir("redirects")
        for sub in ("state", "log", "www"):
            os.makedirs(os.path.join(self.dir, sub))
            os.chmod(os.path.join(self.dir, sub), 0o777)
        with open(os.path.join(self.dir, "keys"), "w") as f:
            f.write("ops operator %s\n" % SECRETS["ops"][1])
        self.nginx = harness.Nginx(CONF.format(dir=self.dir, new=self.new,
                                               legacy=self.legacy,
                                               port=self.port),
                                   directory=self.dir)
        self.nginx.start(self.port)
        body = json.dumps({"percent": 100, "reason": "all new"})
        h = harness.sign_headers("POST", "/cutover/dial", body, "ops",
                                 SECRETS["ops"][1])
        s, _, out = harness.http("POST", self.url("/cutover/dial"), body, h)
        assert s == 200, out

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def requests_total(self, zone):
        s, _, text = harness.http("GET", self.url("/metrics/" + zone))
        assert s == 200
        out = {}
        for m in re.finditer(r'^cutover_requests_total\{[^}]*side="(\w+)"'
                             r'[^}]*\} (\d+)$', text.decode(), re.M):
            out[m.group(1)] = out.get(m.group(1), 0) + int(m.group(2))
        return out

    def records(self, expect, timeout=5.0):
        return harness.log_records(os.path.join(self.dir, "log", "erp.log"),
                                   expect, timeout)

    def destroy(self):
        self.nginx.stop()
        bad = self.nginx.bad_log_lines()
        self.nginx.destroy()
        self.up.destroy()
        assert not bad, bad


@pytest.fixture
def env():
    e = Env()
    yield e
    e.destroy()


# path, body the client gets, status
KINDS = [
    ("/api/missing", "new\n", 404),     # error_page 404 = @fallback
    ("/plain/x", "fallback\n", 404),    # error_page to a plain location
    ("/try/nofile", "new\n", 200),      # try_files ... @fallback
    ("/xar/x", "new\n", 200),           # X-Accel-Redirect from the primary
    ("/rw/x", "new\n", 200),            # rewrite ... last
]


def test_redirected_requests_are_routed_and_recorded_once(env):
    ids = []
    for i, (path, body, status) in enumerate(KINDS * 4):
        s, h, data = harness.http("GET", env.url(path), headers={
            "X-Store-Id": "S%03d" % i, "X-Channel": "pos"})
        assert (s, data.decode()) == (status, body), path
        ids.append(h["x-request-id"])
    n = len(ids)
    assert len(set(ids)) == n

    recs = env.records(n)
    time.sleep(0.2)
    recs = env.records(n)
    assert len(recs) == n, [r["uri"] for r in recs]
    assert sorted(r["id"] for r in recs) == sorted(ids)
    for r in recs:
        # the first pass's decision, in the first pass's zone
        assert (r["zone"], r["side"]) == ("erp", "new"), r["uri"]

    # counted once, where they were routed
    assert env.requests_total("erp") == {"new": n, "legacy": 0}
    assert env.requests_total("other") == {"new": 0, "legacy": 0}
