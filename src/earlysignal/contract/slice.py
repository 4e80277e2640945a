"""One resident's slice of a borough: their rows, their household's and their home's, validated by the
contract's own reading and row checks, without reading or checking everyone else's.

A caseworker's journey or a resident's explanation needs a few hundred rows of a borough of millions.
`load_resident_slice` keeps only these rows (events are filtered by DuckDB as it reads the Parquet file,
the small tables after reading them):

- residency: the resident's spells, the spells of their household on as_of, every spell at an
  address one of the slice's events is recorded at (the address check looks those up), and every
  other spell of the people those spells name (the overlap check compares a person's spells);
- events: those of the household's members (on as_of) and those recorded at their address on as_of,
  plus every other row sharing an event_id with them (the duplicate check compares copies);
- outcomes: the members';
- residents: everyone the residency, event and outcome slices name (the reference checks look them up).

Each slice then goes through `read_table` and the same checks, in the same order, as
`load_linked_data`, so a row the whole-borough validation quarantines is quarantined here too: its
reasons are about the row itself, its copies, or rows it refers to, and all of those are in the slice.
Counts in the returned report are the slice's, not the borough's. CSV tables cannot be read by
filter: with any table in CSV, or an ID column stored as anything but text, the whole borough is
loaded instead (`load_linked_data`), with the same result.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from earlysignal.config import ProjectConfig
from earlysignal.contract.checks import CHECKS, _Reasons
from earlysignal.contract.reading import read_table, table_path, to_pandas
from earlysignal.contract.results import LinkedData, TableCounts, ValidationReport
from earlysignal.contract.schemas import OPTIONAL_TABLES, TABLE_NAMES, expanded_checks
from earlysignal.contract.validate import _setup, load_linked_data
from earlysignal.errors import ContractError

_ID_COLUMNS = {
    "residents": ("resident_id",),
    "residency": ("resident_id", "household_id", "address_id"),
    "events": ("resident_id", "address_id", "event_id"),
    "outcomes": ("resident_id",),
}


def _filterable(paths: dict[str, Path]) -> bool:
    """Every table is Parquet (or absent and optional) with its ID columns stored as text."""
    for name, path in paths.items():
        if not path.exists():
            if name in OPTIONAL_TABLES:
                continue
            return False
        if path.suffix != ".parquet":
            return False
        schema = pq.read_schema(path)
        for column in _ID_COLUMNS[name]:
            if column in schema.names:
                kind = schema.field(column).type
                if pa.types.is_dictionary(kind):
                    kind = kind.value_type
                if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
                    return False
    return True


def _text(values: pa.ChunkedArray | pa.Array) -> set[str]:
    return {str(v) for v in pc.unique(values.drop_null()).to_pylist()}


def _where(table: pa.Table, column: str, values: set[str]) -> pa.Array:
    """Rows of table whose column is one of values (null: no)."""
    if column not in table.column_names or not values:
        return pa.array(np.zeros(table.num_rows, dtype=bool))
    return pc.fill_null(pc.is_in(table.column(column), pa.array(sorted(values), pa.string())), False)


def _covering(spells: pa.Table, as_of: dt.date) -> pa.Table:
    """Spells covering as_of (start <= as_of < end, open end), as household_at reads them."""
    if spells.num_rows == 0:
        return spells
    frame = spells.select(["start_date", "end_date"]).to_pandas()
    ts = pd.Timestamp(as_of)
    start = pd.to_datetime(frame["start_date"], errors="coerce")
    end = pd.to_datetime(frame["end_date"], errors="coerce")
    return spells.filter(pa.array(((start <= ts) & (end.isna() | (end > ts))).to_numpy()))


def _events_of(path: Path, members: set[str], homes: set[str]) -> pa.Table:
    """Events of the members or at the homes, and every other copy of their event IDs, in file order.

    DuckDB reads the filter columns first and the rest only for matching rows, so this is one pass
    over a file of millions of events rather than a full decode."""
    import duckdb

    connection = duckdb.connect()
    try:
        connection.register("slice_members", pa.table({"id": pa.array(sorted(members), pa.string())}))
        connection.register("slice_homes", pa.table({"id": pa.array(sorted(homes), pa.string())}))
        mine = ("(resident_id IN (SELECT id FROM slice_members) OR address_id IN (SELECT id FROM slice_homes))")
        source = "'" + str(path).replace("'", "''") + "'"
        table = connection.sql(
            f"""SELECT * EXCLUDE (file_row_number) FROM read_parquet({source}, file_row_number = true)
            WHERE {mine} OR event_id IN (SELECT event_id FROM read_parquet({source}) WHERE {mine})
            ORDER BY file_row_number"""
        ).to_arrow_table()
    finally:
        connection.close()
    return table


def _read(path: Path) -> pa.Table:
    return pq.read_table(path) if path.exists() else pa.table({})


def _slice_rows(paths: dict[str, Path], resident_id: str, as_of: dt.date) -> dict[str, pa.Table]:
    """Each table's rows for one resident's slice, as stored in the files (file order kept)."""
    spells = _read(paths["residency"])
    own = _covering(spells.filter(_where(spells, "resident_id", {resident_id})), as_of)
    households = _text(own.column("household_id")) if own.num_rows else set()
    homes = _text(own.column("address_id")) if own.num_rows else set()
    members = {resident_id}
    if households:
        family = _covering(spells.filter(_where(spells, "household_id", households)), as_of)
        members |= _text(family.column("resident_id"))
    events = _events_of(paths["events"], members, homes)
    places = homes | (_text(events.column("address_id")) if events.num_rows else set())
    chosen = pc.or_(pc.or_(_where(spells, "resident_id", members), _where(spells, "household_id", households)),
                    _where(spells, "address_id", places))
    named = _text(spells.column("resident_id").filter(chosen)) if spells.num_rows else set()
    # Every spell of everyone named: the overlap check compares a person's spells with each other.
    residency = spells.filter(pc.or_(chosen, _where(spells, "resident_id", named))) if spells.num_rows else spells
    outcomes = _read(paths["outcomes"])
    outcomes = outcomes.filter(_where(outcomes, "resident_id", members)) if outcomes.num_rows else outcomes
    # Outcomes are the members' only, so they name no one the others do not.
    people = members | named | (_text(events.column("resident_id")) if events.num_rows else set())
    residents = _read(paths["residents"])
    return {
        "residents": residents.filter(_where(residents, "resident_id", people)),
        "residency": residency,
        "events": events,
        "outcomes": outcomes,
    }


def load_resident_slice(
    data_dir: str | Path, config: ProjectConfig | None, resident_id: str, as_of: dt.date
) -> LinkedData:
    """The accepted rows a journey or explanation of resident_id at as_of reads (see the module text),
    as LinkedData with the contract's dtypes; the report counts the slice's rows. Falls back to
    load_linked_data (whole borough, no quarantine files written) when a table cannot be read by filter.
    Raises ContractError as load_linked_data does for a file that cannot be used at all."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ContractError(f"data folder {data_dir} does not exist or is not a folder")
    paths = {name: table_path(data_dir, name) for name in TABLE_NAMES}
    if not _filterable(paths):
        return load_linked_data(data_dir, config, write_quarantine=False)
    # The same manifest, extract date, schemas, codes and check context as whole-borough validation.
    setup = _setup(data_dir, config)
    manifest, extract_date, schemas, context, codes = (
        setup.manifest, setup.extract_date, setup.schemas, setup.context, setup.codes)
    rows = _slice_rows(paths, str(resident_id), as_of)
    frames: dict[str, pd.DataFrame] = {}
    counts: dict[str, TableCounts] = {}
    checks: dict[str, dict[str, int]] = {}
    warnings: list[str] = []
    for name in TABLE_NAMES:
        table = read_table(name, paths[name], schemas[name], setup.tokens, codes.get(name),
                           rows=rows[name] if paths[name].exists() else None)
        warnings.extend(table.warnings)
        reasons = _Reasons(table.typed.num_rows, name)
        for column, mask in table.unparseable.items():
            reasons.flag(f"unparseable:{column}", mask)
        CHECKS[name](table.typed, reasons, context)
        accepted_mask = reasons.ok()
        accepted = table.typed if accepted_mask.all() else table.typed.filter(pa.array(accepted_mask))
        counts[name] = TableCounts(read=table.raw.num_rows, accepted=accepted.num_rows, quarantined=reasons.count())
        checks[name] = reasons.counts()
        context.remember(name, table.typed, accepted)
        frames[name] = to_pandas(accepted)
    report = ValidationReport(
        data_dir=data_dir, extract_date=extract_date, files=paths, tables=counts, checks=checks,
        quarantine_files={}, warnings=tuple(warnings), normalised={}, not_recorded={}, dropped_columns={},
        check_names={name: expanded_checks(name, schemas[name]) for name in TABLE_NAMES},
    )
    return LinkedData(
        residents=frames["residents"], residency=frames["residency"], events=frames["events"],
        outcomes=frames["outcomes"], manifest=manifest, extract_date=extract_date, data_dir=data_dir, report=report,
    )
