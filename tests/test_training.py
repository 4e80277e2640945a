"""Temporal training: honest splits, baselines, calibration, the criterion, MLflow logging and registry.

The first half runs on a small synthetic feature matrix with a known signal (fast); the validity
tests at the end run the real pipeline (synth -> features -> train) on small synthetic boroughs.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from synthetic_matrix import make_matrix

from earlysignal.config import config_from_dict, load_config
from earlysignal.modeling.artifacts import load_scoring_model, load_training_artifacts
from earlysignal.modeling.train import train_model
from earlysignal.timesplits import add_months

REPO = Path(__file__).resolve().parents[1]


def small_config(**sections):
    """The repository config with a test label and a small model; sections override keys."""
    raw = load_config(REPO / "conf" / "borough.yaml").model_dump(mode="json")
    raw["label"].update(name="test_label", outcome_types=["csc_referral"], horizon_months=6)
    raw["model"].update(name="test-model", n_estimators=80, learning_rate=0.1, min_child_samples=20)
    raw["training"].update(bootstrap=30, history_years=2, n_test_splits=3)
    for section, values in sections.items():
        raw[section].update(values)
    return config_from_dict(raw)


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    store = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
        yield store


@pytest.fixture(scope="module")
def trained(tracking, tmp_path_factory):
    config = small_config()
    matrix = make_matrix(residents=2500, n_as_of=14, seed=11)
    result = train_model(config, matrix=matrix, data_dir=tmp_path_factory.mktemp("no-ground-truth"))
    return config, matrix, result


def test_training_registers_a_candidate_that_loads_back_with_identical_scores(trained):
    config, matrix, result = trained
    candidate = MlflowClient().get_model_version_by_alias(config.model.name, "candidate")
    assert str(candidate.version) == result.model_version
    rows = matrix.frame.iloc[:500]
    pyfunc = mlflow.pyfunc.load_model(result.model_uri)
    np.testing.assert_array_equal(pyfunc.predict(rows[result.model.feature_columns]), result.model.predict_proba(rows))
    unwrapped = load_scoring_model(f"models:/{config.model.name}@candidate")
    assert unwrapped.feature_columns == matrix.feature_columns
    np.testing.assert_array_equal(unwrapped.contributions(rows), result.model.contributions(rows))
    assert unwrapped.feature_metadata["spec_hash"] == "synthetic-spec"


def test_audit_artifacts_are_logged_at_the_agreed_paths_with_the_agreed_columns(trained):
    config, matrix, result = trained
    artifacts = load_training_artifacts(f"models:/{config.model.name}/{result.model_version}")
    assert artifacts.run_id == result.run_id and artifacts.model_version == result.model_version
    assert artifacts.config == config
    assert artifacts.feature_metadata["feature_columns"] == matrix.feature_columns
    expected = ["resident_id", "as_of", "split", "label", "score", "margin", "score__prior", "score__one_feature",
                "score__logistic", "oracle", "rank", "flagged"]
    assert list(artifacts.test_predictions.columns[: len(expected)]) == expected
    assert {"attr__sex", "attr__ethnicity", "attr__disability", "attr__age_band"} <= set(artifacts.test_predictions)
    assert artifacts.test_predictions["oracle"].isna().all()  # no ground truth in this data
    sample = artifacts.explain_sample
    assert {"resident_id", "as_of", "label", "score", *matrix.feature_columns} <= set(sample.columns)
    np.testing.assert_allclose(load_scoring_model(result.model_uri).predict_proba(sample), sample["score"])
    run_artifacts = {a.path for a in MlflowClient().list_artifacts(result.run_id, "plots")}
    assert {"plots/calibration.png", "plots/precision_recall_at_k.png", "plots/metrics_over_time.png"} <= run_artifacts


def test_test_rows_come_only_from_test_dates_after_every_training_label_window(trained):
    _, matrix, result = trained
    predictions = result.test_predictions
    for split in result.plan.splits:
        rows = predictions[predictions["split"] == split.name]
        assert set(rows["as_of"].dt.date) == set(split.test)
        assert all(add_months(d, 6) <= split.test[0] for d in split.training_dates)
    unlabelled = set(matrix.frame.loc[matrix.frame["label"].isna(), "as_of"].dt.date)
    assert not unlabelled & set(predictions["as_of"].dt.date)
    assert predictions["label"].notna().all()


def test_exactly_capacity_residents_are_flagged_per_as_of_from_the_top_of_the_list(trained):
    config, _, result = trained
    for _, rows in result.test_predictions.groupby("as_of"):
        assert rows["flagged"].sum() == min(config.capacity.k, len(rows))
        assert rows.loc[rows["flagged"], "score"].min() >= rows.loc[~rows["flagged"], "score"].max()
        assert sorted(rows["rank"]) == list(range(1, len(rows) + 1))


def test_criterion_is_reported_in_metrics_json_and_as_an_mlflow_tag(trained):
    config, _, result = trained
    crit = result.metrics["success_criterion"]
    model_value = result.metrics["summary"]["model"][config.success_criterion.metric]["value"]
    assert crit["metric"] == config.success_criterion.metric
    assert crit["value"] == model_value
    assert crit["oracle_value"] is None  # no ground truth, so no ceiling to show
    assert crit["met"] == (model_value >= config.success_criterion.threshold)
    run = MlflowClient().get_run(result.run_id)
    assert run.data.tags["success_criterion.met"] == ("met" if crit["met"] else "not met")
    assert run.data.metrics["success_criterion.met"] == float(crit["met"])
    for key in ("spec_hash", "data_fingerprint", "git_commit", "version.lightgbm"):
        assert run.data.tags[key]
    per_split = MlflowClient().get_metric_history(result.run_id, "split.model.roc_auc")
    assert [m.step for m in per_split] == [1, 2, 3]
    # The name the MLflow UI shows is the mean over test splits, as the report says.
    split_values = [s["scorers"]["model"]["precision_at_capacity"]["value"] for s in result.metrics["splits"]]
    shown = run.data.metrics["model.precision_at_capacity"]
    assert shown == pytest.approx(np.mean(split_values))
    assert shown == result.metrics["summary"]["model"]["precision_at_capacity"]["value"]


def test_metrics_carry_bootstrap_intervals_for_model_and_baselines(trained):
    _, _, result = trained
    summary = result.metrics["summary"]
    for scorer in ("model", "prior", "one_feature", "logistic"):
        entry = summary[scorer]["average_precision"]
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"], scorer
    assert summary["model"]["average_precision"]["value"] > summary["prior"]["average_precision"]["value"]
    assert result.metrics["capacity_k_per_as_of"] == {s["test_as_of"]: s["k"] for s in result.metrics["splits"]}


def test_calibrated_scores_match_observed_rates_on_test_rows(trained):
    _, _, result = trained
    predictions = result.test_predictions
    assert abs(predictions["score"].mean() - predictions["label"].mean()) < 0.03
    assert result.metrics["summary"]["model"]["ece"]["value"] < 0.05


def test_same_seed_and_config_give_the_same_model(tracking):
    config = small_config(training={"bootstrap": 0, "n_test_splits": 1})
    matrix = make_matrix(residents=1500, n_as_of=12, seed=4)
    first = train_model(config, matrix=matrix, log_to_mlflow=False)
    second = train_model(config, matrix=matrix, log_to_mlflow=False)
    pd.testing.assert_frame_equal(first.test_predictions, second.test_predictions)
    assert first.model.booster.model_to_string() == second.model.booster.model_to_string()


def test_a_matrix_without_labels_is_a_clear_error(tracking):
    from earlysignal.modeling.train import TrainingError

    matrix = make_matrix(residents=200, n_as_of=4, unlabelled_tail=4)
    with pytest.raises(TrainingError, match="no labelled rows"):
        train_model(small_config(), matrix=matrix, log_to_mlflow=False)


def test_metrics_json_is_plain_json(trained):
    _, _, result = trained
    json.dumps(result.metrics, allow_nan=False)


# --------------------------------------------------------------------------- validity on the real pipeline

@pytest.mark.slow
def test_null_world_model_is_no_better_than_chance_on_test_rows():
    from modeling_pipeline import trained_borough

    summary = trained_borough("null").result.metrics["summary"]
    assert abs(summary["model"]["roc_auc"]["value"] - 0.5) <= 0.05


@pytest.mark.slow
def test_standard_world_model_beats_every_baseline_on_average_precision():
    from modeling_pipeline import trained_borough

    summary = trained_borough("standard").result.metrics["summary"]
    model_ap = summary["model"]["average_precision"]["value"]
    for baseline in ("prior", "one_feature"):
        assert model_ap > summary[baseline]["average_precision"]["value"], baseline


@pytest.mark.slow
def test_standard_world_model_beats_the_logistic_baseline_on_average_precision():
    """Measured on this 40,000-resident world (seed 21): model AP 0.0438 against the logistic's 0.0365.
    On the world before ADR 0019 (abuse seen by police, A&E and social care alike) the logistic won,
    0.0476 against 0.0432, and this test was a recorded known gap."""
    from modeling_pipeline import trained_borough

    summary = trained_borough("standard").result.metrics["summary"]
    assert summary["model"]["average_precision"]["value"] > summary["logistic"]["average_precision"]["value"]


@pytest.mark.slow
def test_standard_world_model_reaches_most_of_the_oracle_auc():
    from modeling_pipeline import trained_borough

    result = trained_borough("standard").result
    assert result.test_predictions["oracle"].notna().all()
    ratio = result.metrics["oracle_ratio"]["roc_auc"]["value"]
    summary = result.metrics["summary"]
    assert ratio == pytest.approx(summary["model"]["roc_auc"]["value"] / summary["oracle"]["roc_auc"]["value"])
    # The oracle knows the hidden states; since ADR 0019 most abuse is hidden from police, A&E and social
    # care, so events carry less of it. Measured here: 0.889 (model 0.660, oracle 0.742); before the world
    # change 0.87-0.92 across seeds, when this bound was 0.9 (docs/modeling.md).
    assert ratio >= 0.85
    crit = result.metrics["success_criterion"]
    assert crit["oracle_value"] == summary["oracle"][crit["metric"]]["value"]


# --------------------------------------------------------------------------- scores, ties, degenerate models, evaluation store


def test_test_scores_are_probabilities_strictly_between_zero_and_one(trained):
    _, _, result = trained
    scores = result.test_predictions["score"]
    assert scores.min() > 0 and scores.max() < 1


def test_the_prior_baseline_gains_no_lift_from_the_order_of_tied_scores(trained):
    _, _, result = trained
    for split in result.metrics["splits"]:
        prior = split["scorers"]["prior"]
        assert prior["lift_at_capacity"]["value"] == pytest.approx(1.0)
        assert prior["precision_at_capacity"]["value"] == pytest.approx(split["base_rate"])


def test_a_model_with_no_splits_is_never_registered_as_candidate_and_the_run_says_why(tracking):
    from earlysignal.modeling.train import TrainingError

    config = small_config(model={"name": "no-splits-model", "min_child_samples": 1_000_000},
                          training={"bootstrap": 0, "n_test_splits": 1})
    matrix = make_matrix(residents=600, n_as_of=10, seed=5)
    with pytest.raises(TrainingError, match="not registered as candidate: the model has no splits"):
        train_model(config, matrix=matrix)
    client = MlflowClient()
    assert client.search_model_versions("name='no-splits-model'") == []
    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.`earlysignal.not_registered` != ''",
                              output_format="list")
    assert any("min_child_samples" in r.data.tags["earlysignal.not_registered"] for r in runs)


def _all_artifact_files(client: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    files = []
    for item in client.list_artifacts(run_id, path):
        files.extend(_all_artifact_files(client, run_id, item.path) if item.is_dir else [item.path])
    return files


def test_no_resident_level_artefact_is_logged_to_mlflow(trained, tmp_path):
    _, _, result = trained
    client = MlflowClient()
    files = _all_artifact_files(client, result.run_id)
    assert "evaluation/metrics.json" in files and "evaluation/store.json" in files
    local = Path(mlflow.artifacts.download_artifacts(run_id=result.run_id, dst_path=str(tmp_path)))
    for path in local.rglob("*.parquet"):
        columns = set(pd.read_parquet(path).columns)
        assert not columns & {"resident_id", "label", "as_of"}, f"{path.relative_to(local)} is resident-level"
    resident_ids = set(result.test_predictions["resident_id"].astype(str))
    for path in local.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", errors="ignore")
            found = [rid for rid in list(resident_ids)[:300] if rid in text]
            assert not found, f"{path.relative_to(local)} holds resident ids {found[:3]}"


def test_resident_level_evaluation_data_is_in_the_local_store_with_the_hashes_mlflow_holds(trained, tracking):
    from earlysignal.evaluation_store import store_root

    config, _, result = trained
    folder = store_root(None, f"sqlite:///{tracking / 'mlflow.db'}") / result.run_id
    store = json.loads(Path(mlflow.artifacts.download_artifacts(run_id=result.run_id,
                                                                artifact_path="evaluation/store.json")).read_text())
    assert store["retention_days"] == config.evaluation.retention_days
    tags = MlflowClient().get_run(result.run_id).data.tags
    for name in ("test_predictions", "explain_sample"):
        assert (folder / f"{name}.parquet").exists()
        assert tags[f"evaluation.sha256.{name}"] == store["files"][name]["sha256"]
    stored = pd.read_parquet(folder / "test_predictions.parquet")
    pd.testing.assert_frame_equal(stored, result.test_predictions)


def test_one_feature_baseline_prefers_a_whole_record_count_over_a_short_window_count():
    from earlysignal.modeling.baselines import choose_one_feature

    columns = [
        "static__age",
        "resident__rent__statement__count__90d",
        "resident__rent__statement__last__90d",
        "resident__asc__referral__count__all",
    ]
    assert choose_one_feature(columns) == "resident__asc__referral__count__all"
    assert choose_one_feature(columns + ["household__police__callout__count__all"]) == (
        "household__police__callout__count__all"
    )
    assert choose_one_feature(columns[:3]) == "resident__rent__statement__count__90d"


def test_the_console_summary_never_cuts_a_metric_name_in_a_120_column_log(monkeypatch) -> None:
    import io

    from rich.console import Console

    from earlysignal.modeling import metrics as metric_defs
    from earlysignal.modeling import train as train_module

    out = io.StringIO()
    monkeypatch.setattr(train_module, "console", Console(file=out, width=120, color_system=None))
    interval = {"value": 0.812, "ci_low": 0.741, "ci_high": 0.884}
    summary = {s: {m: interval for m in metric_defs.METRIC_NAMES} for s in train_module.SCORERS}
    doc = {"summary": summary, "success_criterion": {"met": False, "statement": "NOT MET", "metric": "lift_at_capacity"}}
    train_module._print_summary(doc, None)
    text = out.getvalue()
    assert "…" not in text
    for metric in metric_defs.METRIC_NAMES:
        assert f"│ {metric} " in text
