"""Engines by name: the registry, the Spark dialect, and the command line's --engine."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from earlysignal.cli import app
from earlysignal.engines import engine_names, get_engine
from earlysignal.errors import EarlySignalError


def test_the_registry_names_duckdb_and_spark():
    assert engine_names() == ["duckdb", "spark"]
    with pytest.raises(EarlySignalError, match="unknown engine 'hive'; available engines: duckdb, spark"):
        get_engine("hive")


def test_the_engine_interface_imports_no_backend():
    # The old default in base.py imported DuckDB's engine (a circle); backends now load only by name.
    code = (
        "import sys, earlysignal.engines, earlysignal.engines.base; "
        "print(sorted(m for m in sys.modules if m in "
        "('earlysignal.engines.duckdb_engine', 'earlysignal.engines.spark_engine', 'pyspark')))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


def test_spark_dialect_quotes_identifiers_with_backticks_and_keeps_ansi_joins():
    pytest.importorskip("pyspark")
    from earlysignal.engines.spark_engine import SparkDialect

    dialect = SparkDialect()
    assert dialect.quote("code__tenure") == "`code__tenure`"
    assert dialect.quote("odd`name") == "`odd``name`"
    assert dialect.semi_join == "LEFT SEMI JOIN" and dialect.anti_join == "LEFT ANTI JOIN"


def test_an_unknown_engine_on_the_command_line_is_a_message_not_a_traceback(tmp_path):
    result = CliRunner().invoke(app, ["features", "--engine", "hive", "--data", str(tmp_path)])
    assert result.exit_code != 0
    assert "unknown engine 'hive'" in result.output
    assert "Traceback" not in result.output


def test_spark_with_java_home_pointing_nowhere_says_which_java_it_looked_for(tmp_path, monkeypatch):
    from earlysignal.engines.spark_engine import SparkEngine

    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(EarlySignalError) as error:
        SparkEngine()
    message = str(error.value)
    assert f"JAVA_HOME is {tmp_path / 'nowhere'}" in message
    assert str(tmp_path / "nowhere" / "bin" / "java") in message
    assert "Java 17" in message and "--engine duckdb" in message


def test_spark_without_java_on_path_is_a_message_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    result = CliRunner().invoke(app, ["features", "--engine", "spark", "--data", str(tmp_path)])
    assert result.exit_code == 2
    assert "no `java` on PATH" in result.output and "Java 17" in result.output
    assert "Traceback" not in result.output


def test_the_spark_engine_does_not_alarm_users_with_pyspark_s_pandas_3_caveat():
    import warnings

    import earlysignal.engines.spark_engine  # noqa: F401  (installs the filter)

    with warnings.catch_warnings(record=True) as seen:
        warnings.warn("PySpark does not yet fully support pandas >= 3.0.0. Some features may not work correctly.",
                      FutureWarning, stacklevel=1)
        warnings.warn("some other future change", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["some other future change"]


# What a local Spark session printed before its logging was configured (docs/spark.md), none of it ours.
SPARK_NOISE = (
    "NativeCodeLoader",                          # no native Hadoop library
    "resolves to a loopback address",            # the machine's hostname
    "SPARK_LOCAL_IP",
    "Using Spark's default log4j profile",
    "Setting default log level",
    "To adjust logging level use sc.setLogLevel",
    "[Stage ",                                   # console progress bars
    "a warning that stays hidden",
)

NOISE_SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from features_borough import every_aggregate_config, random_borough, write_folder
from earlysignal.config import config_from_dict, config_to_dict
from earlysignal.engines import get_engine
from earlysignal.features import build_or_reuse_feature_matrix

work = Path(sys.argv[1])
folder = write_folder(random_borough(seed=3, households=8, events_per_resident=15), work / "borough")
raw = config_to_dict(every_aggregate_config(temporal__first_as_of="2025-01-01"))
raw["data"] = {"dir": str(folder)}
raw["features"]["families"] = raw["features"]["families"][:1]  # one family: the session, not the spec, is tested
with get_engine("spark") as engine:
    matrix, status = build_or_reuse_feature_matrix(config_from_dict(raw), out=work / "m.parquet", engine=engine)
    logger = engine.session._jvm.org.apache.logging.log4j.LogManager.getLogger("earlysignal.noise_test")
    logger.warn("a warning that stays hidden")
    logger.error("an error that stays visible")
print(status, len(matrix.frame))
"""


@pytest.mark.spark
def test_a_local_spark_build_prints_no_start_up_noise_but_keeps_errors(tmp_path):
    from pathlib import Path

    pytest.importorskip("pyspark")
    # A process of its own: the session (and its logging) is made once per process.
    result = subprocess.run([sys.executable, "-c", NOISE_SCRIPT, str(tmp_path), str(Path(__file__).parent)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[0] == "built:" and int(result.stdout.split()[-1]) > 0
    assert [line for line in SPARK_NOISE if line in result.stderr] == []
    assert "ERROR noise_test: an error that stays visible" in result.stderr
    # The JVM itself warns about the incubator module Spark's launcher always adds; no setting removes it.
    others = [line for line in result.stderr.splitlines()
              if line.strip() and "an error that stays visible" not in line
              and line != "WARNING: Using incubator modules: jdk.incubator.vector"]
    assert others == []
