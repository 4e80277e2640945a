"""Build the synthetic worlds used to choose the model's defaults (not run by CI).

    .venv/bin/python benchmarks/model_selection_worlds.py --work /work/data/model-sel --seeds 7 13 --residents 50000

For each seed: a synthetic borough (the demo's settings otherwise: 10 years, standard world) and two feature
matrices, one per label: the demo's child protection plan within 6 months (`cpp`) and the test suite's s47
enquiry within 6 months (`s47`). Seed 21 (the test suite's world) is refused: choosing settings on it would be
fitting to the test.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from earlysignal.config import SynthSection, config_from_dict, load_config

REPO = Path(__file__).resolve().parents[1]
LABELS = {
    "cpp": {"name": "cpp_within_6m", "outcome_types": ["child_protection_plan"]},
    "s47": {"name": "s47_within_6m", "outcome_types": ["s47_enquiry"]},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--residents", type=int, default=50_000)
    parser.add_argument("--labels", nargs="+", default=["cpp", "s47"])
    args = parser.parse_args()
    if 21 in args.seeds:
        raise SystemExit("seed 21 is the test suite's world; choose settings on other worlds")
    from earlysignal.features import build_or_reuse_feature_matrix
    from earlysignal.synth import generate_borough

    base = load_config(REPO / "conf" / "borough.yaml").model_dump(mode="json")
    for seed in args.seeds:
        borough = args.work / f"r{args.residents}-s{seed}"
        if not (borough / "manifest.json").exists():
            started = time.perf_counter()
            generate_borough(borough, SynthSection(residents=args.residents, years=10, seed=seed))
            print(f"seed {seed}: borough in {time.perf_counter() - started:.0f} s", flush=True)
        for label in args.labels:
            raw = {**base, "data": {**base["data"], "dir": str(borough)}, "label": {**base["label"], **LABELS[label]}}
            started = time.perf_counter()
            matrix, status = build_or_reuse_feature_matrix(
                config_from_dict(raw), data_dir=borough, out=borough / f"matrix-{label}.parquet")
            print(f"seed {seed} {label}: {status}, {len(matrix.frame):,} rows in {time.perf_counter() - started:.0f} s",
                  flush=True)


if __name__ == "__main__":
    main()
