"""Is a source's necessity stable across synthetic worlds? (not run by CI)

    nice -n 10 .venv/bin/python benchmarks/bench_necessity_seeds.py --seeds 42,43,44 --source housing_repairs
    nice -n 10 .venv/bin/python benchmarks/bench_necessity_seeds.py --residents 20000 --years 10 --splits 8

For each seed: generate the borough (cached under --cache), build the feature matrix, train the full
model and the model without --source on the last --splits test splits (training.n_test_splits raised
to --splits; every other setting from --config), and print the paired contribution (full minus
without, 95% interval, `paired_contribution`, the code `earlysignal necessity` uses) computed over the
last 4 splits (the default plan) and over all --splits. A split's models do not depend on how many
splits the plan has (each is trained on the as_of dates before its own test date), so one run gives
both. Fairness findings are not recomputed (they do not enter the verdict). JSON lines go to --out.
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
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--splits", type=int, default=8)
    parser.add_argument("--source", default="housing_repairs")
    parser.add_argument("--config", default="conf/borough.yaml")
    parser.add_argument("--cache", default="/tmp/earlysignal-bench")
    parser.add_argument("--out", default="/tmp/earlysignal-bench/necessity-seeds.jsonl")
    args = parser.parse_args()

    import numpy as np

    from earlysignal.config import load_config
    from earlysignal.modeling.necessity import _test_predictions, feature_groups, paired_contribution
    from earlysignal.modeling.train import _labelled_rows, load_matrix
    from earlysignal.synth import generate_borough
    from earlysignal.timesplits import plan_from_config

    base = load_config(args.config)
    base = base.model_copy(update={"training": base.training.model_copy(update={"n_test_splits": args.splits})})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed in [int(s) for s in args.seeds.split(",") if s]:
        started = time.perf_counter()
        data_dir = Path(args.cache) / f"borough-{args.residents}-{args.years}-{seed}"
        synth = base.synth.model_copy(update={"residents": args.residents, "years": args.years, "seed": seed})
        if not (data_dir / "manifest.json").exists():
            generate_borough(data_dir, synth)
        config = base.model_copy(update={"data": base.data.model_copy(update={"dir": data_dir})})
        matrix = load_matrix(config, data_dir)
        data = _labelled_rows(matrix)
        dates = sorted({np.datetime64(d, "D").astype(object) for d in np.unique(data.day)})
        plan = plan_from_config(config, dates)
        columns = list(matrix.feature_columns)
        [group] = [g for g in feature_groups(config, columns) if g["name"] == args.source]
        keep = np.array([c not in set(group["columns"]) for c in columns])
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        full = _test_predictions(data, plan, config, columns)
        names = [c for c, k in zip(columns, keep, strict=True) if k]
        from earlysignal.modeling.necessity import _subset

        without = _test_predictions(_subset(data, keep), plan, config, names)
        train_seconds = time.perf_counter() - t0
        positives = [int(data.y[f["test"]].sum()) for f in full]
        result = {
            "seed": seed, "residents": args.residents, "years": args.years, "source": args.source,
            "test_as_of": [str(d) for s in plan.splits for d in s.test], "test_positives": positives,
            "test_rows": [int(f["test"].sum()) for f in full],
        }
        for label, sl in (("last4", slice(-4, None)), (f"all{len(full)}", slice(None))):
            entry = paired_contribution(data, full[sl], without[sl], config, config.necessity.bootstrap)
            result[label] = {"contribution": entry["contribution"], "necessary": entry["necessary"],
                             "without": entry["without"]}
        result.update({
            "train_seconds": round(train_seconds, 1), "total_seconds": round(time.perf_counter() - started, 1),
            "load_average_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],
            "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        })
        with out.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(result) + "\n")
        for label in ("last4", f"all{len(full)}"):
            c = result[label]["contribution"]
            print(f"seed {seed} {label:6} necessary={result[label]['necessary']} "
                  f"auc {c['roc_auc']['value']:+.4f} [{c['roc_auc']['ci_low']:+.4f}, {c['roc_auc']['ci_high']:+.4f}] "
                  f"prec {c['precision_at_capacity']['value']:+.4f} [{c['precision_at_capacity']['ci_low']:+.4f}, "
                  f"{c['precision_at_capacity']['ci_high']:+.4f}]", flush=True)
        print(f"seed {seed}: positives per test date {positives}; {result['train_seconds']} s training, "
              f"load {result['load_average_before_after']}", flush=True)


if __name__ == "__main__":
    main()
