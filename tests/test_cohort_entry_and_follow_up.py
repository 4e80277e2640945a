"""A person is in the cohort only from their entry date (cohort.entry_column), known when it was
recorded; a person whose follow-up has ended is not scored but listed as unscored; and a split plan
that runs short of labelled dates says which windows were still open at the extract date."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from earlysignal.config import config_from_dict
from earlysignal.dictionary import packaged_dictionary_path
from earlysignal.errors import ConfigError
from earlysignal.features import build_feature_matrix
from features_borough import typed

GRID = (dt.date(2024, 1, 1), dt.date(2024, 2, 1), dt.date(2024, 3, 1))
EVENT_COLUMNS = ["event_id", "resident_id", "address_id", "source", "event_type", "event_time", "known_at", "value"]
SCHOOL_FAMILY = {"name": "school", "source": "school", "scopes": ["resident"], "windows": ["all"],
                 "aggregates": ["count"], "description": "school events"}


def _dictionary_with_entry(tmp_path: Path, known_from: bool) -> str:
    """The packaged dictionary plus residents.entry_date (and entry_recorded, its known_from date)."""
    raw = yaml.safe_load(packaged_dictionary_path().read_text(encoding="utf-8"))
    raw.setdefault("residents", {})["entry_date"] = {"kind": "date", "label": "study entry"}
    if known_from:
        raw["residents"]["entry_recorded"] = {"kind": "date", "label": "entry recorded"}
        raw["residents"]["entry_date"]["known_from"] = "entry_recorded"
    path = tmp_path / "dictionary.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return str(path)


def _config(*, residency: bool = True, entry: str | None = "entry_date", dictionary: str | None = None,
            grid: tuple[dt.date, ...] = GRID, families: tuple[dict, ...] = ()):
    raw = {
        "temporal": {"first_as_of": grid[0].isoformat(), "last_as_of": grid[-1].isoformat(), "frequency_months": 1},
        "cohort": {"min_age": None, "max_age": None, "require_residency": residency, "entry_column": entry},
        "label": {"name": "plan", "outcome_types": ["child_protection_plan"], "horizon_months": 1,
                  "censoring": {"residency": residency}},
        "features": {"static": [], "families": list(families)},
    }
    if dictionary is not None:
        raw["dictionary"] = dictionary
    return config_from_dict(raw)


def _borough(people: list[dict], *, residency: bool = True, events=(), extract_date=dt.date(2026, 1, 1)):
    residents = pd.DataFrame([{
        "resident_id": p["id"], "birth_date": dt.date(2015, 1, 1), "death_date": p.get("death"),
        "sex": "F", "ethnicity": None, "disability": None,
        "entry_date": pd.Timestamp(p["entry"]) if p.get("entry") else pd.NaT,
        "entry_recorded": pd.Timestamp(p["recorded"]) if p.get("recorded") else pd.NaT,
        "follow_up_end": pd.Timestamp(p["end"]) if p.get("end") else pd.NaT,
    } for p in people])
    spells = [{"resident_id": p["id"], "household_id": "H" + p["id"], "address_id": "A" + p["id"],
               "start_date": dt.date(2015, 1, 1), "end_date": None, "tenure": "council"} for p in people if residency]
    return typed({
        "residents": residents,
        "residency": pd.DataFrame(spells, columns=["resident_id", "household_id", "address_id", "start_date",
                                                   "end_date", "tenure"]),
        "events": pd.DataFrame(list(events), columns=EVENT_COLUMNS),
        "outcomes": pd.DataFrame([], columns=["resident_id", "outcome_type", "outcome_time", "known_at", "end_time"]),
    }, extract_date=extract_date)


def _rows(frame: pd.DataFrame) -> dict[str, list[str]]:
    """resident_id -> the as_of dates (ISO) at which they are in the cohort."""
    out: dict[str, list[str]] = {}
    for resident, as_of in zip(frame["resident_id"], frame["as_of"], strict=True):
        out.setdefault(resident, []).append(pd.Timestamp(as_of).date().isoformat())
    return out


ENTRANTS = [
    {"id": "ENTERED_BEFORE_THE_GRID", "entry": "2023-06-01"},
    {"id": "ENTERED_ON_AN_AS_OF_DATE", "entry": "2024-02-01"},
    {"id": "ENTERED_BETWEEN_AS_OF_DATES", "entry": "2024-02-15"},
    {"id": "ENTERS_AFTER_THE_GRID", "entry": "2024-06-01"},
    {"id": "NO_ENTRY_DATE"},
]
EXPECTED_ROWS = {
    "ENTERED_BEFORE_THE_GRID": ["2024-01-01", "2024-02-01", "2024-03-01"],
    "ENTERED_ON_AN_AS_OF_DATE": ["2024-02-01", "2024-03-01"],
    "ENTERED_BETWEEN_AS_OF_DATES": ["2024-03-01"],
}


@pytest.mark.parametrize("residency", [True, False], ids=["with_residency", "without_residency"])
def test_person_is_in_the_cohort_only_at_as_of_dates_on_or_after_their_entry_date(residency):
    built = build_feature_matrix(_config(residency=residency), _borough(ENTRANTS, residency=residency))
    assert _rows(built.frame) == EXPECTED_ROWS
    assert built.metadata["rows_per_as_of"] == {"2024-01-01": 1, "2024-02-01": 2, "2024-03-01": 3}


def test_without_an_entry_column_everyone_sits_at_every_as_of_date():
    built = build_feature_matrix(_config(entry=None), _borough(ENTRANTS))
    assert built.metadata["rows_per_as_of"] == {"2024-01-01": 5, "2024-02-01": 5, "2024-03-01": 5}


def test_entry_rule_composes_with_residency():
    people = ENTRANTS[:1] + [{"id": "ENTERED_BUT_MOVED_AWAY", "entry": "2023-06-01"}]
    borough = _borough(people)
    spells = borough.residency.copy()
    spells.loc[spells["resident_id"] == "ENTERED_BUT_MOVED_AWAY", "end_date"] = pd.Timestamp("2024-02-01")
    built = build_feature_matrix(_config(), borough.copy(residency=spells))
    assert _rows(built.frame) == {"ENTERED_BEFORE_THE_GRID": ["2024-01-01", "2024-02-01", "2024-03-01"],
                                  "ENTERED_BUT_MOVED_AWAY": ["2024-01-01"]}


def test_entry_recorded_on_or_after_as_of_does_not_admit_the_person_then(tmp_path, feature_engine):
    people = [
        # Backdated: entered in 2023, but the council's systems recorded it on 10 February 2024.
        {"id": "BACKDATED_ENTRY", "entry": "2023-06-01", "recorded": "2024-02-10"},
        {"id": "RECORDED_ON_THE_AS_OF_DATE", "entry": "2023-06-01", "recorded": "2024-02-01"},
        {"id": "RECORDED_THE_DAY_BEFORE", "entry": "2023-06-01", "recorded": "2024-01-31"},
        {"id": "ENTRY_NEVER_RECORDED", "entry": "2023-06-01"},
    ]
    config = _config(dictionary=_dictionary_with_entry(tmp_path, known_from=True))
    built = build_feature_matrix(config, _borough(people), engine=feature_engine)
    assert _rows(built.frame) == {
        "BACKDATED_ENTRY": ["2024-03-01"],
        "RECORDED_ON_THE_AS_OF_DATE": ["2024-03-01"],
        "RECORDED_THE_DAY_BEFORE": ["2024-02-01", "2024-03-01"],
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cohort_and_features_at_as_of_ignore_entry_dates_and_recordings_from_as_of_on(tmp_path, seed):
    """Perturbation: moving every entry date after as_of, and every entry recording made on or after
    as_of, to other dates after as_of leaves the cohort and the features at as_of unchanged."""
    rng = np.random.default_rng(seed)
    as_of = dt.date(2024, 2, 1)
    day = pd.Timestamp(as_of)
    people, events = [], []
    for number in range(40):
        entry = day + pd.Timedelta(days=int(rng.integers(-200, 200)))
        recorded = entry + pd.Timedelta(days=int(rng.integers(0, 120)))
        people.append({"id": f"P{number:02d}", "entry": entry, "recorded": recorded})
        for event in range(3):
            when = day - pd.Timedelta(days=int(rng.integers(1, 300)))
            events.append((f"E{number}-{event}", f"P{number:02d}", None, "school", "absence", when, when, 1.0))
    config = _config(dictionary=_dictionary_with_entry(tmp_path, known_from=True), grid=(as_of,),
                     families=(SCHOOL_FAMILY,))
    base = build_feature_matrix(config, _borough(people, events=events)).frame
    assert 0 < len(base) < len(people)  # the rule bites: some people are in, some are not
    moved = []
    for person in people:
        person = dict(person)
        if person["entry"] > day:
            person["entry"] = day + pd.Timedelta(days=int(rng.integers(1, 400)))
            person["recorded"] = person["entry"]
        elif person["recorded"] >= day:
            person["recorded"] = day + pd.Timedelta(days=int(rng.integers(0, 400)))
        moved.append(person)
    assert moved != people
    perturbed = build_feature_matrix(config, _borough(moved, events=events)).frame
    pd.testing.assert_frame_equal(base, perturbed)


def test_entry_column_missing_from_residents_is_a_config_error_naming_the_key():
    borough = _borough(ENTRANTS)
    config = _config(entry="randomised_on")
    with pytest.raises(ConfigError, match="cohort.entry_column: residents has no column 'randomised_on'"):
        build_feature_matrix(config, borough)


def test_entry_column_that_is_not_a_date_is_a_config_error():
    borough = _borough(ENTRANTS)
    borough = borough.copy(residents=borough.residents.assign(entry_date="soon"))
    with pytest.raises(ConfigError, match="cohort.entry_column: residents.entry_date is not a date column"):
        build_feature_matrix(_config(), borough)


def test_cohort_description_names_the_entry_rule():
    assert _config(residency=False).cohort.describe() == "residents whose entry_date had passed at each as-of date"


# ---- scoring: follow-up that has ended ----------------------------------------------------------


def _scoring_lists(config, borough, as_of: dt.date) -> tuple[list[str], dict[str, str]]:
    """What `score` ranks and lists as unscored at as_of: the cohort minus ended follow-up, and the rest."""
    from earlysignal.features import follow_up_ended_ids
    from earlysignal.scoring import unscored_residents

    cohort = build_feature_matrix(config, borough, as_of_dates=[as_of], with_labels=False).frame
    ended = follow_up_ended_ids(config, borough.residents, as_of)
    scored = sorted(set(cohort["resident_id"]) - ended)
    unscored = unscored_residents(borough, set(scored), as_of, config)
    return scored, dict(zip(unscored["resident_id"], unscored["reason"], strict=True))


def _with_end_column(config, end_column: str = "follow_up_end"):
    return config.model_copy(update={"label": config.label.model_copy(update={
        "censoring": config.label.censoring.model_copy(update={"end_column": end_column})})})


@pytest.mark.parametrize("residency", [True, False], ids=["with_residency", "without_residency"])
def test_score_lists_people_whose_follow_up_ended_as_unscored_and_everyone_reconciles(residency):
    people = [
        {"id": "FOLLOWED_UP", "entry": "2023-01-01", "end": "2024-09-01"},
        {"id": "NO_END_DATE", "entry": "2023-01-01"},
        {"id": "ENDED_BEFORE_AS_OF", "entry": "2023-01-01", "end": "2024-01-15"},
        {"id": "ENDED_ON_AS_OF", "entry": "2023-01-01", "end": "2024-02-01"},
        {"id": "ENTERS_LATER", "entry": "2024-03-01", "end": "2024-09-01"},
        {"id": "NO_ENTRY_DATE", "end": "2024-09-01"},
        {"id": "DIED", "entry": "2023-01-01", "death": dt.date(2024, 1, 20)},
    ]
    config = _with_end_column(_config(residency=residency))
    scored, unscored = _scoring_lists(config, _borough(people, residency=residency), dt.date(2024, 2, 1))
    assert scored == ["FOLLOWED_UP", "NO_END_DATE"]
    ended = "follow-up ended (follow_up_end on or before as_of; see label.censoring.end_column)"
    assert unscored == {
        "ENDED_BEFORE_AS_OF": ended,
        "ENDED_ON_AS_OF": ended,
        "ENTERS_LATER": "not yet entered at as_of (entry_date after as_of)",
        "NO_ENTRY_DATE": "no entry date (entry_date is empty; see cohort.entry_column)",
        "DIED": "died before as_of",
    }
    assert sorted(scored + list(unscored)) == sorted(p["id"] for p in people)


def test_follow_up_end_recorded_after_as_of_does_not_end_follow_up_at_as_of(tmp_path):
    from earlysignal.features import follow_up_ended_ids

    raw = yaml.safe_load(packaged_dictionary_path().read_text(encoding="utf-8"))
    raw.setdefault("residents", {}).update({
        "follow_up_end": {"kind": "date", "known_from": "end_recorded"},
        "end_recorded": {"kind": "date"},
    })
    path = tmp_path / "dictionary.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    config = _with_end_column(_config(entry=None, dictionary=str(path)))
    residents = pd.DataFrame({
        "resident_id": ["ENDED_AND_RECORDED", "ENDED_BUT_RECORDED_ON_AS_OF", "ENDED_NEVER_RECORDED", "ENDS_LATER"],
        "follow_up_end": pd.to_datetime(["2024-01-10", "2024-01-10", "2024-01-10", "2024-06-01"]),
        "end_recorded": pd.to_datetime(["2024-01-12", "2024-02-01", None, "2024-06-01"]),
    })
    assert follow_up_ended_ids(config, residents, dt.date(2024, 2, 1)) == {"ENDED_AND_RECORDED"}
    assert follow_up_ended_ids(_config(entry=None), residents, dt.date(2024, 2, 1)) == set()


# ---- too few labelled as_of dates: say which windows were still open ----------------------------


def test_too_few_labelled_dates_error_names_the_windows_still_open_at_the_extract_date():
    from earlysignal.modeling.train import train_model
    from earlysignal.timesplits import SplitPlanError
    from synthetic_matrix import make_matrix
    from test_training_small_data import _config as training_config

    # Quarterly as_of dates 2020-01-01 .. 2021-04-01, extract date 2021-04-01, 6-month label windows.
    matrix = make_matrix(residents=60, n_as_of=6, seed=1, unlabelled_tail=2)
    with pytest.raises(SplitPlanError) as error:
        train_model(training_config(n_test_splits=3), matrix=matrix, log_to_mlflow=False)
    assert str(error.value) == (
        "split split_1: no labelled as_of date has a label window closed before the test date. "
        "2 as_of date(s) have no labels because their label window (6 months) was still open at the extract "
        "date 2021-04-01 (2021-01-01 closes 2021-07-01, 2021-04-01 closes 2021-10-01): wait for a later "
        "extract, or shorten label.horizon."
    )


def test_only_n_labelled_dates_error_says_the_other_windows_were_still_open_and_when_they_close():
    from earlysignal.modeling.train import train_model
    from earlysignal.timesplits import SplitPlanError
    from synthetic_matrix import make_matrix
    from test_training_small_data import _config as training_config

    # Quarterly as_of dates 2020-01-01 .. 2020-10-01, extract date 2020-10-01: two windows still open.
    matrix = make_matrix(residents=60, n_as_of=4, seed=1, unlabelled_tail=2)
    with pytest.raises(SplitPlanError) as error:
        train_model(training_config(n_test_splits=0), matrix=matrix, log_to_mlflow=False)
    assert str(error.value).startswith("split final: only 2 labelled as_of date(s) in the 24-month training history")
    assert str(error.value).endswith(
        "2 as_of date(s) have no labels because their label window (6 months) was still open at the extract "
        "date 2020-10-01 (2020-07-01 closes 2021-01-01, 2020-10-01 closes 2021-04-01): wait for a later "
        "extract, or shorten label.horizon."
    )


def test_unlabelled_dates_note_tells_open_windows_from_empty_and_censored_dates():
    from earlysignal.timesplits import unlabelled_dates_note

    grid = [dt.date(2024, m, 1) for m in (1, 2, 3, 4)]
    config = _config()  # one-month label windows
    note = unlabelled_dates_note(grid, [grid[0]], config.label.window_end, dt.date(2024, 4, 15), "1 month",
                                 {"2024-01-01": 5, "2024-02-01": 0, "2024-03-01": 4, "2024-04-01": 4})
    assert note == (
        "1 as_of date(s) have no labels because their label window (1 month) was still open at the extract "
        "date 2024-04-15 (2024-04-01 closes 2024-05-01): wait for a later extract, or shorten label.horizon; "
        "1 as_of date(s) have nobody in the cohort (2024-02-01); "
        "1 as_of date(s) have no known label although the window closed (2024-03-01): every row's follow-up "
        "ended inside it (see label.censoring)."
    )
    assert unlabelled_dates_note(grid, grid, config.label.window_end, dt.date(2024, 4, 15)) == ""


def test_without_residency_a_quarantined_resident_is_listed_as_unscored_with_the_contract_reason(tmp_path):
    from earlysignal.config import load_config
    from earlysignal.contract import load_linked_data
    from earlysignal.scoring import unscored_residents
    from test_contract_dictionary import _council_config, _write_two_people

    data = _write_two_people(tmp_path / "data")
    (data / "residency.csv").unlink()
    residents = data / "residents.csv"
    residents.write_text(residents.read_text(encoding="utf-8").replace(",female,", ",X,"), encoding="utf-8")
    linked = load_linked_data(data, load_config(_council_config(tmp_path)), write_quarantine=False)
    assert list(linked.residents["resident_id"]) == ["P1"]
    unscored = unscored_residents(linked, {"P1"}, dt.date(2024, 1, 1), load_config(_council_config(tmp_path)))
    assert unscored[["resident_id", "reason"]].values.tolist() == [
        ["P2", "quarantined by the data contract: invalid_value:sex"],
    ]
