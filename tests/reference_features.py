"""A deliberately naive pandas reference for the feature builder.

It loops over as_of dates and residents and applies the point-in-time rules literally, one row
and one feature at a time. It shares no code with `earlysignal.features` except the spec's list
of feature definitions (names, windows, missing rules), so that a disagreement means one of the
two computes the rules wrongly.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from dateutil.relativedelta import relativedelta

from earlysignal.config import ProjectConfig
from earlysignal.features.spec import FeatureDefinition, feature_definitions


def _age(birth: dt.date, as_of: dt.date) -> int:
    return as_of.year - birth.year - ((as_of.month, as_of.day) < (birth.month, birth.day))


def _plus_months(day: dt.date, months: int) -> dt.date:
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _date(value: Any) -> dt.date | None:
    return None if pd.isna(value) else pd.Timestamp(value).date()


def _covering_spell(spells: pd.DataFrame, as_of: dt.date) -> pd.Series | None:
    for _, spell in spells.iterrows():
        start, end = _date(spell["start_date"]), _date(spell["end_date"])
        if start <= as_of and (end is None or as_of < end):
            return spell
    return None


def _address_since(spells: pd.DataFrame, spell: pd.Series) -> dt.date:
    # Walk back through spells at the same address that end exactly where the next one starts.
    since = _date(spell["start_date"])
    changed = True
    while changed:
        changed = False
        for _, other in spells.iterrows():
            if other["address_id"] == spell["address_id"] and _date(other["end_date"]) == since:
                since = _date(other["start_date"])
                changed = True
    return since


def _months_between(since: dt.date, as_of: dt.date) -> int:
    return (as_of.year - since.year) * 12 + (as_of.month - since.month) - (as_of.day < since.day)


def _event_feature(definition: FeatureDefinition, visible: list[tuple], as_of: dt.date) -> tuple[float, bool]:
    """(value, undefined) of one event feature over the events (source, type, time, value) visible
    in its scope at as_of."""
    cutoff = dt.datetime(as_of.year, as_of.month, as_of.day)
    mine = [e for e in visible if e[0] == definition.source and e[1] in definition.event_types]
    aggregate = definition.aggregate
    if aggregate in ("days_since_last", "days_since_first"):
        if not mine:
            return np.nan, True
        moment = max(e[2] for e in mine) if aggregate == "days_since_last" else min(e[2] for e in mine)
        return float((as_of - moment.date()).days), False
    length = definition.window_length

    def back(lengths: int) -> dt.datetime:
        # `lengths` window lengths before as_of: days, or calendar months by dateutil (day clamped to month end).
        assert length is not None
        if length.unit == "d":
            return cutoff - dt.timedelta(days=length.amount * lengths)
        return cutoff - relativedelta(months=length.amount * lengths)

    def in_window(start_lengths: int | None, end_lengths: int = 0) -> list[tuple]:
        end = cutoff if end_lengths == 0 else back(end_lengths)
        start = None if start_lengths is None or length is None else back(start_lengths)
        return [e for e in mine if e[2] < end and (start is None or e[2] >= start)]

    rows = in_window(1)
    values = [e[3] for e in rows if e[3] is not None and not np.isnan(e[3])]
    if aggregate == "count":
        return float(len(rows)), False
    if aggregate == "sum":
        return float(sum(values)), False
    if aggregate == "mean":
        return (sum(values) / len(values), False) if values else (np.nan, True)
    if aggregate == "max":
        return (float(max(values)), False) if values else (np.nan, True)
    if aggregate == "min":
        return (float(min(values)), False) if values else (np.nan, True)
    if aggregate in ("last", "first"):
        valued = [(e[2], e[3]) for e in rows if e[3] is not None and not np.isnan(e[3])]
        if not valued:
            return np.nan, True
        # The latest (earliest) event's value; events at the same moment: the largest value.
        if aggregate == "last":
            return float(max(valued)[1]), False
        earliest = min(t for t, _ in valued)
        return float(max(v for t, v in valued if t == earliest)), False
    if aggregate == "distinct_types":
        return float(len({e[1] for e in rows})), False
    if aggregate == "trend":
        before = in_window(2, 1)
        return float(len(rows) - len(before)), False
    raise AssertionError(f"unknown aggregate {aggregate}")


def _residency_run_end(spells: pd.DataFrame, as_of: dt.date) -> dt.date | None:
    """The day continuous residency covering as_of ends (None: still living there), walking spells."""
    end = as_of
    while True:
        longer = [
            _date(s.end_date)
            for s in spells.itertuples()
            if _date(s.start_date) <= end and (_date(s.end_date) is None or _date(s.end_date) > end)
        ]
        if not longer:
            return end
        if any(e is None for e in longer):
            return None
        end = max(longer)


def reference_matrix(config: ProjectConfig, data: Any, as_of_dates: list[dt.date] | None = None) -> pd.DataFrame:
    """Rows (resident_id, as_of) sorted by (as_of, resident_id), with label and every feature column."""
    definitions = feature_definitions(config)
    residents = data.residents.set_index("resident_id")
    residency = data.residency
    events = data.events
    outcomes = data.outcomes
    spells_of = {r: residency[residency["resident_id"] == r] for r in residents.index}
    event_rows = [
        (
            e.source, e.event_type, e.event_time.to_pydatetime(), e.known_at.to_pydatetime(),
            None if pd.isna(e.value) else float(e.value),
            None if pd.isna(e.resident_id) else e.resident_id,
            None if pd.isna(e.address_id) else e.address_id,
        )
        for e in events.itertuples()
    ]
    cohort = config.cohort
    rows: list[dict[str, Any]] = []
    for as_of in sorted(as_of_dates or config.as_of_dates()):
        cutoff = pd.Timestamp(as_of)
        moment = cutoff.to_pydatetime()
        visible = [e for e in event_rows if e[3] < moment and e[2] < moment]
        living: dict[str, pd.Series] = {}
        for resident_id in residents.index:
            spell = _covering_spell(spells_of[resident_id], as_of)
            if spell is not None:
                living[resident_id] = spell
        for resident_id in sorted(residents.index):
            person = residents.loc[resident_id]
            age = _age(_date(person["birth_date"]), as_of)
            if not cohort.min_age <= age <= cohort.max_age:
                continue
            death = _date(person["death_date"])
            if death is not None and death <= as_of:
                continue
            spell = living.get(resident_id)
            if cohort.require_residency and spell is None:
                continue
            mine = outcomes[outcomes["resident_id"] == resident_id]
            open_state = mine[
                mine["outcome_type"].isin(cohort.exclude_open_outcomes)
                & (mine["outcome_time"] < cutoff)
                & (mine["known_at"] < cutoff)
                & (mine["end_time"].isna() | (mine["end_time"] > cutoff))
            ]
            if len(open_state):
                continue
            row: dict[str, Any] = {"resident_id": resident_id, "as_of": cutoff}
            horizon_end = _plus_months(as_of, config.label.horizon_months)
            if horizon_end > data.extract_date:
                row["label"] = pd.NA
            else:
                hits = mine[
                    mine["outcome_type"].isin(config.label.outcome_types)
                    & (mine["outcome_time"] >= cutoff)
                    & (mine["outcome_time"] < pd.Timestamp(horizon_end))
                ]
                row["label"] = int(len(hits) > 0)
                # Censoring: follow-up (death, the end of continuous residency) ends inside the window.
                follow_up_end = _residency_run_end(spells_of[resident_id], as_of) if spell is not None else None
                if death is not None:
                    follow_up_end = death if follow_up_end is None else min(follow_up_end, death)
                if not hits.size and follow_up_end is not None and follow_up_end < horizon_end:
                    row["label"] = pd.NA
            members = [r for r, s in living.items() if spell is not None and s["household_id"] == spell["household_id"]]
            address = spell["address_id"] if spell is not None else None
            scoped = {
                "resident": [(e[0], e[1], e[2], e[4]) for e in visible if e[5] == resident_id],
                "household": [(e[0], e[1], e[2], e[4]) for e in visible if e[5] is not None and e[5] in members],
                "address": [(e[0], e[1], e[2], e[4]) for e in visible if address is not None and e[6] == address],
            }
            for definition in definitions:
                name = definition.name
                if definition.is_imputed_flag:
                    continue
                if definition.scope == "static":
                    row[name] = _static_value(definition, person, spell, as_of, residency, members, residents)
                    continue
                value, undefined = _event_feature(definition, scoped[definition.scope], as_of)
                if undefined and definition.missing_rule in ("zero", "constant"):
                    value = definition.missing_value
                row[name] = value
                if definition.imputed_flag:
                    row[definition.imputed_flag] = float(undefined)
            rows.append(row)
    return pd.DataFrame(rows)


def _static_value(
    definition: FeatureDefinition,
    person: pd.Series,
    spell: pd.Series | None,
    as_of: dt.date,
    residency: pd.DataFrame,
    members: list[str],
    residents: pd.DataFrame,
) -> float:
    kind = definition.aggregate
    if kind == "age":
        return float(_age(_date(person["birth_date"]), as_of))
    if spell is None:
        return 0.0 if kind == "attribute" and definition.source == "residency" else np.nan
    if kind == "months_at_address":
        mine = residency[residency["resident_id"] == spell["resident_id"]]
        return float(_months_between(_address_since(mine, spell), as_of))
    if kind == "household_size":
        return float(len(members))
    if kind == "household_children":
        return float(sum(_age(_date(residents.loc[m, "birth_date"]), as_of) < 18 for m in members))
    if kind == "attribute" and definition.source == "residency":
        # A residency category one-hot: the spell's code equals this column's code (event_type holds it).
        return float(spell[definition.name.split("__")[1]] == definition.event_type)
    raise AssertionError(f"unknown static feature {kind}")


def describe_differences(expected: pd.DataFrame, actual: pd.DataFrame, columns: list[str], limit: int = 12) -> str:
    """A readable diff: per differing column, how many rows differ and the first few examples."""
    lines: list[str] = []
    for column in columns:
        want = expected[column].to_numpy(dtype=np.float64, na_value=np.nan)
        got = actual[column].to_numpy(dtype=np.float64, na_value=np.nan)
        same = np.isclose(want, got, rtol=1e-6, atol=1e-3) | (np.isnan(want) & np.isnan(got))
        if not same.all():
            bad = np.flatnonzero(~same)
            examples = ", ".join(
                f"{expected['resident_id'].iloc[i]}@{pd.Timestamp(expected['as_of'].iloc[i]).date()}: "
                f"want {want[i]} got {got[i]}"
                for i in bad[:3]
            )
            lines.append(f"{column}: {bad.size} rows differ ({examples})")
        if len(lines) >= limit:
            break
    return "\n".join(lines)
