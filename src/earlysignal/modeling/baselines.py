"""Baselines trained on the same splits as the model: the base-rate prior, one feature, logistic regression.

A model earns its place only by beating these on the same test rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from earlysignal.errors import ConfigError

# With no training.one_feature_baseline configured, the first household count over the whole record,
# else the first count feature, ranks (which source that is belongs in the config, not here).


class PriorBaseline:
    """Scores everyone with the training base rate: the list is in resident_id order."""

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> PriorBaseline:
        """Learn the base rate."""
        self.rate_ = float(np.mean(y))
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """The base rate for every row."""
        return np.full(len(frame), self.rate_)


class OneFeatureRanker:
    """Ranks by a single feature (higher = riskier); no probabilities."""

    def __init__(self, feature: str) -> None:
        self.feature = feature

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> OneFeatureRanker:
        """Nothing to learn; checks the feature exists."""
        if self.feature not in frame.columns:
            raise ConfigError(f"one-feature baseline: feature {self.feature!r} is not in the feature matrix")
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """The feature's values (missing counts as lowest)."""
        return self.predict_column(frame[self.feature].to_numpy(dtype=float, na_value=np.nan))

    @staticmethod
    def predict_column(values: np.ndarray) -> np.ndarray:
        """The scores for the feature's values, shape (n,): float64, missing (NaN) as -inf."""
        values = np.asarray(values, dtype=np.float64)
        return np.where(np.isnan(values), -np.inf, values)


class LogisticBaseline:
    """Imputed, standardised, L2-penalised logistic regression on the model's features.

    A missing value (a window before the source's records begin, a mean of nothing, a days-since with no
    event) is not a zero: zero days since the last event would read as "just happened". So missing values
    get the training median plus a 0/1 missing-indicator column, then every column is standardised, so a
    placeholder such as 9999 days does not dominate the fit. Infinite values count as missing.
    """

    def __init__(self, seed: int = 0, max_iter: int = 300, c: float = 0.01) -> None:
        self.seed = seed
        self.max_iter = max_iter
        self.c = c

    def fit(
        self, frame: pd.DataFrame | np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> LogisticBaseline:
        """Fit imputer, scaler and regression on a frame or array (n, features); sample_weight (shape (n,)) weighs rows."""
        self.pipeline_ = make_pipeline(
            # copy=False: _as_matrix already made a private float64 copy, so changing it in place is safe.
            # keep_empty_features: a column missing everywhere stays (a constant) instead of a warning.
            SimpleImputer(strategy="median", add_indicator=True, copy=False, keep_empty_features=True),
            StandardScaler(copy=False),
            LogisticRegression(C=self.c, max_iter=self.max_iter, random_state=self.seed),
        )
        if sample_weight is None:
            self.pipeline_.fit(_as_matrix(frame), y)
        else:
            self.pipeline_.fit(_as_matrix(frame), y, logisticregression__sample_weight=sample_weight)
        return self

    def predict(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Predicted probabilities of the positive class (label 1), shape (n,)."""
        column = list(self.pipeline_.classes_).index(1)
        return self.pipeline_.predict_proba(_as_matrix(frame))[:, column]


def _as_matrix(frame: pd.DataFrame | np.ndarray) -> np.ndarray:
    # One private float64 copy; non-finite values become NaN (missing) for the imputer.
    matrix = np.array(frame, dtype=np.float64)
    matrix[~np.isfinite(matrix)] = np.nan
    return matrix


def choose_one_feature(feature_columns: list[str], configured: str | None = None) -> str:
    """The one-feature baseline's feature: the configured one, else the first household count over the
    whole record, else the first count over the whole record (any scope), else the first count.
    Raises ConfigError when the configured one is absent or no count feature exists."""
    if configured:
        if configured not in feature_columns:
            raise ConfigError(
                f"training.one_feature_baseline: {configured!r} is not a feature of the matrix; "
                f"pick one of its feature columns (e.g. {feature_columns[:3]})"
            )
        return configured
    candidates = [c for c in feature_columns if c.startswith("household__") and c.endswith("__count__all")]
    if candidates:
        return candidates[0]
    # A count over the whole record says how much contact a person had; a short-window count of a
    # regular record (a monthly statement) is nearly constant and would make a meaningless baseline.
    whole_record = [c for c in feature_columns if c.endswith("__count__all")]
    if whole_record:
        return whole_record[0]
    counts = [c for c in feature_columns if "__count__" in c]
    if counts:
        return counts[0]
    raise ConfigError("one-feature baseline: no count feature in the matrix; set training.one_feature_baseline")
