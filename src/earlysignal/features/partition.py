"""Bounded-memory builds: split the population into partitions that keep every household and
address whole, build each partition's rows on its own and write them as partitioned Parquet.

A resident's features read their own events, their household's members' events at each as_of and
the events at their address. So a partition must hold, for every resident in it, everyone they
ever shared a household or an address with: the connected components of the graph whose nodes are
residents, households and addresses and whose edges are residency spells. Components are packed
into partitions (largest first, into the lightest partition), so the rows of each partition are
exactly the rows the whole-population build gives for those residents, value for value.

What bounds memory is the feature matrix and the per-as_of arrays the builder holds for a partition
(see `estimated_build_bytes`) and, with `build_partitioned_feature_matrix_from_folder`, the input: the
events (the bulk of it) are validated in batches, and every table's accepted rows are written per
partition and read back one partition at a time (contract/streaming.py); what stays whole is a compact
index of resident and address IDs, and the residents and residency tables while they are checked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from earlysignal.atomic import write_json
from earlysignal.errors import ConfigError, EarlySignalError
from earlysignal.features.matrix import FeatureMatrix, sidecar_path

_log = logging.getLogger(__name__)

# Bytes the builder holds per cohort row and feature: the float32 matrix, plus the Arrow copy
# made while writing the part file (zstd pages are small next to it).
BYTES_PER_CELL = 4 + 4
# Bytes per resident and as_of for the dense [R, J] residency arrays (household, address: int32;
# address_since: int64) and the membership rows the engine returns.
BYTES_PER_RESIDENT_AS_OF = 4 + 4 + 8 + 16
# Bytes per cohort row outside the matrix: keys, label, resident_id text, attribute text columns.
BYTES_PER_ROW = 200
PART_NAME = "part-{:05d}.parquet"
# Beside the matrix `<out>` while a partitioned build runs: its part files, and every table's accepted rows per
# partition. Removed when the build ends, however it ends short of SIGKILL; matrix.remove_stale_temporaries
# removes what a killed build left at the start of the next.
PARTS_TMP_SUFFIX = ".tmp"
EVENTS_TMP_SUFFIX = ".events.tmp"


@dataclasses.dataclass
class PartitionData:
    """The subset of a borough's accepted tables one partition needs (same attributes as LinkedData)."""

    residents: pd.DataFrame
    residency: pd.DataFrame
    events: pd.DataFrame
    outcomes: pd.DataFrame
    extract_date: dt.date
    fingerprint: str | None = None
    # The borough's manifest.json: its data start nulls windows that reach back before the records begin,
    # exactly as in a whole build (features/history.py).
    manifest: dict[str, Any] | None = None

    @classmethod
    def from_streamed(cls, data: Any, partition: int) -> PartitionData:
        """One partition's tables read back from a StreamedData (contract/streaming.py)."""
        return cls(
            residents=data.residents_of(partition),
            residency=data.residency_of(partition),
            events=data.events_of(partition),
            outcomes=data.outcomes_of(partition),
            extract_date=data.extract_date,
            manifest=data.manifest,
        )


def _key(column: pd.Series) -> pd.Series | np.ndarray:
    # Integer codes (what contract/streaming.py hands over) are used as they are: no text copy of millions.
    return column.to_numpy() if pd.api.types.is_integer_dtype(column.dtype) else column.astype("str")


