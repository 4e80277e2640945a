"""Published rates that cannot be worked back to a small count.

Every count the audit publishes is rounded to the nearest `round_to`; a rate published beside it
must be computed from those rounded counts, or an exact rate undoes the rounding (a recall of
0.1267605 beside "about 70 positives" can only be 9/71). So every share, rate and prevalence in
audit.json is `published_rate(numerator, denominator)`: rounded numerator over rounded
denominator, or None (suppressed) when either count is a small count.

A small count is 1 to min_cell - 1. Zero is published: "never flagged" in a group of hundreds is
the finding a board must see, and zero does not single anyone out that the finding does not.
"""

from __future__ import annotations

import math

from earlysignal.audit.suppression import round_count

# Published figures that are not ratios of counts (AUC, mean score) carry only this many decimals,
# so that they cannot pin down the exact counts behind a rounded group either.
FIGURE_DECIMALS = 2


def is_small(count: float | int | None, min_cell: int) -> bool:
    """True for a count of 1 to min_cell - 1 (a count that must never be published or worked out)."""
    return count is not None and not math.isnan(float(count)) and 0 < float(count) < min_cell


def published_count(count: float | int | None, min_cell: int, round_to: int) -> int | None:
    """A count as published: rounded, or None when it is small."""
    if count is None or math.isnan(float(count)) or is_small(count, min_cell):
        return None
    return round_count(count, round_to)


def published_rate(
    numerator: float | int | None, denominator: float | int | None, min_cell: int, round_to: int
) -> float | None:
    """rounded(numerator) / rounded(denominator); None when either count is small or the rounded denominator is 0.

    numerator and denominator are exact counts (people), numerator <= denominator.
    """
    top = published_count(numerator, min_cell, round_to)
    bottom = published_count(denominator, min_cell, round_to)
    if top is None or bottom is None or bottom == 0:
        return None
    return min(top / bottom, 1.0)


def published_figure(value: float | None, decimals: int = FIGURE_DECIMALS) -> float | None:
    """A figure that is not a ratio of counts (AUC, a mean score), rounded to `decimals` places."""
    if value is None or not math.isfinite(float(value)):
        return None
    return round(float(value), decimals)
