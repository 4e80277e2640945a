"""Two ways to use two cores for the independent fits of a training run (not run by CI).

    nice -n 10 .venv/bin/python benchmarks/bench_train_parallel.py --work /work/data/trainfast-50k

Times only the fits (4 test splits and the final model: booster, calibrator, logistic baseline) on a matrix
built by bench_train_score.py, once each way:
  processes  training.n_jobs=2 worker processes, each fit with 1 LightGBM thread
  threads    training.n_jobs=1, each fit with 2 LightGBM threads (deterministic=true, force_row_wise=true)
and checks that both give the same models (processes: always; threads: LightGBM's deterministic mode).
Prints wall seconds, CPU seconds (this process and its children) and the load average for each.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import time
from pathlib import Path


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True)
    parser.add_argument("--config", default="conf/borough.yaml")
    parser.add_argument("--negative-sample-fraction", type=float, default=0.1)
    args = parser.parse_args()

    import numpy as np
    import pandas as pd

    from joblib.externals.loky import get_reusable_executor

    from earlysignal.config import config_from_dict, load_config
    from earlysignal.modeling import train as T

    base = load_config(args.config).model_dump(mode="json")
    base["training"]["negative_sample_fraction"] = args.negative_sample_fraction
    fm = T.load_matrix(config_from_dict(base), matrix=Path(args.work) / "matrix.parquet")
    data = T._labelled_rows(fm)
    dates = sorted({pd.Timestamp(d).date() for d in np.unique(data.day)})
    plan = T.plan_from_config(config_from_dict(base), dates)
    tasks = []
    for split in plan.splits:
        task = T._split_task(data.as_known_at(min(split.test)), split, with_test=True)
        task.test = np.flatnonzero(data.mask(split.test))
        tasks.append(task)
    tasks.append(T._split_task(data, plan.final, with_test=False))
    results = {}
    for name, n_jobs, threads in (("processes", 2, 1), ("threads", 1, 2)):
        raw = {**base, "training": {**base["training"], "n_jobs": n_jobs, "num_threads": threads}}
        config = config_from_dict(raw)
        wall, cpu = time.perf_counter(), _cpu()
        outcomes = T._run_tasks(data.X, tasks, config, list(fm.feature_columns))
        # Stop the workers so that their CPU time is counted in RUSAGE_CHILDREN.
        get_reusable_executor().shutdown(wait=True)
        results[name] = {
            "wall_seconds": round(time.perf_counter() - wall, 1),
            "cpu_seconds": round(_cpu() - cpu, 1),
            "load_average": os.getloadavg(),
            "models_sha256": hashlib.sha256("".join(o.booster_text for o in outcomes).encode()).hexdigest(),
        }
        print(name, json.dumps(results[name]), flush=True)
    print(json.dumps({"rows": len(data.y), "fraction": args.negative_sample_fraction, **results}, indent=1))


if __name__ == "__main__":
    main()
