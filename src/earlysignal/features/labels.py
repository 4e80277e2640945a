"""Labels: did a labelled outcome start in [as_of, window end)? Unknown (null), never 0, when the
window passes the extract date or when the person's follow-up ended inside the window without
the outcome (censored: left the area, died, an end-of-follow-up date).

A label is also a statement about what was known when. Each row carries, besides its label as
known at the extract date, what is needed to recompute it as known at any earlier date T
(`label_at`): the window end, the first time a labelled outcome in the window was recorded
(`label_known_at`) and whether follow-up ended inside the window (`label_censored`). Training for
a test date T uses `label_at(T)`, so a plan recorded after T never labels a training row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from dataclasses import dataclass

import numpy as np
import pandas as pd

from earlysignal.config import ProjectConfig
from earlysignal.engines.base import Engine
from earlysignal.errors import ConfigError
from earlysignal.features.cohort import AsOfGrid, Cohort
from earlysignal.features.sql import _in_list

# The matrix columns that carry a label's timing (not model inputs).
LABEL_TIMING_COLUMNS = ("label_window_end", "label_known_at", "label_censored")
_OPEN_END = "DATE '9999-12-31'"


@dataclass(frozen=True)
class LabelTiming:
    """Per cohort row: window end (datetime64[D]), first recording of an in-window labelled outcome
    (datetime64[us], NaT if none) and whether follow-up ended inside the window."""

    window_end: np.ndarray
    known_at: np.ndarray
    censored: np.ndarray

    def at(self, cut: dt.date | None, extract_date: dt.date) -> pd.arrays.IntegerArray:
        """Labels as known at `cut` (None: at the extract date, everything in the data known)."""
        return label_at(self.window_end, self.known_at, self.censored, cut=cut, extract_date=extract_date)


def label_at(
    window_end: np.ndarray,
    known_at: np.ndarray,
    censored: np.ndarray,
    *,
    cut: dt.date | None,
    extract_date: dt.date,
) -> pd.arrays.IntegerArray:
    """Nullable Int8 labels (n rows) as they were knowable at `cut`.

    1: a labelled outcome in the window was recorded before `cut` (recorded by the extract date when
    cut is None); null: the window had not closed by min(cut, extract_date) or, without a known
    outcome, follow-up ended inside the window; 0 otherwise. An outcome recorded on or after `cut`
    gives 0, not null: on that day the records said nothing happened, and nulling it would pick
    training rows by what was learned later.
    """
    limit = np.datetime64(extract_date if cut is None else min(cut, extract_date), "D")
    ends = np.asarray(window_end).astype("datetime64[D]")
    recorded = np.asarray(known_at).astype("datetime64[us]")
    if cut is None:
        # A record the contract kept with a known_at after the extract date was not known on it.
        positive = ~np.isnat(recorded) & (recorded < np.datetime64(extract_date + dt.timedelta(days=1), "us"))
    else:
        positive = ~np.isnat(recorded) & (recorded < np.datetime64(cut, "us"))
    unknown = (ends > limit) | (~positive & np.asarray(censored, dtype=bool))
    values = positive.astype(np.int8)
    values[unknown] = 0
    return pd.arrays.IntegerArray(values, unknown)


def _positives_sql(config: ProjectConfig, engine: Engine) -> str:
    types = _in_list(engine.dialect, config.label.outcome_types)
    return f"""SELECT ri.r_idx, g.j, MIN(GREATEST(o.known_at, o.outcome_time)) AS known
