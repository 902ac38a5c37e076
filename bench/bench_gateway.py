"""Routing overhead: plain proxy_pass against the same location with
cutover routing at 50 % (issue 2's goal: >= 0.95x req/s, p99 + <= 0.2 ms).

Rounds alternate between the two fronts; figures are medians."""

import os

import harness
import wrk

BODY = '{"items": [%s]}' % ",".join('{"sku": "SKU%05d", "qty": %d}'
                                    % (i, i) for i in range(40))

UPSTREAMS = """
    server {{ listen 127.0.0.1:{a}; location / {{ return 200 '{body}'; }} }}
    server {{ listen 127.0.0.1:{b}; location / {{ return 200 '{body}'; }} }}
"""

FRONT = """
    cutover_zone erp size=1m state={dir}/erp.state;
    upstream new_core {{ server 127.0.0.1:{a}; keepalive 64; }}
    upstream legacy {{ server 127.0.0.1:{b}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{plain};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location / {{ proxy_pass http://new_core; }}
    }}
    server {{
        listen 127.0.0.1:{cut};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location / {{
            cutover erp;
            cutover_upstreams new=new_core legacy=legacy;
            proxy_pass http://$cutover_upstream;
        }}
        location /cutover/ {{
            cutover_admin erp;
            cutover_admin_keys {dir}/keys;
        }}
    }}
"""


KEY = "a1" * 32


def start(name, front_conf, **ports):
    """The two upstreams (ports a and b) and a front nginx from front_conf
    (formatted with ports and its dir, which holds the "ops" key) that
    listens on the port named last; returns (upstreams, front, wrk's
    script)."""
    up = harness.Nginx(UPSTREAMS.format(a=ports["a"], b=ports["b"],
                                        body=BODY), workers=1,
                       name="bench-up", log_level="warn")
    up.start(ports["b"])
    d = harness.make_tempdir(name)
    with open(os.path.join(d, "keys"), "w") as f:
        f.write("ops operator %s\n" % KEY)
    front = harness.Nginx(front_conf.format(dir=d, **ports), workers=1,
                          directory=d, log_level="warn")
    front.start(list(ports.values())[-1])
    script = os.path.join(d, "stores.lua")
    with open(script, "w") as f:
        f.write(wrk.LUA_STORES)
    return up, front, script


def dial(port, percent):
    body = '{"percent": %d, "reason": "bench"}' % percent
    h = harness.sign_headers("POST", "/cutover/dial", body, "ops", KEY)
    s, _, out = harness.http("POST", "http://127.0.0.1:%d/cutover/dial"
                             % port, body, h)
    assert s == 200, out


def main(rounds=int(os.environ.get("BENCH_ROUNDS", "3")),
         seconds=int(os.environ.get("BENCH_SECONDS", "5"))):
    a, b, plain, cut = (harness.free_port() for _ in range(4))
    up, front, script = start("bench-front", FRONT, a=a, b=b, plain=plain,
                              cut=cut)
    try:
        dial(cut, 50)
        # warm-up
        wrk.run("http://127.0.0.1:%d/" % plain, 2, script=script)
        wrk.run("http://127.0.0.1:%d/" % cut, 2, script=script)
        base, test = [], []
        for i in range(rounds):
            # back to back, their order alternating by round
            for k in (("plain", "cut") if i % 2 == 0 else ("cut", "plain")):
                (base if k == "plain" else test).append(wrk.run(
                    "http://127.0.0.1:%d/" % (plain if k == "plain" else cut),
                    seconds, script=script))
        bm, tm = wrk.median_of(base), wrk.median_of(test)
        print("plain proxy_pass vs cutover 50 %%, wrk -c32, %d x %d s, "
              "medians" % (rounds, seconds))
        wrk.line("requests/s (cutover / plain)", tm["rps"], "req/s",
                 bm["rps"], figure_name="routing_rps")
        wrk.line("p50 latency", tm["p50"], "ms", bm["p50"], better="lower")
        wrk.line("p99 latency", tm["p99"], "ms", bm["p99"], better="lower",
                 figure_name="routing_p99")
        print("p99 added by cutover: %+.3f ms; non-2xx: %d"
              % (tm["p99"] - bm["p99"], tm["non2xx"] + bm["non2xx"]))
        h = harness.sign_headers("GET", "/cutover/status", "", "ops", KEY)
        s, _, out = harness.http("GET", "http://127.0.0.1:%d/cutover/status"
                                 % cut, None, h)
        print("cutover status counters: %s" % out.decode().strip()[-200:])
    finally:
        front.destroy()
        up.destroy()


if __name__ == "__main__":
    main()
