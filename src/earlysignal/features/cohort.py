"""The as_of grid and the cohort: who is eligible at each as_of."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from earlysignal.config import LabelSection, ProjectConfig
from earlysignal.dictionary import dictionary_for
from earlysignal.engines.base import Engine
from earlysignal.errors import ConfigError
from earlysignal.features.sql import cohort_sql

EPOCH = dt.date(1970, 1, 1)


def add_months(day: dt.date, months: int) -> dt.date:
    """Calendar months later, clamping the day to the month's end (31 Aug + 6 months = 28/29 Feb)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class AsOfGrid:
    """The sorted, distinct as_of dates A_0 < A_1 < ... and their label window ends."""

    dates: tuple[dt.date, ...]
    ends: tuple[dt.date, ...]

    @classmethod
    def from_dates(
        cls, dates: Sequence[dt.date], horizon: int | LabelSection | Callable[[dt.date], dt.date]
    ) -> AsOfGrid:
        """Sort and de-duplicate; `horizon` is whole calendar months, a LabelSection or a function
        as_of -> window end. An empty grid is a config error."""
        unique = tuple(sorted({d if not isinstance(d, dt.datetime) else d.date() for d in dates}))
        if not unique:
            raise ConfigError("temporal: the as_of grid is empty; check first_as_of, last_as_of and frequency")
        if isinstance(horizon, LabelSection):
            end_of = horizon.window_end
        elif callable(horizon):
            end_of = horizon
        else:
            months = int(horizon)
            end_of = lambda day: add_months(day, months)  # noqa: E731
        return cls(unique, tuple(end_of(d) for d in unique))

    @property
    def size(self) -> int:
        """Number of as_of dates (J)."""
        return len(self.dates)

    @property
    def days(self) -> np.ndarray:
        """Each as_of as days since 1970-01-01 (int64)."""
        return np.array([(d - EPOCH).days for d in self.dates], dtype=np.int64)

    @property
    def timestamps(self) -> list[dt.datetime]:
        """Each as_of at midnight."""
        return [dt.datetime(d.year, d.month, d.day) for d in self.dates]

    @property
    def horizon_ends(self) -> list[dt.date]:
        """The end of each as_of's label window [as_of, end) (label.window_end), per as_of."""
        return list(self.ends)

    def frame(self) -> pd.DataFrame:
        """The `grid` table the SQL joins to: j, as_of, as_of_ts, horizon_end_ts."""
        return pd.DataFrame(
            {
                "j": np.arange(self.size, dtype=np.int32),
                "as_of": pd.Series(self.dates, dtype="date32[pyarrow]"),
                "as_of_ts": pd.to_datetime(pd.Series(self.timestamps)).astype("datetime64[us]"),
                "horizon_end_ts": pd.to_datetime(pd.Series(self.horizon_ends)).astype("datetime64[us]"),
            }
        )


@dataclass(frozen=True)
class Cohort:
    """Cohort rows as dense keys, sorted by (as_of index j, resident index r)."""

    r_idx: np.ndarray
    j: np.ndarray

    def __len__(self) -> int:
        return int(self.r_idx.size)


def entry_columns(config: ProjectConfig) -> tuple[str, str | None] | None:
    """(cohort.entry_column, the date column the dictionary names as its `known_from`, or None);
    None when the cohort has no entry rule."""
    column = config.cohort.entry_column
    if column is None:
        return None
    spec = dictionary_for(config).residents.get(column)
    return column, (spec.known_from if spec is not None else None)


def check_entry_column(config: ProjectConfig, residents: pd.DataFrame) -> None:
    """Before any work: cohort.entry_column (and its known_from column) must be date columns of
    residents (nulls allowed: that person never enters). Raises ConfigError naming the key and column."""
    columns = entry_columns(config)
    if columns is None:
        return
    for role, column in zip(("cohort.entry_column", "its known_from"), columns, strict=True):
        if column is None:
            continue
        if column not in residents.columns:
            raise ConfigError(
                f"{role}: residents has no column {column!r}; declare it in the data dictionary as a date "
                "attribute of residents and supply it, or remove cohort.entry_column"
            )
        values = residents[column]
        parsed = pd.to_datetime(values, errors="coerce", format="ISO8601")
        bad = values.notna().to_numpy() & parsed.isna().to_numpy()
        if bad.any():
            raise ConfigError(
                f"{role}: residents.{column} is not a date column ({int(bad.sum()):,} value(s) are not dates, "
                f"e.g. {values[bad].iloc[0]!r}); declare it as kind 'date' in the data dictionary"
            )


def build_cohort(engine: Engine, config: ProjectConfig, grid: AsOfGrid) -> Cohort:
    """Run the cohort SQL (tables already registered) and return its rows in output order.

    Registers `cohort_lookback` (j, since_0, ...) when a rule looks back a number of days."""
    cohort = config.cohort
    lookback_days = [rule.within_days for rule in cohort.require_recent_events] + [
        rule.within_days for rule in cohort.exclude_prior_outcomes if rule.within_days is not None
    ]
    if lookback_days:
        lookback = pd.DataFrame({"j": np.arange(grid.size, dtype=np.int32)})
        for number, days in enumerate(lookback_days):
            lookback[f"since_{number}"] = pd.to_datetime(
                pd.Series([t - dt.timedelta(days=days) for t in grid.timestamps])
            ).astype("datetime64[us]")
        engine.register("cohort_lookback", lookback)
    birth_range = None
    if cohort.uses_age:
        # Loose bounds (a year is at most 366 days, at least 365): aged <= max_age at the first
        # as_of means born after it minus (max_age + 1) years; aged >= min_age at the last means
        # born no later than it minus min_age years.
        low = grid.dates[0] - dt.timedelta(days=366 * (cohort.max_age + 1)) if cohort.max_age is not None else dt.date(1, 1, 1)
        high = grid.dates[-1] - dt.timedelta(days=365 * (cohort.min_age or 0))
        birth_range = (low, high)
    sql = cohort_sql(
        engine.dialect,
        min_age=cohort.min_age,
        max_age=cohort.max_age,
        require_residency=cohort.require_residency,
        exclude_open_outcomes=cohort.exclude_open_outcomes,
        birth_range=birth_range,
        recent_events=[[(k.source, k.event_type) for k in rule.events] for rule in cohort.require_recent_events],
        prior_outcomes=[(rule.outcome_types, rule.within_days is not None) for rule in cohort.exclude_prior_outcomes],
        **dict(zip(("entry_column", "entry_known_from"), entry_columns(config) or (None, None), strict=True)),
    )
    table = engine.run(sql)
    r_idx = table.column("r_idx").to_numpy().astype(np.int64)
    j = table.column("j").to_numpy().astype(np.int64)
    order = np.lexsort((r_idx, j))
    return Cohort(r_idx=r_idx[order], j=j[order])
