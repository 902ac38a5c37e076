"""The machine under the recording figures: what one 1.9 KB append costs
a growing log (64 MiB segments, as the gateway writes them) in memory that
has been free for a while, and again at once in the pages just freed.

A virtual machine that hands free memory back to its host makes the first
touch of such a page slow; a log that grows (shadowd stopped or behind)
pays it on every new page, a log that is consumed as it is written reuses
pages.  Python's own per-call cost is in both figures alike."""

import os
import shutil
import time

import harness
import wrk

RECORD = 1900
SEGMENT = 64 << 20


def appends(d, total_mb, parts):
    """Appends total_mb MiB of 1.9 KB records; microseconds per record for
    each of parts equal slices of the run."""
    rec = b"x" * RECORD
    per_part = (total_mb << 20) // RECORD // parts
    out, fd, size, seq = [], -1, SEGMENT, 0
    for _ in range(parts):
        t0 = time.perf_counter()
        for _ in range(per_part):
            if size >= SEGMENT:
                if fd != -1:
                    os.close(fd)
                seq += 1
                fd = os.open(os.path.join(d, "seg.%d" % seq),
                             os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                size = 0
            os.write(fd, rec)
            size += RECORD
        out.append((time.perf_counter() - t0) / per_part * 1e6)
    os.close(fd)
    for i in range(1, seq + 1):
        os.unlink(os.path.join(d, "seg.%d" % i))
    return out


def main(total_mb=int(os.environ.get("BENCH_MACHINE_MB", "2048")),
         idle=int(os.environ.get("BENCH_MACHINE_IDLE", "30"))):
    d = harness.make_tempdir("bench-machine")
    try:
        time.sleep(idle)
        cold = appends(d, total_mb, 4)
        warm = appends(d, total_mb, 4)
        print("1.9 KB appends to a growing log, us each, by quarter of %d "
              "MiB: after %d s idle %s; again at once %s"
              % (total_mb, idle, " ".join("%.2f" % x for x in cold),
                 " ".join("%.2f" % x for x in warm)))
        wrk.line("append, last quarter: long-free vs just-freed memory",
                 cold[-1], "us", warm[-1])
    finally:
        shutil.rmtree(d, ignore_errors=True)
