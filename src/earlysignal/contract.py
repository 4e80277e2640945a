"""The data contract: read a borough folder, check every table, quarantine bad rows, reconcile counts.

Every later stage reads data only through `load_linked_data`, so what it returns is the
definition of "usable linked histories". Two kinds of problem are told apart:

* a file that cannot be used at all (missing, unreadable, empty, a required column missing or of a
  type that cannot be coerced, a bad manifest) stops with a `ContractError` naming the file, the
  column and what was expected;
* a bad row goes to `DIR/quarantine/<table>.parquet` with its original columns, its 1-based
  `row_number` in the input file and one `reason` code (the first failing check in the documented
  order), and `read == accepted + quarantined` is checked for every table.

All checks are vectorised (pyarrow kernels, NumPy, and DuckDB for hashing keys), so a borough of
20M events validates in seconds. docs/data-contract.md is the user-facing description; keep the two
in step.
"""

from __future__ import annotations

import datetime as dt
import csv
import json
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from earlysignal.atomic import atomic_path
from earlysignal.config import ContractSection, ProjectConfig
from earlysignal.errors import ContractError, EarlySignalError

if TYPE_CHECKING:
    from rich.table import Table

TABLE_NAMES: tuple[str, ...] = ("residents", "residency", "events", "outcomes")
MANIFEST_NAME = "manifest.json"
QUARANTINE_DIR = "quarantine"
REASON_COLUMN = "reason"
ROW_NUMBER_COLUMN = "row_number"

SEXES: tuple[str, ...] = ("F", "M")
ETHNICITIES: tuple[str, ...] = ("White", "Asian", "Black", "Mixed", "Other")
TENURES: tuple[str, ...] = ("council", "housing_association", "private_rented", "owner_occupied")

EVENT_VOCABULARY: dict[str, tuple[str, ...]] = {
    "housing_repairs": ("door_replacement", "lock_change", "window_repair", "damp_mould", "general_repair"),
    "council_tax": ("arrears_reminder", "summons", "liability_order"),
    "benefits": ("claim_start", "change_of_circumstances", "sanction"),
    "school": ("absence", "fixed_term_exclusion", "permanent_exclusion"),
    "police": ("domestic_incident", "callout", "missing_person"),
    "fire": ("fire_callout",),
    "ae": ("attendance", "injury_attendance"),
    "asb": ("asb_report",),
    "homelessness": ("approach",),
    "early_help": ("contact",),
    "social_care": ("contact",),
}

Kind = Literal["id", "category", "date", "timestamp", "float", "bool"]

_EXPECTED_TEXT: dict[str, str] = {
    "id": "a string identifier",
    "category": "a string",
    "date": "a date (Parquet date32, or ISO text such as 2024-03-01)",
    "timestamp": "a timestamp (Parquet timestamp, or ISO text such as 2024-03-01 14:30:00)",
    "float": "a number",
    "bool": "a boolean (true/false)",
}


@dataclass(frozen=True)
class Column:
    """One contract column: its kind, whether it may hold nulls or be absent, and its allowed values."""

    name: str
    kind: Kind
    nullable: bool = False
    optional: bool = False  # may be missing from the file; then it is all nulls
    allowed: tuple[str, ...] = ()
    few_values: bool = False  # a handful of distinct values: kept dictionary-encoded while checking


