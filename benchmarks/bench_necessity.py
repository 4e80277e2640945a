"""Benchmark the necessity analysis at demo scale (not run by CI).

    .venv/bin/python benchmarks/bench_necessity.py                          # 50,000 residents, 10 years, default config
    .venv/bin/python benchmarks/bench_necessity.py --residents 20000 --only housing_repairs,police

Generates the borough (cached under --cache), builds the feature matrix once, then runs
`build_necessity` with the default config (every source and proxy group unless --only) and prints
the run time per variant, the load average and the results table; the document goes to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--residents", type=int, default=50_000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--config", default="conf/borough.yaml")
    parser.add_argument("--only", default="")
    parser.add_argument("--cache", default="/tmp/earlysignal-bench")
    parser.add_argument("--out", default="/tmp/earlysignal-bench/necessity.json")
    args = parser.parse_args()

    from earlysignal.config import load_config
    from earlysignal.modeling.necessity import build_necessity
    from earlysignal.modeling.train import load_matrix
    from earlysignal.synth import generate_borough

    config = load_config(args.config)
    data_dir = Path(args.cache) / f"borough-{args.residents}-{args.years}-{args.seed}"
    synth = config.synth.model_copy(update={"residents": args.residents, "years": args.years, "seed": args.seed})
    if not (data_dir / "manifest.json").exists():
        generate_borough(data_dir, synth)
    config = config.model_copy(update={"data": config.data.model_copy(update={"dir": data_dir})})
    started = time.perf_counter()
    matrix = load_matrix(config, data_dir)
    matrix_seconds = time.perf_counter() - started
    only = [s for s in args.only.split(",") if s] or None
    load_before = os.getloadavg()
    document = build_necessity(config, matrix, only=only, progress=lambda step: print(time.strftime("%X"), step, flush=True))
    load_after = os.getloadavg()
    document["benchmark"] = {
        "residents": args.residents, "years": args.years, "seed": args.seed, "rows": int(len(matrix.frame)),
        "feature_columns": len(matrix.feature_columns), "matrix_seconds": round(matrix_seconds, 1),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "load_average_before_after": [round(load_before[0], 1), round(load_after[0], 1)],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(document, indent=1), encoding="utf-8")
    print(json.dumps(document["benchmark"]))
    print(f"full model {document['full']['seconds']} s; total {document['seconds_total']} s")
    for row in document["variants"]:
        c = row["contribution"]
        print(f"{row['name']:18} {'necessary' if row['necessary'] else 'NOT SHOWN':10} "
              f"prec {c['precision_at_capacity']['value']:+.4f} [{c['precision_at_capacity']['ci_low']:+.4f}, {c['precision_at_capacity']['ci_high']:+.4f}] "
              f"auc {c['roc_auc']['value']:+.4f} [{c['roc_auc']['ci_low']:+.4f}, {c['roc_auc']['ci_high']:+.4f}] "
              f"findings {row['fairness']['findings']} {row['seconds']} s")


if __name__ == "__main__":
    main()
