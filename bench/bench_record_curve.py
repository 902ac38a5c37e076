"""Recording cost as the work grows: plain proxy_pass against routing +
every request recorded (bench_record's recorded location), for GET answers
of 1 KB, 16 KB and 256 KB (static files on the upstream) and POST request
bodies of the same sizes (1 KB answers), at 1, 32 and 256 client
connections (wrk -t1 -cN).

Each cell is BENCH_ROUNDS (3) pairs of BENCH_SECONDS (3) s runs, plain and
recorded back to back in alternating order; it shows the req/s and p99 of
each side (medians), the req/s ratio and the p99 added (medians of the
pairs), the front worker's CPU per request each side and their ratio, and
the records written per request served.  On a shared machine the CPU per
request is the steadiest of these: it moves least with what else runs
on the cores.

The module's own cost, as in bench_record's "shadowd paused" figure: no
shadowd runs (a paused one does nothing either), and between runs the
benchmark deletes the segments the writer has left, as a shadowd that
keeps up would, so the log stays one segment long instead of growing by
gigabytes (256 KB at thousands of req/s).  cutover_body_limit is 256k (its
default): a 256 KiB body is within it and recorded whole, which the
records / truncated / dropped counts of each cell show.  Both fronts keep
request bodies and answers up to 512 KB in memory (client_body_buffer_size,
proxy_buffers), so the figures are recording's cost, not nginx's temp
files, which both sides would pay alike past the defaults (16 KB bodies,
64 KB answers)."""

import os
import statistics
import time

import harness
import wrk
from bench_gateway import BODY
from bench_record import RECORDED, alternate, measured, metric

SIZES = (("1k", 1024), ("16k", 16 << 10), ("256k", 256 << 10))
CONNS = (1, 32, 256)

UPSTREAM = """
    server {{ listen 127.0.0.1:{a};
              location /get/ {{ alias {www}/; }}
              location = /post {{ return 200 '{body}'; }} }}
"""

FRONT = """
    cutover_zone erp size=1m state={dir}/erp.state;
    upstream primary {{ server 127.0.0.1:{a}; keepalive 256; }}
    upstream shadow  {{ server 127.0.0.1:{a}; keepalive 256; }}
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    client_body_buffer_size 512k;
    client_max_body_size 1m;
    proxy_buffers 64 8k;
    server {{ listen 127.0.0.1:{plain};
              location / {{ proxy_pass http://primary; }} }}
    server {{ listen 127.0.0.1:{rec};
              cutover_body_limit 256k;
              location = /metrics {{ cutover_metrics erp; }}
              location / {{""" + RECORDED + """              }} }}
"""

COUNTS = ("cutover_records_total", "cutover_records_truncated_total",
          "cutover_records_dropped_total")


def cells():
    """(name, method, path, request body size, key) of each row."""
    out = [("GET %s answer" % n, "GET", "/get/%s.json" % n, 0, "get_" + n)
           for n, _ in SIZES]
    out += [("POST %s body" % n, "POST", "/post", size, "post_" + n)
            for n, size in SIZES]
    return out


def figure_name(key, conns, what="rps"):
    """The name a cell's ratio (req/s or CPU per request) is reported
    under (bench/run.py)."""
    return "curve_%s_c%d_%s" % (key, conns, what)


def figure_names():
    return [figure_name(c[4], n, w) for c in cells() for n in CONNS
            for w in ("rps", "cpu")]


def consume(log_dir):
    """Deletes every segment but the newest, as shadowd does once it has
    passed them; the writer never reopens a segment below its own."""
    segs = sorted(f for f in os.listdir(log_dir) if f.startswith("erp.log."))
    for f in segs[:-1]:
        os.unlink(os.path.join(log_dir, f))


def counts(port):
    return [metric(port, name) for name in COUNTS]


def cell(name, conns, rounds, seconds, script, worker, plain, rec, port,
         log_dir):
    """One cell: rounds pairs of runs, plain and recorded back to back."""
    res = {"plain": [], "rec": []}
    cpu = {"plain": [], "rec": []}
    c0 = counts(port)
    for i in range(rounds):
        for k in alternate(i, "plain", "rec"):
            res[k].append(measured(worker, plain if k == "plain" else rec,
                                   seconds, script, cpu[k], conns))
            if k == "rec":
                consume(log_dir)
    c1 = counts(port)
    pairs = [r["rps"] / p["rps"] for r, p in zip(res["rec"], res["plain"])]
    print("  %-15s -c%-3d plain %s rec %s req/s; pairs %s"
          % (name, conns, " ".join("%.0f" % x["rps"] for x in res["plain"]),
             " ".join("%.0f" % x["rps"] for x in res["rec"]),
             " ".join("%.3f" % x for x in pairs)), flush=True)
    served = sum(r["requests"] for r in res["rec"])
    return {
        "name": name, "conns": conns,
        "plain": wrk.median_of(res["plain"]), "rec": wrk.median_of(res["rec"]),
        "ratio": statistics.median(pairs),
        "p99_added": statistics.median(r["p99"] - p["p99"] for r, p in
                                       zip(res["rec"], res["plain"])),
        "cpu": {k: statistics.median(v) for k, v in cpu.items()},
        "cpu_ratio": statistics.median(cpu["rec"]) /
        statistics.median(cpu["plain"]),
        "records": (c1[0] - c0[0]) / served if served else 0,
        "truncated": c1[1] - c0[1], "dropped": c1[2] - c0[2],
        "non2xx": sum(r["non2xx"] for v in res.values() for r in v)}


