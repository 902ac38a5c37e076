"""cutover-shadowd replay rate against a fast shadow (plain nginx answering
201 with a small JSON body), beside that shadow's own capacity measured
with wrk in the same run, and beside the 20 000 records/s goal."""

import json
import os
import re
import subprocess
import time
import urllib.request

import harness
import wrk

RECORDS = 60000
GOAL = 20000.0

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
lock_file {d}/nginx.lock;
error_log {d}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp;
    scgi_temp_path {d}/tmp;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type application/json;
            return 201 '{{"ok":true}}';
        }}
    }}
}}
"""


def _records(n):
    for i in range(n):
        store = "S%03d" % (i % 200 + 1)
        body = json.dumps({"store_id": store, "channel": "pos",
                           "lines": [{"sku": "SKU%05d" % (i % 2000 + 1),
                                      "qty": 1 + i % 3}]})
        yield json.dumps({
            "id": "%032x" % (0xBE0C4000000 + i),
            "side": "legacy" if i % 2 else "new", "store": store,
            "channel": "pos", "key": store + ":pos", "method": "POST",
            "uri": "/api/v1/orders",
            "req_headers": [["Content-Type", "application/json"]],
            "req_body": body, "status": 201, "resp_body": '{"ok":true}',
            "content_type": "application/json"}) + "\n"


def _metrics(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    return {m.group(1): float(m.group(2)) for m in
            re.finditer(r"^(cutover_shadow_\w+) (\S+)$", text, re.M)}


def main():
    d = harness.make_tempdir("bench-shadow")
    os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
    port, mport = harness.free_port(), harness.free_port()
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(d=d, port=port))
    ngx = harness.Proc([harness.NGINX, "-p", d, "-c",
                        os.path.join(d, "nginx.conf")],
                       os.path.join(d, "nginx.out"), port=port)
    shadowd = None
    try:
        url = "http://127.0.0.1:%d" % port
        base = wrk.run(url + "/api/v1/orders", seconds=3, conns=64)["rps"]

        log = os.path.join(d, "erp.log")
        subprocess.run([harness.bin_path("cutover-logtool"), "write", log],
                       input="".join(_records(RECORDS)).encode(),
                       check=True)
        cfg = {"log": log, "checkpoint": os.path.join(d, "erp.ckpt"),
               "new": url, "legacy": url, "outbox": os.path.join(d, "ob"),
               "metrics_listen": "127.0.0.1:%d" % mport,
               "concurrency": 64, "poll_ms": 10, "flush_ms": 100}
        with open(os.path.join(d, "shadowd.json"), "w") as f:
            json.dump(cfg, f)
        start = time.monotonic()
        shadowd = harness.Proc([harness.bin_path("cutover-shadowd"),
                                "--config", os.path.join(d, "shadowd.json")],
                               os.path.join(d, "shadowd.log"), port=mport)
        murl = "http://127.0.0.1:%d/metrics" % mport
        while True:
            m = _metrics(murl)
            if (m["cutover_shadow_replayed_total"] >= RECORDS
                    and m["cutover_shadow_lag_records"] == 0):
                break
            if time.monotonic() - start > 120:
                raise RuntimeError("replay did not finish: %r" % m)
            time.sleep(0.05)
        rate = RECORDS / (time.monotonic() - start)
        wrk.line("shadow replay records/s vs shadow capacity", rate,
                 "rec/s", base)
        wrk.line("shadow replay records/s vs goal", rate, "rec/s", GOAL,
                 figure_name="shadow_replay_vs_goal")
    finally:
        if shadowd is not None:
            shadowd.stop()
        ngx.signal(3)               # QUIT
        ngx.stop()
        harness.remove_tempdir(d)


if __name__ == "__main__":
    main()
