"""Benchmark the feature builder on one synthetic borough (not run by CI).

    .venv/bin/python benchmarks/bench_features.py                      # 250k residents, 3 runs
    .venv/bin/python benchmarks/bench_features.py --event-multiplier 2 # ~20M events
    .venv/bin/python benchmarks/bench_features.py --residents 20000 --runs 1

The borough comes from `earlysignal.synth.generate_borough` (cached under --cache). Each run is a
child process, so peak RSS (ru_maxrss) is that run's alone; the parent prints medians, the machine,
the load average and the command. `--event-multiplier k` adds k-1 jittered copies of every event
(times shifted by up to +-30 days, clipped to the extract) to reach the ~20M-event shape the design
targets, since the synthetic borough yields about 10M events for 250k residents.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _child(args: argparse.Namespace) -> None:
    import numpy as np
    import pandas as pd

    from earlysignal.config import load_config
    from earlysignal.contract import load_linked_data
    from earlysignal.features import build_feature_matrix, write_feature_matrix

    config = load_config(args.config)
    started = time.perf_counter()
    data = load_linked_data(args.data, config, write_quarantine=False)
    load_s = time.perf_counter() - started
    if args.event_multiplier > 1:
        rng = np.random.default_rng(0)
        events = data.events
        limit = pd.Timestamp(data.extract_date) - pd.Timedelta(microseconds=1)
        copies = [events]
        for k in range(1, args.event_multiplier):
            copy = events.copy()
            shift = pd.to_timedelta(rng.integers(-30 * 86400, 30 * 86400, size=len(copy)), unit="s")
            copy["event_time"] = (copy["event_time"] + shift).clip(upper=limit)
            copy["known_at"] = (copy["known_at"] + shift).clip(upper=limit)
            copy["event_id"] = copy["event_id"] + f"_{k}"
            copies.append(copy)
        data = type(data)(**{**data.__dict__, "events": pd.concat(copies, ignore_index=True)})
        del copies, events
    rss_after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    cpu_before = os.times()
    started = time.perf_counter()
    matrix = build_feature_matrix(config, data)
    build_s = time.perf_counter() - started
    cpu_after = os.times()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        write_feature_matrix(matrix, Path(folder) / "matrix.parquet")
        write_s = time.perf_counter() - started
    result = {
        "events": int(len(data.events)),
        "residents": int(len(data.residents)),
        "rows": int(len(matrix.frame)),
        "feature_columns": len(matrix.feature_columns),
        "imputed_flags": sum(f["is_imputed_flag"] for f in matrix.metadata["features"]),
        "as_of_dates": len(matrix.metadata["as_of_dates"]),
        "load_s": load_s,
        "build_s": build_s,
        "write_s": write_s,
        "build_cpu_s": (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "rss_after_load_gb": rss_after_load,
        "stages": matrix.metadata["timings"],
    }
    print("RESULT " + json.dumps(result))


def _ensure_borough(args: argparse.Namespace) -> Path:
    if args.data:
        return Path(args.data)
    folder = Path(args.cache) / f"r{args.residents}-s{args.seed}"
    if not (folder / "manifest.json").exists():
        from earlysignal.config import SynthSection
        from earlysignal.synth.borough import generate_borough

        print(f"generating a {args.residents:,}-resident borough in {folder} ...", flush=True)
        generate_borough(folder, SynthSection(residents=args.residents, seed=args.seed))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--residents", type=int, default=250_000, help="synth.residents of the generated borough")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data", help="use this borough folder instead of generating one")
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "earlysignal-bench-features"))
    parser.add_argument("--config", default="conf/borough.yaml")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--event-multiplier", type=int, default=1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    args.data = str(_ensure_borough(args))
    results = []
    loads = []
    for run in range(args.runs):
        before = os.getloadavg()
        command = [sys.executable, __file__, "--child", "--data", args.data, "--config", args.config,
                   "--event-multiplier", str(args.event_multiplier)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        result = json.loads(next(line for line in output.splitlines() if line.startswith("RESULT "))[7:])
        loads.append((before, os.getloadavg()))
        results.append(result)
        print(f"run {run + 1}: build {result['build_s']:.1f} s (cpu {result['build_cpu_s']:.1f} s), "
              f"load {result['load_s']:.1f} s, write {result['write_s']:.1f} s, peak RSS {result['peak_rss_gb']:.2f} GB, "
              f"loadavg {before[0]:.1f}->{os.getloadavg()[0]:.1f}", flush=True)

    def median(key: str) -> float:
        return statistics.median(r[key] for r in results)

    first = results[0]
    summary = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GB RAM, "
                   f"Python {platform.python_version()}",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "runs": len(results),
        "residents": first["residents"],
        "events": first["events"],
        "rows": first["rows"],
        "feature_columns": first["feature_columns"],
        "imputed_flags": first["imputed_flags"],
        "as_of_dates": first["as_of_dates"],
        "median_build_s": round(median("build_s"), 1),
        "median_build_cpu_s": round(median("build_cpu_s"), 1),
        "median_load_s": round(median("load_s"), 1),
        "median_write_s": round(median("write_s"), 1),
        "median_peak_rss_gb": round(median("peak_rss_gb"), 2),
        "max_peak_rss_gb": round(max(r["peak_rss_gb"] for r in results), 2),
        "median_rss_after_load_gb": round(median("rss_after_load_gb"), 2),
        "loadavg_1min_before_runs": [round(b[0], 1) for b, _ in loads],
        "stages_first_run": first["stages"],
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
