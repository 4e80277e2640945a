"""How past lists turned out: labels known by the monitoring date, realised precision and recall at
capacity with bootstrap intervals, calibration of past scores, and the share of flagged residents
who received a service response.

Labels follow the point-in-time rules: an outcome counts only if it started in [as_of, as_of + horizon)
and the council knew of it (`known_at`) before the monitoring date; a list whose horizon has not closed
by then has no labels (None), never zeros.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from earlysignal.features.cohort import add_months
from earlysignal.modeling import metrics as M


def horizon_end(as_of: dt.date, horizon_months: int) -> dt.date:
    """The first day after a list's label window."""
    return add_months(as_of, horizon_months)


def realised_labels(
    resident_ids: Sequence[str],
    as_of: dt.date,
    outcomes: pd.DataFrame,
    outcome_types: Sequence[str],
    horizon_months: int,
    known_by: dt.date,
) -> np.ndarray | None:
    """0/1 per resident (n,): a labelled outcome in [as_of, as_of + horizon) known before known_by.

    None when as_of + horizon is after known_by (the horizon has not closed: labels unknown, not 0).
    """
    end = horizon_end(as_of, horizon_months)
    if end > known_by:
        return None
    o = outcomes
    time = pd.to_datetime(o["outcome_time"])
    known = pd.to_datetime(o["known_at"])
    hit = (
        o["outcome_type"].isin(list(outcome_types))
        & (time >= pd.Timestamp(as_of))
        & (time < pd.Timestamp(end))
        & (known < pd.Timestamp(known_by))
    )
    positive = set(o.loc[hit, "resident_id"].astype(str))
    return np.fromiter((rid in positive for rid in resident_ids), dtype=np.int8, count=len(resident_ids))


def list_performance(ranked: pd.DataFrame, labels: np.ndarray, k: int, bootstrap: int, seed: int) -> dict[str, Any]:
    """Precision and recall at capacity, AUC and base rate for one list, each {value, ci_low, ci_high}.

    ranked: resident_id, score, rank (1 = top). Intervals are 95% percentile intervals over `bootstrap`
    resamples of the list's residents (seeded); the list order is the one the caseworkers saw.
    """
    n = len(ranked)
    # Rank, not score, fixes the order: ties were broken when the list was made, and must stay so.
    order_key = (n - ranked["rank"].to_numpy(dtype=float))
    scored = M.RankedList.build(labels, order_key, ranked["resident_id"].to_numpy(), k, is_probability=False)
    point = scored.metrics()
    replicates = M.bootstrap_replicates({"list": scored}, bootstrap, seed)["list"] if bootstrap else {}
    out: dict[str, Any] = {}
    for metric in ("precision_at_capacity", "recall_at_capacity", "roc_auc"):
        low, high = M.interval(replicates[metric]) if bootstrap else (None, None)
        value = point[metric]
        out[metric] = {"value": float(value) if np.isfinite(value) else None, "ci_low": low, "ci_high": high}
    out["base_rate"] = float(labels.mean()) if n else None
    return out


def response_share(
    flagged_ids: Sequence[str],
    as_of: dt.date,
    events: pd.DataFrame,
    source: str,
    event_types: Sequence[str],
    within_days: int,
    known_by: dt.date,
) -> dict[str, Any] | None:
    """Share of flagged residents with a response event in [as_of, as_of + within_days) known before known_by.

    None when the response window has not closed by known_by.
    """
    end = as_of + dt.timedelta(days=within_days)
    if end > known_by:
        return None
    e = events
    time = pd.to_datetime(e["event_time"])
    hit = (
        (e["source"] == source)
        & (time >= pd.Timestamp(as_of))
        & (time < pd.Timestamp(end))
        & (pd.to_datetime(e["known_at"]) < pd.Timestamp(known_by))
        & e["resident_id"].notna()
    )
    if event_types:
        hit &= e["event_type"].isin(list(event_types))
    responded = set(e.loc[hit, "resident_id"].astype(str))
    n = len(flagged_ids)
    count = sum(1 for rid in flagged_ids if rid in responded)
    return {"flagged": n, "responded": count, "share": count / n if n else None}
