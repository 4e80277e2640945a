"""Training on small and odd data: a split with a one-class slice is skipped with a message,
n_test_splits 0 trains only the final model (NOT EVALUATED), and an empty input says what is empty."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from earlysignal.config import config_from_dict, load_config
from earlysignal.features import FeatureMatrix
from earlysignal.modeling.train import TrainingError, train_model
from synthetic_matrix import make_matrix

REPO = Path(__file__).resolve().parents[1]


def _config(**training):
    raw = load_config(REPO / "conf" / "borough.yaml").model_dump(mode="json")
    raw["label"].update(name="test_label", outcome_types=["csc_referral"], horizon_months=6)
    raw["model"].update(name="test-model", n_estimators=40, learning_rate=0.1, min_child_samples=20)
    raw["training"].update({"bootstrap": 0, "history_years": 2, "n_test_splits": 3, **training})
    return config_from_dict(raw)


def _ten_dates_with_one_class_on_the_seventh(residents: int = 400) -> FeatureMatrix:
    matrix = make_matrix(residents=residents, n_as_of=10, seed=5, unlabelled_tail=0)
    frame = matrix.frame
    dates = sorted(frame["as_of"].unique())
    seventh = frame["as_of"] == dates[7]
    # The 8th date (index 7) keeps 30 rows, all negative: the last split's validation slice and the
    # first split's test slice.
    drop = frame.index[seventh][30:]
    frame = frame.drop(drop).reset_index(drop=True)
    frame.loc[frame["as_of"] == dates[7], "label"] = 0
    return FeatureMatrix(frame, matrix.metadata)


def test_split_with_a_single_class_slice_is_skipped_with_a_message(capsys):
    matrix = _ten_dates_with_one_class_on_the_seventh()
    result = train_model(_config(), matrix=matrix, log_to_mlflow=False)
    skipped = result.metrics["skipped_splits"]
    assert [(s["split"], s["test_as_of"]) for s in skipped] == [("split_1", "2021-10-01"), ("split_3", "2022-04-01")]
    assert "test slice (30 rows) has only one label value" in skipped[0]["reason"]
    assert "validation slice (30 rows) has only one label value" in skipped[1]["reason"]
    assert [s["split"] for s in result.metrics["splits"]] == ["split_2"]
    assert set(result.test_predictions["split"]) == {"split_2"}
    assert result.metrics["evaluated"] is True
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines on stderr
    assert "Skipped split_1 (test as_of 2021-10-01)" in err and "Skipped split_3 (test as_of 2022-04-01)" in err
    scores = result.model.predict_proba(matrix.frame[matrix.feature_columns].head(5))
    assert len(scores) == 5 and np.all((scores >= 0) & (scores <= 1))


def test_zero_test_splits_trains_only_the_final_model_and_says_not_evaluated():
    matrix = make_matrix(residents=300, n_as_of=6, seed=3, unlabelled_tail=0)
    result = train_model(_config(n_test_splits=0), matrix=matrix, log_to_mlflow=False)
    assert result.plan.splits == ()
    assert result.metrics["evaluated"] is False
    assert result.metrics["splits"] == [] and result.metrics["summary"] == {}
    assert result.criterion_met is None
    assert result.metrics["success_criterion"]["statement"].startswith(
        "NOT EVALUATED: training.n_test_splits is 0")
    assert len(result.test_predictions) == 0
    assert result.model_version == ""
    assert len(result.model.predict_proba(matrix.frame[matrix.feature_columns].head(3))) == 3


def test_empty_matrix_says_no_cohort_rows_and_never_blames_the_extract_date():
    matrix = make_matrix(residents=50, n_as_of=4, unlabelled_tail=0)
    empty = FeatureMatrix(matrix.frame.iloc[:0].copy(), {**matrix.metadata, "as_of_dates": ["2020-01-01"] * 4})
    with pytest.raises(TrainingError) as error:
        train_model(_config(), matrix=empty, log_to_mlflow=False)
    message = str(error.value)
    assert "0 rows: nobody met the cohort rules" in message and "extract" not in message


def test_all_censored_matrix_says_censored_not_extract_date():
    matrix = make_matrix(residents=50, n_as_of=4, unlabelled_tail=4)
    frame = matrix.frame.copy()
    frame["label_window_end"] = (frame["as_of"] + pd.DateOffset(months=6)).astype("datetime64[us]")
    frame["label_known_at"] = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us]")
    frame["label_censored"] = True
    with pytest.raises(TrainingError) as error:
        train_model(_config(), matrix=FeatureMatrix(frame, {**matrix.metadata, "extract_date": "2030-01-01"}),
                    log_to_mlflow=False)
    assert str(error.value) == (
        "the feature matrix has no labelled rows (200 rows, none with a known label); 200 row(s) are censored "
        "(follow-up ended inside the window: moved away, died or label.censoring.end_column): see label.censoring"
    )


def test_audit_of_a_model_with_no_test_split_says_not_evaluated(tmp_path, monkeypatch):
    from earlysignal.audit import run_audit

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    matrix = make_matrix(residents=300, n_as_of=6, seed=3, unlabelled_tail=0)
    trained = train_model(_config(n_test_splits=0), matrix=matrix, data_dir=tmp_path / "no-data")
    result = run_audit(trained.model_uri, out_dir=tmp_path / "report")
    summary = result.audit["summary"]
    assert summary["evaluated"] is False and summary["criterion"]["met"] is None
    assert summary["criterion"]["statement"].startswith("NOT EVALUATED")
    assert result.audit["fairness"]["findings"] == [] and result.audit["performance"]["splits"] == []
    html = result.html_path.read_text(encoding="utf-8")
    assert re.search(r"Pre-registered success criterion:\s+NOT EVALUATED</p>", html)
    assert html.count("NOT EVALUATED") >= 3  # criterion, performance and fairness say so
