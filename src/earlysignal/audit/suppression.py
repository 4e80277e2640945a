"""Small-number rules (statistical disclosure control) for every group table in the audit.

UK practice, as configured in `audit`:
- primary: a group with fewer than `min_cell` people or fewer than `min_cell` positives shows
  "suppressed" instead of any of its figures (precision or recall on a handful of cases is both
  disclosive and meaningless);
- secondary: if exactly one group of a characteristic is suppressed, the next smallest is
  suppressed too, so the hidden one cannot be worked out from the total minus the others;
- rounding: every count shown is rounded to the nearest `round_to`.
"""

from __future__ import annotations

import math

import pandas as pd

SUPPRESSED = "suppressed"
PRIMARY = "primary"
SECONDARY = "secondary"


def round_count(value: float | int, round_to: int) -> int:
    """A count rounded to the nearest multiple of round_to (halves round up)."""
    return int(round_to * math.floor(float(value) / round_to + 0.5))


def suppression_reasons(
    table: pd.DataFrame,
    min_cell: int,
    size_column: str = "n",
    positives_column: str = "positives",
    characteristic_column: str = "characteristic",
) -> pd.Series:
    """Per row: 'primary', 'secondary' or None, applying the primary and secondary rules per characteristic."""
    reasons = pd.Series([None] * len(table), index=table.index, dtype=object)
    small = (table[size_column] < min_cell) | (table[positives_column] < min_cell)
    reasons[small] = PRIMARY
    for _, block in table.groupby(characteristic_column, sort=False):
        primary = block.index[small.loc[block.index]]
        shown = block.loc[~small.loc[block.index]]
        if len(primary) == 1 and len(shown) > 0:
            # Suppress the next smallest shown group, by people then positives, so neither
            # count of the hidden group follows from the total.
            order = shown.sort_values([size_column, positives_column], kind="stable")
            reasons[order.index[0]] = SECONDARY
    return reasons


def apply_suppression(
    table: pd.DataFrame,
    min_cell: int,
    round_to: int,
    count_columns: tuple[str, ...] = ("n", "positives", "flagged"),
    figure_columns: tuple[str, ...] = (),
    characteristic_column: str = "characteristic",
) -> pd.DataFrame:
    """Copy of a group table with suppressed rows blanked (None), counts rounded and a 'suppressed' column."""
    reasons = suppression_reasons(table, min_cell, characteristic_column=characteristic_column)
    out = table.copy()
    for column in count_columns:
        if column in out.columns:
            out[column] = out[column].map(lambda v: None if pd.isna(v) else round_count(v, round_to)).astype(object)
    hidden = reasons.notna()
    for column in count_columns + figure_columns:
        if column in out.columns:
            out[column] = out[column].astype(object)
            out.loc[hidden, column] = None
    out["suppressed"] = reasons
    return out
