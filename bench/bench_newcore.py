"""Benchmark of cutover-newcore: orders per second and p99 with wrk at 32
connections (distinct Idempotency-Keys), beside its baseline measured in the
same run, GET /health (one HTTP request and one database round trip), plus
the flash-sale rate (many buyers of one SKU of one store)."""

import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import harness  # noqa: E402
import wrk as bench_wrk  # noqa: E402

DURATION = int(os.environ.get("NEWCORE_BENCH_SECONDS", "10"))
THREADS = os.environ.get("NEWCORE_BENCH_THREADS", "8")
CONNECTIONS = 32

ORDERS_LUA = r"""
local counter = 0
local prefix = nil
init = function(args)
  prefix = "b" .. tostring({}):sub(8) .. os.time()
  math.randomseed(os.time() + tonumber(tostring({}):sub(8)))
end
request = function()
  counter = counter + 1
  local s = math.random(1, 200)
  local n = math.random(1, 2000)
  local body = string.format(
    '{"store_id":"S%03d","channel":"pos","member_id":"M%06d",' ..
    '"lines":[{"sku":"SKU%05d","qty":1},{"sku":"SKU%05d","qty":2,' ..
    '"unit_price":"9.90"}],"payment":{"method":"card"}}',
    s, math.random(1, 10000), n, n % 2000 + 1)
  return wrk.format("POST", "/api/v1/orders",
    {["Content-Type"] = "application/json",
     ["Idempotency-Key"] = prefix .. "-" .. counter}, body)
end
"""

# the same orders, each connection pausing 12 ms between requests: about
# 2 000 orders/s offered, so p99 shows the latency at the goal's rate
# rather than the queueing of a saturated closed loop
PACED_LUA = ORDERS_LUA + r"""
delay = function() return 12 end
"""

FLASH_LUA = r"""
local counter = 0
local prefix = nil
init = function(args) prefix = "f" .. tostring({}):sub(8) .. os.time() end
request = function()
  counter = counter + 1
  return wrk.format("POST", "/api/v1/orders",
    {["Content-Type"] = "application/json",
     ["Idempotency-Key"] = prefix .. "-" .. counter},
    '{"store_id":"S001","channel":"miniapp","lines":[{"sku":"SKU00001",' ..
    '"qty":1}],"payment":{"method":"wallet"}}')
end
"""


def wrk(url, script_path=None, seconds=DURATION):
    argv = ["wrk", "-t2", "-c%d" % CONNECTIONS, "-d%ds" % seconds,
            "--latency"]
    if script_path:
        argv += ["-s", script_path]
    out = subprocess.run(argv + [url], capture_output=True, text=True,
                         check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, percentile(out, 99), int(bad.group(1)) if bad else 0, \
        percentile(out, 50)


def percentile(out, p):
    m = re.search(r"\b%d%%\s+([\d.]+)(us|ms|s)\b" % p, out)
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]


def main():
    tmp = tempfile.mkdtemp(prefix="bench-newcore-")
    pg = harness.Pg("benchpg").start()
    core = None
    try:
        conninfo = pg.createdb("bench")
        core_bin = harness.bin_path("cutover-newcore")
        subprocess.run([core_bin, "--db", conninfo, "--init-schema",
                        "--seed"], check=True, capture_output=True)
        port = harness.free_port()
        core = harness.Proc([core_bin, "--listen", "127.0.0.1:%d" % port,
                             "--db", conninfo, "--threads", THREADS],
                            os.path.join(tmp, "core.log"), port=port)
        url = "http://127.0.0.1:%d" % port
        orders_lua = os.path.join(tmp, "orders.lua")
        flash_lua = os.path.join(tmp, "flash.lua")
        paced_lua = os.path.join(tmp, "paced.lua")
        with open(orders_lua, "w") as f:
            f.write(ORDERS_LUA)
        with open(paced_lua, "w") as f:
            f.write(PACED_LUA)
        with open(flash_lua, "w") as f:
            f.write(FLASH_LUA)

        wrk(url + "/health", seconds=2)                     # warm-up
        h_rate, h_p99, _, h_p50 = wrk(url + "/health")
        o_rate, o_p99, o_bad, o_p50 = wrk(url, orders_lua)
        p_rate, p_p99, p_bad, _ = wrk(url, paced_lua)
        # the flash sale: one SKU of one store with plenty of units
        pg.psql("bench", "UPDATE newcore.stock SET on_hand = 10000000 "
                "WHERE store_id = 'S001' AND sku = 'SKU00001'")
        f_rate, f_p99, f_bad, _ = wrk(url, flash_lua)

        print("newcore_orders: %.0f orders/s  (baseline: %.0f req/s "
              "GET /health, ratio: %.3f)" % (o_rate, h_rate, o_rate / h_rate))
        print("newcore_orders_p99: %.2f ms  (baseline: %.2f ms GET /health, "
              "ratio: %.2f)" % (o_p99, h_p99, o_p99 / max(h_p99, 0.001)))
        print("newcore_orders_p50: %.2f ms  (baseline: %.2f ms GET /health, "
              "ratio: %.2f)" % (o_p50, h_p50, o_p50 / max(h_p50, 0.001)))
        print("newcore_orders_goal: %.0f orders/s  (baseline: 2000 orders/s "
              "goal, ratio: %.2f)" % (o_rate, o_rate / 2000.0))
        bench_wrk.figure("newcore_orders_vs_goal", o_rate, 2000.0)
        print("newcore_orders_paced: %.0f orders/s  (baseline: 2000 orders/s "
              "goal, ratio: %.2f)" % (p_rate, p_rate / 2000.0))
        print("newcore_orders_paced_p99: %.2f ms  (baseline: 20 ms goal, "
              "ratio: %.2f)" % (p_p99, p_p99 / 20.0))
        bench_wrk.figure("newcore_paced_p99_vs_goal", p_p99, 20.0, "lower")
        print("newcore_flash_sale: %.0f orders/s  (baseline: %.0f orders/s "
              "spread over stores, ratio: %.3f)"
              % (f_rate, o_rate, f_rate / o_rate))
        print("newcore_flash_sale_p99: %.2f ms  (baseline: %.2f ms, "
              "ratio: %.2f)" % (f_p99, o_p99, f_p99 / max(o_p99, 0.001)))
        if o_bad or f_bad or p_bad:
            print("newcore_errors: %d responses  (baseline: 0, ratio: n/a)"
                  % (o_bad + f_bad + p_bad))
    finally:
        if core is not None:
            core.stop()
        pg.destroy()
        harness.remove_tempdir(tmp)


if __name__ == "__main__":
    main()
