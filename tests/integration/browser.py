"""Headless Chromium driven over the DevTools protocol on a pipe
(--remote-debugging-pipe: commands on fd 3, answers on fd 4, each a JSON
text ended by NUL), Python's standard library only.  The browser gets a new
empty profile and no network: what a page would fetch shows up as a request
event and fails.

    python3 tests/integration/browser.py screenshot PAGE.html OUT.png [W H]
"""

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions",
         "--no-default-browser-check", "--mute-audio",
         "--disable-dev-shm-usage",
         # nowhere to go even if something tried
         "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
         "--host-resolver-rules=MAP * ~NOTFOUND",
         "--remote-debugging-pipe"]


class Browser:
    def __init__(self, width=1100, height=900):
        self.profile = tempfile.mkdtemp(prefix="cutover-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds():
            a = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM] + FLAGS + ["--user-data-dir=" + self.profile,
                                  "--window-size=%d,%d" % (width, height),
                                  "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, preexec_fn=fds, close_fds=False)
        os.close(to_child_r)
        os.close(from_child_w)
        self._id = 0
        self._answers = {}
        self._cond = threading.Condition()
        self.events = queue.Queue()
        self.log = []           # every event, in order
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.session = None
        target = self.call("Target.createTarget", url="about:blank")
        self.session = self.call("Target.attachToTarget",
                                 targetId=target["targetId"],
                                 flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(domain + ".enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width,
                  height=height, deviceScaleFactor=1, mobile=False)

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_child, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._answers[None] = "closed"
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._answers[msg["id"]] = msg
                        self._cond.notify_all()
                else:
                    self.log.append(msg)
                    self.events.put(msg)

    def call(self, method, timeout=20, **params):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            msg["sessionId"] = self.session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._id not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or None in self._answers:
                    raise RuntimeError("chromium: no answer to %s" % method)
                self._cond.wait(left)
            ans = self._answers.pop(self._id)
        if "error" in ans:
            raise RuntimeError("chromium: %s: %s" % (method, ans["error"]))
        return ans.get("result", {})

    def wait_event(self, method, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("chromium: no %s" % method)
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if ev.get("method") == method:
                return ev

    def open(self, path):
        url = "file://" + os.path.abspath(path)
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")
        return url

    def js(self, expression):
        r = self.call("Runtime.evaluate", expression=expression,
                      returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError("js: %s" % r["exceptionDetails"])
        return r["result"].get("value")

    def errors(self):
        """Console errors, uncaught exceptions and error log entries."""
        out = []
        for ev in self.log:
            m, p = ev.get("method"), ev.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append(p["exceptionDetails"].get("text"))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in (
                    "error", "assert"):
                out.append(p.get("args"))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(p["entry"].get("text"))
        return out

    def requests(self):
        return [ev["params"]["request"]["url"] for ev in self.log
                if ev.get("method") == "Network.requestWillBeSent"]

    def screenshot(self, png, height=None):
        params = {"format": "png"}
        if height:
            width = self.js("document.documentElement.clientWidth")
            params["clip"] = {"x": 0, "y": 0, "width": width,
                              "height": height, "scale": 1}
        data = self.call("Page.captureScreenshot", **params)["data"]
        with open(png, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except RuntimeError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()
        os.close(self._to_child)
        os.close(self._from_child)
        shutil.rmtree(self.profile, ignore_errors=True)


def main(argv):
    if len(argv) < 4 or argv[1] != "screenshot":
        sys.stderr.write(__doc__)
        return 2
    w, h = (int(argv[4]), int(argv[5])) if len(argv) > 5 else (1000, 1300)
    b = Browser(width=w, height=h)
    try:
        b.open(argv[2])
        b.screenshot(argv[3], height=h)
        bad = b.errors()
    finally:
        b.close()
    if bad:
        sys.stderr.write("page errors: %s\n" % bad)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
