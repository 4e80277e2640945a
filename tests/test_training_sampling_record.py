"""A sampled training run says so: in MLflow (param, tag, metrics.json) and in the audit report."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from synthetic_matrix import make_matrix
from test_training import small_config

from earlysignal.audit import build_audit
from earlysignal.config import load_config
from earlysignal.modeling.train import train_model
from earlysignal.report import render_audit_html

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sampled_run(tmp_path_factory):
    store = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
        config = small_config(training={"negative_sample_fraction": 0.5, "n_jobs": 2})
        result = train_model(config, matrix=make_matrix(residents=1200, n_as_of=12, seed=8),
                             data_dir=tmp_path_factory.mktemp("no-ground-truth"))
        run = mlflow.get_run(result.run_id)
        metrics_json = json.loads(Path(mlflow.artifacts.download_artifacts(
            run_id=result.run_id, artifact_path="evaluation/metrics.json",
            dst_path=str(tmp_path_factory.mktemp("download")))).read_text(encoding="utf-8"))
    return result, run, metrics_json


def test_mlflow_records_the_negative_fraction_and_the_rows_each_fit_used(sampled_run):
    result, run, metrics_json = sampled_run
    assert run.data.params["training.negative_sample_fraction"] == "0.5"
    assert run.data.params["training.n_jobs"] == "2"
    rows = result.metrics["sampling"]["fit_rows_per_split"]
    assert set(rows) == {"split_1", "split_2", "split_3", "final"}
    tag = run.data.tags["training.sampling"]
    assert tag.startswith("negative fraction 0.5; booster fit rows used/total: ")
    for name, r in rows.items():
        assert f"{name} {r['rows_used']}/{r['fit_rows']}" in tag
        assert r["rows_used"] < r["fit_rows"]
    assert metrics_json["sampling"] == result.metrics["sampling"]


def _audit_html(metrics_extra: dict) -> str:
    rng = np.random.default_rng(0)
    n = 2000
    predictions = pd.DataFrame({
        "resident_id": [f"R{i:05d}" for i in range(n)], "as_of": pd.Timestamp("2025-01-01"), "split": "split_1",
        "label": (rng.random(n) < 0.1).astype("int8"), "score": rng.random(n),
        "attr__sex": rng.choice(["F", "M"], n), "attr__ethnicity": rng.choice(["White", "Black"], n),
    })
    predictions["rank"] = predictions["score"].rank(ascending=False, method="first").astype(int)
    predictions["flagged"] = predictions["rank"] <= 200
    sample = predictions.assign(x=rng.normal(size=n))
    document = build_audit(
        config=load_config(REPO / "conf" / "borough.yaml"),
        model={"name": "m", "version": "4", "run_id": "run"},
        predictions=predictions,
        metrics={"summary": {}, "splits": [], **metrics_extra,
                 "success_criterion": {"metric": "precision_at_capacity", "threshold": 0.65}},
        feature_metadata={"feature_columns": ["x"], "features": [{"name": "x", "description": "x is {value}"}]},
        explain_sample=sample,
        contributions=np.column_stack([sample["x"], np.zeros(n)]),
        approval=None,
    )
    assert "fit_rows_per_split" not in (document["performance"]["sampling"] or {})
    return render_audit_html(document)


def test_the_audit_report_says_the_model_learnt_from_half_of_the_other_rows(sampled_run):
    result, _, _ = sampled_run
    html = _audit_html({"sampling": result.metrics["sampling"]})
    assert "Training sample: the model learnt from every escalation and 50% of the other rows" in html
    assert "Training sample:" not in _audit_html({})
