"""Benchmark a caseworker's journey and a resident's explanation on a scored borough.

Needs a score folder that `earlysignal score` wrote (e.g. after `earlysignal demo`) and its data. Times
`view_journey` and `write_explanation` for the top-ranked residents, in one process (so imports are
paid once, as in a long-running service; the CLI adds about a second of imports per call). Writes the
pages and the access log into a temporary folder, never into the score folder.

    cd <demo folder> && /path/to/.venv/bin/python /path/to/benchmarks/bench_journey.py \
        --scores reports/scores/earlysignal-cpp-2026-01-01 --as-of 2026-01-01 --residents 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from earlysignal.config import load_config
from earlysignal.explanation import write_explanation
from earlysignal.journey import view_journey


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scores", type=Path, required=True)
    parser.add_argument("--as-of", required=True)
    parser.add_argument("--residents", type=int, default=5)
    parser.add_argument("--config", type=Path, default=None)
    args = parser.parse_args()
    config = load_config(args.config)
    as_of = dt.date.fromisoformat(args.as_of)
    top = pd.read_parquet(args.scores / "ranked.parquet").sort_values("rank")["resident_id"].head(args.residents)
    journey_s, explain_s, records = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "log.jsonl"
        for rid in top:
            start = time.perf_counter()
            page = view_journey(config, rid, as_of, scores_dir=args.scores, viewer="bench", access_log=log,
                                out=Path(scratch) / f"{rid}.html")
            journey_s.append(time.perf_counter() - start)
            records.append(len(page.journey["events"]))
            start = time.perf_counter()
            write_explanation(config, rid, as_of, scores_dir=args.scores, viewer="bench", access_log=log,
                              out=Path(scratch) / rid)
            explain_s.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"residents {len(journey_s)}; records per journey {records}")
    print(f"journey  s: {[round(s, 2) for s in journey_s]} median {statistics.median(journey_s):.2f}")
    print(f"explain  s: {[round(s, 2) for s in explain_s]} median {statistics.median(explain_s):.2f}")
    print(f"peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