SCHEMAS: dict[str, tuple[Column, ...]] = {
    "residents": (
        Column("resident_id", "id"),
        Column("birth_date", "date"),
        Column("death_date", "date", nullable=True, optional=True),
        Column("sex", "category", allowed=SEXES),
        Column("ethnicity", "category", nullable=True, optional=True, allowed=ETHNICITIES),
        Column("disability", "bool", nullable=True, optional=True),
    ),
    "residency": (
        Column("resident_id", "id"),
        Column("household_id", "id"),
        Column("address_id", "id"),
        Column("start_date", "date"),
        Column("end_date", "date", nullable=True),
        Column("tenure", "category", allowed=TENURES),
    ),
    "events": (
        Column("event_id", "id"),
        Column("resident_id", "id", nullable=True),
        Column("address_id", "id", nullable=True),
        Column("source", "category", few_values=True),
        Column("event_type", "category", few_values=True),
        Column("event_time", "timestamp"),
        Column("known_at", "timestamp"),
        Column("value", "float", nullable=True, optional=True),
    ),
    "outcomes": (
        Column("resident_id", "id"),
        Column("outcome_type", "category"),
        Column("outcome_time", "timestamp"),
        Column("known_at", "timestamp"),
        Column("end_time", "timestamp", nullable=True, optional=True),
    ),
}

# Every row-level check per table, in the order they run (a row gets the first reason it fails).
# `unparseable:<column>` comes before all of them, for text that cannot be read as its column's type.
CHECK_ORDER: dict[str, tuple[str, ...]] = {
    "residents": (
        "null_key:resident_id",
        "null_value:birth_date",
        "null_value:sex",
        "invalid_value:sex",
        "invalid_value:ethnicity",
        "death_before_birth",
        "after_extract_date",
        "duplicate_row",
        "duplicate_resident_id",
    ),
    "residency": (
        "null_key:resident_id",
        "null_key:household_id",
        "null_key:address_id",
        "null_value:start_date",
        "null_value:tenure",
        "invalid_value:tenure",
        "end_not_after_start",
        "after_extract_date",
        "duplicate_row",
        "overlapping_residency",
        "quarantined_resident",
        "unknown_resident",
    ),
    "events": (
        "null_key:event_id",
        "null_value:source",
        "null_value:event_type",
        "null_value:event_time",
        "null_value:known_at",
        "missing_resident_and_address",
        "unknown_event_type",
        "non_finite_value",
        "negative_value",
        "known_at_before_event_time",
        "after_extract_date",
        "duplicate_row",
        "duplicate_event_id",
        "quarantined_resident",
        "unknown_resident",
        "quarantined_address",
        "unknown_address",
    ),
    "outcomes": (
        "null_key:resident_id",
        "null_value:outcome_type",
        "null_value:outcome_time",
        "null_value:known_at",
        "unknown_outcome_type",
        "known_at_before_outcome_time",
        "end_before_outcome_time",
        "after_extract_date",
        "duplicate_row",
        "quarantined_resident",
        "unknown_resident",
    ),
}

# A table allowed to have no rows: a short extract can hold no recorded outcomes at all.
EMPTY_ALLOWED: frozenset[str] = frozenset({"outcomes"})

_TIMESTAMP = pa.timestamp("us")
_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}


# --------------------------------------------------------------------------------------------
# Public results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableCounts:
    """Rows read from one table's file, and how many were accepted and quarantined."""

    read: int
    accepted: int
    quarantined: int


