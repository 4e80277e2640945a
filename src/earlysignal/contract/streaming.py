"""Validate a borough folder without holding its tables in memory, and hand them out per partition.

The contract's checks are the same as `validate_directory`'s and so are the counts, the quarantine files and
the report; what differs is how the tables are held. In order:

1. one DuckDB pass over events.parquet (by far the largest table: ~42 rows per resident here) finds the rows
   whose event_id's 64-bit hash occurs more than once (the copies of an event_id can sit anywhere in the
   file; rows that only share a hash are cleared by the exact check); it runs first, while nothing else is
   held, with DuckDB's memory limit set to what `build.memory_budget_gb` leaves (spilling to disk beyond it);
2. residents and residency are checked a bucket of residents at a time (contract/by_resident.py), and
   `assign(residents, residency)` gives every accepted resident a partition from their keys coded as
   integers (features/partition.py keeps households and addresses whole);
3. events.parquet is read in batches of `batch_rows` file rows (without pre-buffering, which would keep
   every row group read): each batch is typed and checked (its duplicate flags come from step 1), its
   quarantined rows are appended to the quarantine file and its accepted rows to the Arrow IPC stream (zstd)
   of every partition they belong to (their resident's, and their address's: an event at an address is read
   by everyone who lived there); a stream writer keeps nothing per batch, so the open writers hold the same
   memory after the last batch as after the first;
4. `StreamedData.events_of(p)` reads one partition's file: the accepted events of those residents and
   addresses, in file order, with the dtypes `load_linked_data` gives.

Residents, residency and outcomes are not held either once they are checked: as soon as partitions are
assigned, each table's accepted rows are written one Arrow IPC file per partition (with their position in
the accepted table, so the whole table can be put back in order) and dropped; `StreamedData.residents_of(p)`
(and residency_of, outcomes_of) read one partition's. What stays in memory for the rest of the load is
compact but grows with the population: one index per ID kind (`_Router`: every resident and address ever
seen, once, in the order of their 64-bit hashes, with the hash and an int32 code: the partition, or "seen,
not accepted"), which routes rows and answers the events' and outcomes' reference checks. Peak memory is
then the larger of the duplicate pass (bounded by the budget) and that index plus one batch of events.
A CSV events file is read whole (Arrow's CSV reader cannot give file row numbers batch by batch); use
Parquet at scale.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from earlysignal.atomic import atomic_path
from earlysignal.config import ProjectConfig
from earlysignal.contract.batches import BatchTally
from earlysignal.contract.checks import CHECKS, _flag_duplicates, _Reasons
from earlysignal.contract.heap import resident_bytes
from earlysignal.contract.reading import (
    _is_text,
    decoded,
    table_path,
    to_pandas,
    type_table,
)
from earlysignal.contract.results import TableCounts, ValidationReport
from earlysignal.contract.schemas import QUARANTINE_DIR, REASON_COLUMN, ROW_NUMBER_COLUMN
from earlysignal.contract.validate import (
    _collect,
    _infinite_sum_error,
    _people_frame,
    _report,
    _setup,
    _TableResult,
    _validate_whole_table,
    reconcile_counts,
)
from earlysignal.errors import ContractError

# One partition's accepted events, an Arrow IPC stream (zstd): a stream writer keeps nothing per batch
# written, where a Parquet writer keeps every row group's metadata until it closes (partitions x batches).
EVENTS_PART = "events-{:05d}.arrows"
EVENTS_COMPRESSION = pa.ipc.IpcWriteOptions(compression="zstd")
# One partition's accepted rows of a smaller table (residents, residency, outcomes), Arrow IPC.
TABLE_PART = "{name}-{partition:05d}.arrows"
# A row's place in file order (its file row, or its position among the accepted rows), kept in the
# partition files to restore file order.
ROW_COLUMN = "_es_accepted_row"


@dataclasses.dataclass
class StreamedData:
    """The validation report and every table's accepted rows written per partition under `events_dir`:
    events_of(p), residents_of(p), residency_of(p) and outcomes_of(p) read one partition's, in file order.
    The `residents`, `residency` and `outcomes` properties read a whole table back (as LinkedData holds
    it, same rows, order and dtypes): for small boroughs and tests, not for bounded-memory builds."""

    manifest: dict[str, Any]
    extract_date: dt.date
    data_dir: Path
    report: ValidationReport
    quarantined_residents: pd.DataFrame | None
    events_dir: Path
    resident_partition: np.ndarray  # [accepted residents] partition of each, in the accepted table's order
    partitions: int
    events_schema: pa.Schema
    # The sources of the accepted events (what LinkedData.events["source"] holds), without reading them back.
    event_sources: frozenset[str] = frozenset()

    def events_of(self, partition: int) -> pd.DataFrame:
        """The accepted events of one partition's residents and addresses, in file order."""
        return read_events_part(self.events_dir, partition, self.events_schema)

    def residents_of(self, partition: int) -> pd.DataFrame:
        """The accepted residents of one partition, in file order."""
        return self._part("residents", partition).drop(columns=ROW_COLUMN)

    def residency_of(self, partition: int) -> pd.DataFrame:
        """The accepted residency spells of one partition's residents, in file order."""
        return self._part("residency", partition).drop(columns=ROW_COLUMN)

    def outcomes_of(self, partition: int) -> pd.DataFrame:
        """The accepted outcomes of one partition's residents, in file order."""
        return self._part("outcomes", partition).drop(columns=ROW_COLUMN)

    @property
    def residents(self) -> pd.DataFrame:
        """Every accepted resident (read back from all partitions' files)."""
        return self._whole("residents")

    @property
    def residency(self) -> pd.DataFrame:
        """Every accepted residency spell (read back from all partitions' files)."""
        return self._whole("residency")

    @property
    def outcomes(self) -> pd.DataFrame:
        """Every accepted outcome (read back from all partitions' files)."""
        return self._whole("outcomes")

    def _part(self, name: str, partition: int) -> pd.DataFrame:
        return read_table_part(self.events_dir, name, partition)

    def _whole(self, name: str) -> pd.DataFrame:
        # Rows of no partition (a spell or outcome of a resident not accepted) are in partition -1's file.
        parts = [self._part(name, p) for p in range(-1, self.partitions)]
        frame = pd.concat(parts, ignore_index=True).sort_values(ROW_COLUMN, kind="stable")
        return frame.drop(columns=ROW_COLUMN).reset_index(drop=True)


