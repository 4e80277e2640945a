"""Where generated SQL runs: DuckDB now (embedded), Spark later behind the same interface."""

from earlysignal.engines.base import Dialect, Engine, get_engine

__all__ = ["Dialect", "Engine", "get_engine"]
