"""Every feature family and aggregate reads as a sentence a caseworker can use, and values that are no concern
(a zero count, a trend of 0, a category the person is not in) are never shown (issue 9 part E)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from earlysignal.config import load_config
from earlysignal.explain import is_concern, reason_sentence
from earlysignal.features.spec import feature_definitions

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def records() -> dict[str, dict]:
    config = load_config(REPO / "conf" / "borough.yaml")
    return {d.name: d.public_record() for d in feature_definitions(config)}


SENTENCES = [
    ("resident__school__absence__count__90d", 3, "3 months with school absence in the last 3 months"),
    ("resident__school__absence__count__90d", 1, "1 month with school absence in the last 3 months"),
    ("household__council_tax__summons__count__365d", 1, "1 council tax summons in the household in the last 12 months"),
    ("household__council_tax__summons__count__365d", 2, "2 council tax summonses in the household in the last 12 months"),
    ("household__council_tax__summons__sum__365d", 2842.9,
     "£2,842.90 owed in total across council tax summonses in the household in the last 12 months"),
    ("resident__school__absence__trend__365d", 2,
     "months with school absence in the last 12 months rose by 2 on the 12 months before"),
    ("resident__school__absence__trend__365d", -2,
     "months with school absence in the last 12 months fell by 2 on the 12 months before"),
    ("household__police__callout__days_since_last__all", 12, "12 days since the last police call-out in the household"),
    ("static__months_at_address", 1, "1 month at the current address"),
    ("static__months_at_address", 14, "14 months at the current address"),
    ("static__household_size", 1, "1 person in the household"),
    ("static__household_children", 3, "3 children (under 18) in the household"),
    ("static__tenure__owner_occupied", 1, "home is owner occupied"),
    ("static__age", 9, "aged 9"),
]


@pytest.mark.parametrize(("feature", "value", "sentence"), SENTENCES)
def test_each_feature_family_reads_as_expected(records, feature, value, sentence):
    assert reason_sentence(records[feature], value) == sentence


@pytest.mark.parametrize(("feature", "value", "shown"), [
    ("resident__school__absence__count__90d", 0, False),
    ("resident__school__absence__count__90d", 1, True),
    ("household__council_tax__summons__sum__365d", 0, False),
    ("resident__school__absence__trend__365d", 0, False),
    ("resident__school__absence__trend__365d", -2, False),
    ("static__tenure__owner_occupied", 0, False),
    ("static__tenure__owner_occupied", 1, True),
    ("static__age", 0, True),
])
def test_a_value_that_is_no_concern_is_never_a_reason(records, feature, value, shown):
    assert is_concern(records[feature], np.array([value], dtype=float)).tolist() == [shown]


def test_a_yes_no_attribute_reads_as_words():
    record = {"name": "static__parole", "aggregate": "attribute", "event_type": "",
              "description": "released on parole (1 = yes, 0 = no): {value}"}
    assert reason_sentence(record, 1) == "released on parole"
    assert reason_sentence(record, 0) == "released on parole: no"
