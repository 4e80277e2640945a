"""The resident's journey: who is in it, which records it shows, which records lie behind each reason,
and that nothing known at or after as_of reaches it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from journey_world import AS_OF, RESIDENT, world

from earlysignal.config import load_config
from earlysignal.errors import EarlySignalError
from earlysignal.journey import (
    Reason,
    ReasonFeature,
    build_journey,
    events_behind_reason,
    household_at,
    known_events,
    known_outcomes,
)
from earlysignal.windows import WindowLength
from earlysignal.wording import Wording, wording_from_config


def feature(source: str, types: tuple[str, ...], scope: str, window_days: int | None, aggregate: str) -> ReasonFeature:
    return ReasonFeature(name=f"{scope}__{source}__{aggregate}", source=source, event_types=types, scope=scope,
                         window_length=None if window_days is None else WindowLength("d", window_days),
                         aggregate=aggregate)


@pytest.fixture
def data():
    return world()


@pytest.fixture
def context(data):
    household = household_at(data, RESIDENT, AS_OF)
    return household, known_events(data, household, AS_OF)


def test_household_is_the_people_living_with_the_resident_on_as_of_labelled_by_role(data):
    household = household_at(data, RESIDENT, AS_OF)
    assert household.household_id == "H1"
    assert household.address_id == "A1"
    assert household.members == {"res-child": "the resident", "res-mum": "adult A", "res-little": "child A"}


def test_a_resident_without_a_spell_on_as_of_has_no_household_or_home(data):
    household = household_at(data, "res-before", AS_OF)
    assert (household.household_id, household.address_id) == (None, None)
    assert household.members == {"res-before": "the resident"}


def test_journey_shows_records_known_before_as_of_for_resident_household_and_home(context):
    household, events = context
    assert events["event_id"].tolist() == [
        "E03", "E08", "E02", "E05", "E04", "E01", "E10", "E14", "E16", "E07", "E15", "E09", "E13"
    ]
    who = dict(zip(events["event_id"], events["who"], strict=True))
    assert who["E08"] == "the home" and who["E07"] == "adult A" and who["E13"] == "child A" and who["E09"] == "the resident"


def test_someone_outside_the_household_recorded_at_the_home_stays_anonymous(context):
    _, events = context
    previous_tenant = events[events["event_id"] == "E08"].iloc[0]
    assert previous_tenant["about"] == "home"
    assert pd.isna(previous_tenant["resident_id"])


def test_outcomes_are_the_households_recorded_before_as_of(data):
    household = household_at(data, RESIDENT, AS_OF)
    outcomes = known_outcomes(data, household, AS_OF)
    assert list(zip(outcomes["who"], outcomes["outcome_type"], strict=True)) == [
        ("the resident", "s47_enquiry"), ("child A", "csc_referral")
    ]


@pytest.mark.parametrize(
    ("reason_feature", "expected"),
    [
        # 365 days before 2025-01-01 is 2024-01-02 00:00: E04 is in, E05 one minute earlier is out, E06 was recorded late.
        (feature("housing_repairs", ("door_replacement",), "address", 365, "count"), ["E04", "E01"]),
        (feature("housing_repairs", ("door_replacement",), "address", None, "count"), ["E03", "E02", "E05", "E04", "E01"]),
        # Household: every member's events, the neighbour's (E11) never.
        (feature("police", ("domestic_incident",), "household", 365, "count"), ["E14", "E07", "E15"]),
        # Address: what happened at the home, including the previous tenant's call-out.
        (feature("police", ("domestic_incident", "callout"), "address", None, "count"), ["E08", "E07"]),
        # Recency: the latest event only (two share that moment).
        (feature("police", ("domestic_incident",), "household", None, "days_since_last"), ["E07", "E15"]),
        (feature("housing_repairs", ("door_replacement",), "address", None, "days_since_first"), ["E03"]),
        # A trend compares the last 90 days with the 90 before: both are shown (from 2024-07-05).
        (feature("school", ("absence",), "resident", 90, "trend"), ["E16", "E09"]),
        (feature("school", ("absence",), "resident", 365, "sum"), ["E10", "E16", "E09"]),
        # The resident scope is the resident's own events: the sibling's A&E visit is not theirs.
        (feature("ae", ("attendance", "injury_attendance"), "resident", 90, "count"), []),
        (feature("ae", ("attendance", "injury_attendance"), "household", 90, "count"), ["E13"]),
        (ReasonFeature("static__age", "residents", (), "static", None, "age"), []),
    ],
)
def test_events_behind_a_reason_are_its_features_type_scope_and_window_before_as_of(context, reason_feature, expected):
    household, events = context
    assert events_behind_reason(reason_feature, events, household, AS_OF) == expected


def test_events_behind_a_reason_match_the_feature_builders_count(data):
    """The mapping and the builder agree: as many highlighted events as the feature's count."""
    from features_borough import every_aggregate_config

    from earlysignal.features import build_feature_matrix
    from earlysignal.features.spec import feature_definitions

    config = every_aggregate_config()
    built = build_feature_matrix(config, data, as_of_dates=[AS_OF])
    row = built.frame[built.frame["resident_id"] == RESIDENT].iloc[0]
    household = household_at(data, RESIDENT, AS_OF)
    events = known_events(data, household, AS_OF)
    checked = 0
    for definition in feature_definitions(config):
        if definition.aggregate != "count" or definition.is_imputed_flag:
            continue
        behind = events_behind_reason(ReasonFeature.from_record(definition), events, household, AS_OF)
        assert len(behind) == row[definition.name], definition.name
        checked += int(row[definition.name] > 0)
    assert checked >= 5


