"""The Spark engine: the same generated SQL on a SparkSession (local mode here, a cluster in production).

Tables are handed over as Arrow (no row-by-row pickling) and results come back as Arrow, so the
builder's NumPy step sees exactly what it sees from DuckDB. The session time zone is UTC: the
contract's timestamps carry no zone, and any other zone would move events across as_of boundaries.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa

from earlysignal.engines.base import Dialect, Engine, TableLike
from earlysignal.errors import EarlySignalError

# PySpark warns on every run that it does not yet fully support pandas 3; the engine hands tables over as
# Arrow, and the feature tests check its matrices equal DuckDB's value for value under pandas 3.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)

# Errors only, on stderr, for the local session: Spark's start-up warnings would bury the project's output.
# Passed as a file URI (spaces escaped): the launcher splits extraJavaOptions on whitespace.
LOG4J2_PROPERTIES = Path(__file__).with_name("spark_log4j2.properties")
_JAVA_OPTIONS = f"-Duser.timezone=UTC -Dlog4j2.configurationFile={LOG4J2_PROPERTIES.resolve().as_uri()}"

# Local-mode settings for one machine; on a cluster the session comes from spark-submit / Databricks
# and these are not applied (docs/spark.md).
LOCAL_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "2",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.driver.memory": "2g",
    "spark.sql.ansi.enabled": "false",
    "spark.driver.extraJavaOptions": _JAVA_OPTIONS,
    "spark.executor.extraJavaOptions": _JAVA_OPTIONS,
}


class SparkDialect(Dialect):
    """Spark SQL: identifiers in backticks; arg-max, FILTER, UNIX_MICROS and LEFT SEMI/ANTI as the default."""

    name = "spark"

    def quote(self, identifier: str) -> str:
        """A backtick-quoted identifier (backticks doubled): Spark reads double quotes as strings."""
        return "`" + identifier.replace("`", "``") + "`"


def _spark_ready(table: pa.Table) -> pa.Table:
    """Arrow types Spark reads: large strings as strings, timestamps at microseconds without a zone."""
    fields = []
    for field in table.schema:
        kind = field.type
        if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            kind = pa.string()
        elif pa.types.is_timestamp(kind):
            kind = pa.timestamp("us")
        elif pa.types.is_dictionary(kind):
            kind = kind.value_type
        fields.append(pa.field(field.name, kind))
    return table.cast(pa.schema(fields))


JAVA_HELP = (
    "the Spark engine needs Java 17 (Debian: apt-get install openjdk-17-jre-headless; docs/spark.md), "
    "or build with --engine duckdb"
)


def require_java() -> str:
    """The java executable Spark's launcher will run: $JAVA_HOME/bin/java when JAVA_HOME is set, else `java`
    on PATH. Raises EarlySignalError naming where it looked when there is none (PySpark's own error is a
    traceback about a gateway port)."""
    home = os.environ.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        if not java.is_file():
            raise EarlySignalError(
                f"JAVA_HOME is {home} but {java} does not exist: point JAVA_HOME at a Java install "
                f"(e.g. /usr/lib/jvm/java-17-openjdk-amd64) or unset it to use java on PATH; {JAVA_HELP}"
            )
        return str(java)
    found = shutil.which("java")
    if found is None:
        raise EarlySignalError(f"no `java` on PATH and JAVA_HOME is not set; {JAVA_HELP}")
    return found


def local_session(master: str = "local[2]", conf: Mapping[str, str] | None = None):  # type: ignore[no-untyped-def]
    """The process's SparkSession in local mode (created once, then reused), UTC throughout.

    Raises EarlySignalError when no Java can be found (require_java)."""
    require_java()
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)  # type: ignore[attr-defined]
    builder = SparkSession.builder.master(master).appName("earlysignal")
    for key, value in {**LOCAL_CONF, **(conf or {})}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


class SparkEngine(Engine):
    """Runs SQL on a SparkSession: the one given (a cluster's), else a local one shared by the process."""

    name = "spark"
    dialect = SparkDialect()

    def __init__(self, session: object | None = None, master: str = "local[2]", conf: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.session = session if session is not None else local_session(master, conf)
        # Session time zone is what turns naive timestamps into instants; anything but UTC shifts events.
        self.session.conf.set("spark.sql.session.timeZone", "UTC")  # type: ignore[attr-defined]
        self._views: dict[str, TableLike] = {}

    def register(self, name: str, table: TableLike) -> None:
        """Expose a DataFrame or Arrow table as a temporary view `name`."""
        if self._views.get(name) is table:
            return
        arrow = table if isinstance(table, pa.Table) else pa.Table.from_pandas(table, preserve_index=False)
        frame = self.session.createDataFrame(_spark_ready(arrow))  # type: ignore[attr-defined]
        frame.createOrReplaceTempView(name)
        self._views[name] = table

    def _execute(self, sql: str) -> pa.Table:
        return self.session.sql(sql).toArrow()  # type: ignore[attr-defined,no-any-return]

    def close(self) -> None:
        """Drop this engine's views; the session stays up for the next engine in the process."""
        catalog = self.session.catalog  # type: ignore[attr-defined]
        for name in self._views:
            catalog.dropTempView(name)
        self._views.clear()
