"""The MLflow Project exposes the CLI stages; `mlflow run . -e train` trains and registers a candidate."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def test_mlproject_declares_an_entry_point_per_stage_and_each_calls_the_cli():
    from mlflow.projects._project_spec import load_project

    project = load_project(str(REPO))
    assert {"synth", "features", "train", "audit", "score"} <= set(project._entry_points)
    for name, entry in project._entry_points.items():
        assert entry.command.startswith(f"earlysignal {name} --config {{config}}"), name
    assert yaml.safe_load((REPO / "python_env.yaml").read_text())["dependencies"] == ["-e ."]


@pytest.mark.slow
def test_mlflow_run_train_entry_point_registers_a_candidate(tmp_path):
    from mlflow.tracking import MlflowClient
    from modeling_pipeline import pipeline_config

    from earlysignal.config import SynthSection
    from earlysignal.synth import generate_borough

    data = tmp_path / "borough"
    generate_borough(data, SynthSection(residents=6000, years=3, seed=5))
    raw = pipeline_config(data, "project-model", temporal={"first_as_of": "2024-01-01"},
                          training={"n_test_splits": 1, "bootstrap": 0, "history_years": 1})
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # mlflow.set_experiment exports MLFLOW_EXPERIMENT_ID; earlier tests' values must not reach the child.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=uri, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    completed = subprocess.run(
        [sys.executable, "-m", "mlflow", "run", str(REPO), "-e", "train", "--env-manager", "local",
         "-P", f"config={config}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias("project-model", "candidate")
    run = client.get_run(version.run_id)
    assert run.data.tags["earlysignal.stage"] == "train"
    assert run.data.tags["mlflow.project.entryPoint"] == "train"