FROM outcomes o
JOIN resident_index ri ON ri.resident_id = o.resident_id
JOIN grid g ON o.outcome_time >= g.as_of_ts AND o.outcome_time < g.horizon_end_ts
WHERE o.outcome_type IN ({types})
GROUP BY ri.r_idx, g.j"""


def _residency_end_sql() -> str:
    """(r_idx, j, run_end): the day a resident's continuous residency covering as_of ends (moving
    between addresses in the area is not leaving it; the open end is 9999-12-31)."""
    return f"""WITH spells AS (
  SELECT resident_id, CAST(start_date AS DATE) AS sd, COALESCE(CAST(end_date AS DATE), {_OPEN_END}) AS ed
  FROM residency
),
ordered AS (
  SELECT *, MAX(ed) OVER (PARTITION BY resident_id ORDER BY sd, ed
                          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
  FROM spells
),
runs AS (
  SELECT *, SUM(CASE WHEN prev_end IS NOT NULL AND sd <= prev_end THEN 0 ELSE 1 END)
              OVER (PARTITION BY resident_id ORDER BY sd, ed ROWS UNBOUNDED PRECEDING) AS run_id
  FROM ordered
),
spans AS (
  SELECT resident_id, run_id, MIN(sd) AS run_start, MAX(ed) AS run_end FROM runs GROUP BY resident_id, run_id
)
SELECT ri.r_idx, g.j, s.run_end
FROM spans s
JOIN grid g ON s.run_start <= g.as_of AND g.as_of < s.run_end
JOIN resident_index ri ON ri.resident_id = s.resident_id"""


def _resident_dates(residents: pd.DataFrame, column: str, resident_ids: np.ndarray) -> np.ndarray:
    """A date column of residents as datetime64[D] per resident index (NaT when empty)."""
    if column not in residents.columns:
        raise ConfigError(
            f"label.censoring.end_column: residents has no column {column!r}; declare it in the data "
            "dictionary as a date attribute or remove the key"
        )
    series = residents.set_index(residents["resident_id"].astype("str"))[column].reindex(resident_ids)
    try:
        stamps = pd.to_datetime(series, errors="raise")
    except (ValueError, TypeError) as error:
        raise ConfigError(f"label.censoring.end_column: residents.{column} is not a date column ({error})") from None
    return stamps.to_numpy(dtype="datetime64[D]", na_value=np.datetime64("NaT"))


def follow_up_ended_ids(config: ProjectConfig, residents: pd.DataFrame, as_of: dt.date) -> set[str]:
    """Residents whose follow-up had ended by `as_of` by label.censoring.end_column: that date on or
    before as_of and, when the data dictionary names the column's `known_from`, recorded before as_of
    (an end nobody knew of yet does not end follow-up that day). Empty without an end column.
    Death and leaving the area are not here: the cohort and the residency already exclude them.
    Raises ConfigError if a column is missing or not a date."""
    column = config.label.censoring.end_column
    if column is None or len(residents) == 0:
        return set()
    ids = residents["resident_id"].astype("str").to_numpy(dtype=object)
    ended = _ended_on_or_before(config, residents, ids, slice(None), np.datetime64(as_of, "D"))
    return set(ids[ended].tolist())


def _ended_on_or_before(
    config: ProjectConfig, residents: pd.DataFrame, ids: np.ndarray, rows: Any, days: Any
) -> np.ndarray:
    """Boolean mask over `ids[rows]`: the end column falls on or before `days` (a date, or one per row) and,
    when the dictionary gives it a `known_from`, was recorded before them. Raises ConfigError when that
    `known_from` column is missing."""
    from earlysignal.dictionary import dictionary_for

    column = config.label.censoring.end_column
    ends = _resident_dates(residents, column, ids)[rows]
    ended = ~np.isnat(ends) & (ends <= days)
    spec = dictionary_for(config).residents.get(column)
    if spec is not None and spec.known_from is not None:
        if spec.known_from not in residents.columns:
            raise ConfigError(
                f"label.censoring.end_column: the data dictionary says residents.{column} is known from "
                f"residents.{spec.known_from}, which the data does not have; supply it or remove known_from"
            )
        recorded = _resident_dates(residents, spec.known_from, ids)[rows]
        ended &= ~np.isnat(recorded) & (recorded < days)
    return ended


def still_followed_up(
    config: ProjectConfig, residents: pd.DataFrame, resident_ids: np.ndarray, cohort: Cohort, grid: AsOfGrid
) -> Cohort:
    """The cohort rows (r_idx, j) whose follow-up had not ended by their as_of by label.censoring.end_column,
    by the rule of `follow_up_ended_ids` (end on or before as_of and, with a `known_from`, recorded before it);
    the cohort unchanged without an end column. A person past follow-up is neither a training row with a
    null label counted as censored "inside the window" nor, at scoring, ranked. Raises ConfigError as
    `follow_up_ended_ids`."""
    column = config.label.censoring.end_column
    if column is None or len(cohort) == 0:
        return cohort
    ids = np.asarray(resident_ids).astype(str).astype(object)
    days = np.array(grid.dates, dtype="datetime64[D]")[cohort.j]
    ended = _ended_on_or_before(config, residents, ids, cohort.r_idx, days)
    return Cohort(r_idx=cohort.r_idx[~ended], j=cohort.j[~ended])


def build_label_timing(
    engine: Engine,
    config: ProjectConfig,
    grid: AsOfGrid,
    cohort: Cohort,
    residents: pd.DataFrame,
    resident_ids: np.ndarray,
    extract_date: dt.date,
) -> LabelTiming:
    """Window end, first recording of a labelled outcome and censoring per cohort row (n rows).

    Follow-up ends at the earliest of: the end of the residency run covering as_of
    (label.censoring.residency), death_date (label.censoring.death), the residents column named by
    label.censoring.end_column, and the extract date. A row is censored when that end falls before
    its window end. Raises ConfigError if end_column is missing or not a date.
    """
    if not config.label.outcome_types:
        raise ConfigError("label.outcome_types is empty: name the outcome type(s) the label predicts in the project YAML")
    n = len(cohort)
    window_end = np.array(grid.ends, dtype="datetime64[D]")[cohort.j]
    table = engine.run(_positives_sql(config, engine))
    known_at = np.full(n, np.datetime64("NaT"), dtype="datetime64[us]")
    if table.num_rows:
        size = max(grid.size, 1)
        keys = table.column("r_idx").to_numpy().astype(np.int64) * size + table.column("j").to_numpy().astype(np.int64)
        recorded = table.column("known").to_numpy(zero_copy_only=False).astype("datetime64[us]")
        order = np.argsort(keys)
        keys, recorded = keys[order], recorded[order]
        row_keys = cohort.r_idx * size + cohort.j
        position = np.clip(np.searchsorted(keys, row_keys), 0, keys.size - 1)
        hit = keys[position] == row_keys
        known_at[hit] = recorded[position[hit]]
    follow_up_end = np.full(n, np.datetime64(extract_date, "D"), dtype="datetime64[D]")
    censoring = config.label.censoring
    if censoring.residency:
        runs = engine.run(_residency_end_sql())
        run_end = np.full((resident_ids.size, grid.size), np.datetime64("NaT"), dtype="datetime64[D]")
        if runs.num_rows:
            run_end[
                runs.column("r_idx").to_numpy().astype(np.int64), runs.column("j").to_numpy().astype(np.int64)
            ] = runs.column("run_end").to_numpy(zero_copy_only=False).astype("datetime64[D]")
        row_end = run_end[cohort.r_idx, cohort.j]
        follow_up_end = np.where(np.isnat(row_end), follow_up_end, np.minimum(follow_up_end, row_end))
    # death_date is optional in the contract: no column, nobody is known to have died.
    columns = (["death_date"] if censoring.death and "death_date" in residents.columns else []) + (
        [censoring.end_column] if censoring.end_column else []
    )
    for column in columns:
        ends = _resident_dates(residents, column, resident_ids)[cohort.r_idx]
        follow_up_end = np.where(np.isnat(ends), follow_up_end, np.minimum(follow_up_end, ends))
    # The extract date is handled by label_at (window not closed); censoring is about the person.
    censored = (follow_up_end < window_end) & (follow_up_end < np.datetime64(extract_date, "D"))
    return LabelTiming(window_end=window_end, known_at=known_at, censored=censored)


def build_labels(
    engine: Engine, config: ProjectConfig, grid: AsOfGrid, cohort: Cohort, n_residents: int, extract_date: dt.date
) -> pd.arrays.IntegerArray:
    """A nullable Int8 label per cohort row as known at the extract date, without person
    censoring (kept for callers that have no residents table; the builder uses build_label_timing)."""
    timing = build_label_timing(
        engine,
        config.model_copy(
            update={"label": config.label.model_copy(update={"censoring": config.label.censoring.model_copy(
                update={"residency": False, "death": False, "end_column": None})})}
        ),
        grid,
        cohort,
        pd.DataFrame({"resident_id": pd.Series([], dtype="str")}),
        np.zeros(n_residents, dtype=object),
        extract_date,
    )
    return timing.at(None, extract_date)


def add_label_timing_columns(frame: pd.DataFrame, timing: LabelTiming) -> None:
    """Put the label's timing beside it in the matrix (in place): label_window_end (datetime64[us]),
    label_known_at (datetime64[us], NaT when no labelled outcome in the window), label_censored."""
    position = list(frame.columns).index("label") + 1
    frame.insert(position, "label_window_end", timing.window_end.astype("datetime64[us]"))
    frame.insert(position + 1, "label_known_at", timing.known_at.astype("datetime64[us]"))
    frame.insert(position + 2, "label_censored", timing.censored.astype(bool))


def label_metadata(config: ProjectConfig, timing: LabelTiming | None, labels: pd.arrays.IntegerArray) -> dict:
    """The sidecar's label facts: horizon in words and the censored-row count (null labels because
    follow-up ended inside the window without the outcome)."""
    label = config.label
    censored = 0
    if timing is not None:
        censored = int(np.count_nonzero(np.asarray(labels.isna()) & timing.censored))
    return {
        "horizon": label.horizon_text,
        "censoring": label.censoring.model_dump(mode="json"),
        "censored_rows": censored,
        "timing_columns": list(LABEL_TIMING_COLUMNS) if timing is not None else [],
    }


def resident_label_timing(
    config: ProjectConfig,
    residents: pd.DataFrame,
    residency: pd.DataFrame,
    outcomes: pd.DataFrame,
    resident_ids: np.ndarray | list[str],
    as_of: dt.date,
    extract_date: dt.date,
) -> LabelTiming:
    """Label timing for named residents at one as_of (n = len(resident_ids), in that order), built by
    `build_label_timing`, the code the feature matrix uses: same window (label.window_end), same
    recording rule and same censoring (label.censoring). For callers that judge a list after the
    fact (monitoring); `LabelTiming.at(cut, extract_date)` gives the labels as known at `cut`.
    A resident named twice gets the same timing twice. Raises ConfigError as build_label_timing.
    """
    from earlysignal.engines.registry import get_engine

    ids = pd.Index(pd.Series(resident_ids, dtype="object").astype(str))
    unique = ids.unique()
    grid = AsOfGrid.from_dates([as_of], config.label)
    # Only the named residents' rows reach the engine: a list is a small part of the borough.
    wanted = set(unique)
    outcomes = outcomes.loc[outcomes["resident_id"].astype(str).isin(wanted)]
    residency = residency.loc[residency["resident_id"].astype(str).isin(wanted)]
    engine = get_engine("duckdb")
    try:
        engine.register("outcomes", outcomes)
        engine.register("residency", residency)
        engine.register("resident_index", pd.DataFrame({"resident_id": np.asarray(unique, dtype=object),
                                                        "r_idx": np.arange(unique.size, dtype=np.int32)}))
        engine.register("grid", grid.frame())
        cohort = Cohort(r_idx=np.arange(unique.size, dtype=np.int64), j=np.zeros(unique.size, dtype=np.int64))
        timing = build_label_timing(engine, config, grid, cohort, residents, np.asarray(unique, dtype=object),
                                    extract_date)
    finally:
        engine.close()
    back = unique.get_indexer(ids)
    return LabelTiming(window_end=timing.window_end[back], known_at=timing.known_at[back],
                       censored=timing.censored[back])
