"""The oracle: the probability of an outcome given the true latent state, from a borough's ground truth.

For a resident living in the borough at `as_of`, each process's daily hazard is computed from the
household's latent state mask and the resident's age band *at as_of*; then P(at least one of the
outcome types starts in [as_of, as_of + horizon)) = 1 - exp(-sum of the hazards of processes that record
any of those types * horizon days). With method="persist" (the default) the state is assumed to last
the whole horizon; with method="chain" the state part of each hazard is its expected value over the
horizon under the household's monthly Markov chain, started from the state at as_of (the age band is
still held fixed). Residents not living in the borough at as_of get NaN.
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
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from earlysignal.errors import ContractError
from earlysignal.synth.adversity import STATES, transition_matrices
from earlysignal.synth.hazards import age_band, relative_hazard, state_multiplier
from earlysignal.synth.timeline import add_months

_NEVER = np.int64(10**7)  # a day number far beyond any extract date: "no end"


@dataclass(frozen=True)
class _Truth:
    resident_numbers: np.ndarray  # sorted numeric part of resident_id (IDs are R + digits)
    birth: np.ndarray  # day numbers
    disabled: np.ndarray
    group: dict[str, np.ndarray]  # attribute -> per-resident value (strings)
    residency: dict[str, np.ndarray]  # row, household, start, end
    states: dict[str, np.ndarray]  # household, bit, start, end
    reference: dict[str, np.ndarray]  # row, start, end
    n_households: int
    household_combo: np.ndarray  # per household number: tenure * n_kinds + kind (-1 if unknown)
    hazards: dict


def _read(path: Path, columns: list[str] | None = None) -> pa.Table:
    if not path.exists():
        raise ContractError(f"{path} is missing: oracle_risk needs a synthetic borough made by `earlysignal synth`")
    return pq.read_table(path, columns=columns)


def _numbers(column: pa.ChunkedArray) -> np.ndarray:
    """The digits of IDs like R00012345 / H00000042 as integers (the generator's own format)."""
    return pc.cast(pc.utf8_slice_codeunits(column, 1), pa.int64()).to_numpy()


def _day_numbers(column: pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(pc.cast(column, pa.int32()), int(_NEVER)).to_numpy().astype(np.int64)


@functools.lru_cache(maxsize=4)
def _load(data_dir: str, stamp: float) -> _Truth:
    root = Path(data_dir)
    truth = root / "ground_truth"
    residents = _read(root / "residents.parquet", ["resident_id", "birth_date"])
    people = _read(truth / "people.parquet")
    numbers = _numbers(residents.column("resident_id"))
    if not np.array_equal(numbers, _numbers(people.column("resident_id"))):
        raise ContractError(f"{truth / 'people.parquet'} does not list the same residents as residents.parquet")
    residency = _read(root / "residency.parquet", ["resident_id", "household_id", "start_date", "end_date"])
    states = _read(truth / "household_states.parquet")
    reference = _read(truth / "reference_persons.parquet")
    state_index = pd.Index(STATES).get_indexer(states.column("state").to_numpy(zero_copy_only=False))
    households = {
        "row": np.searchsorted(numbers, _numbers(residency.column("resident_id"))),
        "household": _numbers(residency.column("household_id")),
        "start": _day_numbers(residency.column("start_date")),
        "end": _day_numbers(residency.column("end_date")),
    }
    state_rows = {
        "household": _numbers(states.column("household_id")),
        "bit": np.left_shift(1, state_index).astype(np.int64),
        "start": _day_numbers(states.column("start_date")),
        "end": _day_numbers(states.column("end_date")),
    }
    disabled = people.column("disabled").to_numpy(zero_copy_only=False).astype(bool)
    hazards = json.loads((truth / "hazards.json").read_text(encoding="utf-8"))
    n_households = int(max(households["household"].max(initial=0), state_rows["household"].max(initial=0))) + 1
    combo = np.full(n_households, -1, dtype=np.int64)
    if "chain" in hazards:
        kinds = _read(truth / "households.parquet", ["household_id", "kind", "tenure"])
        number = _numbers(kinds.column("household_id"))
        keep = number < n_households
        tenure = pd.Index(hazards["chain"]["tenures"]).get_indexer(kinds.column("tenure").to_numpy(zero_copy_only=False))
        kind = pd.Index(hazards["chain"]["kinds"]).get_indexer(kinds.column("kind").to_numpy(zero_copy_only=False))
        combo[number[keep]] = (tenure * len(hazards["chain"]["kinds"]) + kind)[keep]
    return _Truth(
        resident_numbers=numbers,
        birth=_day_numbers(residents.column("birth_date")),
        disabled=disabled,
        group={
            "ethnicity": people.column("ethnicity").to_numpy(zero_copy_only=False),
            "sex": people.column("sex").to_numpy(zero_copy_only=False),
            "disability": np.where(disabled, "true", "false"),
        },
        residency=households,
        states=state_rows,
        reference={
            "row": np.searchsorted(numbers, _numbers(reference.column("resident_id"))),
            "start": _day_numbers(reference.column("start_date")),
            "end": _day_numbers(reference.column("end_date")),
        },
        n_households=n_households,
        household_combo=combo,
        hazards=hazards,
    )


def _expected_state_multiplier(chain: dict, betas: list[float], months: int) -> np.ndarray:
    """E[exp(betas . bits(state))] averaged over `months` monthly steps, per (tenure*kind combo, start mask)."""
    matrices = transition_matrices(chain)
    n_tenures, n_kinds = matrices.shape[:2]
    matrices = matrices.reshape(n_tenures * n_kinds, *matrices.shape[2:])
    value = np.broadcast_to(state_multiplier(betas), (len(matrices), matrices.shape[1])).copy()
    total = np.zeros_like(value)
    for _ in range(max(months, 1)):
        total += value
        value = np.einsum("cij,cj->ci", matrices, value)  # E[g(s_{t+1}) | s_0] from E[g(s_t) | s_0]
    return total / max(months, 1)


def oracle_risk(
    data_dir: Path,
    resident_ids: Sequence[str],
    as_of: dt.date,
    horizon_months: int,
    outcome_types: Sequence[str],
    method: str = "persist",
) -> np.ndarray:
    """P(at least one of `outcome_types` starts in [as_of, as_of + horizon)) given the true latent state.

    method: "persist" (state at as_of held over the horizon) or "chain" (expected over the latent chain).
    """
    if method not in ("persist", "chain"):
        raise ValueError(f"oracle_risk: method must be 'persist' or 'chain', not {method!r}")
    data_dir = Path(data_dir)
    stamp = (data_dir / "ground_truth" / "hazards.json").stat().st_mtime if (data_dir / "ground_truth").exists() else 0.0
    truth = _load(str(data_dir.resolve()), stamp)
    wanted = set(outcome_types)
    known = {t for p in truth.hazards["processes"] for t in p["produces"]}
    if wanted - known:
        raise ContractError(f"oracle_risk: unknown outcome types {sorted(wanted - known)}; known: {sorted(known)}")
    day = (as_of - dt.date(1970, 1, 1)).days
    horizon_days = float((add_months(as_of, horizon_months) - as_of).days)

    ids = pa.array(list(resident_ids), pa.string())
    try:
        wanted_numbers = _numbers(ids) if len(ids) else np.array([], dtype=np.int64)
    except pa.ArrowInvalid:  # some IDs are not ours: find them one by one
        wanted_numbers = np.array(
            [int(x[1:]) if x[:1] == "R" and x[1:].isdigit() else -1 for x in map(str, resident_ids)], dtype=np.int64
        )
    rows = np.searchsorted(truth.resident_numbers, wanted_numbers).clip(0, max(len(truth.resident_numbers) - 1, 0))
    unknown = truth.resident_numbers[rows] != wanted_numbers if len(rows) else np.array([], dtype=bool)
    if unknown.any():
        missing = [resident_ids[i] for i in np.flatnonzero(unknown)[:5]]
        raise ContractError(f"oracle_risk: resident_id not in residents.parquet: {missing}")
    res = truth.residency
    covering = (res["start"] <= day) & (res["end"] > day)
    household_of = np.full(len(truth.resident_numbers), -1, dtype=np.int64)
    household_of[res["row"][covering]] = res["household"][covering]
    st = truth.states
    active = (st["start"] <= day) & (st["end"] > day)
    mask_by_household = np.zeros(truth.n_households, dtype=np.int64)
    np.bitwise_or.at(mask_by_household, st["household"][active], st["bit"][active])
    households = household_of[rows]
    living = households >= 0
    mask = np.where(living, mask_by_household[np.maximum(households, 0)], 0)
    ref = truth.reference
    is_reference = np.zeros(len(truth.resident_numbers), dtype=bool)
    is_reference[ref["row"][(ref["start"] <= day) & (ref["end"] > day)]] = True

    age_days = day - truth.birth[rows]
    band = age_band(age_days)
    null_world = truth.hazards["world"] == "null"
    total = np.zeros(len(rows))
    for process in truth.hazards["processes"]:
        if not wanted & set(process["produces"]):
            continue
        state_part = None
        if method == "chain" and not null_world:
            if "chain" not in truth.hazards:
                raise ContractError(f"{data_dir / 'ground_truth' / 'hazards.json'} has no chain parameters; regenerate it")
            table = _expected_state_multiplier(truth.hazards["chain"], process["betas"], horizon_months)
            combo = truth.household_combo[np.maximum(households, 0)]
            state_part = np.where(combo >= 0, table[np.maximum(combo, 0), mask], state_multiplier(process["betas"])[mask])
        rate = process["base_per_day"] * relative_hazard(
            process, band, mask, truth.disabled[rows], null_world, state_part
        )
        if process["who"] == "reference":
            rate = rate * is_reference[rows]
        if process.get("recorded_by"):
            for bias in truth.hazards.get("recording_bias", []):
                if process["recorded_by"] in bias["sources"]:
                    group = bias["group"]
                    if bias["attribute"] == "disability":
                        group = "true" if group.lower() in {"true", "yes", "1", "disabled"} else "false"
                    hit = truth.group[bias["attribute"]][rows] == group
                    rate = np.where(hit, rate * bias["factor"], rate)
        total += rate
    risk = 1.0 - np.exp(-total * horizon_days)
    return np.where(living, risk, np.nan)
