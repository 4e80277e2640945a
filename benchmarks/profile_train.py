"""Profile one `train_model` run on a matrix built by bench_train_score.py (not run by CI).

    .venv/bin/python benchmarks/bench_train_score.py --residents 50000 --runs 0 --work /work/data/trainfast-50k
    nice -n 10 .venv/bin/python benchmarks/profile_train.py --work /work/data/trainfast-50k --top 40

Reads WORK/matrix.parquet and the borough behind WORK/borough (for the oracle), trains with MLflow logging
into WORK/mlflow.db, and prints wall/CPU seconds, peak RSS, load average, the test AUC and the cProfile
table (cumulative). Profiling adds overhead to Python-heavy code; the C++ in LightGBM and BLAS is unaffected.
With --n-jobs > 1 the worker processes' own time does not appear in the table (only the wait for them).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import pstats
import resource
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="folder with matrix.parquet and borough/ (bench_train_score.py)")
    parser.add_argument("--config", default="conf/borough.yaml")
    parser.add_argument("--negative-sample-fraction", type=float, default=None)
    parser.add_argument("--n-jobs", type=int, default=None, help="override training.n_jobs")
    parser.add_argument("--num-threads", type=int, default=None, help="override training.num_threads")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--no-mlflow", action="store_true")
    args = parser.parse_args()

    from earlysignal.config import config_from_dict, load_config
    from earlysignal.modeling.train import train_model

    config = load_config(args.config)
    raw = config.model_dump(mode="json")
    if args.negative_sample_fraction is not None:
        raw["training"]["negative_sample_fraction"] = args.negative_sample_fraction
    if args.n_jobs is not None:
        raw["training"]["n_jobs"] = args.n_jobs
    if args.num_threads is not None:
        raw["training"]["num_threads"] = args.num_threads
    config = config_from_dict(raw)
    work = Path(args.work)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    profile = cProfile.Profile()
    wall, cpu = time.perf_counter(), time.process_time()
    profile.enable()
    result = train_model(config, data_dir=work / "borough", matrix=work / "matrix.parquet",
                         log_to_mlflow=not args.no_mlflow)
    profile.disable()
    wall = time.perf_counter() - wall
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)  # the workers' CPU time counts once they have exited
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = result.metrics["summary"]["model"]
    print(json.dumps({
        "wall_seconds": round(wall, 1),
        "cpu_seconds_self": round(time.process_time() - cpu, 1),
        "cpu_seconds_children": round(children.ru_utime + children.ru_stime, 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
        "load_average": os.getloadavg(),
        "sampling": result.metrics["sampling"],
        "best_iterations": result.metrics["best_iteration_per_split"],
        "model": {m: summary[m] for m in ("roc_auc", "precision_at_capacity", "ece", "average_precision")},
        "model_sha256": hashlib.sha256(result.model.booster.model_to_string().encode()).hexdigest(),
        "predictions_sha256": hashlib.sha256(
            result.test_predictions[["score", "score__logistic"]].to_numpy().tobytes()).hexdigest(),
    }, indent=1, default=str))
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
