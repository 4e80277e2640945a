"""Resident memory of one `score_cohort` call, phase by phase (not run by CI; docs/performance.md,
"Scoring per partition, measured").

    MLFLOW_TRACKING_URI=sqlite:///.../mlflow.db .venv/bin/python benchmarks/profile_score.py \
        --config p8.yaml --model models:/NAME/1 --as-of 2025-10-01 --out /tmp/scores

A thread samples this process's RSS (/proc/self/status) every 20 ms; at each progress step of score_cohort
("loading data per partition", "partition 3 of 8", ...) it prints the time, the RSS now and the peak since
the previous step, so the peak of each phase (libraries and model, the contract's loading, each partition's
build and scoring, ranking and writing) can be told apart. Scores with --allow-unapproved, without MLflow logging.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import threading
import time
from pathlib import Path


def rss_gb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024 / 1e9
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--as-of", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    peak = [0.0]

    def sample() -> None:
        while True:
            peak[0] = max(peak[0], rss_gb())
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    started = time.perf_counter()

    def step(name: str) -> None:
        print(f"{time.perf_counter() - started:6.1f} s  RSS {rss_gb():.2f} GB, peak since the last step "
              f"{max(peak[0], rss_gb()):.2f} GB -> {name}", flush=True)
        peak[0] = 0.0

    from earlysignal.config import load_config
    from earlysignal.scoring import score_cohort

    config = load_config(args.config)
    step("imports")
    score_cohort(config, dt.date.fromisoformat(args.as_of), model_uri=args.model, out=args.out,
                 allow_unapproved=True, progress=step, log_to_mlflow=False)
    step("done")
    print(f"ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
