"""Where generated SQL runs: embedded DuckDB (default) or Spark, behind one interface, chosen by name."""

from earlysignal.engines.base import Dialect, Engine
from earlysignal.engines.registry import engine_names, get_engine

__all__ = ["Dialect", "Engine", "engine_names", "get_engine"]
