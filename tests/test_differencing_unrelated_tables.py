"""A group's withheld count pinned through an unrelated characteristic's table is protected, not refused.

Found by a newcomer's trial on a 10,000-resident borough: every sex and ethnicity group was withheld, but the
largest disability group was shown with 15 escalations, so with both sexes known to be under 10 women's
escalations were 15 - 9 = 6 or more (4 or more after rounding): `audit` and `release` stopped with a raw
ValueError traceback ("nothing left to withhold") because only the pinned table and the tables it is an
intersection of were searched for a figure to withhold.
"""

from __future__ import annotations

import copy

import pytest

from earlysignal.audit.differencing import close_differencing, worked_back
from earlysignal.errors import EarlySignalError

NULLS = ("n", "positives", "flagged", "prevalence", "selection_rate", "precision", "recall", "fpr", "fnr", "auc",
         "mean_score", "calibration_ratio")


def _withheld(group: str, reference: bool = False) -> dict:
    return {"group": group, "is_reference": reference, "suppressed": "primary", **dict.fromkeys(NULLS), "ratios": {}}


def _document() -> dict:
    not_disabled = {"group": "Not disabled", "is_reference": True, "suppressed": None, "n": 8420, "positives": 15,
                    "flagged": 370, "prevalence": 15 / 8420, "selection_rate": 370 / 8420, "precision": None,
                    "recall": None, "fpr": 0.044, "fnr": None, "auc": 0.56, "mean_score": 0.002,
                    "calibration_ratio": 0.79, "ratios": {}}
    return {
        "small_numbers": {"min_cell": 10, "round_to": 5},
        "performance": {"n": 9205, "positives": 15, "places": 400},
        "fairness": {
            "ratio_band": [0.8, 1.25],
            "characteristics": [
                {"key": "sex", "attributes": ["sex"], "reference": "Male",
                 "groups": [_withheld("Female"), _withheld("Male", reference=True)]},
                {"key": "disability", "attributes": ["disability"], "reference": "Not disabled",
                 "groups": [_withheld("Disabled"), not_disabled, _withheld("Not recorded")]},
            ],
            "findings": [],
        },
    }


def test_the_attack_pins_a_sex_group_through_the_disability_table() -> None:
    document = _document()
    document["performance"]["positives"] = None  # even without the total: the shown group bounds it
    names = [bound.name for bound in worked_back(document, ["Not recorded"])]
    assert "sex=Female positives" in names


def test_a_group_pinned_through_an_unrelated_table_is_closed_by_hiding_that_tables_shown_group() -> None:
    document = _document()
    closed = close_differencing(copy.deepcopy(document), ["Not recorded"])
    assert worked_back(closed, ["Not recorded"]) == []
    disability = {g["group"]: g for g in closed["fairness"]["characteristics"][1]["groups"]}
    assert disability["Not disabled"]["suppressed"] not in (None, "primary")
    assert disability["Not disabled"]["positives"] is None


def test_a_fairness_table_that_cannot_be_made_safe_is_a_plain_error(monkeypatch) -> None:
    from earlysignal.audit import differencing, fairness

    def refuse(*_args, **_kwargs):
        raise ValueError("x can be worked back to 1-2 and there is nothing left to withhold")

    monkeypatch.setattr(differencing, "close_differencing", refuse)
    with pytest.raises(EarlySignalError, match="audit.min_cell") as caught:
        fairness.protect_group_tables({"characteristics": [], "findings": []}, 10, 5, ["Not recorded"])
    assert isinstance(caught.value, ValueError)