def household_components(residents: pd.DataFrame, residency: pd.DataFrame) -> np.ndarray:
    """Component number per row of `residents` ([R] int64, numbered from 0): residents linked by any
    chain of shared households or addresses share a number; a resident with no spell is alone. The key
    columns may be text IDs or integer codes (the same kind in both tables)."""
    resident_keys = _key(residents["resident_id"])
    n = len(resident_keys)
    spell_keys = _key(residency["resident_id"])
    if isinstance(resident_keys, np.ndarray) and np.array_equal(resident_keys, np.arange(n)):
        # Codes 0..R-1 in order (contract/streaming.py): a spell's code is its resident's row.
        r = np.where((spell_keys >= 0) & (spell_keys < n), spell_keys, -1)
    else:
        r = pd.Index(resident_keys).get_indexer(spell_keys)
    del resident_keys, spell_keys
    spells = r >= 0  # spells of residents outside the table are not part of any build
    households = _dense(_key(residency["household_id"]), spells)
    addresses = _dense(_key(residency["address_id"]), spells)
    r = r[spells]
    n_households = int(households.max()) + 1 if households.size else 0
    n_addresses = int(addresses.max()) + 1 if addresses.size else 0
    size = n + n_households + n_addresses
    index = np.int32 if size < 2**31 and 2 * r.size < 2**31 else np.int64
    # The graph as CSR, built directly (each resident's row: their spells' household and address nodes):
    # a COO matrix would be copied into CSR with float64 weights on the way, on top of scipy's transpose.
    order = np.argsort(r, kind="stable")
    indices = np.empty(2 * r.size, dtype=index)
    indices[0::2] = n + households[order]
    indices[1::2] = n + n_households + addresses[order]
    del households, addresses, order
    indptr = np.empty(size + 1, dtype=index)
    indptr[0] = 0
    np.cumsum(2 * np.bincount(r, minlength=n), out=indptr[1 : n + 1])
    indptr[n + 1 :] = indptr[n]
    graph = csr_matrix((np.ones(indices.size, dtype=np.float64), indices, indptr), shape=(size, size))
    del indices, indptr
    _, labels = connected_components(graph, directed=False)
    del graph
    # Renumber in order of first appearance among residents, so numbering does not depend on scipy's.
    return pd.factorize(labels[:n])[0].astype(np.int64)


def _dense(keys: Any, rows: np.ndarray) -> np.ndarray:
    """Codes 0..K-1 of keys[rows]: integer codes as they are (gaps only add nodes without edges), text
    factorised."""
    keys = np.asarray(keys)[rows]
    if np.issubdtype(keys.dtype, np.integer) and (keys.size == 0 or keys.min() >= 0):
        return keys.astype(np.int64, copy=False)
    return pd.factorize(keys)[0]


def assign_partitions(components: np.ndarray, weights: np.ndarray, partitions: int) -> np.ndarray:
    """Partition number per row: whole components packed largest first into the lightest partition
    (ties: the lower number), so partitions are balanced by `weights` and the result is deterministic."""
    if partitions < 1:
        raise ConfigError(f"build.partitions must be at least 1, got {partitions}")
    n_components = int(components.max()) + 1 if components.size else 0
    component_weight = np.bincount(components, weights=weights, minlength=n_components)
    order = np.lexsort((np.arange(n_components), -component_weight))
    load = np.zeros(partitions)
    component_partition = np.zeros(n_components, dtype=np.int64)
    for component in order:
        target = int(np.argmin(load))
        component_partition[component] = target
        load[target] += component_weight[component]
    return component_partition[components]


def estimated_build_bytes(n_residents: int, n_as_of: int, n_features: int, cohort_share: float = 1.0) -> int:
    """Peak bytes the builder holds for `n_residents` over `n_as_of` dates and `n_features` columns,
    with `cohort_share` of resident x as_of pairs in the cohort (the input tables not counted)."""
    rows = n_residents * n_as_of * cohort_share
    return int(rows * (n_features * BYTES_PER_CELL + BYTES_PER_ROW) + n_residents * n_as_of * BYTES_PER_RESIDENT_AS_OF)


def partition_count(
    n_residents: int, n_as_of: int, n_features: int, budget_gb: float | None, cohort_share: float = 1.0
) -> int:
    """Partitions needed so each one's estimated build fits `budget_gb` (None: one partition)."""
    if budget_gb is None:
        return 1
    if budget_gb <= 0:
        raise ConfigError(f"build.memory_budget_gb must be positive, got {budget_gb}")
    needed = estimated_build_bytes(n_residents, n_as_of, n_features, cohort_share) / (budget_gb * 1024**3)
    return max(1, math.ceil(needed))


