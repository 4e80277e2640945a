"""Everything a training run logs to MLflow: config, hashes, metrics per split, plots, evaluation
artefacts for the audit, and the registered pyfunc model (alias `candidate`).

Artefact paths are a contract with the audit stage (see docs/modeling.md):
evaluation/metrics.json, evaluation/store.json (the SHA-256 and expiry of the resident-level test
predictions and explanation sample, which live in the local evaluation store, never in MLflow),
features/feature_spec.json, config/config.json, model/ (the pyfunc model).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow.models import infer_signature  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from earlysignal.atomic import write_json, write_parquet  # noqa: E402
from earlysignal.config import ProjectConfig, config_to_dict  # noqa: E402
from earlysignal.evaluation_store import store_root, write_evaluation  # noqa: E402
from earlysignal.modeling import metrics as M  # noqa: E402
from earlysignal.modeling.pyfunc_model import EarlySignalModel  # noqa: E402
from earlysignal.modeling.registry import set_candidate  # noqa: E402
from earlysignal.provenance import provenance_tags  # noqa: E402
from earlysignal.timesplits import SplitPlan, plan_figure  # noqa: E402
from earlysignal.tracking import configure_tracking, use_experiment  # noqa: E402

SCORER_COLOURS = {"model": "#4c72b0", "prior": "#999999", "one_feature": "#dd8452", "logistic": "#55a868", "oracle": "#8172b2"}
SCORE_COLUMNS = {"model": "score", "prior": "score__prior", "one_feature": "score__one_feature",
                 "logistic": "score__logistic", "oracle": "oracle"}


def _flat_params(config: ProjectConfig) -> dict[str, str]:
    """Scalar config values as MLflow params (feature families and governance go in config.json)."""
    out: dict[str, str] = {}
    for section, values in config_to_dict(config).items():
        if section in ("features", "governance") or not isinstance(values, dict):
            continue
        for key, value in values.items():
            out[f"{section}.{key}"] = str(value)[:500]
    out["features.n_families"] = str(len(config.features.families))
    return out


def _log_metrics(metrics_doc: dict[str, Any]) -> None:
    """Per-split metrics as `split.<scorer>.<metric>` steps (step = split number); `<scorer>.<metric>` and
    `summary.<scorer>.<metric>` are the mean over test splits, with intervals."""
    for step, split in enumerate(metrics_doc["splits"], start=1):
        values = {}
        for scorer, per_metric in split["scorers"].items():
            for metric, entry in per_metric.items():
                if entry["value"] is not None:
                    values[f"split.{scorer}.{metric}"] = entry["value"]
        values["split.test.n"], values["split.test.positives"], values["split.test.k"] = (
            split["n"], split["positives"], split["k"]
        )
        mlflow.log_metrics(values, step=step)
    summary = {}
    for scorer, per_metric in metrics_doc["summary"].items():
        for metric, entry in per_metric.items():
            for key in ("value", "ci_low", "ci_high"):
                value = entry[key]
                if value is not None and math.isfinite(value):
                    suffix = "" if key == "value" else f".{key}"
                    summary[f"summary.{scorer}.{metric}{suffix}"] = value
                    if key == "value":
                        # The name the MLflow UI shows in its runs table is the mean over test splits,
                        # as the report says; per-split values are the `split.` metrics (step = split).
                        summary[f"{scorer}.{metric}"] = value
    crit = metrics_doc["success_criterion"]
    if crit["met"] is not None:
        summary["success_criterion.met"] = float(crit["met"])
    for metric, entry in (metrics_doc.get("oracle_ratio") or {}).items():
        if entry["value"] is not None:
            summary[f"oracle_ratio.{metric}"] = entry["value"]
    mlflow.log_metrics(summary)


def _precision_at_k_figure(predictions: pd.DataFrame, metrics_doc: dict[str, Any]) -> plt.Figure:
    max_n = int(predictions.groupby("split").size().min())
    ks = sorted({int(k) for k in np.unique(np.geomspace(1, max_n, 40).astype(int))})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for scorer, column in SCORE_COLUMNS.items():
        if predictions[column].isna().any():
            continue
        curves = []
        for _, part in predictions.groupby("split", sort=False):
            tiebreak = -part["rank"].to_numpy(dtype=float) if scorer == "model" else None
            ranked = M.RankedList.build(part["label"].to_numpy(), part[column].to_numpy(dtype=float),
                                        part["resident_id"].to_numpy(), 0, tiebreak=tiebreak)
            curves.append(M.expected_curve_at_k(ranked, ks).set_index("k"))
        mean = pd.concat(curves).groupby(level=0).mean()
        axes[0].plot(mean.index, mean["precision"], label=scorer, color=SCORER_COLOURS[scorer])
        axes[1].plot(mean.index, mean["recall"], label=scorer, color=SCORER_COLOURS[scorer])
    k_values = list(metrics_doc["capacity_k_per_as_of"].values())
    for ax, title in zip(axes, ("precision@k", "recall@k"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("k (top of the list, per as_of)")
        ax.set_title(f"{title}, mean over test splits")
        if k_values:
            ax.axvline(float(np.mean(k_values)), linestyle="--", color="black", linewidth=1, label="capacity")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _calibration_figure(predictions: pd.DataFrame) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5, 5))
    for scorer in ("model", "logistic"):
        table = M.calibration_table(predictions["label"].to_numpy(), predictions[SCORE_COLUMNS[scorer]].to_numpy())
        ax.plot(table["mean_predicted"], table["observed"], marker="o", label=scorer, color=SCORER_COLOURS[scorer])
    top = float(max(predictions["score"].max(), predictions["label"].mean() * 2, 0.05))
    ax.plot([0, top], [0, top], linestyle="--", color="grey", label="perfect")
    ax.set_xlabel("mean predicted probability (bin)")
    ax.set_ylabel("observed rate")
    ax.set_title("Calibration on test rows (10 equal-width bins)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _metrics_over_time_figure(metrics_doc: dict[str, Any]) -> plt.Figure:
    shown = ("roc_auc", "average_precision", "precision_at_capacity", "recall_at_capacity")
    fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.5))
    dates = [pd.Timestamp(s["test_as_of"]) for s in metrics_doc["splits"]]
    for ax, metric in zip(axes, shown, strict=True):
        for scorer in SCORE_COLUMNS:
            values = [s["scorers"].get(scorer, {}).get(metric, {}).get("value") for s in metrics_doc["splits"]]
            if all(v is None for v in values):
                continue
            ax.plot(dates, [np.nan if v is None else v for v in values], marker="o", label=scorer,
                    color=SCORER_COLOURS[scorer])
        ax.set_title(metric)
        ax.tick_params(axis="x", rotation=45)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def start_tracking(config: ProjectConfig) -> None:
    """Use the config's experiment, unless inside `mlflow run` (MLFLOW_RUN_ID set): then log into that run."""
    if os.environ.get("MLFLOW_RUN_ID"):
        configure_tracking()
    else:
        use_experiment(config.mlflow.experiment)


