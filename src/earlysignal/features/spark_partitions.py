"""The partitioned build fanned out over Spark: each partition's build runs in a Spark task through
`applyInPandas`, so partitions are built in parallel on the executors instead of one after another on the
driver.

Spark does the data-sized moving: the events (with the partition number of their resident, and of their
address when that is another partition) are grouped by partition and co-grouped with each partition's
residents, spells and outcomes. Inside a task the partition's rows are an ordinary `build_feature_matrix`
input; its SQL runs on an in-process DuckDB (a Python worker cannot issue Spark SQL) and its NumPy step
follows, exactly as on one machine. The task returns its matrix as one Arrow IPC blob with its metadata;
the driver streams the blobs back one at a time (`toLocalIterator`) and writes the part files and sidecar
with the same code as the single-machine build, so the output is the same, value for value (tests).

Dtypes cross the Python/JVM boundary twice (pandas -> Spark -> pandas), and Spark's pandas conversion
does not keep the contract's (string, datetime64[us]); each task puts the events back into the dtypes
the driver's table had, so the builder sees what it sees on one machine.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from earlysignal.features.matrix import FeatureMatrix
from earlysignal.features.partition import (
    PartitionData,
    PartitionIndex,
    _chosen_partitions,
    _write_parts,
    assign_partitions,
    household_components,
    loaded_per_partition,
)

PARTITION_COLUMN = "_es_partition"


def _ipc(frame: pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _from_ipc(blob: bytes) -> pd.DataFrame:
    """A contract table back from IPC, with the contract's dtypes (nullable booleans as LinkedData has)."""
    from earlysignal.contract.reading import to_pandas

    return to_pandas(pa.ipc.open_stream(blob).read_all())


