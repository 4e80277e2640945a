"""Evaluation metrics for a ranked list: AUC, average precision, Brier, precision/recall at capacity, lift, ECE.

Everything is computed from one sorted list, with optional per-row weights, so the point
estimate and every bootstrap replicate (a resample is a vector of multiplicities) use the same
code. Ties: the list is ordered by score (descending), then a tie-break key (descending; the raw
model margin for the model, so isotonic plateaus keep the booster's order), then resident_id
(ascending) so that a written list has one order. Every metric treats rows equal in
(score, tie-break) as tied: AUC and average precision as scikit-learn does, and threshold metrics
(precision@k, recall@k, lift) as their expected value when the tied rows straddling k are taken
in random order. No scorer gains or loses from the order of resident ids.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from earlysignal.config import CapacitySection

METRIC_NAMES = (
    "roc_auc",
    "average_precision",
    "brier",
    "precision_at_capacity",
    "recall_at_capacity",
    "lift_at_capacity",
    "ece",
)
# Metrics that need a probability, not just an order (undefined for a pure ranker).
PROBABILITY_METRICS = ("brier", "ece")
ECE_BINS = 10


def capacity_k(n_rows: int, capacity: CapacitySection) -> int:
    """How many of n_rows the team can review: capacity.k and/or ceil(top_percent% of n); smaller wins."""
    limits = []
    if capacity.k is not None:
        limits.append(capacity.k)
    if capacity.top_percent is not None:
        limits.append(math.ceil(capacity.top_percent / 100 * n_rows))
    return max(0, min(min(limits), n_rows))


def list_order(
    score: np.ndarray, resident_id: Sequence[str] | np.ndarray, tiebreak: np.ndarray | None = None
) -> np.ndarray:
    """Row indices in list order: score desc, then tiebreak desc, then resident_id asc."""
    score = np.asarray(score, dtype=float)
    ids = np.asarray(resident_id, dtype=object).astype(str)
    keys = [ids]
    if tiebreak is not None:
        keys.append(-np.asarray(tiebreak, dtype=float))
    keys.append(-score)
    return np.lexsort(keys)  # last key is the primary one


def ranks(score: np.ndarray, resident_id: Sequence[str] | np.ndarray, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """1-based list positions (1 = highest score), using the documented tie handling."""
    order = list_order(score, resident_id, tiebreak)
    out = np.empty(len(order), dtype=np.int64)
    out[order] = np.arange(1, len(order) + 1)
    return out


@dataclass(frozen=True)
class RankedList:
    """One scorer's list for one as_of, pre-sorted so that weighted metrics are O(n)."""

    order: np.ndarray  # row indices in list order
    y: np.ndarray  # labels in list order (0/1 float)
    p: np.ndarray | None  # probabilities in list order (None: a ranker without probabilities)
    group_starts: np.ndarray  # start offsets of runs tied in (score, tiebreak), in list order
    k: int

    @classmethod
    def build(
        cls,
        y: np.ndarray,
        score: np.ndarray,
        resident_id: Sequence[str] | np.ndarray,
        k: int,
        *,
        tiebreak: np.ndarray | None = None,
        is_probability: bool = True,
    ) -> RankedList:
        """Sort once; rows equal in (score, tiebreak) form tie groups."""
        score = np.asarray(score, dtype=float)
        order = list_order(score, resident_id, tiebreak)
        s = score[order]
        change = s[1:] != s[:-1]
        if tiebreak is not None:
            t = np.asarray(tiebreak, dtype=float)[order]
            change |= t[1:] != t[:-1]
        starts = np.concatenate([[0], np.flatnonzero(change) + 1]) if len(s) else np.array([], dtype=np.int64)
        y_sorted = np.asarray(y, dtype=float)[order]
        return cls(order, y_sorted, s if is_probability else None, starts, k)

    def metrics(self, weights: np.ndarray | None = None) -> dict[str, float]:
        """All metrics for this list; weights (per original row) are bootstrap multiplicities."""
        n = len(self.y)
        w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)[self.order]
        total = w.sum()
        wp = w * self.y
        wn = w - wp
        positives, negatives = wp.sum(), wn.sum()
        out: dict[str, float] = dict.fromkeys(METRIC_NAMES, float("nan"))
        if total == 0:
            return out
        base_rate = positives / total
        if len(self.group_starts):
            gp = np.add.reduceat(wp, self.group_starts)
            gn = np.add.reduceat(wn, self.group_starts)
        else:
            gp = gn = np.zeros(0)
        if positives > 0 and negatives > 0:
            # Mann-Whitney: each positive beats the negatives in lower groups, ties count a half.
            neg_below = negatives - np.cumsum(gn)
            out["roc_auc"] = float((gp * (neg_below + 0.5 * gn)).sum() / (positives * negatives))
        if positives > 0:
            tp = np.cumsum(gp)
            flagged = tp + np.cumsum(gn)
            # Groups emptied by a resample carry no weight; give them precision 0, not 0/0.
            precision = np.divide(tp, flagged, out=np.zeros_like(tp), where=flagged > 0)
            out["average_precision"] = float((gp * precision).sum() / positives)
        if self.k > 0:
            # Expected positives in the first k when tied rows are taken in random order: a tie
            # group straddling k contributes its share of the remaining places times its positive
            # rate, so a constant scorer (the prior baseline) gains no lift from tie order.
            gw = gp + gn
            before = np.cumsum(gw) - gw
            taken = np.clip(self.k - before, 0, gw)
            share = np.divide(taken, gw, out=np.zeros_like(gw), where=gw > 0)
            top_pos = float((share * gp).sum())
            out["precision_at_capacity"] = top_pos / self.k
            out["recall_at_capacity"] = top_pos / positives if positives > 0 else float("nan")
            out["lift_at_capacity"] = out["precision_at_capacity"] / base_rate if base_rate > 0 else float("nan")
        if self.p is not None:
            out["brier"] = float((w * (self.p - self.y) ** 2).sum() / total)
            bins = np.minimum((self.p * ECE_BINS).astype(int), ECE_BINS - 1)
            gap = np.bincount(bins, weights=w * (self.y - self.p), minlength=ECE_BINS)
            out["ece"] = float(np.abs(gap).sum() / total)
        return out