@dataclasses.dataclass
class PartitionIndex:
    """Partition number per row of each input table, worked out once per build (-1: no partition's)."""

    residents: np.ndarray
    residency: np.ndarray
    event_resident: np.ndarray  # the partition of the event's resident
    event_address: np.ndarray  # the partition of the event's address (every resident there is in it)
    outcomes: np.ndarray

    @classmethod
    def of(cls, data: Any, resident_partition: np.ndarray) -> PartitionIndex:
        """Index `data`'s tables by `resident_partition` ([R] partition per row of data.residents)."""
        ids = pd.Index(data.residents["resident_id"].astype("str"))

        def of_residents(column: pd.Series) -> np.ndarray:
            position = ids.get_indexer(column.astype("str"))
            return np.where(position >= 0, resident_partition[position], -1)

        spell = of_residents(data.residency["resident_id"])
        addresses = data.residency["address_id"].astype("str")
        known = spell >= 0
        # Components keep addresses whole, so every spell at an address names the same partition.
        address_partition = pd.Series(spell[known], index=addresses[known].to_numpy()).groupby(level=0).first()
        event_address = address_partition.reindex(data.events["address_id"].astype("str")).to_numpy()
        return cls(
            residents=resident_partition,
            residency=spell,
            event_resident=of_residents(data.events["resident_id"]),
            event_address=np.where(np.isnan(event_address), -1, event_address).astype(np.int64),
            outcomes=of_residents(data.outcomes["resident_id"]),
        )


def partition_data(data: Any, index: PartitionIndex, partition: int) -> PartitionData:
    """The residents of one partition with their spells and outcomes, and every event that is theirs
    or happened at one of their addresses (an event can belong to two partitions; each uses its side)."""
    events = (index.event_resident == partition) | (index.event_address == partition)
    return PartitionData(
        residents=data.residents[index.residents == partition],
        residency=data.residency[index.residency == partition],
        events=data.events[events],
        outcomes=data.outcomes[index.outcomes == partition],
        extract_date=data.extract_date,
        fingerprint=getattr(data, "fingerprint", None),
        manifest=getattr(data, "manifest", None),
    )


def build_partitioned_feature_matrix(
    config: Any,
    data: Any,
    out: str | os.PathLike[str],
    *,
    partitions: int | None = None,
    as_of_dates: Sequence[dt.date] | None = None,
    with_labels: bool = True,
    engine: Any = None,
    extra_metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the feature matrix partition by partition into the folder `out` (one Parquet part file per
    non-empty partition, rows sorted by (as_of, resident_id) within each) with a sidecar `out.json`;
    the folder is replaced only when every part is written. Returns the sidecar's metadata (with
    `extra_metadata` merged in).

    `partitions` overrides the count chosen from `build.memory_budget_gb`. Raises ConfigError for a
    count below 1."""
    started_all = time.perf_counter()
    out = Path(out)
    grid_dates = list(as_of_dates) if as_of_dates is not None else list(config.as_of_dates())
    partitions = _chosen_partitions(config, len(data.residents), grid_dates, partitions)
    components = household_components(data.residents, data.residency)
    resident_partition = assign_partitions(components, np.ones(components.size), partitions)
    index = PartitionIndex.of(data, resident_partition)
    subsets = (partition_data(data, index, partition) for partition in range(partitions))
    return _build_parts(
        config, subsets, partitions, out, grid_dates, with_labels, engine, extra_metadata, started_all
    )


def _chosen_partitions(config: Any, n_residents: int, grid_dates: Sequence[dt.date], partitions: int | None) -> int:
    from earlysignal.features.spec import feature_definitions

    if partitions is not None:
        return partitions
    build = getattr(config, "build", None)
    n_features = len(feature_definitions(config))
    return (build.partitions if build is not None else None) or partition_count(
        n_residents, len(grid_dates), n_features, build.memory_budget_gb if build is not None else None
    )


# Below about this budget the loading (libraries plus a batch of events), not the partitions, sets the peak:
# 0.58 GB at 20,000 residents, 0.67 GB at 120,000 (docs/performance.md).
LOADING_FLOOR_GB = 0.6


def partition_choice_words(config: Any, n_residents: int, n_as_of: int, chosen: int) -> str:
    """Why a build has `chosen` partitions, said before it starts: the fixed count, or the budget against the
    estimate for `n_residents` (residents ever) x `n_as_of` dates x the spec's features (docs/config.md)."""
    from earlysignal.features.spec import feature_definitions

    build = getattr(config, "build", None)
    if build is not None and build.partitions is not None:
        return f"Building in {chosen} partitions (build.partitions: {build.partitions})"
    budget = build.memory_budget_gb if build is not None else None
    if budget is None:
        return f"Building in {chosen} partition(s)"
    n_features = len(feature_definitions(config))
    estimate = estimated_build_bytes(n_residents, n_as_of, n_features) / 1024**3
    words = (
        f"Building in {chosen} partitions: the whole build is estimated at {estimate:,.2f} GB ({n_residents:,} "
        f"residents ever x {n_as_of} as_of dates x {n_features} features, docs/config.md), "
        f"build.memory_budget_gb is {budget}"
    )
    if budget < LOADING_FLOOR_GB:
        words += (f"; below about {LOADING_FLOOR_GB} GB the loading, not the partitions, sets the peak, so more "
                  "partitions cost time without lowering it")
    return words


