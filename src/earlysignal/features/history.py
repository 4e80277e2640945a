"""How much history the data holds: windows that reach back before a source's records begin.

A "3-year" count at an as_of one year after the records begin silently means "1-year". The
manifest says when the records begin: `data_start` (every source; the synthetic borough writes
`window_start`, read as the same) and `source_data_starts` ({source: date}, where a source's
records begin later, e.g. a system introduced in 2019). A windowed feature whose window (for a
trend, its doubled comparison window) starts before its source's data start is null at that row:
LightGBM sends nulls down its own learned branch, and count-type features are never null
otherwise, so the null is the flag. The count of such cells per feature goes in the sidecar.
"all"-history windows and days-since features mean "since records began" and are left as they are.

as_of dates earlier than data start + temporal.min_history_days are refused (ConfigError).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from earlysignal.config import ProjectConfig
from earlysignal.errors import ConfigError

# Every aggregate over a window: the lowest, first or last value in "the last 3 years" is as partial as a count
# when the records begin 1 year back (the first value seen is not the window's first).
_WINDOWED = {"count", "sum", "mean", "max", "min", "first", "last", "distinct_types", "trend"}


def _parse(value: Any, key: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ConfigError(f"manifest.json: {key} must be a date YYYY-MM-DD, found {value!r}") from None


def data_starts(manifest: Mapping[str, Any] | None) -> tuple[dt.date | None, dict[str, dt.date]]:
    """(the data start of every source or None, {source: its own later start}) from a manifest."""
    manifest = manifest or {}
    overall = None
    for key in ("data_start", "window_start"):
        if manifest.get(key):
            overall = _parse(manifest[key], key)
            break
    per_source = manifest.get("source_data_starts") or {}
    if not isinstance(per_source, Mapping):
        raise ConfigError("manifest.json: source_data_starts must be an object {source: YYYY-MM-DD}")
    return overall, {
        str(source): _parse(value, f"source_data_starts.{source}") for source, value in per_source.items()
    }


def check_min_history(config: ProjectConfig, dates: Sequence[dt.date], overall: dt.date | None) -> None:
    """Refuse as_of dates earlier than data start + temporal.min_history_days (ConfigError naming them)."""
    days = config.temporal.min_history_days
    if overall is None or days <= 0:
        return
    earliest = overall + dt.timedelta(days=days)
    early = [d for d in dates if d < earliest]
    if early:
        shown = ", ".join(d.isoformat() for d in early[:5]) + (" ..." if len(early) > 5 else "")
        raise ConfigError(
            f"temporal: {len(early)} as_of date(s) ({shown}) are less than temporal.min_history_days={days} "
            f"days after the data start {overall.isoformat()} (manifest.json); the first allowed as_of is "
            f"{earliest.isoformat()}. Move temporal.first_as_of to it or later, or lower min_history_days"
        )


def null_windows_before_data_start(
    values: np.ndarray,
    columns: Mapping[str, int],
    definitions: Sequence[Any],
    row_as_of_days: np.ndarray,
    overall: dt.date | None,
    per_source: Mapping[str, dt.date],
) -> dict[str, int]:
    """Set to NaN (in place, in the [rows, features] `values`) every windowed feature cell whose
    window starts before its source's data start; return {feature: cells nulled} (nonzero only).

    `row_as_of_days` holds each row's as_of as days since 1970-01-01."""
    nulled: dict[str, int] = {}
    epoch = dt.date(1970, 1, 1)
    for definition in definitions:
        window = getattr(definition, "window_length", None)
        if window is None or definition.aggregate not in _WINDOWED or definition.name not in columns:
            continue
        start = per_source.get(definition.source, overall)
        if start is None:
            continue
        reach = window.times(2) if definition.aggregate == "trend" else window
        short = reach.start_days(row_as_of_days) < (start - epoch).days
        count = int(np.count_nonzero(short))
        if count:
            values[short, columns[definition.name]] = np.nan
            nulled[definition.name] = count
    return nulled
