"""A tiny random, contract-valid borough for the feature builder's tests, and a config that
exercises every aggregate, scope, window kind and missing rule."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from earlysignal.config import ProjectConfig, config_from_dict

EXTRACT_DATE = dt.date(2026, 1, 1)
HISTORY_START = dt.datetime(2014, 1, 1)

VOCABULARY = {
    "housing_repairs": (("door_replacement", "lock_change", "damp_mould"), "address"),
    "council_tax": (("arrears_reminder", "summons"), "both"),
    "school": (("absence", "fixed_term_exclusion"), "resident"),
    "police": (("domestic_incident", "callout"), "both"),
    "ae": (("attendance", "injury_attendance"), "resident"),
    "social_care": (("contact",), "resident"),
    "asb": (("asb_report",), "address"),
}
TENURES = ("council", "housing_association", "private_rented", "owner_occupied")


@dataclass
class Borough:
    """In-memory stand-in for `earlysignal.contract.LinkedData` (same attributes and dtypes)."""

    residents: pd.DataFrame
    residency: pd.DataFrame
    events: pd.DataFrame
    outcomes: pd.DataFrame
    extract_date: dt.date = EXTRACT_DATE
    manifest: dict[str, Any] = field(default_factory=dict)

    def copy(self, **changes: pd.DataFrame) -> Borough:
        return replace(self, **changes)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"residents": self.residents, "residency": self.residency, "events": self.events, "outcomes": self.outcomes}


def _ts(values: Any) -> pd.Series:
    return pd.Series(pd.to_datetime(pd.Series(values)), dtype="datetime64[us]")


def _string(values: Any) -> pd.Series:
    return pd.Series(values, dtype="str")


def typed(tables: dict[str, pd.DataFrame], extract_date: dt.date = EXTRACT_DATE) -> Borough:
    """Cast plain tables to the contract's pandas dtypes."""
    residents = tables["residents"].copy()
    for column in ("resident_id", "sex", "ethnicity"):
        residents[column] = _string(residents[column])
    for column in ("birth_date", "death_date"):
        residents[column] = _ts(residents[column])
    residents["disability"] = pd.Series(residents["disability"], dtype="boolean")
    residency = tables["residency"].copy()
    for column in ("resident_id", "household_id", "address_id", "tenure"):
        residency[column] = _string(residency[column])
    for column in ("start_date", "end_date"):
        residency[column] = _ts(residency[column])
    events = tables["events"].copy()
    for column in ("event_id", "resident_id", "address_id", "source", "event_type"):
        events[column] = _string(events[column])
    for column in ("event_time", "known_at"):
        events[column] = _ts(events[column])
    events["value"] = events["value"].astype("float64")
    outcomes = tables["outcomes"].copy()
    for column in ("resident_id", "outcome_type"):
        outcomes[column] = _string(outcomes[column])
    for column in ("outcome_time", "known_at", "end_time"):
        outcomes[column] = _ts(outcomes[column])
    return Borough(residents, residency, events, outcomes, extract_date)


