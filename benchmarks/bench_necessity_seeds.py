"""Is a source's necessity stable across synthetic worlds, and what do the worlds say together? (not run by CI)

    nice -n 10 .venv/bin/python benchmarks/bench_necessity_seeds.py --seeds 42,43,44 --source housing_repairs
    nice -n 10 .venv/bin/python benchmarks/bench_necessity_seeds.py --residents 20000 --years 10 --splits 8
    # several worlds at borough scale, then their pooled contribution:
    .venv/bin/python benchmarks/bench_necessity_seeds.py --residents 250000 --splits 4 --seeds 42,43,44,45 \
        --source housing_repairs,police --negative-sample-fraction 0.1 --pairs-dir DIR/pairs
    .venv/bin/python benchmarks/bench_necessity_seeds.py --seeds 42,43,44,45 --source housing_repairs,police \
        --pairs-dir DIR/pairs --pool

For each seed: generate the borough (cached under --cache), build the feature matrix, train the full
model and the model without each --source (comma-separated) on the last --splits test splits
(training.n_test_splits raised to --splits; every other setting from --config), and print the paired
contribution (full minus without, 95% interval, `paired_contribution`, the code `earlysignal necessity`
uses) computed over the last 4 splits (the default plan) and over all --splits. A split's models do not
depend on how many splits the plan has (each is trained on the as_of dates before its own test date), so
one run gives both. Fairness findings are not recomputed (they do not enter the verdict). JSON lines go to
--out. With --pairs-dir, each seed's test rows and both models' scores are kept there (small .npz files,
no features), and --pool reads them back and prints the contribution over all seeds' splits together
(`pooled_contribution`: the mean over every split of every world, residents resampled within each split),
which is the figure to quote when one world's escalations are too few to tell.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path


def _pairs_path(folder: Path, seed: int, residents: int, source: str) -> Path:
    return folder / f"pairs-{residents}-s{seed}-{source}.npz"


def _save_pairs(path: Path, pairs: list) -> None:
    arrays = {}
    for number, pair in enumerate(pairs):
        for field in ("y", "ids", "full_score", "full_margin", "variant_score", "variant_margin"):
            value = getattr(pair, field)
            arrays[f"{number}_{field}"] = value.astype(str) if field == "ids" else value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    import numpy as np

    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def _load_pairs(path: Path) -> list:
    import numpy as np

    from earlysignal.modeling.necessity import SplitPair

    with np.load(path) as stored:
        count = len({name.split("_", 1)[0] for name in stored.files})
        return [SplitPair(**{f: stored[f"{n}_{f}"] for f in
                             ("y", "ids", "full_score", "full_margin", "variant_score", "variant_margin")})
                for n in range(count)]


def _interval_text(entry: dict, metric: str) -> str:
    c = entry["contribution"][metric]
    return f"{c['value']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]"


def _pool(args, seeds: list[int], sources: list[str], base) -> None:
    """Contribution of each source over every seed's last 4 splits together (and over all stored splits)."""
    from earlysignal.modeling.necessity import pooled_contribution

    out = Path(args.out)
    for source in sources:
        stored = {seed: _load_pairs(_pairs_path(Path(args.pairs_dir), seed, args.residents, source)) for seed in seeds}
        result = {"pooled": True, "seeds": seeds, "residents": args.residents, "source": source,
                  "splits_per_seed": {str(s): len(p) for s, p in stored.items()},
                  "test_positives": int(sum(p.y.sum() for pairs in stored.values() for p in pairs[-4:])),
                  "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        for label, take in (("last4", lambda pairs: pairs[-4:]), ("all", lambda pairs: pairs)):
            pairs = [p for seed in seeds for p in take(stored[seed])]
            entry = pooled_contribution(pairs, base, base.necessity.bootstrap)
            result[label] = {"contribution": entry["contribution"], "necessary": entry["necessary"],
                             "verdict": entry["verdict"], "without": entry["without"], "splits": len(pairs)}
            print(f"pooled {source} {label:5} over {len(pairs)} splits: necessary={entry['necessary']} "
                  f"({entry['verdict']}) auc {_interval_text(entry, 'roc_auc')} "
                  f"prec {_interval_text(entry, 'precision_at_capacity')}", flush=True)
        with out.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(result) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--residents", type=int, default=50_000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--splits", type=int, default=8)
    parser.add_argument("--source", default="housing_repairs", help="source(s) to leave out, comma-separated")
    parser.add_argument("--negative-sample-fraction", type=float, default=None,
                        help="override training.negative_sample_fraction (0.1 at borough scale)")
    parser.add_argument("--pairs-dir", help="keep each seed's test rows and scores here (for --pool)")
    parser.add_argument("--pool", action="store_true", help="only pool the seeds' stored pairs (no training)")
    parser.add_argument("--config", default="conf/borough.yaml")
    parser.add_argument("--cache", default="/tmp/earlysignal-bench")
    parser.add_argument("--out", default="/tmp/earlysignal-bench/necessity-seeds.jsonl")
    args = parser.parse_args()

    import numpy as np

    from earlysignal.config import load_config
    from earlysignal.modeling.necessity import (
        _subset,
        _test_predictions,
        feature_groups,
        paired_contribution,
        split_pairs,
    )
    from earlysignal.modeling.train import _labelled_rows, load_matrix
    from earlysignal.synth import generate_borough
    from earlysignal.timesplits import plan_from_config

    base = load_config(args.config)
    training = {"n_test_splits": args.splits}
    if args.negative_sample_fraction is not None:
        training["negative_sample_fraction"] = args.negative_sample_fraction
    base = base.model_copy(update={"training": base.training.model_copy(update=training)})
    seeds = [int(s) for s in args.seeds.split(",") if s]
    sources = [s for s in args.source.split(",") if s]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.pool:
        if not args.pairs_dir:
            parser.error("--pool needs --pairs-dir")
        _pool(args, seeds, sources, base)
        return
    for seed in seeds:
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
        del matrix
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        full = _test_predictions(data, plan, config, columns)
        full_seconds = time.perf_counter() - t0
        positives = [int(data.y[f["test"]].sum()) for f in full]
        for source in sources:
            [group] = [g for g in feature_groups(config, columns) if g["name"] == source]
            keep = np.array([c not in set(group["columns"]) for c in columns])
            names = [c for c, k in zip(columns, keep, strict=True) if k]
            t1 = time.perf_counter()
            without = _test_predictions(_subset(data, keep), plan, config, names)
            variant_seconds = time.perf_counter() - t1
            if args.pairs_dir:
                _save_pairs(_pairs_path(Path(args.pairs_dir), seed, args.residents, source),
                            split_pairs(data, full, without))
            result = {
                "seed": seed, "residents": args.residents, "years": args.years, "source": source,
                "test_as_of": [str(d) for s in plan.splits for d in s.test], "test_positives": positives,
                "test_rows": [int(f["test"].sum()) for f in full],
                "negative_sample_fraction": config.training.negative_sample_fraction,
            }
            for label, sl in (("last4", slice(-4, None)), (f"all{len(full)}", slice(None))):
                entry = paired_contribution(data, full[sl], without[sl], config, config.necessity.bootstrap)
                result[label] = {"contribution": entry["contribution"], "necessary": entry["necessary"],
                                 "without": entry["without"]}
            result.update({
                "full_seconds": round(full_seconds, 1), "variant_seconds": round(variant_seconds, 1),
                "total_seconds": round(time.perf_counter() - started, 1),
                "load_average_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],
                "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            })
            with out.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(result) + "\n")
            for label in ("last4", f"all{len(full)}"):
                print(f"seed {seed} {source} {label:6} necessary={result[label]['necessary']} "
                      f"auc {_interval_text(result[label], 'roc_auc')} "
                      f"prec {_interval_text(result[label], 'precision_at_capacity')}", flush=True)
        print(f"seed {seed}: positives per test date {positives}; full model {round(full_seconds, 1)} s, "
              f"{round(time.perf_counter() - started, 1)} s in all, load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