def read_events_part(folder: str | os.PathLike[str], partition: int, schema: pa.Schema) -> pd.DataFrame:
    """One partition's accepted events from the folder load_partitioned_data wrote, in file order, with the
    dtypes load_linked_data gives (no rows, with `schema`'s columns, for a partition without events)."""
    path = Path(folder) / EVENTS_PART.format(partition)
    if not path.exists():
        return to_pandas(schema.empty_table())
    with pa.OSFile(str(path)) as source:
        return to_pandas(pa.ipc.open_stream(source).read_all())


def iter_events_part(
    folder: str | os.PathLike[str], partition: int, columns: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """One partition's accepted events from the folder load_partitioned_data wrote, one piece at a time (each
    at most one input batch of rows), `columns` only, in file order, with load_linked_data's dtypes: for a
    pass over the events that holds one batch, however large the partition."""
    path = Path(folder) / EVENTS_PART.format(partition)
    if not path.exists():
        return
    with pa.OSFile(str(path)) as source:
        for batch in pa.ipc.open_stream(source):
            table = pa.Table.from_batches([batch])
            yield to_pandas(table.select(columns) if columns is not None else table)


def read_table_part(folder: str | os.PathLike[str], name: str, partition: int) -> pd.DataFrame:
    """One partition's accepted rows of `name` (residents, residency or outcomes) from the folder
    load_partitioned_data wrote, in file order, with ROW_COLUMN (their place in file order) last."""
    with pa.memory_map(str(Path(folder) / TABLE_PART.format(name=name, partition=partition))) as source:
        table = pa.ipc.open_stream(source).read_all()
    # Residents and spells arrive bucket by bucket: back into file order.
    return to_pandas(table.take(pc.sort_indices(table.column(ROW_COLUMN))))


def load_partitioned_data(
    data_dir: str | os.PathLike[str],
    config: ProjectConfig | None,
    work_dir: str | os.PathLike[str],
    assign: Callable[[pd.DataFrame, pd.DataFrame], tuple[np.ndarray, int]],
    write_quarantine: bool = True,
    batch_rows: int = 1_000_000,
) -> StreamedData:
    """Validate `data_dir` like `load_linked_data` with every table read `batch_rows` rows at a time (residents
    and residency in buckets of residents, contract/by_resident.py; events in file batches), and write each
    table's accepted rows per partition into `work_dir` (which must exist; the caller removes it).

    `assign(residents, residency)` gets the key columns only, coded as integers (residents: resident_id
    0..R-1 in file order; residency: resident_id, household_id, address_id codes) and returns ([R] partition
    per accepted resident, partition count). Raises ContractError for an unusable file, as
    validate_directory does."""
    from earlysignal.contract.by_resident import can_bucket, validate_by_resident
    from earlysignal.contract.heap import map_large_blocks

    map_large_blocks()  # each batch's arrays go back to the system when freed (contract/heap.py)
    setup = _setup(data_dir, config)
    work_dir = Path(work_dir)
    files: dict[str, Path] = {}
    counts: dict[str, TableCounts] = {}
    checks: dict[str, dict[str, int]] = {}
    normalised: dict[str, dict[str, int]] = {}
    not_recorded: dict[str, dict[str, int]] = {}
    dropped: dict[str, tuple[str, ...]] = {}
    quarantine_files: dict[str, Path] = {}
    warnings: list[str] = []
    people: list[pd.DataFrame] = []

    def collect(result: _TableResult) -> None:
        _collect(result, files, counts, checks, normalised, not_recorded, dropped, quarantine_files, warnings)
        if result.people is not None:
            people.append(result.people)

    def whole(name: str) -> pd.DataFrame:
        result = _validate_whole_table(
            name, setup.data_dir, setup.schemas, setup.tokens, setup.codes.get(name), setup.context, write_quarantine
        )
        collect(result)
        frame, result.frame = result.frame, None
        return frame

    # The events' duplicate pass (DuckDB, within what the budget leaves) runs first, while nothing else is held.
    budget_gb = getattr(getattr(config, "build", None), "memory_budget_gb", None)
    duplicates = _early_duplicate_flags(setup, work_dir, budget_gb)
    if can_bucket(setup.data_dir):
        tables = validate_by_resident(setup, work_dir, write_quarantine, batch_rows)
        collect(tables.residents)
        collect(tables.residency)
    else:  # a CSV file: read whole, as validate_directory does, then handed on the same way
        tables = _one_bucket(work_dir, whole("residents"), whole("residency"))
    context = setup.context
    # The router (below) answers the reference checks from the seen IDs and the partitions: the accepted
    # ID arrays are not needed again, so they are not held while the keys are coded and partitions assigned.
    context.accepted_residents = context.accepted_addresses = pa.array([], pa.string())
    resident_ids, spells, addresses = _keys(tables)
    resident_partition, partitions = assign(
        pd.DataFrame({"resident_id": np.arange(len(resident_ids), dtype=np.int64)}), spells
    )
    resident_partition = np.asarray(resident_partition, dtype=np.int32)
    address_partition = np.full(len(addresses), -1, dtype=np.int32)
    # Partitions keep addresses whole, so every spell at an address names the same partition.
    address_partition[spells["address_id"].to_numpy()] = resident_partition[spells["resident_id"].to_numpy()]
    del spells
    router = _Router(
        context.seen_residents, resident_ids, resident_partition, context.seen_addresses, addresses, address_partition
    )
    # From here the router answers every reference check (events, outcomes): the ID arrays are not kept twice.
    del resident_ids, addresses, address_partition
    context.seen_residents = context.seen_addresses = pa.array([], pa.string())
    context.reference_lookups = router.references
    try:
        _split_buckets(work_dir, tables, router, partitions)
        result, schema = _stream_events(setup, router, partitions, work_dir, write_quarantine, batch_rows, duplicates)
        collect(result)
        outcomes = whole("outcomes")
        _write_table_parts(work_dir, "outcomes", outcomes, router.of_residents(outcomes["resident_id"]), partitions)
    finally:
        context.reference_lookups = None
    del outcomes, router
    report = _report(
        setup.data_dir, setup.extract_date, setup.manifest, files, counts, checks, quarantine_files, warnings,
        normalised, not_recorded, dropped, setup.schemas, setup.context,
    )
    return StreamedData(
        manifest=setup.manifest,
        extract_date=setup.extract_date,
        data_dir=setup.data_dir,
        report=report,
        quarantined_residents=_people_frame(people),
        events_dir=work_dir,
        resident_partition=resident_partition,
        partitions=partitions,
        events_schema=schema,
        event_sources=frozenset(context.event_sources),
    )


def _one_bucket(folder: Path, residents: pd.DataFrame, residency: pd.DataFrame) -> Any:
    """Tables validated whole, written as the single bucket by_resident's readers expect."""
    from earlysignal.contract.by_resident import BUCKET_ACCEPTED, FILE_ROW, BucketedTables

    for name, frame in (("residents", residents), ("residency", residency)):
        table = pa.Table.from_pandas(frame, preserve_index=False)
        table = table.append_column(FILE_ROW, pa.array(np.arange(table.num_rows, dtype=np.int64)))
        with pa.ipc.new_stream(str(folder / BUCKET_ACCEPTED.format(name=name, bucket=0)), table.schema) as writer:
            writer.write_table(table)
    return BucketedTables(folder, 1, None, None)  # type: ignore[arg-type]


def _keys(tables: Any) -> tuple[pa.Array, pd.DataFrame, pa.Array]:
    """(accepted resident IDs in file order, the accepted spells' keys coded as integers, the accepted
    address IDs in code order): all `assign` and the router need of the two tables. One text column is
    decoded at a time (the buckets are memory-mapped), so the peak is one column's IDs and its hash table."""
    from earlysignal.contract.by_resident import FILE_ROW

    def column(name: str, key: str) -> pa.ChunkedArray:
        chunks = [tables.accepted(name, b, [key]).column(0) for b in range(tables.buckets)]
        return pa.chunked_array([c for chunked in chunks for c in chunked.chunks], chunks[0].type).cast(pa.string())

    rows = pa.chunked_array(
        [c for b in range(tables.buckets) for c in tables.accepted("residents", b, []).column(FILE_ROW).chunks],
        pa.int64(),
    )
    resident_ids = column("residents", "resident_id").take(pc.sort_indices(rows)).combine_chunks()
    del rows

    def codes(key: str) -> tuple[np.ndarray, pa.Array]:
        encoded = pc.dictionary_encode(column("residency", key))
        chunks = encoded.chunks
        dictionary = chunks[-1].dictionary if chunks else pa.array([], pa.string())
        if any(not chunk.dictionary.equals(dictionary) for chunk in chunks[:-1]):  # not seen with Arrow 25
            encoded = pc.dictionary_encode(column("residency", key).combine_chunks())
            chunks, dictionary = [encoded], encoded.dictionary
        indices = [chunk.indices.to_numpy(zero_copy_only=False) for chunk in chunks]
        return (np.concatenate(indices) if indices else np.zeros(0)).astype(np.int64), dictionary

    # Each spell's resident as its position in resident_ids (an index on hashes: a hash table of millions
    # of IDs, as pc.index_in builds, holds ~80 bytes per ID).
    spell_resident = _IdIndex(resident_ids, code=None).codes_of(column("residency", "resident_id"))
    households, _ = codes("household_id")
    addresses, address_ids = codes("address_id")
    spells = pd.DataFrame({
        # Accepted spells always have an accepted resident (the reference check); -1 guards the impossible.
        "resident_id": spell_resident.astype(np.int64),
        "household_id": households,
        "address_id": addresses,
    })
    spells = spells[spells["resident_id"] >= 0].reset_index(drop=True)
    return resident_ids, spells, address_ids


def _split_buckets(folder: Path, tables: Any, router: _Router, partitions: int) -> None:
    """Each bucket's accepted residents and spells appended to their partition's stream, then the buckets
    removed; partitions with none get an empty stream."""
    from earlysignal.contract.by_resident import BUCKET_ACCEPTED, FILE_ROW, write_empty_streams

    for name in ("residents", "residency"):
        writers: dict[int, Any] = {}
        schema: pa.Schema | None = None
        try:
            for bucket in range(tables.buckets):
                table = tables.accepted(name, bucket)
                (folder / BUCKET_ACCEPTED.format(name=name, bucket=bucket)).unlink()
                table = table.rename_columns([ROW_COLUMN if c == FILE_ROW else c for c in table.column_names])
                schema = schema or table.schema
                partition = router.of_residents(table.column("resident_id"))
                order = np.argsort(partition, kind="stable")
                bounds = np.searchsorted(partition[order], np.arange(-1, partitions + 1))
                for part, lo, hi in zip(range(-1, partitions), bounds[:-1], bounds[1:]):
                    if hi > lo:
                        if part not in writers:
                            path = folder / TABLE_PART.format(name=name, partition=part)
                            writers[part] = pa.ipc.new_stream(str(path), table.schema)
                        writers[part].write_table(table.take(pa.array(order[lo:hi])))
                del table
        finally:
            for writer in writers.values():
                writer.close()
        assert schema is not None
        write_empty_streams(
            folder, [TABLE_PART.format(name=name, partition=p) for p in range(-1, partitions)], schema
        )


def _write_table_parts(
    folder: Path, name: str, frame: pd.DataFrame, partition: np.ndarray, partitions: int
) -> None:
    """Write `frame`'s rows (partition[i] for row i; -1: no partition's) as one Arrow IPC stream per partition
    -1 .. partitions-1 under `folder`, each in file order with the row's position in ROW_COLUMN."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.append_column(ROW_COLUMN, pa.array(np.arange(table.num_rows, dtype=np.int64)))
    del frame
    order = np.argsort(partition, kind="stable")
    bounds = np.searchsorted(partition[order], np.arange(-1, partitions + 1))
    for part, lo, hi in zip(range(-1, partitions), bounds[:-1], bounds[1:]):
        piece = table.take(pa.array(order[lo:hi]))
        with pa.ipc.new_stream(str(folder / TABLE_PART.format(name=name, partition=part)), piece.schema) as writer:
            writer.write_table(piece)


def _hashes(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A 64-bit hash per value (DuckDB's, fast and deterministic; a null gets a hash too, never matched)."""
    connection = duckdb.connect()
    try:
        connection.register("ids", pa.table({"id": values}))
        return connection.execute("SELECT hash(id) AS h FROM ids").fetchnumpy()["h"]
    finally:
        connection.close()


class _IdIndex:
    """A code per distinct ID (int32, e.g. a partition), looked up by binary search on the IDs' sorted 64-bit
    hashes and an exact comparison of the ID found, so a value that only shares a hash with an ID is not
    taken for it. Holds one copy of the IDs (in hash order), their hashes and codes: 8 + 4 bytes per ID
    beside the text, built once; a hash table rebuilt for every batch would cost batches x IDs. Falls back to
    Arrow's exact lookup if two of the IDs share a hash."""

    def __init__(self, ids: pa.Array, code: int | None = -1) -> None:
        """`ids` distinct, without nulls; every code set to `code` (None: each ID's position in `ids`)."""
        ids = ids.cast(pa.string())
        hashes = _hashes(ids)
        order = np.argsort(hashes, kind="stable")
        self.sorted = hashes[order]
        del hashes
        self.ids = ids.take(pa.array(order)) if len(ids) else ids
        if code is None:
            self.codes = order.astype(np.int32)
        else:
            self.codes = np.full(len(self.ids), code, dtype=np.int32)
        del order
        self.exact_only = bool(np.any(self.sorted[1:] == self.sorted[:-1]))

    def __len__(self) -> int:
        return len(self.ids)

    def positions(self, values: Any) -> np.ndarray:
        """[len(values)] int64 position of each value among the index's IDs (pandas or Arrow text), -1 where
        absent (and for nulls)."""
        if isinstance(values, pd.Series):
            values = pa.array(values.to_numpy(dtype=object), pa.string(), from_pandas=True)
        values = values.cast(pa.string())
        if self.exact_only or len(self.ids) == 0:
            return pc.fill_null(pc.index_in(values, value_set=self.ids), -1).to_numpy().astype(np.int64)
        hashes = _hashes(values)
        at = np.minimum(np.searchsorted(self.sorted, hashes), len(self.sorted) - 1)
        same = self.sorted[at] == hashes
        del hashes
        # Only the hash matches are compared as text (nearly every value, but a single take of them).
        rows = np.flatnonzero(same)
        if rows.size:
            values = values.take(pa.array(rows)) if rows.size < len(values) else values
            equal = pc.equal(self.ids.take(pa.array(at[rows])), values)
            same[rows] = pc.fill_null(equal, False).to_numpy(zero_copy_only=False)
        return np.where(same, at, -1)

    def codes_of(self, values: Any, absent: int = -1) -> np.ndarray:
        """[len(values)] int32 code of each value, `absent` where it is not an ID of the index (or null)."""
        position = self.positions(values)
        if len(self.codes) == 0:
            return np.full(len(position), absent, dtype=np.int32)
        return np.where(position >= 0, self.codes[np.maximum(position, 0)], absent).astype(np.int32)

    def set_codes(self, ids: pa.Array, codes: np.ndarray) -> None:
        """Give each of `ids` (all in the index) its code. Raises ValueError for an ID not in the index."""
        position = self.positions(ids)
        if np.any(position < 0):
            raise ValueError(f"{int(np.sum(position < 0))} IDs are not in the index")
        self.codes[position] = codes


# An ID code: a partition (0, 1, ...) for an accepted ID; these for the others.
NOT_SEEN = -1  # never in the parent table (or null)
SEEN_NOT_ACCEPTED = -2  # in the parent table, every row of it quarantined
ACCEPTED_NO_PARTITION = -3  # accepted, in no partition (not expected: partitions hold every accepted ID)


class _Router:
    """Every resident and address ever seen with its partition (SEEN_NOT_ACCEPTED when none of its rows
    was accepted): routes an event, spell or outcome to partitions and answers the reference checks of
    events and outcomes (checks._reference_masks' answer), one _IdIndex per ID kind. Compact: a single copy
    of each kind's IDs, no per-ID Python object."""

    def __init__(
        self,
        seen_residents: pa.Array,
        resident_ids: pa.Array,
        resident_partition: np.ndarray,
        seen_addresses: pa.Array,
        addresses: pa.Array,
        address_partition: np.ndarray,
    ) -> None:
        self.residents = _IdIndex(seen_residents, SEEN_NOT_ACCEPTED)
        self.residents.set_codes(resident_ids, np.where(resident_partition >= 0, resident_partition, ACCEPTED_NO_PARTITION))
        self.addresses = _IdIndex(seen_addresses, SEEN_NOT_ACCEPTED)
        self.addresses.set_codes(addresses, np.where(address_partition >= 0, address_partition, ACCEPTED_NO_PARTITION))

    def of_residents(self, column: Any) -> np.ndarray:
        """Partition of each resident ID in `column` (pandas or Arrow; -1: not an accepted resident)."""
        return np.maximum(self.residents.codes_of(column), -1).astype(np.int64)

    def references(self, values: pa.ChunkedArray, what: str) -> tuple[np.ndarray, np.ndarray]:
        """(values whose parent rows were all quarantined, values never in the parent table) for `what`
        "resident" or "address"; nulls are in neither."""
        code = (self.residents if what == "resident" else self.addresses).codes_of(values, NOT_SEEN)
        return code == SEEN_NOT_ACCEPTED, (code == NOT_SEEN) & pc.is_valid(values).to_numpy(zero_copy_only=False)

    def rows_by_partition(self, table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """(partition, row) pairs, sorted by partition then row: an event goes to its resident's partition
        and to its address's when that is another one."""
        resident = self.of_residents(table.column("resident_id"))
        address = np.maximum(self.addresses.codes_of(table.column("address_id")), -1).astype(np.int64)
        rows = np.arange(table.num_rows)
        extra = (address >= 0) & (address != resident)
        parts = np.concatenate([resident[resident >= 0], address[extra]])
        rows = np.concatenate([rows[resident >= 0], rows[extra]])
        order = np.lexsort((rows, parts))
        return parts[order], rows[order]


# The duplicate pass groups events by a 64-bit hash of event_id (8 bytes a group, where the text is ~14 and
# more): rows whose hash occurs more than once are the candidates, a superset of the repeated event_ids
# that the exact check below narrows (a hash shared by two different event_ids flags neither).
DUPLICATE_KEY = "hash(event_id)"
# DuckDB's memory limit for the duplicate pass when no budget is set, and the least it is given.
DUPLICATE_PASS_DEFAULT_BYTES = 1024**3
DUPLICATE_PASS_MIN_BYTES = 128 * 1024**2
# What the duplicate pass holds beyond DuckDB's memory limit (the library, allocations outside its buffer
# manager, the Parquet reader's buffers; measured 0.05-0.1 GB), kept out of the budget it is given.
DUPLICATE_PASS_OVERHEAD_BYTES = 256 * 1024**2


def duplicate_pass_memory_limit(budget_gb: float | None, held_bytes: int) -> int:
    """Bytes of DuckDB memory for the events' duplicate pass: what `build.memory_budget_gb` (GiB) leaves
    after `held_bytes` (what the process holds already) and the pass's overhead outside DuckDB's limit, at
    least DUPLICATE_PASS_MIN_BYTES; DuckDB spills the rest of the grouping to disk. None: 1 GiB."""
    if budget_gb is None:
        return DUPLICATE_PASS_DEFAULT_BYTES
    left = int(budget_gb * 1024**3) - held_bytes - DUPLICATE_PASS_OVERHEAD_BYTES
    return max(DUPLICATE_PASS_MIN_BYTES, left)


def _duplicate_flags(
    path: Path, setup: Any, work_dir: Path, memory_limit: int = DUPLICATE_PASS_DEFAULT_BYTES
) -> tuple[np.ndarray, np.ndarray]:
    """(file rows, reason codes 1 = duplicate_row, 2 = duplicate_event_id) from the duplicate check run on
    every row whose event_id's hash occurs more than once in the file (the only rows the check can flag),
    found by DuckDB within `memory_limit` bytes (spilling to a folder under `work_dir` beyond it)."""
    connection = duckdb.connect(
        config={
            "memory_limit": f"{max(1, memory_limit // 1024**2)}MiB",
            "temp_directory": str(work_dir / "duckdb"),
            # The rows are sorted below: no need to keep the file's order while grouping.
            "preserve_insertion_order": False,
        }
    )
    try:
        candidates = connection.execute(
            f"SELECT file_row_number FROM read_parquet($path, file_row_number = true) "
            f"WHERE event_id IS NOT NULL AND {DUPLICATE_KEY} IN ("
            f"SELECT {DUPLICATE_KEY} FROM read_parquet($path) WHERE event_id IS NOT NULL "
            f"GROUP BY {DUPLICATE_KEY} HAVING count(*) > 1) ORDER BY file_row_number",
            {"path": str(path)},
        ).fetchnumpy()["file_row_number"].astype(np.int64)
    finally:
        connection.close()
    if candidates.size == 0:
        return candidates, np.zeros(0, dtype=np.uint8)
    columns = setup.schemas["events"]
    file = pq.ParquetFile(path, pre_buffer=False)
    pieces = []
    start = 0
    for group in range(file.metadata.num_row_groups):
        stop = start + file.metadata.row_group(group).num_rows
        inside = candidates[(candidates >= start) & (candidates < stop)]
        if inside.size:
            raw = _select_known(file.read_row_group(group), columns).take(pa.array(inside - start))
            pieces.append(decoded(type_table(raw, path, columns, setup.tokens, setup.codes["events"], False).typed))
        start = stop
    subset = pa.concat_tables(pieces)
    reasons = _Reasons(subset.num_rows, "events")
    _flag_duplicates(subset, reasons, "event_id", tuple(c.name for c in columns))
    code = np.zeros(subset.num_rows, dtype=np.uint8)
    for label, value in (("duplicate_row", 1), ("duplicate_event_id", 2)):
        if label in reasons.labels:
            code[reasons.codes == reasons.labels.index(label) + 1] = value
    keep = code > 0
    return candidates[keep], code[keep]


def _select_known(raw: pa.Table, columns: tuple[Any, ...]) -> pa.Table:
    known = {c.name for c in columns}
    return raw.select([c for c in raw.column_names if c in known])


def _early_duplicate_flags(
    setup: Any, work_dir: Path, budget_gb: float | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """_duplicate_flags of a non-empty Parquet events file, within what `budget_gb` (build.memory_budget_gb)
    leaves; None for a CSV or empty file (validated whole) and for one that cannot be read (refused where it
    is read, after the other tables, as before)."""
    path = table_path(setup.data_dir, "events")
    try:
        in_batches = path.suffix == ".parquet" and path.stat().st_size > 0 and pq.ParquetFile(path).metadata.num_rows > 0
    except (pa.ArrowException, OSError):
        return None
    if not in_batches:
        return None
    return _duplicate_flags(path, setup, work_dir, duplicate_pass_memory_limit(budget_gb, resident_bytes()))


def _stream_events(
    setup: Any,
    router: _Router,
    partitions: int,
    work_dir: Path,
    write_quarantine: bool,
    batch_rows: int,
    duplicates: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[_TableResult, pa.Schema]:
    """Check the events file batch by batch and write its accepted rows per partition; `duplicates` is
    _early_duplicate_flags' answer (None: the file is validated whole, then split)."""
    path = table_path(setup.data_dir, "events")
    columns = setup.schemas["events"]
    context = setup.context
    if duplicates is None:
        return _events_whole(setup, router, partitions, work_dir, write_quarantine)

    dup_rows, dup_codes = duplicates
    offset = 0

    def batch_duplicates(table: pa.Table, reasons: _Reasons) -> None:
        lo, hi = np.searchsorted(dup_rows, [offset, offset + table.num_rows])
        for label, value in (("duplicate_row", 1), ("duplicate_event_id", 2)):
            mask = np.zeros(table.num_rows, dtype=bool)
            mask[dup_rows[lo:hi][dup_codes[lo:hi] == value] - offset] = True
            reasons.flag(label, mask)

    context.event_duplicates = batch_duplicates
    writers = _PartWriters(work_dir)
    tally = BatchTally("events")
    written_quarantine = 0
    dropped: tuple[str, ...] = ()
    warnings: list[str] = []
    sources: set[str] = set()
    totals: pd.Series | None = None
    largest: list[pd.DataFrame] = []
    schema: pa.Schema | None = None
    target = setup.data_dir / QUARANTINE_DIR / "events.parquet"
    file = open_in_batches(path, columns)
    try:
        with contextlib.ExitStack() as stack:
            quarantine_writer: pq.ParquetWriter | None = None
            for batch in file.iter_batches(batch_size=batch_rows):
                table = type_table(
                    pa.Table.from_batches([batch]), path, columns, setup.tokens, setup.codes["events"], False
                )
                raw, typed = table.raw, table.typed
                if offset == 0:
                    warnings, dropped = list(table.warnings), table.dropped
                reasons = _Reasons(typed.num_rows, "events")
                tally.flag_unparseable(table, reasons, offset + np.arange(typed.num_rows))
                CHECKS["events"](typed, reasons, context)
                ok = reasons.ok()
                accepted = decoded(typed if ok.all() else typed.filter(pa.array(ok)))
                n_quarantined = reasons.count()
                tally.add(table, reasons, accepted.num_rows)
                if accepted.num_rows:
                    sources.update(str(s) for s in pc.unique(accepted.column("source").drop_null()).to_pylist())
                    batch_totals, batch_largest = _magnitudes(accepted, offset + np.flatnonzero(ok))
                    totals = batch_totals if totals is None else totals.add(batch_totals, fill_value=0.0)
                    largest.append(batch_largest)
                if write_quarantine and n_quarantined:
                    rows = np.flatnonzero(~ok)
                    bad = decoded(raw.take(pa.array(rows)))
                    bad = bad.append_column(ROW_NUMBER_COLUMN, pa.array(offset + rows + 1, pa.int64()))
                    bad = bad.append_column(REASON_COLUMN, reasons.reason_array(~ok))
                    if quarantine_writer is None:
                        tmp = stack.enter_context(atomic_path(target))
                        quarantine_writer = pq.ParquetWriter(tmp, bad.schema, compression="zstd")
                    quarantine_writer.write_table(bad)
                    written_quarantine += bad.num_rows
                schema = schema or accepted.schema
                parts, rows = router.rows_by_partition(accepted)
                writers.write(accepted, parts, rows)
                offset += raw.num_rows
                del batch, raw, table, typed, reasons, accepted
            if quarantine_writer is not None:
                quarantine_writer.close()  # before the ExitStack renames it onto the target
                reconcile_counts("events", read=tally.read, accepted=tally.accepted, quarantined=written_quarantine)
            elif write_quarantine and target.exists():
                # A stale file from an earlier run would report problems this data no longer has.
                target.unlink()
    except OSError as error:
        raise ContractError(
            f"cannot write quarantine file {target} or the events of a partition under {work_dir}: {error}; "
            "fix the folders' permissions or free disk space"
        ) from None
    finally:
        context.event_duplicates = None
        writers.close()
    tally.refuse_unreadable(path, columns)
    context.event_sources = sources
    if totals is not None:
        infinite = totals[~np.isfinite(totals.to_numpy())]
        if not infinite.empty:
            source, event_type = infinite.index[0]
            candidates = pd.concat(largest)
            candidates = candidates[(candidates["source"] == source) & (candidates["event_type"] == event_type)]
            rows = candidates.sort_values("magnitude", ascending=False, kind="stable")["row"].to_numpy()[:5]
            raise _infinite_sum_error(path, source, event_type, sorted(int(r) for r in rows))
    result = tally.result(
        path, columns, dropped, warnings, target if write_quarantine and written_quarantine else None
    )
    assert schema is not None
    return result, schema


def open_in_batches(path: Path, columns: tuple[Any, ...]) -> pq.ParquetFile:
    """`path` opened to be read batch by batch, few-valued text columns as dictionaries (as read_table reads
    them). Without pre-buffering: a pre-buffering reader keeps every row group's column chunks it has read
    until it is closed, so its memory grows with the file (measured: +0.13 GB over 10 of the 250k borough's
    11 row groups of events). Raises ContractError when the file cannot be read as Parquet."""
    try:
        return pq.ParquetFile(path, read_dictionary=_dictionary_columns(path, columns), pre_buffer=False)
    except (pa.ArrowException, OSError) as error:
        raise ContractError(f"{path.name} cannot be read as Parquet: {error}") from None


def _dictionary_columns(path: Path, columns: tuple[Any, ...]) -> list[str] | None:
    """Few-valued text columns, read as dictionaries (as read_table does)."""
    schema = pq.read_schema(path)
    names = [
        c.name for c in columns
        if c.few_values and c.name in schema.names and _is_text(schema.field(c.name).type)
    ]
    return names or None


def _magnitudes(accepted: pa.Table, file_rows: np.ndarray) -> tuple[pd.Series, pd.DataFrame]:
    """Sum of |value| per (source, event_type), and the five largest |value| rows of each (for the error)."""
    frame = pd.DataFrame(
        {
            "source": accepted.column("source").to_pandas().astype(str),
            "event_type": accepted.column("event_type").to_pandas().astype(str),
            "magnitude": np.abs(accepted.column("value").to_numpy(zero_copy_only=False).astype(np.float64)),
            "row": file_rows + 1,
        }
    )
    with np.errstate(over="ignore"):
        totals = frame.groupby(["source", "event_type"], sort=True)["magnitude"].sum()
    top = frame.sort_values("magnitude", ascending=False, kind="stable").groupby(["source", "event_type"]).head(5)
    return totals, top


class _PartWriters:
    """One Arrow IPC stream per partition under `folder`, opened on its first rows and appended batch by batch
    (what each holds does not grow with the batches written)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.writers: dict[int, Any] = {}

    def write(self, table: pa.Table, parts: np.ndarray, rows: np.ndarray) -> None:
        """Append table.take(rows[parts == p]) to partition p's file, for every p in parts (sorted)."""
        if parts.size == 0:
            return
        bounds = np.flatnonzero(np.r_[True, parts[1:] != parts[:-1], True])
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            part = int(parts[lo])
            piece = table.take(pa.array(rows[lo:hi]))
            writer = self.writers.get(part)
            if writer is None:
                path = str(self.folder / EVENTS_PART.format(part))
                writer = pa.ipc.new_stream(path, piece.schema, options=EVENTS_COMPRESSION)
                self.writers[part] = writer
            writer.write_table(piece)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


def _events_whole(
    setup: Any, router: _Router, partitions: int, work_dir: Path, write_quarantine: bool
) -> tuple[_TableResult, pa.Schema]:
    """A CSV (or empty) events file: validated whole as validate_directory does, then split per partition."""
    result = _validate_whole_table(
        "events", setup.data_dir, setup.schemas, setup.tokens, setup.codes.get("events"), setup.context, write_quarantine
    )
    accepted = pa.Table.from_pandas(result.frame, preserve_index=False)
    result.frame = None
    writers = _PartWriters(work_dir)
    try:
        parts, rows = router.rows_by_partition(accepted)
        writers.write(accepted, parts, rows)
    finally:
        writers.close()
    return result, accepted.schema