def _perturbed_after_as_of(data, seed: int):
    rng = np.random.default_rng(seed)
    cutoff = pd.Timestamp(AS_OF)
    events = data.events.copy()
    later = (events["known_at"] >= cutoff) | (events["event_time"] >= cutoff)
    shift = pd.to_timedelta(rng.integers(0, 400, size=int(later.sum())), unit="D")
    events.loc[later, "event_time"] = events.loc[later, "event_time"] + shift
    events.loc[later, "known_at"] = events.loc[later, "known_at"] + shift
    events.loc[later, "event_type"] = "door_replacement"
    events.loc[later, "value"] = 999.0
    added = pd.DataFrame({
        "event_id": [f"N{i}" for i in range(6)],
        "resident_id": ["res-child", "res-mum", None, "res-little", None, "res-child"],
        "address_id": [None, "A1", "A1", None, "A1", None],
        "source": ["police", "police", "housing_repairs", "ae", "housing_repairs", "school"],
        "event_type": ["domestic_incident", "callout", "door_replacement", "attendance", "lock_change", "absence"],
        # Recorded at or after as_of, some of them about things that happened before it.
        "event_time": pd.to_datetime(["2025-01-01", "2024-12-31 23:00", "2025-03-01", "2024-06-01", "2025-01-02",
                                      "2024-11-01"], format="ISO8601").astype("datetime64[us]"),
        "known_at": pd.to_datetime(["2025-01-01", "2025-01-01", "2025-03-01", "2025-02-01", "2025-01-02",
                                    "2025-01-01 00:00:01"], format="ISO8601").astype("datetime64[us]"),
        "value": [None, None, None, None, None, 7.0],
    })
    added = added.astype({c: "str" for c in ("event_id", "resident_id", "address_id", "source", "event_type")})
    added.loc[[1, 3, 5], "address_id"] = pd.NA
    added.loc[[2, 4], "resident_id"] = pd.NA
    outcomes = pd.concat([data.outcomes, pd.DataFrame({
        "resident_id": ["res-mum", "res-child"], "outcome_type": ["adult_safeguarding_concern", "csc_referral"],
        "outcome_time": pd.to_datetime(["2025-01-01", "2024-12-30"]).astype("datetime64[us]"),
        "known_at": pd.to_datetime(["2025-01-01", "2025-01-03"]).astype("datetime64[us]"),
        "end_time": pd.to_datetime([None, None]).astype("datetime64[us]"),
    })], ignore_index=True)
    # An outcome ending after as_of was still open on as_of.
    outcomes.loc[outcomes["resident_id"] == "res-little", "end_time"] = pd.Timestamp("2025-04-01")
    residency = data.residency.copy()
    residency.loc[residency["resident_id"] == "res-mum", "end_date"] = pd.Timestamp("2025-06-01")
    joiner = pd.DataFrame({"resident_id": ["res-next"], "household_id": ["H1"], "address_id": ["A1"],
                           "start_date": pd.to_datetime(["2025-02-01"]).astype("datetime64[us]"),
                           "end_date": pd.to_datetime([None]).astype("datetime64[us]"), "tenure": ["council"]})
    residency.loc[residency["resident_id"] == "res-next", "end_date"] = pd.Timestamp("2025-02-01")
    return type(data)(
        residents=data.residents,
        residency=pd.concat([residency, joiner], ignore_index=True),
        events=pd.concat([events, added], ignore_index=True).sample(frac=1.0, random_state=seed),
        outcomes=outcomes,
        extract_date=data.extract_date,
    )


