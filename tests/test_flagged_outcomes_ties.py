"""Flagged outcomes when the capacity cuts through a tie: no share of one tie order beside the headline.

Found by a newcomer's trial: a 10,000-resident borough's model, shipped to a 150,000-resident one, gave ~4,900
children the same score and margin at each test date, so place 100 fell inside a tie. The headline counts the
escalations found over every order of the tie (0.74 at one date, withheld as small), the flagged column (ties
broken by resident ID) found 0 and published "0% escalated"; read together the differencing attack pinned a
count and `release --shipped` was refused with nothing left to withhold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from earlysignal.audit.assemble import flagged_outcomes


def _date(tied_at_capacity: bool) -> pd.DataFrame:
    """1,000 residents, 100 flagged, 40 escalations, none of them flagged (0 found: a count that is published).
    With the tie, the 20 lowest flagged and 200 unflagged residents share one score and margin, and 10 of the
    escalations are among those 200: over every order of the tie the list finds 20 x 10 / 220 = 0.9."""
    n = 1000
    score = np.linspace(0.9, 0.1, n)
    margin = np.linspace(2.0, -2.0, n)
    if tied_at_capacity:
        score[80:300] = 0.5
        margin[80:300] = 0.0
    label = np.zeros(n, dtype=int)
    label[150:160] = 1
    label[500:530] = 1
    return pd.DataFrame({"as_of": pd.Timestamp("2025-04-01"), "resident_id": [f"R{i:04d}" for i in range(n)],
                         "label": label, "score": score, "margin": margin, "flagged": np.arange(n) < 100})


def test_a_tie_across_the_capacity_withholds_the_shares_of_the_one_order_flagged() -> None:
    [row] = flagged_outcomes(_date(tied_at_capacity=True), round_to=5, min_cell=10)
    assert row["escalated_share"] is None and row["missed_share"] is None
    assert row["flagged"] == 100 and row["cohort"] == 1000


def test_without_a_tie_the_shares_are_published_as_before() -> None:
    frame = _date(tied_at_capacity=False)
    frame.loc[frame.index[:100], "label"] = 0
    frame.loc[frame.index[:20], "label"] = 1  # 20 found: not small
    [row] = flagged_outcomes(frame, round_to=5, min_cell=10)
    assert row["escalated_share"] == 0.2
    assert row["missed_share"] is not None


def test_a_tie_wholly_inside_the_list_is_not_a_tie_at_capacity() -> None:
    frame = _date(tied_at_capacity=False)
    frame.loc[frame.index[10:50], ["score", "margin"]] = [0.8, 1.5]
    frame.loc[frame.index[:100], "label"] = 0
    frame.loc[frame.index[:20], "label"] = 1
    [row] = flagged_outcomes(frame, round_to=5, min_cell=10)
    assert row["escalated_share"] == 0.2
