"""The control path: rollback works after any restart and whatever the
audit trail's state; refused admin bodies keep a keep-alive connection in
step; history; a flood of unsigned admin requests; cutoverctl over IPv6."""

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

import harness
from gateway import Gateway, SECRETS


def history(g, query="", key="viewer"):
    s, _, out = g.admin("GET", "history" + query, key=key)
    assert s == 200, out
    return out


def verify(g):
    return g.ctl("audit", "verify", g.audit_file)


def wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise TimeoutError(what)


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def gone(pid):
    """True once pid has exited (a zombie counts: PID 1 may not reap)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def children(pid):
    r = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)],
                       capture_output=True)
    return [int(x) for x in r.stdout.split()]


class Upgraded:
    """The master started by a USR2 binary upgrade: not our child."""

    def __init__(self, g, pid):
        self.g, self.pid = g, pid

    def stop(self):
        if not gone(self.pid):
            os.kill(self.pid, signal.SIGQUIT)
            wait_for(lambda: gone(self.pid), 15, "upgraded master exit")


def restart(g, how):
    """Restarts the gateway's nginx as an operator would; returns an
    Upgraded master to stop at the end, or None."""
    n = g.nginx
    if how == "stop-start":
        n.stop()
        n.start(g.port)
    elif how == "reload":
        n.reload()
    elif how == "kill9":
        workers = n.worker_pids()
        n.proc.kill()
        n.proc.wait()
        for pid in workers:            # as after a crash of the machine
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: all(gone(p) for p in workers), 10, "workers gone")
        n.start(g.port)
    elif how == "usr2":
        # nginx ignores USR2 in a master whose parent is the one that
        # started it (it takes it for a new binary whose old one still
        # runs): start it detached, as a daemon is
        n.stop()
        pidfile = os.path.join(n.dir, "nginx.pid")
        stderr = os.path.join(n.dir, "logs", "stderr.log")
        subprocess.run(["sh", "-c", '"$@" >>%s 2>&1 & sleep 1' % stderr,
                        "sh"]
                       + n._cmd(), env=n._env(), check=True)
        old = wait_for(lambda: read_pid(pidfile), 15, "detached master")
        wait_for(lambda: len(children(old)) >= n.workers, 15, "workers")
        harness.wait_port(g.port)
        assert g.status()["version"] >= 1

        os.kill(old, signal.SIGUSR2)
        new = wait_for(lambda: (read_pid(pidfile) or old) != old
                       and read_pid(pidfile), 15, "new master")
        wait_for(lambda: len(children(new)) >= n.workers, 15,
                 "new workers")
        os.kill(old, signal.SIGQUIT)
        wait_for(lambda: gone(old), 15, "old master exit")
        return Upgraded(g, new)
    else:
        raise ValueError(how)
    return None


def upgradable(name):
    """A gateway whose master passes the sanitizer's preload on to the
    binary a USR2 upgrade starts (nginx keeps only `env` variables)."""
    g = Gateway(name)
    g.nginx.stop()
    g.nginx.main = "env LD_PRELOAD;\nenv ASAN_OPTIONS;"
    g.nginx.write_conf(g.conf())
    g.nginx.start(g.port)
    return g


@pytest.mark.parametrize("how", ["stop-start", "reload", "usr2", "kill9"])
def test_change_restart_change_rollback(how):
    """Operator order: change the state, restart, change again, roll
    back; each entry chains onto the one before the restart."""
    g = upgradable("restart-" + how)
    upgraded = None
    try:
        v = g.dial(10, reason="before " + how)["version"]
        upgraded = restart(g, how)
        st = g.status()
        assert st["version"] == v and st["rules"][0]["percent"] == 10

        assert g.dial(20, reason="after " + how)["version"] == v + 1
        s, _, out = g.admin("POST", "rollback", {"reason": "back"})
        assert s == 200, out
        assert out["state"] == "rolled_back"
        assert g.status()["audit"] == {"ok": True, "head": 3,
                                       "pending_break": None,
                                       "damaged_line": None}

        hist = history(g)
        assert [(e["seq"], e["action"], e["reason"]) for e in hist] == [
            (3, "rollback", "back"), (2, "dial", "after " + how),
            (1, "dial", "before " + how)]
        assert hist[0]["prev"] == hist[1]["hash"]
        assert hist[1]["prev"] == hist[2]["hash"]
        rc, out = verify(g)
        assert rc == 0 and "intact, 3 entries" in out, out
    finally:
        if upgraded:
            upgraded.stop()
        g.destroy()


def test_damaged_last_line_rollback_then_accept():
    """A crash mid-write tore the last entry: the log names its line,
    rollback still works and records the break, dial waits for an admin's
    accept (across a restart too), and verify says what happened."""
    g = Gateway("damaged")
    try:
        g.dial(10, reason="one")
        g.dial(20, reason="two")
        g.dial(30, reason="three")
        g.nginx.stop()
        with open(g.audit_file, "rb") as f:
            text = f.read()
        with open(g.audit_file, "wb") as f:
            f.write(text[:-40])                  # torn: no newline either
        rc, out = verify(g)
        assert rc == 1 and "BROKEN at line 3" in out, out

        g.nginx.start(g.port)
        assert re.search(r"audit trail \".*\" is damaged from line 3 "
                         r"\(torn last line\); the last good entry is seq 2",
                         g.nginx.log_text()), g.nginx.log_text()[-2000:]
        st = g.status()
        assert st["audit"]["damaged_line"] == 3
        # the state file has the third dial: the gateway routes by it
        assert st["rules"][0]["percent"] == 30

        s, _, out = g.admin("POST", "dial", {"percent": 40, "reason": "up"})
        assert s == 503 and out["error"]["code"] == \
            "audit_break_unaccepted", out
        s, _, out = g.admin("POST", "rollback", {"reason": "to legacy"})
        assert s == 200 and out["state"] == "rolled_back", out

        lines = open(g.audit_file).read().splitlines()
        brk = json.loads(lines[3])
        assert brk["action"] == "audit_break" and brk["seq"] == 3
        assert brk["from"]["line"] == 3 and brk["from"]["seq"] == 2
        assert brk["prev"] == json.loads(lines[1])["hash"]
        assert [json.loads(l)["action"] for l in lines[4:]] == \
            ["dial", "rollback"]
        assert all(json.loads(l)["pending_break"] == 3 for l in lines[4:])

        rc, out = verify(g)
        assert rc == 5, out
        assert re.search(r"break: line 3 damaged \(.*\); recorded by "
                         r"audit_break seq 3 at line 4", out), out
        assert "NOT accepted" in out

        # the unaccepted break outlives a restart
        g.nginx.stop()
        g.nginx.start(g.port)
        assert g.status()["audit"]["pending_break"] == 3
        s, _, out = g.admin("POST", "dial", {"percent": 5, "reason": "up"})
        assert s == 503 and out["error"]["code"] == "audit_break_unaccepted"

        # accepting is an admin's call, with a reason
        rc, out = g.ctl("audit", "accept", "--reason", "x", key="ops")
        assert rc == 1 and "403" in out, out
        assert g.ctl("audit", "accept", key="root")[0] == 2
        rc, out = g.ctl("audit", "accept", "--reason",
                        "torn by the power cut of 03:12, checked", key="root")
        assert rc == 0 and "accepted" in out, out
        rc, out = g.ctl("audit", "accept", "--reason", "again", key="root")
        assert rc == 1 and "409 nothing_to_accept" in out, out

        assert g.dial(5, reason="after accept")["state"] == "active"
        hist = history(g, "?limit=3")
        assert [e["action"] for e in hist] == ["dial", "audit_accept",
                                               "rollback"]
        assert hist[1]["key_id"] == "root" and hist[1]["from"] == \
            {"break_seq": 3}
        assert "pending_break" not in hist[0] and \
            "pending_break" not in hist[1]
        assert g.status()["audit"]["pending_break"] is None

        rc, out = verify(g)
        assert rc == 4, out
        assert "break: line 3 damaged" in out and "accepted" in out, out
    finally:
        g.destroy()


def test_edited_last_line_is_a_break_too():
    """An edited last entry (a complete line whose hash no longer matches)
    is damage like a torn one; the trail ends with a newline, so the break
    entry is a line of its own."""
    g = Gateway("edited")
    try:
        g.dial(10, reason="one")
        g.dial(20, reason="two")
        with open(g.audit_file) as f:
            lines = f.readlines()
        lines[-1] = lines[-1].replace('"two"', '"TWO"')
        with open(g.audit_file, "w") as f:
            f.writelines(lines)
        # no restart: the writer sees the file is not as it left it
        s, _, out = g.admin("POST", "rollback", {"reason": "safe"})
        assert s == 200, out
        rc, out = verify(g)
        assert rc == 5 and "break: line 2 damaged (hash does not match" \
            in out, out
    finally:
        g.destroy()


# --- refused bodies and keep-alive ------------------------------------------

def read_response(sock, buf=b""):
    """One HTTP/1.1 response from a raw socket: (status, headers, body,
    bytes left over)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response; got %r"
                                  % buf[:200])
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.lower(): v.strip() for k, v in
            (l.split(":", 1) for l in lines[1:])}
    n = int(hdrs.get("content-length", 0))
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        rest += chunk
    return status, hdrs, rest[:n], rest[n:]


