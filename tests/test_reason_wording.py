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
    ("resident__school__absence__count__3m", 3, "3 months with school absence in the last 3 months"),
    ("resident__school__absence__count__3m", 1, "1 month with school absence in the last 3 months"),
    ("household__council_tax__summons__count__12m", 1, "1 council tax summons in the household in the last 12 months"),
    ("household__council_tax__summons__count__12m", 2, "2 council tax summonses in the household in the last 12 months"),
    ("household__council_tax__summons__sum__12m", 2842.9,
     "£2,842.90 owed in total across council tax summonses in the household in the last 12 months"),
    ("resident__school__absence__trend__12m", 2,
     "months with school absence in the last 12 months rose by 2 on the 12 months before"),
    ("resident__school__absence__trend__12m", -2,
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
    ("resident__school__absence__count__3m", 0, False),
    ("resident__school__absence__count__3m", 1, True),
    ("household__council_tax__summons__sum__12m", 0, False),
    ("resident__school__absence__trend__12m", 0, False),
    ("resident__school__absence__trend__12m", -2, False),
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


def _rent_records(value_spec: dict, aggregates: list[str], windows: list[str] | None = None) -> dict[str, dict]:
    from earlysignal.config import FeatureFamily
    from earlysignal.dictionary import dictionary_from_dict
    from earlysignal.features.spec import family_definitions

    dictionary = dictionary_from_dict({
        "name": "arrears",
        "sources": {"rent": {"label": "rent account", "event_types": {
            "statement": {"label": "rent statement", "value": value_spec},
            "repair": {"label": "repair"},
        }}},
    })
    family = FeatureFamily(name="rent", source="rent", windows=windows or ["3m"], aggregates=aggregates,
                           per_event_type=True)
    return {d.name: d.public_record() for d in family_definitions(family, dictionary)}


@pytest.mark.parametrize(("value_spec", "value", "sentence"), [
    # Below zero the minus goes before the pound sign, never "£-50".
    ({"meaning": "money", "unit": "GBP", "negative": True, "phrase": "a balance of £{value}"}, -50,
     "a balance of -£50.00 at the lowest rent statement in the last 3 months"),
    # The dictionary says what a balance below zero means.
    ({"meaning": "money", "unit": "GBP", "negative": True, "phrase": "£{value} in arrears",
      "negative_phrase": "£{value} in credit"}, -50, "£50.00 in credit at the lowest rent statement in the last 3 months"),
    ({"meaning": "money", "unit": "GBP", "negative": True, "phrase": "£{value} in arrears",
      "negative_phrase": "£{value} in credit"}, 2842.9,
     "£2,842.90 in arrears at the lowest rent statement in the last 3 months"),
    # Whole pounds where the dictionary says so.
    ({"meaning": "money", "unit": "GBP", "negative": True, "decimals": 0, "phrase": "a balance of £{value}"}, -2842.9,
     "a balance of -£2,843 at the lowest rent statement in the last 3 months"),
    ({"meaning": "money", "unit": "GBP", "decimals": 0, "phrase": "£{value} owed"}, 120,
     "£120 owed at the lowest rent statement in the last 3 months"),
    # A reading with declared decimals keeps them; one below zero keeps its sign.
    ({"meaning": "measure", "unit": "mg/dl", "decimals": 2}, 0.35,
     "rent statement lowest value 0.35 mg/dl in the last 3 months"),
    ({"meaning": "measure", "unit": "°C", "negative": True}, -3.5,
     "rent statement lowest value -3.5 °C in the last 3 months"),
])
def test_money_and_readings_read_with_their_sign_and_decimals_from_the_dictionary(value_spec, value, sentence):
    records = _rent_records(value_spec, ["min"])
    assert reason_sentence(records["resident__rent__statement__min__3m"], value) == sentence


def test_a_sum_of_money_has_pence_and_a_count_beside_it_none():
    records = _rent_records({"meaning": "money", "unit": "GBP", "phrase": "£{value} owed"}, ["count", "sum"])
    assert reason_sentence(records["resident__rent__statement__sum__3m"], 2842.9) == (
        "£2,842.90 owed in total across rent statements in the last 3 months"
    )
    assert reason_sentence(records["resident__rent__statement__sum__3m"], 120) == (
        "£120.00 owed in total across rent statements in the last 3 months"
    )
    assert reason_sentence(records["resident__rent__statement__count__3m"], 3) == "3 rent statements in the last 3 months"


def test_a_negative_phrase_without_negative_values_is_refused():
    from earlysignal.dictionary import dictionary_from_dict
    from earlysignal.errors import ConfigError

    with pytest.raises(ConfigError, match="negative_phrase applies only with negative: true"):
        dictionary_from_dict({"name": "x", "sources": {"rent": {"label": "rent", "event_types": {"statement": {
            "label": "statement", "value": {"meaning": "money", "negative_phrase": "£{value} in credit"}}}}}})


def test_one_fact_is_one_reason_whatever_the_number_of_windows(records):
    import pandas as pd

    from earlysignal.explain import top_reasons

    absence = "resident__school__absence__count__"
    columns = [absence + "3m", absence + "12m", absence + "3y", "resident__school__fixed_term_exclusion__count__12m",
               "household__school__absence__count__12m"]
    metadata = {"features": [records[c] for c in columns], "feature_columns": columns}
    values = pd.DataFrame([[3, 3, 5, 1, 3], [3, 3, 5, 0, 0]], columns=columns, dtype=float)
    contributions = np.array([[0.4, 0.5, 0.3, 0.2, 0.1, -2.0], [0.4, 0.5, 0.3, 0.2, 0.1, -2.0]])
    reasons = top_reasons(contributions, values, columns, metadata)
    # The strongest window speaks for the fact; the household's count is another scope, so another fact.
    assert reasons[["reason_1", "reason_2", "reason_3"]].values.tolist() == [
        ["3 months with school absence in the last 12 months", "1 fixed-term school exclusion in the last 12 months",
         "3 months with school absence in the household in the last 12 months"],
        ["3 months with school absence in the last 12 months", "", ""],
    ]
    assert reasons["contribution_1"].tolist() == [0.5, 0.5]
    assert reasons["contribution_2"].tolist()[0] == 0.2 and pd.isna(reasons.loc[1, "contribution_2"])


@pytest.mark.parametrize(("feature", "value", "sentence"), [
    ("resident__labs__bilirubin__count__all", 1, "1 bilirubin result on record"),
    ("resident__labs__bilirubin__count__12m", 3, "3 bilirubin results in the last 12 months"),
    ("resident__labs__bilirubin__last__all", 3.2, "bilirubin last value 3.2 mg/dl on record"),
    ("resident__labs__platelets__count__all", 1, "1 platelet count on record"),
])
def test_a_count_of_readings_counts_results_while_a_reading_names_the_measurement(feature, value, sentence):
    config = load_config(REPO / "examples" / "pbcseq" / "config.yaml")
    records = {d.name: d.public_record() for d in feature_definitions(config)}
    assert reason_sentence(records[feature], value) == sentence


@pytest.mark.parametrize(("aggregate", "value", "sentence"), [
    ("max", 2842.9, "£2,842.90 in arrears at the highest rent statement in the last 3 months"),
    ("max", -50, "£50.00 in credit at the highest rent statement in the last 3 months"),
    ("last", 0.5, "£0.50 in arrears at the last rent statement in the last 3 months"),
    ("mean", 1, "£1.00 in arrears on average per rent statement in the last 3 months"),
    ("sum", 120, "£120.00 in arrears in total across rent statements in the last 3 months"),
])
def test_every_money_aggregate_reads_as_an_amount_with_pence_and_its_direction_in_words(aggregate, value, sentence):
    records = _rent_records({"meaning": "money", "unit": "GBP", "negative": True, "phrase": "£{value} in arrears",
                             "negative_phrase": "£{value} in credit"}, [aggregate])
    assert reason_sentence(records[f"resident__rent__statement__{aggregate}__3m"], value) == sentence


@pytest.mark.parametrize("aggregate", ["sum", "mean", "max", "min", "last", "first"])
def test_an_amount_of_nothing_or_in_credit_is_never_a_reason(aggregate):
    records = _rent_records({"meaning": "money", "unit": "GBP", "negative": True, "phrase": "£{value} in arrears",
                             "negative_phrase": "£{value} in credit"}, [aggregate])
    record = records[f"resident__rent__statement__{aggregate}__3m"]
    assert is_concern(record, np.array([0.0, -50.0, 0.01, 2842.9])).tolist() == [False, False, True, True]


def test_a_money_phrase_with_words_after_the_amount_needs_its_own_wording_below_zero():
    from earlysignal.dictionary import dictionary_from_dict
    from earlysignal.errors import ConfigError

    with pytest.raises(ConfigError, match=(
        r"sources.rent.event_types.statement.value: Value error, phrase '£\{value\} owed' has words after the amount, so a value below zero would read '-£50 owed'; "
        r"add negative_phrase with the words for it \(e.g. '£\{value\} in credit'\)"
    )):
        dictionary_from_dict({"name": "x", "sources": {"rent": {"label": "rent", "event_types": {"statement": {
            "label": "statement", "value": {"meaning": "money", "negative": True, "phrase": "£{value} owed"}}}}}})
    # With the amount last, the minus sign reads as it is.
    records = _rent_records({"meaning": "money", "unit": "GBP", "negative": True, "phrase": "a balance of £{value}"},
                            ["last"])
    assert reason_sentence(records["resident__rent__statement__last__3m"], -50) == (
        "a balance of -£50.00 at the last rent statement in the last 3 months"
    )
