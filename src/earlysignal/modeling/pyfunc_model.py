"""The logged model: a LightGBM booster, its calibrator and the feature spec, as an MLflow pyfunc.

`predict` returns calibrated probabilities. The spec (the feature-matrix sidecar) and the drift
reference travel inside the model's artefacts, so scoring rebuilds exactly the features the model
was trained on, whatever the current config says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow.pyfunc
import numpy as np
import pandas as pd

from earlysignal.modeling.calibration import Calibrator

ARTIFACT_FILES = {
    "booster": "booster.txt",
    "calibrator": "calibrator.json",
    "feature_spec": "feature_spec.json",
    "drift_reference": "drift_reference.json",
    "model_info": "model_info.json",
}


class EarlySignalModel(mlflow.pyfunc.PythonModel):
    """Calibrated LightGBM risk model with per-feature contributions (log-odds)."""

    def __init__(self) -> None:
        # Logged empty: the state lives in plain artefact files (text booster, JSON calibrator),
        # so nothing version-fragile is pickled.
        self.booster: lgb.Booster | None = None
        self.calibrator: Calibrator | None = None
        self.feature_metadata: dict[str, Any] = {}
        self.drift_reference: dict[str, Any] = {}
        self.model_info: dict[str, Any] = {}

    @classmethod
    def from_parts(
        cls,
        booster: lgb.Booster,
        calibrator: Calibrator,
        feature_metadata: dict[str, Any],
        drift_reference: dict[str, Any] | None = None,
        model_info: dict[str, Any] | None = None,
    ) -> EarlySignalModel:
        """An in-memory model (used during training, before logging)."""
        model = cls()
        model.booster = booster
        model.calibrator = calibrator
        model.feature_metadata = feature_metadata
        model.drift_reference = drift_reference or {}
        model.model_info = model_info or {}
        return model

    def save_artifacts(self, folder: Path) -> dict[str, str]:
        """Write the model's state as files; return the artifacts mapping for mlflow.pyfunc.log_model."""
        folder.mkdir(parents=True, exist_ok=True)
        assert self.booster is not None and self.calibrator is not None
        paths = {key: folder / name for key, name in ARTIFACT_FILES.items()}
        paths["booster"].write_text(self.booster.model_to_string(), encoding="utf-8")
        for key, obj in (
            ("calibrator", self.calibrator.to_dict()),
            ("feature_spec", self.feature_metadata),
            ("drift_reference", self.drift_reference),
            ("model_info", self.model_info),
        ):
            paths[key].write_text(json.dumps(obj, indent=1, sort_keys=True, default=str), encoding="utf-8")
        return {key: str(path) for key, path in paths.items()}

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        """Rebuild booster, calibrator, spec and drift reference from the logged files."""
        artifacts = context.artifacts
        self.booster = lgb.Booster(model_str=Path(artifacts["booster"]).read_text(encoding="utf-8"))
        self.calibrator = Calibrator.from_dict(_read_json(artifacts["calibrator"]))
        self.feature_metadata = _read_json(artifacts["feature_spec"])
        self.drift_reference = _read_json(artifacts["drift_reference"])
        self.model_info = _read_json(artifacts["model_info"])

    @property
    def feature_columns(self) -> list[str]:
        """The model's input columns, in order."""
        return list(self.feature_metadata["feature_columns"])

    def _matrix(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.feature_columns if c not in frame.columns]
        if missing:
            raise KeyError(f"input lacks {len(missing)} model feature column(s), e.g. {missing[:3]}")
        return frame[self.feature_columns].to_numpy(dtype=np.float64)

    def raw_margin(self, frame: pd.DataFrame) -> np.ndarray:
        """The booster's raw score (log-odds), before calibration."""
        assert self.booster is not None
        return self.booster.predict(self._matrix(frame), raw_score=True)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities of the label for each row."""
        assert self.calibrator is not None
        return self.calibrator.predict(self.raw_margin(frame))

    def contributions(self, frame: pd.DataFrame, num_threads: int = 0) -> np.ndarray:
        """LightGBM pred_contrib: one column per feature plus the bias last, on the log-odds scale.

        TreeSHAP is the slow part of scoring (~0.3-0.8 ms per row), so it uses every core by
        default (num_threads=0); rows are independent, so the result does not depend on threads.
        """
        assert self.booster is not None
        return self.booster.predict(self._matrix(frame), pred_contrib=True, num_threads=num_threads)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        """Calibrated probabilities (the pyfunc entry point)."""
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return self.predict_proba(frame)


def _read_json(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))
