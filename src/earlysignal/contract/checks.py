"""Row checks: each row gets the first reason it fails, in the documented order (schemas.CHECK_ORDER)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from earlysignal.contract.schemas import TIMESTAMP, Column, declared_check


def _np(mask: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean Arrow array as a NumPy bool array, nulls as False."""
    filled = pc.fill_null(mask, False)
    if isinstance(filled, pa.ChunkedArray):
        if filled.num_chunks == 0:
            return np.zeros(0, dtype=bool)
        filled = filled.combine_chunks()
    return filled.to_numpy(zero_copy_only=False).astype(bool, copy=False)


class _Reasons:
    """The first failing check of every row, as a small integer code (0 = accepted)."""

    def __init__(self, n_rows: int, table: str | None = None) -> None:
        self.codes = np.zeros(n_rows, dtype=np.uint8)
        self.labels: list[str] = []
        self.table = table

    def flag(self, reason: str, mask: np.ndarray) -> None:
        """Give `reason` to the rows in mask that no earlier check has quarantined."""
        # Keeps CHECK_ORDER (what the report and docs list) true to what the code checks.
        if self.table and not reason.startswith("unparseable:") and not declared_check(self.table, reason):
            raise AssertionError(f"check {reason!r} is not declared in CHECK_ORDER")
        if not mask.any():
            return
        if reason not in self.labels:
            self.labels.append(reason)
        code = self.labels.index(reason) + 1
        self.codes[(self.codes == 0) & mask] = code

    def ok(self) -> np.ndarray:
        """Rows not quarantined so far."""
        return self.codes == 0

    def count(self) -> int:
        """Rows quarantined."""
        return int(np.count_nonzero(self.codes))

    def counts(self) -> dict[str, int]:
        """Rows quarantined per reason, in check order."""
        tally = np.bincount(self.codes, minlength=len(self.labels) + 1)
        return {label: int(tally[i + 1]) for i, label in enumerate(self.labels) if tally[i + 1]}

    def reason_array(self, mask: np.ndarray) -> pa.Array:
        """The reason code of each row in mask, as text."""
        labels = np.array([""] + self.labels, dtype=object)
        return pa.array(labels[self.codes[mask]], type=pa.string())


@dataclass
class _Context:
    """What later tables' referential checks need from earlier ones."""

    outcome_types: tuple[str, ...]
    after_extract_us: int
    schemas: dict[str, tuple[Column, ...]] = field(default_factory=dict)
    event_pairs: frozenset[tuple[str, str]] = frozenset()
    negative_pairs: frozenset[tuple[str, str]] = frozenset()  # (source, event_type) whose value may be < 0
    seen_residents: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    accepted_residents: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    seen_addresses: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    accepted_addresses: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    event_sources: set[str] = field(default_factory=set)
    # Accepted rows known only after the extract date (a mapping's conservative known_at rule), per table.
    known_after_extract: dict[str, int] = field(default_factory=dict)
    # Set when events are checked batch by batch (contract/streaming.py): flags the batch's duplicate
    # rows from a pass over the whole file, since copies of an event_id can sit in different batches.
    event_duplicates: Callable[[pa.Table, _Reasons], None] | None = None
    # Set when events are checked batch by batch: the reference lookups of events and outcomes,
    # (values, "resident" | "address") -> _reference_masks' answer, from indexes built once (instead of a
    # hash set over every ID per batch); the ID arrays above are then left empty.
    reference_lookups: Callable[[pa.ChunkedArray, str], tuple[np.ndarray, np.ndarray]] | None = None

    def references(self, values: pa.ChunkedArray, what: str) -> tuple[np.ndarray, np.ndarray]:
        """_reference_masks of `values` against the accepted and seen residents or addresses (`what`)."""
        if self.reference_lookups is not None:
            return self.reference_lookups(values, what)
        if what == "resident":
            return _reference_masks(values, self.accepted_residents, self.seen_residents)
        return _reference_masks(values, self.accepted_addresses, self.seen_addresses)

    def remember(self, name: str, typed: pa.Table, accepted: pa.Table) -> None:
        if name == "residents":
            self.seen_residents = _distinct(typed.column("resident_id"))
            self.accepted_residents = _distinct(accepted.column("resident_id"))
        elif name == "residency":
            self.seen_addresses = _distinct(typed.column("address_id"))
            self.accepted_addresses = _distinct(accepted.column("address_id"))
        elif name == "events":
            self.event_sources = {str(s) for s in _distinct(accepted.column("source")).to_pylist()}