def raw_request(method, path, body=b"", headers=None):
    h = {"Host": "gw", "Content-Length": str(len(body))}
    h.update(headers or {})
    return ("%s %s HTTP/1.1\r\n" % (method, path)
            + "".join("%s: %s\r\n" % kv for kv in h.items())
            + "\r\n").encode() + body


@pytest.fixture(scope="module")
def gw():
    g = Gateway("control")
    yield g
    g.destroy()


REFUSED_WITH_BODY = [
    ("POST", "/cutover/dial", 70000, 413, None),          # too large
    ("PUT", "/cutover/dial", 5000, 405, None),            # wrong method
    ("POST", "/cutover/status", 5000, 405, None),         # read call
    ("POST", "/cutover/nope", 5000, 404, None),           # unknown call
    ("POST", "/cutover/dial", 5000, 401, None),           # unsigned
    ("POST", "/cutover/dial", 5000, 403, "viewer"),       # role
]


@pytest.mark.parametrize("method,path,size,status,key", REFUSED_WITH_BODY)
def test_refused_body_keeps_the_connection_in_step(gw, method, path, size,
                                                   status, key):
    body = json.dumps({"percent": 1, "reason": "x" * size}).encode()
    headers = {}
    if key:
        headers = harness.sign_headers(method, path, body, key,
                                       SECRETS[key][1])
    status_path = "/cutover/status"
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(raw_request(method, path, body, headers))
        got, _, _, rest = read_response(s)
        assert got == status
        s.sendall(raw_request("GET", status_path, b"", harness.sign_headers(
            "GET", status_path, None, "viewer", SECRETS["viewer"][1])))
        got, _, data, rest = read_response(s, rest)
        assert got == 200, data[:300]
        assert json.loads(data)["zone"] == "erp"
        assert rest == b""


