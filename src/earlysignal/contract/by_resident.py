"""Check the residents and residency tables a bucket of residents at a time, so that neither is held whole.

Every check on these two tables compares rows of one resident only (a repeated resident_id, a duplicate
spell, overlapping spells, a spell whose resident was not accepted). So the rows are first split by a hash
of their (typed) resident_id into buckets of about `batch_rows` rows, written to disk as read (with their file
row number); then each bucket is checked on its own with the same check functions `validate_directory`
uses, residents before residency, a residency bucket's resident references looked up among the same
bucket's residents (a resident's spells and record always share a bucket). Counts, reasons, the quarantine
file (rows in file order) and the report are the whole-table validation's; the accepted rows of each
bucket go back to disk, with their file row number so that file order can be restored.

What stays in memory between buckets: the accepted and seen resident and address IDs (Arrow arrays, which
the events' and outcomes' reference checks need), and the quarantined people (few).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from earlysignal.atomic import atomic_path
from earlysignal.contract.batches import BatchTally
from earlysignal.contract.checks import CHECKS, _Reasons
from earlysignal.contract.reading import decoded, table_path, type_table
from earlysignal.contract.schemas import QUARANTINE_DIR, REASON_COLUMN, ROW_NUMBER_COLUMN
from earlysignal.contract.validate import _quarantined_people, _TableResult, reconcile_counts
from earlysignal.errors import ContractError

FILE_ROW = "_es_file_row"
BUCKET_RAW = "{name}-raw-{bucket:05d}.arrows"
BUCKET_ACCEPTED = "{name}-accepted-{bucket:05d}.arrows"


@dataclasses.dataclass
class BucketedTables:
    """Where the accepted rows of residents and residency are (one Arrow stream per bucket, FILE_ROW last)."""

    folder: Path
    buckets: int
    residents: _TableResult
    residency: _TableResult

    def accepted(self, name: str, bucket: int, columns: list[str] | None = None) -> pa.Table:
        """One bucket's accepted rows of `name` (typed, in file order, FILE_ROW last); `columns` only if given."""
        path = self.folder / BUCKET_ACCEPTED.format(name=name, bucket=bucket)
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_stream(source).read_all()
        return table.select(columns + [FILE_ROW]) if columns is not None else table


def can_bucket(data_dir: Path) -> bool:
    """True when residents and residency are non-empty Parquet files (a CSV is read whole instead)."""
    for name in ("residents", "residency"):
        path = table_path(data_dir, name)
        if path.suffix != ".parquet" or not path.exists() or path.stat().st_size == 0:
            return False
        try:
            if pq.ParquetFile(path).metadata.num_rows == 0:
                return False
        except (pa.ArrowException, OSError) as error:
            raise ContractError(f"{path.name} cannot be read as Parquet: {error}") from None
    return True


def validate_by_resident(setup: Any, folder: Path, write_quarantine: bool, batch_rows: int) -> BucketedTables:
    """Validate residents then residency bucket by bucket into `folder` (which must exist); sets the shared
    context's accepted and seen resident and address IDs as the whole-table validation does.

    Raises ContractError as validate_directory does (an unreadable file, a column none of whose values parse)."""
    rows = max(pq.ParquetFile(table_path(setup.data_dir, n)).metadata.num_rows for n in ("residents", "residency"))
    buckets = max(1, math.ceil(rows / batch_rows))
    context = setup.context
    bucket_seen: list[pa.Array] = []
    bucket_accepted: list[pa.Array] = []

    def remember_residents(bucket: int, typed: pa.Table, accepted: pa.Table) -> None:
        bucket_seen.append(pc.unique(typed.column("resident_id").drop_null()))
        bucket_accepted.append(pc.unique(accepted.column("resident_id").drop_null()))

    residents = _validate_table("residents", setup, folder, buckets, batch_rows, write_quarantine, remember_residents)
    seen_addresses: list[pa.Array] = []
    accepted_addresses: list[pa.Array] = []

    def before_residency(bucket: int) -> None:
        # A spell's resident is in the same bucket: look it up among that bucket's residents only.
        context.seen_residents, context.accepted_residents = bucket_seen[bucket], bucket_accepted[bucket]

    def remember_residency(bucket: int, typed: pa.Table, accepted: pa.Table) -> None:
        seen_addresses.append(pc.unique(typed.column("address_id").drop_null()))
        accepted_addresses.append(pc.unique(accepted.column("address_id").drop_null()))

    try:
        residency = _validate_table(
            "residency", setup, folder, buckets, batch_rows, write_quarantine, remember_residency, before_residency
        )
    finally:
        # Joined only now, so the residents' IDs are not held twice while residency is checked.
        context.seen_residents = _concat(bucket_seen)
        del bucket_seen[:]
        context.accepted_residents = _concat(bucket_accepted)
        del bucket_accepted[:]
    context.seen_addresses = pc.unique(_concat(seen_addresses))
    context.accepted_addresses = pc.unique(_concat(accepted_addresses))
    return BucketedTables(folder, buckets, residents, residency)