@dataclass(frozen=True)
class ValidationReport:
    """What validation found: counts per table and per check, quarantine files, warnings."""

    data_dir: Path
    extract_date: dt.date
    files: dict[str, Path]
    tables: dict[str, TableCounts]
    checks: dict[str, dict[str, int]]  # table -> reason code -> rows quarantined for it
    quarantine_files: dict[str, Path]
    warnings: tuple[str, ...] = ()

    @property
    def total_quarantined(self) -> int:
        """Rows quarantined over all tables."""
        return sum(counts.quarantined for counts in self.tables.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible form (for logs, MLflow params and artefact metadata)."""
        return {
            "data_dir": str(self.data_dir),
            "extract_date": self.extract_date.isoformat(),
            "files": {name: str(path) for name, path in self.files.items()},
            "tables": {
                name: {"read": c.read, "accepted": c.accepted, "quarantined": c.quarantined}
                for name, c in self.tables.items()
            },
            "checks": {name: dict(reasons) for name, reasons in self.checks.items()},
            "quarantine_files": {name: str(path) for name, path in self.quarantine_files.items()},
            "total_quarantined": self.total_quarantined,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class LinkedData:
    """Accepted rows of every table, with contract dtypes, plus the manifest and the validation report.

    Dtypes: identifiers and other text are pandas' string dtype (`str`); every date and timestamp
    column is `datetime64[us]` (date columns hold midnight); `value` is float64; `disability` is
    pandas' nullable `boolean`.
    """

    residents: pd.DataFrame
    residency: pd.DataFrame
    events: pd.DataFrame
    outcomes: pd.DataFrame
    manifest: dict[str, Any]
    extract_date: dt.date
    data_dir: Path
    report: ValidationReport


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def load_linked_data(
    data_dir: str | Path,
    config: ProjectConfig | None = None,
    write_quarantine: bool = True,
) -> LinkedData:
    """Validate a borough folder and return its accepted rows; the only way later stages read data."""
    return validate_directory(data_dir, config=config, write_quarantine=write_quarantine)


def validate_directory(
    data_dir: str | Path,
    config: ProjectConfig | None = None,
    write_quarantine: bool = True,
    on_table: Callable[[str], None] | None = None,
) -> LinkedData:
    """Validate every table of a borough folder (calling on_table(name) as each starts); see load_linked_data."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ContractError(f"data folder {data_dir} does not exist or is not a folder")
    contract = config.contract if config is not None else ContractSection()
    manifest = read_manifest(data_dir)
    extract_date = _manifest_extract_date(manifest, data_dir / MANIFEST_NAME)
    # Rows dated on the extract date itself are kept (an extract taken that day can hold its
    # morning's records); anything from the next day on cannot have been extracted.
    after_extract = np.datetime64(extract_date + dt.timedelta(days=1), "us").astype(np.int64)

    warnings: list[str] = []
    files: dict[str, Path] = {}
    frames: dict[str, pd.DataFrame] = {}
    counts: dict[str, TableCounts] = {}
    checks: dict[str, dict[str, int]] = {}
    quarantine_files: dict[str, Path] = {}
    context = _Context(outcome_types=tuple(contract.outcome_types), after_extract_us=int(after_extract))

    for name in TABLE_NAMES:
        if on_table is not None:
            on_table(name)
        path = table_path(data_dir, name)
        files[name] = path
        raw, typed, unparseable, table_warnings = _read_and_type(name, path)
        warnings.extend(table_warnings)
        reasons = _Reasons(typed.num_rows, name)
        for column, mask in unparseable.items():
            reasons.flag(f"unparseable:{column}", mask)
        _CHECKS[name](typed, reasons, context)
        accepted_mask = reasons.ok()
        accepted = typed if accepted_mask.all() else typed.filter(pa.array(accepted_mask))
        # Counted independently: rows in the file, rows that survived the filter, rows given a reason.
        quarantined = reasons.count()
        reconcile_counts(name, read=raw.num_rows, accepted=accepted.num_rows, quarantined=quarantined)
        counts[name] = TableCounts(read=raw.num_rows, accepted=accepted.num_rows, quarantined=quarantined)
        checks[name] = reasons.counts()
        context.remember(name, typed, accepted)
        if write_quarantine:
            target = data_dir / QUARANTINE_DIR / f"{name}.parquet"
            try:
                if quarantined:
                    written = _write_quarantine(raw, reasons, target)
                    reconcile_counts(name, read=raw.num_rows, accepted=accepted.num_rows, quarantined=written)
                    quarantine_files[name] = target
                elif target.exists():
                    # A stale file from an earlier run would report problems this data no longer has.
                    target.unlink()
            except OSError as error:
                raise ContractError(
                    f"cannot write quarantine file {target}: {error}; "
                    "fix the folder's permissions or validate without writing quarantine files"
                ) from None
        # Let the file's Arrow buffers go before pandas copies: at 20M events that is gigabytes.
        del raw, typed, reasons
        frames[name] = _to_pandas(accepted)
        del accepted

    warnings.extend(_manifest_warnings(manifest, counts, context.event_sources))
    report = ValidationReport(
        data_dir=data_dir,
        extract_date=extract_date,
        files=files,
        tables=counts,
        checks=checks,
        quarantine_files=quarantine_files,
        warnings=tuple(warnings),
    )
    return LinkedData(
        residents=frames["residents"],
        residency=frames["residency"],
        events=frames["events"],
        outcomes=frames["outcomes"],
        manifest=manifest,
        extract_date=extract_date,
        data_dir=data_dir,
        report=report,
    )


def reconcile_counts(table: str, read: int, accepted: int, quarantined: int) -> None:
    """Raise if read != accepted + quarantined: no row may vanish or be counted twice."""
    if read != accepted + quarantined:
        raise RuntimeError(
            f"{table}: reconciliation failed: read {read} rows but accepted {accepted} + "
            f"quarantined {quarantined} = {accepted + quarantined}; this is a bug in earlysignal.contract"
        )


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


def _read_and_type(name: str, path: Path) -> tuple[pa.Table, pa.Table, dict[str, np.ndarray], list[str]]:
    """Read one table file; return (raw table, typed table, unparseable masks per column, warnings)."""
    if path.stat().st_size == 0:
        raise ContractError(f"{path.name} is empty (0 bytes); expected table {name} with a header row")
    raw = _read_csv(path) if path.suffix == ".csv" else _read_parquet(path, name)
    warnings: list[str] = []
    if raw.num_rows == 0 and name not in EMPTY_ALLOWED:
        raise ContractError(f"{path.name} has a header but no rows; table {name} cannot be empty")
    if raw.num_rows == 0:
        warnings.append(f"{path.name} has no rows")

    typed_columns: dict[str, pa.ChunkedArray] = {}
    unparseable: dict[str, np.ndarray] = {}
    for column in SCHEMAS[name]:
        if column.name not in raw.column_names:
            if not column.optional:
                raise ContractError(
                    f"{path.name}: required column {column.name} is missing; expected {_EXPECTED_TEXT[column.kind]}"
                    f" (columns found: {', '.join(raw.column_names)})"
                )
            warnings.append(f"{path.name}: optional column {column.name} is absent; treated as all null")
            typed_columns[column.name] = pa.chunked_array([pa.nulls(raw.num_rows, _arrow_type(column.kind))])
            continue
        typed, bad = _coerce(raw.column(column.name), column, path)
        typed_columns[column.name] = typed
        if bad is not None and bad.any():
            unparseable[column.name] = bad
    contract_names = {c.name for c in SCHEMAS[name]}
    # Extra columns (e.g. further protected characteristics) travel along unchecked.
    for extra in raw.column_names:
        if extra not in contract_names and extra not in (REASON_COLUMN, ROW_NUMBER_COLUMN):
            typed_columns[extra] = raw.column(extra)
    return raw, pa.table(typed_columns), unparseable, warnings


def _read_parquet(path: Path, name: str) -> pa.Table:
    try:
        schema = pq.read_schema(path)
        # Reading few-valued text columns as dictionaries skips decoding millions of strings
        # and makes the vocabulary check a lookup on a few codes.
        as_dictionary = [
            c.name
            for c in SCHEMAS[name]
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
        for delimiter, label in _DELIMITERS.items():
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
        "date": _TIMESTAMP,
        "timestamp": _TIMESTAMP,
        "float": pa.float64(),
        "bool": pa.bool_(),
    }[kind]


def _is_text(dtype: pa.DataType) -> bool:
    if pa.types.is_dictionary(dtype):
        return _is_text(dtype.value_type)
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype)