def bootstrap_replicates(
    lists: Mapping[str, RankedList], n_resamples: int, seed: int
) -> dict[str, dict[str, np.ndarray]]:
    """Metric values over bootstrap resamples of rows (residents within one as_of), paired across scorers."""
    if not lists:
        return {}
    n = len(next(iter(lists.values())).y)
    rng = np.random.default_rng(seed)
    out = {name: {m: np.full(n_resamples, np.nan) for m in METRIC_NAMES} for name in lists}
    for b in range(n_resamples):
        weights = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
        for name, ranked in lists.items():
            for metric, value in ranked.metrics(weights).items():
                out[name][metric][b] = value
    return out


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile interval of bootstrap values (None when there are none finite)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return None, None
    alpha = (1 - level) / 2
    return float(np.quantile(finite, alpha)), float(np.quantile(finite, 1 - alpha))


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> pd.DataFrame:
    """Reliability table: per equal-width bin, count, mean predicted and observed rate."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    index = np.minimum((p * bins).astype(int), bins - 1)
    frame = pd.DataFrame({"bin": index, "p": p, "y": y})
    table = frame.groupby("bin").agg(n=("y", "size"), mean_predicted=("p", "mean"), observed=("y", "mean"))
    return table.reset_index()


def precision_recall_curve_at_k(y: np.ndarray, order: np.ndarray, ks: Sequence[int]) -> pd.DataFrame:
    """Precision@k and recall@k for several k along a list (order = row indices in list order)."""
    y_sorted = np.asarray(y, dtype=float)[order]
    cum = np.concatenate([[0.0], np.cumsum(y_sorted)])
    positives = max(cum[-1], 1e-12)
    rows = [{"k": k, "precision": cum[k] / k, "recall": cum[k] / positives} for k in ks if 0 < k <= len(y_sorted)]
    return pd.DataFrame(rows)


def expected_curve_at_k(ranked: RankedList, ks: Sequence[int]) -> pd.DataFrame:
    """Precision@k and recall@k along a list, tied rows counted as ties (their expected share), for several k."""
    if not len(ranked.y):
        return pd.DataFrame(columns=["k", "precision", "recall"])
    gp = np.add.reduceat(ranked.y, ranked.group_starts)
    gw = np.add.reduceat(np.ones_like(ranked.y), ranked.group_starts)
    before = np.cumsum(gw) - gw
    positives = max(float(ranked.y.sum()), 1e-12)
    rows = []
    for k in ks:
        if not 0 < k <= len(ranked.y):
            continue
        top = float((np.clip(k - before, 0, gw) / gw * gp).sum())
        rows.append({"k": k, "precision": top / k, "recall": top / positives})
    return pd.DataFrame(rows)


def tie_order_key(score: np.ndarray, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """A number per row whose order is the list's (score, then tiebreak), equal exactly where rows tie.

    Use it wherever a metric must see the same ties as RankedList (e.g. a group's AUC in the audit).
    """
    score = np.asarray(score, dtype=float)
    if tiebreak is None:
        return score
    tiebreak = np.asarray(tiebreak, dtype=float)
    order = np.lexsort([tiebreak, score])  # ascending: score first, then tiebreak
    s, t = score[order], tiebreak[order]
    change = np.concatenate([[True], (s[1:] != s[:-1]) | (t[1:] != t[:-1])]) if len(s) else np.array([], bool)
    key = np.empty(len(s), dtype=float)
    key[order] = np.cumsum(change)
    return key


SCORER_NAMES = {"model": "the model", "prior": "the base-rate baseline", "one_feature": "the one-feature baseline",
                "logistic": "the logistic-regression baseline", "oracle": "the oracle"}


def below_chance(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Scorers that rank worse than chance: AUC below 0.5 with its whole 95% interval below 0.5.

    `summary` is {scorer: {"roc_auc": {"value", "ci_low", "ci_high"}, ...}}. Returns one record per such
    scorer ({scorer, roc_auc, ci_low, ci_high, text}), in `summary`'s order; a scorer without an interval is
    never listed (chance cannot be ruled out). Such a ranking is a defect to find (a flipped sign, unknown
    values read as zeros, overfitting), never a result to publish silently.
    """
    out = []
    for scorer, metrics in summary.items():
        entry = (metrics or {}).get("roc_auc") or {}
        value, high = entry.get("value"), entry.get("ci_high")
        if value is None or high is None or not np.isfinite(value) or not high < 0.5:
            continue
        name = SCORER_NAMES.get(scorer, scorer)
        out.append({
            "scorer": scorer, "roc_auc": float(value), "ci_low": entry.get("ci_low"), "ci_high": float(high),
            "text": (f"{name[0].upper()}{name[1:]} ranks worse than chance: AUC {value:.3f} "
                     f"(95% interval {entry.get('ci_low'):.3f}–{high:.3f}, below 0.5). Residents it puts first "
                     "escalate less often than those it puts last; its figures are no benchmark until the cause "
                     "is found."),
        })
    return out


COMPARISON_WORDS = {"roc_auc": "AUC", "average_precision": "average precision",
                    "precision_at_capacity": "precision at capacity", "lift_at_capacity": "lift at capacity"}


def _signed(metric: str, value: float) -> str:
    return f"{value:+.1f}" if metric == "lift_at_capacity" else f"{value:+.3f}"


def baseline_comparison(
    differences: dict[str, dict[str, dict[str, Any]]] | None, criterion_metric: str | None = None
) -> list[dict[str, Any]]:
    """The model against each fitted baseline, in words, from paired differences (model minus baseline).

    `differences` is metrics.json's `model_minus_baseline`: {baseline: {metric: {"value", "ci_low", "ci_high"}}}.
    Compared on the criterion's metric (when it is a ranking metric), AUC and average precision. Per metric the
    model is `better` when the difference's 95% interval lies above 0, `worse` when below, else `no clear
    difference` (also without an interval). Returns one record per baseline ({baseline, verdict, metrics, text});
    verdict is `model better` only when every compared metric is better, `baseline better` when any is worse.
    """
    out: list[dict[str, Any]] = []
    metrics = [m for m in dict.fromkeys([criterion_metric, "roc_auc", "average_precision"]) if m in COMPARISON_WORDS]
    for baseline, per_metric in (differences or {}).items():
        rows = []
        for metric in metrics:
            entry = per_metric.get(metric) or {}
            value, low, high = entry.get("value"), entry.get("ci_low"), entry.get("ci_high")
            if value is None:
                continue
            verdict = ("better" if low is not None and low > 0 else "worse" if high is not None and high < 0
                       else "no clear difference")
            interval_words = (f" (95% interval {_signed(metric, low)} to {_signed(metric, high)})"
                              if low is not None and high is not None else " (no interval)")
            rows.append({"metric": metric, "difference": value, "ci_low": low, "ci_high": high, "verdict": verdict,
                         "words": f"{COMPARISON_WORDS[metric]} {_signed(metric, value)}{interval_words}"})
        if not rows:
            continue
        name = SCORER_NAMES.get(baseline, baseline)
        figures = "; ".join(r["words"] for r in rows)
        if all(r["verdict"] == "better" for r in rows):
            verdict, text = "model better", f"The model ranks better than {name} (model minus baseline: {figures})."
        elif any(r["verdict"] == "worse" for r in rows):
            worse = ", ".join(COMPARISON_WORDS[r["metric"]] for r in rows if r["verdict"] == "worse")
            verdict, text = "baseline better", (
                f"{name[0].upper()}{name[1:]} ranks better than the model on {worse} (model minus baseline: {figures}). "
                "On this evidence the simpler rule would serve at least as well as the model.")
        else:
            verdict, text = "no clear difference", (
                f"The model does not clearly beat {name} (model minus baseline: {figures}; an interval that "
                "includes 0 means no clear difference). On this evidence the simpler rule ranks about as well; "
                "the case for the model has to rest on more than its ranking.")
        out.append({"baseline": baseline, "verdict": verdict, "metrics": rows, "text": text})
    return out
