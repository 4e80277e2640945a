"""Peak memory and time of `earlysignal score`, the borough loaded whole against read per partition (issue 11).

    # a borough and a model first (see docs/performance.md, "Scoring per partition, measured"), then:
    flock /work/helpers/bigbench.lock nice -n 10 .venv/bin/python benchmarks/bench_score_partitioned.py \\
        --config whole.yaml --config budget.yaml --model models:/NAME/1 --as-of 2025-10-01 --runs 3

Each run is `earlysignal score --allow-unapproved` in its own process under `/usr/bin/time -v` (so the peak
RSS is that process's, Python and its libraries included), the configs taking turns so that load drifts
evenly over them. Prints one JSON line per run and a table of medians; MLFLOW_TRACKING_URI must name the
tracking store the model is registered in. The scored lists of every run are compared with the first
config's: a run whose ranked or unscored list differs is reported as such.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TIME_FIELDS = {
    "wall": r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)",
    "user": r"User time \(seconds\): (\S+)",
    "system": r"System time \(seconds\): (\S+)",
    "peak_kb": r"Maximum resident set size \(kbytes\): (\d+)",
}


def _seconds(clock: str) -> float:
    parts = [float(p) for p in clock.split(":")]
    return sum(p * 60**i for i, p in enumerate(reversed(parts)))


def run_once(config: Path, model: str, as_of: str, out: Path) -> dict[str, object]:
    """One `earlysignal score` under /usr/bin/time -v: wall, CPU and peak RSS, load before and after."""
    earlysignal = Path(sys.executable).with_name("earlysignal")
    command = ["/usr/bin/time", "-v", str(earlysignal), "score", "--config", str(config), "--model", model,
               "--as-of", as_of, "--allow-unapproved", "--out", str(out)]
    load_before = os.getloadavg()[0]
    started = dt.datetime.now(dt.UTC)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    found = {key: re.search(pattern, done.stderr) for key, pattern in TIME_FIELDS.items()}
    summary = json.loads(next(out.glob("summary*.json")).read_text())
    return {
        "config": str(config),
        "utc": started.strftime("%Y-%m-%d %H:%M"),
        "wall_s": round(_seconds(found["wall"].group(1)), 1),
        "cpu_s": round(float(found["user"].group(1)) + float(found["system"].group(1)), 1),
        "peak_gb": round(int(found["peak_kb"].group(1)) * 1024 / 1e9, 2),
        "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "partitions": summary.get("partitions"),
        "scored": summary["counts"]["scored"],
        "unscored": summary["counts"]["unscored"],
    }


def same_lists(out: Path, first: Path) -> bool:
    """Whether two score folders hold the same ranked and unscored lists (every column, exactly)."""
    import pandas as pd

    for stem in ("ranked", "unscored"):
        a = pd.read_parquet(next(out.glob(f"{stem}*.parquet")))
        b = pd.read_parquet(next(first.glob(f"{stem}*.parquet")))
        if not a.equals(b):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, action="append", required=True, help="repeatable; the first is the reference")
    parser.add_argument("--model", required=True, help="e.g. models:/NAME/1")
    parser.add_argument("--as-of", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="where the score folders go (default: a temp folder)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-score-"))
    results: dict[str, list[dict[str, object]]] = {str(c): [] for c in args.config}
    reference: Path | None = None
    for run in range(args.runs):
        for config in args.config:
            out = work / f"{config.stem}-{run}"
            shutil.rmtree(out, ignore_errors=True)
            row = run_once(config, args.model, args.as_of, out)
            reference = reference or out
            row["same_lists_as_first"] = same_lists(out, reference)
            results[str(config)].append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print("| config | partitions | runs | wall (median) | CPU (median) | peak RSS (median, max) | load (1 min) | same lists |")
    print("|---|---|---|---|---|---|---|---|")
    for config, rows in results.items():
        peaks = [r["peak_gb"] for r in rows]
        loads = [v for r in rows for v in r["load_1min"]]
        print(f"| {Path(config).name} | {rows[0]['partitions'] or 'whole'} | {len(rows)} "
              f"| {statistics.median(r['wall_s'] for r in rows):.1f} s | {statistics.median(r['cpu_s'] for r in rows):.1f} s "
              f"| {statistics.median(peaks):.2f} GB, {max(peaks):.2f} | {min(loads):.1f}-{max(loads):.1f} "
              f"| {all(r['same_lists_as_first'] for r in rows)} |")


if __name__ == "__main__":
    main()
