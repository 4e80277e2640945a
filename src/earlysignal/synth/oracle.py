"""The oracle: the probability of an outcome given the true latent state, from a borough's ground truth.

For a resident living in the borough at `as_of`, each process's daily hazard is computed from the
household's latent state mask and the resident's age band *at as_of*, which are assumed to persist over
the horizon; then P(at least one of the outcome types starts in [as_of, as_of + horizon)) =
1 - exp(-sum of the hazards of processes that record any of those types * horizon days).
Residents not living in the borough at as_of get NaN.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from earlysignal.errors import ContractError
from earlysignal.synth.adversity import STATES
from earlysignal.synth.hazards import age_band, relative_hazard
from earlysignal.synth.timeline import add_months

_FAR = np.datetime64("2262-01-01", "D")


@dataclass(frozen=True)
class _Truth:
    index: pd.Index  # resident_id -> row of the arrays below
    birth: np.ndarray  # datetime64[D]
    disabled: np.ndarray
    group: dict[str, np.ndarray]  # attribute -> per-resident value (strings)
    residency: pd.DataFrame  # resident row, household_id, start, end
    states: pd.DataFrame  # household_id, bit, start, end
    reference: pd.DataFrame  # resident row, start, end
    hazards: dict


def _read(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    if not path.exists():
        raise ContractError(f"{path} is missing: oracle_risk needs a synthetic borough made by `earlysignal synth`")
    return pq.read_table(path, columns=columns).to_pandas()


def _days(series: pd.Series) -> np.ndarray:
    values = series.to_numpy(dtype="datetime64[D]", na_value=_FAR)
    return values


@functools.lru_cache(maxsize=4)
def _load(data_dir: str, stamp: float) -> _Truth:
    root = Path(data_dir)
    truth = root / "ground_truth"
    residents = _read(root / "residents.parquet", ["resident_id", "birth_date"])
    people = _read(truth / "people.parquet").set_index("resident_id").reindex(residents["resident_id"])
    index = pd.Index(residents["resident_id"])
    residency = _read(root / "residency.parquet", ["resident_id", "household_id", "start_date", "end_date"])
    residency = pd.DataFrame(
        {
            "row": index.get_indexer(residency["resident_id"]),
            "household_id": residency["household_id"].to_numpy(dtype=object),
            "start": _days(residency["start_date"]),
            "end": _days(residency["end_date"]),
        }
    )
    states = _read(truth / "household_states.parquet")
    states = pd.DataFrame(
        {
            "household_id": states["household_id"].to_numpy(dtype=object),
            "bit": np.left_shift(1, pd.Index(STATES).get_indexer(states["state"])).astype(np.int64),
            "start": _days(states["start_date"]),
            "end": _days(states["end_date"]),
        }
    )
    reference = _read(truth / "reference_persons.parquet")
    reference = pd.DataFrame(
        {
            "row": index.get_indexer(reference["resident_id"]),
            "start": _days(reference["start_date"]),
            "end": _days(reference["end_date"]),
        }
    )
    hazards = json.loads((truth / "hazards.json").read_text(encoding="utf-8"))
    return _Truth(
        index=index,
        birth=_days(residents["birth_date"]),
        disabled=people["disabled"].to_numpy(dtype=bool),
        group={
            "ethnicity": people["ethnicity"].to_numpy(dtype=object),
            "sex": people["sex"].to_numpy(dtype=object),
            "disability": np.where(people["disabled"].to_numpy(dtype=bool), "true", "false"),
        },
        residency=residency,
        states=states,
        reference=reference,
        hazards=hazards,
    )


def oracle_risk(
    data_dir: Path,
    resident_ids: Sequence[str],
    as_of: dt.date,
    horizon_months: int,
    outcome_types: Sequence[str],
) -> np.ndarray:
    """P(at least one of `outcome_types` starts in [as_of, as_of + horizon)) given the true latent state."""
    data_dir = Path(data_dir)
    stamp = (data_dir / "ground_truth" / "hazards.json").stat().st_mtime if (data_dir / "ground_truth").exists() else 0.0
    truth = _load(str(data_dir.resolve()), stamp)
    wanted = set(outcome_types)
    known = {t for p in truth.hazards["processes"] for t in p["produces"]}
    if wanted - known:
        raise ContractError(f"oracle_risk: unknown outcome types {sorted(wanted - known)}; known: {sorted(known)}")
    day = np.datetime64(as_of, "D")
    horizon_days = float((add_months(as_of, horizon_months) - as_of).days)

    rows = truth.index.get_indexer(pd.Index(list(resident_ids)))
    if (rows < 0).any():
        missing = [resident_ids[i] for i in np.flatnonzero(rows < 0)[:5]]
        raise ContractError(f"oracle_risk: resident_id not in residents.parquet: {missing}")
    res = truth.residency
    covering = res[(res["start"] <= day) & (res["end"] > day)]
    household_of = np.full(len(truth.index), None, dtype=object)
    household_of[covering["row"].to_numpy()] = covering["household_id"].to_numpy()
    st = truth.states
    active = st[(st["start"] <= day) & (st["end"] > day)]
    mask_by_household = active.groupby("household_id", sort=False)["bit"].sum()
    households = household_of[rows]
    living = pd.notna(households)
    mask = (
        pd.Series(households).map(mask_by_household).fillna(0).to_numpy(dtype=np.int64)
    )
    ref = truth.reference
    is_reference = np.zeros(len(truth.index), dtype=bool)
    is_reference[ref.loc[(ref["start"] <= day) & (ref["end"] > day), "row"].to_numpy()] = True

    age_days = (day - truth.birth[rows]).astype(np.int64)
    band = age_band(age_days)
    null_world = truth.hazards["world"] == "null"
    total = np.zeros(len(rows))
    for process in truth.hazards["processes"]:
        if not wanted & set(process["produces"]):
            continue
        rate = process["base_per_day"] * relative_hazard(process, band, mask, truth.disabled[rows], null_world)
        if process["who"] == "reference":
            rate = rate * is_reference[rows]
        if process.get("recorded_by"):
            for bias in truth.hazards.get("recording_bias", []):
                if process["recorded_by"] in bias["sources"]:
                    group = truth.group[bias["attribute"]][rows]
                    target = bias["group"].lower() if bias["attribute"] == "disability" else bias["group"]
                    hit = group == (("true" if target in {"true", "yes", "1", "disabled"} else "false")
                                    if bias["attribute"] == "disability" else target)
                    rate = np.where(hit, rate * bias["factor"], rate)
        total += rate
    risk = 1.0 - np.exp(-total * horizon_days)
    return np.where(living, risk, np.nan)