def _coerce(array: pa.ChunkedArray, column: Column, path: Path) -> tuple[pa.ChunkedArray, np.ndarray | None]:
    """Cast one column to its contract type; return it and a mask of values that could not be parsed."""
    dtype = array.type
    kind = column.kind
    if pa.types.is_null(dtype):
        return array.cast(_arrow_type(kind)), None
    if kind in ("id", "category"):
        if column.few_values and pa.types.is_dictionary(dtype) and _is_text(dtype):
            return array, None  # decoded to plain strings by _decoded() once checks are done
        if _is_text(dtype):
            return array.cast(pa.string()), None
        if kind == "id" and pa.types.is_integer(dtype):
            return array.cast(pa.string()), None
        _refuse_type(path, column, dtype)
    if kind in ("date", "timestamp"):
        if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype):
            # tz-aware timestamps hold UTC instants; dropping the zone keeps them as UTC wall time.
            typed = array.cast(_TIMESTAMP, safe=False)
            bad = None
        elif _is_text(dtype):
            typed, bad = _parse_text(array.cast(pa.string()), column, path)
        else:
            _refuse_type(path, column, dtype)
        if kind == "date":
            typed = pc.floor_temporal(typed, unit="day")
        return typed, bad
    if kind == "float":
        if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
            return array.cast(pa.float64()), None
        if _is_text(dtype):
            return _parse_text(array.cast(pa.string()), column, path)
        _refuse_type(path, column, dtype)
    if kind == "bool":
        if pa.types.is_boolean(dtype):
            return array, None
        if pa.types.is_integer(dtype) or _is_text(dtype):
            return _parse_text(array.cast(pa.string()), column, path)
        _refuse_type(path, column, dtype)
    raise AssertionError(f"unhandled column kind {kind}")  # pragma: no cover


