"""The point-in-time feature builder: cohort x as_of rows, one column per generated feature.

The engine does the heavy, data-sized work (filtering ~20M events and grouping them into
(entity, event type, first_j, time bucket) groups; cohort; memberships; labels). NumPy then turns
the groups into difference arrays along the as_of axis, takes running sums / maxima over j,
aggregates over household members at each as_of and fills a dense float32 matrix. No event is
ever joined to the as_of grid, so nothing is amplified.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from earlysignal.config import FeatureFamily, ProjectConfig
from earlysignal.engines.base import Engine
from earlysignal.engines.registry import get_engine
from earlysignal.errors import ContractError, EarlySignalError
from earlysignal.features.cohort import EPOCH, AsOfGrid, Cohort, build_cohort, check_entry_column
from earlysignal.features.history import check_min_history, data_starts, null_windows_before_data_start
from earlysignal.features.labels import add_label_timing_columns, build_label_timing, label_metadata, still_followed_up
from earlysignal.features.matrix import FeatureMatrix
from earlysignal.dictionary import DataDictionary, dictionary_for
from earlysignal.features.spec import (
    AGE_BAND_ATTRIBUTE,
    BUILT_IN_STATIC,
    FeatureDefinition,
    age_band,
    code_fingerprint,
    definitions_as_records,
    family_definitions,
    family_event_types,
    feature_definitions,
    protected_codes,
    spec_dict,
    spec_hash,
    static_attribute,
)
from earlysignal.features.sql import event_groups_sql, memberships_sql
from earlysignal.fingerprint import stable_hash
from earlysignal.windows import WindowLength, window_length

MICROSECONDS_PER_DAY = 86_400_000_000


class LinkedDataLike(Protocol):
    """What the builder reads from `earlysignal.contract.LinkedData`."""

    residents: pd.DataFrame
    residency: pd.DataFrame
    events: pd.DataFrame
    outcomes: pd.DataFrame
    extract_date: dt.date


_REQUIRED_COLUMNS = {
    "residents": ("resident_id",),
    "residency": ("resident_id", "household_id", "address_id", "start_date", "end_date"),
    "events": ("resident_id", "address_id", "source", "event_type", "event_time", "known_at", "value"),
    "outcomes": ("resident_id", "outcome_type", "outcome_time", "known_at", "end_time"),
}


def _check_columns(data: LinkedDataLike) -> None:
    for table, columns in _REQUIRED_COLUMNS.items():
        frame = getattr(data, table)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ContractError(f"{table}: missing column(s) {missing}; the feature builder needs {list(columns)}")


def _uses_age(config: ProjectConfig) -> bool:
    uses = "age" in config.features.static or AGE_BAND_ATTRIBUTE in config.features.protected_as_features
    cohort = config.cohort
    # An age-ranged cohort reads birth dates too (the cohort section's own fields, when it has them).
    ranged = getattr(cohort, "min_age", 0) not in (0, None) or getattr(cohort, "max_age", None) is not None
    return uses or ranged


def check_inputs_usable(config: ProjectConfig, data: LinkedDataLike) -> None:
    """Before any work: age needs birth dates, household/address scopes need residency, an entry
    rule needs its date column (cohort.entry_column).

    Raises ConfigError naming the config key that asks for what the data cannot give.
    """
    from earlysignal.errors import ConfigError

    residents = data.residents
    check_entry_column(config, residents)
    if _uses_age(config):
        births = residents["birth_date"] if "birth_date" in residents.columns else None
        if births is None or not births.notna().any():
            state = "absent" if births is None else "empty (no resident has one)"
            raise ConfigError(
                "features.static / cohort ages need residents.birth_date, which is "
                f"{state}; remove age from features.static and the cohort's age range, or supply birth dates"
            )
    if len(data.residency) == 0:
        wanted = sorted(
            {f"features.families[{f.name}].scopes: {s}" for f in config.features.families for s in f.scopes if s != "resident"}
            | {f"features.static: {s}" for s in config.features.static if BUILT_IN_STATIC.get(s, ("",))[0] == "residency"}
        )
        if getattr(config.cohort, "require_residency", False):
            wanted.append("cohort.require_residency: true")
        if wanted:
            raise ConfigError(
                "the data has no residency table (or no accepted residency rows), so households and addresses are "
                f"unknown; these need it: {'; '.join(wanted)}"
            )


def _day_numbers(values: Any) -> np.ndarray:
    """Dates or timestamps as whole days since 1970-01-01 (NaT -> min int64)."""
    stamps = pd.to_datetime(pd.Series(values), errors="raise")
    days = stamps.to_numpy(dtype="datetime64[D]", na_value=np.datetime64("NaT")).astype(np.int64)
    return days


def _ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dates = days.astype("datetime64[D]")
    years = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    months = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day_of_month = (dates - dates.astype("datetime64[M]")).astype(np.int64) + 1
    return years, months, day_of_month


def completed_years(birth_days: np.ndarray, as_of_days: np.ndarray) -> np.ndarray:
    """Age in completed years (the birthday counts on its day; 29 Feb birthdays count on 1 Mar)."""
    by, bm, bd = _ymd(birth_days)
    ay, am, ad = _ymd(as_of_days)
    return ay - by - ((am * 100 + ad) < (bm * 100 + bd)).astype(np.int64)


def completed_months(since_days: np.ndarray, as_of_days: np.ndarray) -> np.ndarray:
    """Whole calendar months from `since` to `as_of`."""
    sy, sm, sd = _ymd(since_days)
    ay, am, ad = _ymd(as_of_days)
    return (ay - sy) * 12 + (am - sm) - (ad < sd).astype(np.int64)


@dataclass
class _Households:
    """Members of the households that cohort rows live in, grouped by (household, j)."""

    member_r: np.ndarray  # sorted by group
    member_j: np.ndarray
    starts: np.ndarray  # start offset of each (j, household) group
    row_group: np.ndarray  # group index per cohort row (-1: not living anywhere)
    all_housed: bool = False

    def reduce(self, values: np.ndarray, how: str) -> np.ndarray:
        """Sum / max / min of per-member values per cohort row's household at its as_of."""
        fill = {"sum": 0.0, "max": -np.inf, "min": np.inf}[how]
        if self.starts.size == 0:
            return np.full(self.row_group.size, fill, dtype=np.float64)
        ufunc = {"sum": np.add, "max": np.maximum, "min": np.minimum}[how]
        grouped = ufunc.reduceat(values, self.starts)
        if self.all_housed:  # the usual case (cohort.require_residency): no masking needed
            return np.take(grouped, self.row_group)
        out = np.full(self.row_group.size, fill, dtype=np.float64)
        valid = self.row_group >= 0
        out[valid] = grouped[self.row_group[valid]]
        return out


