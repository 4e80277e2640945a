"""Training on a stratified sample: every positive, a share of negatives weighted back to the whole.

The sampled fit must match the full fit within the full fit's intervals, score every test row, and
be as reproducible as the full fit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synthetic_matrix import make_matrix
from test_training import small_config

from earlysignal.modeling.train import negative_sample, train_model


def test_negative_sample_keeps_every_positive_and_weights_negatives_back_to_their_full_count():
    y = np.array([0] * 900 + [1] * 100)
    keep, weight = negative_sample(y, 0.2, seed=3)
    assert set(np.flatnonzero(y == 1)) <= set(keep)
    assert (y[keep] == 0).sum() == 180
    assert np.all(np.diff(keep) > 0)
    assert weight[y[keep] == 1].tolist() == [1.0] * 100
    assert weight[y[keep] == 0].sum() == pytest.approx(900.0)


def test_negative_sample_is_seeded_and_a_fraction_of_one_keeps_every_row_unweighted():
    y = np.random.default_rng(0).integers(0, 2, 500)
    np.testing.assert_array_equal(negative_sample(y, 0.5, seed=9)[0], negative_sample(y, 0.5, seed=9)[0])
    assert not np.array_equal(negative_sample(y, 0.5, seed=9)[0], negative_sample(y, 0.5, seed=10)[0])
    keep, weight = negative_sample(y, 1.0, seed=9)
    np.testing.assert_array_equal(keep, np.arange(500))
    assert weight.tolist() == [1.0] * 500


def test_negative_sample_rejects_a_fraction_outside_zero_to_one():
    with pytest.raises(ValueError, match="negative_sample_fraction"):
        negative_sample(np.array([0, 1]), 0.0, seed=1)


@pytest.fixture(scope="module")
def full_and_sampled():
    matrix = make_matrix(residents=2500, n_as_of=14, seed=11)
    full = train_model(small_config(), matrix=matrix, log_to_mlflow=False)
    sampled_config = small_config(training={"negative_sample_fraction": 0.25})
    sampled = train_model(sampled_config, matrix=matrix, log_to_mlflow=False)
    return matrix, sampled_config, full, sampled


@pytest.mark.parametrize("metric", ["roc_auc", "precision_at_capacity", "recall_at_capacity", "brier"])
def test_a_fit_on_a_quarter_of_the_negatives_is_within_the_full_fits_interval(full_and_sampled, metric):
    _, _, full, sampled = full_and_sampled
    reference = full.metrics["summary"]["model"][metric]
    value = sampled.metrics["summary"]["model"][metric]["value"]
    assert reference["ci_low"] <= value <= reference["ci_high"]


def test_a_fit_on_a_quarter_of_the_negatives_is_calibrated_no_worse_than_the_full_fits_interval(full_and_sampled):
    # ECE is an error with a floor at 0 and its bootstrap replicates are biased upwards (resampling adds
    # noise to every bin), so the full fit's interval can lie above both point values: the test is one-sided.
    _, _, full, sampled = full_and_sampled
    assert sampled.metrics["summary"]["model"]["ece"]["value"] <= full.metrics["summary"]["model"]["ece"]["ci_high"]


def test_sampled_calibrated_scores_match_observed_rates_on_test_rows(full_and_sampled):
    _, _, _, sampled = full_and_sampled
    predictions = sampled.test_predictions
    # Without the weights the booster would overstate risk ~4x; calibration on all rows must undo it anyway.
    assert abs(predictions["score"].mean() - predictions["label"].mean()) < 0.03


def test_sampling_scores_every_test_row_and_learns_from_fewer_fit_rows(full_and_sampled):
    _, _, full, sampled = full_and_sampled
    keys = ["resident_id", "as_of", "split", "label"]
    pd.testing.assert_frame_equal(full.test_predictions[keys], sampled.test_predictions[keys])
    doc = sampled.metrics["sampling"]
    assert doc["negative_fraction"] == 0.25
    assert set(doc["fit_rows_per_split"]) == {*sampled.metrics["best_iteration_per_split"], "final"}
    for rows in doc["fit_rows_per_split"].values():
        assert rows["rows_used"] < 0.5 * rows["fit_rows"]
    for rows in full.metrics["sampling"]["fit_rows_per_split"].values():
        assert rows["rows_used"] == rows["fit_rows"]


def test_sampled_training_gives_the_same_model_run_to_run(full_and_sampled):
    matrix, config, _, sampled = full_and_sampled
    again = train_model(config, matrix=matrix, log_to_mlflow=False)
    assert again.model.booster.model_to_string() == sampled.model.booster.model_to_string()
    pd.testing.assert_frame_equal(again.test_predictions, sampled.test_predictions)
