#!/usr/bin/env python3
"""Runs nginx's own test suite (nginx-tests) twice with Debian's nginx:
once plain, once with the cutover module loaded and routing and recording
every request of every http server, and fails when any test's verdict
differs between the two runs (the module must change no response), when an
nginx error log of the module run has an alert, or when nothing was recorded.

    tests/nginx-tests/run.py /path/to/nginx-tests [test.t ...]

The suite is not part of this repository: use a checkout of
https://github.com/nginx/nginx-tests at the last commit before 2022-10-20
(nginx 1.22.1).  Without test names it runs the proxy, mirror,
split_clients and upstream tests.  Needs Perl's Test::More (Debian's perl)
and, for the tests that load them, Debian's libnginx-mod-* packages.
"""

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODULE = os.environ.get("CUTOVER_MODULE",
                        os.path.join(ROOT, "build", "ngx_http_cutover_module.so"))
LOGTOOL = os.path.join(ROOT, "build", "bin", "cutover-logtool")
DEFAULT = ("proxy*.t", "mirror*.t", "split_clients*.t", "upstream*.t")
# Differences the module makes on purpose, with the reason: they change
# what the upstream receives, never what the client gets.
EXPECTED = {
    ("proxy_variables.t", 3): "a recorded request carries X-Cutover-Request-Id "
    "and Idempotency-Key upstream; the test logs the upstream request's length",
    ("proxy_variables.t", 4): "the same, for a response in several packets",
}
TAP = re.compile(r"^(not ok|ok) (\d+)( - [^#]*)?(#\s*(skip|todo).*)?",
                 re.IGNORECASE)


def inject(conf_text, directives):
    """Adds `directives` at the top of every server block of the http
    context (not stream's or mail's) in a test's nginx.conf template."""
    out, stack = [], []
    for line in conf_text.splitlines(keepends=True):
        code = line.split("#", 1)[0]
        opened = re.match(r"\s*(\w+)[^{;]*\{", code)
        out.append(line)
        if opened:
            stack.append(opened.group(1))
            if stack[-1] == "server" and "http" in stack \
                    and "stream" not in stack and "mail" not in stack:
                out.append("        %s\n" % directives)
        for _ in range(code.count("}")):
            if stack:
                stack.pop()
    return "".join(out)


def instrument(src, dst, directives):
    """A copy of the test script whose config templates carry our
    directives; the rest of the script is untouched."""
    text = open(src, encoding="utf-8", errors="surrogateescape").read()
    parts = re.split(r"(<<'EOF'[^\n]*\n.*?\nEOF\n)", text, flags=re.S)
    for i, part in enumerate(parts):
        if part.startswith("<<'EOF'") and "http {" in part:
            parts[i] = inject(part, directives)
    with open(dst, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write("".join(parts))


def run(suite, script, env):
    """{test number: verdict} of one .t file (verdict: ok, not ok, skip,
    todo), and the raw output.  As root, the suite runs as nobody: its
    temp dirs are private to the user who runs it, and workers of a root
    master run as nobody."""
    argv = ["perl", script]
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "nobody", "--"] + argv
    r = subprocess.run(argv, cwd=suite, env=env,
                       capture_output=True, text=True, errors="replace",
                       timeout=300)
    verdicts = {}
    for line in r.stdout.splitlines():
        m = TAP.match(line)
        if m:
            kind = (m.group(5) or m.group(1)).lower()
            verdicts[int(m.group(2))] = kind
    if not verdicts:
        plan = re.search(r"^1\.\.0 # (?i:skip)(.*)$", r.stdout, re.M)
        verdicts["plan"] = "skipped: " + plan.group(1).strip() if plan \
            else "no tests (exit %d)" % r.returncode
    return verdicts, r.stdout + r.stderr


def main():
    if len(sys.argv) < 2 or not os.path.isdir(sys.argv[1]):
        sys.stderr.write(__doc__)
        return 2
    suite = os.path.abspath(sys.argv[1])
    names = sys.argv[2:] or sorted(
        {os.path.basename(p) for pat in DEFAULT
         for p in glob.glob(os.path.join(suite, pat))})

    work = tempfile.mkdtemp(prefix="cutover-nginx-tests-")
    os.chmod(work, 0o777)
    # a test script chdirs to its own folder and loads lib/ from there
    os.symlink(os.path.join(suite, "lib"), os.path.join(work, "lib"))
    log = os.path.join(work, "dual-run.log")
    directives = ("cutover nt; cutover_record all; cutover_log %s;" % log)
    zone = "cutover_zone nt size=1m state=%s;" % os.path.join(work, "nt.state")
    base = dict(os.environ, TEST_NGINX_BINARY="/usr/sbin/nginx",
                TEST_NGINX_MODULES="/usr/lib/nginx/modules")
    base.pop("TEST_NGINX_GLOBALS", None)
    base.pop("TEST_NGINX_GLOBALS_HTTP", None)
    with_module = dict(base,
                       TEST_NGINX_GLOBALS="load_module %s;" % MODULE,
                       TEST_NGINX_GLOBALS_HTTP=zone,
                       TEST_NGINX_LEAVE="1")

    differ, ran, tests = [], 0, 0
    for name in names:
        plain, _ = run(suite, os.path.join(suite, name), base)
        copy = os.path.join(work, name)
        instrument(os.path.join(suite, name), copy, directives)
        os.chmod(copy, 0o644)
        mod, out = run(suite, copy, with_module)
        ran += 1
        tests += sum(1 for k in plain if k != "plan")
        diff = {k for k in set(plain) | set(mod) if plain.get(k) != mod.get(k)}
        explained = {k for k in diff if (name, k) in EXPECTED}
        if diff - explained:
            differ.append((name, plain, mod, out))
        print("%-44s %s" % (name, "DIFFERS" if diff - explained else "same"))
        for k in sorted(explained):
            print("    test %d differs on purpose: %s" % (k, EXPECTED[(name, k)]))

    alerts = []
    for err in glob.glob("/tmp/nginx-test-*/error.log"):
        text = open(err, errors="replace").read()
        if re.search(r"\[(alert|emerg|crit)\].*cutover|cutover.*\[(alert|emerg|crit)\]",
                     text):
            alerts.append(err)
    for d in glob.glob("/tmp/nginx-test-*"):
        shutil.rmtree(d, ignore_errors=True)

    dump = subprocess.run([LOGTOOL, "dump", log], capture_output=True,
                          text=True, errors="replace")
    records = len(dump.stdout.splitlines())
    shutil.rmtree(work, ignore_errors=True)

    for name, plain, mod, out in differ:
        print("\n== %s\nplain:  %s\nmodule: %s\n%s" % (name, plain, mod,
                                                     out[-3000:]))
    for err in alerts:
        print("alert in %s" % err)
    print("\n%d files, %d tests: %d differ; %d records written by the module; "
          "%d logs with a cutover alert"
          % (ran, tests, len(differ), records, len(alerts)))
    return 1 if differ or alerts or records == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