REASONS = [
    Reason(1, "2 door replacements at home in the last 12 months",
           feature("housing_repairs", ("door_replacement",), "address", 365, "count")),
    Reason(2, "3 domestic incidents reported to police in the household in the last 12 months",
           feature("police", ("domestic_incident",), "household", 365, "count")),
    Reason(3, "aged 12", ReasonFeature("static__age", "residents", (), "static", None, "age")),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_journey_data_ignores_everything_known_at_or_after_as_of(data, seed):
    before = build_journey(data, RESIDENT, AS_OF, REASONS)
    after = build_journey(_perturbed_after_as_of(data, seed), RESIDENT, AS_OF, REASONS)
    assert after == before


def test_the_perturbation_check_would_see_a_change_before_as_of(data):
    before = build_journey(data, RESIDENT, AS_OF, REASONS)
    changed = world()
    changed.events = changed.events[changed.events["event_id"] != "E01"]
    assert build_journey(changed, RESIDENT, AS_OF, REASONS) != before


def test_journey_marks_each_event_with_the_reasons_it_lies_behind(data):
    journey = build_journey(data, RESIDENT, AS_OF, REASONS)
    marked = {e["event_id"]: e["reasons"] for e in journey["events"] if e["reasons"]}
    assert marked == {"E04": [1], "E01": [1], "E14": [2], "E07": [2], "E15": [2]}
    assert [r["event_ids"] for r in journey["reasons"]] == [["E04", "E01"], ["E14", "E07", "E15"], []]


def test_journey_lanes_follow_the_given_order_and_labels_come_from_the_data_dictionary(data):
    from earlysignal.dictionary import dictionary_for

    config = load_config("conf/borough.yaml")
    dictionary = dictionary_for(config)
    journey = build_journey(data, RESIDENT, AS_OF, (), wording=wording_from_config(config),
                            lane_order=[f.source for f in config.features.families])
    assert [lane["source"] for lane in journey["lanes"]] == ["housing_repairs", "school", "police", "ae"]
    for lane in journey["lanes"]:
        assert lane["label"].lower() == dictionary.sources[lane["source"]].label.lower()
    labels = {e["event_id"]: e["label"] for e in journey["events"]}
    assert labels["E01"] == dictionary.event_type("housing_repairs", "door_replacement").label
    assert journey["outcomes"][0]["label"] == dictionary.outcome_label("s47_enquiry")


def test_wording_falls_back_to_the_name_in_words_for_an_unknown_source():
    assert Wording().source("youth_offending") == "Youth offending"
    assert Wording().outcome("child_protection_plan") == "child protection plan"


def test_journey_of_an_unknown_resident_is_refused_with_the_id(data):
    with pytest.raises(EarlySignalError, match="'nobody' is not in the residents table"):
        build_journey(data, "nobody", AS_OF)


def test_events_used_by_the_model_are_the_union_of_its_features_events(context):
    from earlysignal.journey import events_used_by_model

    household, events = context
    features = [
        feature("housing_repairs", ("door_replacement",), "address", 365, "count"),
        feature("housing_repairs", ("door_replacement",), "address", 365, "sum"),  # same events as the count
        feature("police", ("domestic_incident",), "household", None, "days_since_last"),
        feature("school", ("absence",), "resident", 90, "trend"),
        ReasonFeature("static__age", "residents", (), "static", None, "age"),
    ]
    assert events_used_by_model(features, events, household, AS_OF) == {"E04", "E01", "E07", "E15", "E16", "E09"}


def test_journey_says_which_records_the_model_reads(data):
    journey = build_journey(data, RESIDENT, AS_OF, REASONS, model_features=[r.feature for r in REASONS])
    used = {e["event_id"] for e in journey["events"] if e["used"]}
    assert used == {"E04", "E01", "E14", "E07", "E15"}
    assert all(e["used"] is None for e in build_journey(data, RESIDENT, AS_OF, REASONS)["events"])


def test_reason_feature_record_round_trips_its_window_and_reads_older_day_counts():
    import json

    twelve = ReasonFeature(name="address__housing_repairs__door_replacement__count__12m", source="housing_repairs",
                           event_types=("door_replacement",), scope="address", window_length=WindowLength("m", 12),
                           aggregate="count")
    record = json.loads(json.dumps(twelve.as_record()))
    assert record["window"] == "12m" and "window_length" not in record
    assert ReasonFeature.from_record(record) == twelve
    # model_features.json written before calendar windows held window_days: a fixed day count.
    older = {**record, "window_days": 365}
    del older["window"]
    assert ReasonFeature.from_record(older).window_length == WindowLength("d", 365)
    whole = ReasonFeature.from_record({**record, "window": "all"})
    assert whole.window_length is None


def test_calendar_reason_window_takes_the_records_from_the_same_day_twelve_months_back(context):
    # 12 calendar months before 2025-01-01 start at 2024-01-01 00:00: E05 (one minute before 2024-01-02) is in,
    # where a 365-day window (starting 2024-01-02) leaves it out.
    household, events = context
    months = ReasonFeature(name="door_12m", source="housing_repairs", event_types=("door_replacement",),
                           scope="address", window_length=WindowLength("m", 12), aggregate="count")
    days = feature("housing_repairs", ("door_replacement",), "address", 365, "count")
    assert "E05" in events_behind_reason(months, events, household, AS_OF)
    assert "E05" not in events_behind_reason(days, events, household, AS_OF)
