"""How past lists turned out: labels known by the monitoring date, realised precision and recall at
capacity with bootstrap intervals, calibration of past scores, and the share of flagged residents
who received a service response.

Labels are the feature matrix's labels (one code path, features/labels.py): an outcome counts only if
it started in the label window and the council knew of it (`known_at`) before the monitoring date; a
resident whose follow-up ended inside the window without it (left the area, died) is censored
(unknown), not a realised negative; a list whose horizon has not closed by then has no labels (None).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from earlysignal.config import ProjectConfig
from earlysignal.features.labels import resident_label_timing
from earlysignal.modeling import metrics as M


def realised_labels(
    config: ProjectConfig,
    data: Any,
    resident_ids: Sequence[str],
    as_of: dt.date,
    known_by: dt.date,
) -> pd.arrays.IntegerArray | None:
    """Nullable Int8 label per resident (n,) for a list made at as_of, as known at known_by.

    The feature matrix's own label code (`features.labels.resident_label_timing`, then `label_at`):
    1 when a labelled outcome started in [as_of, label.window_end(as_of)) and was recorded before
    known_by; null (censored) when, without such a record, the resident's follow-up ended inside the
    window (left the area, died, label.censoring.end_column); 0 otherwise. None when the window had
    not closed by known_by (labels unknown, not 0). data: residents, residency, outcomes, extract_date.
    """
    if config.label.window_end(as_of) > known_by:
        return None
    timing = resident_label_timing(
        config, data.residents, data.residency, data.outcomes, list(resident_ids), as_of, data.extract_date
    )
    return timing.at(known_by, data.extract_date)


def list_performance(
    ranked: pd.DataFrame, labels: np.ndarray | pd.arrays.IntegerArray, k: int, bootstrap: int, seed: int
) -> dict[str, Any]:
    """Precision and recall at capacity, AUC and base rate for one list, each {value, ci_low, ci_high}.

    ranked: resident_id, score, rank (1 = top). labels: 0/1 per row, null where unknown (censored).
    Censored residents are left out, in list order, as the audit leaves out unlabelled rows: precision
    at capacity is over the flagged residents (rank <= k) whose outcome is known, recall over the
    known positives. Intervals are 95% percentile intervals over `bootstrap` resamples of the list's
    residents (seeded); the list order is the one the caseworkers saw.
    """
    values = pd.array(labels, dtype="Int8")
    known = ~np.asarray(values.isna())
    y = np.asarray(values.fillna(0), dtype=np.int8)[known]
    kept = ranked.loc[known]
    n = len(kept)
    # The flagged residents whose outcome is known: the first k_known rows of the list without the censored.
    k_known = int((ranked["rank"].to_numpy()[known] <= k).sum())
    # Rank, not score, fixes the order: ties were broken when the list was made, and must stay so.
    order_key = -kept["rank"].to_numpy(dtype=float)
    scored = M.RankedList.build(y, order_key, kept["resident_id"].to_numpy(), k_known, is_probability=False)
    point = scored.metrics()
    replicates = M.bootstrap_replicates({"list": scored}, bootstrap, seed)["list"] if bootstrap else {}
    out: dict[str, Any] = {}
    for metric in ("precision_at_capacity", "recall_at_capacity", "roc_auc"):
        low, high = M.interval(replicates[metric]) if bootstrap else (None, None)
        value = point[metric]
        out[metric] = {"value": float(value) if np.isfinite(value) else None, "ci_low": low, "ci_high": high}
    out["base_rate"] = float(y.mean()) if n else None
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
    if as_of + dt.timedelta(days=within_days) > known_by:
        return None
    return share_of_flagged(flagged_ids, responded_ids(events, as_of, source, event_types, within_days, known_by))


def responded_ids(
    events: pd.DataFrame,
    as_of: dt.date,
    source: str,
    event_types: Sequence[str],
    within_days: int,
    known_by: dt.date,
) -> set[str]:
    """Residents with a `source` event (of `event_types`, all when empty) in [as_of, as_of + within_days)
    known before known_by, among `events` (resident_id, source, event_type, event_time, known_at)."""
    end = as_of + dt.timedelta(days=within_days)
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
    return set(e.loc[hit, "resident_id"].astype(str))


def share_of_flagged(flagged_ids: Sequence[str], responded: set[str]) -> dict[str, Any]:
    """{flagged, responded, share}: how many of `flagged_ids` are in `responded`."""
    n = len(flagged_ids)
    count = sum(1 for rid in flagged_ids if rid in responded)
    return {"flagged": n, "responded": count, "share": count / n if n else None}
