"""A tiny world written to the ingest -> link interface (docs/ingest-and-link.md), with ground truth.

People live in households at gazetteer addresses; three person-bearing sources see them with their
own record IDs and errors: `school` (pupils, UPN, the system's pupil ID), `police` (names with typos,
day/month-swapped birth dates, free-text addresses without UPRNs, some missing postcodes) and `ae`
(NHS numbers, flat-numbering variants). `repairs` has address-only records. A later extract (month=2)
repeats every earlier record and adds new ones, as next month's extract would.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd

SYLLABLES = ["ka", "ri", "mo", "le", "sa", "tu", "ne", "bo", "di", "fa", "go", "hi", "ja", "lu", "me", "no", "pe",
             "ro", "si", "ta", "vi", "wo", "ya", "ze"]
STREETS = ["High Street", "Mill Road", "Church Lane", "Park Avenue", "Station Road", "Green Close"]
EXTRACT_DATE = dt.date(2026, 1, 1)


def _name(rng: np.random.Generator, parts: int) -> str:
    # The leading "X" keeps made-up names from being English words the privacy scan would trip on.
    return ("x" + "".join(rng.choice(SYLLABLES, size=parts))).capitalize()


def _typo(rng: np.random.Generator, name: str) -> str:
    i = int(rng.integers(1, len(name)))
    return name[:i] + name[i + 1:] if len(name) > 3 else name + "a"


def build_world(n_households: int = 60, seed: int = 0) -> dict[str, pd.DataFrame]:
    """People, households and addresses of the tiny world (the truth)."""
    rng = np.random.default_rng(seed)
    addresses = []
    for a in range(n_households + 10):
        street = STREETS[a % len(STREETS)]
        number = 1 + a // len(STREETS)
        flat = (a % 3) + 1 if a % 4 == 0 else None
        postcode = f"ZZ{1 + a % 3} {a % 9}{'AB'[a % 2]}{'CD'[a % 2]}"
        text = (f"Flat {flat}, " if flat else "") + f"{number} {street}"
        addresses.append({"uprn": str(100000 + a), "address_text": text, "postcode": postcode, "flat": flat,
                          "number": number, "street": street,
                          "tenure": ["council", "housing association", None][a % 3]})
    gazetteer = pd.DataFrame(addresses)
    people = []
    pid = 0
    for h in range(n_households):
        surname = _name(rng, 3)
        size = int(rng.integers(1, 5))
        for k in range(size):
            adult = k < 2
            birth = dt.date(1960, 1, 1) + dt.timedelta(days=int(rng.integers(0, 12000))) if adult else \
                dt.date(2008, 1, 1) + dt.timedelta(days=int(rng.integers(0, 3500)))
            people.append({"person_id": f"P{pid}", "household": h, "uprn": str(100000 + h),
                           "first_name": _name(rng, 2), "last_name": surname, "birth_date": birth,
                           "sex": ["F", "M"][int(rng.integers(0, 2))],
                           "ethnicity": ["W", "A", "B", "M", "O"][int(rng.integers(0, 5))],
                           "nhs": f"{9000000000 + pid}", "upn": f"UPN{pid:09d}" if not adult else None,
                           "since": dt.date(2015, 1, 1) + dt.timedelta(days=int(rng.integers(0, 1500)))})
            pid += 1
    return {"gazetteer": gazetteer, "people": pd.DataFrame(people)}


def _address_text(rng: np.random.Generator, row: pd.Series, variant: bool) -> str:
    if variant and pd.notna(row["flat"]):
        return f"{int(row['flat'])}/{row['number']} {row['street'].replace('Street', 'St').replace('Road', 'Rd')}"
    return row["address_text"]


def write_ingested(out: Path, month: int = 1, n_households: int = 60, seed: int = 0) -> dict[str, object]:
    """Write person_records, address_records, gazetteer, events, outcomes, manifest and ground_truth.

    month=2 writes the same records as month=1 plus new records (a new police record for some existing
    people and one new household seen by police). Returns the world for assertions.
    """
    world = build_world(n_households, seed)
    gaz, people = world["gazetteer"], world["people"]
    rng = np.random.default_rng(seed + 1)
    by_uprn = gaz.set_index("uprn")
    rows, truth, events, outcomes = [], [], [], []

    def add(source: str, record_id: str, person: pd.Series, **fields: object) -> None:
        address = by_uprn.loc[person["uprn"]]
        base = {"source": source, "record_id": record_id, "source_person_id": None,
                "first_name": person["first_name"], "middle_name": None, "last_name": person["last_name"],
                "birth_date": person["birth_date"], "sex": person["sex"], "postcode": address["postcode"],
                "address_text": address["address_text"], "uprn": None, "nhs_number": None, "upn": None,
                "seen_date": person["since"], "seen_until": None, "attr_ethnicity": person["ethnicity"]}
        base.update(fields)
        rows.append(base)
        truth.append({"source": source, "record_id": record_id, "person_id": person["person_id"]})

    for i, person in people.iterrows():
        local = np.random.default_rng(seed * 1000 + i)
        if person["upn"]:
            for term in range(2):
                add("school", f"S{i}-{term}", person, source_person_id=f"PUPIL{i}", upn=person["upn"],
                    uprn=person["uprn"], seen_date=person["since"] + dt.timedelta(days=120 * term),
                    sex={"F": "2", "M": "1"}[person["sex"]])
        if local.random() < 0.7:
            first = _typo(local, person["first_name"]) if local.random() < 0.2 else person["first_name"]
            birth = person["birth_date"]
            if local.random() < 0.1 and birth.day <= 12 and birth.day != birth.month:
                birth = birth.replace(month=birth.day, day=birth.month)
            address = by_uprn.loc[person["uprn"]]
            add("police", f"INC{i:05d}", person, first_name=first, birth_date=birth,
                postcode=None if local.random() < 0.2 else address["postcode"],
                address_text=_address_text(local, address, variant=True),
                seen_date=person["since"] + dt.timedelta(days=400))
            events.append({"event_id": f"police:INC{i:05d}", "source": "police", "person_record_id": f"INC{i:05d}",
                           "address_record_id": None, "event_type": "domestic_incident",
                           "event_time": pd.Timestamp(person["since"]) + pd.Timedelta(days=400),
                           "known_at": pd.Timestamp(person["since"]) + pd.Timedelta(days=402), "value": None,
                           "coded_by": "fixture"})
        if local.random() < 0.8:
            add("ae", f"AE{i:05d}", person, nhs_number=person["nhs"],
                address_text=_address_text(local, by_uprn.loc[person["uprn"]], variant=local.random() < 0.5),
                seen_date=person["since"] + dt.timedelta(days=200), sex=person["sex"].lower())
            events.append({"event_id": f"ae:AE{i:05d}", "source": "ae", "person_record_id": f"AE{i:05d}",
                           "address_record_id": None, "event_type": "attendance",
                           "event_time": pd.Timestamp(person["since"]) + pd.Timedelta(days=200),
                           "known_at": pd.Timestamp(person["since"]) + pd.Timedelta(days=201), "value": None,
                           "coded_by": "fixture"})
            if i % 7 == 0:
                outcomes.append({"source": "ae", "person_record_id": f"AE{i:05d}", "outcome_type": "csc_referral",
                                 "outcome_time": pd.Timestamp(person["since"]) + pd.Timedelta(days=300),
                                 "known_at": pd.Timestamp(person["since"]) + pd.Timedelta(days=305),
                                 "end_time": None})
    address_rows = []
    for h in range(0, n_households, 2):
        row = by_uprn.loc[str(100000 + h)]
        address_rows.append({"source": "housing_repairs", "record_id": f"JOB{h:05d}", "address_text": row["address_text"].upper(),
                             "postcode": row["postcode"], "uprn": None, "property_ref": f"PR{h}"})
        events.append({"event_id": f"housing_repairs:JOB{h:05d}", "source": "housing_repairs", "person_record_id": None,
                       "address_record_id": f"JOB{h:05d}", "event_type": "door_replacement",
                       "event_time": pd.Timestamp("2024-05-01"), "known_at": pd.Timestamp("2024-05-03"), "value": 1.0,
                       "coded_by": "fixture"})
    if month >= 2:
        for i, person in people.iloc[::5].iterrows():
            add("police", f"INC2-{i:05d}", person, seen_date=dt.date(2025, 12, 1))
        newcomer = people.iloc[0].copy()
        for k, first in enumerate(["Newa", "Newb"]):
            newcomer.update({"person_id": f"NEW{k}", "first_name": first + _name(rng, 2).lower(),
                             "last_name": "Zzquorn", "birth_date": dt.date(1990, 3, 4 + k),
                             "uprn": str(100000 + n_households + 1)})
            add("police", f"INC-NEW{k}", newcomer, seen_date=dt.date(2025, 12, 5))
    out = Path(out)
    (out / "ground_truth").mkdir(parents=True, exist_ok=True)
    person_records = pd.DataFrame(rows)
    for column in ("birth_date", "seen_date", "seen_until"):
        person_records[column] = pd.to_datetime(person_records[column]).dt.date
    person_records.to_parquet(out / "person_records.parquet", index=False)
    pd.DataFrame(address_rows).to_parquet(out / "address_records.parquet", index=False)
    gaz[["uprn", "address_text", "postcode", "tenure"]].assign(parent_uprn=None, classification="R").to_parquet(
        out / "gazetteer.parquet", index=False)
    pd.DataFrame(events).to_parquet(out / "events.parquet", index=False)
    pd.DataFrame(outcomes, columns=["source", "person_record_id", "outcome_type", "outcome_time", "known_at", "end_time"]
                 ).to_parquet(out / "outcomes.parquet", index=False)
    pd.DataFrame(truth).to_parquet(out / "ground_truth" / "raw_records.parquet", index=False)
    (out / "manifest.json").write_text(json.dumps({"extract_date": EXTRACT_DATE.isoformat(), "code_lists": {"x": "abc"}}))
    return {"people": people, "gazetteer": gaz, "person_records": person_records}


LINKAGE_CONFIG = {
    "sex_codes": {"F": "F", "M": "M", "f": "F", "m": "M", "1": "M", "2": "F"},
    "ethnicity_codes": {"W": "White", "A": "Asian", "B": "Black", "M": "Mixed", "O": "Other"},
    "tenure_codes": {"council": "council", "housing association": "housing_association"},
    "default_tenure": "private_rented",
    "address_events_sources": ["police"],
    "u_max_pairs": 200000,
}