def _concat(arrays: list[pa.Array]) -> pa.Array:
    arrays = [a for a in arrays if len(a)]
    return pa.concat_arrays(arrays) if arrays else pa.array([], pa.string())


def _bucket_of(ids: pa.ChunkedArray, buckets: int) -> np.ndarray:
    """Bucket of each typed resident_id (null: bucket 0); the same id gives the same bucket in every table."""
    values = pc.fill_null(ids, "").to_numpy(zero_copy_only=False)
    return (pd.util.hash_array(values) % np.uint64(buckets)).astype(np.int64)


class _StreamWriters:
    """One Arrow IPC stream per bucket under `folder`, opened on its first rows (streams allow a column's
    dictionary to change from one batch to the next, as Parquet batches' do)."""

    def __init__(self, folder: Path, pattern: str, name: str) -> None:
        self.folder, self.pattern, self.name = folder, pattern, name
        self.writers: dict[int, Any] = {}

    def write(self, bucket: int, table: pa.Table) -> None:
        writer = self.writers.get(bucket)
        if writer is None:
            path = self.folder / self.pattern.format(name=self.name, bucket=bucket)
            writer = pa.ipc.new_stream(str(path), table.schema)
            self.writers[bucket] = writer
        writer.write_table(table)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


def _split(setup: Any, name: str, folder: Path, buckets: int, batch_rows: int) -> tuple[list[str], tuple[str, ...]]:
    """Write the file's contract columns, as read, into bucket streams; returns the typing's warnings and
    dropped columns (the same for every batch: they are about the file's columns)."""
    from earlysignal.contract.streaming import open_in_batches

    path = table_path(setup.data_dir, name)
    columns = setup.schemas[name]
    file = open_in_batches(path, columns)
    writers = _StreamWriters(folder, BUCKET_RAW, name)
    warnings: list[str] = []
    dropped: tuple[str, ...] = ()
    offset = 0
    try:
        for batch in file.iter_batches(batch_size=batch_rows):
            table = type_table(pa.Table.from_batches([batch]), path, columns, setup.tokens, setup.codes.get(name), False)
            if offset == 0:
                warnings, dropped = list(table.warnings), table.dropped
            bucket = _bucket_of(table.typed.column("resident_id"), buckets)
            raw = table.raw.append_column(FILE_ROW, pa.array(np.arange(offset, offset + batch.num_rows, dtype=np.int64)))
            order = np.argsort(bucket, kind="stable")
            bounds = np.searchsorted(bucket[order], np.arange(buckets + 1))
            for b in range(buckets):
                if bounds[b + 1] > bounds[b]:
                    writers.write(b, raw.take(pa.array(order[bounds[b]:bounds[b + 1]])))
            offset += batch.num_rows
            del batch, table, raw
    finally:
        writers.close()
    return warnings, dropped


