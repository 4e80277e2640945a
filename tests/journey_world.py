"""A tiny hand-made household for the journey and explanation tests, with every edge the rules care about.

Household H1 lives at address A1 from 2015: a mother (res-mum), two children (res-child, the
resident whose journey is drawn, and res-little). A previous tenant (res-before, household H0)
lived at A1 until 2014; a neighbour (res-next) lives at A2. as_of is 2025-01-01, so a 365-day window
starts at 2024-01-02 00:00 (2024 is a leap year).
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pandas as pd

AS_OF = dt.date(2025, 1, 1)
RESIDENT = "res-child"
OTHERS = ("res-mum", "res-little", "res-before", "res-next")


def _ts(values: list[str | None]) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype="object"), format="ISO8601").astype("datetime64[us]")


def world() -> SimpleNamespace:
    """residents, residency, events, outcomes as the contract loads them (datetime64[us] columns)."""
    residents = pd.DataFrame({
        "resident_id": ["res-mum", "res-child", "res-little", "res-before", "res-next"],
        "birth_date": _ts(["1985-03-02", "2012-07-19", "2018-01-30", "1970-01-01", "1990-05-05"]),
        "death_date": _ts([None] * 5),
        "sex": ["F", "M", "F", "M", "F"],
        "ethnicity": ["White", "White", "White", "Asian", "Black"],
        "disability": pd.array([False] * 5, dtype="boolean"),
    })
    residency = pd.DataFrame({
        "resident_id": ["res-mum", "res-child", "res-little", "res-before", "res-next"],
        "household_id": ["H1", "H1", "H1", "H0", "H2"],
        "address_id": ["A1", "A1", "A1", "A1", "A2"],
        "start_date": _ts(["2015-01-01", "2015-01-01", "2018-01-30", "2008-01-01", "2016-01-01"]),
        "end_date": _ts([None, None, None, "2014-06-01", None]),
        "tenure": ["council", "council", "council", "council", "private_rented"],
    })
    rows = [
        # event_id, resident, address, source, type, event_time, known_at, value
        ("E01", None, "A1", "housing_repairs", "door_replacement", "2024-03-01 10:00", "2024-03-01 10:00", None),
        ("E02", None, "A1", "housing_repairs", "door_replacement", "2023-06-01 10:00", "2023-06-02 10:00", None),
        ("E03", None, "A1", "housing_repairs", "door_replacement", "2012-05-01 10:00", "2012-05-01 10:00", None),
        ("E04", None, "A1", "housing_repairs", "door_replacement", "2024-01-02 00:00", "2024-01-02 00:00", None),
        ("E05", None, "A1", "housing_repairs", "door_replacement", "2024-01-01 23:59", "2024-01-02 09:00", None),
        # Happened before as_of but recorded after it: invisible.
        ("E06", None, "A1", "housing_repairs", "door_replacement", "2024-12-20 10:00", "2025-01-05 10:00", None),
        ("E07", "res-mum", "A1", "police", "domestic_incident", "2024-10-01 22:00", "2024-10-02 08:00", None),
        ("E08", "res-before", "A1", "police", "callout", "2013-02-01 22:00", "2013-02-01 23:00", None),
        ("E09", "res-child", None, "school", "absence", "2024-11-15 00:00", "2024-12-20 00:00", 6.0),
        ("E10", "res-child", None, "school", "absence", "2024-05-15 00:00", "2024-07-20 00:00", 2.0),
        ("E11", "res-next", "A2", "police", "domestic_incident", "2024-09-01 22:00", "2024-09-02 08:00", None),
        # At as_of exactly: not before it.
        ("E12", "res-child", None, "ae", "attendance", "2025-01-01 00:00", "2025-01-01 00:00", None),
        ("E13", "res-little", None, "ae", "injury_attendance", "2024-12-30 15:00", "2024-12-31 09:00", None),
        ("E14", "res-mum", None, "police", "domestic_incident", "2024-06-01 21:00", "2024-06-01 23:00", None),
        ("E15", "res-mum", None, "police", "domestic_incident", "2024-10-01 22:00", "2024-10-02 09:00", None),
        ("E16", "res-child", None, "school", "absence", "2024-08-01 00:00", "2024-08-01 00:00", 1.0),
    ]
    events = pd.DataFrame(rows, columns=["event_id", "resident_id", "address_id", "source", "event_type",
                                         "event_time", "known_at", "value"])
    events["event_time"] = _ts(events["event_time"].tolist())
    events["known_at"] = _ts(events["known_at"].tolist())
    events["value"] = events["value"].astype(float)
    for column in ("event_id", "resident_id", "address_id", "source", "event_type"):
        events[column] = events[column].astype("str")
        events.loc[[v is None for v in rows_column(rows, column)], column] = pd.NA
    outcomes = pd.DataFrame({
        "resident_id": ["res-little", "res-child", "res-next", "res-child"],
        "outcome_type": ["csc_referral", "s47_enquiry", "child_protection_plan", "child_protection_plan"],
        "outcome_time": _ts(["2023-02-01 12:00", "2022-03-01 12:00", "2024-01-01 12:00", "2025-02-01 12:00"]),
        "known_at": _ts(["2023-02-01 12:00", "2022-03-02 12:00", "2024-01-01 12:00", "2025-02-01 12:00"]),
        "end_time": _ts([None, None, None, None]),
    })
    return SimpleNamespace(residents=residents, residency=residency, events=events, outcomes=outcomes,
                           extract_date=dt.date(2026, 1, 1))


def rows_column(rows: list[tuple], column: str) -> list:
    index = ["event_id", "resident_id", "address_id", "source", "event_type"].index(column)
    return [row[index] for row in rows]
