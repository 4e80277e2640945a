"""Benchmark: raw extracts -> `ingest` -> `link` on a borough-sized synthetic world.

Generates (or reuses) a synthetic borough with raw departmental extracts, then runs ingest and link in
child processes, timing each and reading its peak memory (ru_maxrss of the child). Prints the stage
times inside link (from link_quality.json), pairs compared and the accuracy against ground truth.
Not run by CI.

    .venv/bin/python benchmarks/bench_link.py                         # 250k residents, 10 years
    .venv/bin/python benchmarks/bench_link.py --residents 25000 --work /tmp/bench_link_25k
    .venv/bin/python benchmarks/bench_link.py --borough /work/data/raw250k --work /tmp/bench_link_250k
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent / "earlysignal"


def _run(args: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Run a command; return (wall seconds, CPU seconds, peak RSS GB) of that child alone."""
    start = time.perf_counter()
    child = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL)
    # wait4 gives this child's own resource usage (ru_maxrss in KB on Linux), not the largest child's.
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, args)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024 / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--residents", type=int, default=250_000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work", type=Path, default=Path("data/bench/link_250k"))
    parser.add_argument("--borough", type=Path, default=None,
                        help="an existing `synth --raw` folder to reuse read-only (default: WORK/borough, "
                             "generated when missing)")
    args = parser.parse_args()
    borough = args.borough or args.work / "borough"
    ingested, linked = args.work / "ingested", args.work / "linked"
    env = {**os.environ, "EARLYSIGNAL_LINK_SECRET": os.environ.get("EARLYSIGNAL_LINK_SECRET", "bench-" + "0" * 40)}
    if not (borough / "raw" / "manifest.json").exists():
        if args.borough is not None:
            raise SystemExit(f"--borough {borough}: no raw/manifest.json; generate it with `synth --raw` first")
        wall, _, _ = _run(["nice", "-n", "10", str(BIN), "synth", "--residents", str(args.residents), "--years",
                           str(args.years), "--seed", str(args.seed), "--out", str(borough), "--raw"], env)
        print(f"synth --raw: {wall:.0f} s (not part of the budget)")
    results = {}
    for name, command in (
        ("ingest", [str(BIN), "ingest", "--raw", str(borough / "raw"), "--out", str(ingested)]),
        ("link", [str(BIN), "link", "--ingested", str(ingested), "--out", str(linked),
                  "--ground-truth", str(borough / "ground_truth" / "raw_records.parquet")]),
    ):
        # Stages run one after another; the peak RSS below is the largest child's (ru_maxrss).
        load = os.getloadavg()[0]
        wall, cpu, peak_gb = _run(["nice", "-n", "10", *command], env)
        results[name] = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_gb": round(peak_gb, 2),
                         "load_avg_1min_at_start": round(load, 1)}
    quality = json.loads((linked / "link_quality.json").read_text())
    peak = max(r["peak_rss_gb"] for r in results.values())
    report = {
        "borough": str(borough),
        "residents": args.residents,
        "person_records": quality["records"],
        "person_records_collapsed": quality.get("records_collapsed"),
        "distinct_records_compared": quality["distinct_records_compared"],
        "pairs_compared": quality["pairs_compared"],
        "stages": results,
        "total_wall_s": round(sum(r["wall_s"] for r in results.values()), 1),
        "total_cpu_s": round(sum(r["cpu_s"] for r in results.values()), 1),
        "peak_rss_gb_max_of_stages": round(peak, 2),
        "link_seconds": quality["seconds"],
        "link_cpu_seconds": quality.get("cpu_seconds"),  # every thread; steadier than wall on a shared machine
        "ground_truth": quality.get("ground_truth"),
        "address_match_rate": {k: v["match_rate"] for k, v in quality["addresses"].items()},
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_avg": os.getloadavg(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
