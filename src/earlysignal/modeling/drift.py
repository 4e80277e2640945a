"""Population stability index (PSI) of features and scores against the training reference.

The reference is stored inside the model's artefacts as bin edges and proportions, so scoring
needs no training data. Some records (e.g. term-time ones) are seasonal, so the reference is kept per
calendar month too, and scoring compares like with like (the same month of the year): from the training
as_of dates in that month, or, for a month the training grid never lands on (a quarterly grid has only
January, April, July and October), from the cohort rebuilt at as_of dates in that month over the training
span (`OffGridRows`); with neither, from the whole training reference, and the report says so. Against the
pooled reference a monthly list warned in 8 months of 12 on school features alone (docs/modeling.md). A feature that is missing where its window reaches back before the data
began (features/history.py) is compared on its complete windows only: how many rows lack it depends on
the length of the record, not on the source; for such a feature the missing share in training and now is
reported apart. PSI = sum over bins of (actual - expected) * ln(actual / expected);
by convention under 0.1 is stable, 0.1-0.25 a moderate shift, above 0.25 a large one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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


def bin_counts(values: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Count of values per bin ([len(inner) + 2] float64): len(inner)+1 value bins, then one for missing
    (NaN and infinite values). Counts of batches add up to the counts of all their values."""
    values = np.asarray(values, dtype=float)
    missing = ~np.isfinite(values)
    index = np.searchsorted(np.asarray(inner, dtype=float), values, side="right")
    index[missing] = len(inner) + 1
    return np.bincount(index, minlength=len(inner) + 2).astype(float)