def _distinct(array: pa.ChunkedArray) -> pa.Array:
    return pc.unique(array.drop_null())


def _flag_nulls(table: pa.Table, reasons: _Reasons, columns: tuple[Column, ...]) -> None:
    for column in columns:
        if column.nullable:
            continue
        prefix = "null_key" if column.kind == "id" else "null_value"
        reasons.flag(f"{prefix}:{column.name}", _np(pc.is_null(table.column(column.name))))


def _flag_allowed(table: pa.Table, reasons: _Reasons, columns: tuple[Column, ...]) -> None:
    for column in columns:
        if column.allowed:
            values = table.column(column.name)
            outside = pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, value_set=pa.array(column.allowed))))
            reasons.flag(f"invalid_value:{column.name}", _np(outside))


def _flag_after_extract(table: pa.Table, reasons: _Reasons, columns: tuple[str, ...], context: _Context) -> None:
    limit = pa.scalar(context.after_extract_us, TIMESTAMP)
    mask = np.zeros(table.num_rows, dtype=bool)
    for name in columns:
        mask |= _np(pc.greater_equal(table.column(name), limit))
    reasons.flag("after_extract_date", mask)


def _count_known_after_extract(table: pa.Table, reasons: _Reasons, name: str, context: _Context) -> None:
    """Count accepted rows whose known_at is after the extract date. They are kept: the event happened
    before the extract, and every stage uses a record only at as-of dates after its known_at."""
    late = _np(pc.greater_equal(table.column("known_at"), pa.scalar(context.after_extract_us, TIMESTAMP)))
    context.known_after_extract[name] = context.known_after_extract.get(name, 0) + int((late & reasons.ok()).sum())


def _row_hashes(table: pa.Table, columns: tuple[str, ...]) -> np.ndarray:
    """A 64-bit hash per row of the given columns (DuckDB hashes in parallel and far faster than pandas)."""
    connection = duckdb.connect()
    try:
        connection.register("rows", table.select(list(columns)))
        quoted = ", ".join(f'"{c}"' for c in columns)
        return connection.execute(f"SELECT hash({quoted}) AS h FROM rows").fetchnumpy()["h"]
    finally:
        connection.close()


def _repeated(hashes: np.ndarray) -> np.ndarray:
    """Rows whose hash occurs more than once (candidates only: equal hashes are re-checked exactly)."""
    if len(hashes) < 2:
        return np.zeros(len(hashes), dtype=bool)
    ordered = np.sort(hashes)
    repeated_values = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if len(repeated_values) == 0:
        return np.zeros(len(hashes), dtype=bool)
    return np.isin(hashes, repeated_values)


def _flag_duplicates(table: pa.Table, reasons: _Reasons, key: str | None, compare: tuple[str, ...]) -> None:
    """Exact duplicate rows keep their first copy (`duplicate_row`); conflicting copies of a key all go.

    With key=None, only exact duplicates of the compared columns are looked for.
    """
    candidates = np.flatnonzero(_repeated(_row_hashes(table, (key,) if key else compare)))
    if len(candidates) == 0:
        return
    subset = table.select(list(compare)).take(pa.array(candidates)).to_pandas()
    subset.index = candidates
    conflicted = np.zeros(table.num_rows, dtype=bool)
    if key is not None:
        # Equal hashes need not mean equal keys: keep only keys that really repeat.
        subset = subset[subset[key].notna()]
        subset = subset[subset.groupby(key, sort=False)[key].transform("size").to_numpy() > 1]
        variants = subset.drop_duplicates().groupby(key, sort=False).size()
        is_conflicted = (subset[key].map(variants) > 1).to_numpy()
        conflicted[subset.index[is_conflicted]] = True
        subset = subset[~is_conflicted]
    repeats = np.zeros(table.num_rows, dtype=bool)
    repeats[subset.index[subset.duplicated(keep="first").to_numpy()]] = True
    reasons.flag("duplicate_row", repeats)
    if key is not None:
        reasons.flag(f"duplicate_{key}", conflicted)