def random_borough(seed: int = 0, households: int = 14, events_per_resident: int = 25) -> Borough:
    """Households of 1-5 people at a handful of addresses, some moves, deaths, children, and events
    of every source with lags; some events fall exactly on grid dates (midnight) to test the edges."""
    rng = np.random.default_rng(seed)
    residents, spells, events, outcomes = [], [], [], []
    n_addresses = max(3, households - 3)
    resident_number = 0
    for h in range(households):
        size = int(rng.integers(1, 6))
        first_address = int(rng.integers(n_addresses))
        move_day = dt.date(2017, 1, 1) + dt.timedelta(days=int(rng.integers(0, 3000)))
        moves = rng.random() < 0.5
        second_address = int(rng.integers(n_addresses))
        tenure = TENURES[int(rng.integers(4))]
        for member in range(size):
            resident_number += 1
            rid = f"R{resident_number:04d}"
            child = member > 0 and rng.random() < 0.7
            birth = (
                dt.date(2003, 1, 1) + dt.timedelta(days=int(rng.integers(0, 8000)))
                if child
                else dt.date(1950, 1, 1) + dt.timedelta(days=int(rng.integers(0, 15000)))
            )
            if rng.random() < 0.05:
                birth = dt.date(2012, 2, 29)  # a leap-day birthday
            death = dt.date(2018, 1, 1) + dt.timedelta(days=int(rng.integers(0, 2500))) if rng.random() < 0.06 else None
            residents.append(
                {
                    "resident_id": rid,
                    "birth_date": birth,
                    "death_date": death,
                    "sex": ["F", "M"][int(rng.integers(2))],
                    "ethnicity": [None, "White", "Asian", "Black", "Mixed", "Other"][int(rng.integers(6))],
                    "disability": [None, True, False, False][int(rng.integers(4))],
                }
            )
            start = min(birth, dt.date(2012, 1, 1)) if rng.random() < 0.8 else dt.date(2016, 1, 1) + dt.timedelta(days=int(rng.integers(0, 2500)))
            start = max(start, birth)
            if moves and start < move_day:
                # Same address, new household id on the move day for some: a split spell run.
                spells.append((rid, f"H{h:03d}", f"A{first_address:03d}", start, move_day, tenure))
                spells.append((rid, f"H{h:03d}b", f"A{second_address:03d}", move_day, None, TENURES[int(rng.integers(4))]))
            else:
                end = dt.date(2020, 1, 1) + dt.timedelta(days=int(rng.integers(0, 2000))) if rng.random() < 0.15 else None
                if end is not None and end <= start:
                    end = None
                spells.append((rid, f"H{h:03d}", f"A{first_address:03d}", start, end, tenure))
            for _ in range(int(rng.poisson(events_per_resident))):
                source = list(VOCABULARY)[int(rng.integers(len(VOCABULARY)))]
                types, keyed = VOCABULARY[source]
                event_type = types[int(rng.integers(len(types)))]
                if rng.random() < 0.1:
                    time = dt.datetime(int(rng.integers(2018, 2026)), [1, 4, 7, 10][int(rng.integers(4))], 1)
                else:
                    time = HISTORY_START + dt.timedelta(minutes=int(rng.integers(0, 12 * 365 * 24 * 60)))
                lag = [dt.timedelta(0), dt.timedelta(hours=int(rng.integers(1, 48))), dt.timedelta(days=int(rng.integers(1, 120)))][int(rng.integers(3))]
                known = time + lag
                if rng.random() < 0.05:
                    known = dt.datetime(known.year, known.month, 1) + dt.timedelta(days=31)
                    known = dt.datetime(known.year, known.month, 1)  # exactly at a month start
                    known = max(known, time)
                value = None
                if source == "council_tax":
                    value = round(float(rng.uniform(20, 900)), 2)
                elif source == "school" and event_type == "absence":
                    value = float(rng.integers(0, 12)) if rng.random() < 0.9 else None
                address = f"A{first_address:03d}" if not moves or time.date() < move_day else f"A{second_address:03d}"
                events.append(
                    {
                        "event_id": f"E{len(events):06d}",
                        "resident_id": None if keyed == "address" else rid,
                        "address_id": address if keyed in ("address", "both") else None,
                        "source": source,
                        "event_type": event_type,
                        "event_time": time,
                        "known_at": known,
                        "value": value,
                    }
                )
            if child and rng.random() < 0.35:
                when = dt.datetime(2018, 1, 1) + dt.timedelta(hours=int(rng.integers(0, 8 * 365 * 24)))
                if rng.random() < 0.2:
                    when = dt.datetime(int(rng.integers(2019, 2025)), [1, 4, 7, 10][int(rng.integers(4))], 1)
                ended = when + dt.timedelta(days=int(rng.integers(30, 900))) if rng.random() < 0.7 else None
                outcomes.append(
                    {
                        "resident_id": rid,
                        "outcome_type": "child_protection_plan",
                        "outcome_time": when,
                        "known_at": when + dt.timedelta(days=1),
                        "end_time": ended,
                    }
                )
                if rng.random() < 0.5:
                    outcomes.append(
                        {
                            "resident_id": rid,
                            "outcome_type": "csc_referral",
                            "outcome_time": when - dt.timedelta(days=40),
                            "known_at": when - dt.timedelta(days=39),
                            "end_time": None,
                        }
                    )
    # Events at addresses from residents' neighbours (address-only, not tied to anyone).
    for i in range(60):
        time = HISTORY_START + dt.timedelta(hours=int(rng.integers(0, 12 * 365 * 24)))
        events.append(
            {
                "event_id": f"X{i:05d}",
                "resident_id": None,
                "address_id": f"A{int(rng.integers(n_addresses)):03d}",
                "source": "housing_repairs",
                "event_type": ["door_replacement", "lock_change", "damp_mould"][i % 3],
                "event_time": time,
                "known_at": time + dt.timedelta(days=int(rng.integers(0, 30))),
                "value": None,
            }
        )
    # Nothing in an extract can be known after its extract date.
    limit = dt.datetime.combine(EXTRACT_DATE, dt.time())
    events = [e for e in events if e["known_at"] < limit]
    outcomes = [o for o in outcomes if o["known_at"] < limit]
    for outcome in outcomes:
        if outcome["end_time"] is not None and outcome["end_time"] >= limit:
            outcome["end_time"] = None
    residency = pd.DataFrame(spells, columns=["resident_id", "household_id", "address_id", "start_date", "end_date", "tenure"])
    return typed(
        {
            "residents": pd.DataFrame(residents),
            "residency": residency,
            "events": pd.DataFrame(events),
            "outcomes": pd.DataFrame(outcomes, columns=["resident_id", "outcome_type", "outcome_time", "known_at", "end_time"]),
        }
    )


