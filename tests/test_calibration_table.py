"""Small figures stay readable at a low base rate: the calibration table (audit report, release bundles) and the training console."""

from __future__ import annotations

import numpy as np
import pandas as pd

from earlysignal.audit.assemble import calibration_curve


def test_calibration_bins_keep_three_significant_figures_of_a_small_mean_score():
    """At a base rate of 0.2% a bin's mean score is a few in ten thousand: three decimals would print 0.0."""
    scores = np.concatenate([np.full(1000, 0.000123456), np.full(1000, 0.0123456), np.full(1000, 0.23456)])
    labels = np.zeros(3000)
    table = calibration_curve(pd.DataFrame({"score": scores, "label": labels}), bins=3)
    assert [row["mean_score"] for row in table] == [0.000123, 0.0123, 0.235]
    assert [row["n"] for row in table] == [1000, 1000, 1000]
    assert [row["observed"] for row in table] == [0.0, 0.0, 0.0]


def test_the_training_console_keeps_three_significant_figures_of_small_metrics():
    """An ECE of 0.0004 (0.0002-0.00067) printed as 0.000 (0.000-0.001) cannot be checked against another fit."""
    from earlysignal.modeling.train import metric_text

    assert [metric_text(v) for v in (0.73233, 27.893, 0.0004, 0.000666, 0.0023, 0.0)] == [
        "0.732", "27.893", "0.000400", "0.000666", "0.00230", "0.000"
    ]


def test_a_band_withheld_for_small_numbers_says_why():
    """An output checker reading release.json sees why a band has no observed rate, as for every other withheld
    figure (a trial bundle showed 8 of 9 bands as a bare null beside one that gave its reason)."""
    scores = np.concatenate([np.full(1000, 0.01), np.full(1000, 0.1), np.full(1000, 0.5)])
    labels = np.zeros(3000)
    labels[1000:1003] = 1  # 3 escalations in the middle band: small
    labels[2000:2100] = 1  # 100 in the top band
    table = calibration_curve(pd.DataFrame({"score": scores, "label": labels}), bins=3)
    assert [row["observed"] for row in table] == [0.0, None, 0.1]
    assert [row.get("withheld") for row in table] == [
        None, "the band's escalations are a small number (1 to min_cell - 1): its observed rate is withheld", None]
