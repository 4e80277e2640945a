"""Necessity of one source in a borough that lacks others (not run by CI).

    flock /work/helpers/bigbench.lock nice -n 10 .venv/bin/python benchmarks/bench_necessity_given.py \
        --config CONFIG --matrix MATRIX.parquet --source housing_repairs --lacking ae --lacking ae,police

`earlysignal necessity` asks what each source adds to a model that has every other source. A council
without, say, a health data-sharing agreement has no A&E records; this asks what --source adds there.
For each --lacking set: the model without that set (the "full" model of such a council) against the
model without that set and --source, on the same temporal splits, labels as known on each test date and
paired bootstrap as `earlysignal necessity` (its code). JSON lines go to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="conf/borough.yaml")
    parser.add_argument("--matrix", required=True, help="a single-file feature matrix written by `features`")
    parser.add_argument("--source", default="housing_repairs")
    parser.add_argument("--lacking", action="append", required=True, help="comma-separated sources (repeatable)")
    parser.add_argument("--out", default="/tmp/earlysignal-bench/necessity-given.jsonl")
    args = parser.parse_args()

    import numpy as np
    import pandas as pd

    from earlysignal.config import load_config
    from earlysignal.modeling.necessity import _subset, _test_predictions, feature_groups, paired_contribution
    from earlysignal.modeling.train import _labelled_rows, _read_lean_matrix, _shared_scratch
    from earlysignal.timesplits import plan_from_config

    config = load_config(args.config)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="earlysignal-necessity-", dir=_shared_scratch()) as folder:
        scratch = Path(folder) if config.training.n_jobs > 1 else None
        matrix = _read_lean_matrix(Path(args.matrix))
        data = _labelled_rows(matrix, scratch)
        plan = plan_from_config(config, sorted({pd.Timestamp(d).date() for d in np.unique(data.day)}))
        columns = list(matrix.feature_columns)
        groups = {g["name"]: set(g["columns"]) for g in feature_groups(config, columns)}
        for lacking in args.lacking:
            names = [n for n in lacking.split(",") if n]
            started, load_before = time.perf_counter(), os.getloadavg()[0]
            gone = set().union(*(groups[n] for n in names))
            results = []
            for label, drop in (("base", gone), ("without", gone | groups[args.source])):
                keep = np.array([c not in drop for c in columns])
                reduced = _subset(data, keep, scratch, f"{label}.npy")
                results.append(_test_predictions(reduced, plan, config, [c for c, k in zip(columns, keep) if k]))
                del reduced
                if scratch is not None:
                    (scratch / f"{label}.npy").unlink(missing_ok=True)
            entry = paired_contribution(data, results[0], results[1], config, config.necessity.bootstrap)
            base = paired_contribution(data, results[0], results[0], config, 0)["without"]
            record = {
                "source": args.source, "lacking": names, "base_metrics": base, **entry,
                "test_as_of": [str(d) for s in plan.splits for d in s.test],
                "seconds": round(time.perf_counter() - started, 1),
                "load_average_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],
                "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "matrix": args.matrix,
            }
            with out.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
            c = entry["contribution"]
            print(f"lacking {names}: base AUC {base['roc_auc']:.4f}, precision {base['precision_at_capacity']:.4f}; "
                  f"loss without {args.source}: AUC {c['roc_auc']['value']:+.4f} [{c['roc_auc']['ci_low']:+.4f}, "
                  f"{c['roc_auc']['ci_high']:+.4f}], precision {c['precision_at_capacity']['value']:+.4f} "
                  f"[{c['precision_at_capacity']['ci_low']:+.4f}, {c['precision_at_capacity']['ci_high']:+.4f}] "
                  f"necessary={entry['necessary']} ({record['seconds']} s)", flush=True)


if __name__ == "__main__":
    main()
