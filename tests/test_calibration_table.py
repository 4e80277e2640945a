"""The calibration table of the audit report and release bundles: readable at a low base rate."""

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
