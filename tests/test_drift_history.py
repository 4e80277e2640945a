"""Drift is judged where a feature is known: a window that reached before the records began at early training
dates (null there, known later) is compared on its complete windows, and a missing share that moved is named
apart."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from earlysignal.modeling.drift import build_reference, drift_report, null_shares, psi, reference_bins


def test_a_window_too_long_for_the_early_records_is_compared_on_its_complete_windows_only():
    from earlysignal.modeling.drift import present_only_bins

    # Training: a "3-year" trend known at 1 row in 10 (the rest reach before the records begin).
    known = np.tile(np.arange(10, dtype=float), 100)  # 0..9, evenly
    training = np.r_[known, np.full(9000, np.nan)]
    scoring = np.tile(np.arange(10, dtype=float), 500)  # the same values, now known for everyone
    assert psi(present_only_bins(training), scoring) == pytest.approx(0.0)
    assert null_shares(present_only_bins(training), scoring) is None  # its missing rows say how long the record is
    # Counting the missing bin read this as a very large drift.
    assert psi(reference_bins(training), scoring) > 4
    old = sum((a - e) * math.log(a / e) for a, e in zip(
        np.maximum(np.r_[np.full(10, 0.1), 0.0], 1e-4), np.maximum(np.r_[np.full(10, 0.01), 0.9], 1e-4), strict=True))
    assert psi(reference_bins(training), scoring) == pytest.approx(old)


def test_a_feature_whose_missing_share_moved_is_listed_with_both_shares():
    rng = np.random.default_rng(3)
    mean_value = np.r_[np.full(3200, np.nan), rng.normal(size=800)]  # 80% undefined in training
    frame = pd.DataFrame({"mean_value": mean_value, "count_1y": rng.poisson(2.0, 4000).astype(float)})
    reference = build_reference(frame, ["mean_value", "count_1y"], rng.random(4000))
    now = pd.DataFrame({"mean_value": np.r_[np.full(100, np.nan), rng.normal(size=900)],
                        "count_1y": rng.poisson(2.0, 1000).astype(float)})
    report = drift_report(reference, now, rng.random(1000), warn_psi=0.25, warn_null_share=0.1)
    assert report["features_null_share_changed"] == ["mean_value"]
    assert report["feature_null_share"]["mean_value"] == {"reference": 0.8, "now": 0.1}
    assert report["feature_null_share"]["count_1y"] == {"reference": 0.0, "now": 0.0}


def test_a_real_shift_in_known_values_is_still_drift():
    rng = np.random.default_rng(4)
    from earlysignal.modeling.drift import present_only_bins

    reference = present_only_bins(np.r_[rng.normal(size=5000), np.full(5000, np.nan)])
    assert psi(reference, rng.normal(loc=1.0, size=5000)) > 0.25


def test_drift_console_names_features_whose_missing_share_moved():
    from earlysignal.console import console
    from earlysignal.scoring import _report_drift

    drift = {"score_over_warn": False, "warn_psi": 0.25, "features_over_warn": [], "feature_psi": {},
             "features_null_share_changed": ["resident__labs__result__mean__365d"],
             "feature_null_share": {"resident__labs__result__mean__365d": {"reference": 0.9, "now": 0.0}}}
    with console.capture() as captured:
        _report_drift(drift)
    assert " ".join(captured.get().split()) == (
        "1 feature(s) are missing far more or less often than in training (a value recorded less often, or a "
        "measure with nothing to average): resident__labs__result__mean__365d (90% missing in training, 0% now)")


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
