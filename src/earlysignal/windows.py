"""Feature look-back windows: fixed days ('90d') or calendar months ('3m', '12m'; 'Ny' is 12N months).

The boundary rule, the same in every engine (DuckDB SQL, the NumPy builder, Spark) and in the journey:
an event with time t counts at as_of A in a window of length L iff start(A, L) <= t < A (and it was
known before A), where
  - 'Nd': start = A - N days;
  - 'Nm' / 'Ny': start = the same day of the month N (or 12N) calendar months before A, clamped to the
    last day of that month (31 May - 3m = 28 Feb, or 29 Feb in a leap year).
So for records stamped on the 1st of a month and as_of dates on the 1st, a '12m' window always holds
exactly 12 monthly records and '3m' exactly 3, whatever the month lengths and leap years in between,
which a 365-day or 90-day window does not (docs/adr/0020-calendar-windows.md).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

EPOCH = dt.date(1970, 1, 1)
_WINDOW_RE = re.compile(r"^(?:(\d+)([dmy])|all)$")


def add_calendar_months(day: dt.date, months: int) -> dt.date:
    """`day` moved by `months` calendar months (negative: back), the day clamped to the month's end
    (31 Aug + 6 months = 28/29 Feb; 31 May - 3 months = 28/29 Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return dt.date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


@dataclass(frozen=True, order=True)
class WindowLength:
    """A window's length: `amount` days (unit 'd') or `amount` calendar months (unit 'm')."""

    unit: Literal["d", "m"]
    amount: int

    def start(self, as_of: dt.date) -> dt.date:
        """First day inside the window [start, as_of)."""
        if self.unit == "d":
            return as_of - dt.timedelta(days=self.amount)
        return add_calendar_months(as_of, -self.amount)

    def start_days(self, as_of_days: np.ndarray) -> np.ndarray:
        """Window starts for as_of dates given as days since 1970-01-01 (any shape; int64 out, same shape).
        Non-decreasing in as_of, which the builder's bucket lookups rely on."""
        days = np.asarray(as_of_days, dtype=np.int64)
        if self.unit == "d":
            return days - self.amount
        unique, inverse = np.unique(days, return_inverse=True)
        starts = np.array([(self.start(EPOCH + dt.timedelta(days=int(d))) - EPOCH).days for d in unique], dtype=np.int64)
        return starts[inverse].reshape(days.shape)

    def times(self, factor: int) -> WindowLength:
        """This length `factor` times over (a trend compares a window with the one before it: 2 x)."""
        return WindowLength(self.unit, self.amount * factor)

    @property
    def spelled(self) -> str:
        """The window as config spells it: '365d', '12m' (a year window reads in months: '3y' is '36m')."""
        return f"{self.amount}{self.unit}"

    @property
    def phrase(self) -> str:
        """'the last 3 months', 'the last 12 months', 'the last 3 years', 'the last 4 weeks', 'the last 90 days'."""
        if self.unit == "m":
            if self.amount % 12 == 0 and self.amount > 12:
                return f"the last {self.amount // 12} years"
            return "the last month" if self.amount == 1 else f"the last {self.amount} months"
        if self.amount % 7 == 0 and self.amount < 30:
            weeks = self.amount // 7
            return "the last week" if weeks == 1 else f"the last {weeks} weeks"
        return "the last day" if self.amount == 1 else f"the last {self.amount} days"


def window_length(window: str) -> WindowLength | None:
    """The length of a window written '90d' (days), '3m' (calendar months) or '3y' (calendar years, 12
    months each); None for 'all' (the whole history). Raises ValueError naming the bad window."""
    match = _WINDOW_RE.match(window)
    if not match:
        raise ValueError(f"window {window!r} is not of the form 90d (days), 3m (calendar months), 3y (calendar years) or all")
    if window == "all":
        return None
    number, unit = int(match.group(1)), match.group(2)
    if number <= 0:
        raise ValueError(f"window {window!r} must be longer than zero")
    if unit == "d":
        return WindowLength("d", number)
    return WindowLength("m", number * (12 if unit == "y" else 1))


__all__ = ["WindowLength", "add_calendar_months", "window_length"]
