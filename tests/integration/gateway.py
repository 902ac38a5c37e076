"""A gateway under test: nginx with the cutover module (2 workers) in front
of two small upstream servers (a separate nginx) that answer "new" and
"legacy", plus the keys and a signed-request helper."""

import http.client
import json
import os
import subprocess

import harness

SECRETS = {
    "ops": ("operator", "a1" * 32),
    "viewer": ("viewer", "b2" * 32),
    "root": ("admin", "c3" * 32),
}

UPSTREAMS = """
    server {{ listen 127.0.0.1:{new}; location / {{ return 200 "new\\n"; }} }}
    server {{ listen 127.0.0.1:{legacy};
              location / {{ return 200 "legacy\\n"; }} }}
"""

GATEWAY = """
    cutover_zone erp size=1m state={dir}/state/erp.state;

    upstream new_core {{ server 127.0.0.1:{new}; keepalive 16; }}
    upstream legacy   {{ server 127.0.0.1:{legacy}; keepalive 16; }}

    server {{
        listen 127.0.0.1:{port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";

        location /api/ {{
            cutover erp;
            cutover_upstreams new=new_core legacy=legacy;
            add_header X-Cutover-Side $cutover_side always;
            add_header X-Cutover-Rule $cutover_rule always;
            add_header X-Cutover-Bucket $cutover_bucket always;
            add_header X-Cutover-Version $cutover_version always;
            add_header X-Cutover-Request-Id $cutover_request_id always;
            proxy_pass http://$cutover_upstream;
        }}
        location /keyed/ {{
            cutover erp;
            cutover_key $arg_uid;
            cutover_upstreams new=new_core legacy=legacy;
            add_header X-Cutover-Side $cutover_side always;
            proxy_pass http://$cutover_upstream;
        }}
        location /cutover/ {{
            cutover_admin erp;
            cutover_admin_keys {dir}/keys;
        }}
        location = /metrics {{
            allow 127.0.0.1;
            deny all;
            cutover_metrics erp;
        }}
    }}
"""


class Gateway:
    def __init__(self, name="gw", workers=2, env=None):
        self.new_port = harness.free_port()
        self.legacy_port = harness.free_port()
        self.port = harness.free_port()
        self.up = harness.Nginx(UPSTREAMS.format(new=self.new_port,
                                                 legacy=self.legacy_port),
                                name=name + "-up", workers=1)
        self.up.start(self.legacy_port)
        self.nginx = None
        self.dir = harness.make_tempdir(name)
        os.makedirs(os.path.join(self.dir, "state"), exist_ok=True)
        os.chmod(os.path.join(self.dir, "state"), 0o777)
        self.keys = os.path.join(self.dir, "keys")
        with open(self.keys, "w") as f:
            f.write("# key-id role secret\n")
            for kid, (role, secret) in SECRETS.items():
                f.write("%s %s %s\n" % (kid, role, secret))
        for kid, (role, secret) in SECRETS.items():
            with open(os.path.join(self.dir, kid + ".key"), "w") as f:
                f.write("%s %s %s\n" % (kid, role, secret))
        self.nginx = harness.Nginx(self.conf(), directory=self.dir,
                                   workers=workers, env=env)
        self.nginx.start(self.port)

    def conf(self):
        return GATEWAY.format(new=self.new_port, legacy=self.legacy_port,
                              port=self.port, dir=self.dir)

    @property
    def state_file(self):
        return os.path.join(self.dir, "state", "erp.state")

    @property
    def audit_file(self):
        return self.state_file + ".audit"

    @property
    def admin_url(self):
        return "http://127.0.0.1:%d/cutover/" % self.port

    def admin(self, method, call, body=None, key="ops", ts=None,
              nonce=None, headers=None):
        """A signed admin call: (status, headers, parsed JSON or text)."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        path = "/cutover/" + call
        h = {}
        if key is not None:
            h = harness.sign_headers(method, path, body, key,
                                     SECRETS[key][1], ts=ts, nonce=nonce)
        h.update(headers or {})
        status, hdrs, data = harness.http(method,
                                          "http://127.0.0.1:%d%s"
                                          % (self.port, path), body, h)
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = data.decode(errors="replace")
        return status, hdrs, parsed

    def status(self):
        s, _, body = self.admin("GET", "status", key="viewer")
        assert s == 200, body
        return body

    def dial(self, percent, rule=None, stores=None, channels=None,
             reason="test"):
        body = {"percent": percent, "reason": reason}
        if rule:
            body["rule"] = rule
        if stores is not None:
            body["stores"] = stores
        if channels is not None:
            body["channels"] = channels
        s, _, out = self.admin("POST", "dial", body)
        assert s == 200, out
        return out

    def ctl(self, *args, key="ops"):
        """Runs cutoverctl against this gateway: (exit code, stdout)."""
        r = subprocess.run([harness.bin_path("cutoverctl"), "--url",
                            self.admin_url, "--key-file",
                            os.path.join(self.dir, key + ".key")]
                           + list(args), capture_output=True, timeout=30)
        return r.returncode, r.stdout.decode() + r.stderr.decode()

    def sides(self, headers_list, path="/api/v1/items"):
        """Sends one request per header dict over a keep-alive connection;
        returns the list of sides that answered (from the body)."""
        conns = [http.client.HTTPConnection("127.0.0.1", self.port,
                                            timeout=10) for _ in range(4)]
        out = []
        try:
            for i, h in enumerate(headers_list):
                conn = conns[i % len(conns)]
                conn.request("GET", path, headers=h)
                r = conn.getresponse()
                body = r.read().decode().strip()
                assert r.status == 200, (r.status, body)
                assert r.getheader("X-Cutover-Side") == body
                out.append(body)
        finally:
            for conn in conns:
                conn.close()
        return out

    def destroy(self):
        if self.nginx:
            self.nginx.stop()
            bad = self.nginx.bad_log_lines()
            self.nginx.destroy()
        self.up.destroy()
        assert not bad, "error log has:\n" + "\n".join(bad[:20])
