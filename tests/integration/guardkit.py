"""Helpers of the guard and ramp tests: a new core you can switch between
healthy, failing and slow (a Python server), a gateway with cutover_guard
in front of it, and a load generator."""

import http.client
import http.server
import re
import threading
import time

import gateway
from gateway import Gateway

# a key of the role "guard": may read and roll back, nothing else
gateway.SECRETS.setdefault("sentry", ("guard", "d4" * 32))


class SwitchableCore:
    """The "new" side: answers 200 "new", or 500 for a share of requests
    (fail_every: one in N), or after a delay (slow_ms)."""

    def __init__(self):
        self.fail_every = 0
        self.slow_ms = 0
        self.count = 0
        self.lock = threading.Lock()
        core = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self):
                with core.lock:
                    core.count += 1
                    n = core.count
                fail = core.fail_every and n % core.fail_every == 0
                if core.slow_ms:
                    time.sleep(core.slow_ms / 1000.0)
                body = b"failing\n" if fail else b"new\n"
                self.send_response(500 if fail else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def healthy(self):
        self.fail_every = 0
        self.slow_ms = 0

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class GuardGateway(Gateway):
    """The test gateway with `guard` (the cutover_guard parameters, or
    None) and its new side on a SwitchableCore."""

    def __init__(self, name, guard, core, workers=2):
        self.guard = guard
        self.core = core
        super().__init__(name, workers=workers)

    def conf(self):
        text = super().conf()
        text = text.replace("upstream new_core { server 127.0.0.1:%d;"
                            % self.new_port,
                            "upstream new_core { server 127.0.0.1:%d;"
                            % self.core.port)
        if self.guard:
            text = text.replace("erp.state;\n", "erp.state;\n    cutover_guard"
                                " erp %s;\n" % self.guard, 1)
        return text

    def history(self, limit=20):
        s, _, hist = self.admin("GET", "history?limit=%d" % limit,
                                key="viewer")
        assert s == 200, hist
        return hist

    def metric(self, name, **labels):
        """The value of one sample of GET /metrics, or None."""
        _, _, text = self.admin("GET", "metrics", key="viewer")
        want = ",".join('%s="%s"' % (k, v) for k, v in sorted(labels.items()))
        for line in text.splitlines():
            m = re.match(r"^(\w+)\{([^}]*)\} (\S+)$", line)
            if not m or m.group(1) != name:
                continue
            got = ",".join(sorted(p for p in m.group(2).split(",")
                                  if not p.startswith("zone=")))
            if got == want:
                return float(m.group(3))
        return None


class Load:
    """Requests to /api/ from a few threads until stopped; counts answers
    by status."""

    def __init__(self, port, threads=4):
        self.port = port
        self.stop_flag = False
        self.statuses = {}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True)
                        for _ in range(threads)]
        for t in self.threads:
            t.start()

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        i = 0
        while not self.stop_flag:
            i += 1
            try:
                # a key (the store) per request: routed by the dial
                conn.request("GET", "/api/v1/items",
                             headers={"X-Store-Id": "S%d" % (i % 997),
                                      "X-Channel": "pos"})
                r = conn.getresponse()
                r.read()
                st = r.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                  timeout=10)
                st = 0
            with self.lock:
                self.statuses[st] = self.statuses.get(st, 0) + 1
        conn.close()

    def stop(self):
        self.stop_flag = True
        for t in self.threads:
            t.join(15)
        return self.statuses


def wait_for(pred, timeout, step=0.05):
    """Polls pred until true; returns the seconds it took, or None."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if pred():
            return time.monotonic() - start
        time.sleep(step)
    return None
