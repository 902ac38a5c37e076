"""make bench: runs every bench/bench_*.py (main()) in turn.

BENCH_ONLY=gateway,shadow limits the set.  Each benchmark prints its
figures beside a baseline measured in the same run, as ratios."""

import importlib
import os
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))


def main():
    only = [s for s in os.environ.get("BENCH_ONLY", "").split(",") if s]
    names = sorted(f[6:-3] for f in os.listdir(HERE)
                   if f.startswith("bench_") and f.endswith(".py"))
    failed = 0
    for name in names:
        if only and name not in only:
            continue
        print("=== bench %s" % name, flush=True)
        try:
            importlib.import_module("bench_" + name).main()
        except Exception:
            traceback.print_exc()
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
