"""Small-number rules: primary suppression, secondary suppression and rounding of every count shown."""

from __future__ import annotations

import pandas as pd

from earlysignal.audit.suppression import apply_suppression, round_count, suppression_reasons


def _table(rows: list[tuple[str, str, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"characteristic": c, "group": g, "n": n, "positives": p, "flagged": n // 10, "precision": 0.5}
            for c, g, n, p in rows
        ]
    )


def test_counts_are_rounded_to_the_nearest_multiple_with_halves_up() -> None:
    assert [round_count(v, 5) for v in (0, 2, 3, 7, 12, 13, 1234)] == [0, 0, 5, 5, 10, 15, 1235]
    assert round_count(149, 10) == 150


def test_a_group_with_too_few_people_or_too_few_positives_is_suppressed() -> None:
    table = _table(
        [
            ("ethnicity", "White", 500, 40),
            ("ethnicity", "Asian", 9, 0),  # too few people
            ("ethnicity", "Black", 300, 9),  # enough people, too few positives
            ("ethnicity", "Mixed", 200, 12),
            ("ethnicity", "Other", 150, 10),  # exactly min_cell: shown
        ]
    )
    reasons = suppression_reasons(table, min_cell=10)
    assert list(reasons) == [None, "primary", "primary", None, None]


def test_a_single_suppressed_group_takes_the_next_smallest_with_it() -> None:
    table = _table(
        [
            ("sex", "Female", 520, 30),
            ("sex", "Male", 480, 25),
            ("ethnicity", "White", 500, 40),
            ("ethnicity", "Asian", 5, 1),
            ("ethnicity", "Black", 300, 20),
            ("ethnicity", "Mixed", 120, 11),
        ]
    )
    reasons = suppression_reasons(table, min_cell=10)
    # Asian alone would be total minus the others: Mixed (the next smallest) is hidden too.
    assert list(reasons) == [None, None, None, "primary", None, "secondary"]


def test_no_secondary_suppression_when_two_groups_are_already_hidden() -> None:
    table = _table(
        [
            ("ethnicity", "White", 500, 40),
            ("ethnicity", "Asian", 5, 1),
            ("ethnicity", "Other", 8, 0),
            ("ethnicity", "Mixed", 120, 11),
        ]
    )
    assert list(suppression_reasons(table, min_cell=10)) == [None, "primary", "primary", None]


def test_suppressed_rows_show_no_figures_and_shown_counts_are_rounded() -> None:
    table = _table([("ethnicity", "White", 503, 41), ("ethnicity", "Asian", 5, 1), ("ethnicity", "Mixed", 122, 11)])
    out = apply_suppression(table, min_cell=10, round_to=5, figure_columns=("precision",))
    white, asian, mixed = (out.iloc[i] for i in range(3))
    assert (white["n"], white["positives"], white["flagged"], white["precision"]) == (505, 40, 50, 0.5)
    assert white["suppressed"] is None
    for row, reason in ((asian, "primary"), (mixed, "secondary")):
        assert row["suppressed"] == reason
        assert all(row[c] is None for c in ("n", "positives", "flagged", "precision"))
