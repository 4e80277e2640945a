"""Two tiny synthetic boroughs, trained and audited once per test session, shared by the audit,
browser and notebook tests.

Both worlds use the same seed and size; one over-records Black residents' police, social care and
early help contacts (recording bias), the other does not. The label is a children's social care
referral within 12 months: at this size a child protection plan has too few positives per group for
the bootstrap intervals to separate a real disparity from noise, a referral has enough.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from earlysignal.config import ProjectConfig, config_from_dict, load_config

REPO = Path(__file__).resolve().parents[1]
RESIDENTS = 5000
BIAS_FACTOR = 3.0
_CACHE: dict[tuple[str, bool], AuditWorld] = {}


@dataclass(frozen=True)
class AuditWorld:
    """A trained, audited model on a tiny borough."""

    config: ProjectConfig
    data_dir: Path
    tracking_uri: str
    model_uri: str
    model_name: str
    model_version: str
    run_id: str
    report: Path
    audit_json: Path
    audit: dict[str, Any]


def world_config(data_dir: Path, biased: bool) -> ProjectConfig:
    """The repository config shrunk for a test: tiny borough, referral label, small model."""
    raw = load_config(REPO / "conf" / "borough.yaml").model_dump(mode="json")
    raw["data"]["dir"] = str(data_dir)
    raw["synth"].update(
        residents=RESIDENTS,
        # Nine years: three before the first as_of, so 3-year windows are complete (windows that
        # reach before the data start are null, docs/features.md).
        years=9,
        seed=7,
        recording_bias=[{"attribute": "ethnicity", "group": "Black", "factor": BIAS_FACTOR}] if biased else [],
    )
    raw["label"].update(name="csc_referral_12m", outcome_types=["csc_referral"], horizon_months=12)
    raw["temporal"].update(first_as_of="2022-01-01", last_as_of="2025-04-01")
    # The test worlds pin every model setting rather than inherit the borough defaults, which are
    # tuned for a full borough: findings depend on the model, and these worlds must not move when
    # the production defaults are retuned.
    raw["model"].update(
        name=f"audit-{'biased' if biased else 'fair'}",
        n_estimators=60,
        learning_rate=0.1,
        num_leaves=31,
        min_child_samples=20,
        feature_fraction=1.0,
        bagging_fraction=1.0,
        bagging_freq=0,
        lambda_l2=0.0,
        early_stopping_rounds=20,
    )
    raw["training"].update(bootstrap=20, history_years=1.5, n_test_splits=4)
    raw["capacity"].update(k=None, top_percent=10)
    raw["audit"].update(bootstrap=200)
    return config_from_dict(raw, source="audit test config")


@contextlib.contextmanager
def tracking_at(uri: str) -> Iterator[None]:
    """Point MLflow at a store for the duration of a block."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before


def audit_world(base: Path, biased: bool) -> AuditWorld:
    """Synthesise, train and audit a tiny borough once per session (cached by base folder)."""
    key = (str(base), biased)
    if key in _CACHE:
        return _CACHE[key]
    from earlysignal.audit import run_audit
    from earlysignal.modeling.train import train_model
    from earlysignal.synth.borough import generate_borough

    root = base / "audit-world"
    store = root / "mlflow"
    store.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{store / 'mlflow.db'}"
    name = "biased" if biased else "fair"
    config = world_config(root / f"borough-{name}", biased)
    with tracking_at(uri):
        generate_borough(config.data.dir, config.synth)
        trained = train_model(config)
        result = run_audit(trained.model_uri, out_dir=root / f"report-{name}")
    world = AuditWorld(
        config=config,
        data_dir=Path(config.data.dir),
        tracking_uri=uri,
        model_uri=trained.model_uri,
        model_name=trained.model_name,
        model_version=trained.model_version,
        run_id=trained.run_id,
        report=result.html_path,
        audit_json=result.json_path,
        audit=result.audit,
    )
    _CACHE[key] = world
    return world
