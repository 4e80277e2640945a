"""From linked records to the data contract: residents, residency spells, households, events, outcomes.

Rules (documented in docs/ingest-and-link.md):
* a resident's birth date, sex, ethnicity and disability: the most frequent non-null value among
  their records, the latest-seen on ties;
* residency: the resident's dated address observations in time order; consecutive observations at
  one address make one spell, which ends when the next address's first observation begins (or at the
  last observation's `seen_until`, if any; else open). Two addresses seen on one day: the one seen
  more often that day, then the smaller address_id. With a lapse (`linkage.residency_lapse_days`), a
  spell with no evidence for longer than the lapse ends that many days after its last evidence (an
  observation is evidence from its date to its `seen_until`), and a later observation starts a new
  spell; what a live system would conclude at any date from the records before it. An end after the
  extract date, or on it from evidence reaching it (an open liability), is open; a lapse ending on the
  extract date ends the spell there; a record dated after the extract date starts no spell;
* household_id: spells at one address that overlap in time belong to one household (the union of
  overlapping intervals), keyed by address and the household's first start date.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from earlysignal.linkage.secret import keyed_id

_FOREVER = pd.Timestamp("2262-01-01")


def most_frequent_latest(frame: pd.DataFrame, key: str, value: str, order: str, weight: str | None = None) -> pd.Series:
    """Per `key`, the most frequent non-null `value`; ties go to the value seen latest (`order`).

    `weight` names a column holding how many records each row stands for (default: one each).
    """
    data = frame[[key, value, order] + ([weight] if weight else [])].dropna(subset=[value])
    if data.empty:
        return pd.Series(dtype="object")
    stats = data.groupby([key, value], sort=False, observed=True).agg(
        n=(weight, "sum") if weight else (order, "size"), last=(order, "max"))
    stats = stats.reset_index().sort_values([key, "n", "last", value], ascending=[True, False, False, True])
    return stats.drop_duplicates(key).set_index(key)[value]


def residency_spells(observations: pd.DataFrame, lapse_days: int | None = None,
                     extract_date: pd.Timestamp | None = None) -> pd.DataFrame:
    """Spells from observations (resident_id, address_id, seen_date, seen_until).

    Returns resident_id, address_id, start_date, end_date (null = open); spells of one resident never
    overlap and each ends after it starts. `lapse_days` and `extract_date` as in `spells_from_daily`.
    """
    obs = observations.dropna(subset=["resident_id", "address_id", "seen_date"]).copy()
    if obs.empty:
        return pd.DataFrame(columns=["resident_id", "address_id", "start_date", "end_date"])
    obs["seen_date"] = pd.to_datetime(obs["seen_date"]).dt.normalize()
    obs["seen_until"] = pd.to_datetime(obs["seen_until"]).dt.normalize()
    daily = (
        obs.groupby(["resident_id", "seen_date", "address_id"], sort=False)
        .agg(n=("address_id", "size"), until=("seen_until", "max"))
        .reset_index()
    )
    return spells_from_daily(daily, lapse_days, extract_date)


def spells_from_daily(daily: pd.DataFrame, lapse_days: int | None = None,
                      extract_date: pd.Timestamp | None = None) -> pd.DataFrame:
    """Spells from daily observation counts: resident_id, seen_date, address_id, n (records), until.

    The second half of `residency_spells`, for callers that count observations elsewhere (DuckDB).
    IDs may be any sortable values (strings or int codes in the IDs' sort order). `lapse_days`: a gap
    in a resident's evidence (each observation covers seen_date..until) longer than this ends the spell
    `lapse_days` after the evidence stops, or at an explicit `until` beyond the last observation (a
    recorded move-out); None keeps a spell open until the next address is seen. Ends after
    `extract_date`, or on it from `until` evidence, are open (null); a lapse ending on it is an end;
    observations dated after it are not used.
    """
    if extract_date is not None:
        # A record dated after the extract date (a council-tax liability starting next month) says
        # where someone will live, not where they live: it starts no spell until that date has come.
        daily = daily[daily["seen_date"] <= pd.Timestamp(extract_date)]
    if daily.empty:
        return pd.DataFrame(columns=["resident_id", "address_id", "start_date", "end_date"])
    # One address per resident per day.
    daily = (
        daily.sort_values(["resident_id", "seen_date", "n", "address_id"], ascending=[True, True, False, True])
        .drop_duplicates(["resident_id", "seen_date"])
        .reset_index(drop=True)
    )
    new_resident = daily["resident_id"].ne(daily["resident_id"].shift())
    new_run = new_resident | daily["address_id"].ne(daily["address_id"].shift())
    lapsed = pd.Series(False, index=daily.index)
    if lapse_days is not None:
        # Evidence so far (any address): the latest date an earlier observation of the resident covers.
        covers = daily["until"].where(daily["until"] > daily["seen_date"], daily["seen_date"])
        covered_to = covers.groupby(daily["resident_id"], sort=False).cummax()
        previous = covered_to.groupby(daily["resident_id"], sort=False).shift()
        lapsed = (~new_resident) & (daily["seen_date"] - previous > pd.Timedelta(days=lapse_days))
        new_run = new_run | lapsed
    daily["run"] = new_run.cumsum()
    daily["lapsed_before"] = lapsed
    runs = daily.groupby("run", sort=True).agg(
        resident_id=("resident_id", "first"),
        address_id=("address_id", "first"),
        start_date=("seen_date", "min"),
        last_seen=("seen_date", "max"),
        until=("until", "max"),
    )
    next_start = runs["start_date"].shift(-1)
    same_next = runs["resident_id"].eq(runs["resident_id"].shift(-1))
    moved_out = runs["until"].where(runs["until"] > runs["last_seen"])
    lapsed_end = pd.Series(False, index=runs.index)
    if lapse_days is None:
        end = next_start.where(same_next, moved_out)
    else:
        # No later address for the lapse: the spell ends when the evidence lapses (a recorded move-out
        # date, else the last observation + the lapse), whether or not the resident is seen again.
        lapse_end = moved_out.fillna(runs["last_seen"] + pd.Timedelta(days=lapse_days))
        next_lapsed = daily.groupby("run", sort=True)["lapsed_before"].first().shift(-1).fillna(False).astype(bool)
        end = next_start.where(same_next & ~next_lapsed, lapse_end)
        lapsed_end = ~(same_next & ~next_lapsed) & moved_out.isna()
    if extract_date is not None:
        # An end on the extract date is an end when the lapse put it there (the resident was gone by
        # that day, as next month's run will also say); evidence reaching the extract date (an open
        # liability) or beyond it leaves the spell open.
        extract = pd.Timestamp(extract_date)
        end = end.where((end < extract) | (lapsed_end & (end == extract)))
    runs["end_date"] = end.where(end > runs["start_date"])
    return runs[["resident_id", "address_id", "start_date", "end_date"]].reset_index(drop=True)


def household_ids(spells: pd.DataFrame, secret: bytes) -> pd.Series:
    """household_id per spell: overlapping spells at one address form one household (keyed hash)."""
    if spells.empty:
        return pd.Series(dtype="object")
    data = spells[["address_id", "start_date", "end_date"]].copy()
    data["end"] = data["end_date"].fillna(_FOREVER)
    data = data.sort_values(["address_id", "start_date", "end"])
    new_address = data["address_id"].ne(data["address_id"].shift())
    running_end = data.groupby("address_id", sort=False)["end"].cummax()
    previous_end = running_end.shift()
    new_group = new_address | (data["start_date"] >= previous_end)
    group = new_group.cumsum()
    first_start = data.groupby(group)["start_date"].transform("min")
    keys = data["address_id"].astype(str) + "|" + first_start.dt.strftime("%Y-%m-%d")
    unique = {k: keyed_id(secret, "H", "household:" + k) for k in pd.unique(keys)}
    return keys.map(unique).reindex(spells.index)


def event_times(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Cast the named columns to timestamps (microseconds)."""
    out = frame.copy()
    for column in columns:
        if column in out:
            out[column] = pd.to_datetime(out[column]).astype("datetime64[us]")
    return out


def spell_tenure(address_ids: pd.Series, tenure_by_address: dict[str, str], default: str) -> np.ndarray:
    """Tenure per spell from its address (the gazetteer's tenure), else `default`."""
    return address_ids.map(lambda a: tenure_by_address.get(a, default)).to_numpy(dtype=object)