def every_aggregate_config(**overrides: Any) -> ProjectConfig:
    """A config whose families cover every aggregate, scope, window kind (days, calendar months and years,
    all) and missing rule."""
    raw: dict[str, Any] = {
        "temporal": {"first_as_of": "2019-01-01", "last_as_of": "2025-10-01", "frequency_months": 3},
        "cohort": {"min_age": 0, "max_age": 17, "exclude_open_outcomes": ["child_protection_plan"]},
        "label": {"name": "cpp_within_6m", "outcome_types": ["child_protection_plan"], "horizon_months": 6},
        "features": {
            "families": [
                {
                    "name": "repairs",
                    "source": "housing_repairs",
                    "event_types": ["door_replacement", "lock_change", "damp_mould"],
                    "scopes": ["address", "household"],
                    "windows": ["3m", "365d", "all"],
                    "aggregates": ["count", "distinct_types", "days_since_last", "trend"],
                    "missing": {"days_since_last": {"rule": "constant", "value": 9999}},
                    "description": "repairs",
                },
                {
                    "name": "council_tax",
                    "source": "council_tax",
                    "event_types": ["arrears_reminder", "summons"],
                    "scopes": ["resident", "household", "address"],
                    "windows": ["30d", "12m", "3y"],
                    "aggregates": ["count", "sum", "mean", "max", "trend", "days_since_first", "min", "last", "first"],
                    "missing": {"mean": {"rule": "zero"}, "days_since_first": {"rule": "null"}, "last": {"rule": "zero"}},
                    "description": "council tax recovery actions",
                },
                {
                    "name": "school",
                    "source": "school",
                    "event_types": ["absence", "fixed_term_exclusion"],
                    "per_event_type": False,
                    "scopes": ["resident", "household"],
                    "windows": ["3m", "12m"],
                    "aggregates": ["count", "sum", "mean", "max", "distinct_types", "trend", "days_since_last", "last", "min"],
                    "missing": {"max": {"rule": "constant", "value": -1}, "min": {"rule": "constant", "value": -1}},
                    "description": "school records",
                },
                {
                    "name": "police",
                    "source": "police",
                    "scopes": ["household", "address"],
                    "windows": ["30d", "3y", "all"],
                    "aggregates": ["count", "days_since_last", "days_since_first"],
                    "missing": {"days_since_last": {"rule": "constant", "value": 9999}},
                    "description": "police call-outs",
                },
                {
                    "name": "ae",
                    "source": "ae",
                    "event_types": ["attendance", "injury_attendance"],
                    "scopes": ["resident", "household"],
                    "windows": ["90d", "all"],
                    "aggregates": ["count", "days_since_last"],
                    "description": "A&E attendances",
                },
                {
                    "name": "social_care",
                    "source": "social_care",
                    "event_types": ["contact"],
                    "scopes": ["resident", "household"],
                    "windows": ["365d", "all"],
                    "aggregates": ["count", "days_since_last", "days_since_first"],
                    "missing": {"days_since_first": {"rule": "constant", "value": 9999}},
                    "description": "children's social care contacts",
                },
                {
                    "name": "asb",
                    "source": "asb",
                    "event_types": ["asb_report"],
                    "scopes": ["address"],
                    "windows": ["12m"],
                    "aggregates": ["count"],
                    "description": "anti-social behaviour reports",
                },
            ]
        },
    }
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        raw.setdefault(section, {})[name] = value
    return config_from_dict(raw, source="test config")


def write_folder(borough: Borough, folder: Path) -> Path:
    """Write the borough as a contract folder (Parquet + manifest.json)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from contract_fixtures import write_borough

    plain = {}
    for name, frame in borough.tables().items():
        out = frame.copy()
        for column in out.columns:
            if name in ("residents", "residency") and column in ("birth_date", "death_date", "start_date", "end_date"):
                out[column] = [None if pd.isna(v) else v.date() for v in out[column]]
            elif pd.api.types.is_datetime64_any_dtype(out[column]):
                out[column] = [None if pd.isna(v) else v.to_pydatetime() for v in out[column]]
        plain[name] = out
    manifest = {
        "extract_date": borough.extract_date.isoformat(),
        "sources": sorted(set(borough.events["source"])),
        "row_counts": {name: len(frame) for name, frame in plain.items()},
    }
    return write_borough(folder, plain, manifest=manifest)