@dataclass
class _Context:
    """Everything the column builders share for one build."""

    engine: Engine
    grid: AsOfGrid
    cohort: Cohort
    n_residents: int
    resident_entity: np.ndarray  # [R] compact key among residents whose events matter, or -1
    address_entity: np.ndarray  # [addresses] compact key among cohort rows' addresses, or -1
    household_of: np.ndarray  # [R, J] household index or -1
    address_of: np.ndarray  # [R, J] address index or -1
    spell_codes: dict[str, np.ndarray]  # residency category -> [R, J] code (position in declared values) or -1
    since_of: np.ndarray  # [R, J] day number the resident has lived at that address since
    birth_days: np.ndarray  # [R]
    households: _Households
    dictionary: DataDictionary
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def row_address(self) -> np.ndarray:
        return self.address_of[self.cohort.r_idx, self.cohort.j]


def _households(
    cohort: Cohort,
    household_of: np.ndarray,
    member_r: np.ndarray,
    member_j: np.ndarray,
    member_h: np.ndarray,
    J: int,
    n_households: int,
) -> _Households:
    row_h = household_of[cohort.r_idx, cohort.j].astype(np.int64)
    housed = row_h >= 0
    # Only households that hold a cohort row at that as_of matter. Groups are keyed (j, household)
    # so that gathering members' values reads one as_of row of a [J, entities] array at a time.
    wanted = np.zeros(n_households * J, dtype=bool)
    wanted[cohort.j[housed] * n_households + row_h[housed]] = True
    member_key = member_j * n_households + member_h.astype(np.int64)
    keep = wanted[member_key]
    member_key, member_r, member_j = member_key[keep], member_r[keep], member_j[keep]
    order = np.argsort(member_key, kind="stable")
    member_key, member_r, member_j = member_key[order], member_r[order], member_j[order]
    if member_key.size:
        starts = np.concatenate([[0], np.flatnonzero(np.diff(member_key)) + 1]).astype(np.int64)
        group_keys = member_key[starts]
    else:
        starts = np.zeros(0, dtype=np.int64)
        group_keys = np.zeros(0, dtype=np.int64)
    row_group = np.full(row_h.size, -1, dtype=np.int64)
    row_group[housed] = np.searchsorted(group_keys, cohort.j[housed] * n_households + row_h[housed])
    return _Households(
        member_r=member_r, member_j=member_j, starts=starts, row_group=row_group, all_housed=bool(housed.all())
    )


