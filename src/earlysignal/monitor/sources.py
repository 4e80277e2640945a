"""Data drift per source: monthly volumes against the reference (training) period, the mix of event
types (PSI), and the PSI of each source's model features taken from the lists' drift summaries.

A source that goes silent, or records far less than it used to, changes what every feature built
from it means; the model keeps scoring as if nothing happened. These numbers make that visible.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

_FLOOR = 1e-4  # the same floor as modeling.drift: an empty bin would make the logarithm infinite


def month_start(day: dt.date) -> dt.date:
    return dt.date(day.year, day.month, 1)


def months_between(start: dt.date, end: dt.date) -> list[dt.date]:
    """First days of the months from start's month up to, not including, end's month."""
    out = []
    current = month_start(start)
    stop = month_start(end)
    while current < stop:
        out.append(current)
        current = dt.date(current.year + current.month // 12, current.month % 12 + 1, 1)
    return out


def monthly_volumes(events: pd.DataFrame, sources: Sequence[str], months: Sequence[dt.date]) -> pd.DataFrame:
    """Events per (source, calendar month of event_time): a sources x months frame of counts (zeros kept)."""
    month = pd.to_datetime(events["event_time"]).dt.to_period("M")
    counts = events.assign(month=month).groupby(["source", "month"], observed=True).size()
    periods = [pd.Period(m, freq="M") for m in months]
    table = counts.unstack("month", fill_value=0) if len(counts) else pd.DataFrame()
    table = table.reindex(index=list(sources), columns=periods, fill_value=0).fillna(0).astype(int)
    table.columns = [p.start_time.date() for p in periods]
    return table


def mix_psi(reference: Mapping[str, int], recent: Mapping[str, int]) -> float | None:
    """PSI of the event-type mix of recent records against the reference period (None without records)."""
    kinds = sorted(set(reference) | set(recent))
    ref = np.array([reference.get(k, 0) for k in kinds], dtype=float)
    new = np.array([recent.get(k, 0) for k in kinds], dtype=float)
    if ref.sum() == 0 or new.sum() == 0:
        return None
    expected = np.maximum(ref / ref.sum(), _FLOOR)
    actual = np.maximum(new / new.sum(), _FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


def source_volume_drift(
    events: pd.DataFrame,
    sources: Sequence[str],
    reference: tuple[dt.date, dt.date],
    recent: tuple[dt.date, dt.date],
    known_by: dt.date,
    alpha: float = 0.01,
) -> list[dict[str, Any]]:
    """Per source: recent monthly volume against what the reference period leads one to expect, the drop
    (fraction, 0.8 = 80% fewer records), silent recent months and the event-type mix PSI.

    Periods are [start, end) of whole months. Sources that record late (school census a term in arrears,
    A&E a month or two) would look like they dropped in the last months, so the comparison is like for
    like: a recent month m, seen known_by - end(m) days after it ended, is compared with the reference
    months of the same calendar month (seasonal sources), counting their events known within the same
    number of days after their month ended.

    Small sources vary a lot from month to month by chance, so each drop carries the one-sided Poisson
    probability of seeing so few records if nothing had changed (`p_value`); `significant` is p < alpha.
    A recent month is silent when it has no records although the reference makes that improbable
    (exp(-expected) < alpha).
    """
    from scipy.stats import poisson
    ref_months = months_between(*reference)
    recent_months = months_between(*recent)
    volumes = monthly_volumes(events, sources, ref_months + recent_months)
    time = pd.to_datetime(events["event_time"])
    known = pd.to_datetime(events["known_at"])
    month_end = (time.dt.to_period("M") + 1).dt.start_time
    lag_days = (known - month_end) / pd.Timedelta(days=1)
    in_ref = (time >= pd.Timestamp(reference[0])) & (time < pd.Timestamp(reference[1]))
    in_recent = (time >= pd.Timestamp(recent[0])) & (time < pd.Timestamp(recent[1]))
    allowance = np.array([(known_by - _next_month(m)).days for m in recent_months], dtype=float)
    # Records such as school absence are seasonal: a recent month is compared with the reference
    # months of the same calendar month when the reference period has any, else with all of them.
    ref_calendar = np.array([m.month for m in ref_months])
    event_calendar = time.dt.month.to_numpy()
    out = []
    for source in sources:
        mine = (events["source"] == source).to_numpy()
        ref_rows = mine & in_ref.to_numpy()
        ref_lags = lag_days.to_numpy()[ref_rows]
        ref_event_calendar = event_calendar[ref_rows]
        recent_counts = volumes.loc[source, recent_months].to_numpy(dtype=float)
        expected = np.zeros(len(recent_months))
        for i, (m, a) in enumerate(zip(recent_months, allowance, strict=True)):
            same = int((ref_calendar == m.month).sum())
            pool = (ref_event_calendar == m.month) if same else np.ones(len(ref_lags), dtype=bool)
            expected[i] = float(((ref_lags < a) & pool).sum()) / (same or max(len(ref_months), 1))
        drop = p_value = None
        if ref_months and expected.sum() > 0:
            drop = 1.0 - float(recent_counts.sum() / expected.sum())
            p_value = float(poisson.cdf(recent_counts.sum(), expected.sum()))
        mix = mix_psi(
            events.loc[mine & in_ref.to_numpy(), "event_type"].value_counts().to_dict(),
            events.loc[mine & in_recent.to_numpy(), "event_type"].value_counts().to_dict(),
        )
        ref_counts = volumes.loc[source, ref_months].to_numpy(dtype=float)
        out.append({
            "source": source,
            "reference_monthly_mean": float(ref_counts.mean()) if len(ref_counts) else None,
            "recent_monthly_mean": float(recent_counts.mean()) if len(recent_counts) else None,
            "expected_recent_monthly_mean": float(expected.mean()) if len(expected) else None,
            "drop": drop,
            "p_value": p_value,
            "significant": p_value is not None and p_value < alpha,
            # Silent: nothing recorded in a month in which the reference makes that improbable.
            "silent_months": [
                m.isoformat()
                for m, c, e in zip(recent_months, recent_counts, expected, strict=True)
                if c == 0 and np.exp(-e) < alpha
            ],
            "type_mix_psi": mix,
            "monthly": {m.isoformat(): int(c) for m, c in volumes.loc[source].items()},
        })
    return out


def feature_psi_by_source(feature_psi: Mapping[str, float], source_of: Mapping[str, str]) -> dict[str, float]:
    """Largest feature PSI per source, from one list's drift summary (features of unknown source skipped)."""
    out: dict[str, float] = {}
    for feature, value in feature_psi.items():
        source = source_of.get(feature)
        if source is None or value is None or not np.isfinite(value):
            continue
        out[source] = max(out.get(source, 0.0), float(value))
    return out


def sources_of_features(definitions: Iterable[Any]) -> dict[str, str]:
    """feature name -> source, from feature definitions (objects with .name and .source)."""
    return {d.name: d.source for d in definitions}


def windowed_sources_of_features(definitions: Iterable[Any]) -> dict[str, str]:
    """feature name -> source, for the features the source_psi criterion judges: windowed ones only.

    A feature over the whole record (window "all": counts and days since records began) grows with
    the length of the record by construction, so its drift says how long the data goes back, not that
    the source changed (an 8-year synthetic borough with no change turned housing repairs red on
    general repairs ever recorded at the address, PSI 0.46). Such features stay in each list's drift summary.
    """
    return {d.name: d.source for d in definitions if getattr(d, "window", "") != "all"}
