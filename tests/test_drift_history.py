"""Drift is judged where a feature is known: a window that reached before the records began at early training
dates (null there, known later) is not drift of its values, and its missing share is compared apart."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from earlysignal.modeling.drift import build_reference, drift_report, null_shares, psi, reference_bins


def test_psi_compares_known_values_only_and_the_missing_share_apart():
    # Training: a "3-year" trend known at 1 row in 10 (the rest reach before the records begin).
    known = np.tile(np.arange(10, dtype=float), 100)  # 0..9, evenly
    training = np.r_[known, np.full(9000, np.nan)]
    reference = reference_bins(training)
    scoring = np.tile(np.arange(10, dtype=float), 500)  # the same values, now known for everyone
    assert psi(reference, scoring) == pytest.approx(0.0)
    assert null_shares(reference, scoring) == (pytest.approx(0.9), 0.0)
    # Counting the missing bin inside the PSI read this as a very large drift: (0 - 0.9) * ln(1e-4 / 0.9) + ...
    old = sum((a - e) * math.log(a / e) for a, e in zip(
        np.maximum(np.r_[np.full(10, 0.1), 0.0], 1e-4), np.maximum(np.r_[np.full(10, 0.01), 0.9], 1e-4), strict=True))
    assert old > 4


def test_a_feature_known_on_one_side_only_has_no_psi_and_is_listed_for_its_missing_share():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"trend_3y": np.full(4000, np.nan), "count_1y": rng.poisson(2.0, 4000).astype(float)})
    reference = build_reference(frame, ["trend_3y", "count_1y"], rng.random(4000))
    now = pd.DataFrame({"trend_3y": rng.normal(size=1000), "count_1y": rng.poisson(2.0, 1000).astype(float)})
    report = drift_report(reference, now, rng.random(1000), warn_psi=0.25, warn_null_share=0.1)
    assert report["feature_psi"]["trend_3y"] is None
    assert report["features_over_warn"] == []
    assert report["features_null_share_changed"] == ["trend_3y"]
    assert report["feature_null_share"]["trend_3y"] == {"reference": 1.0, "now": 0.0}
    assert report["feature_null_share"]["count_1y"] == {"reference": 0.0, "now": 0.0}
    assert report["max_feature_psi"] == pytest.approx(report["feature_psi"]["count_1y"])


def test_a_real_shift_in_known_values_is_still_drift():
    rng = np.random.default_rng(4)
    reference = reference_bins(np.r_[rng.normal(size=5000), np.full(5000, np.nan)])
    assert psi(reference, rng.normal(loc=1.0, size=5000)) > 0.25


def test_drift_console_names_features_whose_missing_share_moved():
    from earlysignal.console import console
    from earlysignal.scoring import _report_drift

    drift = {"score_over_warn": False, "warn_psi": 0.25, "features_over_warn": [], "feature_psi": {},
             "features_null_share_changed": ["household__school__absence__trend__3y"],
             "feature_null_share": {"household__school__absence__trend__3y": {"reference": 0.9, "now": 0.0}}}
    with console.capture() as captured:
        _report_drift(drift)
    assert " ".join(captured.get().split()) == ("1 feature(s) are missing far more or less often than in training (e.g. a window that reached before "
            "the records began at early training dates): household__school__absence__trend__3y (90% missing in "
            "training, 0% now)")


def test_a_driver_known_at_few_rows_because_its_window_reached_before_the_records_is_annotated():
    from earlysignal.audit.assemble import short_history_note

    metadata = {"rows_per_as_of": {"2024-01-01": 600, "2024-04-01": 400},
                "windows_before_data_start": {"school__absence__trend__3y": 905, "school__absence__count__3y": 400}}
    assert short_history_note("school__absence__trend__3y", metadata) == (
        "Known at only 9% of the rows the model learnt from and was tested on: at earlier as-of dates its window "
        "reached back before the records began, so it was left blank there. How the model uses it once it is known "
        "for everyone rests on few dates."
    )
    assert short_history_note("school__absence__count__3y", metadata) is None  # known at 60%
    assert short_history_note("school__absence__count__365d", metadata) is None
