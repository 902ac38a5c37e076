"""make bench: runs every bench/bench_*.py (main()) in turn.

BENCH_ONLY=gateway,shadow limits the set.  Each benchmark prints its
figures beside a baseline measured in the same run, as ratios.

A benchmark reports the ratios it wants held against the published ones
with wrk.figure() (or wrk.line(..., figure_name=...)); at the end each is
compared with bench/figures.json, and one worse than published by more
than its tolerance (5 % unless the file says otherwise) gets a
"REGRESSION:" line.  The exit status stays 0 unless a benchmark crashed:
on a shared machine a regression line is a call to look, not a verdict."""

import importlib
import json
import math
import os
import sys
import textwrap
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import wrk  # noqa: E402

FIGURES = os.path.join(HERE, "figures.json")
TOLERANCE = 0.05


def published(path=FIGURES):
    """name -> {"ratio", "better", "tolerance", ...} from figures.json."""
    with open(path) as f:
        data = json.load(f)
    out = {}
    for name, fig in data.get("figures", {}).items():
        fig.setdefault("tolerance", data.get("tolerance", TOLERANCE))
        if fig.get("better") not in ("higher", "lower") or \
                not isinstance(fig.get("ratio"), (int, float)):
            raise ValueError("%s: figure %r needs a numeric ratio and "
                             "better: higher or lower" % (path, name))
        out[name] = fig
    return out


def change(measured, fig):
    """(signed change of the ratio against published, in %, and its
    status: "ok", "better" (improved past the tolerance: time to publish
    the new figure) or "REGRESSION" (worse past it, or not measurable))."""
    pub = fig["ratio"]
    if not pub or math.isnan(measured) or math.isinf(measured):
        return float("nan"), "REGRESSION"
    pct = (measured / pub - 1.0) * 100.0
    worse = -pct if fig["better"] == "higher" else pct
    tol = fig["tolerance"] * 100.0
    if worse > tol:
        return pct, "REGRESSION"
    return pct, "better" if -worse > tol else "ok"


def check(measured, pub):
    """Prints a REGRESSION line for each measured ratio worse than its
    published one past the tolerance, then a table and a summary; returns
    the names of the figures that regressed."""
    rows = []
    for name in sorted(measured):
        m = measured[name]["ratio"]
        fig = pub.get(name)
        if fig is None:
            rows.append((name, m, None, None, "unpublished"))
            continue
        pct, status = change(m, fig)
        if status == "REGRESSION":
            print("REGRESSION: %s %.3f vs published %.3f (%s, %s is better)"
                  % (name, m, fig["ratio"],
                     "not measurable" if math.isnan(pct)
                     else "%+.1f %%" % pct, fig["better"]), flush=True)
        rows.append((name, m, fig["ratio"], pct, status))
    regressed = [r[0] for r in rows if r[4] == "REGRESSION"]
    print("=== figures against bench/figures.json (%d measured, %d "
          "published)" % (len(measured), len(pub)))
    print("%-40s %9s %9s %8s  %s" % ("figure", "measured", "published",
                                      "change", "status"))
    for name, m, p, pct, status in rows:
        print("%-40s %9.3f %9s %8s  %s"
              % (name, m, "-" if p is None else "%.3f" % p,
                 "-" if pct is None else "%+.1f%%" % pct, status))
    missing = sorted(set(pub) - set(measured))
    if missing:
        print(textwrap.fill("not measured in this run (%d): %s"
                            % (len(missing), ", ".join(missing)), 79,
                            subsequent_indent="  "))
    print("summary: %d figures: %d as published, %d better, %d regressed%s, "
          "%d unpublished"
          % (len(rows), sum(1 for r in rows if r[4] == "ok"),
             sum(1 for r in rows if r[4] == "better"), len(regressed),
             " (%s)" % ", ".join(regressed) if regressed else "",
             sum(1 for r in rows if r[4] == "unpublished")), flush=True)
    return regressed


def main():
    only = [s for s in os.environ.get("BENCH_ONLY", "").split(",") if s]
    names = sorted(f[6:-3] for f in os.listdir(HERE)
                   if f.startswith("bench_") and f.endswith(".py"))
    pub = published()
    failed = []
    start = time.monotonic()
    for name in names:
        if only and name not in only:
            continue
        print("=== bench %s" % name, flush=True)
        t0 = time.monotonic()
        try:
            importlib.import_module("bench_" + name).main()
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print("=== bench %s took %.0f s" % (name, time.monotonic() - t0),
              flush=True)
    check(wrk.FIGURES, pub)
    print("make bench took %.0f s%s" % (time.monotonic() - start,
          "; crashed: %s" % ", ".join(failed) if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
