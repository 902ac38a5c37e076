"""The guard's cost on the request path: the same routing at 100 % new,
with and without cutover_guard on its zone (goal: >= 0.99x req/s).

Rounds alternate between the two fronts; figures are medians."""

import os

import harness
import wrk
from bench_gateway import dial, start

FRONT = """
    cutover_zone plain size=1m state={dir}/plain.state;
    cutover_zone guarded size=1m state={dir}/guarded.state;
    cutover_guard guarded error_rate=5% latency_p99=800ms window=30s
                  min_requests=200;
    upstream new_core {{ server 127.0.0.1:{a}; keepalive 64; }}
    upstream legacy {{ server 127.0.0.1:{b}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{off};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location / {{
            cutover plain;
            cutover_upstreams new=new_core legacy=legacy;
            proxy_pass http://$cutover_upstream;
        }}
        location /cutover/ {{
            cutover_admin plain;
            cutover_admin_keys {dir}/keys;
        }}
    }}
    server {{
        listen 127.0.0.1:{on};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location / {{
            cutover guarded;
            cutover_upstreams new=new_core legacy=legacy;
            proxy_pass http://$cutover_upstream;
        }}
        location /cutover/ {{
            cutover_admin guarded;
            cutover_admin_keys {dir}/keys;
        }}
    }}
"""


def main(rounds=int(os.environ.get("BENCH_ROUNDS", "3")),
         seconds=int(os.environ.get("BENCH_SECONDS", "5"))):
    a, b, off, on = (harness.free_port() for _ in range(4))
    up, front, script = start("bench-guard", FRONT, a=a, b=b, off=off, on=on)
    try:
        dial(off, 100)
        dial(on, 100)
        wrk.run("http://127.0.0.1:%d/" % off, 2, script=script)
        wrk.run("http://127.0.0.1:%d/" % on, 2, script=script)
        base, test = [], []
        for _ in range(rounds):
            base.append(wrk.run("http://127.0.0.1:%d/" % off, seconds,
                                script=script))
            test.append(wrk.run("http://127.0.0.1:%d/" % on, seconds,
                                script=script))
        bm, tm = wrk.median_of(base), wrk.median_of(test)
        print("routing at 100 %% new without vs with cutover_guard, wrk -c32,"
              " %d x %d s, medians" % (rounds, seconds))
        wrk.line("requests/s (guard / no guard)", tm["rps"], "req/s",
                 bm["rps"])
        wrk.line("p50 latency", tm["p50"], "ms", bm["p50"])
        wrk.line("p99 latency", tm["p99"], "ms", bm["p99"])
        print("non-2xx: %d" % (tm["non2xx"] + bm["non2xx"]))
        front.assert_clean_log()
    finally:
        front.destroy()
        up.destroy()


if __name__ == "__main__":
    main()
