"""The real pipeline (synth -> features -> train) on small synthetic boroughs, built once per test session.

Shared by the training, scoring and MLflow-project tests. The label is an s47 enquiry within 6
months rather than the default child protection plan: at 40,000 residents a borough has about 20
new plans per as_of, too few to measure AUC within +-0.05, while s47 enquiries (the step before a
plan, driven by the same household states) give about 80. Referrals are more common still but
their oracle AUC is only ~0.68, which leaves little signal to compare model and baselines on.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from earlysignal.config import ProjectConfig, SynthSection, config_from_dict

REPO = Path(__file__).resolve().parents[1]
RESIDENTS = 40_000
YEARS = 5


@dataclass
class TrainedBorough:
    data_dir: Path
    config: ProjectConfig
    config_path: Path
    tracking_uri: str
    result: object  # earlysignal.modeling.train.TrainingResult


def _root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="earlysignal-modeling-tests-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


@functools.cache
def session_root() -> Path:
    return _root()


def pipeline_config(data_dir: Path, model_name: str, **overrides: dict) -> dict:
    """The repository config, pointed at a small borough, with a small model (plain dict)."""
    raw = yaml.safe_load((REPO / "conf" / "borough.yaml").read_text(encoding="utf-8"))
    raw["data"]["dir"] = str(data_dir)
    raw["temporal"].update(first_as_of="2022-01-01", last_as_of="2025-10-01")
    raw["label"].update(name="s47_within_6m", outcome_types=["s47_enquiry"], horizon_months=6)
    # Few positives per as_of: shallow trees with large leaves generalise; early stopping picks the size.
    raw["model"].update(name=model_name, n_estimators=300, learning_rate=0.05, num_leaves=4,
                        min_child_samples=200, early_stopping_rounds=30)
    # One LightGBM thread: the data is small, and OpenMP threads spin badly on a busy shared machine.
    raw["training"].update(history_years=2, n_test_splits=4, bootstrap=50, num_threads=1)
    raw["mlflow"]["experiment"] = "modeling-tests"
    for section, values in overrides.items():
        raw[section].update(values)
    return raw


@functools.cache
def trained_borough(world: str) -> TrainedBorough:
    """A borough of the given world ('standard' or 'null'), its features and a registered model."""
    from earlysignal.modeling.train import train_model
    from earlysignal.synth import generate_borough

    root = session_root()
    data_dir = root / f"borough-{world}"
    generate_borough(data_dir, SynthSection(residents=RESIDENTS, years=YEARS, seed=21, world=world))
    raw = pipeline_config(data_dir, f"{world}-model")
    config_path = root / f"{world}.yaml"
    config_path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    config = config_from_dict(raw)
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    try:
        result = train_model(config, data_dir=data_dir)
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous
    return TrainedBorough(data_dir, config, config_path, tracking_uri, result)
