"""The directories the workers write in (state=, audit=, cutover_log):
the master makes missing ones and gives them to the worker user; what the
workers could not write fails nginx -t and start, naming the path, the
user and the directive's place."""

import json
import os
import pwd
import re
import signal
import stat
import subprocess
import time

import pytest

import harness
from gateway import SECRETS

CONF = """
    cutover_zone erp size=1m state={state} {audit};
    upstream new_core {{ server 127.0.0.1:{up}; }}
    upstream legacy {{ server 127.0.0.1:{up}; }}
    server {{
        listen 127.0.0.1:{port};
        location /api/ {{
            cutover erp;
            cutover_record all;
            cutover_log {log};
            proxy_pass http://$cutover_upstream;
        }}
        location /cutover/ {{
            cutover_admin erp;
            cutover_admin_keys {dir}/keys;
        }}
    }}
"""

root_only = pytest.mark.skipif(os.geteuid() != 0,
                               reason="needs root: workers run as nobody")


def make(tmpdir, state="{dir}/state/erp.state", audit="",
         log="{dir}/log/erp.log"):
    up = harness.free_port()
    port = harness.free_port()
    with open(os.path.join(tmpdir, "keys"), "w") as f:
        f.write("ops operator %s\n" % SECRETS["ops"][1])
    conf = CONF.format(state=state, audit=audit, log=log, up=up, port=port,
                       dir="{dir}")
    n = harness.Nginx(conf, directory=tmpdir)
    n.port = port
    n.up = harness.Nginx('server { listen 127.0.0.1:%d; '
                         'location / { return 200 "ok\\n"; } }' % up,
                         name="dirs-up", workers=1)
    return n


def conf_line(n, needle):
    with open(n.conf) as f:
        for i, line in enumerate(f, 1):
            if needle in line:
                return i
    raise KeyError(needle)


@pytest.fixture
def tmpdir_w():
    d = harness.make_tempdir("dirs")
    yield d
    harness.remove_tempdir(d)


@root_only
def test_missing_nested_dirs_are_made_for_the_workers(tmpdir_w):
    n = make(tmpdir_w, state="{dir}/a/b/state/erp.state",
             audit="audit={dir}/a/c/erp.audit", log="{dir}/a/d/e/erp.log")
    nobody = pwd.getpwnam("nobody").pw_uid
    try:
        ok, out = n.test_config()
        assert ok, out
        for sub in ("a", "a/b", "a/b/state", "a/c", "a/d", "a/d/e"):
            st = os.stat(os.path.join(tmpdir_w, sub))
            assert stat.S_ISDIR(st.st_mode)
            assert st.st_uid == nobody, sub
        n.up.start()
        n.start(n.port)
        body = json.dumps({"percent": 50, "reason": "dirs"})
        h = harness.sign_headers("POST", "/cutover/dial", body, "ops",
                                 SECRETS["ops"][1])
        s, _, out = harness.http("POST", "http://127.0.0.1:%d/cutover/dial"
                                 % n.port, body, h)
        assert s == 200, out
        s, _, _ = harness.http("POST", "http://127.0.0.1:%d/api/x" % n.port,
                               "{}", {"X-Store-Id": "S1"})
        assert s == 200
        assert os.path.exists(os.path.join(tmpdir_w, "a/b/state/erp.state"))
        assert os.path.getsize(os.path.join(tmpdir_w, "a/c/erp.audit")) > 0
        # the record is written as the request ends, after the answer
        deadline = time.monotonic() + 5
        while not os.listdir(os.path.join(tmpdir_w, "a/d/e")) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.listdir(os.path.join(tmpdir_w, "a/d/e"))
        n.stop()
        n.assert_clean_log()
    finally:
        n.stop()
        n.up.destroy()


def expect_refused(n, path, directive, needle):
    ok, out = n.test_config()
    assert not ok, out
    user = "nobody" if os.geteuid() == 0 else \
        pwd.getpwuid(os.geteuid()).pw_name
    m = re.search(r"\[emerg\].*\"%s\".* of %s.*\"%s\".* in %s:(\d+)"
                  % (re.escape(path), re.escape(directive), user,
                     re.escape(n.conf)), out) or \
        re.search(r"\[emerg\].*\"%s\".*\"%s\".* of %s.* in %s:(\d+)"
                  % (re.escape(user), re.escape(path), re.escape(directive),
                     re.escape(n.conf)), out)
    assert m, out
    assert int(m.group(1)) == conf_line(n, needle), out
    # start fails the same way
    r = subprocess.run(n._cmd(), env=n._env(), capture_output=True,
                       timeout=20)
    assert r.returncode != 0
    n.up.destroy()
    return out


@root_only
def test_state_dir_not_writable_by_workers_fails_nginx_t(tmpdir_w):
    locked = os.path.join(tmpdir_w, "locked")
    os.mkdir(locked, 0o755)             # root's, workers are nobody
    n = make(tmpdir_w, state="{dir}/locked/erp.state")
    out = expect_refused(n, locked, "state=", "cutover_zone")
    assert "Permission denied" in out


@root_only
def test_audit_file_not_writable_by_workers_fails_nginx_t(tmpdir_w):
    os.makedirs(os.path.join(tmpdir_w, "state"), 0o777)
    os.chmod(os.path.join(tmpdir_w, "state"), 0o777)
    audit = os.path.join(tmpdir_w, "state", "erp.state.audit")
    with open(audit, "w"):
        pass
    os.chmod(audit, 0o644)              # root's
    n = make(tmpdir_w)
    expect_refused(n, audit, "audit=", "cutover_zone")


@root_only
def test_log_dir_behind_a_file_fails_nginx_t(tmpdir_w):
    with open(os.path.join(tmpdir_w, "notadir"), "w"):
        pass
    n = make(tmpdir_w, log="{dir}/notadir/log/erp.log")
    out = expect_refused(n, os.path.join(tmpdir_w, "notadir", "log"),
                         "cutover_log", "cutover_log")
    assert "Not a directory" in out


@root_only
def test_log_dir_on_a_read_only_place_fails_nginx_t(tmpdir_w):
    """A read-only mount: root could not write there either."""
    ro = os.path.join(tmpdir_w, "ro")
    os.mkdir(ro)
    if os.system("mount -t tmpfs -o size=1m,ro tmpfs %s 2>/dev/null" % ro):
        pytest.skip("cannot mount a tmpfs here")
    try:
        n = make(tmpdir_w, log="{dir}/ro/erp.log")
        out = expect_refused(n, ro, "cutover_log", "cutover_log")
        assert "Read-only file system" in out
    finally:
        os.system("umount %s" % ro)


@root_only
def test_reload_keeps_serving_when_a_dir_became_unwritable(tmpdir_w):
    n = make(tmpdir_w)
    try:
        n.up.start()
        n.start(n.port)
        workers = n.worker_pids()
        state = os.path.join(tmpdir_w, "state")
        os.chown(state, 0, 0)
        os.chmod(state, 0o755)
        os.kill(n.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "[emerg]" not in n.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert re.search(r"\[emerg\].*\"nobody\".*\"%s\" of state=.* in "
                         r"%s:\d+" % (re.escape(state), re.escape(n.conf)),
                         n.log_text())
        # the old configuration goes on serving
        assert n.worker_pids() == workers
        s, _, body = harness.http("GET", "http://127.0.0.1:%d/api/x"
                                  % n.port, headers={"X-Store-Id": "S1"})
        assert (s, body) == (200, b"ok\n")
    finally:
        n.stop()
        n.up.destroy()
