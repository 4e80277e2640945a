"""Probability calibration on a temporal slice, so that a score of 0.2 means about 20%.

Both calibrators map the booster's raw margin (log-odds) to a probability and store their
learned state as plain numbers, so a logged model can be rebuilt without pickles.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from earlysignal.errors import EarlySignalError


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
        return self

    def predict(self, margin: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for raw margins."""
        margin = np.asarray(margin, dtype=float)
        if self.method == "isotonic":
            # Same piecewise-linear interpolation as IsotonicRegression.predict, clipped at the ends.
            return np.interp(margin, self.x_thresholds_, self.y_thresholds_)
        return 1.0 / (1.0 + np.exp(-(self.slope_ * margin + self.intercept_)))

    def to_dict(self) -> dict[str, Any]:
        """The learned state as JSON-ready numbers."""
        if self.method == "isotonic":
            return {"method": "isotonic", "min_block": self.min_block, "x": self.x_thresholds_.tolist(),
                    "y": self.y_thresholds_.tolist()}
        return {"method": "platt", "slope": self.slope_, "intercept": self.intercept_}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Calibrator:
        """Rebuild a fitted calibrator from to_dict()'s output."""
        calibrator = cls(state["method"], state.get("min_block", 100))
        if state["method"] == "isotonic":
            calibrator.x_thresholds_ = np.asarray(state["x"], dtype=float)
            calibrator.y_thresholds_ = np.asarray(state["y"], dtype=float)
        else:
            calibrator.slope_ = float(state["slope"])
            calibrator.intercept_ = float(state["intercept"])
        return calibrator
