"""The synthetic borough's clock: integer days since 1970-01-01 and a monthly grid for the latent chain."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

EPOCH = dt.date(1970, 1, 1)
DAYS_PER_YEAR = 365.25
# A membership or household still going at the extract date ends "never"; clipped to the window when needed.
OPEN = np.int64(10**7)


def to_day(date: dt.date) -> int:
    """Days since 1970-01-01."""
    return (date - EPOCH).days


def add_months(date: dt.date, months: int) -> dt.date:
    """The same day-of-month `months` later (clamped to the month's last day)."""
    index = date.year * 12 + date.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    for day in (date.day, 30, 29, 28):
        try:
            return dt.date(year, month, min(day, date.day))
        except ValueError:
            continue
    raise ValueError(f"cannot add {months} months to {date}")  # pragma: no cover


@dataclass(frozen=True)
class Timeline:
    """The data window [start, end) in days, and month boundaries from the burn-in start to the end."""

    start_day: int
    end_day: int
    burn_in_months: int
    month_starts: np.ndarray  # int64 days; month k (k = -burn_in..months-1) is [month_starts[k+B], month_starts[k+B+1])
    month_numbers: np.ndarray  # calendar month 1..12 of each grid month

    @property
    def months(self) -> int:
        """Months inside the data window."""
        return len(self.month_starts) - 1 - self.burn_in_months

    @property
    def grid_months(self) -> int:
        """Months on the grid including burn-in."""
        return len(self.month_starts) - 1


def make_timeline(end_date: dt.date, years: int, burn_in_months: int = 48) -> Timeline:
    """The window of `years` calendar years ending (exclusive) at `end_date`, with a monthly grid."""
    months = years * 12
    dates = [add_months(end_date, k - months) for k in range(-burn_in_months, months + 1)]
    starts = np.array([to_day(d) for d in dates], dtype=np.int64)
    numbers = np.array([d.month for d in dates[:-1]], dtype=np.int8)
    return Timeline(
        start_day=int(starts[burn_in_months]),
        end_day=int(starts[-1]),
        burn_in_months=burn_in_months,
        month_starts=starts,
        month_numbers=numbers,
    )