def test_history_newest_first_changes_only(gw):
    for p in (1, 2, 3):
        gw.dial(p, reason="h%d" % p)
    gw.admin("POST", "dial", {"percent": 500, "reason": "bad"})   # 400
    gw.admin("POST", "dial", {"percent": 5, "reason": "x"}, key=None)
    hist = history(gw, "?limit=2")
    assert [e["reason"] for e in hist] == ["h3", "h2"]
    assert hist[0]["seq"] > hist[1]["seq"]
    everything = history(gw, "?limit=1000&all=1")
    seqs = [e["seq"] for e in everything]
    assert seqs == sorted(seqs, reverse=True)
    assert any(e["result"] == "refused:invalid_percent" for e in everything)
    assert any(e["action"] == "refusals" for e in everything)
    changes = history(gw, "?limit=1000")
    assert all(e["result"] in ("accepted", "recorded") for e in changes)
    assert len(changes) < len(everything)
    assert gw.admin("GET", "history?all=2", key="viewer")[0] == 400
    rc, out = gw.ctl("history", "--all", "--limit", "50", key="viewer")
    assert rc == 0 and "refused:invalid_percent" in out, out


def audit_line(seq, prev, reason, action="dial", result="accepted"):
    """An entry as the gateway writes it (SPEC: hash of the text up to
    ,"hash":)."""
    text = ('{"seq":%d,"time":"2026-01-01T00:00:00Z","key_id":"ops",'
            '"action":"%s","result":"%s","from":null,"to":null,'
            '"reason":"%s","prev":"%s"' % (seq, action, result, reason, prev))
    h = hashlib.sha256(text.encode()).hexdigest()
    return text + ',"hash":"%s"}\n' % h, h


def test_history_reads_across_windows():
    """A trail of 3 000 entries (~700 KB, several read windows): the
    gateway chains onto it, and history walks back 1 000 of it, changes
    only, in order."""
    g = Gateway("longtrail")
    try:
        prev = "0" * 64
        with open(g.audit_file, "w") as f:
            for seq in range(1, 3001):
                refused = seq % 3 == 0
                line, prev = audit_line(
                    seq, prev, "r%d %s" % (seq, "x" * 100),
                    result="refused:invalid_percent" if refused
                    else "accepted")
                f.write(line)
        os.chmod(g.audit_file, 0o666)       # the workers' user writes it
        assert g.dial(3, reason="on top")["state"] == "active"
        hist = history(g, "?limit=1000")
        assert len(hist) == 1000
        assert hist[0]["seq"] == 3001 and hist[0]["reason"] == "on top"
        assert [e["seq"] for e in hist[1:]] == \
            [q for q in range(3000, 0, -1) if q % 3][:999]
        hist = history(g, "?limit=1000&all=1")
        assert [e["seq"] for e in hist] == list(range(3001, 2001, -1))
        rc, out = verify(g)
        assert rc == 0 and "intact, 3001 entries" in out, out
    finally:
        g.destroy()


# --- a flood of unsigned admin requests -------------------------------------

