"""Probability calibration on a temporal slice, so that a score of 0.2 means about 20%.

Both calibrators map the booster's raw margin (log-odds) to a probability and store their
learned state as plain numbers, so a logged model can be rebuilt without pickles.

No calibrated probability is exactly 0 or 1: isotonic regression gives a block with no
escalations exactly 0 ("impossible"), so every output is clipped to [floor, 1 - floor] with
floor = 0.5 / (calibration rows + 1), the Jeffreys estimate of the rate in a whole calibration
slice with no events: the slice cannot tell a rate below that from zero, so it claims no more
certainty than that. Smoothing each block instead (e.g. Jeffreys per block of 100) would move every
score by ~0.005, a fifth of a 2% base rate; the clip moves only the scores that were 0 or 1.
Ties that remain (isotonic plateaus) are broken by the raw margin wherever order matters.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from earlysignal.errors import EarlySignalError


# Used only by calibrators saved before the floor was recorded.
DEFAULT_FLOOR = 1e-6


def probability_floor(n_calibration_rows: int) -> float:
    """The smallest probability a calibrator may output: 0.5 / (rows + 1) (Jeffreys, zero events)."""
    return 0.5 / (max(int(n_calibration_rows), 0) + 1.0)


class Calibrator:
    """Map raw margins to calibrated probabilities: isotonic (monotone steps) or Platt (a sigmoid)."""

    def __init__(self, method: Literal["isotonic", "platt"] = "isotonic", min_block: int = 100) -> None:
        self.method = method
        self.min_block = min_block

    def fit(self, margin: np.ndarray, y: np.ndarray) -> Calibrator:
        """Learn the mapping from a calibration slice's margins and 0/1 labels."""
        margin = np.asarray(margin, dtype=float)
        y = np.asarray(y, dtype=float)
        if len(np.unique(y)) < 2:
            raise EarlySignalError(
                "the calibration slice has only one label value; add as_of dates "
                "(training.calibration_as_of_count) or use a label with more positives"
            )
        if self.method == "isotonic":
            # Fit on consecutive chunks of at least `min_block` rows (in margin order), so every
            # calibrated value rests on enough residents: plain isotonic regression gives the top
            # handful of a small slice a score of exactly 1.0.
            order = np.argsort(margin, kind="stable")
            chunks = np.array_split(order, max(1, len(order) // self.min_block))
            x = np.array([margin[c].mean() for c in chunks])
            rate = np.array([y[c].mean() for c in chunks])
            size = np.array([len(c) for c in chunks], dtype=float)
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(x, rate, sample_weight=size)
            self.x_thresholds_ = np.asarray(iso.X_thresholds_, dtype=float)
            self.y_thresholds_ = np.asarray(iso.y_thresholds_, dtype=float)
        elif self.method == "platt":
            lr = LogisticRegression(C=1e6).fit(margin.reshape(-1, 1), y)
            self.slope_ = float(lr.coef_[0, 0])
            self.intercept_ = float(lr.intercept_[0])
        else:
            raise EarlySignalError(f"model.calibration: unknown method {self.method!r}; use isotonic or platt")
        self.floor_ = probability_floor(len(y))
        return self

    def predict(self, margin: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for raw margins."""
        margin = np.asarray(margin, dtype=float)
        if self.method == "isotonic":
            # Same piecewise-linear interpolation as IsotonicRegression.predict, clipped at the ends.
            p = np.interp(margin, self.x_thresholds_, self.y_thresholds_)
        else:
            p = expit(self.slope_ * margin + self.intercept_)
        floor = getattr(self, "floor_", DEFAULT_FLOOR)
        return np.clip(p, floor, 1.0 - floor)

    def to_dict(self) -> dict[str, Any]:
        """The learned state as JSON-ready numbers."""
        floor = getattr(self, "floor_", DEFAULT_FLOOR)
        if self.method == "isotonic":
            return {"method": "isotonic", "min_block": self.min_block, "x": self.x_thresholds_.tolist(),
                    "y": self.y_thresholds_.tolist(), "floor": floor}
        return {"method": "platt", "slope": self.slope_, "intercept": self.intercept_, "floor": floor}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Calibrator:
        """Rebuild a fitted calibrator from to_dict()'s output."""
        calibrator = cls(state["method"], state.get("min_block", 100))
        calibrator.floor_ = float(state.get("floor", DEFAULT_FLOOR))
        if state["method"] == "isotonic":
            calibrator.x_thresholds_ = np.asarray(state["x"], dtype=float)
            calibrator.y_thresholds_ = np.asarray(state["y"], dtype=float)
        else:
            calibrator.slope_ = float(state["slope"])
            calibrator.intercept_ = float(state["intercept"])
        return calibrator
