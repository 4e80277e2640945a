"""Drift warnings of monthly lists: one row per list's summary.json (as `earlysignal score` writes it).

For each list under a scores folder: its as_of, the reference it was compared with, the score's PSI and the
features over the warning threshold (with their PSI), so the effect of the drift reference on monthly scoring
can be read off (docs/performance.md, "Drift of monthly lists").

    python benchmarks/drift_by_month.py reports/scores [--top 3]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scores", type=Path, help="folder of lists (scoring.scores_dir)")
    parser.add_argument("--top", type=int, default=3, help="features shown per list")
    args = parser.parse_args()
    print("| as_of | compared with | score PSI | features over PSI warn | largest |")
    print("|---|---|---|---|---|")
    warned = 0
    summaries = sorted(args.scores.glob("*/summary.json"))
    for path in summaries:
        summary = json.loads(path.read_text(encoding="utf-8"))
        drift = summary["drift"]
        over = drift["features_over_warn"]
        warned += bool(over) or bool(drift["score_over_warn"])
        largest = ", ".join(f"{c} {drift['feature_psi'][c]:.2f}" for c in over[: args.top])
        print(f"| {summary['as_of']} | {drift['reference']} | {drift['score_psi']:.3f} | {len(over)} | {largest} |")
    print(f"\n{warned} of {len(summaries)} lists warn of drift")


if __name__ == "__main__":
    main()