def build_partitioned_feature_matrix_on_spark(
    config: Any,
    data: Any,
    out: str | os.PathLike[str],
    session: Any,
    *,
    partitions: int | None = None,
    as_of_dates: Sequence[dt.date] | None = None,
    with_labels: bool = True,
    extra_metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the matrix of `data` partition by partition in Spark tasks (applyInPandas over the partitions
    of features/partition.py) and write it into the folder `out` as build_partitioned_feature_matrix does
    (same part files, same sidecar). `session` is a SparkSession (local or a cluster's).

    `data` is LinkedData-like (events in memory: Spark groups them by partition and hands each task its
    own) or the StreamedData of contract/streaming.py (each task reads its partition's files, so no event,
    resident or spell passes through the driver; `partitions` is then data.partitions). Raises ConfigError for a
    partition count below 1."""
    started_all = time.perf_counter()
    out = Path(out)
    grid_dates = list(as_of_dates) if as_of_dates is not None else list(config.as_of_dates())
    streamed = hasattr(data, "events_of")
    if streamed:
        # StreamedData: partitions are assigned and each one's accepted events are in a file already;
        # the tasks read their own file (the folder must be on storage the executors see).
        partitions = data.partitions
        events_dir = str(data.events_dir)
        events_schema = data.events_schema.serialize().to_pybytes()
    else:
        partitions = _chosen_partitions(config, len(data.residents), grid_dates, partitions)
        components = household_components(data.residents, data.residency)
        resident_partition = assign_partitions(components, np.ones(components.size), partitions)
        index = PartitionIndex.of(data, resident_partition)
        of_resident, of_spell, of_outcome = index.residents, index.residency, index.outcomes
        # The events, once per partition that reads them: their resident's, and their address's when another.
        extra = (index.event_address >= 0) & (index.event_address != index.event_resident)
        own = index.event_resident >= 0
        rows = np.concatenate([np.flatnonzero(own), np.flatnonzero(extra)])
        events = data.events.iloc[rows].reset_index(drop=True)
        events.insert(0, PARTITION_COLUMN, np.concatenate([index.event_resident[own], index.event_address[extra]]))
        events.insert(1, "_es_row", rows)  # file order within a partition, restored in the task
        event_dtypes = {c: str(t) for c, t in data.events.dtypes.items()}

    if streamed:  # each partition's tables are in files already: each task reads its own
        people = pd.DataFrame({PARTITION_COLUMN: np.arange(partitions, dtype=np.int64)})
    else:
        # Each partition's residents, spells and outcomes as one row of Arrow IPC blobs (they are small
        # next to the events, and IPC keeps their dtypes exactly).
        people = pd.DataFrame({
            PARTITION_COLUMN: np.arange(partitions, dtype=np.int64),
            "residents": [_ipc(data.residents[of_resident == p]) for p in range(partitions)],
            "residency": [_ipc(data.residency[of_spell == p]) for p in range(partitions)],
            "outcomes": [_ipc(data.outcomes[of_outcome == p]) for p in range(partitions)],
        })

    config_json = config.model_dump_json()
    extract_date = data.extract_date
    manifest = getattr(data, "manifest", None)

    def build_one(events_pdf: pd.DataFrame | None, people_pdf: pd.DataFrame) -> pd.DataFrame:
        from earlysignal.config import ProjectConfig
        from earlysignal.engines import get_engine
        from earlysignal.features.builder import build_feature_matrix

        if people_pdf.empty:
            return _no_rows()
        partition = int(people_pdf[PARTITION_COLUMN].iloc[0])
        if events_pdf is None:
            tables = {name: _table_file(events_dir, name, partition) for name in ("residents", "residency", "outcomes")}
        else:
            tables = {name: _from_ipc(bytes(people_pdf[name].iloc[0])) for name in ("residents", "residency", "outcomes")}
        if len(tables["residents"]) == 0:
            return _no_rows()
        if events_pdf is None:
            events_part = _events_file(events_dir, partition, events_schema)
        else:
            events_part = events_pdf.sort_values("_es_row", kind="stable").drop(columns=[PARTITION_COLUMN, "_es_row"])
            events_part = _restore_dtypes(events_part.reset_index(drop=True), event_dtypes)
        subset = PartitionData(
            residents=tables["residents"], residency=tables["residency"], events=events_part,
            outcomes=tables["outcomes"], extract_date=extract_date, manifest=manifest,
        )
        task_config = ProjectConfig.model_validate_json(config_json)
        with get_engine("duckdb") as engine:
            matrix = build_feature_matrix(
                task_config, subset, as_of_dates=grid_dates, with_labels=with_labels, engine=engine
            )
        # object columns: PySpark converts them itself (pandas' Arrow-backed str would reach it chunked).
        return pd.DataFrame({
            PARTITION_COLUMN: pd.Series([partition], dtype="int64"),
            "matrix": pd.Series([_ipc(matrix.frame)], dtype=object),
            "metadata": pd.Series([json.dumps(matrix.metadata, default=str)], dtype=object),
        })

    from earlysignal.engines.spark_engine import _spark_ready

    schema = f"{PARTITION_COLUMN} long, matrix binary, metadata string"
    people_sdf = session.createDataFrame(people)
    if streamed:
        grouped = people_sdf.groupBy(PARTITION_COLUMN).applyInPandas(lambda pdf: build_one(None, pdf), schema=schema)
    else:
        events_sdf = session.createDataFrame(_spark_ready(pa.Table.from_pandas(events, preserve_index=False)))
        grouped = (
            events_sdf.groupBy(PARTITION_COLUMN)
            .cogroup(people_sdf.groupBy(PARTITION_COLUMN))
            .applyInPandas(build_one, schema=schema)
        )
    result = grouped.orderBy(PARTITION_COLUMN)

    def matrices():  # type: ignore[no-untyped-def]
        for row in result.toLocalIterator():
            # Plain to_pandas: the frame's own pandas metadata restores its dtypes (bool stays bool).
            frame = pa.ipc.open_stream(bytes(row["matrix"])).read_all().to_pandas()
            yield FeatureMatrix(frame=frame, metadata=json.loads(row["metadata"]))

    return _write_parts(matrices(), partitions, out, grid_dates, with_labels, extra_metadata, started_all)


def _events_file(folder: str, partition: int, schema: bytes) -> pd.DataFrame:
    """One partition's accepted events from the streamed contract's file (StreamedData.events_of)."""
    from earlysignal.contract.streaming import read_events_part

    return read_events_part(folder, partition, pa.ipc.read_schema(pa.py_buffer(schema)))


def _table_file(folder: str, name: str, partition: int) -> pd.DataFrame:
    """One partition's residents, spells or outcomes from the streamed contract's files (StreamedData)."""
    from earlysignal.contract.streaming import ROW_COLUMN, read_table_part

    return read_table_part(folder, name, partition).drop(columns=ROW_COLUMN)


def _no_rows() -> pd.DataFrame:
    return pd.DataFrame({
        PARTITION_COLUMN: pd.Series([], dtype="int64"),
        "matrix": pd.Series([], dtype=object),
        "metadata": pd.Series([], dtype=object),
    })


def _restore_dtypes(frame: pd.DataFrame, dtypes: dict[str, str]) -> pd.DataFrame:
    """Columns back in the contract's dtypes (Spark hands strings back as object, timestamps as ns)."""
    for column, dtype in dtypes.items():
        if column in frame.columns and str(frame[column].dtype) != dtype:
            frame[column] = frame[column].astype(dtype)
    return frame


def build_partitioned_feature_matrix_from_folder_on_spark(
    config: Any,
    data_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    session: Any,
    *,
    partitions: int | None = None,
    as_of_dates: Sequence[dt.date] | None = None,
    with_labels: bool = True,
    extra_metadata: dict[str, Any] | None = None,
    write_quarantine: bool = True,
    batch_rows: int = 1_000_000,
) -> dict[str, Any]:
    """Validate the borough folder `data_dir` with every table written per partition (contract/streaming.py),
    then build each partition in a Spark task through applyInPandas (build_partitioned_feature_matrix_on_spark)
    into the folder `out`; the same part files and sidecar as the single-machine build, value for value.

    The per-partition files wait in a temporary folder beside `out` (it must be on storage the executors
    can read: local disk in local mode, a shared mount on a cluster), removed at the end. Raises
    ContractError for unusable files, UnusableDataError when too much is quarantined."""
    out = Path(out)
    grid_dates = list(as_of_dates) if as_of_dates is not None else list(config.as_of_dates())
    with loaded_per_partition(config, data_dir, out, grid_dates, partitions, write_quarantine, batch_rows) as data:
        return build_partitioned_feature_matrix_on_spark(
            config, data, out, session, as_of_dates=grid_dates, with_labels=with_labels,
            extra_metadata={"spark_tasks": True, **(extra_metadata or {})},
        )
