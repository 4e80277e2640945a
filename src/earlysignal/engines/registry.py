"""Engines by name: a thin registry (as Splink picks a backend), so callers never import a backend.

Each entry names the module and class; the module is imported only when that engine is asked for,
so DuckDB users never load PySpark and `engines.base` imports no backend.
"""

from __future__ import annotations

import importlib

from earlysignal.engines.base import Engine
from earlysignal.errors import EarlySignalError

ENGINES: dict[str, tuple[str, str]] = {
    "duckdb": ("earlysignal.engines.duckdb_engine", "DuckDBEngine"),
    "spark": ("earlysignal.engines.spark_engine", "SparkEngine"),
}


def engine_names() -> list[str]:
    """The registered engine names, sorted."""
    return sorted(ENGINES)


def get_engine(name: str = "duckdb", **options: object) -> Engine:
    """A new engine by name ('duckdb' or 'spark'), with backend options passed to its constructor.

    Raises EarlySignalError for an unknown name, or when the backend's package is not installed."""
    if name not in ENGINES:
        raise EarlySignalError(f"unknown engine {name!r}; available engines: {', '.join(engine_names())}")
    module_name, class_name = ENGINES[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise EarlySignalError(
            f"engine {name!r} needs a package that is not installed ({error}); "
            f"install it with `pip install -e '.[{name}]'`"
        ) from None
    return getattr(module, class_name)(**options)  # type: ignore[no-any-return]