def feature_list(metadata: dict[str, Any]) -> pd.DataFrame:
    """The model's inputs with their descriptions (one row per feature column)."""
    described = {f["name"]: f for f in metadata.get("features", [])}
    rows = []
    for name in metadata.get("feature_columns", []):
        entry = described.get(name, {})
        rows.append({"feature": name, "family": entry.get("family"), "scope": entry.get("scope"),
                     "description": entry.get("description", "")})
    return pd.DataFrame(rows)


def log_training_run(
    *,
    config: ProjectConfig,
    fm: Any,
    plan: SplitPlan,
    predictions: pd.DataFrame,
    metrics_doc: dict[str, Any],
    explain_sample: pd.DataFrame,
    model: EarlySignalModel,
    input_example: pd.DataFrame,
    git_commit: str,
    versions: dict[str, str],
) -> tuple[str, str]:
    """Log a training run and register its model as `candidate`; return (run_id, model version)."""
    # A progress bar per small artefact file is noise on the console.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    start_tracking(config)
    crit = metrics_doc["success_criterion"]
    tags = {
        "earlysignal.stage": "train",
        "label": config.label.name,
        "spec_hash": str(fm.metadata.get("spec_hash", "unknown")),
        "data_fingerprint": str(fm.metadata.get("data_fingerprint", "unknown")),
        "git_commit": git_commit,
        "success_criterion.metric": crit["metric"],
        "success_criterion.threshold": str(crit["threshold"]),
        "success_criterion.met": {True: "met", False: "not met", None: "not evaluable"}[crit["met"]],
        **{f"version.{name}": version for name, version in versions.items()},
        **provenance_tags(fm.metadata.get("linkage")),
    }
    with mlflow.start_run(run_name=f"train {config.label.name}") as run, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        mlflow.set_tags(tags)
        mlflow.log_params(_flat_params(config))
        if metrics_doc.get("sampling"):
            rows = metrics_doc["sampling"]["fit_rows_per_split"]
            mlflow.set_tag("training.sampling", (
                f"negative fraction {metrics_doc['sampling']['negative_fraction']}; booster fit rows used/total: "
                + ", ".join(f"{name} {r['rows_used']}/{r['fit_rows']}" for name, r in rows.items())
            )[:5000])
        _log_metrics(metrics_doc)

        write_json(config_to_dict(config), folder / "config" / "config.json")
        write_json(fm.metadata, folder / "features" / "feature_spec.json")
        write_parquet(feature_list(fm.metadata), folder / "features" / "feature_list.parquet")
        (folder / "features" / "feature_list.md").write_text(
            "| feature | description |\n|---|---|\n"
            + "".join(f"| `{r.feature}` | {r.description} |\n" for r in feature_list(fm.metadata).itertuples()),
            encoding="utf-8",
        )
        # Resident-level evaluation data stays in the local evaluation store; MLflow gets its hashes only.
        store = write_evaluation(
            store_root(config.evaluation.dir, mlflow.get_tracking_uri()),
            run.info.run_id,
            {"test_predictions": predictions, "explain_sample": explain_sample},
            config.evaluation.retention_days,
        )
        write_json(store, folder / "evaluation" / "store.json")
        mlflow.set_tags({f"evaluation.sha256.{name}": entry["sha256"] for name, entry in store["files"].items()})
        write_json(metrics_doc, folder / "evaluation" / "metrics.json")
        write_json(plan.to_dict(), folder / "split_plan" / "split_plan.json")
        write_json(versions, folder / "environment" / "versions.json")
        for sub in ("config", "features", "evaluation", "split_plan", "environment"):
            mlflow.log_artifacts(str(folder / sub), artifact_path=sub)
        figures = [("split_plan/split_plan.png", lambda: plan_figure(plan))]
        if len(predictions):  # empty when nothing was evaluated (n_test_splits 0): no test plots
            figures += [
                ("plots/precision_recall_at_k.png", lambda: _precision_at_k_figure(predictions, metrics_doc)),
                ("plots/calibration.png", lambda: _calibration_figure(predictions)),
                ("plots/metrics_over_time.png", lambda: _metrics_over_time_figure(metrics_doc)),
            ]
        for name, draw in figures:
            figure = draw()
            mlflow.log_figure(figure, name)
            plt.close(figure)

        # The input example (one row, float64) is the drift reference's per-feature medians, never a real
        # resident's record.
        example = input_example
        signature = infer_signature(example, model.predict_proba(example))
        artifacts = model.save_artifacts(folder / "model_files")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=EarlySignalModel(),
            artifacts=artifacts,
            signature=signature,
            input_example=example,
            # A model that cannot rank anyone is logged for inspection but never registered.
            registered_model_name=None if metrics_doc.get("not_registered") else config.model.name,
            pip_requirements=[f"{name}=={v}" for name, v in versions.items() if name != "earlysignal"
                              and v != "not installed"],
        )
        if metrics_doc.get("not_registered"):
            mlflow.set_tag("earlysignal.not_registered", str(metrics_doc["not_registered"])[:5000])
            return run.info.run_id, ""
        version = str(info.registered_model_version)
        set_candidate(config.model.name, version)
        client = MlflowClient()
        for key in ("spec_hash", "data_fingerprint", "success_criterion.met", "label", "git_commit"):
            client.set_model_version_tag(config.model.name, version, key, tags[key])
        client.set_model_version_tag(config.model.name, version, "run_id", run.info.run_id)
        mlflow.set_tag("registered_model", f"{config.model.name}/{version}")
        return run.info.run_id, version


def log_json_artifact(obj: Any, artifact_file: str) -> None:
    """Log a JSON object as a run artefact (sorted keys)."""
    mlflow.log_text(json.dumps(obj, indent=2, sort_keys=True, default=str), artifact_file)