def _refuse_type(path: Path, column: Column, dtype: pa.DataType) -> NoReturn:
    raise ContractError(
        f"{path.name}: column {column.name} has type {dtype}, which cannot be used as {_EXPECTED_TEXT[column.kind]}"
    )


_TRUE_TEXT = ("true", "t", "1", "yes", "y")
_FALSE_TEXT = ("false", "f", "0", "no", "n")


def _parse_text(array: pa.ChunkedArray, column: Column, path: Path) -> tuple[pa.ChunkedArray, np.ndarray]:
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
    if given and int(bad.sum()) == given:
        example = array.filter(pc.is_valid(array))[0].as_py()
        raise ContractError(
            f"{path.name}: column {column.name}: none of its {given} values can be read as "
            f"{_EXPECTED_TEXT[column.kind]} (the first has the shape {value_shape(example)!r})"
        )
    return parsed, bad


def _decoded(table: pa.Table) -> pa.Table:
    """The table with dictionary-encoded text columns turned into plain strings."""
    for index, column_type in enumerate(table.schema.types):
        if pa.types.is_dictionary(column_type) and _is_text(column_type):
            table = table.set_column(index, table.field(index).name, table.column(index).cast(pa.string()))
    return table


def value_shape(value: str, limit: int = 40) -> str:
    """A value with digits shown as 9 and letters as a: its format, without what could be a birth date or a name."""
    shape = "".join("9" if ch.isdigit() else "a" if ch.isalpha() else ch for ch in value[:limit])
    return shape + ("..." if len(value) > limit else "")


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    # split_blocks: no consolidation copy of same-dtype columns into 2-D blocks.
    return _decoded(table).to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get, split_blocks=True)


