"""Reading table files (Parquet or CSV) and the manifest, and typing columns to the contract.

Columns the contract does not know are dropped here (with a warning naming them), so they never
reach the accepted data or a quarantine file; codes are normalised here (surrounding spaces,
letter case, values meaning "not recorded"), and the rewrites are counted for the report.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from earlysignal.contract.results import TableCounts
from earlysignal.contract.schemas import (
    DELIMITERS,
    EMPTY_ALLOWED,
    EXPECTED_TEXT,
    MANIFEST_NAME,
    OPTIONAL_TABLES,
    TIMESTAMP,
    Column,
    Kind,
)
from earlysignal.errors import ContractError, EarlySignalError


def table_path(data_dir: Path, name: str) -> Path:
    """The one file holding a table: <name>.parquet or <name>.csv (both, or neither, is an error)."""
    parquet, csv = data_dir / f"{name}.parquet", data_dir / f"{name}.csv"
    if parquet.exists() and csv.exists():
        raise ContractError(
            f"{data_dir}: both {parquet.name} and {csv.name} exist; keep exactly one file for table {name}"
        )
    if parquet.exists():
        return parquet
    if csv.exists():
        return csv
    if name in OPTIONAL_TABLES:
        return parquet  # absent: read as a table with no rows (see read_table)
    raise ContractError(f"{data_dir}: table {name} is missing; expected {parquet.name} or {csv.name}")


def read_manifest(data_dir: str | Path) -> dict[str, Any]:
    """Read and check DIR/manifest.json (extract_date, sources, row_counts)."""
    path = Path(data_dir) / MANIFEST_NAME
    if not path.exists():
        raise ContractError(
            f"{path} is missing; expected a JSON object with extract_date (YYYY-MM-DD), sources and row_counts"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ContractError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(manifest, dict):
        raise ContractError(f"{path} must hold a JSON object, found {type(manifest).__name__}")
    _manifest_extract_date(manifest, path)
    sources = manifest.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise ContractError(f"{path}: key sources must be a list of source names, found {sources!r}")
    row_counts = manifest.get("row_counts", {})
    if not isinstance(row_counts, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in row_counts.values()
    ):
        raise ContractError(f"{path}: key row_counts must map table names to whole numbers, found {row_counts!r}")
    return manifest


def _manifest_extract_date(manifest: Mapping[str, Any], path: Path) -> dt.date:
    value = manifest.get("extract_date")
    if value is None:
        raise ContractError(f"{path}: key extract_date is missing; expected the data end as YYYY-MM-DD")
    from earlysignal.dates import check_extract_date, parse_date

    try:
        day = parse_date(value, f"{path}: key extract_date")
        return check_extract_date(day, str(path))
    except EarlySignalError as error:
        raise ContractError(str(error)) from None


def _manifest_warnings(
    manifest: Mapping[str, Any], counts: Mapping[str, TableCounts], event_sources: set[str]
) -> list[str]:
    warnings = []
    for name, expected in manifest.get("row_counts", {}).items():
        if name in counts and counts[name].read != expected:
            warnings.append(
                f"manifest.json says {name} has {expected} rows but {counts[name].read} were read; "
                "the file may be truncated or from another extract"
            )
    listed = set(manifest.get("sources", []))
    if listed:
        unlisted = sorted(event_sources - listed)
        if unlisted:
            warnings.append(f"events hold sources not listed in manifest.json: {unlisted}")
    return warnings


# --------------------------------------------------------------------------------------------
# Reading and typing
# --------------------------------------------------------------------------------------------


@dataclass
class TypedTable:
    """One table as read: the raw file columns kept, the typed contract columns, and what reading found."""

    raw: pa.Table  # the file's contract columns, as read (quarantine files copy these)
    typed: pa.Table
    unparseable: dict[str, np.ndarray]
    warnings: list[str] = field(default_factory=list)
    normalised: dict[str, int] = field(default_factory=dict)
    not_recorded: dict[str, int] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()


def read_table(
    name: str,
    path: Path,
    columns: tuple[Column, ...],
    not_recorded: frozenset[str] = frozenset(),
    codes: Mapping[str, tuple[str, ...]] | None = None,
    rows: pa.Table | None = None,
) -> TypedTable:
    """Read one table file and type it to `columns`; unknown columns are dropped with a warning.

    `rows`: some of the file's rows already read (a slice of the borough, contract/slice.py), typed
    here as if read from `path`; a slice may have no rows.

    `codes` gives the known codes of columns checked elsewhere (source, event_type, outcome_type), so
    their spaces and letter case are normalised like declared attribute values.

    Raises ContractError for a file that cannot be used at all (empty, unreadable, a required column
    missing or of a type that cannot be coerced).
    """
    if name in OPTIONAL_TABLES and not path.exists():
        empty = pa.table({c.name: pa.array([], _arrow_type(c.kind)) for c in columns})
        return TypedTable(empty, empty, {}, [f"table {name} is absent; household and address scopes cannot be used"])
    if path.stat().st_size == 0:
        raise ContractError(f"{path.name} is empty (0 bytes); expected table {name} with a header row")
    if rows is not None:
        raw = rows
    else:
        raw = _read_csv(path) if path.suffix == ".csv" else _read_parquet(path, columns)
    if raw.num_rows == 0 and name not in EMPTY_ALLOWED and rows is None:
        raise ContractError(f"{path.name} has a header but no rows; table {name} cannot be empty")
    table = type_table(raw, path, columns, not_recorded, codes)
    if raw.num_rows == 0:
        table.warnings.insert(0, f"{path.name} has no rows")
    return table


def type_table(
    raw: pa.Table,
    path: Path,
    columns: tuple[Column, ...],
    not_recorded: frozenset[str] = frozenset(),
    codes: Mapping[str, tuple[str, ...]] | None = None,
    refuse_unreadable_column: bool = True,
) -> TypedTable:
    """Type the rows `raw` read from `path` (a whole file, or one batch of it) to `columns`; see read_table.

    With refuse_unreadable_column=False a text column none of whose values parse is not refused here
    (a batch can hold only bad values of a column the rest of the file has good ones in); the caller
    decides over the whole file. Raises ContractError for a missing required column or an unusable type.
    """
    warnings: list[str] = []
    known = {c.name for c in columns}
    dropped = tuple(c for c in raw.column_names if c not in known)
    if dropped:
        # Names and addresses must not travel past the contract, and an unknown column could be one.
        warnings.append(
            f"{path.name}: dropped column(s) the contract does not know: {', '.join(dropped)} "
            "(declare person attributes in the data dictionary to keep them)"
        )
        raw = raw.select([c for c in raw.column_names if c in known])

    typed_columns: dict[str, pa.ChunkedArray] = {}
    unparseable: dict[str, np.ndarray] = {}
    normalised: dict[str, int] = {}
    nulled: dict[str, int] = {}
    for column in columns:
        if column.name not in raw.column_names:
            if not column.optional:
                raise ContractError(
                    f"{path.name}: required column {column.name} is missing; expected {EXPECTED_TEXT[column.kind]}"
                    f" (columns found: {', '.join(raw.column_names)})"
                )
            if column.warn_if_absent:
                warnings.append(f"{path.name}: optional column {column.name} is absent; treated as all null")
            typed_columns[column.name] = pa.chunked_array([pa.nulls(raw.num_rows, _arrow_type(column.kind))])
            continue
        array = raw.column(column.name)
        if column.not_recorded and column.kind != "date" and array.null_count:
            # Empty cells (CSV reads them as null) and nulls are "not recorded" as much as "Unknown" is. A null
            # date is left out: an empty death_date says the person is alive, not that it went unrecorded.
            nulled[column.name] = array.null_count
        if column.not_recorded and not_recorded and _is_text(array.type):
            array, n_null = _null_not_recorded(array, not_recorded)
            if n_null:
                nulled[column.name] = nulled.get(column.name, 0) + n_null
        if column.normalise and _is_text(array.type):
            known_codes = column.allowed or (codes or {}).get(column.name, ())
            array, n_changed, n_null = normalise_codes(array, known_codes, not_recorded if column.not_recorded else frozenset())
            if n_changed:
                normalised[column.name] = n_changed
            if n_null:
                nulled[column.name] = nulled.get(column.name, 0) + n_null
        typed, bad = _coerce(array, column, path, refuse_unreadable_column)
        typed_columns[column.name] = typed
        if bad is not None and bad.any():
            unparseable[column.name] = bad
    return TypedTable(raw, pa.table(typed_columns), unparseable, warnings, normalised, nulled, dropped)


def _null_not_recorded(array: pa.ChunkedArray, tokens: frozenset[str]) -> tuple[pa.ChunkedArray, int]:
    """Text meaning 'not recorded' (ignoring case and surrounding spaces) as null; how many were."""
    text = array.cast(pa.string()) if pa.types.is_dictionary(array.type) else array
    folded = pc.utf8_lower(pc.utf8_trim_whitespace(text))
    hit = pc.fill_null(pc.is_in(folded, value_set=pa.array(sorted(tokens), pa.string())), False)
    n = int(pc.sum(hit).as_py() or 0)
    if not n:
        return array, 0
    return pc.if_else(hit, pa.scalar(None, pa.string()), text), n


def normalise_codes(
    array: pa.ChunkedArray, allowed: tuple[str, ...], not_recorded: frozenset[str] = frozenset()
) -> tuple[pa.ChunkedArray, int, int]:
    """Codes with surrounding spaces trimmed and letter case matched to the allowed spelling.

    Returns (array, rows rewritten, rows read as not recorded). Works on the few distinct values, not
    on every row. A code that matches no allowed value keeps its trimmed text (a later check names
    it); with no allowed values only spaces are trimmed. Dictionary-encoded input stays encoded.
    """
    by_fold = {a.casefold(): a for a in allowed}
    allowed_set = set(allowed)

    def canonical(value: str | None) -> str | None:
        if value is None:
            return None
        if value in allowed_set:
            return value
        stripped = value.strip()
        if stripped.casefold() in not_recorded or stripped.lower() in not_recorded:
            return None
        if stripped in allowed_set:
            return stripped
        return by_fold.get(stripped.casefold(), stripped)

    chunks = []
    changed = nulled = 0
    for chunk in array.chunks:
        encoded = chunk if pa.types.is_dictionary(chunk.type) else pc.dictionary_encode(chunk)
        values = encoded.dictionary.to_pylist()
        mapped = [canonical(v) for v in values]
        new_values: list[str] = []
        position: dict[str, int] = {}
        remap = np.full(len(values) + 1, -1, dtype=np.int64)  # last slot: null input
        for i, m in enumerate(mapped):
            if m is not None:
                remap[i] = position.setdefault(m, len(new_values))
                if remap[i] == len(new_values):
                    new_values.append(m)
        indices = pc.fill_null(encoded.indices, len(values)).to_numpy(zero_copy_only=False).astype(np.int64)
        new_indices = remap[indices]
        differs = np.array([m != v for v, m in zip(values, mapped)] + [False], dtype=bool)
        became_null = np.array([m is None and v is not None for v, m in zip(values, mapped)] + [False], dtype=bool)
        nulled += int(became_null[indices].sum())
        changed += int((differs & ~became_null)[indices].sum())
        rebuilt = pa.DictionaryArray.from_arrays(
            pa.array(np.where(new_indices < 0, 0, new_indices).astype(np.int32), mask=new_indices < 0),
            pa.array(new_values, pa.string()),
        )
        chunks.append(rebuilt if pa.types.is_dictionary(chunk.type) else rebuilt.cast(pa.string()))
    if not chunks:
        return array, 0, 0
    if not changed and not nulled:
        return array, 0, 0
    return pa.chunked_array(chunks), changed, nulled


def _read_parquet(path: Path, columns: tuple[Column, ...]) -> pa.Table:
    try:
        schema = pq.read_schema(path)
        # Reading few-valued text columns as dictionaries skips decoding millions of strings
        # and makes the vocabulary check a lookup on a few codes.
        as_dictionary = [
            c.name
            for c in columns
            if c.few_values and c.name in schema.names and _is_text(schema.field(c.name).type)
        ]
        return pq.read_table(path, read_dictionary=as_dictionary or None)
    except (pa.ArrowException, OSError) as error:
        raise ContractError(f"{path.name} cannot be read as Parquet: {error}") from None


def _read_csv(path: Path) -> pa.Table:
    with open(path, "rb") as handle:
        head = handle.read(64 * 1024)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ContractError(f"{path.name} is UTF-16 encoded; save it as UTF-8 CSV (a UTF-8 byte-order mark is fine)")
    # A UTF-8 byte-order mark (Excel's "CSV UTF-8") is accepted and stripped.
    head = head.removeprefix(b"\xef\xbb\xbf")
    if not head.strip():
        raise ContractError(f"{path.name} is empty; expected a header row of comma-separated column names")
    try:
        header = head.splitlines()[0].decode("utf-8")
    except UnicodeDecodeError:
        raise ContractError(f"{path.name}: the header row is not UTF-8 text; save the file as UTF-8 CSV") from None
    if "," not in header:
        for delimiter, label in DELIMITERS.items():
            if delimiter in header:
                raise ContractError(
                    f"{path.name} uses {label} ({delimiter!r}) as its delimiter; expected comma-separated "
                    "values (re-export with ',' as the separator)"
                )
    names = next(csv.reader([header]))
    ragged: list[Any] = []

    def on_invalid_row(row: Any) -> str:
        ragged.append(row)
        return "error"

    try:
        return pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(encoding="utf-8"),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=on_invalid_row),
            # Everything is read as text and typed column by column, so one bad cell is one
            # quarantined row rather than a failed file.
            convert_options=pa_csv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowException, OSError) as error:
        if ragged:
            # Arrow's own message quotes the row; a row can hold a date of birth, so say where, not what.
            row = ragged[0]
            line = row.number if row.number is not None else _first_ragged_line(path, row.expected_columns)
            where = f"line {line}" if line is not None else "a row"
            raise ContractError(
                f"{path.name} cannot be read as CSV: {where} has {row.actual_columns} fields, expected "
                f"{row.expected_columns} (one per column of the header)"
            ) from None
        utf8 = re.search(r"CSV column #(\d+): .*invalid UTF8", str(error))
        if utf8:
            index = int(utf8.group(1))
            column = names[index] if index < len(names) else f"#{index}"
            raise ContractError(
                f"{path.name}: column {column} holds text that is not UTF-8 (for example a '£' saved as "
                "Windows-1252); save the file as UTF-8 CSV"
            ) from None
        raise ContractError(f"{path.name} cannot be read as CSV: {error}") from None


def _first_ragged_line(path: Path, expected: int) -> int | None:
    """The line number (header = line 1) of the first row with the wrong number of fields."""
    # Only on the error path: Arrow's parallel reader does not know the row's position.
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        for fields in reader:
            if len(fields) != expected and fields:
                return reader.line_num
    return None


def _arrow_type(kind: Kind) -> pa.DataType:
    return {
        "id": pa.string(),
        "category": pa.string(),
        "date": TIMESTAMP,
        "timestamp": TIMESTAMP,
        "float": pa.float64(),
        "bool": pa.bool_(),
    }[kind]


def _is_text(dtype: pa.DataType) -> bool:
    if pa.types.is_dictionary(dtype):
        return _is_text(dtype.value_type)
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype)


def _coerce(
    array: pa.ChunkedArray, column: Column, path: Path, refuse_unreadable_column: bool = True
) -> tuple[pa.ChunkedArray, np.ndarray | None]:
    """Cast one column to its contract type; return it and a mask of values that could not be parsed."""
    dtype = array.type
    kind = column.kind
    if pa.types.is_null(dtype):
        return array.cast(_arrow_type(kind)), None
    if kind in ("id", "category"):
        if column.few_values and pa.types.is_dictionary(dtype) and _is_text(dtype):
            return array, None  # decoded to plain strings by decoded() once checks are done
        if _is_text(dtype):
            return array.cast(pa.string()), None
        if kind == "id" and pa.types.is_integer(dtype):
            return array.cast(pa.string()), None
        _refuse_type(path, column, dtype)
    if kind in ("date", "timestamp"):
        if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype):
            # tz-aware timestamps hold UTC instants; dropping the zone keeps them as UTC wall time.
            typed = array.cast(TIMESTAMP, safe=False)
            bad = None
        elif _is_text(dtype):
            typed, bad = _parse_text(array.cast(pa.string()), column, path, refuse_unreadable_column)
        else:
            _refuse_type(path, column, dtype)
        if kind == "date":
            typed = pc.floor_temporal(typed, unit="day")
        return typed, bad
    if kind == "float":
        if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
            return array.cast(pa.float64()), None
        if _is_text(dtype):
            return _parse_text(array.cast(pa.string()), column, path, refuse_unreadable_column)
        _refuse_type(path, column, dtype)
    if kind == "bool":
        if pa.types.is_boolean(dtype):
            return array, None
        if pa.types.is_integer(dtype) or _is_text(dtype):
            return _parse_text(array.cast(pa.string()), column, path, refuse_unreadable_column)
        _refuse_type(path, column, dtype)
    raise AssertionError(f"unhandled column kind {kind}")  # pragma: no cover


def _refuse_type(path: Path, column: Column, dtype: pa.DataType) -> NoReturn:
    raise ContractError(
        f"{path.name}: column {column.name} has type {dtype}, which cannot be used as {EXPECTED_TEXT[column.kind]}"
    )


_TRUE_TEXT = ("true", "t", "1", "yes", "y")
_FALSE_TEXT = ("false", "f", "0", "no", "n")


def _parse_text(
    array: pa.ChunkedArray, column: Column, path: Path, refuse_unreadable_column: bool = True
) -> tuple[pa.ChunkedArray, np.ndarray]:
    """Parse text into the column's type; unparseable cells become null and are flagged."""
    target = _arrow_type(column.kind)
    if column.kind == "bool":
        lowered = pc.utf8_lower(pc.utf8_trim_whitespace(array))
        parsed = pc.if_else(
            pc.is_in(lowered, value_set=pa.array(_TRUE_TEXT)),
            True,
            pc.if_else(pc.is_in(lowered, value_set=pa.array(_FALSE_TEXT)), False, pa.scalar(None, pa.bool_())),
        )
    else:
        try:
            parsed = array.cast(target)  # fast path: every cell parses
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            series = array.to_pandas()
            if column.kind == "float":
                values = pd.to_numeric(series, errors="coerce").astype("float64")
            else:
                # utc=True: naive text is taken as UTC wall time, and text with an offset is converted to it.
                values = pd.to_datetime(series, format="ISO8601", errors="coerce", utc=True)
                values = values.dt.tz_localize(None).astype("datetime64[us]")
            parsed = pa.chunked_array([pa.array(values, type=target, from_pandas=True)])
    bad = _np(pc.and_(pc.is_valid(array), pc.is_null(parsed)))
    given = int(pc.sum(pc.is_valid(array)).as_py() or 0)
    if refuse_unreadable_column and given and int(bad.sum()) == given:
        example = array.filter(pc.is_valid(array))[0].as_py()
        raise ContractError(
            f"{path.name}: column {column.name}: none of its {given} values can be read as "
            f"{EXPECTED_TEXT[column.kind]} (the first has the shape {value_shape(example)!r})"
        )
    return parsed, bad


def decoded(table: pa.Table) -> pa.Table:
    """The table with dictionary-encoded text columns turned into plain strings."""
    for index, column_type in enumerate(table.schema.types):
        if pa.types.is_dictionary(column_type) and _is_text(column_type):
            table = table.set_column(index, table.field(index).name, table.column(index).cast(pa.string()))
    return table


def value_shape(value: str, limit: int = 40) -> str:
    """A value with digits shown as 9 and letters as a: its format, without what could be a birth date or a name."""
    shape = "".join("9" if ch.isdigit() else "a" if ch.isalpha() else ch for ch in value[:limit])
    return shape + ("..." if len(value) > limit else "")


def to_pandas(table: pa.Table) -> pd.DataFrame:
    # split_blocks: no consolidation copy of same-dtype columns into 2-D blocks.
    return decoded(table).to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get, split_blocks=True)


def _np(mask: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean Arrow array as a NumPy bool array, nulls as False."""
    filled = pc.fill_null(mask, False)
    if isinstance(filled, pa.ChunkedArray):
        if filled.num_chunks == 0:
            return np.zeros(0, dtype=bool)
        filled = filled.combine_chunks()
    return filled.to_numpy(zero_copy_only=False).astype(bool, copy=False)
