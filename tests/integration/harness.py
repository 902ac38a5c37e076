"""cutover's integration harness: real nginx, real PostgreSQL, real processes.

Every case gets a world-traversable temp dir (workers run as nobody when the
harness runs as root), free loopback ports, and processes that the harness
starts and stops itself.  Set CUTOVER_KEEP=1 to keep temp dirs for a
post-mortem.
"""

import contextlib
import glob
import hashlib
import hmac
import http.client as httpclient
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, "build")
# make test points this at the programs built with AddressSanitizer and
# UndefinedBehaviorSanitizer
BIN = os.environ.get("CUTOVER_BIN", os.path.join(BUILD, "bin"))
# make test points this at the AddressSanitizer build of the module
MODULE_SO = os.environ.get("CUTOVER_MODULE",
                           os.path.join(BUILD, "ngx_http_cutover_module.so"))
ASAN_RUNTIME = "/usr/lib/x86_64-linux-gnu/libasan.so.8"
# Hostile JSON inputs: the project's own (always), and the JSONTestSuite
# parsing cases when CUTOVER_JSONTESTSUITE names that suite's folder.
JSON_CASES = os.path.join(ROOT, "tests", "fixtures", "json")
JSONTESTSUITE = os.environ.get("CUTOVER_JSONTESTSUITE", "")
KEEP = os.environ.get("CUTOVER_KEEP") == "1"
NGINX = "/usr/sbin/nginx"

SANITIZER = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:")
BAD_LOG_LINE = re.compile(r"\[(alert|emerg|crit)\]|" + SANITIZER.pattern)


def json_cases():
    """[(name, path)] of every hostile JSON case: y_ must be accepted,
    n_ refused, i_ either (never a crash)."""
    dirs = [JSON_CASES]
    if JSONTESTSUITE:
        dirs.append(os.path.join(JSONTESTSUITE, "test_parsing"))
    cases = []
    for d in dirs:
        names = sorted(n for n in os.listdir(d) if n[:2] in ("y_", "n_", "i_"))
        assert names, "no JSON cases in %s" % d
        cases += [(n, os.path.join(d, n)) for n in names]
    return cases


def log_records(log, expect=None, timeout=5.0):
    """The records of the dual-run log `log`, via cutover-logtool dump;
    with expect, waits until there are that many (a record is written
    when nginx finalizes the request, just after the client has its
    answer) or the timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        r = subprocess.run([bin_path("cutover-logtool"), "dump", log],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        recs = [json.loads(l) for l in r.stdout.splitlines()]
        if expect is None or len(recs) >= expect \
                or time.monotonic() > deadline:
            return recs
        time.sleep(0.05)


def bin_path(name):
    return os.path.join(BIN, name)


def make_tempdir(name="case"):
    """A fresh temp dir that unprivileged workers can read and write."""
    path = tempfile.mkdtemp(prefix="cutover-%s-" % re.sub(r"\W", "_", name))
    os.chmod(path, 0o777)
    return path


def remove_tempdir(path):
    if KEEP:
        print("kept temp dir: %s" % path)
        return
    shutil.rmtree(path, ignore_errors=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def has_ipv6_loopback():
    """Whether lo carries ::1 (IPv6 cases skip without it)."""
    r = subprocess.run(["ip", "-6", "addr", "show", "lo"],
                       capture_output=True, text=True)
    return "::1" in r.stdout


def wait_port(port, timeout=10.0, proc=None, host="127.0.0.1"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before listening on %d"
                               % (proc.returncode, port))
        with contextlib.suppress(OSError):
            with socket.create_connection((host, port), timeout=0.2):
                return
        time.sleep(0.02)
    raise TimeoutError("nothing listening on %s:%d after %.1fs"
                       % (host, port, timeout))


def http(method, url, body=None, headers=None, timeout=10.0):
    """One HTTP request: returns (status, {lower-case header: value}, bytes)."""
    m = re.match(r"http://(\[[0-9a-fA-F:.]+\]|[^/:\[\]]+):(\d+)(/.*)?$", url)
    if not m:
        raise ValueError("bad url %r" % url)
    host, port, path = m.group(1).strip("[]"), int(m.group(2)), \
        m.group(3) or "/"
    if isinstance(body, str):
        body = body.encode()
    conn = httpclient.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


class Proc:
    """A program of ours (or any) started in the background, logs to a file."""

    def __init__(self, argv, log_path, env=None, port=None, cwd=None,
                 timeout=15.0, host="127.0.0.1"):
        self.argv = list(argv)
        self.log_path = log_path
        self.port = port
        self._log = open(log_path, "ab")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(self.argv, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=full_env,
                                     cwd=cwd, start_new_session=True)
        if port is not None:
            try:
                wait_port(port, timeout, self.proc, host=host)
            except Exception:
                self.stop()
                raise RuntimeError("%s did not start:\n%s"
                                   % (argv[0], self.log_tail()))

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def log_tail(self, n=40):
        with open(self.log_path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def stop(self, timeout=10.0):
        """TERM, then KILL after timeout; returns the exit code.  Fails
        when the program's log holds a sanitizer report."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close()
        return self.proc.returncode

    def kill9(self):
        if self.alive():
            self.proc.kill()
        self.proc.wait()
        self._close()

    def _close(self):
        if self._log.closed:
            return
        self._log.close()
        with open(self.log_path, "rb") as f:
            text = f.read().decode(errors="replace")
        m = SANITIZER.search(text)
        if m:
            raise AssertionError("%s: sanitizer report in %s:\n%s"
                                 % (os.path.basename(self.argv[0]),
                                    self.log_path,
                                    text[max(0, m.start() - 200):][:4000]))


