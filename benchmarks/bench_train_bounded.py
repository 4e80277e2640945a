"""Bounded-memory training (ADR 0025): what each stage of `train` holds, and the working-copy factors of the
memory estimate (modeling/feature_rows.py), measured on a matrix on disk.

Two modes:

- `factors`: in fresh child processes, read R labelled rows of the matrix (a seeded sample) and build a
  LightGBM dataset from them with the project's parameters and train 20 rounds, or fit the logistic baseline
  on them; print the peak resident set above what the process held before reading, per byte of the rows read.
  This is where LIGHTGBM_DATASET_FACTOR and LOGISTIC_FACTOR come from.
- `stages`: run `train_model` on the config and matrix (bounded when the config has build.memory_budget_gb or
  build.partitions), with a thread sampling this process's resident set every 5 ms; print each progress step
  with the resident set at its start and the most it reached before the next step.

    .venv/bin/python benchmarks/bench_train_bounded.py factors --config ts.yaml --matrix M --rows 20000 60000 100000
    .venv/bin/python benchmarks/bench_train_bounded.py stages --config ts.yaml --matrix M [--no-mlflow]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import threading
import time
from pathlib import Path

GB = 1024**3


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _factor_child(config_path: str, matrix: str, rows: int, what: str, queue: mp.Queue) -> None:
    import resource

    import lightgbm as lgb
    import numpy as np

    from earlysignal.config import load_config
    from earlysignal.modeling import train as T
    from earlysignal.modeling.baselines import LogisticBaseline

    config = load_config(config_path)
    fm = T._read_lean_matrix(Path(matrix), labelled_only=True)
    data = T._labelled_rows(fm, on_disk=True)
    fm.frame = fm.frame.iloc[:0]
    index = np.sort(np.random.default_rng(0).choice(len(data.y), size=rows, replace=False))
    y = data.y[index]
    before = _rss()
    base_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    (X,) = T._take(data.X, index)
    raw = X.nbytes
    if what == "lightgbm":
        train_set = lgb.Dataset(X, y, free_raw_data=True, params={"verbose": -1})
        del X
        params = {**T.lightgbm_params(config)}
        lgb.train(params, train_set, num_boost_round=20)
    else:
        weight = np.ones(len(y))
        LogisticBaseline(seed=config.project.seed, c=config.training.logistic_c).fit(X, y, weight)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    queue.put({"what": what, "rows": rows, "raw_mb": raw / 2**20, "held_before_mb": before / 2**20,
               "peak_above_before_mb": (peak - before) / 2**20, "factor_above_rows": (peak - before) / raw - 1,
               "earlier_peak_mb": base_peak / 2**20})


def factors(args: argparse.Namespace) -> None:
    ctx = mp.get_context("spawn")
    for what in ("lightgbm", "logistic"):
        for rows in args.rows:
            queue = ctx.Queue()
            child = ctx.Process(target=_factor_child, args=(args.config, args.matrix, rows, what, queue))
            child.start()
            print(json.dumps(queue.get()), flush=True)
            child.join()


def stages(args: argparse.Namespace) -> None:
    from earlysignal.config import load_config
    from earlysignal.modeling.train import train_model

    config = load_config(args.config)
    log: list[dict] = []
    state = {"peak": 0, "stop": False}
    lock = threading.Lock()

    def sample() -> None:
        while not state["stop"]:
            value = _rss()
            with lock:
                state["peak"] = max(state["peak"], value)
            time.sleep(0.005)

    def progress(step: str) -> None:
        now = _rss()
        with lock:
            if log:
                log[-1]["peak_mb"] = round(max(state["peak"], now) / 2**20, 1)
                print(json.dumps(log[-1]), flush=True)
            state["peak"] = now
        log.append({"t": round(time.perf_counter() - started, 2), "step": step, "rss_mb": round(now / 2**20, 1)})

    thread = threading.Thread(target=sample, daemon=True)
    started = time.perf_counter()
    thread.start()
    result = train_model(config, matrix=args.matrix, progress=progress, log_to_mlflow=not args.no_mlflow)
    progress("done")
    state["stop"] = True
    summary = result.metrics.get("summary", {}).get("model", {}).get("roc_auc")
    print(json.dumps({"wall_s": round(time.perf_counter() - started, 1), "auc": summary,
                      "model_uri": result.model_uri}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["factors", "stages"])
    parser.add_argument("--config", required=True)
    parser.add_argument("--matrix", required=True)
    parser.add_argument("--rows", type=int, nargs="*", default=[20_000, 60_000, 100_000])
    parser.add_argument("--no-mlflow", action="store_true")
    args = parser.parse_args()
    factors(args) if args.mode == "factors" else stages(args)


if __name__ == "__main__":
    main()