def _reference_masks(values: pa.ChunkedArray, accepted: pa.Array, seen: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(ids whose parent rows were all quarantined, ids never in the parent table); nulls are in neither."""
    missing = _np(pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, value_set=accepted))))
    if not missing.any():
        return missing, missing
    was_seen = _np(pc.is_in(values, value_set=seen))
    return missing & was_seen, missing & ~was_seen


def _flag_reference(
    values: pa.ChunkedArray, accepted: pa.Array, seen: pa.Array, reasons: _Reasons, what: str
) -> None:
    """Unknown ids (never in the parent table) and ids whose parent rows were all quarantined."""
    _flag_reference_masks(_reference_masks(values, accepted, seen), reasons, what)


def _flag_reference_masks(masks: tuple[np.ndarray, np.ndarray], reasons: _Reasons, what: str) -> None:
    quarantined, unknown = masks
    reasons.flag(f"quarantined_{what}", quarantined)
    reasons.flag(f"unknown_{what}", unknown)


def _check_residents(table: pa.Table, reasons: _Reasons, context: _Context) -> None:
    columns = context.schemas["residents"]
    _flag_nulls(table, reasons, columns)
    _flag_allowed(table, reasons, columns)
    names = {c.name for c in columns}
    if {"birth_date", "death_date"} <= names:
        reasons.flag("death_before_birth", _np(pc.less(table.column("death_date"), table.column("birth_date"))))
    if "birth_date" in names:
        _flag_after_extract(table, reasons, ("birth_date",), context)
    _flag_duplicates(table, reasons, "resident_id", tuple(c.name for c in columns))


def _check_residency(table: pa.Table, reasons: _Reasons, context: _Context) -> None:
    columns = context.schemas["residency"]
    _flag_nulls(table, reasons, columns)
    _flag_allowed(table, reasons, columns)
    reasons.flag("end_not_after_start", _np(pc.less_equal(table.column("end_date"), table.column("start_date"))))
    _flag_after_extract(table, reasons, ("start_date",), context)
    _flag_duplicates(table, reasons, None, tuple(c.name for c in columns))
    reasons.flag("overlapping_residency", _overlapping_spells(table, reasons.ok()))
    _flag_reference(
        table.column("resident_id"), context.accepted_residents, context.seen_residents, reasons, "resident"
    )


def _overlapping_spells(table: pa.Table, candidates: np.ndarray) -> np.ndarray:
    """Spells (among candidates) that share at least one day with another spell of the same resident."""
    rows = np.flatnonzero(candidates)
    result = np.zeros(table.num_rows, dtype=bool)
    if len(rows) < 2:
        return result
    subset = table.select(["resident_id", "start_date", "end_date"]).take(pa.array(rows))
    resident, _ = pd.factorize(subset.column("resident_id").to_pandas(), sort=False)
    start = subset.column("start_date").cast(pa.int64()).to_numpy()
    # An open spell (null end) runs for ever.
    end = pc.fill_null(subset.column("end_date").cast(pa.int64()), np.iinfo(np.int64).max).to_numpy()
    order = np.lexsort((end, start, resident))
    resident, start, end = resident[order], start[order], end[order]
    same_as_previous = np.r_[False, resident[1:] == resident[:-1]]
    # Latest end among earlier spells of the same resident (a running maximum per resident).
    running_end = pd.Series(end).groupby(resident, sort=False).cummax().to_numpy()
    previous_end = np.r_[np.iinfo(np.int64).min, running_end[:-1]]
    overlaps_earlier = same_as_previous & (start < previous_end)
    # Starts are sorted within a resident, so a spell overlaps a later one iff it ends after the next start.
    overlaps_later = np.r_[same_as_previous[1:] & (end[:-1] > start[1:]), False]
    result[rows[order[overlaps_earlier | overlaps_later]]] = True
    return result


def _check_events(table: pa.Table, reasons: _Reasons, context: _Context) -> None:
    # The two id lookups are the costliest scans and do not depend on other checks: they run on a
    # second thread (Arrow releases the GIL) while the rest goes on; flags are still applied in order.
    with ThreadPoolExecutor(max_workers=1) as pool:
        residents = pool.submit(context.references, table.column("resident_id"), "resident")
        addresses = pool.submit(context.references, table.column("address_id"), "address")
        _flag_nulls(table, reasons, context.schemas["events"])
        reasons.flag(
            "missing_resident_and_address",
            _np(pc.and_(pc.is_null(table.column("resident_id")), pc.is_null(table.column("address_id")))),
        )
        reasons.flag("unknown_event_type", ~_pair_in(table, context.event_pairs, null_is_in=True))
        value = table.column("value")
        reasons.flag("non_finite_value", _np(pc.invert(pc.is_finite(value))))
        negative = _np(pc.less(value, 0.0))
        if negative.any() and context.negative_pairs:
            negative &= ~_pair_in(table, context.negative_pairs, null_is_in=False)
        reasons.flag("negative_value", negative)
        reasons.flag(
            "known_at_before_event_time", _np(pc.less(table.column("known_at"), table.column("event_time")))
        )
        _flag_after_extract(table, reasons, ("event_time",), context)
        if context.event_duplicates is not None:
            context.event_duplicates(table, reasons)
        else:
            _flag_duplicates(table, reasons, "event_id", tuple(c.name for c in context.schemas["events"]))
        _flag_reference_masks(residents.result(), reasons, "resident")
        _flag_reference_masks(addresses.result(), reasons, "address")
    _count_known_after_extract(table, reasons, "events", context)


def _pair_in(table: pa.Table, pairs: frozenset[tuple[str, str]], null_is_in: bool) -> np.ndarray:
    """Rows whose (source, event_type) pair is in `pairs` (a null source or type counts as null_is_in)."""
    parts = [np.zeros(0, dtype=bool)]
    # Sources and types have few distinct values: encode each batch once, then test codes, not strings.
    for batch in table.select(["source", "event_type"]).to_batches():
        source, event_type = (
            column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)
            for column in batch.columns
        )
        source_codes = pc.fill_null(source.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        type_codes = pc.fill_null(event_type.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        sources, types = source.dictionary.to_pylist(), event_type.dictionary.to_pylist()
        allowed = np.full((len(sources) + 1, len(types) + 1), null_is_in, dtype=bool)  # last row/column: null
        for i, s in enumerate(sources):
            for j, t in enumerate(types):
                allowed[i, j] = (s, t) in pairs
        parts.append(allowed[source_codes, type_codes])
    return np.concatenate(parts)


def _check_outcomes(table: pa.Table, reasons: _Reasons, context: _Context) -> None:
    _flag_nulls(table, reasons, context.schemas["outcomes"])
    outcome_type = table.column("outcome_type")
    reasons.flag(
        "unknown_outcome_type",
        _np(pc.invert(pc.is_in(outcome_type, value_set=pa.array(context.outcome_types, pa.string())))),
    )
    reasons.flag(
        "known_at_before_outcome_time", _np(pc.less(table.column("known_at"), table.column("outcome_time")))
    )
    reasons.flag("end_before_outcome_time", _np(pc.less(table.column("end_time"), table.column("outcome_time"))))
    _flag_after_extract(table, reasons, ("outcome_time",), context)
    _flag_duplicates(table, reasons, None, tuple(c.name for c in context.schemas["outcomes"]))
    _flag_reference_masks(context.references(table.column("resident_id"), "resident"), reasons, "resident")
    _count_known_after_extract(table, reasons, "outcomes", context)


CHECKS: dict[str, Callable[[pa.Table, _Reasons, _Context], None]] = {
    "residents": _check_residents,
    "residency": _check_residency,
    "events": _check_events,
    "outcomes": _check_outcomes,
}