def _pg_bindir():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not dirs:
        raise RuntimeError("PostgreSQL server binaries not found "
                           "(apt-get install postgresql)")
    return dirs[-1]


class Pg:
    """A throwaway PostgreSQL cluster, run as an unprivileged user."""

    def __init__(self, name="pg", port=None):
        self.dir = make_tempdir(name)
        self.data = os.path.join(self.dir, "data")
        self.sock = self.dir
        self.port = port or free_port()
        self.log = os.path.join(self.dir, "postgres.log")
        self.bindir = _pg_bindir()
        self.as_user = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._run([os.path.join(self.bindir, "initdb"), "-D", self.data,
                   "-A", "trust", "-U", "postgres", "-E", "UTF8",
                   "--locale=C"])

    def _run(self, argv):
        r = subprocess.run(self.as_user + argv, capture_output=True)
        if r.returncode != 0:
            raise RuntimeError("%s failed: %s" % (argv[0],
                               (r.stdout + r.stderr).decode(errors="replace")))
        return r.stdout.decode()

    def start(self):
        opts = ("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=300 -c shared_buffers=128MB"
                % (self.port, self.sock))
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data,
                   "-o", opts, "-l", self.log, "-w", "start"])
        return self

    def stop(self, mode="fast"):
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data,
                   "-m", mode, "-w", "stop"])

    def restart(self):
        self.stop()
        self.start()

    def destroy(self):
        with contextlib.suppress(Exception):
            self.stop("immediate")
        remove_tempdir(self.dir)

    def conninfo(self, dbname="postgres"):
        return "host=127.0.0.1 port=%d user=postgres dbname=%s" % (
            self.port, dbname)

    def createdb(self, name):
        """Create a fresh database (dropping any old one); returns conninfo."""
        self.psql("postgres", 'DROP DATABASE IF EXISTS "%s"' % name)
        self.psql("postgres", 'CREATE DATABASE "%s"' % name)
        return self.conninfo(name)

    def psql(self, dbname, sql):
        """Run SQL; returns tuples-only, '|'-separated output, stripped."""
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v",
                            "ON_ERROR_STOP=1", "-d", self.conninfo(dbname),
                            "-c", sql], capture_output=True)
        if r.returncode != 0:
            raise RuntimeError("psql: %s" % r.stderr.decode(errors="replace"))
        return r.stdout.decode().strip()


NGINX_CONF = """\
load_module {module};
worker_processes {workers};
master_process on;
daemon off;
pid {dir}/nginx.pid;
lock_file {dir}/nginx.lock;
error_log {dir}/logs/error.log {log_level};
{main}
events {{ worker_connections 1024; }}

http {{
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
{http}
}}
"""


