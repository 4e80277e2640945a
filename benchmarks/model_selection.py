"""Compare LightGBM settings against the logistic baseline on the real split plan (not run by CI).

    .venv/bin/python benchmarks/model_selection.py --matrix /work/data/model-sel/r50000-s7/matrix-cpp.parquet \
        --variants current es2 --out results.json

Every variant is a set of config overrides (`VARIANTS`) applied to conf/borough.yaml; each split is fitted with
the same code `train` uses (`_split_task`, `_fit_booster`, `_logistic_scores`), labels as known on the test date.
Per split it records the slices' positives, the booster's best iteration and test metrics of the model (ranked
by calibrated score, ties broken by the raw margin, as `train` does) and of the logistic baseline; the summary is
the mean over splits with paired bootstrap intervals, and the interval of the model-minus-logistic difference.
Never point it at the test suite's world (seed 21): choosing settings there would be fitting to the test.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
METRICS = ("roc_auc", "average_precision", "lift_at_capacity")

# Overrides of conf/borough.yaml, by section. "current" is the repository default at the time of writing.
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "current": {},
    "val2": {"training": {"validation_as_of_count": 2}},
    "val4": {"training": {"validation_as_of_count": 4}},
    "stumps": {"model": {"num_leaves": 2}},
    "leaves3": {"model": {"num_leaves": 3}},
    "lr02": {"model": {"learning_rate": 0.02, "n_estimators": 3000}},
    "es200": {"model": {"early_stopping_rounds": 200}},
    "fixed300": {"model": {"early_stopping_rounds": 100000, "n_estimators": 300}},
    "fixed600": {"model": {"early_stopping_rounds": 100000, "n_estimators": 600}},
    "ff02": {"model": {"feature_fraction": 0.2}},
    "mcs1000": {"model": {"min_child_samples": 1000}},
    "l2_100": {"model": {"lambda_l2": 100}},
    "mcs50": {"model": {"min_child_samples": 50}},
    "val4_mcs50": {"training": {"validation_as_of_count": 4}, "model": {"min_child_samples": 50}},
    "val4_es200": {"training": {"validation_as_of_count": 4}, "model": {"early_stopping_rounds": 200}},
    "val4_stumps": {"training": {"validation_as_of_count": 4}, "model": {"num_leaves": 2}},
    "val4_leaves3_es200": {"training": {"validation_as_of_count": 4},
                           "model": {"num_leaves": 3, "early_stopping_rounds": 200}},
}


def _config(matrix_meta: dict[str, Any], overrides: dict[str, dict[str, Any]]) -> Any:
    import yaml

    from earlysignal.config import config_from_dict

    raw = yaml.safe_load((REPO / "conf" / "borough.yaml").read_text(encoding="utf-8"))
    raw["label"].update(name=matrix_meta["label"]["name"], outcome_types=matrix_meta["label"]["outcome_types"])
    raw["training"].update(n_jobs=1, bootstrap=0)
    for section, values in overrides.items():
        raw[section].update(copy.deepcopy(values))
    return config_from_dict(raw)


def _plan(config: Any, data: Any, meta: dict[str, Any]) -> Any:
    import datetime as dt

    import pandas as pd

    from earlysignal.timesplits import plan_from_config

    dates = sorted({pd.Timestamp(d).date() for d in np.unique(data.day)})
    return plan_from_config(config, dates, extract_date=dt.date.fromisoformat(meta["extract_date"]))


def _tasks(config: Any, data: Any, plan: Any) -> list[Any]:
    from earlysignal.modeling.train import _split_task

    tasks = []
    for split in plan.splits:
        task = _split_task(data.as_known_at(min(split.test)), split, with_test=True)
        task.test = np.flatnonzero(data.mask(split.test))
        tasks.append(task)
    return tasks


def _fit_one(X: np.ndarray, task: Any, config: Any, names: list[str]) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    from earlysignal.modeling.train import _fit_booster

    started = time.process_time()
    with threadpool_limits(limits=1):
        fitted = _fit_booster(X, task, config, names)
        margin = fitted.booster.predict(X[task.test], raw_score=True)
        score = fitted.calibrator.predict(margin)
    return {"best_iteration": fitted.best_iteration, "margin": margin, "score": score,
            "cpu_seconds": time.process_time() - started}


def _logistic(X: np.ndarray, task: Any, config: Any, names: list[str]) -> np.ndarray:
    from threadpoolctl import threadpool_limits

    from earlysignal.modeling.train import _logistic_scores

    with threadpool_limits(limits=1):
        return _logistic_scores(X, task, X[task.test], config, names)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--matrix", type=Path, required=True)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from joblib import Parallel, delayed

    from earlysignal.modeling import metrics as M
    from earlysignal.modeling.train import _labelled_rows, _read_lean_matrix

    lean = _read_lean_matrix(args.matrix)
    meta = lean.metadata
    data = _labelled_rows(lean)
    names = list(lean.feature_columns)
    base = _config(meta, {})
    base_tasks = _tasks(base, data, _plan(base, data, meta))
    logistic = Parallel(n_jobs=args.n_jobs)(delayed(_logistic)(data.X, t, base, names) for t in base_tasks)
    report: dict[str, Any] = {"matrix": str(args.matrix), "label": meta["label"]["name"], "splits": [], "variants": {}}
    for task in base_tasks:
        report["splits"].append({"split": task.name, "test_rows": len(task.test),
                                 "test_positives": int(data.y[task.test].sum()),
                                 "fit_positives": int(task.y[task.fit].sum()),
                                 "validation_positives": int(task.y[task.validation].sum()),
                                 "calibration_positives": int(task.y[task.calibration].sum())})
    for name in args.variants:
        config = _config(meta, VARIANTS[name])
        tasks = _tasks(config, data, _plan(config, data, meta))
        fits = Parallel(n_jobs=args.n_jobs)(delayed(_fit_one)(data.X, t, config, names) for t in tasks)
        values: dict[str, dict[str, list[float]]] = {"model": {}, "logistic": {}}
        reps: dict[str, dict[str, list[np.ndarray]]] = {"model": {}, "logistic": {}, "diff": {}}
        margin_same: list[bool] = []
        for number, (task, fit, log_score) in enumerate(zip(tasks, fits, logistic, strict=True)):
            y = data.y[task.test].astype(float)
            ids = data.frame["resident_id"].to_numpy()[task.test]
            k = M.capacity_k(len(y), config.capacity)
            lists = {"model": M.RankedList.build(y, fit["score"], ids, k, tiebreak=fit["margin"]),
                     "logistic": M.RankedList.build(y, log_score, ids, k)}
            boot = M.bootstrap_replicates(lists, args.bootstrap, seed=1000 + number)
            # Calibration is monotone and the raw margin breaks its ties, so it cannot change the order.
            by_margin = M.RankedList.build(y, fit["margin"], ids, k, is_probability=False).metrics()["average_precision"]
            margin_same.append(bool(np.isclose(by_margin, lists["model"].metrics()["average_precision"])))
            for scorer, ranked in lists.items():
                for metric, value in ranked.metrics().items():
                    if metric in METRICS:
                        values[scorer].setdefault(metric, []).append(value)
                        reps[scorer].setdefault(metric, []).append(boot[scorer][metric])
        summary: dict[str, Any] = {}
        for metric in METRICS:
            for scorer in ("model", "logistic"):
                mean_reps = np.mean(np.vstack(reps[scorer][metric]), axis=0)
                summary.setdefault(scorer, {})[metric] = [float(np.mean(values[scorer][metric])), *M.interval(mean_reps)]
            diff = np.mean(np.vstack(reps["model"][metric]), axis=0) - np.mean(np.vstack(reps["logistic"][metric]), axis=0)
            summary.setdefault("diff", {})[metric] = [
                float(np.mean(values["model"][metric]) - np.mean(values["logistic"][metric])), *M.interval(diff)]
        # Test scores for looking at where in the list the two differ (top 10, 20, 50... of each as_of).
        np.savez_compressed(args.out.with_name(f"{args.out.stem}-{name}.npz"), **{
            f"{t.name}__{key}": value for t, f, log_score in zip(tasks, fits, logistic, strict=True)
            for key, value in (("y", data.y[t.test]), ("margin", f["margin"]), ("logistic", log_score))})
        report["variants"][name] = {
            "overrides": VARIANTS[name], "summary": summary,
            "best_iterations": [f["best_iteration"] for f in fits],
            "validation_positives": [int(t.y[t.validation].sum()) for t in tasks],
            "calibrated_order_equals_margin_order": all(margin_same),
            "fit_cpu_seconds": round(sum(f["cpu_seconds"] for f in fits), 1),
            "per_split_model_ap": [round(v, 4) for v in values["model"]["average_precision"]],
        }
        s = summary
        print(f"{name:22s} AUC {s['model']['roc_auc'][0]:.3f} vs {s['logistic']['roc_auc'][0]:.3f}  "
              f"AP {s['model']['average_precision'][0]:.4f} vs {s['logistic']['average_precision'][0]:.4f} "
              f"(diff {s['diff']['average_precision'][1]:+.4f}..{s['diff']['average_precision'][2]:+.4f})  "
              f"lift {s['model']['lift_at_capacity'][0]:.1f} vs {s['logistic']['lift_at_capacity'][0]:.1f}  "
              f"iters {report['variants'][name]['best_iterations']}  cpu {report['variants'][name]['fit_cpu_seconds']}s",
              flush=True)
        args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
