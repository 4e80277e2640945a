"""Benchmark training and scoring at borough scale (not run by CI).

    .venv/bin/python benchmarks/bench_train_score.py                        # 250k residents, default config
    .venv/bin/python benchmarks/bench_train_score.py --residents 20000 --runs 1
    .venv/bin/python benchmarks/bench_train_score.py --runs 1 --negative-sample-fraction 0.1   # sampled fit

Stages, each in its own child process so that its peak RSS (ru_maxrss) is its own:
  features  build the feature matrix once (the feature builder's figure; needed as training input)
  train     train_model on that matrix with the default split plan, MLflow logging and registration
  score     score_cohort for one as_of: load data, rebuild features with the model's spec, score,
            reasons, unscored list, drift, outputs (approval check skipped: --allow-unapproved)
The borough comes from earlysignal.synth.generate_borough (cached under --cache); the data folder
used is a folder of symlinks, so nothing is written next to a borough another benchmark made.
Targets (docs/performance.md, "Training and scoring"): train < 10 min, score < 60 s, peak < 8 GB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _child(args: argparse.Namespace) -> None:
    from earlysignal.config import load_config

    config = load_config(args.config)
    if args.negative_sample_fraction is not None:
        from earlysignal.config import config_from_dict

        raw = config.model_dump(mode="json")
        raw["training"]["negative_sample_fraction"] = args.negative_sample_fraction
        config = config_from_dict(raw)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(args.work) / 'mlflow.db'}"
    matrix_path = Path(args.work) / "matrix.parquet"
    started = time.perf_counter()
    extra: dict[str, object] = {}
    if args.stage == "features":
        from earlysignal.features import build_or_reuse_feature_matrix

        matrix, status = build_or_reuse_feature_matrix(config, data_dir=args.data, out=matrix_path)
        extra = {"rows": len(matrix.frame), "features": len(matrix.feature_columns), "status": status}
    elif args.stage == "train":
        from earlysignal.modeling.train import train_model

        result = train_model(config, data_dir=args.data, matrix=matrix_path)
        extra = {"model_uri": result.model_uri, "test_rows": len(result.test_predictions),
                 "best_iterations": result.metrics["best_iteration_per_split"],
                 "negative_sample_fraction": result.metrics["sampling"]["negative_fraction"],
                 "auc": result.metrics["summary"]["model"]["roc_auc"]["value"],
                 "oracle_ratio_auc": (result.metrics["oracle_ratio"] or {}).get("roc_auc", {}).get("value")}
    elif args.stage == "score":
        from earlysignal.scoring import score_cohort

        result = score_cohort(config, dt.date.fromisoformat(args.as_of), model_uri=args.model, data_dir=args.data,
                              out=Path(args.work) / "scores", allow_unapproved=True)
        extra = {"scored": result.summary["counts"]["scored"], "unscored": result.summary["counts"]["unscored"]}
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # CPU seconds are reported beside wall time: on a shared machine the wall time includes waiting.
    print(json.dumps({"stage": args.stage, "seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                      "peak_rss_gb": usage.ru_maxrss / 1024**2, "load_average": os.getloadavg(), **extra}))


def _ensure_borough(args: argparse.Namespace) -> Path:
    """The generated borough (cached), exposed through a folder of symlinks we may write beside."""
    from earlysignal.config import SynthSection
    from earlysignal.synth import generate_borough

    source = Path(args.cache) / f"r{args.residents}-s{args.seed}"
    if not (source / "manifest.json").exists():
        print(f"generating a {args.residents:,}-resident borough into {source} ...", flush=True)
        generate_borough(source, SynthSection(residents=args.residents, seed=args.seed))
    linked = Path(args.work) / "borough"
    linked.mkdir(parents=True, exist_ok=True)
    for item in source.resolve().iterdir():
        if item.name in ("features", "quarantine"):
            continue
        target = linked / item.name
        if not target.exists():
            target.symlink_to(item)
    return linked


def _run_stage(args: argparse.Namespace, stage: str, data: Path, model: str | None = None) -> dict:
    command = [sys.executable, __file__, "--child", "--stage", stage, "--data", str(data), "--work", args.work,
               "--config", args.config, "--as-of", args.as_of]
    if args.negative_sample_fraction is not None:
        command += ["--negative-sample-fraction", str(args.negative_sample_fraction)]
    if model:
        command += ["--model", model]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr[-5000:])
        raise SystemExit(f"stage {stage} failed")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--residents", type=int, default=250_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--runs", type=int, default=3,
                        help="runs of train and score (median reported); 0 builds the feature matrix only")
    parser.add_argument("--config", default="conf/borough.yaml")
    parser.add_argument("--as-of", default="2025-10-01", help="as_of date scored")
    parser.add_argument("--negative-sample-fraction", type=float, default=None,
                        help="override training.negative_sample_fraction (share of negatives the booster fits on)")
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "earlysignal-bench-features"))
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "earlysignal-bench-train-score"))
    parser.add_argument("--score-only", metavar="MODEL_URI", help="skip features and training; score with this model")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    Path(args.work).mkdir(parents=True, exist_ok=True)
    data = _ensure_borough(args)
    results: dict[str, list[dict]] = {"score": []}
    if not args.score_only:
        results = {"features": [_run_stage(args, "features", data)], "train": [], "score": []}
        print(json.dumps(results["features"][0]), flush=True)
    for _ in range(args.runs):
        model = args.score_only
        if not model:
            trained = _run_stage(args, "train", data)
            print(json.dumps(trained), flush=True)
            results["train"].append(trained)
            model = trained["model_uri"]
        scored = _run_stage(args, "score", data, model=model)
        print(json.dumps(scored), flush=True)
        results["score"].append(scored)
    summary = {
        stage: {"median_seconds": statistics.median(r["seconds"] for r in runs),
                "median_cpu_seconds": statistics.median(r.get("cpu_seconds", float("nan")) for r in runs),
                "max_peak_rss_gb": max(r["peak_rss_gb"] for r in runs), "runs": len(runs)}
        for stage, runs in results.items() if runs  # --runs 0: the feature matrix only
    }
    summary["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_average_after": os.getloadavg()}
    summary["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    summary["command"] = " ".join([Path(sys.executable).name, *sys.argv])
    print(json.dumps(summary, indent=2))
    out = Path("benchmarks/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_score.json").write_text(json.dumps({"summary": summary, "runs": results}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
