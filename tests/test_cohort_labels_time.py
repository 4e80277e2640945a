"""Cohorts and labels as real questions are asked, and known when they are used: recent-event and
prior-outcome cohort rules, horizons in days/weeks/months, per-person censoring, labels as known
on a test date, cohort exclusions by known_at, and windows that reach back before the data start."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from earlysignal.config import config_from_dict, horizon_end
from earlysignal.errors import ConfigError
from earlysignal.features import build_feature_matrix
from earlysignal.features.labels import label_at
from features_borough import typed

AS_OF = dt.date(2024, 1, 1)
MIDNIGHT = dt.datetime(2024, 1, 1)
EVENT_COLUMNS = ["event_id", "resident_id", "address_id", "source", "event_type", "event_time", "known_at", "value"]


def _config(label: dict | None = None, cohort: dict | None = None, as_of: dt.date = AS_OF, **sections):
    return config_from_dict({
        "temporal": {"first_as_of": as_of.isoformat(), "last_as_of": as_of.isoformat(), **sections.pop("temporal", {})},
        "cohort": {"min_age": 0, "max_age": 17, **(cohort or {})},
        "label": {"name": "plan", "outcome_types": ["child_protection_plan"], "horizon_months": 6, **(label or {})},
        "features": sections.pop("features", {"static": [], "families": []}),
    })


def _borough(people, outcomes=(), events=(), extract_date=dt.date(2026, 1, 1), manifest=None):
    residents = pd.DataFrame([{
        "resident_id": p["id"], "birth_date": dt.date(2015, 1, 1), "death_date": p.get("death"),
        "sex": "F", "ethnicity": None, "disability": None, **({"follow_up_end": p.get("follow_up_end")}),
    } for p in people])
    spells = []
    for p in people:
        for start, end, address in p.get("spells", [(dt.date(2015, 1, 1), p.get("end"), "A" + p["id"])]):
            spells.append({"resident_id": p["id"], "household_id": "H" + p["id"], "address_id": address,
                           "start_date": start, "end_date": end, "tenure": "council"})
    borough = typed({
        "residents": residents,
        "residency": pd.DataFrame(spells, columns=["resident_id", "household_id", "address_id", "start_date", "end_date", "tenure"]),
        "events": pd.DataFrame(list(events), columns=EVENT_COLUMNS),
        "outcomes": pd.DataFrame(list(outcomes), columns=["resident_id", "outcome_type", "outcome_time", "known_at", "end_time"]),
    })
    borough.extract_date = extract_date
    if manifest is not None:
        borough.manifest = manifest
    return borough


def _plan(resident, start, known=None, end=None, kind="child_protection_plan"):
    return (resident, kind, start, known or start, end)


def _labels(frame: pd.DataFrame) -> dict:
    return dict(zip(frame["resident_id"], frame["label"].astype(object).where(frame["label"].notna(), None)))


# ---- cohort rules -------------------------------------------------------------------------------


def _screening(resident, happened, known=None, event_type="screened", source="screening"):
    return (f"E{resident}{happened:%j}", resident, None, source, event_type, happened, known or happened, None)


def test_cohort_screened_in_the_91_days_before_as_of():
    people = [{"id": i} for i in ("DAY_91", "DAY_92", "ON_AS_OF", "RECORDED_ON_AS_OF", "OTHER_TYPE", "YESTERDAY", "NONE")]
    events = [
        _screening("DAY_91", MIDNIGHT - dt.timedelta(days=91)),  # 2 Oct 2023 00:00: the window's first instant
        _screening("DAY_92", MIDNIGHT - dt.timedelta(days=91, seconds=1)),
        _screening("ON_AS_OF", MIDNIGHT),
        _screening("RECORDED_ON_AS_OF", MIDNIGHT - dt.timedelta(days=10), known=MIDNIGHT),
        _screening("OTHER_TYPE", MIDNIGHT - dt.timedelta(days=10), event_type="declined"),
        _screening("YESTERDAY", MIDNIGHT - dt.timedelta(days=1)),
    ]
    config = _config(cohort={"require_recent_events": [
        {"events": [{"source": "screening", "event_type": "screened"}], "within_days": 91}]})
    frame = build_feature_matrix(config, _borough(people, events=events)).frame
    assert sorted(frame["resident_id"]) == ["DAY_91", "YESTERDAY"]


def test_recent_event_rule_without_event_type_takes_any_event_of_the_source_and_rules_compose():
    people = [{"id": "SCREENED_AND_REFERRED"}, {"id": "ONLY_DECLINED"}, {"id": "DECLINED_NOT_REFERRED"}]
    events = [
        _screening("SCREENED_AND_REFERRED", MIDNIGHT - dt.timedelta(days=5)),
        _screening("SCREENED_AND_REFERRED", MIDNIGHT - dt.timedelta(days=300), event_type="made", source="referral"),
        _screening("ONLY_DECLINED", MIDNIGHT - dt.timedelta(days=5), event_type="declined"),
        _screening("ONLY_DECLINED", MIDNIGHT - dt.timedelta(days=6), event_type="made", source="referral"),
        _screening("DECLINED_NOT_REFERRED", MIDNIGHT - dt.timedelta(days=5), event_type="declined"),
    ]
    config = _config(cohort={"require_recent_events": [
        {"events": [{"source": "screening"}], "within_days": 30},
        {"events": [{"source": "referral", "event_type": "made"}], "within_days": 365},
    ]})
    frame = build_feature_matrix(config, _borough(people, events=events)).frame
    assert sorted(frame["resident_id"]) == ["ONLY_DECLINED", "SCREENED_AND_REFERRED"]


def test_prior_outcome_exclusion_ever_or_within_days_counts_from_when_it_was_known():
    people = [{"id": i} for i in ("PLAN_80_DAYS_AGO", "PLAN_100_DAYS_AGO", "PLAN_RECORDED_LATE", "REFERRAL_ONLY", "NONE")]
    outcomes = [
        _plan("PLAN_80_DAYS_AGO", MIDNIGHT - dt.timedelta(days=80), end=MIDNIGHT - dt.timedelta(days=10)),
        _plan("PLAN_100_DAYS_AGO", MIDNIGHT - dt.timedelta(days=100), end=MIDNIGHT - dt.timedelta(days=50)),
        # Started before as_of, but the council only recorded it after as_of: not known, not excluded.
        _plan("PLAN_RECORDED_LATE", MIDNIGHT - dt.timedelta(days=20), known=MIDNIGHT + dt.timedelta(days=30),
              end=MIDNIGHT - dt.timedelta(days=5)),
        _plan("REFERRAL_ONLY", MIDNIGHT - dt.timedelta(days=20), kind="csc_referral"),
    ]
    borough = _borough(people, outcomes)
    windowed = _config(cohort={"exclude_prior_outcomes": [{"outcome_types": ["child_protection_plan"], "within_days": 90}]})
    ever = _config(cohort={"exclude_prior_outcomes": [{"outcome_types": ["child_protection_plan"]}]})
    assert sorted(build_feature_matrix(windowed, borough).frame["resident_id"]) == [
        "NONE", "PLAN_100_DAYS_AGO", "PLAN_RECORDED_LATE", "REFERRAL_ONLY"]
    assert sorted(build_feature_matrix(ever, borough).frame["resident_id"]) == ["NONE", "PLAN_RECORDED_LATE", "REFERRAL_ONLY"]


def test_open_outcome_exclusion_ignores_a_plan_recorded_after_as_of():
    people = [{"id": "OPEN_KNOWN"}, {"id": "OPEN_RECORDED_LATE"}]
    outcomes = [
        _plan("OPEN_KNOWN", dt.datetime(2023, 6, 1)),
        _plan("OPEN_RECORDED_LATE", dt.datetime(2023, 12, 30), known=dt.datetime(2024, 1, 1)),
    ]
    config = _config(cohort={"exclude_open_outcomes": ["child_protection_plan"]})
    frame = build_feature_matrix(config, _borough(people, outcomes)).frame
    assert list(frame["resident_id"]) == ["OPEN_RECORDED_LATE"]
    # The plan started before as_of, so it is not in the label window either.
    assert _labels(frame) == {"OPEN_RECORDED_LATE": 0}


def test_cohort_without_age_bounds_takes_every_age():
    config = config_from_dict({
        "temporal": {"first_as_of": "2024-01-01", "last_as_of": "2024-01-01"},
        "label": {"outcome_types": ["child_protection_plan"], "horizon_months": 6},
        "features": {"static": [], "families": []},
    })
    assert config.cohort.exclude_open_outcomes == () and config.cohort.min_age is None
    people = [{"id": "CHILD"}]
    borough = _borough(people)
    borough.residents.loc[0, "birth_date"] = pd.Timestamp("1930-01-01")
    assert list(build_feature_matrix(config, borough).frame["resident_id"]) == ["CHILD"]


def test_label_and_cohort_have_no_borough_defaults():
    config = config_from_dict({"temporal": {"first_as_of": "2024-01-01", "last_as_of": "2024-01-01"},
                               "features": {"static": [], "families": []}})
    assert config.label.outcome_types == () and config.cohort.exclude_open_outcomes == ()
    assert config.label.horizon_text == "6 months"
    with pytest.raises(ConfigError, match="label.outcome_types is empty"):
        build_feature_matrix(config, _borough([{"id": "C1"}]))


# ---- horizons -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "units", "end"),
    [
        (dt.date(2024, 1, 1), {"months": 0.25}, dt.date(2024, 1, 9)),  # 0.25 x 31 = 7.75 -> 8 days
        (dt.date(2025, 2, 1), {"months": 0.25}, dt.date(2025, 2, 8)),  # 0.25 x 28 = 7
        (dt.date(2024, 4, 1), {"months": 0.25}, dt.date(2024, 4, 9)),  # 0.25 x 30 = 7.5 -> 8 (half up)
        (dt.date(2024, 8, 31), {"months": 6}, dt.date(2025, 2, 28)),  # clamped to the month's end
        (dt.date(2024, 1, 31), {"months": 1.5}, dt.date(2024, 3, 16)),  # 29 Feb + 0.5 x 31 = 15.5 -> 16
        (dt.date(2024, 1, 1), {"weeks": 0.5}, dt.date(2024, 1, 5)),  # 3.5 -> 4 days
        (dt.date(2024, 1, 1), {"days": 91}, dt.date(2024, 4, 1)),
        (dt.date(2024, 1, 1), {"days": 0.2}, dt.date(2024, 1, 2)),  # at least one day
    ],
)
def test_horizon_calendar_rule(start, units, end):
    assert horizon_end(start, **units) == end


def test_horizon_months_quarter_labels_only_the_first_eight_days():
    people = [{"id": "DAY_8"}, {"id": "DAY_9"}]
    outcomes = [_plan("DAY_8", dt.datetime(2024, 1, 8, 23, 59)), _plan("DAY_9", dt.datetime(2024, 1, 9))]
    for label in ({"horizon_months": 0.25}, {"horizon_months": None, "horizon": {"months": 0.25}}):
        built = build_feature_matrix(_config(label=label), _borough(people, outcomes))
        assert _labels(built.frame) == {"DAY_8": 1, "DAY_9": 0}
        assert built.metadata["label"]["horizon"] == "0.25 months"
        assert set(built.frame["label_window_end"]) == {pd.Timestamp("2024-01-09")}


def test_horizon_given_twice_is_refused_and_none_means_six_months():
    with pytest.raises(ConfigError, match="at most once"):
        _config(label={"horizon_weeks": 2})
    assert _config(label={"horizon_months": None}).label.horizon_text == "6 months"
    with pytest.raises(ConfigError, match=r"label.horizon_months"):
        _config(label={"horizon_months": -1})


# ---- censoring ----------------------------------------------------------------------------------


def test_follow_up_ending_inside_the_window_without_the_outcome_is_a_null_label_and_counted():
    people = [
        {"id": "MOVED_AWAY", "end": dt.date(2024, 3, 1)},
        {"id": "DIED", "death": dt.date(2024, 2, 1)},
        {"id": "FOLLOW_UP_ENDED", "follow_up_end": dt.date(2024, 5, 1)},
        {"id": "MOVED_WITHIN_AREA", "spells": [(dt.date(2015, 1, 1), dt.date(2024, 3, 1), "A1"),
                                               (dt.date(2024, 3, 1), None, "A2")]},
        {"id": "MOVED_AWAY_AT_WINDOW_END", "end": dt.date(2024, 7, 1)},
        {"id": "MOVED_AWAY_AFTER_THE_PLAN", "end": dt.date(2024, 3, 1)},
        {"id": "STAYED"},
    ]
    outcomes = [_plan("MOVED_AWAY_AFTER_THE_PLAN", dt.datetime(2024, 2, 1))]
    config = _config(label={"censoring": {"end_column": "follow_up_end"}})
    built = build_feature_matrix(config, _borough(people, outcomes))
    assert _labels(built.frame) == {
        "MOVED_AWAY": None, "DIED": None, "FOLLOW_UP_ENDED": None, "MOVED_WITHIN_AREA": 0,
        "MOVED_AWAY_AT_WINDOW_END": 0, "MOVED_AWAY_AFTER_THE_PLAN": 1, "STAYED": 0,
    }
    assert built.metadata["label"]["censored_rows"] == 3
    # Without the end column, that person is followed up to the window's end.
    plain = build_feature_matrix(_config(), _borough(people, outcomes))
    assert _labels(plain.frame)["FOLLOW_UP_ENDED"] == 0 and plain.metadata["label"]["censored_rows"] == 2


def test_censoring_end_column_must_exist():
    config = _config(label={"censoring": {"end_column": "left_service"}})
    with pytest.raises(ConfigError, match="residents has no column 'left_service'"):
        build_feature_matrix(config, _borough([{"id": "C1"}]))


# ---- labels as known on the test date -----------------------------------------------------------


def test_label_ignores_outcome_recorded_after_test_date():
    # Training as_of 1 Oct 2024, 6-month window to 1 Apr 2025; the plan started 30 Mar 2025 and was
    # recorded 1 Jun 2025; the split's test date is 1 Apr 2025.
    as_of = dt.date(2024, 10, 1)
    people = [{"id": "LATE_RECORD"}, {"id": "ON_TIME"}, {"id": "NONE"}, {"id": "LATE_RECORD_MOVED", "end": dt.date(2025, 1, 1)}]
    outcomes = [
        _plan("LATE_RECORD", dt.datetime(2025, 3, 30), known=dt.datetime(2025, 6, 1)),
        _plan("ON_TIME", dt.datetime(2025, 3, 30), known=dt.datetime(2025, 3, 31)),
        _plan("LATE_RECORD_MOVED", dt.datetime(2024, 12, 1), known=dt.datetime(2025, 6, 1)),
    ]
    frame = build_feature_matrix(_config(as_of=as_of), _borough(people, outcomes)).frame
    assert _labels(frame) == {"LATE_RECORD": 1, "ON_TIME": 1, "NONE": 0, "LATE_RECORD_MOVED": 1}
    at_test = label_at(frame["label_window_end"], frame["label_known_at"], frame["label_censored"],
                       cut=dt.date(2025, 4, 1), extract_date=dt.date(2026, 1, 1))
    assert dict(zip(frame["resident_id"], at_test.tolist())) == {
        "LATE_RECORD": 0, "ON_TIME": 1, "NONE": 0, "LATE_RECORD_MOVED": pd.NA}
    # Before the window closes the label is unknown to everyone.
    early = label_at(frame["label_window_end"], frame["label_known_at"], frame["label_censored"],
                     cut=dt.date(2025, 3, 31), extract_date=dt.date(2026, 1, 1))
    assert bool(np.all(np.asarray(early.isna())))


def test_training_rows_use_labels_as_known_on_their_split_test_date():
    from earlysignal.features import FeatureMatrix
    from earlysignal.modeling.train import _labelled_rows

    as_of = dt.date(2024, 10, 1)
    people = [{"id": "LATE_RECORD"}, {"id": "ON_TIME"}]
    outcomes = [
        _plan("LATE_RECORD", dt.datetime(2025, 3, 30), known=dt.datetime(2025, 6, 1)),
        _plan("ON_TIME", dt.datetime(2025, 3, 30), known=dt.datetime(2025, 3, 31)),
    ]
    built = build_feature_matrix(_config(as_of=as_of), _borough(people, outcomes))
    data = _labelled_rows(FeatureMatrix(built.frame, built.metadata))
    assert list(data.y) == [1, 1]
    at_test = data.as_known_at(dt.date(2025, 4, 1))
    assert list(at_test.y) == [0, 1] and list(data.frame["resident_id"]) == ["LATE_RECORD", "ON_TIME"]
    assert at_test.mask((as_of,)).tolist() == [True, True]


# ---- windows before the data start --------------------------------------------------------------


def _callouts_config(as_of: dt.date, **temporal):
    return _config(as_of=as_of, temporal=temporal, features={"static": [], "families": [{
        "name": "police", "source": "police", "event_types": ["callout"], "scopes": ["resident"],
        "windows": ["90d", "365d", "all"], "aggregates": ["count", "trend"],
    }, {
        "name": "school", "source": "school", "event_types": ["absence"], "scopes": ["resident"],
        "windows": ["90d"], "aggregates": ["count"],
    }]})


def test_windows_reaching_before_the_data_start_are_null_per_source():
    as_of = dt.date(2024, 1, 1)
    events = [("E1", "C1", None, "police", "callout", dt.datetime(2023, 12, 1), dt.datetime(2023, 12, 1), None),
              ("E2", "C1", None, "school", "absence", dt.datetime(2023, 12, 1), dt.datetime(2023, 12, 1), None)]
    # Police records begin 1 Jul 2023 (184 days before as_of); school records on 1 Nov 2023 (61 days).
    manifest = {"data_start": "2023-07-01", "source_data_starts": {"school": "2023-11-01"}}
    built = build_feature_matrix(_callouts_config(as_of), _borough([{"id": "C1"}], events=events, manifest=manifest))
    row = built.frame.iloc[0]
    assert row["resident__police__callout__count__90d"] == 1
    assert row["resident__police__callout__trend__90d"] == 1  # 2 x 1 in 90 days - 1 in 180 days (180 < 184)
    assert np.isnan(row["resident__police__callout__count__365d"])
    assert np.isnan(row["resident__police__callout__trend__365d"])
    assert row["resident__police__callout__count__all"] == 1
    assert np.isnan(row["resident__school__absence__count__90d"])
    assert built.metadata["windows_before_data_start"] == {
        "resident__police__callout__count__365d": 1,
        "resident__police__callout__trend__365d": 1,
        "resident__school__absence__count__90d": 1,
    }


def test_as_of_before_the_minimum_history_is_refused():
    config = _callouts_config(dt.date(2024, 1, 1), min_history_days=365)
    borough = _borough([{"id": "C1"}], manifest={"data_start": "2023-07-01"})
    with pytest.raises(ConfigError, match=r"min_history_days=365 days after the data start 2023-07-01.*2024-06-30"):
        build_feature_matrix(config, borough)


def test_lowest_first_and_last_values_over_a_window_before_the_data_start_are_null_too():
    as_of = dt.date(2024, 1, 1)
    config = _config(as_of=as_of, features={"static": [], "families": [{
        "name": "council_tax", "source": "council_tax", "event_types": ["summons"], "scopes": ["resident"],
        "windows": ["90d", "365d"], "aggregates": ["min", "first", "last", "max"],
    }]})
    events = [("E1", "C1", None, "council_tax", "summons", dt.datetime(2023, 12, 1), dt.datetime(2023, 12, 1), 250.0)]
    built = build_feature_matrix(config, _borough([{"id": "C1"}], events=events, manifest={"data_start": "2023-07-01"}))
    row = built.frame.iloc[0]
    for aggregate in ("min", "first", "last", "max"):
        assert row[f"resident__council_tax__summons__{aggregate}__90d"] == 250.0
        assert np.isnan(row[f"resident__council_tax__summons__{aggregate}__365d"])
    assert built.metadata["windows_before_data_start"] == {
        f"resident__council_tax__summons__{aggregate}__365d": 1 for aggregate in ("min", "first", "last", "max")
    }
