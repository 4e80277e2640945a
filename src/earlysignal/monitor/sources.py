"""Data drift per source: monthly volumes against the reference (training) period, the mix of event
types (PSI), and the PSI of each source's model features taken from the lists' drift summaries.

A source that goes silent, or records far less than it used to, changes what every feature built
from it means; the model keeps scoring as if nothing happened. These numbers make that visible.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

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


def month_index(day: dt.date) -> int:
    """Months since year 0 of day's month (year * 12 + month - 1): a month as one integer."""
    return day.year * 12 + day.month - 1


def lag_thresholds(recent: tuple[dt.date, dt.date], known_by: dt.date) -> np.ndarray:
    """The reporting allowances (days) of the recent months, sorted and distinct: a recent month m is
    seen known_by - end(m) days after it ended, and reference records count towards its expectation
    when they were known less than that many days after their own month ended."""
    return np.unique(np.array([(known_by - _next_month(m)).days for m in months_between(*recent)], dtype=float))


@dataclasses.dataclass(frozen=True)
class VolumeCounts:
    """Events counted per (source, event_type, month of event_time, lag bucket): everything the volume drift
    reads of the events, a table whose size is set by the sources, types, months and recent months, never by
    the population.

    counts: columns source (str), event_type (str, null kept), month (int, `month_index`), bucket (int), n
    (int64). bucket = how many of `thresholds` are <= the event's reporting lag in days (its known_at minus
    the end of its event month); the event was known less than thresholds[i] days after its month ended
    exactly when bucket <= i. Events without event_time or source are left out (they fall in no month).
    """

    counts: pd.DataFrame
    thresholds: np.ndarray

    KEYS: ClassVar[tuple[str, ...]] = ("source", "event_type", "month", "bucket")

    @classmethod
    def of(cls, events: pd.DataFrame, thresholds: np.ndarray) -> VolumeCounts:
        """Count `events` (source, event_type, event_time, known_at; any number of rows)."""
        time = pd.to_datetime(events["event_time"]).to_numpy(dtype="datetime64[us]")
        known = pd.to_datetime(events["known_at"]).to_numpy(dtype="datetime64[us]")
        months = time.astype("datetime64[M]")
        # Days from the end of the event's month to when it was known (microseconds over a day's, as floats).
        lag_days = (known - (months + 1).astype("datetime64[us]")) / np.timedelta64(1, "D")
        # A missing lag (no known_at) sorts after every threshold: never counted as known in time.
        bucket = np.searchsorted(thresholds, lag_days, side="right")
        keep = ~np.isnat(time) & events["source"].notna().to_numpy()
        frame = pd.DataFrame({
            "source": events["source"].astype("object").to_numpy()[keep],
            "event_type": events["event_type"].astype("object").to_numpy()[keep],
            "month": months[keep].astype(np.int64) + 1970 * 12,
            "bucket": bucket[keep].astype(np.int64),
        })
        counts = frame.groupby(list(cls.KEYS), sort=True, dropna=False).size().rename("n").reset_index()
        return cls(counts.astype({"n": np.int64}), np.asarray(thresholds, dtype=float))

    @classmethod
    def total(cls, parts: Sequence[VolumeCounts], thresholds: np.ndarray) -> VolumeCounts:
        """The counts of several sets of events (disjoint: each event in one part) added up."""
        frames = [p.counts for p in parts if len(p.counts)]
        if not frames:
            return cls.of(pd.DataFrame({"source": [], "event_type": [], "event_time": pd.to_datetime([]),
                                        "known_at": pd.to_datetime([])}), thresholds)
        counts = pd.concat(frames, ignore_index=True)
        counts = counts.groupby(list(cls.KEYS), sort=True, dropna=False)["n"].sum().reset_index()
        return cls(counts.astype({"n": np.int64}), np.asarray(thresholds, dtype=float))


def source_volume_drift(
    events: pd.DataFrame,
    sources: Sequence[str],
    reference: tuple[dt.date, dt.date],
    recent: tuple[dt.date, dt.date],
    known_by: dt.date,
    alpha: float = 0.01,
) -> list[dict[str, Any]]:
    """Per source: recent monthly volume against what the reference period leads one to expect (see
    `source_volume_drift_of_counts`, which this is over the events' `VolumeCounts`)."""
    volumes = VolumeCounts.of(events, lag_thresholds(recent, known_by))
    return source_volume_drift_of_counts(volumes, sources, reference, recent, known_by, alpha)


