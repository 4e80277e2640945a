"""Metrics agree with scikit-learn, handle ties deterministically, and bootstrap reproducibly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from earlysignal.config import CapacitySection
from earlysignal.modeling.calibration import Calibrator
from earlysignal.modeling.metrics import RankedList, bootstrap_replicates, capacity_k, interval, ranks, tie_order_key


def _ids(n):
    return np.array([f"R{i:05d}" for i in range(n)])


@settings(max_examples=40, deadline=None)
@given(
    labels=st.lists(st.integers(0, 1), min_size=4, max_size=200),
    resolution=st.sampled_from([2, 5, 100]),
    seed=st.integers(0, 10_000),
)
def test_auc_average_precision_and_brier_match_scikit_learn_with_ties(labels, resolution, seed):
    y = np.array(labels)
    if y.min() == y.max():
        return
    p = np.round(np.random.default_rng(seed).random(len(y)) * resolution) / resolution  # many ties
    m = RankedList.build(y, p, _ids(len(y)), k=3).metrics()
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["average_precision"] == pytest.approx(average_precision_score(y, p))
    assert m["brier"] == pytest.approx(brier_score_loss(y, p))


def test_written_list_breaks_ties_by_resident_id_but_precision_at_k_counts_them_as_ties():
    y = np.array([1, 0, 0, 1])
    score = np.array([0.5, 0.5, 0.5, 0.9])
    ids = np.array(["R4", "R1", "R2", "R3"])
    assert list(ranks(score, ids)) == [4, 2, 3, 1]
    m = RankedList.build(y, score, ids, k=2).metrics()
    # R3 (0.9, positive) takes one place; the second goes to one of three tied rows, one of them positive.
    assert m["precision_at_capacity"] == pytest.approx((1 + 1 / 3) / 2)
    assert m["recall_at_capacity"] == pytest.approx((1 + 1 / 3) / 2)
    # Renaming residents (which changes the written order of the tie) changes no metric.
    renamed = RankedList.build(y, score, np.array(["R1", "R4", "R3", "R2"]), k=2).metrics()
    assert renamed["precision_at_capacity"] == m["precision_at_capacity"]


def test_a_constant_scorer_gains_no_lift_from_the_order_of_resident_ids():
    # Every positive has the lowest ids: a list in id order would show lift 10 at k=10.
    y = np.array([1] * 10 + [0] * 90)
    m = RankedList.build(y, np.full(100, 0.1), _ids(100), k=10).metrics()
    assert m["precision_at_capacity"] == pytest.approx(0.1)
    assert m["lift_at_capacity"] == pytest.approx(1.0)
    assert m["roc_auc"] == pytest.approx(0.5)


def test_ties_in_score_and_margin_are_ties_but_a_different_margin_orders_them():
    y = np.array([0, 1, 0, 1])
    score = np.array([0.3, 0.3, 0.3, 0.3])  # one isotonic plateau
    margin = np.array([0.1, 0.4, 0.2, 0.3])
    m = RankedList.build(y, score, _ids(4), k=2, tiebreak=margin).metrics()
    assert m["precision_at_capacity"] == 1.0  # the two highest margins are the positives
    assert m["roc_auc"] == 1.0
    key = tie_order_key(score, margin)
    assert roc_auc_score(y, key) == m["roc_auc"]
    assert list(tie_order_key(np.array([0.2, 0.2, 0.5]), np.array([1.0, 1.0, 0.0]))) == [1.0, 1.0, 2.0]


def test_tiebreak_key_orders_rows_with_equal_scores_before_resident_id():
    score = np.array([0.2, 0.2, 0.2])
    margin = np.array([-1.0, 3.0, 0.5])
    assert list(ranks(score, _ids(3), tiebreak=margin)) == [3, 1, 2]


def test_capacity_takes_the_smaller_of_k_and_top_percent():
    assert capacity_k(1000, CapacitySection(k=100, top_percent=5)) == 50
    assert capacity_k(1000, CapacitySection(k=30, top_percent=5)) == 30
    assert capacity_k(1001, CapacitySection(k=None, top_percent=5)) == 51
    assert capacity_k(20, CapacitySection(k=100)) == 20


def test_capacity_given_only_as_top_percent_is_not_capped_by_the_default_k():
    # A config that says `capacity: {top_percent: 10}` means 10% of the cohort: 600 of 6,000 rows, not 100.
    share_only = CapacitySection.model_validate({"top_percent": 10})
    assert share_only.k is None
    assert capacity_k(6000, share_only) == 600
    assert capacity_k(6000, CapacitySection.model_validate({"k": 100, "top_percent": 10})) == 100
    assert capacity_k(6000, CapacitySection.model_validate({})) == 100


def test_lift_is_precision_over_base_rate():
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    score = np.linspace(1, 0, 10)
    m = RankedList.build(y, score, _ids(10), k=2).metrics()
    assert m["precision_at_capacity"] == 1.0
    assert m["lift_at_capacity"] == pytest.approx(5.0)


def test_weights_are_the_same_as_duplicating_rows():
    rng = np.random.default_rng(3)
    y = (rng.random(300) < 0.2).astype(int)
    p = np.round(rng.random(300), 1)
    ids = _ids(300)
    weights = rng.integers(0, 4, 300)
    weighted = RankedList.build(y, p, ids, k=25).metrics(weights)
    rep = np.repeat(np.arange(300), weights)
    dup_ids = np.array([f"{ids[i]}-{j}" for j, i in enumerate(rep)])
    # Duplicates of one resident sit together in the list, as they tie on every key but the suffix.
    duplicated = RankedList.build(y[rep], p[rep], dup_ids, k=25).metrics()
    for name, value in weighted.items():
        assert value == pytest.approx(duplicated[name]), name


def test_expected_calibration_error_is_zero_when_each_bin_matches_its_rate():
    y = np.array([1, 0, 0, 0, 1, 1, 0, 0, 0, 0])
    p = np.array([0.25, 0.25, 0.25, 0.25, 0.3333, 0.3333, 0.3333, 0.0, 0.0, 0.0])
    p[4:7] = 2 / 3
    m = RankedList.build(y, p, _ids(10), k=1).metrics()
    assert m["ece"] == pytest.approx(0.0, abs=1e-12)


def test_a_ranker_without_probabilities_has_no_brier_or_ece():
    m = RankedList.build(np.array([1, 0, 0]), np.array([3.0, 1.0, 0.0]), _ids(3), k=1, is_probability=False).metrics()
    assert np.isnan(m["brier"]) and np.isnan(m["ece"])
    assert m["roc_auc"] == 1.0


def test_bootstrap_is_seeded_and_its_interval_covers_the_estimate():
    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.1).astype(int)
    p = np.clip(0.1 + 0.2 * y + rng.normal(0, 0.1, 2000), 0, 1)
    lists = {"model": RankedList.build(y, p, _ids(2000), k=100)}
    first = bootstrap_replicates(lists, 50, seed=7)
    second = bootstrap_replicates(lists, 50, seed=7)
    np.testing.assert_array_equal(first["model"]["roc_auc"], second["model"]["roc_auc"])
    low, high = interval(first["model"]["roc_auc"])
    assert low < lists["model"].metrics()["roc_auc"] < high


def test_isotonic_calibrator_reproduces_scikit_learn_and_survives_serialisation():
    rng = np.random.default_rng(1)
    margin = rng.normal(size=500)
    y = (rng.random(500) < 1 / (1 + np.exp(-2 * margin))).astype(int)
    calibrator = Calibrator("isotonic", min_block=1).fit(margin, y)
    reference = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(margin, y)
    new = rng.normal(size=100) * 2
    floor = 0.5 / 501  # no probability closer to 0 or 1 than a 500-row slice can support
    np.testing.assert_allclose(calibrator.predict(new), np.clip(reference.predict(new), floor, 1 - floor))
    np.testing.assert_array_equal(Calibrator.from_dict(calibrator.to_dict()).predict(new), calibrator.predict(new))


def test_platt_calibrator_recovers_a_known_sigmoid():
    rng = np.random.default_rng(2)
    margin = rng.normal(size=20_000)
    y = (rng.random(20_000) < 1 / (1 + np.exp(-(0.5 * margin - 1)))).astype(int)
    calibrator = Calibrator("platt").fit(margin, y)
    assert calibrator.slope_ == pytest.approx(0.5, abs=0.06)
    assert calibrator.intercept_ == pytest.approx(-1.0, abs=0.06)


def test_isotonic_calibration_never_rests_a_score_on_fewer_than_min_block_residents():
    rng = np.random.default_rng(4)
    margin = rng.normal(size=5000)
    y = (rng.random(5000) < 0.02).astype(int)
    y[np.argsort(margin)[-3:]] = 1  # the three highest margins are all positives
    calibrator = Calibrator("isotonic", min_block=100).fit(margin, y)
    assert calibrator.predict(np.array([10.0]))[0] < 0.2
    assert Calibrator("isotonic", min_block=1).fit(margin, y).predict(np.array([10.0]))[0] == 1 - 0.5 / 5001
    assert abs(calibrator.predict(margin).mean() - y.mean()) < 0.002


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibrated_probabilities_are_never_exactly_zero_or_one(method):
    # Many residents below any positive: plain isotonic regression gives them exactly 0.
    margin = np.concatenate([np.linspace(-30, -10, 400), np.linspace(10, 30, 100)])
    y = np.concatenate([np.zeros(400), np.ones(100)]).astype(int)
    calibrator = Calibrator(method, min_block=100).fit(margin, y)
    p = calibrator.predict(np.array([-1e6, -30.0, 0.0, 30.0, 1e6]))
    floor = 0.5 / (500 + 1)
    assert calibrator.floor_ == floor
    assert p.min() >= floor and p.max() <= 1 - floor
    assert (0 < p).all() and (p < 1).all()
    rebuilt = Calibrator.from_dict(calibrator.to_dict())
    np.testing.assert_array_equal(rebuilt.predict(margin), calibrator.predict(margin))
    if method == "isotonic":
        # The 400 rows below every positive would be exactly 0; they read as the floor instead.
        assert calibrator.predict(np.array([-30.0]))[0] == floor
        assert calibrator.predict(np.array([30.0]))[0] == 1 - floor
