"""The engine interface: SQL text in, Arrow table out.

Generation and execution are kept apart (as Splink does): `earlysignal.features.sql` renders
plain SQL text from the feature spec using a `Dialect` for the few constructs that differ
between backends, and an `Engine` only registers tables and runs text. A Spark engine would
subclass `Engine` (register = `createOrReplaceTempView`, run = `spark.sql(sql).toArrow()`) and
provide a `Dialect`; nothing in the feature builder changes. Engines are found by name through
`earlysignal.engines.registry`, so this module imports no backend.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Mapping

import pandas as pd
import pyarrow as pa


TableLike = pd.DataFrame | pa.Table


class Dialect:
    """SQL constructs that differ between backends. The default renders ANSI-ish SQL that
    DuckDB and Spark SQL both accept; a backend overrides only what it must."""

    name = "ansi"
    # Semi/anti joins are spelled differently: DuckDB `SEMI JOIN`, Spark `LEFT SEMI JOIN`.
    semi_join = "LEFT SEMI JOIN"
    anti_join = "LEFT ANTI JOIN"

    def string_literal(self, value: str) -> str:
        """A quoted string literal (single quotes doubled)."""
        return "'" + value.replace("'", "''") + "'"

    def quote(self, identifier: str) -> str:
        """A quoted identifier (a column name from the data dictionary; double quotes doubled)."""
        return '"' + identifier.replace('"', '""') + '"'

    def timestamp_literal(self, value: dt.datetime | dt.date) -> str:
        """A timestamp literal at microsecond precision."""
        if not isinstance(value, dt.datetime):
            value = dt.datetime(value.year, value.month, value.day)
        return f"TIMESTAMP '{value.isoformat(sep=' ', timespec='microseconds')}'"

    def date_literal(self, value: dt.date) -> str:
        """A date literal."""
        return f"DATE '{value.isoformat()}'"

    def value_of_latest(self, value: str, time: str) -> str:
        """The value of the row with the latest time (ties: the largest value), over non-null values."""
        return f"MAX_BY({value}, ARRAY({self.epoch_us(time)}, {value})) FILTER (WHERE {value} IS NOT NULL)"

    def value_of_earliest(self, value: str, time: str) -> str:
        """The value of the row with the earliest time (ties: the largest value), over non-null values."""
        return f"MIN_BY({value}, ARRAY({self.epoch_us(time)}, -{value})) FILTER (WHERE {value} IS NOT NULL)"

    def epoch_us(self, time: str) -> str:
        """Microseconds since 1970-01-01 of a timestamp, as a DOUBLE (exact below 2**53)."""
        return f"CAST(UNIX_MICROS({time}) AS DOUBLE)"

    def as_int(self, boolean_sql: str) -> str:
        """A boolean expression as 0/1 integer."""
        return f"CASE WHEN {boolean_sql} THEN 1 ELSE 0 END"


class Engine(ABC):
    """Runs SQL text against registered tables and returns an Arrow table."""

    name: str = "abstract"
    dialect: Dialect = Dialect()

    def __init__(self) -> None:
        self.executed_sql: list[str] = []

    @abstractmethod
    def register(self, name: str, table: TableLike) -> None:
        """Make a DataFrame or Arrow table queryable under `name` (replacing any previous one)."""

    @abstractmethod
    def _execute(self, sql: str) -> pa.Table:
        """Run one SQL statement and return its result."""

    def run(self, sql: str, tables: Mapping[str, TableLike] | None = None) -> pa.Table:
        """Register `tables` (if given), run `sql`, log it for --show-sql, return Arrow."""
        for name, table in (tables or {}).items():
            self.register(name, table)
        self.executed_sql.append(sql)
        return self._execute(sql)

    def close(self) -> None:
        """Release the backend's resources."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