def _register_event_entities(
    engine: Engine,
    cohort: Cohort,
    households: _Households,
    address_of: np.ndarray,
    resident_ids: np.ndarray,
    address_ids: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Compact keys for the residents and addresses whose events can reach a cohort row, registered
    as event_residents / event_addresses so the engine drops every other event early."""
    needed = np.zeros(resident_ids.size, dtype=bool)
    needed[cohort.r_idx] = True
    needed[households.member_r] = True
    resident_entity = np.where(needed, np.cumsum(needed) - 1, -1)
    row_address = address_of[cohort.r_idx, cohort.j].astype(np.int64)
    used = np.zeros(address_ids.size, dtype=bool)
    used[row_address[row_address >= 0]] = True
    address_entity = np.where(used, np.cumsum(used) - 1, -1)
    engine.register(
        "event_residents",
        pd.DataFrame({"resident_id": pd.Series(resident_ids[needed], dtype="str"),
                      "entity": np.arange(int(needed.sum()), dtype=np.int32)}),
    )
    engine.register(
        "event_addresses",
        pd.DataFrame({"address_id": pd.Series(address_ids[used], dtype="str"),
                      "entity": np.arange(int(used.sum()), dtype=np.int32)}),
    )
    return resident_entity, address_entity


def _register_tables(engine: Engine, data: LinkedDataLike, grid: AsOfGrid) -> tuple[np.ndarray, int, np.ndarray]:
    residents = data.residents
    resident_ids = pd.Index(residents["resident_id"].astype("str")).unique().sort_values()
    if len(resident_ids) != len(residents):
        raise ContractError("residents: resident_id is not unique")
    household_ids = pd.Index(data.residency["household_id"].astype("str")).unique().sort_values()
    address_ids = pd.Index(data.residency["address_id"].astype("str")).unique().sort_values()
    # The cohort and label SQL read birth and death dates; a dictionary may declare neither (all null then).
    for column in ("birth_date", "death_date"):
        if column not in residents.columns:
            residents = residents.assign(**{column: pd.Series(pd.NaT, index=residents.index, dtype="datetime64[us]")})
    engine.register("residents", residents)
    engine.register("residency", data.residency)
    engine.register("events", data.events)
    engine.register("outcomes", data.outcomes)
    engine.register(
        "resident_index",
        pd.DataFrame({"resident_id": resident_ids, "r_idx": np.arange(len(resident_ids), dtype=np.int32)}),
    )
    engine.register(
        "household_index",
        pd.DataFrame({"household_id": household_ids, "h_idx": np.arange(len(household_ids), dtype=np.int32)}),
    )
    engine.register(
        "address_index",
        pd.DataFrame({"address_id": address_ids, "a_idx": np.arange(len(address_ids), dtype=np.int32)}),
    )
    engine.register("grid", grid.frame())
    return np.asarray(resident_ids, dtype=object), len(household_ids), np.asarray(address_ids, dtype=object)


def _memberships(
    engine: Engine, n_residents: int, J: int, categories: dict[str, tuple[str, ...]] | None = None
) -> dict[str, Any]:
    categories = categories or {}
    table = engine.run(memberships_sql(engine.dialect, categories))
    r = table.column("r_idx").to_numpy().astype(np.int64)
    j = table.column("j").to_numpy().astype(np.int64)
    h = table.column("h_idx").to_numpy().astype(np.int64)
    a = table.column("a_idx").to_numpy().astype(np.int64)
    since = table.column("address_since").cast(pa.int32()).to_numpy().astype(np.int64)
    shape = (n_residents, J)
    household_of = np.full(shape, -1, dtype=np.int32)
    address_of = np.full(shape, -1, dtype=np.int32)
    since_of = np.zeros(shape, dtype=np.int64)
    household_of[r, j] = h
    if np.count_nonzero(household_of >= 0) != r.size:
        raise ContractError("residency: a resident has overlapping spells (two spells cover the same as_of date)")
    address_of[r, j] = a
    spell_codes: dict[str, np.ndarray] = {}
    for name in categories:
        codes = np.full(shape, -1, dtype=np.int16)
        codes[r, j] = table.column(f"code__{name}").to_numpy().astype(np.int16)
        spell_codes[name] = codes
    since_of[r, j] = since
    return {
        "household_of": household_of,
        "address_of": address_of,
        "spell_codes": spell_codes,
        "since_of": since_of,
        "member_r": r,
        "member_j": j,
        "member_h": h,
    }


# ---------------------------------------------------------------------------------------------
# Event families


@dataclass
class _Groups:
    """Grouped events of one event type: one row per (entity, first_j, tb)."""

    entity: np.ndarray
    first_j: np.ndarray
    tb: np.ndarray
    n: np.ndarray
    s: np.ndarray | None
    nv: np.ndarray | None
    vmax: np.ndarray | None
    last_day: np.ndarray
    first_day: np.ndarray
    lookups: dict[WindowLength | None, np.ndarray]
    J: int
    vmin: np.ndarray | None = None
    v_last: np.ndarray | None = None
    t_last_v: np.ndarray | None = None
    v_first: np.ndarray | None = None
    t_first_v: np.ndarray | None = None

    def pick_inputs(self, aggregate: str) -> tuple[np.ndarray, np.ndarray]:
        """(key, value) per group for a 'pick one event' aggregate: the largest key wins (ties: largest value)."""
        if aggregate == "min":
            assert self.vmin is not None
            return -self.vmin, self.vmin
        if aggregate == "last":
            assert self.v_last is not None and self.t_last_v is not None
            return self.t_last_v, self.v_last
        if aggregate == "first":
            assert self.v_first is not None and self.t_first_v is not None
            return -self.t_first_v, self.v_first
        assert self.vmax is not None
        return self.vmax, self.vmax

    def last_j(self, window: WindowLength | None) -> np.ndarray:
        """Last as_of index each group counts at, for a window of length `window` (None: all history)."""
        if window is None:
            return np.full(self.tb.size, self.J - 1, dtype=np.int64)
        return self.lookups[window][self.tb]


@dataclass
class _EventTable:
    """All families' grouped events for one entity kind, sorted by event kind."""

    kinds: list[tuple[str, str]]
    columns: dict[str, np.ndarray | None]
    bounds: np.ndarray
    lookups: dict[WindowLength | None, np.ndarray]
    J: int

    def groups(self, source: str, event_type: str) -> _Groups:
        """The groups of one (source, event_type)."""
        k = self.kinds.index((source, event_type))
        part = slice(int(self.bounds[k]), int(self.bounds[k + 1]))

        def pick(name: str, dtype: Any) -> np.ndarray | None:
            values = self.columns[name]
            return None if values is None else values[part].astype(dtype)

        return _Groups(
            entity=pick("entity", np.int64),  # type: ignore[arg-type]
            first_j=pick("first_j", np.int64),  # type: ignore[arg-type]
            tb=pick("tb", np.int64),  # type: ignore[arg-type]
            n=pick("n", np.float64),  # type: ignore[arg-type]
            s=pick("s", np.float64),
            nv=pick("nv", np.float64),
            vmax=pick("vmax", np.float64),
            last_day=pick("last_day", np.float64),  # type: ignore[arg-type]
            first_day=pick("first_day", np.float64),  # type: ignore[arg-type]
            lookups=self.lookups,
            J=self.J,
            vmin=pick("vmin", np.float64),
            v_last=pick("v_last", np.float64),
            t_last_v=pick("t_last_v", np.float64),
            v_first=pick("v_first", np.float64),
            t_first_v=pick("t_first_v", np.float64),
        )


@dataclass(frozen=True)
class _FamilyWindows:
    plain: list[WindowLength | None]
    count: list[WindowLength | None]
    value: list[WindowLength | None]
    maximum: list[WindowLength | None]
    picks: dict[str, list[WindowLength | None]] = field(default_factory=dict)  # min / last / first -> windows

    @property
    def every(self) -> list[WindowLength | None]:
        picked = {w for windows in self.picks.values() for w in windows}
        return sorted(set(self.count) | set(self.value) | set(self.maximum) | picked, key=_window_order)


def _window_order(window: WindowLength | None) -> tuple[int, str, int]:
    return (0, "", 0) if window is None else (1, window.unit, window.amount)


def _family_windows(family: FeatureFamily) -> _FamilyWindows:
    """Window lengths (None = all history) each statistic of a family needs (twice the length for trends)."""
    aggregates = set(family.aggregates)
    plain = [window_length(w) for w in family.windows]
    count: set[WindowLength | None] = set()
    if aggregates & {"count", "distinct_types", "sum", "mean", "trend"}:
        count.update(plain)
    if "trend" in aggregates:
        count.update(w.times(2) for w in plain if w is not None)
    order = _window_order
    return _FamilyWindows(
        plain=plain,
        count=sorted(count, key=order),
        value=plain if aggregates & {"sum", "mean"} else [],
        maximum=plain if "max" in aggregates else [],
        picks={a: plain for a in PICK_AGGREGATES if a in aggregates},
    )


# Aggregates that pick one event's value (the smallest, the latest, the earliest) within the window.
PICK_AGGREGATES = ("min", "last", "first")


def _entity_kind(scope: str) -> str:
    return "address" if scope == "address" else "resident"


def _event_table(ctx: _Context, families: Sequence[FeatureFamily], entity: str) -> _EventTable | None:
    """Run one grouped-events query for every family that reads `entity`-keyed events."""
    users = [f for f in families if any(_entity_kind(s) == entity for s in f.scopes)]
    if not users:
        return None
    kinds: list[tuple[str, str]] = []
    windows: set[WindowLength | None] = set()
    for family in users:
        for event_type in family_event_types(family, ctx.dictionary):
            if (family.source, event_type) not in kinds:
                kinds.append((family.source, event_type))
        windows.update(_family_windows(family).every)
    with_values = any({"sum", "mean"} & set(f.aggregates) for f in users)
    with_max = any("max" in f.aggregates for f in users)
    with_pick = {a: any(a in f.aggregates for f in users) for a in PICK_AGGREGATES}
    grid = ctx.grid
    as_of_days = grid.days
    lengths = sorted((w for w in windows if w is not None), key=_window_order)
    # Each window's first day at each as_of (calendar months differ in days from one as_of to the next).
    starts = {w: w.start_days(as_of_days) for w in lengths}
    threshold_days = np.unique(np.concatenate([starts[w] for w in lengths])) if lengths else np.zeros(0, np.int64)
    thresholds = [dt.datetime.combine(EPOCH + dt.timedelta(days=int(d)), dt.time()) for d in threshold_days]
    table = ctx.engine.run(
        event_groups_sql(
            ctx.engine.dialect,
            event_kinds=kinds,
            entity=entity,
            grid=grid.timestamps,
            thresholds=thresholds,
            with_values=with_values,
            with_max=with_max,
            with_min=with_pick["min"],
            with_last=with_pick["last"],
            with_first=with_pick["first"],
        )
    )
    lookups: dict[WindowLength | None, np.ndarray] = {}
    for w in lengths:
        # tb = number of thresholds <= t, so the largest threshold <= t is threshold_days[tb-1];
        # each window's own starts start_w(A_i) are among them (and non-decreasing in i), hence this
        # lookup is exact.
        lookup = np.full(threshold_days.size + 1, -1, dtype=np.int64)
        lookup[1:] = np.searchsorted(starts[w], threshold_days, side="right") - 1
        lookups[w] = lookup
    type_idx = table.column("type_idx").to_numpy().astype(np.int16)
    order = np.argsort(type_idx, kind="stable")
    bounds = np.searchsorted(type_idx[order], np.arange(len(kinds) + 1))

    def column(name: str, dtype: Any) -> np.ndarray:
        return table.column(name).to_numpy(zero_copy_only=False).astype(dtype)[order]

    def days(name: str) -> np.ndarray:
        micros = table.column(name).cast("int64").to_numpy()
        return np.floor_divide(micros, MICROSECONDS_PER_DAY).astype(np.int32)[order]

    columns: dict[str, np.ndarray | None] = {
        "entity": column("entity", np.int32),
        "first_j": column("first_j", np.int16),
        "tb": column("tb", np.int16 if threshold_days.size < 32_000 else np.int32),
        "n": column("n", np.int32),
        "s": np.nan_to_num(column("s", np.float64), nan=0.0) if with_values else None,
        "nv": column("nv", np.int32) if with_values else None,
        "vmax": column("vmax", np.float64) if with_max else None,
        "vmin": column("vmin", np.float64) if with_pick["min"] else None,
        "v_last": column("v_last", np.float64) if with_pick["last"] else None,
        "t_last_v": column("t_last_v", np.float64) if with_pick["last"] else None,
        "v_first": column("v_first", np.float64) if with_pick["first"] else None,
        "t_first_v": column("t_first_v", np.float64) if with_pick["first"] else None,
        "last_day": days("t_last"),
        "first_day": days("t_first"),
    }
    return _EventTable(kinds=kinds, columns=columns, bounds=bounds, lookups=lookups, J=grid.size)


def _window_sums(groups: _Groups, window: WindowLength | None, weights: np.ndarray, n_entities: int, J: int) -> np.ndarray:
    """[J, entities] sums of `weights` over events counting at each as_of, via a difference array:
    +w at first_j, -w at last_j + 1, then a running sum down the as_of axis."""
    first, last = groups.first_j, groups.last_j(window)
    valid = first <= last
    entity = groups.entity[valid]
    w = weights[valid]
    index = np.concatenate([first[valid] * n_entities + entity, (last[valid] + 1) * n_entities + entity])
    dense = np.bincount(index, weights=np.concatenate([w, -w]), minlength=(J + 1) * n_entities)
    dense = dense.reshape(J + 1, n_entities)[:J]
    return _running(dense, np.add)


def _running(dense: np.ndarray, ufunc: np.ufunc) -> np.ndarray:
    """In-place running sum/max/min down the as_of axis of a [J, entities] array.

    J whole-row operations on contiguous rows; about ten times faster than np.cumsum(axis=0).
    """
    for j in range(1, dense.shape[0]):
        ufunc(dense[j], dense[j - 1], out=dense[j])
    return dense


def _window_max(groups: _Groups, window: WindowLength | None, n_entities: int, J: int) -> np.ndarray:
    """[J, entities] max value over events counting at each as_of (-inf where none)."""
    assert groups.vmax is not None
    out = np.full((J, n_entities), -np.inf)
    has_value = ~np.isnan(groups.vmax)
    first, last = groups.first_j, groups.last_j(window)
    for j in range(J):
        # A range-max has no difference-array form; one pass per as_of over the groups is cheap.
        mask = has_value & (first <= j) & (last >= j)
        np.maximum.at(out[j], groups.entity[mask], groups.vmax[mask])
    return out


def _window_pick(
    groups: _Groups, aggregate: str, window: WindowLength | None, n_entities: int, J: int
) -> tuple[np.ndarray, np.ndarray]:
    """([J, entities] key, [J, entities] value) of the event picked by a min / last / first aggregate among
    the events counting at each as_of (key -inf where there is none)."""
    key, value = groups.pick_inputs(aggregate)
    out_key = np.full((J, n_entities), -np.inf)
    out_value = np.full((J, n_entities), np.nan)
    has_value = ~np.isnan(key) & ~np.isnan(value)
    first, last = groups.first_j, groups.last_j(window)
    for j in range(J):
        rows = np.flatnonzero(has_value & (first <= j) & (last >= j))
        if rows.size == 0:
            continue
        # Per entity, the row with the largest key (ties: the largest value) sorts last.
        order = rows[np.lexsort((value[rows], key[rows], groups.entity[rows]))]
        entity = groups.entity[order]
        is_last = np.r_[entity[1:] != entity[:-1], True]
        chosen = order[is_last]
        out_key[j, groups.entity[chosen]] = key[chosen]
        out_value[j, groups.entity[chosen]] = value[chosen]
    return out_key, out_value


def _running_extreme(groups: _Groups, how: str, n_entities: int, J: int) -> np.ndarray:
    """[J, entities] latest (how='max') or earliest ('min') event day known before each as_of."""
    index = groups.first_j * n_entities + groups.entity
    if how == "max":
        out = np.full(J * n_entities, -np.inf)
        np.maximum.at(out, index, groups.last_day)
        return _running(out.reshape(J, n_entities), np.maximum)
    out = np.full(J * n_entities, np.inf)
    np.minimum.at(out, index, groups.first_day)
    return _running(out.reshape(J, n_entities), np.minimum)


class _ScopeGatherer:
    """Reads [J, entities] arrays at the cohort rows, for one scope (flat indices computed once)."""

    def __init__(self, ctx: _Context, scope: str, n_entities: int) -> None:
        self.ctx = ctx
        self.scope = scope
        cohort = ctx.cohort
        if scope == "resident":
            self.flat = cohort.j * n_entities + ctx.resident_entity[cohort.r_idx]
        elif scope == "address":
            rows = ctx.row_address.astype(np.int64)
            self.valid = rows >= 0
            self.flat = cohort.j[self.valid] * n_entities + ctx.address_entity[rows[self.valid]]
        else:
            households = ctx.households
            self.flat = households.member_j * n_entities + ctx.resident_entity[households.member_r]

    def gather(self, dense: np.ndarray, how: str) -> np.ndarray:
        """Values at cohort rows; `how` (sum/max/min) combines household members."""
        flat = dense.reshape(-1)
        if self.scope == "resident":
            return np.take(flat, self.flat)
        if self.scope == "address":
            fill = {"sum": 0.0, "max": -np.inf, "min": np.inf}[how]
            out = np.full(self.valid.size, fill)
            out[self.valid] = np.take(flat, self.flat)
            return out
        return self.ctx.households.reduce(np.take(flat, self.flat), how)

    def gather_pick(self, dense_key: np.ndarray, dense_value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(key, value) at cohort rows; over household members, the member event with the largest key wins."""
        flat_key, flat_value = dense_key.reshape(-1), dense_value.reshape(-1)
        if self.scope == "resident":
            return np.take(flat_key, self.flat), np.take(flat_value, self.flat)
        if self.scope == "address":
            key = np.full(self.valid.size, -np.inf)
            value = np.full(self.valid.size, np.nan)
            key[self.valid] = np.take(flat_key, self.flat)
            value[self.valid] = np.take(flat_value, self.flat)
            return key, value
        households = self.ctx.households
        member_key, member_value = np.take(flat_key, self.flat), np.take(flat_value, self.flat)
        best_key = households.reduce(member_key, "max")
        if households.starts.size == 0:
            return best_key, np.full(best_key.size, np.nan)
        group_max = np.maximum.reduceat(member_key, households.starts)
        sizes = np.diff(np.r_[households.starts, member_key.size])
        winner = member_key == np.repeat(group_max, sizes)
        # Ties between members' events: the largest value, so the choice never depends on member order.
        tied = np.where(winner & ~np.isnan(member_value), member_value, -np.inf)
        best_value = households.reduce(tied, "max")
        return best_key, np.where(np.isfinite(best_key), best_value, np.nan)


@dataclass
class _TypeStats:
    """Per-scope statistics of one event type (or of the family pooled) at the cohort rows."""

    count: dict[WindowLength | None, np.ndarray] = field(default_factory=dict)
    total: dict[WindowLength | None, np.ndarray] = field(default_factory=dict)
    valued: dict[WindowLength | None, np.ndarray] = field(default_factory=dict)
    vmax: dict[WindowLength | None, np.ndarray] = field(default_factory=dict)
    picks: dict[tuple[str, WindowLength | None], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    last_day: np.ndarray | None = None
    first_day: np.ndarray | None = None

    def pool(self, other: _TypeStats) -> None:
        """Fold another type's statistics into this running pool (sums add, extremes combine)."""
        for attribute in ("count", "total", "valued"):
            mine, theirs = getattr(self, attribute), getattr(other, attribute)
            for w, values in theirs.items():
                mine[w] = values.copy() if w not in mine else mine[w] + values
        for w, values in other.vmax.items():
            self.vmax[w] = values.copy() if w not in self.vmax else np.maximum(self.vmax[w], values)
        for name, (key, value) in other.picks.items():
            if name not in self.picks:
                self.picks[name] = (key.copy(), value.copy())
                continue
            mine_key, mine_value = self.picks[name]
            theirs = (key > mine_key) | ((key == mine_key) & (np.nan_to_num(value, nan=-np.inf) > np.nan_to_num(mine_value, nan=-np.inf)))
            self.picks[name] = (np.where(theirs, key, mine_key), np.where(theirs, value, mine_value))
        if other.last_day is not None:
            self.last_day = other.last_day.copy() if self.last_day is None else np.maximum(self.last_day, other.last_day)
        if other.first_day is not None:
            self.first_day = (
                other.first_day.copy() if self.first_day is None else np.minimum(self.first_day, other.first_day)
            )


Sink = Any  # Callable[[str, np.ndarray], None]: stores one finished column


def _spread(
    stats: dict[str, _TypeStats],
    gatherers: dict[str, _ScopeGatherer],
    kind: str,
    dense: np.ndarray,
    how: str,
    window: WindowLength | None = None,
) -> None:
    """Gather one [J, entities] statistic to the cohort rows of every scope (then it can be dropped)."""
    for scope, gatherer in gatherers.items():
        values = gatherer.gather(dense, how)
        if kind in ("last_day", "first_day"):
            setattr(stats[scope], kind, values)
        else:
            getattr(stats[scope], kind)[window] = values


def _family_columns(
    ctx: _Context,
    family: FeatureFamily,
    definitions: list[FeatureDefinition],
    tables: dict[str, _EventTable | None],
    sink: Sink,
) -> None:
    """Compute one family's features (and imputed flags) at the cohort rows and hand each to `sink`.

    Streams type by type: each [J, entities] array is gathered to the cohort rows and dropped at
    once, so memory holds one dense array and one type's gathered statistics at a time.
    """
    types = family_event_types(family, ctx.dictionary)
    J = ctx.grid.size
    aggregates = set(family.aggregates)
    windows = _family_windows(family)
    plain_windows, count_windows = windows.plain, windows.count
    value_windows, max_windows = windows.value, windows.maximum
    need_last = "days_since_last" in aggregates
    need_first = "days_since_first" in aggregates
    need_pooled = any(d.event_type == "all" and d.aggregate != "distinct_types" for d in definitions)
    need_distinct = "distinct_types" in aggregates
    entity_scopes = {
        "resident": [s for s in family.scopes if s in ("resident", "household")],
        "address": [s for s in family.scopes if s == "address"],
    }
    as_of_days = ctx.grid.days[ctx.cohort.j].astype(np.float64)
    n_rows = len(ctx.cohort)
    for entity, scopes in entity_scopes.items():
        if not scopes:
            continue
        table = tables[entity]
        assert table is not None
        started = time.perf_counter()
        n_entities = int((ctx.resident_entity if entity == "resident" else ctx.address_entity).max(initial=-1)) + 1
        gatherers = {scope: _ScopeGatherer(ctx, scope, n_entities) for scope in scopes}
        pooled = {scope: _TypeStats() for scope in scopes}
        distinct = {scope: {w: np.zeros(n_rows) for w in plain_windows} for scope in scopes}
        for event_type in types:
            subset = table.groups(family.source, event_type)
            stats = {scope: _TypeStats() for scope in scopes}

            for w in count_windows:
                _spread(stats, gatherers, "count", _window_sums(subset, w, subset.n, n_entities, J), "sum", w)
            for w in value_windows:
                totals = _window_sums(subset, w, subset.s, n_entities, J)  # type: ignore[arg-type]
                _spread(stats, gatherers, "total", totals, "sum", w)
                valued = _window_sums(subset, w, subset.nv, n_entities, J)  # type: ignore[arg-type]
                _spread(stats, gatherers, "valued", valued, "sum", w)
            for w in max_windows:
                _spread(stats, gatherers, "vmax", _window_max(subset, w, n_entities, J), "max", w)
            for aggregate, pick_windows in windows.picks.items():
                for w in pick_windows:
                    dense_key, dense_value = _window_pick(subset, aggregate, w, n_entities, J)
                    for scope, gatherer in gatherers.items():
                        stats[scope].picks[(aggregate, w)] = gatherer.gather_pick(dense_key, dense_value)
                    del dense_key, dense_value
            if need_last:
                _spread(stats, gatherers, "last_day", _running_extreme(subset, "max", n_entities, J), "max")
            if need_first:
                _spread(stats, gatherers, "first_day", _running_extreme(subset, "min", n_entities, J), "min")
            for scope in scopes:
                for definition in definitions:
                    if definition.scope == scope and definition.event_type == event_type and not definition.is_imputed_flag:
                        values, undefined = _aggregate_values(definition, stats[scope], None, as_of_days)
                        _apply_missing_rule(definition, values, undefined, sink)
                if need_pooled:
                    pooled[scope].pool(stats[scope])
                if need_distinct:
                    for w in plain_windows:
                        distinct[scope][w] += stats[scope].count[w] > 0
            del stats, subset
        for scope in scopes:
            for definition in definitions:
                if definition.scope == scope and definition.event_type == "all" and not definition.is_imputed_flag:
                    values, undefined = _aggregate_values(definition, pooled[scope], distinct[scope], as_of_days)
                    _apply_missing_rule(definition, values, undefined, sink)
        del pooled, distinct
        ctx.timings["numpy_events"] = ctx.timings.get("numpy_events", 0.0) + time.perf_counter() - started


def _aggregate_values(
    definition: FeatureDefinition,
    stats: _TypeStats,
    distinct: dict[WindowLength | None, np.ndarray] | None,
    as_of_days: np.ndarray,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(values, undefined mask or None) of one event feature at the cohort rows."""
    w = definition.window_length
    aggregate = definition.aggregate
    if aggregate == "count":
        return stats.count[w], None
    if aggregate == "sum":
        # Totals come from +/- differences; force exact zeros where nothing counted.
        return np.where(stats.valued[w] > 0, stats.total[w], 0.0), None
    if aggregate == "mean":
        valued = stats.valued[w]
        undefined = valued <= 0
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(undefined, np.nan, stats.total[w] / np.where(undefined, 1.0, valued)), undefined
    if aggregate == "max":
        values = stats.vmax[w]
        undefined = ~np.isfinite(values)
        return np.where(undefined, np.nan, values), undefined
    if aggregate in PICK_AGGREGATES:
        key, value = stats.picks[(aggregate, w)]
        undefined = ~np.isfinite(key)
        return np.where(undefined, np.nan, value), undefined
    if aggregate == "trend":
        assert w is not None
        return 2.0 * stats.count[w] - stats.count[w.times(2)], None
    if aggregate == "distinct_types":
        assert distinct is not None
        return distinct[w], None
    if aggregate == "days_since_last":
        assert stats.last_day is not None
        undefined = ~np.isfinite(stats.last_day)
        return np.where(undefined, np.nan, as_of_days - stats.last_day), undefined
    if aggregate == "days_since_first":
        assert stats.first_day is not None
        undefined = ~np.isfinite(stats.first_day)
        return np.where(undefined, np.nan, as_of_days - stats.first_day), undefined
    raise EarlySignalError(f"unknown aggregate {aggregate!r} in feature {definition.name}")


def _apply_missing_rule(
    definition: FeatureDefinition, values: np.ndarray, undefined: np.ndarray | None, sink: Sink
) -> None:
    if undefined is not None and definition.missing_rule in ("zero", "constant"):
        values = np.where(undefined, definition.missing_value, values)
    sink(definition.name, values)
    if definition.imputed_flag:
        sink(definition.imputed_flag, undefined if undefined is not None else np.zeros(values.size))


# ---------------------------------------------------------------------------------------------
# Static features and protected attributes


def _static_columns(ctx: _Context, config: ProjectConfig, residents: pd.DataFrame, resident_ids: np.ndarray) -> dict[str, np.ndarray]:
    cohort = ctx.cohort
    as_of_days = ctx.grid.days[cohort.j]
    columns: dict[str, np.ndarray] = {}
    housed = ctx.household_of[cohort.r_idx, cohort.j] >= 0
    ordered = residents.set_index(residents["resident_id"].astype("str")).reindex(resident_ids)
    for static in config.features.static:
        if static == "age":
            known = ctx.birth_days[cohort.r_idx] != np.iinfo(np.int64).min
            ages = completed_years(np.where(known, ctx.birth_days[cohort.r_idx], 0), as_of_days).astype(np.float64)
            columns["static__age"] = np.where(known, ages, np.nan)
        elif static == "months_at_address":
            since = ctx.since_of[cohort.r_idx, cohort.j]
            months = completed_months(since, as_of_days).astype(np.float64)
            columns["static__months_at_address"] = np.where(housed, months, np.nan)
        elif static == "household_size":
            ones = np.ones(ctx.households.member_r.size)
            columns["static__household_size"] = np.where(housed, ctx.households.reduce(ones, "sum"), np.nan)
        elif static == "household_children":
            members = ctx.households
            births = ctx.birth_days[members.member_r]
            born = births != np.iinfo(np.int64).min  # members without a recorded birth date are not counted
            member_age = completed_years(np.where(born, births, 0), ctx.grid.days[members.member_j])
            children = (born & (member_age < 18)).astype(np.float64)
            columns["static__household_children"] = np.where(housed, members.reduce(children, "sum"), np.nan)
        else:
            columns.update(_attribute_static_columns(ctx, static, ordered, as_of_days))
    return columns


def _attribute_static_columns(
    ctx: _Context, name: str, ordered: pd.DataFrame, as_of_days: np.ndarray
) -> dict[str, np.ndarray]:
    """A declared attribute as static feature columns at each cohort row (one-hot for a category).

    A residency category is the value of the spell covering as_of; a residents attribute is used only
    from its `known_from` date on when the dictionary names one (null before).
    """
    table, spec = static_attribute(ctx.dictionary, name)
    cohort = ctx.cohort
    if table == "residency":
        code = ctx.spell_codes[name][cohort.r_idx, cohort.j]
        return {f"static__{name}__{value}": (code == i).astype(np.float64) for i, value in enumerate(spec.values)}
    values = ordered[name].to_numpy(dtype=object)[cohort.r_idx] if name in ordered.columns else np.full(len(cohort), None)
    known = np.ones(len(cohort), dtype=bool)
    if spec.known_from is not None and spec.known_from in ordered.columns:
        since = _day_numbers(ordered[spec.known_from])[cohort.r_idx]
        known = (since != np.iinfo(np.int64).min) & (since < as_of_days)
    present = pd.notna(values) & known
    if spec.kind == "category":
        return {
            f"static__{name}__{value}": np.where(known, (values == value) & present, 0.0).astype(np.float64)
            for value in spec.values
        }
    numbers = np.full(len(cohort), np.nan)
    numbers[present] = values[present].astype(np.float64)
    return {f"static__{name}": numbers}


def _attribute_columns(
    ctx: _Context, residents: pd.DataFrame, resident_ids: np.ndarray
) -> tuple[dict[str, pd.Series], np.ndarray]:
    """The attr__* columns, one per category or boolean attribute the dictionary declares (reporting
    groups as text; nulls as the dictionary's not-recorded group), plus attr__age_band when birth
    dates exist; and each row's age (-1 where the birth date is not recorded)."""
    cohort = ctx.cohort
    ordered = residents.set_index(residents["resident_id"].astype("str")).reindex(resident_ids)
    rows = cohort.r_idx
    not_recorded = ctx.dictionary.not_recorded.group

    def labelled(series: pd.Series, mapping: dict[Any, str]) -> pd.Series:
        values = series.to_numpy(dtype=object)[rows]
        out = np.full(values.size, not_recorded, dtype=object)
        present = pd.notna(values)
        out[present] = [mapping.get(v, str(v)) for v in values[present]]
        return pd.Series(out, dtype="str")

    attributes: dict[str, pd.Series] = {}
    for name, spec in ctx.dictionary.categorical_attributes().items():
        if name not in ordered.columns:
            continue
        if spec.kind == "boolean":
            attributes[f"attr__{name}"] = labelled(ordered[name].astype(object), {True: "Yes", False: "No"})
        else:
            attributes[f"attr__{name}"] = labelled(ordered[name], dict(spec.groups))
    known = ctx.birth_days[rows] != np.iinfo(np.int64).min
    ages = np.where(known, completed_years(np.where(known, ctx.birth_days[rows], 0), ctx.grid.days[cohort.j]), -1)
    if "birth_date" in ordered.columns and known.any():
        band_names = np.asarray([age_band(a) for a in range(0, 130)] + [not_recorded], dtype=object)
        attributes[f"attr__{AGE_BAND_ATTRIBUTE}"] = pd.Series(
            band_names[np.where(known, np.clip(ages, 0, 129), 130)], dtype="str"
        )
    return attributes, ages


def _protected_feature_columns(
    config: ProjectConfig, attributes: dict[str, pd.Series], dictionary: DataDictionary
) -> dict[str, np.ndarray]:
    columns: dict[str, np.ndarray] = {}
    for attribute in config.features.protected_as_features:
        mapping = protected_codes(dictionary, attribute)
        values = attributes[f"attr__{attribute}"].to_numpy(dtype=object)
        columns[f"protected__{attribute}"] = np.array([mapping.get(v, np.nan) for v in values], dtype=np.float64)
    return columns


# ---------------------------------------------------------------------------------------------


def load_data(config: ProjectConfig) -> LinkedDataLike:
    """Load the borough through the data contract (the only way data enters the builder)."""
    try:
        from earlysignal.contract import load_linked_data
    except ImportError as error:  # pragma: no cover - until the contract module is installed
        raise EarlySignalError(f"the data contract module is not available: {error}") from None
    from earlysignal.contract import require_usable

    data = load_linked_data(config.data.dir, config)
    require_usable(data.report, config.contract)
    return data


def build_feature_matrix(
    config: ProjectConfig,
    data: LinkedDataLike | None = None,
    *,
    as_of_dates: Sequence[dt.date] | None = None,
    with_labels: bool = True,
    engine: Engine | None = None,
    progress: bool = False,
) -> FeatureMatrix:
    """Build the point-in-time feature matrix: one row per (resident, as_of) in the cohort."""
    from contextlib import nullcontext

    from earlysignal.console import progress_bar

    started_all = time.perf_counter()
    timings: dict[str, float] = {}
    if data is None:
        started = time.perf_counter()
        data = load_data(config)
        timings["load"] = time.perf_counter() - started
    _check_columns(data)
    check_inputs_usable(config, data)
    definitions = feature_definitions(config)
    dictionary = dictionary_for(config)
    spell_categories = {
        name: spec.values
        for name, spec in dictionary.residency.items()
        if name in config.features.static and spec.kind == "category" and name in data.residency.columns
    }
    grid = AsOfGrid.from_dates(as_of_dates if as_of_dates is not None else config.as_of_dates(), config.label)
    starts = data_starts(getattr(data, "manifest", None))
    check_min_history(config, grid.dates, starts[0])
    own_engine = engine is None
    engine = engine or get_engine("duckdb")
    families = config.features.families
    bar = progress_bar(transient=True) if progress else nullcontext()
    try:
        with bar as bar_progress:
            task = bar_progress.add_task("Building features", total=3 + len(families)) if progress else None

            def step(description: str) -> None:
                if progress:
                    bar_progress.update(task, advance=1, description=description)

            started = time.perf_counter()
            resident_ids, n_households, address_ids = _register_tables(engine, data, grid)
            cohort = build_cohort(engine, config, grid)
            cohort = still_followed_up(config, data.residents, resident_ids, cohort, grid)
            timings["cohort"] = time.perf_counter() - started
            step("Residency at each as_of")
            started = time.perf_counter()
            members = _memberships(engine, resident_ids.size, grid.size, spell_categories)
            birth_days = (
                _day_numbers(
                    data.residents.set_index(data.residents["resident_id"].astype("str"))["birth_date"].reindex(
                        resident_ids
                    )
                )
                if "birth_date" in data.residents.columns
                else np.full(resident_ids.size, np.iinfo(np.int64).min, dtype=np.int64)
            )
            households = _households(
                cohort,
                members["household_of"],
                members["member_r"],
                members["member_j"],
                members["member_h"],
                grid.size,
                n_households,
            )
            resident_entity, address_entity = _register_event_entities(
                engine, cohort, households, members["address_of"], resident_ids, address_ids
            )
            ctx = _Context(
                engine=engine,
                grid=grid,
                cohort=cohort,
                n_residents=resident_ids.size,
                resident_entity=resident_entity,
                address_entity=address_entity,
                household_of=members["household_of"],
                address_of=members["address_of"],
                spell_codes=members["spell_codes"],
                since_of=members["since_of"],
                birth_days=birth_days,
                households=households,
                dictionary=dictionary,
                timings=timings,
            )
            del members
            timings["residency"] = time.perf_counter() - started
            step("Labels")
            started = time.perf_counter()
            timing = (
                build_label_timing(engine, config, grid, cohort, data.residents, resident_ids, data.extract_date)
                if with_labels
                else None
            )
            labels = (
                timing.at(None, data.extract_date)
                if timing is not None
                else pd.arrays.IntegerArray(np.zeros(len(cohort), np.int8), np.ones(len(cohort), bool))
            )
            timings["labels"] = time.perf_counter() - started

            static = _static_columns(ctx, config, data.residents, resident_ids)
            attributes, _ = _attribute_columns(ctx, data.residents, resident_ids)
            static.update(_protected_feature_columns(config, attributes, dictionary))

            # Fortran order: each feature column is contiguous, so filling one is a single write.
            matrix_values = np.empty((len(cohort), len(definitions)), dtype=np.float32, order="F")
            position = {d.name: i for i, d in enumerate(definitions)}
            for name, values in static.items():
                matrix_values[:, position[name]] = values

            def sink(name: str, values: np.ndarray) -> None:
                matrix_values[:, position[name]] = values

            started = time.perf_counter()
            tables = {entity: _event_table(ctx, families, entity) for entity in ("resident", "address")}
            timings["engine_events"] = time.perf_counter() - started
            grouped_rows = {
                entity: int(table.columns["entity"].size) if table is not None else 0  # type: ignore[union-attr]
                for entity, table in tables.items()
            }
            for family in families:
                step(f"Features: {family.name}")
                _family_columns(ctx, family, family_definitions(family, dictionary), tables, sink)
            del tables
            incomplete = null_windows_before_data_start(
                matrix_values, position, definitions, grid.days[cohort.j], *starts
            )
            step("Assembling the matrix")
            started = time.perf_counter()
            frame = _assemble_frame(resident_ids, grid, cohort, labels, definitions, matrix_values, attributes)
            if timing is not None:
                add_label_timing_columns(frame, timing)
            timings["assemble"] = time.perf_counter() - started
    finally:
        if own_engine:
            engine.close()
    timings["total"] = time.perf_counter() - started_all
    metadata = _metadata(config, data, grid, frame, cohort, definitions, engine, timings, with_labels)
    metadata["protected_columns"] = sorted(attributes)
    # Which dictionary gave the codes and wording (its content hash, wherever the file lives).
    metadata["dictionary"] = {
        "name": dictionary.name,
        "path": dictionary.path,
        "sha256": stable_hash(dictionary.model_dump(mode="json", exclude={"path"})),
    }
    metadata["engine_grouped_event_rows"] = grouped_rows  # how much left the engine, per entity kind
    metadata["label"].update(label_metadata(config, timing, labels))
    metadata["windows_before_data_start"] = incomplete  # {feature: cells nulled}
    return FeatureMatrix(frame=frame, metadata=metadata)


def _assemble_frame(
    resident_ids: np.ndarray,
    grid: AsOfGrid,
    cohort: Cohort,
    labels: Any,
    definitions: list[FeatureDefinition],
    values: np.ndarray,
    attributes: dict[str, pd.Series],
) -> pd.DataFrame:
    as_of = np.array(grid.dates, dtype="datetime64[D]").astype("datetime64[us]")[cohort.j]
    # Wrap the float32 block without copying it (it is the bulk of the memory), then add the
    # key and attribute columns around it.
    frame = pd.DataFrame(values, columns=[d.name for d in definitions], copy=False)
    frame.insert(0, "label", pd.Series(labels, dtype="Int8"))
    frame.insert(0, "as_of", pd.Series(as_of))
    frame.insert(0, "resident_id", pd.Series(resident_ids[cohort.r_idx], dtype="str"))
    for name, series in attributes.items():
        frame[name] = series.to_numpy()
        frame[name] = frame[name].astype("str")
    return frame


def _metadata(
    config: ProjectConfig,
    data: LinkedDataLike,
    grid: AsOfGrid,
    frame: pd.DataFrame,
    cohort: Cohort,
    definitions: list[FeatureDefinition],
    engine: Engine,
    timings: dict[str, float],
    with_labels: bool,
) -> dict[str, Any]:
    as_of_text = [d.isoformat() for d in grid.dates]
    j = cohort.j
    rows = dict(zip(as_of_text, np.bincount(j, minlength=grid.size).tolist(), strict=True))
    label = frame["label"]
    known = label.notna().to_numpy()
    positives = np.bincount(j[known], weights=label[known].to_numpy(dtype=np.float64), minlength=grid.size)
    labelled = np.bincount(j[known], minlength=grid.size)
    prevalence: dict[str, float | None] = {
        day: (float(positives[i] / labelled[i]) if with_labels and labelled[i] else None)
        for i, day in enumerate(as_of_text)
    }
    return {
        "features": definitions_as_records(definitions),
        "feature_columns": [d.name for d in definitions],
        "protected_columns": [],  # filled in by the caller from the attr__ columns built
        "label": {
            "name": config.label.name,
            "outcome_types": list(config.label.outcome_types),
            "horizon_months": config.label.horizon_months,
            "included": with_labels,
        },
        "spec": spec_dict(config),
        "spec_hash": spec_hash(config),
        "code_fingerprint": code_fingerprint(),
        "data_fingerprint": getattr(data, "fingerprint", None),
        "extract_date": data.extract_date.isoformat(),
        "as_of_dates": as_of_text,
        "rows_per_as_of": rows,
        "label_prevalence_per_as_of": prevalence,
        "engine": {"name": engine.name, "dialect": engine.dialect.name},
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "dtypes": {"features": "float32", "label": "Int8", "as_of": "datetime64[us]"},
    }
