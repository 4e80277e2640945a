"""The default engine: embedded DuckDB, two threads and a memory cap."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from earlysignal.engines.base import Dialect, Engine, TableLike


class DuckDBDialect(Dialect):
    """DuckDB differs from the default in how semi and anti joins, arg-max and epoch microseconds are spelled."""

    name = "duckdb"
    semi_join = "SEMI JOIN"
    anti_join = "ANTI JOIN"

    def value_of_latest(self, value: str, time: str) -> str:
        return f"arg_max({value}, [{self.epoch_us(time)}, {value}]) FILTER (WHERE {value} IS NOT NULL)"

    def value_of_earliest(self, value: str, time: str) -> str:
        return f"arg_min({value}, [{self.epoch_us(time)}, -{value}]) FILTER (WHERE {value} IS NOT NULL)"

    def epoch_us(self, time: str) -> str:
        return f"CAST(epoch_us({time}) AS DOUBLE)"


class DuckDBEngine(Engine):
    """Runs SQL in an in-process DuckDB connection; DataFrames are scanned in place, not copied."""

    name = "duckdb"
    dialect = DuckDBDialect()

    def __init__(self, threads: int = 2, memory_limit: str = "3GB") -> None:
        super().__init__()
        self.threads = threads
        self.memory_limit = memory_limit
        self._connection = duckdb.connect(
            database=":memory:",
            config={
                "threads": threads,
                "memory_limit": memory_limit,
                "preserve_insertion_order": False,
            },
        )
        # Progress is shown by the CLI's own bar; DuckDB's would interleave with it.
        self._connection.execute("SET enable_progress_bar = false")
        # Registered objects must stay alive while DuckDB scans them.
        self._tables: dict[str, TableLike] = {}

    def register(self, name: str, table: TableLike) -> None:
        """Expose a DataFrame or Arrow table as a view named `name`."""
        if self._tables.get(name) is table:
            return
        self._connection.register(name, table)
        self._tables[name] = table

    def _execute(self, sql: str) -> pa.Table:
        return self._connection.sql(sql).to_arrow_table()

    def close(self) -> None:
        """Close the connection."""
        self._tables.clear()
        self._connection.close()
