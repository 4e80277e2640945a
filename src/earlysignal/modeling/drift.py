"""Population stability index (PSI) of features and scores against the training reference.

The reference is stored inside the model's artefacts as bin edges and proportions, so scoring
needs no training data. Some records (e.g. term-time ones) are seasonal, so the reference is kept per
calendar month of the training as_of dates too, and scoring compares like with like (the same month
of the year) when the training history has it, else the whole training reference. A feature that is missing where its window reaches back before the data
began (features/history.py) is compared on its complete windows only: how many rows lack it depends on
the length of the record, not on the source. PSI = sum over bins of (actual - expected) * ln(actual / expected);
by convention under 0.1 is stable, 0.1-0.25 a moderate shift, above 0.25 a large one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

DRIFT_BINS = 10
_FLOOR = 1e-4  # empty bins would make the logarithm infinite


def reference_bins(values: np.ndarray, bins: int = DRIFT_BINS) -> dict[str, Any]:
    """Quantile bin edges of a reference sample and the share in each bin (missing values get a bin)."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size:
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)))
        inner = edges[1:-1]
    else:
        inner = np.array([])
    shares = _shares(values, inner)
    return {"inner_edges": inner.tolist(), "shares": shares.tolist()}


def _shares(values: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Share of values per bin: len(inner)+1 value bins, then one for missing."""
    values = np.asarray(values, dtype=float)
    missing = ~np.isfinite(values)
    index = np.searchsorted(inner, values, side="right")
    index[missing] = len(inner) + 1
    counts = np.bincount(index, minlength=len(inner) + 2).astype(float)
    return counts / max(len(values), 1)


def present_only_bins(values: np.ndarray, bins: int = DRIFT_BINS) -> dict[str, Any]:
    """reference_bins() of the non-missing values only, marked `present_only`.

    For a feature whose missing values mean "the window reaches back before the data began"
    (features/history.py): how many rows lack it depends on how long the records go back at each
    as_of, not on the source, so the reference describes the complete windows only.
    """
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    return {**reference_bins(finite, bins), "present_only": True, "present": int(finite.size)}


def psi(reference: dict[str, Any], values: np.ndarray) -> float | None:
    """PSI of new values against a reference made by reference_bins() or present_only_bins().

    A present_only reference compares the non-missing new values with it, and gives None (not
    comparable) when either side has none.
    """
    if reference.get("present_only"):
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values)]
        if not reference.get("present") or values.size == 0:
            return None
    inner = np.asarray(reference["inner_edges"], dtype=float)
    expected = np.maximum(np.asarray(reference["shares"], dtype=float), _FLOOR)
    actual = np.maximum(_shares(values, inner), _FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _bins_for(
    frame: pd.DataFrame, columns: list[str], score: np.ndarray, short_history: frozenset[str] = frozenset()
) -> dict[str, Any]:
    return {
        "features": {
            c: (present_only_bins if c in short_history else reference_bins)(frame[c].to_numpy(dtype=float))
            for c in columns
        },
        "score": reference_bins(score),
    }


def build_reference(
    frame: pd.DataFrame,
    columns: Iterable[str],
    score: np.ndarray,
    months: np.ndarray | None = None,
    short_history: Iterable[str] = (),
) -> dict[str, Any]:
    """Reference bins for every feature column and for the score: overall and per as_of calendar month.

    short_history: features nulled where their window reaches back before the data began (the feature
    matrix's `windows_before_data_start`); their reference holds the complete windows only.
    """
    columns = list(columns)
    short = frozenset(short_history)
    reference = _bins_for(frame, columns, score, short)
    if months is not None:
        months = np.asarray(months)
        reference["by_month"] = {
            str(int(m)): _bins_for(frame.loc[months == m], columns, np.asarray(score)[months == m], short)
            for m in np.unique(months)
        }
    return reference


def reference_for(reference: dict[str, Any], month: int | None) -> tuple[dict[str, Any], str]:
    """The reference to compare with: the same calendar month's if there is one, else the overall one."""
    by_month = reference.get("by_month", {})
    if month is not None and str(month) in by_month:
        return by_month[str(month)], f"training as_of dates in month {month}"
    return reference, "all training as_of dates"


def drift_report(
    reference: dict[str, Any], frame: pd.DataFrame, score: np.ndarray, warn_psi: float, month: int | None = None
) -> dict[str, Any]:
    """PSI per feature and for the score, with the features above warn_psi listed (largest first)."""
    reference, compared_with = reference_for(reference, month)
    feature_psi = {
        c: psi(bins, frame[c].to_numpy(dtype=float))
        for c, bins in reference["features"].items()
        if c in frame.columns
    }
    # Not comparable: a window the data was too short for, in the reference or now.
    feature_psi = {c: v for c, v in feature_psi.items() if v is not None}
    score_psi = psi(reference["score"], score)
    warnings = sorted((c for c, v in feature_psi.items() if v > warn_psi), key=lambda c: -feature_psi[c])
    return {
        "reference": compared_with,
        "score_psi": score_psi,
        "feature_psi": feature_psi,
        "warn_psi": warn_psi,
        "features_over_warn": warnings,
        "score_over_warn": score_psi > warn_psi,
        "max_feature_psi": max(feature_psi.values(), default=0.0),
    }