def build_partitioned_feature_matrix_from_folder(
    config: Any,
    data_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    partitions: int | None = None,
    as_of_dates: Sequence[dt.date] | None = None,
    with_labels: bool = True,
    engine: Any = None,
    extra_metadata: dict[str, Any] | None = None,
    write_quarantine: bool = True,
    batch_rows: int = 1_000_000,
    on_loaded: Any = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Validate the borough folder `data_dir` through the data contract with its events read per partition
    (contract/streaming.py: residents, residency and outcomes whole, events `batch_rows` at a time) and
    build the matrix into `out` as build_partitioned_feature_matrix does; the same rows, value for value.

    The accepted events wait in a temporary folder beside `out`, one file per partition, removed at the
    end. `on_loaded(data)` is called once validation is done (the contract report is data.report);
    `progress` says the partition count and why on the console as soon as the residents are read (before the
    events are validated and anything is built), and draws a bar with one step per partition.
    Raises ContractError for unusable files, UnusableDataError when too much is quarantined."""
    from earlysignal.contract.streaming import EVENTS_PART

    started_all = time.perf_counter()
    out = Path(out)
    grid_dates = list(as_of_dates) if as_of_dates is not None else list(config.as_of_dates())
    announce = None
    if progress:
        from earlysignal.console import console

        def announce(residents: int, chosen: int) -> None:
            console.print(partition_choice_words(config, residents, len(grid_dates), chosen), highlight=False)

    with loaded_per_partition(config, data_dir, out, grid_dates, partitions, write_quarantine, batch_rows,
                              announce=announce) as data:
        if on_loaded is not None:
            on_loaded(data)

        def subsets():  # type: ignore[no-untyped-def]
            for partition in range(data.partitions):
                yield PartitionData.from_streamed(data, partition)
                (data.events_dir / EVENTS_PART.format(partition)).unlink(missing_ok=True)

        return _build_parts(
            config, subsets(), data.partitions, out, grid_dates, with_labels, engine, extra_metadata, started_all,
            progress=progress,
        )


@contextlib.contextmanager
def loaded_per_partition(
    config: Any,
    data_dir: str | os.PathLike[str],
    out: Path,
    grid_dates: list[dt.date],
    partitions: int | None,
    write_quarantine: bool,
    batch_rows: int,
    *,
    count: Any = None,
    require_usable_data: bool = True,
    announce: Any = None,
) -> Iterator[Any]:
    """Validate `data_dir` with every table written per partition (contract/streaming.py: households and
    addresses kept whole, `partitions` or the count the budget gives) into a temporary folder beside `out`,
    removed on exit; yields the StreamedData once require_usable passes. `count(n_residents)`, when given,
    chooses the partition count instead (from the accepted residents ever); `require_usable_data` False skips
    require_usable (scoring lists quarantined residents rather than refusing, as with the data loaded whole).
    `announce(n_residents, chosen)`, when given, is called once the count is chosen, before the events are read.
    Raises ContractError for unusable files, UnusableDataError when too much is quarantined."""
    from earlysignal.contract import require_usable
    from earlysignal.contract.streaming import load_partitioned_data

    def assign(residents: pd.DataFrame, residency: pd.DataFrame) -> tuple[np.ndarray, int]:
        if count is not None:
            chosen = int(count(len(residents)))
        else:
            chosen = _chosen_partitions(config, len(residents), grid_dates, partitions)
        if announce is not None:
            announce(len(residents), chosen)
        components = household_components(residents, residency)
        return assign_partitions(components, np.ones(components.size), chosen), chosen

    work = out.with_name(out.name + EVENTS_TMP_SUFFIX)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    try:
        data = load_partitioned_data(data_dir, config, work, assign, write_quarantine, batch_rows)
        if require_usable_data:
            require_usable(data.report, config.contract)
        yield data
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _build_parts(
    config: Any,
    subsets: Any,
    partitions: int,
    out: Path,
    grid_dates: list[dt.date],
    with_labels: bool,
    engine: Any,
    extra_metadata: dict[str, Any] | None,
    started_all: float,
    progress: bool = False,
) -> dict[str, Any]:
    """Build every partition's rows from `subsets` (PartitionData per partition, in order) into part files;
    `progress` shows one bar step per partition (a Spark build runs minutes between steps)."""
    from contextlib import nullcontext

    from earlysignal.console import progress_bar
    from earlysignal.features.builder import build_feature_matrix

    bar = progress_bar(transient=True) if progress else nullcontext()

    def matrices(bar_progress: Any):  # type: ignore[no-untyped-def]
        task = bar_progress.add_task(f"Building features in {partitions} partitions", total=partitions) if progress else None
        for number, subset in enumerate(subsets, start=1):
            if progress:
                bar_progress.update(task, completed=number - 1, description=f"Building partition {number} of {partitions}")
            if len(subset.residents) == 0:
                continue
            yield build_feature_matrix(config, subset, as_of_dates=grid_dates, with_labels=with_labels, engine=engine)
        if progress:
            bar_progress.update(task, completed=partitions)

    with bar as bar_progress:
        return _write_parts(matrices(bar_progress), partitions, out, grid_dates, with_labels, extra_metadata, started_all)


class PartTotals:
    """The sidecar of a matrix built in parts: the first part's metadata with the counts, prevalences and
    timings summed over every part (add each non-empty part's metadata and frame, then finish)."""

    def __init__(self) -> None:
        self.metadata: dict[str, Any] | None = None
        self.rows_per_as_of: dict[str, int] = {}
        self.positives: dict[str, float] = {}
        self.labelled: dict[str, int] = {}
        self.timings: dict[str, float] = {}
        self.censored = 0
        self.short_windows: dict[str, int] = {}
        self.part_rows: list[int] = []

    @property
    def parts(self) -> int:
        return len(self.part_rows)

    def add(self, metadata: dict[str, Any], frame: pd.DataFrame) -> None:
        """One non-empty part: its matrix metadata and frame (as_of and label columns are read)."""
        self.part_rows.append(len(frame))
        self.metadata = self.metadata or metadata
        label = frame["label"]
        for day, count in metadata["rows_per_as_of"].items():
            self.rows_per_as_of[day] = self.rows_per_as_of.get(day, 0) + count
        days = frame["as_of"].dt.strftime("%Y-%m-%d").to_numpy()
        known = label.notna().to_numpy()
        for day in np.unique(days[known]):
            at = known & (days == day)
            self.positives[day] = self.positives.get(day, 0.0) + float(label[at].astype("float64").sum())
            self.labelled[day] = self.labelled.get(day, 0) + int(at.sum())
        for key, value in metadata["timings"].items():
            self.timings[key] = self.timings.get(key, 0.0) + value
        # Counts over the borough, not the first partition's: censored labels, cells nulled before data start.
        self.censored += int((metadata.get("label") or {}).get("censored_rows", 0))
        for name, cells in (metadata.get("windows_before_data_start") or {}).items():
            self.short_windows[name] = self.short_windows.get(name, 0) + int(cells)

    def finish(self, partitions: int, with_labels: bool, started_all: float) -> dict[str, Any]:
        """The summed metadata (call after at least one add)."""
        assert self.metadata is not None
        metadata = dict(self.metadata)
        metadata["rows_per_as_of"] = {d: self.rows_per_as_of.get(d, 0) for d in metadata["as_of_dates"]}
        metadata["label_prevalence_per_as_of"] = {
            d: (self.positives.get(d, 0.0) / self.labelled[d] if with_labels and self.labelled.get(d) else None)
            for d in metadata["as_of_dates"]
        }
        timings = dict(self.timings)
        timings["total"] = time.perf_counter() - started_all
        metadata["timings"] = {k: round(v, 3) for k, v in timings.items()}
        metadata["partitions"] = {"count": partitions, "parts": len(self.part_rows), "rows_per_part": self.part_rows}
        if "label" in metadata:
            metadata["label"] = {**metadata["label"], "censored_rows": self.censored}
        if "windows_before_data_start" in metadata:
            metadata["windows_before_data_start"] = self.short_windows
        return metadata


def _write_parts(
    matrices: Any,
    partitions: int,
    out: Path,
    grid_dates: list[dt.date],
    with_labels: bool,
    extra_metadata: dict[str, Any] | None,
    started_all: float,
) -> dict[str, Any]:
    """Write each partition's matrix (FeatureMatrix per non-empty partition, in order) as a part file, then
    the sidecar with the counts, prevalences and timings summed over partitions; returns the sidecar."""
    tmp = out.with_name(out.name + PARTS_TMP_SUFFIX)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        return _write_parts_into(tmp, matrices, partitions, out, grid_dates, with_labels, extra_metadata, started_all)
    except BaseException:
        # An error, Ctrl-C or SIGTERM (cli.py turns it into SystemExit): no half-written folder of parts stays.
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_parts_into(
    tmp: Path,
    matrices: Any,
    partitions: int,
    out: Path,
    grid_dates: list[dt.date],
    with_labels: bool,
    extra_metadata: dict[str, Any] | None,
    started_all: float,
) -> dict[str, Any]:
    """_write_parts' work, its part files written into the folder `tmp`, renamed onto `out` at the end."""
    totals = PartTotals()
    for matrix in matrices:
        _log.info("partition part %d of at most %d built: %d rows", totals.parts + 1, partitions, len(matrix.frame))
        frame = matrix.frame
        if len(frame) == 0:
            continue
        order = np.lexsort((frame["resident_id"].to_numpy(dtype=object).astype(str), frame["as_of"].to_numpy()))
        if not np.array_equal(order, np.arange(order.size)):  # the builder's (j, r_idx) order already is this
            frame = frame.iloc[order].reset_index(drop=True)
        pq.write_table(
            pa.Table.from_pandas(frame, preserve_index=False), tmp / PART_NAME.format(totals.parts), compression="zstd"
        )
        totals.add(matrix.metadata, frame)
        del matrix, frame
    if totals.metadata is None:
        shutil.rmtree(tmp)
        raise EarlySignalError(
            f"the feature matrix has no rows: no resident is in the cohort at any of the {len(grid_dates)} as_of dates; "
            f"nothing was written to {out}"
        )
    metadata = totals.finish(partitions, with_labels, started_all)
    metadata.update(extra_metadata or {})
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    os.replace(tmp, out)
    write_json(metadata, sidecar_path(out))
    return metadata


def read_partitioned_frame(path: str | os.PathLike[str], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """All part files of a partitioned matrix (only `columns` when given), rows in (as_of, resident_id)
    order, the order of the whole-population build."""
    parts = sorted(Path(path).glob("part-*.parquet"))
    if not parts:
        raise EarlySignalError(f"{path} holds no part files; rebuild the matrix with `earlysignal features`")
    frame = pq.read_table(parts, columns=list(columns) if columns is not None else None).to_pandas()
    if "as_of" in frame.columns and "resident_id" in frame.columns:
        order = np.lexsort((frame["resident_id"].to_numpy(dtype=object).astype(str), frame["as_of"].to_numpy()))
        frame = frame.iloc[order].reset_index(drop=True)
    return frame


def iter_partitions(path: str | os.PathLike[str], columns: Sequence[str] | None = None):  # type: ignore[no-untyped-def]
    """Yield each part file of a partitioned matrix as a DataFrame (for scoring one partition at a time)."""
    for part in sorted(Path(path).glob("part-*.parquet")):
        yield pq.read_table(part, columns=list(columns) if columns is not None else None).to_pandas()


__all__ = [
    "FeatureMatrix",
    "PartitionData",
    "PartitionIndex",
    "assign_partitions",
    "build_partitioned_feature_matrix",
    "build_partitioned_feature_matrix_from_folder",
    "estimated_build_bytes",
    "household_components",
    "iter_partitions",
    "partition_count",
    "partition_data",
    "read_partitioned_frame",
]
