"""wrk runs for the benchmarks: req/s and latency percentiles, medians of
several rounds."""

import re
import statistics
import subprocess

LUA_REQUEST = """
math.randomseed(os.time())
local body = %s
request = function()
  local s = string.format("S%%06d", math.random(1, 1000000))
  return wrk.format("%s", "%s", {["X-Store-Id"] = s,
                                 ["X-Channel"] = "pos"%s}, body)
end
"""


def lua_stores(method="GET", path="/api/v1/items", body_size=0):
    """A wrk script: each request from a random store (X-Store-Id), with
    a request body of body_size bytes when body_size > 0."""
    if body_size:
        return LUA_REQUEST % ('string.rep("x", %d)' % body_size, method,
                              path, ',\n                                 '
                              '["Content-Type"] = "application/octet-stream"')
    return LUA_REQUEST % ("nil", method, path, "")


LUA_STORES = lua_stores()


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
    done = re.search(r"(\d+) requests in", out)
    return {"rps": rps, "p50": lat["50"], "p99": lat["99"],
            "non2xx": int(errors.group(1)) if errors else 0,
            "requests": int(done.group(1)) if done else rps * seconds}


def median_of(results):
    return {k: statistics.median(r[k] for r in results)
            for k in results[0]}


# Ratios reported by name in this run (name -> ratio, better), for
# bench/run.py to hold against the published ones in bench/figures.json.
FIGURES = {}


def figure(name, value, base, better="higher"):
    """Records value / base under name; better is "higher" or "lower"."""
    if better not in ("higher", "lower"):
        raise ValueError("better must be higher or lower: %r" % better)
    FIGURES[name] = {"ratio": value / base if base else float("nan"),
                     "better": better}


def line(name, value, unit, base, better="higher", figure_name=None):
    """Prints a figure beside its baseline; with figure_name, also records
    the ratio for the check against the published figures."""
    ratio = value / base if base else float("nan")
    print("%-44s %10.3f %-6s (baseline: %10.3f, ratio: %.3f)"
          % (name, value, unit, base, ratio), flush=True)
    if figure_name:
        figure(figure_name, value, base, better)
