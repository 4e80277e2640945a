"""Read back what a training run logged, by registered model URI (for audit, scoring and notebooks).

Resident-level evaluation data comes from the local evaluation store, checked against the hashes
the run logged (earlysignal.evaluation_store).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from earlysignal.config import ProjectConfig, config_from_dict
from earlysignal.errors import EarlySignalError
from earlysignal.evaluation_store import read_evaluation, store_root
from earlysignal.modeling.pyfunc_model import EarlySignalModel
from earlysignal.modeling.registry import resolve_model_version
from earlysignal.tracking import configure_tracking


@dataclass
class TrainingArtifacts:
    """A registered model version and the evaluation its training run logged."""

    run_id: str
    model_uri: str
    model_name: str
    model_version: str
    config: ProjectConfig
    feature_metadata: dict[str, Any]
    test_predictions: pd.DataFrame = field(repr=False)
    metrics: dict[str, Any] = field(repr=False)
    explain_sample: pd.DataFrame = field(repr=False)


def _download(run_id: str, path: str) -> Path:
    # A progress bar per small file is noise on the console.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path))
    except Exception as error:  # MLflow raises several types for a missing artefact
        raise EarlySignalError(
            f"training run {run_id} has no artefact {path!r}; was it logged by `earlysignal train`? ({error})"
        ) from None


def load_training_artifacts(model_uri: str) -> TrainingArtifacts:
    """The training artefacts behind models:/name/3 or models:/name@alias."""
    configure_tracking()
    version = resolve_model_version(model_uri)
    run_id = version.run_id
    if not run_id:
        raise EarlySignalError(f"{model_uri} (version {version.version}) is not linked to a training run")
    config_raw = json.loads(_download(run_id, "config/config.json").read_text(encoding="utf-8"))
    config = config_from_dict(config_raw, source=f"config of run {run_id}")
    manifest = json.loads(_download(run_id, "evaluation/store.json").read_text(encoding="utf-8"))
    recorded = Path(manifest["root"])
    # The store as recorded at training time, else where this machine's config and tracking URI put it.
    root = recorded if (recorded / run_id).is_dir() else store_root(config.evaluation.dir, mlflow.get_tracking_uri())
    evaluation = read_evaluation(manifest, root)
    return TrainingArtifacts(
        run_id=run_id,
        model_uri=f"models:/{version.name}/{version.version}",
        model_name=version.name,
        model_version=str(version.version),
        config=config,
        feature_metadata=json.loads(_download(run_id, "features/feature_spec.json").read_text(encoding="utf-8")),
        test_predictions=evaluation["test_predictions"],
        metrics=json.loads(_download(run_id, "evaluation/metrics.json").read_text(encoding="utf-8")),
        explain_sample=evaluation["explain_sample"],
    )


def load_scoring_model(model_uri: str) -> EarlySignalModel:
    """The unwrapped model: .feature_columns, .predict_proba(frame), .contributions(frame), .raw_margin(frame)."""
    configure_tracking()
    version = resolve_model_version(model_uri)
    pinned = f"models:/{version.name}/{version.version}"
    model = mlflow.pyfunc.load_model(pinned).unwrap_python_model()
    if not isinstance(model, EarlySignalModel):
        raise EarlySignalError(f"{model_uri} is not an Early Signal model (found {type(model).__name__})")
    return model