class Nginx:
    """Debian's nginx with our module, 2 workers, in its own temp dir.

    `http` is the text inside the http block; "{dir}" in it is replaced by
    the instance's directory.
    """

    def __init__(self, http_conf, name="nginx", workers=2, main="",
                 log_level="info", directory=None, module=None, env=None):
        self.module = module or MODULE_SO
        self.env = dict(env or {})      # LD_PRELOAD goes after ASan's
        self.dir = directory or make_tempdir(name)
        for sub in ("conf", "logs", "tmp"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
            os.chmod(os.path.join(self.dir, sub), 0o777)
        self.conf = os.path.join(self.dir, "conf", "nginx.conf")
        self.error_log = os.path.join(self.dir, "logs", "error.log")
        self.workers = workers
        self.main = main
        self.log_level = log_level
        self.proc = None
        self.write_conf(http_conf)

    def write_conf(self, http_conf):
        text = NGINX_CONF.format(module=self.module, workers=self.workers,
                                 dir=self.dir, main=self.main,
                                 log_level=self.log_level,
                                 http=http_conf.replace("{dir}", self.dir))
        with open(self.conf, "w") as f:
            f.write(text)

    def _cmd(self, *extra):
        return [NGINX, "-p", self.dir, "-c", self.conf, "-e",
                self.error_log] + list(extra)

    def _env(self):
        env = dict(os.environ)
        extra = dict(self.env)
        preload = [extra.pop("LD_PRELOAD")] if "LD_PRELOAD" in extra else []
        env.update(extra)
        if "/asan/" in self.module:
            preload.insert(0, ASAN_RUNTIME)
            env["ASAN_OPTIONS"] = ("detect_leaks=0:abort_on_error=0:"
                                  "detect_stack_use_after_return=1")
        if preload:
            env["LD_PRELOAD"] = ":".join(preload)
        return env

    def test_config(self):
        """nginx -t: returns (ok, output)."""
        r = subprocess.run(self._cmd("-t"), capture_output=True,
                           env=self._env())
        return r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")

    def start(self, port=None, timeout=10.0):
        log = open(os.path.join(self.dir, "logs", "stderr.log"), "ab")
        self.proc = subprocess.Popen(self._cmd(), stdout=log,
                                     stderr=subprocess.STDOUT,
                                     env=self._env())
        log.close()
        if port is not None:
            try:
                wait_port(port, timeout, self.proc)
            except Exception:
                raise RuntimeError("nginx did not start:\n" + self.log_text())
        self._wait_workers()
        return self

    def worker_pids(self):
        r = subprocess.run(["ps", "-o", "pid=,args=", "--ppid",
                            str(self.proc.pid)], capture_output=True)
        return sorted(int(line.split()[0]) for line in
                      r.stdout.decode().splitlines()
                      if "worker process" in line
                      and "shutting down" not in line)

    def _wait_workers(self, exclude=(), timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = [p for p in self.worker_pids() if p not in exclude]
            if len(pids) >= self.workers:
                return pids
            time.sleep(0.02)
        raise TimeoutError("nginx workers did not start:\n" + self.log_text())

    def reload(self, http_conf=None):
        """SIGHUP (nginx -s reload) and wait for the new workers."""
        if http_conf is not None:
            self.write_conf(http_conf)
        old = self.worker_pids()
        os.kill(self.proc.pid, signal.SIGHUP)
        self._wait_workers(exclude=old)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not (set(old) & set(self.worker_pids())):
                break
            time.sleep(0.02)

    def stop(self, timeout=10.0):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_text(self):
        try:
            with open(self.error_log, "r", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def bad_log_lines(self):
        text = self.log_text()
        stderr = os.path.join(self.dir, "logs", "stderr.log")
        if os.path.exists(stderr):
            with open(stderr, "r", errors="replace") as f:
                text += f.read()
        return [l for l in text.splitlines() if BAD_LOG_LINE.search(l)]

    def assert_clean_log(self):
        bad = self.bad_log_lines()
        assert not bad, "error log has:\n" + "\n".join(bad[:20])

    def destroy(self):
        self.stop()
        remove_tempdir(self.dir)


# --- admin API signing (SPEC.md) -------------------------------------------

def sign_headers(method, path, body, key_id, secret_hex, ts=None, nonce=None):
    """The Authorization header of a signed admin request."""
    ts = int(time.time()) if ts is None else ts
    nonce = nonce or secrets.token_hex(16)
    body = body or b""
    if isinstance(body, str):
        body = body.encode()
    msg = "%s\n%s\n%d\n%s\n%s" % (method, path, ts, nonce,
                                  hashlib.sha256(body).hexdigest())
    sig = hmac.new(bytes.fromhex(secret_hex), msg.encode(),
                   hashlib.sha256).hexdigest()
    return {"Authorization": "CUTOVER-HMAC-SHA256 KeyId=%s, Timestamp=%d, "
                             "Nonce=%s, Signature=%s"
                             % (key_id, ts, nonce, sig)}