def _validate_table(
    name: str,
    setup: Any,
    folder: Path,
    buckets: int,
    batch_rows: int,
    write_quarantine: bool,
    remember: Any,
    before: Any = None,
) -> _TableResult:
    path = table_path(setup.data_dir, name)
    columns = setup.schemas[name]
    warnings, dropped = _split(setup, name, folder, buckets, batch_rows)
    accepted_writers = _StreamWriters(folder, BUCKET_ACCEPTED, name)
    tally = BatchTally(name)
    bad_rows: list[pa.Table] = []
    people: list[pd.DataFrame] = []
    schema: pa.Schema | None = None
    try:
        for bucket in range(buckets):
            source = folder / BUCKET_RAW.format(name=name, bucket=bucket)
            if not source.exists():
                continue
            with pa.memory_map(str(source)) as stream:
                raw = pa.ipc.open_stream(stream).read_all()
            source.unlink()
            file_rows = raw.column(FILE_ROW).to_numpy()
            raw = raw.drop_columns([FILE_ROW])
            table = type_table(raw, path, columns, setup.tokens, setup.codes.get(name), False)
            typed = table.typed
            reasons = _Reasons(typed.num_rows, name)
            tally.flag_unparseable(table, reasons, file_rows)
            if before is not None:
                before(bucket)
            CHECKS[name](typed, reasons, setup.context)
            ok = reasons.ok()
            accepted = typed if ok.all() else typed.filter(pa.array(ok))
            tally.add(table, reasons, accepted.num_rows)
            remember(bucket, typed, accepted)
            if not ok.all():
                people.append(_quarantined_people(name, typed, reasons))
                if write_quarantine:
                    rows = np.flatnonzero(~ok)
                    bad = decoded(raw.take(pa.array(rows)))
                    bad = bad.append_column(ROW_NUMBER_COLUMN, pa.array(file_rows[rows] + 1, pa.int64()))
                    bad_rows.append(bad.append_column(REASON_COLUMN, reasons.reason_array(~ok)))
            accepted = decoded(accepted).append_column(FILE_ROW, pa.array(file_rows[ok], pa.int64()))
            schema = schema or accepted.schema
            if accepted.num_rows:
                accepted_writers.write(bucket, accepted)
            del raw, table, typed, reasons, accepted
    finally:
        accepted_writers.close()
    tally.refuse_unreadable(path, columns)
    # Buckets with no accepted row still get an (empty) stream, so every bucket can be read back.
    write_empty_streams(
        folder, [BUCKET_ACCEPTED.format(name=name, bucket=b) for b in range(buckets)],
        schema or _empty_typed(setup, name).schema,
    )
    quarantine_file = _write_quarantine(setup.data_dir, name, bad_rows, write_quarantine, tally.quarantined)
    return tally.result(path, columns, dropped, warnings, quarantine_file, _people(name, people))


def write_empty_streams(folder: Path, names: list[str], schema: pa.Schema) -> None:
    """An empty Arrow IPC stream with `schema` for each of `names` under `folder` that does not exist yet."""
    for file_name in names:
        target = folder / file_name
        if not target.exists():
            with pa.ipc.new_stream(str(target), schema):
                pass


def _empty_typed(setup: Any, name: str) -> pa.Table:
    from earlysignal.contract.reading import _arrow_type

    table = pa.table({c.name: pa.array([], _arrow_type(c.kind)) for c in setup.schemas[name]})
    return table.append_column(FILE_ROW, pa.array([], pa.int64()))


def _people(name: str, parts: list[pd.DataFrame]) -> pd.DataFrame | None:
    if not parts:
        return None
    frame = pd.concat(parts, ignore_index=True)
    return frame.drop_duplicates("resident_id") if name == "residents" else frame


def _write_quarantine(
    data_dir: Path, name: str, bad_rows: list[pa.Table], write_quarantine: bool, quarantined: int
) -> Path | None:
    """The quarantined rows of every bucket as one file, in file order (as the whole-table validation writes)."""
    target = data_dir / QUARANTINE_DIR / f"{name}.parquet"
    if not write_quarantine:
        return None
    try:
        if not quarantined:
            if target.exists():
                # A stale file from an earlier run would report problems this data no longer has.
                target.unlink()
            return None
        bad = pa.concat_tables(bad_rows)
        bad = bad.take(pc.sort_indices(bad.column(ROW_NUMBER_COLUMN)))
        reconcile_counts(name, read=quarantined, accepted=0, quarantined=bad.num_rows)
        with atomic_path(target) as tmp:
            pq.write_table(bad, tmp, compression="zstd")
    except OSError as error:
        raise ContractError(
            f"cannot write quarantine file {target}: {error}; "
            "fix the folder's permissions or validate without writing quarantine files"
        ) from None
    return target
