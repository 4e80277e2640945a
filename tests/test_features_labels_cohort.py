"""Labels count outcomes in [as_of, as_of + horizon) and are null past the extract date; the cohort
is who was the right age, alive, living in the borough and not already in the outcome state."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from earlysignal.config import config_from_dict
from earlysignal.features import build_feature_matrix
from features_borough import typed

AS_OF = dt.date(2024, 1, 1)
MIDNIGHT = dt.datetime(2024, 1, 1)


def _config(horizon: int = 6, **cohort):
    return config_from_dict({
        "temporal": {"first_as_of": AS_OF.isoformat(), "last_as_of": AS_OF.isoformat()},
        "cohort": {"min_age": 0, "max_age": 17, "exclude_open_outcomes": ["child_protection_plan"], **cohort},
        "label": {"name": "cpp", "outcome_types": ["child_protection_plan"], "horizon_months": horizon},
        "features": {"families": []},
    })


def _borough(people: list[dict], outcomes: list[tuple], extract_date=dt.date(2026, 1, 1)):
    residents = pd.DataFrame([{
        "resident_id": p["id"], "birth_date": p.get("birth", dt.date(2015, 1, 1)), "death_date": p.get("death"),
        "sex": "F", "ethnicity": None, "disability": None,
    } for p in people])
    spells = pd.DataFrame([{
        "resident_id": p["id"], "household_id": "H" + p["id"], "address_id": "A" + p["id"],
        "start_date": p.get("start", dt.date(2015, 1, 1)), "end_date": p.get("end"), "tenure": "council",
    } for p in people if p.get("lives", True)], columns=["resident_id", "household_id", "address_id", "start_date", "end_date", "tenure"])
    outcome_frame = pd.DataFrame(outcomes, columns=["resident_id", "outcome_type", "outcome_time", "known_at", "end_time"])
    events = pd.DataFrame(columns=["event_id", "resident_id", "address_id", "source", "event_type", "event_time", "known_at", "value"])
    borough = typed({"residents": residents, "residency": spells, "events": events, "outcomes": outcome_frame})
    borough.extract_date = extract_date
    return borough


def _labels(borough, horizon=6):
    frame = build_feature_matrix(_config(horizon), borough).frame
    return dict(zip(frame["resident_id"], frame["label"].astype(object).where(frame["label"].notna(), None)))


def _cpp(resident, start, end=None):
    return (resident, "child_protection_plan", start, start, end)


def test_outcome_exactly_at_as_of_counts_and_at_horizon_end_does_not():
    people = [{"id": "AT_START"}, {"id": "AT_END"}, {"id": "JUST_BEFORE_END"}, {"id": "OTHER_TYPE"}, {"id": "NONE"}]
    outcomes = [
        _cpp("AT_START", MIDNIGHT),
        _cpp("AT_END", dt.datetime(2024, 7, 1)),
        _cpp("JUST_BEFORE_END", dt.datetime(2024, 6, 30, 23, 59, 59)),
        ("OTHER_TYPE", "csc_referral", dt.datetime(2024, 2, 1), dt.datetime(2024, 2, 1), None),
    ]
    labels = _labels(_borough(people, outcomes))
    assert labels == {"AT_END": 0, "AT_START": 1, "JUST_BEFORE_END": 1, "NONE": 0, "OTHER_TYPE": 0}


def test_label_window_past_extract_date_is_null_never_zero():
    people = [{"id": "C1"}, {"id": "C2"}]
    outcomes = [_cpp("C1", dt.datetime(2024, 3, 1))]
    assert _labels(_borough(people, outcomes, extract_date=dt.date(2024, 6, 30))) == {"C1": None, "C2": None}
    # A window ending exactly on the extract date is complete.
    assert _labels(_borough(people, outcomes, extract_date=dt.date(2024, 7, 1))) == {"C1": 1, "C2": 0}


def test_cohort_excludes_open_plans_movers_the_dead_and_the_wrong_age():
    people = [
        {"id": "OPEN_PLAN"},
        {"id": "PLAN_ENDED_AT_AS_OF"},
        {"id": "PLAN_STARTS_AT_AS_OF"},
        {"id": "MOVED_OUT_AT_AS_OF", "end": AS_OF},
        {"id": "MOVES_OUT_NEXT_DAY", "end": dt.date(2024, 1, 2)},
        {"id": "MOVES_IN_NEXT_DAY", "start": dt.date(2024, 1, 2)},
        {"id": "NEVER_LIVED_HERE", "lives": False},
        {"id": "DIED_ON_AS_OF", "death": AS_OF},
        {"id": "DIES_NEXT_DAY", "death": dt.date(2024, 1, 2)},
        {"id": "AGED_17", "birth": dt.date(2006, 1, 2), "start": dt.date(2006, 1, 2)},
        {"id": "TURNS_18_ON_AS_OF", "birth": dt.date(2006, 1, 1), "start": dt.date(2006, 1, 1)},
        {"id": "BORN_ON_AS_OF", "birth": AS_OF, "start": AS_OF},
        {"id": "BORN_AFTER", "birth": dt.date(2024, 1, 2), "start": dt.date(2024, 1, 2)},
    ]
    outcomes = [
        _cpp("OPEN_PLAN", dt.datetime(2023, 5, 1)),
        _cpp("PLAN_ENDED_AT_AS_OF", dt.datetime(2023, 5, 1), MIDNIGHT),
        _cpp("PLAN_STARTS_AT_AS_OF", MIDNIGHT),
    ]
    frame = build_feature_matrix(_config(), _borough(people, outcomes)).frame
    assert sorted(frame["resident_id"]) == sorted([
        "PLAN_ENDED_AT_AS_OF", "PLAN_STARTS_AT_AS_OF", "MOVES_OUT_NEXT_DAY", "DIES_NEXT_DAY", "AGED_17",
        "BORN_ON_AS_OF",
    ])
    ages = dict(zip(frame["resident_id"], frame["static__age"]))
    assert ages["AGED_17"] == 17 and ages["BORN_ON_AS_OF"] == 0
    assert frame.set_index("resident_id").loc["PLAN_STARTS_AT_AS_OF", "label"] == 1


def test_cohort_age_bounds_are_inclusive():
    people = [
        {"id": "AGE_4", "birth": dt.date(2019, 1, 2), "start": dt.date(2019, 1, 2)},
        {"id": "AGE_5_TODAY", "birth": dt.date(2019, 1, 1), "start": dt.date(2019, 1, 1)},
        {"id": "AGE_5", "birth": dt.date(2018, 6, 1), "start": dt.date(2018, 6, 1)},
        {"id": "AGE_10", "birth": dt.date(2013, 6, 1), "start": dt.date(2013, 6, 1)},
        {"id": "AGE_11", "birth": dt.date(2013, 1, 1), "start": dt.date(2013, 1, 1)},
    ]
    config = _config().model_copy(update={"cohort": _config().cohort.model_copy(update={"min_age": 5, "max_age": 10})})
    frame = build_feature_matrix(config, _borough(people, [])).frame
    assert list(frame["resident_id"]) == ["AGE_10", "AGE_5", "AGE_5_TODAY"]


def test_protected_attributes_travel_alongside_and_unrecorded_is_shown():
    people = [{"id": "C1", "birth": dt.date(2012, 6, 1), "start": dt.date(2012, 6, 1)}]
    built = build_feature_matrix(_config(), _borough(people, []))
    row = built.frame.iloc[0]
    assert (row["attr__sex"], row["attr__ethnicity"], row["attr__disability"], row["attr__age_band"]) == (
        "Female", "Not recorded", "Not recorded", "11-15",  # sex as its reporting group in the dictionary
    )
    assert not set(built.protected_columns) & set(built.feature_columns)


def test_protected_characteristics_become_features_only_when_listed():
    people = [{"id": "C1", "birth": dt.date(2012, 6, 1), "start": dt.date(2012, 6, 1)}]
    config = _config()
    listed = config.model_copy(update={"features": config.features.model_copy(
        update={"protected_as_features": ("sex", "ethnicity", "disability", "age_band")})})
    built = build_feature_matrix(listed, _borough(people, []))
    row = built.frame.iloc[0]
    assert [c for c in built.feature_columns if c.startswith("protected__")] == [
        "protected__sex", "protected__ethnicity", "protected__disability", "protected__age_band",
    ]
    # Codes are positions of the dictionary's reporting groups (Female, Male) and of the age bands.
    assert row["protected__sex"] == 0.0 and row["protected__age_band"] == 2.0
    assert pd.isna(row["protected__ethnicity"]) and pd.isna(row["protected__disability"])
    plain = build_feature_matrix(config, _borough(people, []))
    assert not [c for c in plain.feature_columns if c.startswith("protected__")]
