"""The cost of linkage error measured like for like: the same true rows and labels, two models' scores."""

from __future__ import annotations

import pandas as pd
import pytest

from earlysignal.linkage.cost import like_for_like, linked_resident_of_true_person


def test_each_true_person_is_stood_for_by_the_linked_resident_holding_most_of_their_records() -> None:
    links = pd.DataFrame({"source": ["s"] * 5, "record_id": ["1", "2", "3", "4", "5"],
                          "resident_id": ["L1", "L1", "L2", "L3", "L4"]})
    truth = pd.DataFrame({"source": ["s"] * 5, "record_id": ["1", "2", "3", "4", "5"],
                          "true_id": ["T1", "T1", "T1", "T2", "T2"]})
    # T1: two records in L1, one in L2 (a split cluster); T2: one each in L3 and L4 (a tie: the smaller ID).
    assert linked_resident_of_true_person(links, truth).to_dict() == {"T1": "L1", "T2": "L3"}


def test_both_models_are_scored_on_the_true_rows_and_an_unscored_person_is_never_flagged() -> None:
    as_of = pd.Timestamp("2024-01-01")
    truth = pd.DataFrame({"resident_id": ["T1", "T2", "T3", "T4"], "as_of": [as_of] * 4,
                          "label": [1, 0, 1, 0], "score": [0.9, 0.1, 0.8, 0.2]})
    # The linked model ranks T3 (as L3) below T2 (as L2), has no row for T1 and an extra row (a leaver, LX)
    # that the true rows do not hold and so does not count.
    linked = pd.DataFrame({"resident_id": ["L2", "L3", "L4", "LX"], "as_of": [as_of] * 4,
                           "label": [0, 0, 0, 0], "score": [0.5, 0.4, 0.1, 0.99]})
    linked_of_true = pd.Series({"T1": "L1", "T2": "L2", "T3": "L3", "T4": "L4"})
    result = like_for_like(truth, linked, linked_of_true, capacity_k=lambda n: 2, n_boot=20, seed=1)
    row = result["per_as_of"][0]
    assert (row["rows"], row["positives"], row["linked_scored"], row["k"]) == (4, 2, 3, 2)
    assert row["roc_auc_truth"] == 1.0
    # Linked scores on the true rows: T1 unscored (bottom), T2 0.5, T3 0.4, T4 0.1 -> positives T1, T3.
    # Pairs (positive above negative): T3>T4 only, of 4 -> 0.25.
    assert row["roc_auc_linked"] == pytest.approx(0.25)
    assert row["precision_at_capacity_truth"] == 1.0 and row["precision_at_capacity_linked"] == 0.5
    # On the three rows the linked model scored: T3 (positive) against T2 and T4.
    assert row["roc_auc_linked_on_linked_scored"] == pytest.approx(0.5)
    assert result["mean"]["roc_auc_cost"] == pytest.approx(0.75)