def flood(port, stop, counts, batch=100, pause=0.03):
    """Pipelined unsigned dials, batch at a time (~3 000/s), 900 per
    keep-alive connection (nginx closes one after keepalive_requests)."""
    body = json.dumps({"percent": 50, "reason": "flood"}).encode()
    req = raw_request("POST", "/cutover/dial", body)
    mark = b"HTTP/1.1 401 "
    while not stop.is_set():
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            for _ in range(9):
                if stop.is_set():
                    break
                s.sendall(req * batch)
                got, buf = 0, b""
                while got < batch:
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        raise ConnectionError("flood connection closed")
                    buf += chunk
                    n = buf.count(mark)
                    if n:
                        got += n
                        buf = buf[buf.rfind(mark) + 1:]
                    buf = buf[-(len(mark) - 1):]
                counts.append(batch)
                time.sleep(pause)


def dial_ms(g, percent):
    t0 = time.monotonic()
    s, _, out = g.admin("POST", "dial", {"percent": percent,
                                         "reason": "during flood"})
    assert s == 200, out
    return (time.monotonic() - t0) * 1000


def test_unsigned_flood_is_aggregated():
    g = Gateway("flood")
    try:
        g.dial(1, reason="before the flood")
        quiet = sorted(dial_ms(g, 2 + i % 2) for i in range(10))
        size0 = os.path.getsize(g.audit_file)

        stop = threading.Event()
        counts = []
        threads = [threading.Thread(target=flood, args=(g.port, stop, counts))
                   for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        busy = []
        for i in range(15):
            busy.append(dial_ms(g, 10 + i))
            time.sleep(0.2)
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(30)
        sent = sum(counts)
        busy.sort()

        print("\nflood: %d unsigned dials; signed dial ms quiet median %.1f "
              "max %.1f, under flood median %.1f max %.1f"
              % (sent, quiet[len(quiet) // 2], quiet[-1],
                 busy[len(busy) // 2], busy[-1]))
        assert sent >= 5000, sent

        # the flood added at most one "refusals" entry (the period is a
        # minute), beside the 15 dials of ~1 KB
        grown = os.path.getsize(g.audit_file) - size0
        entries = [json.loads(l) for l in open(g.audit_file)]
        refusals = [e for e in entries if e["action"] == "refusals"]
        assert len(refusals) <= 1, refusals
        assert grown < 15 * 1024 + 4096, grown

        hist = history(g, "?limit=1")
        assert hist[0]["action"] == "dial" and hist[0]["to"]["percent"] == 24
        assert busy[-1] < 1000, busy

        _, _, text = g.admin("GET", "metrics", key="viewer")
        m = re.search(r'cutover_admin_refusals_total\{zone="erp",'
                      r'reason="missing"\} (\d+)', text)
        assert int(m.group(1)) == sent
        m = re.search(r'cutover_audit_refusals_pending\{zone="erp"\} (\d+)',
                      text)
        counted = sum(e["to"]["count"] for e in refusals)
        assert counted + int(m.group(1)) == sent
        if refusals:
            assert refusals[0]["to"]["addresses"]["127.0.0.1"] >= 1
            assert refusals[0]["key_id"] == "-"

        rc, out = verify(g)
        assert rc == 0, out
    finally:
        g.destroy()


def test_refusals_entry_a_period_apart(gw):
    """The counts of unsigned attempts reach the trail at most once a
    period, per reason and per address."""
    url = "http://127.0.0.1:%d/cutover/dial" % gw.port
    before = [json.loads(l) for l in open(gw.audit_file)]
    for _ in range(30):
        assert harness.http("POST", url, "{}")[0] == 401
        assert harness.http("GET", url)[0] == 405
    after = [json.loads(l) for l in open(gw.audit_file)][len(before):]
    assert [e for e in after if e["action"] != "refusals"] == []
    assert len(after) <= 1


# --- cutoverctl over IPv6 -----------------------------------------------------

class Gateway6(Gateway):
    def conf(self):
        listen = "listen 127.0.0.1:%d;" % self.port
        return super().conf().replace(
            listen, listen + " listen [::1]:%d;" % self.port)

    @property
    def admin_url(self):
        return "http://[::1]:%d/cutover/" % self.port


@pytest.mark.skipif(not harness.has_ipv6_loopback(),
                    reason="no IPv6 loopback (ip -6 addr show lo)")
def test_cutoverctl_over_ipv6():
    g = Gateway6("ipv6")
    try:
        rc, out = g.ctl("dial", "7.5", "--reason", "over v6")
        assert rc == 0, out
        rc, out = g.ctl("status", key="viewer")
        assert rc == 0 and re.search(r"default\s+7.5\b", out), out
        rc, out = g.ctl("history", "--limit", "1", key="viewer")
        assert rc == 0 and "over v6" in out, out
        rc, out = g.ctl("rollback", "--reason", "v6 back")
        assert rc == 3, out
    finally:
        g.destroy()
