"""wrk runs for the benchmarks: req/s and latency percentiles, medians of
several rounds."""

import re
import statistics
import subprocess

LUA_STORES = """
math.randomseed(os.time())
request = function()
  local s = string.format("S%06d", math.random(1, 1000000))
  return wrk.format("GET", "/api/v1/items", {["X-Store-Id"] = s,
                                             ["X-Channel"] = "pos"})
end
"""


def _ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run(url, seconds=5, conns=32, threads=1, script=None):
    argv = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds,
            "--latency", url]
    if script:
        argv[1:1] = ["-s", script]
    out = subprocess.run(argv, capture_output=True, text=True,
                         timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for p in ("50", "99"):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)" % p, out, re.M)
        lat[p] = _ms(m.group(1), m.group(2))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": lat["50"], "p99": lat["99"],
            "non2xx": int(errors.group(1)) if errors else 0}


def median_of(results):
    return {k: statistics.median(r[k] for r in results)
            for k in results[0]}


def line(name, value, unit, base, better="higher"):
    ratio = value / base if base else float("nan")
    print("%-44s %10.3f %-6s (baseline: %10.3f, ratio: %.3f)"
          % (name, value, unit, base, ratio), flush=True)