def _shares(values: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Share of values per bin: len(inner)+1 value bins, then one for missing."""
    return bin_counts(values, inner) / max(len(np.asarray(values)), 1)


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


def null_shares(reference: dict[str, Any], values: np.ndarray) -> tuple[float, float] | None:
    """(share missing in the reference, share missing now) for a reference made by reference_bins(); None for a
    present_only reference (its rows with missing values were left out, so it has no missing share)."""
    if reference.get("present_only"):
        return None
    values = np.asarray(values, dtype=float)
    now = float(np.mean(~np.isfinite(values))) if values.size else 0.0
    return float(np.asarray(reference["shares"], dtype=float)[-1]), now


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


@dataclass(frozen=True)
class OffGridRows:
    """The cohort at as_of dates off the training grid but inside the training span, for the drift reference
    of the calendar months the grid never lands on: feature rows built as at those dates (the model's feature
    columns), the final model's calibrated scores ([rows] float) and each row's calendar month ([rows] int,
    1-12). Not trained on; only binned."""

    frame: pd.DataFrame
    score: np.ndarray
    months: np.ndarray


def off_grid_as_of_dates(training_as_of: Sequence[dt.date], last_years: int | None = None) -> list[dt.date]:
    """The 1st of every month from the first to the last training as_of whose calendar month has no training
    as_of (for OffGridRows); with `last_years`, only those in the span's last `last_years` x 12 months. Dates
    in ascending order; [] when the grid has every calendar month."""
    if not training_as_of:
        return []
    first, last = min(training_as_of), max(training_as_of)
    on_grid = {d.month for d in training_as_of}
    dates, day = [], dt.date(first.year, first.month, 1)
    while day <= last:
        if day.month not in on_grid:
            dates.append(day)
        day = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
    if last_years is not None:
        since = dt.date(last.year - last_years, last.month, 1)
        dates = [d for d in dates if d > since]
    return dates


def build_reference(
    frame: pd.DataFrame,
    columns: Iterable[str],
    score: np.ndarray,
    months: np.ndarray | None = None,
    short_history: Iterable[str] = (),
    off_grid: OffGridRows | None = None,
) -> dict[str, Any]:
    """Reference bins for every feature column and for the score: overall and per as_of calendar month.

    frame, score: the training rows ([rows] feature columns; [rows] calibrated scores); months: their as_of's
    calendar month ([rows] int 1-12). short_history: features nulled where their window reaches back before
    the data began (the feature matrix's `windows_before_data_start`); their reference holds the complete
    windows only. off_grid: rows at as_of dates in the calendar months the training rows lack; those months'
    bins come from them (marked `rows: off_grid`); a month the training rows have keeps theirs, and the
    overall reference is the training rows' only.
    """
    columns = list(columns)
    short = frozenset(short_history)
    reference = _bins_for(frame, columns, score, short)
    by_month: dict[str, Any] = {}
    if months is not None:
        months = np.asarray(months)
        by_month = {
            str(int(m)): _bins_for(frame.loc[months == m], columns, np.asarray(score)[months == m], short)
            for m in np.unique(months)
        }
    if off_grid is not None:
        other = np.asarray(off_grid.months)
        for m in np.unique(other):
            if str(int(m)) in by_month:
                continue
            rows = other == m
            bins = _bins_for(off_grid.frame.loc[rows], columns, np.asarray(off_grid.score)[rows], short)
            by_month[str(int(m))] = {**bins, "rows": "off_grid"}
    if by_month:
        reference["by_month"] = by_month
    return reference


def reference_for(reference: dict[str, Any], month: int | None) -> tuple[dict[str, Any], str]:
    """The reference to compare with, and words saying which: the same calendar month's if there is one
    (training rows, or rows rebuilt off the training grid), else the overall one."""
    by_month = reference.get("by_month", {})
    if month is not None and str(month) in by_month:
        chosen = by_month[str(month)]
        if chosen.get("rows") == "off_grid":
            return chosen, f"as_of dates in month {month} over the training span (rebuilt for drift, not trained on)"
        return chosen, f"training as_of dates in month {month}"
    if month is not None and by_month:
        # A seasonal feature may differ from the pooled months for that reason alone: say so.
        return reference, f"all training as_of dates (none in month {month}: seasonal features may warn for that alone)"
    return reference, "all training as_of dates"


def psi_of_counts(reference: dict[str, Any], counts: np.ndarray) -> float | None:
    """psi() from the new values' bin_counts() against the reference's inner edges: the same figure as
    psi() of the values themselves. None for a present_only reference when either side has no value."""
    counts = np.asarray(counts, dtype=float)
    if reference.get("present_only"):
        counts = np.concatenate([counts[:-1], [0.0]])  # only the non-missing values are compared
        if not reference.get("present") or counts.sum() == 0:
            return None
    expected = np.maximum(np.asarray(reference["shares"], dtype=float), _FLOOR)
    actual = np.maximum(counts / max(counts.sum(), 1.0), _FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def null_shares_of_counts(reference: dict[str, Any], counts: np.ndarray) -> tuple[float, float] | None:
    """null_shares() from the new values' bin_counts(): (share missing in the reference, share missing now)."""
    if reference.get("present_only"):
        return None
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    now = float(counts[-1] / total) if total else 0.0
    return float(np.asarray(reference["shares"], dtype=float)[-1]), now


class DriftCounts:
    """The bin counts drift_report needs, added up one batch of rows at a time (a partition of the cohort),
    so the drift of a whole cohort is computed without holding its feature frame: per feature of the
    reference and for the score, [bins + 1] counts against the reference's own edges (a few hundred numbers
    a feature). report() gives exactly what drift_report of all the rows at once gives."""

    def __init__(self, reference: dict[str, Any], month: int | None = None) -> None:
        self.reference, self.compared_with = reference_for(reference, month)
        self.features: dict[str, np.ndarray] = {}
        self.score = np.zeros(len(self.reference["score"]["inner_edges"]) + 2)

    def add(self, frame: pd.DataFrame, score: np.ndarray) -> None:
        """Count one batch: `frame` holds the feature columns (rows aligned with `score`, [rows] float)."""
        for c, bins in self.reference["features"].items():
            if c not in frame.columns:
                continue
            counts = bin_counts(frame[c].to_numpy(dtype=float), np.asarray(bins["inner_edges"], dtype=float))
            self.features[c] = self.features[c] + counts if c in self.features else counts
        self.score += bin_counts(score, np.asarray(self.reference["score"]["inner_edges"], dtype=float))

    def report(self, warn_psi: float, warn_null_share: float = 0.1) -> dict[str, Any]:
        """drift_report's dict for every row added."""
        feature_psi: dict[str, float | None] = {}
        null_share: dict[str, dict[str, float]] = {}
        for c, bins in self.reference["features"].items():
            if c not in self.features:
                continue
            feature_psi[c] = psi_of_counts(bins, self.features[c])
            shares = null_shares_of_counts(bins, self.features[c])
            if shares is not None:
                null_share[c] = {"reference": shares[0], "now": shares[1]}
        score_psi = psi_of_counts(self.reference["score"], self.score)
        # Not comparable: a window the data was too short for, in the reference or now.
        known = {c: v for c, v in feature_psi.items() if v is not None}
        warnings = sorted((c for c, v in known.items() if v > warn_psi), key=lambda c: -known[c])
        moved = sorted((c for c, s in null_share.items() if abs(s["now"] - s["reference"]) > warn_null_share),
                       key=lambda c: -abs(null_share[c]["now"] - null_share[c]["reference"]))
        return {
            "reference": self.compared_with,
            "score_psi": score_psi,
            "feature_psi": known,
            "warn_psi": warn_psi,
            "features_over_warn": warnings,
            "score_over_warn": score_psi is not None and score_psi > warn_psi,
            "max_feature_psi": max(known.values(), default=0.0),
            "psi_over": "known values only; missing shares are compared apart (feature_null_share)",
            "feature_null_share": null_share,
            "warn_null_share": warn_null_share,
            "features_null_share_changed": moved,
        }


def drift_report(
    reference: dict[str, Any], frame: pd.DataFrame, score: np.ndarray, warn_psi: float, month: int | None = None,
    warn_null_share: float = 0.1,
) -> dict[str, Any]:
    """PSI per feature and for the score, with the features above warn_psi listed (largest first); and, apart,
    each feature's missing share then and now (features with an ordinary reference; a present_only one has no
    missing share), listing those that moved by more than warn_null_share (a proportion, 0-1) in
    `features_null_share_changed` (largest move first). A feature not comparable (no complete window on one
    side) is left out of feature_psi. The same as DriftCounts over `frame` in batches (scoring per partition)."""
    counts = DriftCounts(reference, month)
    counts.add(frame, score)
    return counts.report(warn_psi, warn_null_share)