def main(rounds=int(os.environ.get("BENCH_ROUNDS", "3")),
         seconds=int(os.environ.get("BENCH_SECONDS", "3"))):
    start = time.monotonic()
    a, plain, rec = (harness.free_port() for _ in range(3))
    www = harness.make_tempdir("bench-curve-www")
    for name, size in SIZES:
        with open(os.path.join(www, "%s.json" % name), "w") as f:
            f.write('"%s"' % ("x" * (size - 2)))
    up = harness.Nginx(UPSTREAM.format(a=a, www=www, body=BODY), workers=1,
                       name="bench-up", log_level="warn")
    d = harness.make_tempdir("bench-curve")
    log_dir = os.path.join(d, "log")
    os.makedirs(log_dir)
    os.chmod(log_dir, 0o777)
    front = harness.Nginx(FRONT.format(a=a, plain=plain, rec=rec, dir=d),
                          workers=1, directory=d, log_level="warn")
    url = "http://127.0.0.1:%d"
    rows = []
    try:
        up.start(a)
        front.start(rec)
        worker = front.worker_pids()[0]
        scripts = {}
        for name, method, path, size, _ in cells():
            scripts[name] = os.path.join(d, "%s.lua" % name.replace(" ", "_"))
            with open(scripts[name], "w") as f:
                f.write(wrk.lua_stores(method, path, size))
            s, _, body = harness.http(method, url % rec + path,
                                      "x" * size if size else None)
            assert s == 200, (name, s, body[:200])
        warm = scripts[cells()[0][0]]
        for port in (plain, rec):
            wrk.run(url % port + "/", 2, script=warm)
        consume(log_dir)
        for name, _, _, _, key in cells():
            for conns in CONNS:
                rows.append(cell(name, conns, rounds, seconds, scripts[name],
                                 worker, url % plain + "/", url % rec + "/",
                                 rec, log_dir))
                wrk.figure(figure_name(key, conns), rows[-1]["ratio"], 1.0)
                wrk.figure(figure_name(key, conns, "cpu"),
                           rows[-1]["cpu_ratio"], 1.0, "lower")
        for line in front.bad_log_lines() + up.bad_log_lines():
            print("  error log: %s" % line)
    finally:
        front.destroy()
        up.destroy()
        harness.remove_tempdir(www)
    print("recording cost by size and connections: wrk -t1, %d x %d s per "
          "side and cell; plain proxy_pass vs cutover routing + "
          "cutover_record all (shadowd not running)" % (rounds, seconds))
    print("req/s and p99: medians; ratio and p99 +ms: medians of the "
          "back-to-back pairs; cpu: the front worker's us per request "
          "(medians), cpu x: their ratio; rec/req: records written per "
          "request wrk completed (requests in flight at a run's end are "
          "recorded too)")
    print("%-15s %5s %9s %9s %6s %9s %9s %8s %6s %6s %6s %7s %s"
          % ("cell", "conns", "plain r/s", "rec r/s", "ratio", "p99 plain",
             "p99 rec", "p99 +ms", "cpu", "cpu", "cpu x", "rec/req",
             "truncated/dropped/non-2xx"))
    for r in rows:
        print("%-15s %5d %9.0f %9.0f %6.3f %9.3f %9.3f %+8.3f %6.1f %6.1f "
              "%6.2f %7.3f %d/%d/%d"
              % (r["name"], r["conns"], r["plain"]["rps"], r["rec"]["rps"],
                 r["ratio"], r["plain"]["p99"], r["rec"]["p99"],
                 r["p99_added"], r["cpu"]["plain"], r["cpu"]["rec"],
                 r["cpu_ratio"], r["records"], r["truncated"], r["dropped"],
                 r["non2xx"]))
    print("record curve took %.0f s" % (time.monotonic() - start),
          flush=True)


if __name__ == "__main__":
    main()
