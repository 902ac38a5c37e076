"""make bench's check of each run's ratios against the published ones
(bench/figures.json, bench/run.py): what a reader of its output relies on.
No benchmark runs here; the check is fed ratios as a benchmark reports
them (wrk.figure)."""

import json
import os
import re
import sys

import pytest

import harness

sys.path.insert(0, os.path.join(harness.ROOT, "bench"))

import bench_record_curve  # noqa: E402
import run  # noqa: E402
import wrk  # noqa: E402

BENCH = os.path.join(harness.ROOT, "bench")


@pytest.fixture
def figures():
    wrk.FIGURES.clear()
    yield wrk.FIGURES
    wrk.FIGURES.clear()


def reported_names():
    """Every figure name a benchmark reports: the literal ones in bench/
    and the record curve's cells."""
    names = set(bench_record_curve.figure_names())
    for f in os.listdir(BENCH):
        if f.startswith("bench_") and f.endswith(".py"):
            with open(os.path.join(BENCH, f)) as src:
                text = src.read()
            names |= set(re.findall(r'figure_name="(\w+)"', text))
            names |= set(re.findall(r'figure\(\s*"(\w+)"', text))
    return names


def test_published_figures_are_reported_by_a_benchmark():
    """A published name that no benchmark reports would never be checked
    (a renamed figure silently escaping the check)."""
    pub = run.published()
    assert "record_rps" in pub and "routing_rps" in pub
    unknown = sorted(set(pub) - reported_names())
    assert not unknown, "published but never reported: %s" % unknown
    missing = sorted(n for n in bench_record_curve.figure_names()
                     if n not in pub)
    assert not missing, "record curve cells not published: %s" % missing


def test_worse_past_tolerance_is_called_out(figures, capsys):
    pub = run.published()
    rps, p99 = pub["record_rps"]["ratio"], pub["record_p99"]["ratio"]
    wrk.figure("record_rps", rps * 0.94, 1.0)             # 6 % fewer req/s
    wrk.figure("record_p99", p99 * 1.06, 1.0, "lower")    # 6 % slower
    wrk.figure("routing_rps", pub["routing_rps"]["ratio"] * 0.96, 1.0)
    wrk.figure("routing_p99", pub["routing_p99"]["ratio"] * 0.90, 1.0,
               "lower")
    regressed = run.check(figures, pub)
    out = capsys.readouterr().out
    assert regressed == ["record_p99", "record_rps"]
    assert ("REGRESSION: record_rps %.3f vs published %.3f (-6.0 %%"
            % (rps * 0.94, rps)) in out
    assert ("REGRESSION: record_p99 %.3f vs published %.3f (+6.0 %%"
            % (p99 * 1.06, p99)) in out
    assert "REGRESSION: routing" not in out
    assert re.search(r"^routing_p99 .* better$", out, re.M)
    assert re.search(r"^routing_rps .* ok$", out, re.M)
    assert ("summary: 4 figures: 1 as published, 1 better, 2 regressed "
            "(record_p99, record_rps), 0 unpublished") in out


def test_unpublished_and_unmeasurable(figures, capsys):
    pub = run.published()
    wrk.figure("no_such_figure", 1.0, 2.0)
    wrk.figure("record_cpu_per_request", 12.0, 0.0, "lower")
    assert run.check(figures, pub) == ["record_cpu_per_request"]
    out = capsys.readouterr().out
    assert "REGRESSION: record_cpu_per_request nan" in out
    assert re.search(r"^no_such_figure +0\.500 +- +- +unpublished$", out,
                     re.M)
    assert "not measured in this run (%d): " % (len(pub) - 1) in out
    assert "routing_rps" in out.split("not measured in this run")[1]


def test_bad_figures_file_is_refused(tmp_path):
    path = tmp_path / "figures.json"
    path.write_text(json.dumps({"figures": {"x": {"ratio": 1.0,
                                                  "better": "up"}}}))
    with pytest.raises(ValueError, match="better: higher or lower"):
        run.published(str(path))
    path.write_text(json.dumps({"figures": {"x": {"ratio": "0.9",
                                                  "better": "higher"}}}))
    with pytest.raises(ValueError, match="'x'"):
        run.published(str(path))
    with pytest.raises(ValueError, match="better must be"):
        wrk.figure("x", 1.0, 1.0, "up")