def source_volume_drift_of_counts(
    volumes: VolumeCounts,
    sources: Sequence[str],
    reference: tuple[dt.date, dt.date],
    recent: tuple[dt.date, dt.date],
    known_by: dt.date,
    alpha: float = 0.01,
) -> list[dict[str, Any]]:
    """Per source: recent monthly volume against what the reference period leads one to expect, the drop
    (fraction, 0.8 = 80% fewer records), silent recent months and the event-type mix PSI.

    Periods are [start, end) of whole months (first days of months; ValueError otherwise). Sources that
    record late (school census a term in arrears, A&E a month or two) would look like they dropped in the
    last months, so the comparison is like for like: a recent month m, seen known_by - end(m) days after it
    ended, is compared with the reference months of the same calendar month (seasonal sources), counting
    their events known within the same number of days after their month ended. `volumes` must be bucketed
    with lag_thresholds(recent, known_by) (ValueError otherwise).

    Small sources vary a lot from month to month by chance, so each drop carries the one-sided Poisson
    probability of seeing so few records if nothing had changed (`p_value`); `significant` is p < alpha.
    A recent month is silent when it has no records although the reference makes that improbable
    (exp(-expected) < alpha).
    """
    from scipy.stats import poisson

    if any(day.day != 1 for day in (*reference, *recent)):
        raise ValueError(f"periods must start and end on the first of a month, got {reference} and {recent}")
    thresholds = lag_thresholds(recent, known_by)
    if not np.array_equal(thresholds, volumes.thresholds):
        raise ValueError("the volume counts were bucketed for other recent months or another monitoring date")
    ref_months = months_between(*reference)
    recent_months = months_between(*recent)
    counts = volumes.counts
    month = counts["month"].to_numpy()
    n = counts["n"].to_numpy()
    bucket = counts["bucket"].to_numpy()
    source_of = counts["source"].to_numpy()
    event_type = counts["event_type"]
    in_ref = (month >= month_index(reference[0])) & (month < month_index(reference[1]))
    in_recent = (month >= month_index(recent[0])) & (month < month_index(recent[1]))
    # Calendar month (1-12) of each count's month.
    calendar = month % 12 + 1
    allowance_bucket = {a: int(np.searchsorted(thresholds, a)) for a in thresholds}
    allowance = [float((known_by - _next_month(m)).days) for m in recent_months]
    # Records such as school absence are seasonal: a recent month is compared with the reference
    # months of the same calendar month when the reference period has any, else with all of them.
    ref_calendar = np.array([m.month for m in ref_months])
    out = []
    for source in sources:
        mine = source_of == source

        def monthly(months: list[dt.date], mine: np.ndarray = mine) -> np.ndarray:
            return np.array([int(n[mine & (month == month_index(m))].sum()) for m in months], dtype=float)

        ref_counts = monthly(ref_months)
        recent_counts = monthly(recent_months)
        ref_rows = mine & in_ref
        expected = np.zeros(len(recent_months))
        for i, (m, a) in enumerate(zip(recent_months, allowance, strict=True)):
            same = int((ref_calendar == m.month).sum())
            pool = ref_rows & (calendar == m.month) if same else ref_rows
            expected[i] = float(int(n[pool & (bucket <= allowance_bucket[a])].sum())) / (same or max(len(ref_months), 1))
        drop = p_value = None
        if ref_months and expected.sum() > 0:
            drop = 1.0 - float(recent_counts.sum() / expected.sum())
            p_value = float(poisson.cdf(recent_counts.sum(), expected.sum()))
        mix = mix_psi(_type_counts(event_type, n, mine & in_ref), _type_counts(event_type, n, mine & in_recent))
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
            "monthly": {m.isoformat(): int(c) for m, c in
                        zip(ref_months + recent_months, np.concatenate([ref_counts, recent_counts]), strict=True)},
        })
    return out


def _type_counts(event_type: pd.Series, n: np.ndarray, rows: np.ndarray) -> dict[str, int]:
    """Events per event type over the count rows `rows` (types not recorded left out)."""
    types = event_type[rows]
    known = types.notna().to_numpy()
    totals = pd.Series(n[rows][known]).groupby(types[known].astype(str).to_numpy()).sum()
    return {str(k): int(v) for k, v in totals.items() if v > 0}


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
