"""SQL text for the feature builder, rendered per dialect; nothing here executes anything.

Registered table names the SQL expects:
  residents, residency, events, outcomes   the contract tables (accepted rows)
  resident_index(resident_id, r_idx)        dense integer keys, sorted by id
  household_index(household_id, h_idx)
  address_index(address_id, a_idx)
  grid(j, as_of DATE, as_of_ts TIMESTAMP, horizon_end_ts TIMESTAMP)   the as_of grid
  event_residents(resident_id, entity), event_addresses(address_id, entity)
      the residents / addresses whose events can reach a cohort row (cohort members, members of
      their households, their addresses), with compact keys; joining to them also filters events

The event query avoids joining events to the grid (which multiplies every event by every
as_of whose window holds it). An event (event_time t, known_at k) counts for grid date A_j in a
window w iff max(k, t) < A_j and t >= start_w(A_j) (A_j - N days, or N calendar months back:
earlysignal.windows), i.e. for the contiguous index range first_j <= j <= last_j(w), since
start_w never decreases with A. The SQL (one query per entity kind, all families at once) tags each event with first_j (how many grid dates are
<= max(k, t)) and a time bucket tb (how many of the window thresholds start_w(A_i) are <= t) and
groups by (entity, event type, first_j, tb); every window's last_j is a function of tb, so one
GROUP BY serves all windows, and the builder turns the groups into difference arrays along j.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from earlysignal.engines.base import Dialect


def bucket_expression(dialect: Dialect, expression: str, thresholds: Sequence[dt.datetime]) -> str:
    """SQL for the number of thresholds (sorted ascending) that are <= expression.

    Rendered as a balanced CASE tree, so each row makes log2(n) comparisons rather than n.
    """
    def render(low: int, high: int) -> str:
        # The answer lies in [low, high]; thresholds[low:high] decide it.
        if low == high:
            return str(low)
        middle = (low + high + 1) // 2
        literal = dialect.timestamp_literal(thresholds[middle - 1])
        return f"CASE WHEN {expression} >= {literal} THEN {render(middle, high)} ELSE {render(low, middle - 1)} END"

    return render(0, len(thresholds))


def _in_list(dialect: Dialect, values: Sequence[str]) -> str:
    return ", ".join(dialect.string_literal(v) for v in values)


def event_groups_sql(
    dialect: Dialect,
    *,
    event_kinds: Sequence[tuple[str, str]],
    entity: str,
    grid: Sequence[dt.datetime],
    thresholds: Sequence[dt.datetime],
    with_values: bool,
    with_max: bool,
    with_min: bool = False,
    with_last: bool = False,
    with_first: bool = False,
) -> str:
    """Grouped events of every (source, event_type) in `event_kinds`, keyed by resident
    (entity='resident') or address (entity='address'); one scan of the events serves all families.

    Columns: entity, type_idx (position in event_kinds), first_j, tb, n, [s, nv], [vmax], [vmin],
    [v_last, t_last_v: the value of the group's latest valued event and its time in epoch microseconds],
    [v_first, t_first_v: the same for the earliest], t_last, t_first.
    """
    if entity == "resident":
        join = "JOIN event_residents ix ON ix.resident_id = e.resident_id"
    elif entity == "address":
        join = "JOIN event_addresses ix ON ix.address_id = e.address_id"
    else:  # pragma: no cover - programming error
        raise ValueError(f"unknown entity {entity!r}")
    by_source: dict[str, list[tuple[int, str]]] = {}
    for index, (source, event_type) in enumerate(event_kinds):
        by_source.setdefault(source, []).append((index, event_type))
    type_case = "CASE e.source " + " ".join(
        f"WHEN {dialect.string_literal(source)} THEN CASE e.event_type "
        + " ".join(f"WHEN {dialect.string_literal(t)} THEN {i}" for i, t in types)
        + " END"
        for source, types in by_source.items()
    ) + " END"
    known = "GREATEST(e.known_at, e.event_time)"
    value_columns = ""
    if with_values:
        value_columns += ",\n       SUM(value) AS s, COUNT(value) AS nv"
    if with_max:
        value_columns += ",\n       MAX(value) AS vmax"
    if with_min:
        value_columns += ",\n       MIN(value) AS vmin"
    if with_last:
        value_columns += (
            f",\n       {dialect.value_of_latest('value', 'event_time')} AS v_last"
            f",\n       MAX({dialect.epoch_us('event_time')}) FILTER (WHERE value IS NOT NULL) AS t_last_v"
        )
    if with_first:
        value_columns += (
            f",\n       {dialect.value_of_earliest('value', 'event_time')} AS v_first"
            f",\n       MIN({dialect.epoch_us('event_time')}) FILTER (WHERE value IS NOT NULL) AS t_first_v"
        )
    return f"""WITH tagged AS (
  SELECT ix.entity,
         {type_case} AS type_idx,
         {bucket_expression(dialect, known, grid)} AS first_j,
         {bucket_expression(dialect, "e.event_time", thresholds)} AS tb,
         CAST(e.value AS DOUBLE) AS value,
         e.event_time
  FROM events e
  {join}
  WHERE e.source IN ({_in_list(dialect, list(by_source))})
    AND {known} < {dialect.timestamp_literal(grid[-1])}
)
SELECT entity, type_idx, first_j, tb,
       COUNT(*) AS n{value_columns},
       MAX(event_time) AS t_last, MIN(event_time) AS t_first
FROM tagged
WHERE type_idx IS NOT NULL
GROUP BY entity, type_idx, first_j, tb"""


def memberships_sql(dialect: Dialect, categories: dict[str, Sequence[str]] | None = None) -> str:
    """Residency spells covering each grid date, with dense keys, the date the resident has lived at
    that address since (adjacent spells at one address are joined up), and for each residency
    category attribute in `categories` (column -> declared codes) a `code__<column>` column: the
    code's position in the list, -1 when not recorded or not declared."""
    categories = categories or {}
    code_columns = "".join(
        f",\n       CASE s.{dialect.quote(name)} "
        + " ".join(f"WHEN {dialect.string_literal(c)} THEN {i}" for i, c in enumerate(codes))
        + f" ELSE -1 END AS {dialect.quote('code__' + name)}"
        for name, codes in categories.items()
        if codes
    )
    spell_columns = "".join(f", {dialect.quote(name)}" for name, codes in categories.items() if codes)
    return f"""WITH ordered AS (
  SELECT resident_id, household_id, address_id{spell_columns},
         CAST(start_date AS DATE) AS start_date, CAST(end_date AS DATE) AS end_date,
         CASE WHEN LAG(address_id) OVER w = address_id
                   AND LAG(CAST(end_date AS DATE)) OVER w = CAST(start_date AS DATE)
              THEN 0 ELSE 1 END AS new_run
  FROM residency
  WINDOW w AS (PARTITION BY resident_id ORDER BY start_date)
),
runs AS (
  SELECT *, SUM(new_run) OVER (PARTITION BY resident_id ORDER BY start_date
                               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS run_id
  FROM ordered
),
spells AS (
  SELECT *, MIN(start_date) OVER (PARTITION BY resident_id, run_id) AS address_since
  FROM runs
)
SELECT ri.r_idx, g.j, hi.h_idx, ai.a_idx,
       s.address_since{code_columns}
FROM spells s
JOIN grid g ON s.start_date <= g.as_of AND (s.end_date IS NULL OR g.as_of < s.end_date)
JOIN resident_index ri ON ri.resident_id = s.resident_id
JOIN household_index hi ON hi.household_id = s.household_id
JOIN address_index ai ON ai.address_id = s.address_id"""


def _age_expression(birth: str, as_of: str) -> str:
    # Completed years: the birthday this year has been reached when (month, day) >= birth's.
    return (
        f"(EXTRACT(YEAR FROM {as_of}) - EXTRACT(YEAR FROM {birth})"
        f" - CASE WHEN EXTRACT(MONTH FROM {as_of}) * 100 + EXTRACT(DAY FROM {as_of})"
        f" < EXTRACT(MONTH FROM {birth}) * 100 + EXTRACT(DAY FROM {birth}) THEN 1 ELSE 0 END)"
    )


def cohort_sql(
    dialect: Dialect,
    *,
    min_age: int | None,
    max_age: int | None,
    require_residency: bool,
    exclude_open_outcomes: Sequence[str],
    birth_range: tuple[dt.date, dt.date] | None = None,
    recent_events: Sequence[Sequence[tuple[str, str | None]]] = (),
    prior_outcomes: Sequence[tuple[Sequence[str], bool]] = (),
    entry_column: str | None = None,
    entry_known_from: str | None = None,
) -> str:
    """(r_idx, j) of everyone eligible at each grid date: age in [min_age, max_age] (inclusive,
    completed years; a None bound is no bound), alive (death_date after as_of), living in the
    borough if required, not already in an excluded outcome state (started and known before as_of,
    not ended by as_of), with at least one event of each `recent_events` rule (a list of
    (source, event_type or None)) happened and known in [lookback, as_of), and with no outcome of
    any `prior_outcomes` rule (outcome types, windowed?) started and known before as_of (after its
    lookback when windowed).

    Rules with a lookback read it from the registered table cohort_lookback(j, since_0, since_1,
    ...): `since_i` is as_of minus rule i's days, numbered recent-event rules first, then windowed
    prior-outcome rules in order. What counts is when the council knew (known_at), never only when
    it happened: cohort membership at as_of uses nothing recorded on or after as_of.

    `entry_column` (a date column of residents): only as_of dates on or after the person's entry
    date (as a residency spell's start_date counts from its first day); a null entry date never
    enters. `entry_known_from` (the date the entry was recorded): that date must be before as_of.

    `birth_range` (after, not after) is a loose pre-filter on birth dates that can never drop an
    eligible resident; it only spares the engine the residents x grid rows of the wrong ages."""
    prefilter = ""
    if birth_range is not None:
        prefilter = (
            f"\n  WHERE CAST(r.birth_date AS DATE) > {dialect.date_literal(birth_range[0])}"
            f" AND CAST(r.birth_date AS DATE) <= {dialect.date_literal(birth_range[1])}"
        )
    conditions = ["(r.death_date IS NULL OR CAST(r.death_date AS DATE) > g.as_of)"]
    if min_age is not None or max_age is not None:
        age = _age_expression("CAST(r.birth_date AS DATE)", "g.as_of")
        if min_age is not None:
            conditions.append(f"{age} >= {int(min_age)}")
        if max_age is not None:
            conditions.append(f"{age} <= {int(max_age)}")
    if entry_column is not None:
        conditions.append(f"CAST(r.{dialect.quote(entry_column)} AS DATE) <= g.as_of")
        if entry_known_from is not None:
            # Recorded on or after as_of: on that day nobody knew the person had entered (backdated entry).
            conditions.append(f"CAST(r.{dialect.quote(entry_known_from)} AS DATE) < g.as_of")
    n_lookbacks = len(recent_events) + sum(1 for _, windowed in prior_outcomes if windowed)
    lookback_columns = "".join(f", lb.since_{i}" for i in range(n_lookbacks))
    lookback_join = "\n  JOIN cohort_lookback lb ON lb.j = g.j" if n_lookbacks else ""
    steps = [
        f"""candidates AS (
  SELECT ri.r_idx, r.resident_id, g.j, g.as_of, g.as_of_ts{lookback_columns}
  FROM (SELECT * FROM residents r{prefilter}) r
  JOIN resident_index ri ON ri.resident_id = r.resident_id
  CROSS JOIN grid g{lookback_join}
  WHERE {" AND ".join(conditions)}
)"""
    ]
    current = "candidates"
    if require_residency:
        steps.append(
            f"""living AS (
  SELECT c.* FROM {current} c
  {dialect.semi_join} residency s
    ON s.resident_id = c.resident_id
   AND CAST(s.start_date AS DATE) <= c.as_of
   AND (s.end_date IS NULL OR c.as_of < CAST(s.end_date AS DATE))
)"""
        )
        current = "living"
    # Outcomes count from when they were known (a plan recorded late was not known at as_of).
    outcome_known = "GREATEST(o.known_at, o.outcome_time)"
    if exclude_open_outcomes:
        steps.append(
            f"""not_open AS (
  SELECT c.* FROM {current} c
  {dialect.anti_join} outcomes o
    ON o.resident_id = c.resident_id
   AND o.outcome_type IN ({_in_list(dialect, exclude_open_outcomes)})
   AND o.outcome_time < c.as_of_ts
   AND {outcome_known} < c.as_of_ts
   AND (o.end_time IS NULL OR o.end_time > c.as_of_ts)
)"""
        )
        current = "not_open"
    lookback = 0
    for number, kinds in enumerate(recent_events):
        matches = " OR ".join(
            f"(e.source = {dialect.string_literal(source)}"
            + (f" AND e.event_type = {dialect.string_literal(event_type)})" if event_type is not None else ")")
            for source, event_type in kinds
        )
        steps.append(
            f"""recent_{number} AS (
  SELECT c.* FROM {current} c
  {dialect.semi_join} events e
    ON e.resident_id = c.resident_id
   AND ({matches})
   AND e.event_time < c.as_of_ts
   AND GREATEST(e.known_at, e.event_time) < c.as_of_ts
   AND e.event_time >= c.since_{lookback}
)"""
        )
        current = f"recent_{number}"
        lookback += 1
    for number, (outcome_types, windowed) in enumerate(prior_outcomes):
        window = ""
        if windowed:
            window = f"\n   AND o.outcome_time >= c.since_{lookback}"
            lookback += 1
        steps.append(
            f"""no_prior_{number} AS (
  SELECT c.* FROM {current} c
  {dialect.anti_join} outcomes o
    ON o.resident_id = c.resident_id
   AND o.outcome_type IN ({_in_list(dialect, outcome_types)})
   AND o.outcome_time < c.as_of_ts
   AND {outcome_known} < c.as_of_ts{window}
)"""
        )
        current = f"no_prior_{number}"
    return "WITH " + ",\n".join(steps) + f"\nSELECT r_idx, j FROM {current}"


def label_positives_sql(dialect: Dialect, *, outcome_types: Sequence[str]) -> str:
    """(r_idx, j) pairs with a labelled outcome in [as_of, as_of + horizon)."""
    return f"""SELECT DISTINCT ri.r_idx, g.j
FROM outcomes o
JOIN resident_index ri ON ri.resident_id = o.resident_id
JOIN grid g ON o.outcome_time >= g.as_of_ts AND o.outcome_time < g.horizon_end_ts
WHERE o.outcome_type IN ({_in_list(dialect, outcome_types)})"""
