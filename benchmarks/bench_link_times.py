"""Benchmark: `earlysignal link` run several times on one ingested folder, for before/after comparisons of link.

Times each run in a child process (wall, CPU of the child and its threads) and prints the median with the
stage seconds from link_quality.json (`link_times` is the linked-day computation of ADR 0023) and the
`linked_in_time` counts. Run it under another checkout's source with PYTHONPATH=<checkout>/src to compare.
Not run by CI.

    .venv/bin/python benchmarks/bench_link_times.py --ingested data/synthetic/demo/ingested --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent / "earlysignal"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ingested", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ground-truth", type=Path, default=None)
    args = parser.parse_args()
    env = {**os.environ, "EARLYSIGNAL_LINK_SECRET": os.environ.get("EARLYSIGNAL_LINK_SECRET", "bench-" + "0" * 40)}
    walls, cpus, quality = [], [], {}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as out:
            command = [str(BIN), "link", "--ingested", str(args.ingested), "--out", out]
            if args.ground_truth is not None:
                command += ["--ground-truth", str(args.ground_truth)]
            start = time.perf_counter()
            child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
            _, status, usage = os.wait4(child.pid, 0)
            if os.waitstatus_to_exitcode(status):
                raise SystemExit(f"link failed: {command}")
            walls.append(time.perf_counter() - start)
            cpus.append(usage.ru_utime + usage.ru_stime)
            quality = json.loads((Path(out) / "link_quality.json").read_text())
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; load {os.getloadavg()}")
    print(f"link x{args.runs}: wall median {statistics.median(walls):.1f} s {[round(w, 1) for w in walls]}, "
          f"CPU median {statistics.median(cpus):.1f} s {[round(c, 1) for c in cpus]}")
    print("stage seconds (last run):", quality.get("seconds"))
    print("stage CPU seconds (last run):", quality.get("cpu_seconds"))
    print("linked_in_time:", quality.get("linked_in_time"))
    print("ground truth:", {k: quality.get("ground_truth", {}).get(k) for k in ("precision", "recall")})


if __name__ == "__main__":
    main()
