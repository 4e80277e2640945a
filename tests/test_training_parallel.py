"""Fitting the test splits and the final model in worker processes (training.n_jobs) changes nothing:
every fit is seeded and single-threaded, so two processes give exactly what one gives, run after run."""

from __future__ import annotations

import pandas as pd
import pytest
from synthetic_matrix import make_matrix
from test_training import small_config

from earlysignal.errors import ConfigError
from earlysignal.features import write_feature_matrix
from earlysignal.modeling.train import train_model


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    matrix = make_matrix(residents=1500, n_as_of=12, seed=5)
    sampling = {"negative_sample_fraction": 0.5}
    two = small_config(training={**sampling, "n_jobs": 2})
    one = small_config(training={**sampling, "n_jobs": 1})
    first = train_model(two, matrix=matrix, log_to_mlflow=False)
    # The second run reads the matrix from its file (features column by column, shared with the workers).
    path = write_feature_matrix(matrix, tmp_path_factory.mktemp("matrix") / "matrix.parquet")
    second = train_model(two, matrix=path, log_to_mlflow=False)
    serial = train_model(one, matrix=matrix, log_to_mlflow=False)
    return first, second, serial


def _same(a, b) -> None:
    assert a.model.booster.model_to_string() == b.model.booster.model_to_string()
    assert a.model.calibrator.to_dict() == b.model.calibrator.to_dict()
    pd.testing.assert_frame_equal(a.test_predictions, b.test_predictions)
    assert a.metrics["summary"] == b.metrics["summary"]
    assert a.metrics["best_iteration_per_split"] == b.metrics["best_iteration_per_split"]
    assert a.metrics["sampling"] == b.metrics["sampling"]


def test_two_training_runs_in_two_processes_one_from_the_matrix_file_give_identical_results(runs):
    first, second, _ = runs
    _same(first, second)


def test_training_in_two_processes_gives_exactly_what_one_process_gives(runs):
    first, _, serial = runs
    _same(first, serial)


def test_every_split_and_the_final_model_come_back_from_the_workers(runs):
    first, _, _ = runs
    splits = set(first.metrics["best_iteration_per_split"])
    assert splits == {"split_1", "split_2", "split_3"}
    assert set(first.metrics["sampling"]["fit_rows_per_split"]) == splits | {"final"}
    assert set(first.test_predictions["split"]) == splits
    assert first.test_predictions["score__logistic"].notna().all()


def test_n_jobs_below_one_is_refused():
    with pytest.raises(ConfigError, match=r"training.n_jobs: Input should be greater than 0"):
        small_config(training={"n_jobs": 0})
