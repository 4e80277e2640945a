"""Benchmark: generate a synthetic borough with `earlysignal.synth.generate_borough`.

Each run is a fresh child process (so peak memory is that run's own ru_maxrss), writing into a
temporary folder. Prints the wall time of every run, the median, the peak RSS and the row counts,
then times `oracle_risk` for 10,000 residents on the last borough. Not run by CI.

    .venv/bin/python benchmarks/bench_synth.py                              # 250k residents, 10 years, 3 runs
    .venv/bin/python benchmarks/bench_synth.py --residents 50000 --repeat 3 # the demo size
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, resource, sys, time
from pathlib import Path
from earlysignal.config import SynthSection
from earlysignal.synth import generate_borough
residents, years, seed, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
start = time.perf_counter()
stages = {}
summary = generate_borough(out, SynthSection(residents=residents, years=years, seed=seed),
                           on_stage=lambda s: stages.__setitem__(s, round(time.perf_counter() - start, 2)))
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
peak_mb = usage.ru_maxrss / 1024  # Linux reports KiB
cpu = usage.ru_utime + usage.ru_stime
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak_mb, "rows": summary.row_counts, "stages": stages}))
"""


def run_once(residents: int, years: int, seed: int, out: Path) -> dict:
    """Generate one borough in a child process; return its timing, memory and row counts."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(residents), str(years), str(seed), str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def time_oracle(folder: Path) -> dict:
    """Load time of the ground truth and the median time of scoring 10,000 residents per as_of."""
    import numpy as np
    import pyarrow.parquet as pq

    from earlysignal.synth import oracle_risk

    ids = pq.read_table(folder / "residents.parquet", columns=["resident_id"]).column(0).to_pylist()
    chosen = [ids[i] for i in np.random.default_rng(0).choice(len(ids), size=min(10_000, len(ids)), replace=False)]
    start = time.perf_counter()
    oracle_risk(folder, chosen, dt.date(2020, 1, 1), 6, ["child_protection_plan"])
    first = time.perf_counter() - start
    times = []
    for year in (2021, 2022, 2023, 2024, 2025):
        start = time.perf_counter()
        oracle_risk(folder, chosen, dt.date(year, 1, 1), 6, ["child_protection_plan"])
        times.append(time.perf_counter() - start)
    return {"first_call_s": first, "median_call_s": statistics.median(times)}


def main() -> None:
    """Parse arguments, run the benchmark, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--residents", type=int, default=250_000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
        for i in range(args.repeat):
            out = Path(tmp) / f"run{i}"
            runs.append(run_once(args.residents, args.years, args.seed, out))
            print(f"run {i + 1}: {runs[-1]['wall_s']:.1f} s wall, {runs[-1]['cpu_s']:.1f} s CPU, peak RSS {runs[-1]['peak_rss_mb']:.0f} MB, "
                  f"stages {runs[-1]['stages']}", flush=True)
        oracle = time_oracle(Path(tmp) / f"run{args.repeat - 1}")
    print(json.dumps(
        {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "date": dt.date.today().isoformat(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
            "residents": args.residents,
            "years": args.years,
            "median_wall_s": round(statistics.median(r["wall_s"] for r in runs), 2),
            "walls_s": [round(r["wall_s"], 2) for r in runs],
            "median_cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 2),
            "load_average_1min": round(os.getloadavg()[0], 1),
            "max_peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs)),
            "rows": runs[-1]["rows"],
            "oracle_10k_residents": {k: round(v, 3) for k, v in oracle.items()},
        },
        indent=2,
    ))


if __name__ == "__main__":
    main()
