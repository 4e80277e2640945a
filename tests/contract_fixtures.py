"""Tiny contract-valid boroughs built in code, for the data contract's tests.

`clean_tables()` gives four small tables that pass every check; a test breaks one thing and
writes the folder with `write_borough()`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

EXTRACT_DATE = dt.date(2026, 1, 1)

ARROW_TYPES: dict[str, dict[str, pa.DataType]] = {
    "residents": {
        "resident_id": pa.string(),
        "birth_date": pa.date32(),
        "death_date": pa.date32(),
        "sex": pa.string(),
        "ethnicity": pa.string(),
        "disability": pa.bool_(),
    },
    "residency": {
        "resident_id": pa.string(),
        "household_id": pa.string(),
        "address_id": pa.string(),
        "start_date": pa.date32(),
        "end_date": pa.date32(),
        "tenure": pa.string(),
    },
    "events": {
        "event_id": pa.string(),
        "resident_id": pa.string(),
        "address_id": pa.string(),
        "source": pa.string(),
        "event_type": pa.string(),
        "event_time": pa.timestamp("us"),
        "known_at": pa.timestamp("us"),
        "value": pa.float64(),
    },
    "outcomes": {
        "resident_id": pa.string(),
        "outcome_type": pa.string(),
        "outcome_time": pa.timestamp("us"),
        "known_at": pa.timestamp("us"),
        "end_time": pa.timestamp("us"),
    },
}


def _d(text: str | None) -> dt.date | None:
    return None if text is None else dt.date.fromisoformat(text)


def _t(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text)


def clean_tables() -> dict[str, pd.DataFrame]:
    """Six residents in three addresses, twelve events and three outcomes; every check passes."""
    residents = pd.DataFrame(
        {
            "resident_id": ["R1", "R2", "R3", "R4", "R5", "R6"],
            "birth_date": [_d(x) for x in ["1985-03-02", "2012-07-19", "2015-01-30", "1990-11-11", "2018-05-05", "1950-02-14"]],
            "death_date": [None, None, None, None, None, _d("2024-06-01")],
            "sex": ["F", "M", "F", "M", "F", "M"],
            "ethnicity": ["White", "Black", None, "Asian", "Mixed", "Other"],
            "disability": [False, None, True, False, False, True],
        }
    )
    residency = pd.DataFrame(
        {
            "resident_id": ["R1", "R2", "R3", "R4", "R4", "R5", "R6"],
            "household_id": ["H1", "H1", "H1", "H2", "H3", "H3", "H4"],
            "address_id": ["A1", "A1", "A1", "A2", "A3", "A3", "A3"],
            "start_date": [_d(x) for x in ["2015-01-01", "2015-01-01", "2015-01-30", "2016-04-01", "2020-04-01", "2020-04-01", "2010-01-01"]],
            # R4 moves from A2 to A3 on the day the first spell ends (end is exclusive): no overlap.
            "end_date": [None, None, None, _d("2020-04-01"), None, None, _d("2019-06-01")],
            "tenure": ["council", "council", "council", "private_rented", "housing_association", "housing_association", "owner_occupied"],
        }
    )
    events = pd.DataFrame(
        {
            "event_id": [f"E{i:02d}" for i in range(1, 13)],
            "resident_id": ["R1", None, "R1", "R2", "R2", "R3", "R4", None, "R5", "R4", None, "R1"],
            "address_id": ["A1", "A1", "A1", None, None, None, "A2", "A3", None, "A3", "A3", None],
            "source": ["council_tax", "housing_repairs", "police", "school", "school", "ae", "police", "fire", "early_help", "council_tax", "asb", "benefits"],
            "event_type": ["arrears_reminder", "door_replacement", "domestic_incident", "absence", "fixed_term_exclusion", "injury_attendance", "callout", "fire_callout", "contact", "summons", "asb_report", "claim_start"],
            "event_time": [_t(x) for x in ["2021-02-01 09:00", "2021-03-04 10:30", "2022-05-06 23:10", "2022-09-30 00:00", "2023-01-10 11:00", "2023-03-03 15:45", "2019-08-08 02:00", "2021-12-24 20:00", "2024-02-02 09:15", "2024-10-10 10:10", "2025-06-06 06:06", "2025-12-31 16:00"]],
            "known_at": [_t(x) for x in ["2021-02-03 09:00", "2021-03-04 10:30", "2022-05-07 08:00", "2022-10-05 00:00", "2023-01-12 11:00", "2023-03-03 15:45", "2019-08-09 02:00", "2021-12-27 09:00", "2024-02-02 09:15", "2024-10-10 10:10", "2025-06-08 06:06", "2026-01-01 08:00"]],
            "value": [120.5, None, None, 4.0, None, None, None, None, None, 310.0, None, None],
        }
    )
    outcomes = pd.DataFrame(
        {
            "resident_id": ["R2", "R3", "R5"],
            "outcome_type": ["csc_referral", "child_protection_plan", "s47_enquiry"],
            "outcome_time": [_t(x) for x in ["2023-02-01 12:00", "2023-05-01 09:00", "2024-03-01 10:00"]],
            "known_at": [_t(x) for x in ["2023-02-01 12:00", "2023-05-02 09:00", "2024-03-01 10:00"]],
            "end_time": [None, _t("2024-05-01 09:00"), None],
        }
    )
    return {"residents": residents, "residency": residency, "events": events, "outcomes": outcomes}


def manifest_for(tables: dict[str, pd.DataFrame], extract_date: dt.date = EXTRACT_DATE) -> dict[str, Any]:
    """A manifest.json body matching the tables."""
    return {
        "extract_date": extract_date.isoformat(),
        "sources": sorted(set(tables["events"]["source"].dropna())),
        "row_counts": {name: len(frame) for name, frame in tables.items()},
    }


def to_arrow(name: str, frame: pd.DataFrame) -> pa.Table:
    """A fixture frame as an Arrow table with the contract's Parquet types (extra columns inferred)."""
    types = ARROW_TYPES[name]
    columns = {}
    for column in frame.columns:
        values = frame[column].astype(object).where(frame[column].notna(), None).tolist()
        columns[column] = pa.array(values, type=types.get(column))
    return pa.table(columns)


def write_borough(
    folder: Path,
    tables: dict[str, pd.DataFrame] | None = None,
    fmt: str = "parquet",
    manifest: dict[str, Any] | None = None,
) -> Path:
    """Write tables (default: clean_tables()) and a manifest into folder as Parquet or CSV."""
    tables = clean_tables() if tables is None else tables
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if fmt == "parquet":
            pq.write_table(to_arrow(name, frame), folder / f"{name}.parquet")
        else:
            frame.to_csv(folder / f"{name}.csv", index=False)
    body = manifest_for(tables) if manifest is None else manifest
    (folder / "manifest.json").write_text(json.dumps(body), encoding="utf-8")
    return folder