def _np(mask: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean Arrow array as a NumPy bool array, nulls as False."""
    filled = pc.fill_null(mask, False)
    if isinstance(filled, pa.ChunkedArray):
        if filled.num_chunks == 0:
            return np.zeros(0, dtype=bool)
        filled = filled.combine_chunks()
    return filled.to_numpy(zero_copy_only=False).astype(bool, copy=False)


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


class _Reasons:
    """The first failing check of every row, as a small integer code (0 = accepted)."""

    def __init__(self, n_rows: int, table: str | None = None) -> None:
        self.codes = np.zeros(n_rows, dtype=np.uint8)
        self.labels: list[str] = []
        self.declared = CHECK_ORDER.get(table, ()) if table else ()

    def flag(self, reason: str, mask: np.ndarray) -> None:
        """Give `reason` to the rows in mask that no earlier check has quarantined."""
        # Keeps CHECK_ORDER (what the report and docs list) true to what the code checks.
        if self.declared and not reason.startswith("unparseable:") and reason not in self.declared:
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
    seen_residents: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    accepted_residents: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    seen_addresses: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    accepted_addresses: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    event_sources: set[str] = field(default_factory=set)

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


def _flag_nulls(table: pa.Table, reasons: _Reasons, table_name: str) -> None:
    for column in SCHEMAS[table_name]:
        if column.nullable:
            continue
        prefix = "null_key" if column.kind == "id" else "null_value"
        reasons.flag(f"{prefix}:{column.name}", _np(pc.is_null(table.column(column.name))))


def _flag_allowed(table: pa.Table, reasons: _Reasons, table_name: str) -> None:
    for column in SCHEMAS[table_name]:
        if column.allowed:
            values = table.column(column.name)
            outside = pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, value_set=pa.array(column.allowed))))
            reasons.flag(f"invalid_value:{column.name}", _np(outside))


def _flag_after_extract(table: pa.Table, reasons: _Reasons, columns: tuple[str, ...], context: _Context) -> None:
    limit = pa.scalar(context.after_extract_us, _TIMESTAMP)
    mask = np.zeros(table.num_rows, dtype=bool)
    for name in columns:
        mask |= _np(pc.greater_equal(table.column(name), limit))
    reasons.flag("after_extract_date", mask)


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
    _flag_nulls(table, reasons, "residents")
    _flag_allowed(table, reasons, "residents")
    reasons.flag("death_before_birth", _np(pc.less(table.column("death_date"), table.column("birth_date"))))
    _flag_after_extract(table, reasons, ("birth_date",), context)
    _flag_duplicates(table, reasons, "resident_id", tuple(c.name for c in SCHEMAS["residents"]))


def _check_residency(table: pa.Table, reasons: _Reasons, context: _Context) -> None:
    _flag_nulls(table, reasons, "residency")
    _flag_allowed(table, reasons, "residency")
    reasons.flag("end_not_after_start", _np(pc.less_equal(table.column("end_date"), table.column("start_date"))))
    _flag_after_extract(table, reasons, ("start_date",), context)
    _flag_duplicates(table, reasons, None, tuple(c.name for c in SCHEMAS["residency"]))
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
        residents = pool.submit(
            _reference_masks, table.column("resident_id"), context.accepted_residents, context.seen_residents
        )
        addresses = pool.submit(
            _reference_masks, table.column("address_id"), context.accepted_addresses, context.seen_addresses
        )
        _flag_nulls(table, reasons, "events")
        reasons.flag(
            "missing_resident_and_address",
            _np(pc.and_(pc.is_null(table.column("resident_id")), pc.is_null(table.column("address_id")))),
        )
        reasons.flag("unknown_event_type", ~_in_vocabulary(table))
        value = table.column("value")
        reasons.flag("non_finite_value", _np(pc.invert(pc.is_finite(value))))
        reasons.flag("negative_value", _np(pc.less(value, 0.0)))
        reasons.flag(
            "known_at_before_event_time", _np(pc.less(table.column("known_at"), table.column("event_time")))
        )
        _flag_after_extract(table, reasons, ("event_time", "known_at"), context)
        _flag_duplicates(table, reasons, "event_id", tuple(c.name for c in SCHEMAS["events"]))
        _flag_reference_masks(residents.result(), reasons, "resident")
        _flag_reference_masks(addresses.result(), reasons, "address")


def _in_vocabulary(table: pa.Table) -> np.ndarray:
    """Rows whose (source, event_type) pair is in EVENT_VOCABULARY (a null counts as in: flagged earlier)."""
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
        allowed = np.ones((len(sources) + 1, len(types) + 1), dtype=bool)  # last row/column: null
        for i, s in enumerate(sources):
            for j, t in enumerate(types):
                allowed[i, j] = t in EVENT_VOCABULARY.get(s, ())
        parts.append(allowed[source_codes, type_codes])
    return np.concatenate(parts)


def _check_outcomes(table: pa.Table, reasons: _Reasons, context: _Context) -> None:
    _flag_nulls(table, reasons, "outcomes")
    outcome_type = table.column("outcome_type")
    reasons.flag(
        "unknown_outcome_type",
        _np(pc.invert(pc.is_in(outcome_type, value_set=pa.array(context.outcome_types, pa.string())))),
    )
    reasons.flag(
        "known_at_before_outcome_time", _np(pc.less(table.column("known_at"), table.column("outcome_time")))
    )
    reasons.flag("end_before_outcome_time", _np(pc.less(table.column("end_time"), table.column("outcome_time"))))
    _flag_after_extract(table, reasons, ("outcome_time", "known_at"), context)
    _flag_duplicates(table, reasons, None, tuple(c.name for c in SCHEMAS["outcomes"]))
    _flag_reference(
        table.column("resident_id"), context.accepted_residents, context.seen_residents, reasons, "resident"
    )


_CHECKS: dict[str, Callable[[pa.Table, _Reasons, _Context], None]] = {
    "residents": _check_residents,
    "residency": _check_residency,
    "events": _check_events,
    "outcomes": _check_outcomes,
}


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _write_quarantine(raw: pa.Table, reasons: _Reasons, target: Path) -> int:
    """Write the quarantined rows with row_number and reason; return how many were written."""
    mask = ~reasons.ok()
    rows = np.flatnonzero(mask)
    quarantined = _decoded(raw.take(pa.array(rows)))
    for name in (ROW_NUMBER_COLUMN, REASON_COLUMN):
        if name in quarantined.column_names:
            quarantined = quarantined.drop_columns([name])
    quarantined = quarantined.append_column(ROW_NUMBER_COLUMN, pa.array(rows + 1, pa.int64()))
    quarantined = quarantined.append_column(REASON_COLUMN, reasons.reason_array(mask))
    with atomic_path(target) as tmp:
        pq.write_table(quarantined, tmp, compression="zstd")
    return quarantined.num_rows


def report_table(report: ValidationReport, all_checks: bool = False) -> Table:
    """A rich Table of read / accepted / quarantined per table and per check (failing checks, or all)."""
    from rich.table import Table

    table = Table(title=f"Data contract: {report.data_dir} (extract date {report.extract_date})")
    table.add_column("table / check")
    table.add_column("read", justify="right")
    table.add_column("accepted", justify="right")
    table.add_column("quarantined", justify="right")
    for name, counts in report.tables.items():
        style = "yellow" if counts.quarantined else None
        table.add_row(
            f"[bold]{name}[/bold] ({report.files[name].name})",
            f"{counts.read:,}",
            f"{counts.accepted:,}",
            f"{counts.quarantined:,}",
            style=style,
        )
        failing = report.checks.get(name, {})
        for reason, n in failing.items():
            table.add_row(f"  {reason}", "", "", f"{n:,}")
        passed = [reason for reason in CHECK_ORDER[name] if reason not in failing]
        if all_checks:
            for reason in passed:
                table.add_row(f"  {reason}", "", "", "0", style="dim")
        elif passed:
            label = f"{len(passed)} other checks passed" if failing else f"all {len(passed)} checks passed"
            table.add_row(f"  {label}", "", "", "0", style="dim")
    return table
