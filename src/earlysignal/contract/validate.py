"""Entry points: validate a borough folder table by table and return its accepted rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from earlysignal.config import ContractSection, ProjectConfig
from earlysignal.contract.checks import CHECKS, _Context, _Reasons
from earlysignal.contract.quarantine import write_quarantine as write_quarantine_file
from earlysignal.contract.reading import (
    _manifest_extract_date,
    _manifest_warnings,
    read_manifest,
    read_table,
    table_path,
    to_pandas,
)
from earlysignal.contract.results import LinkedData, TableCounts, ValidationReport
from earlysignal.contract.schemas import (
    CASCADE_REASONS,
    MANIFEST_NAME,
    OPTIONAL_TABLES,
    QUARANTINE_DIR,
    TABLE_NAMES,
    expanded_checks,
    table_schemas,
)
from earlysignal.dictionary import dictionary_for
from earlysignal.errors import ContractError, UnusableDataError

# Tables that must keep at least one accepted row for anything downstream to mean something.
REQUIRED_TABLES: tuple[str, ...] = ("residents", "events")


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
    """Validate every table of a borough folder (calling on_table(name) as each starts); see load_linked_data.

    Raises ContractError for a file that cannot be used at all, or when the accepted event values of one
    event type sum to infinity (sums, means and trends of them could not be computed).
    """
    setup = _setup(data_dir, config)
    data_dir, manifest, extract_date, schemas, context = (
        setup.data_dir, setup.manifest, setup.extract_date, setup.schemas, setup.context
    )
    tokens, codes = setup.tokens, setup.codes
    warnings: list[str] = []
    files: dict[str, Path] = {}
    frames: dict[str, pd.DataFrame] = {}
    counts: dict[str, TableCounts] = {}
    checks: dict[str, dict[str, int]] = {}
    normalised: dict[str, dict[str, int]] = {}
    not_recorded: dict[str, dict[str, int]] = {}
    dropped: dict[str, tuple[str, ...]] = {}
    quarantine_files: dict[str, Path] = {}
    quarantined_people: list[pd.DataFrame] = []

    for name in TABLE_NAMES:
        if on_table is not None:
            on_table(name)
        result = _validate_whole_table(name, data_dir, schemas, tokens, codes.get(name), context, write_quarantine)
        _collect(result, files, counts, checks, normalised, not_recorded, dropped, quarantine_files, warnings)
        if result.people is not None:
            quarantined_people.append(result.people)
        frames[name] = result.frame

    report = _report(
        data_dir, extract_date, manifest, files, counts, checks, quarantine_files, warnings, normalised,
        not_recorded, dropped, schemas, context,
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
        quarantined_residents=_people_frame(quarantined_people),
    )


@dataclass
class _Setup:
    """What every table's checks need: the manifest, the extract date, the schemas and the shared context."""

    data_dir: Path
    manifest: dict
    extract_date: dt.date
    schemas: dict
    context: _Context
    tokens: frozenset[str]
    codes: dict[str, dict[str, tuple[str, ...]]]


def _setup(data_dir: str | Path, config: ProjectConfig | None) -> _Setup:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ContractError(f"data folder {data_dir} does not exist or is not a folder")
    contract = config.contract if config is not None else ContractSection()
    dictionary = dictionary_for(config)
    manifest = read_manifest(data_dir)
    extract_date = _manifest_extract_date(manifest, data_dir / MANIFEST_NAME)
    # Rows dated on the extract date itself are kept (an extract taken that day can hold its
    # morning's records); anything from the next day on cannot have been extracted.
    after_extract = np.datetime64(extract_date + dt.timedelta(days=1), "us").astype(np.int64)
    schemas = table_schemas(dictionary)
    context = _Context(
        outcome_types=tuple(contract.outcome_types) or tuple(dictionary.outcomes),
        after_extract_us=int(after_extract),
        schemas=schemas,
        event_pairs=frozenset(dictionary.event_pairs()),
        negative_pairs=frozenset(dictionary.negative_allowed_pairs()),
    )
    codes = {
        "events": {
            "source": tuple(dictionary.sources),
            "event_type": tuple(sorted({t for _, t in dictionary.event_pairs()})),
        },
        "outcomes": {"outcome_type": context.outcome_types},
    }
    return _Setup(data_dir, manifest, extract_date, schemas, context, dictionary.not_recorded_tokens(), codes)


@dataclass
class _TableResult:
    """What validating one table gives: its accepted rows and everything the report says about it."""

    name: str
    path: Path
    frame: pd.DataFrame | None
    counts: TableCounts
    checks: dict[str, int]
    normalised: dict[str, int]
    not_recorded: dict[str, int]
    dropped: tuple[str, ...]
    warnings: list[str]
    quarantine_file: Path | None
    people: pd.DataFrame | None = None


def _collect(
    result: _TableResult,
    files: dict[str, Path],
    counts: dict[str, TableCounts],
    checks: dict[str, dict[str, int]],
    normalised: dict[str, dict[str, int]],
    not_recorded: dict[str, dict[str, int]],
    dropped: dict[str, tuple[str, ...]],
    quarantine_files: dict[str, Path],
    warnings: list[str],
) -> None:
    name = result.name
    files[name] = result.path
    counts[name] = result.counts
    checks[name] = result.checks
    normalised[name], not_recorded[name], dropped[name] = result.normalised, result.not_recorded, result.dropped
    warnings.extend(result.warnings)
    if result.quarantine_file is not None:
        quarantine_files[name] = result.quarantine_file


def _report(
    data_dir: Path,
    extract_date: dt.date,
    manifest: dict,
    files: dict[str, Path],
    counts: dict[str, TableCounts],
    checks: dict[str, dict[str, int]],
    quarantine_files: dict[str, Path],
    warnings: list[str],
    normalised: dict[str, dict[str, int]],
    not_recorded: dict[str, dict[str, int]],
    dropped: dict[str, tuple[str, ...]],
    schemas: dict,
    context: _Context,
) -> ValidationReport:
    for name, columns in normalised.items():
        for column, n in columns.items():
            warnings.append(f"{files[name].name}: {n:,} {column} code(s) normalised (surrounding spaces or letter case)")
    warnings.extend(_manifest_warnings(manifest, counts, context.event_sources))
    for name, n in context.known_after_extract.items():
        if n:
            warnings.append(f"{files[name].name}: {n:,} row(s) known after the extract date {extract_date} "
                            "(kept; used only at as-of dates after their known_at)")
    return ValidationReport(
        data_dir=data_dir,
        extract_date=extract_date,
        files=files,
        tables=counts,
        checks=checks,
        quarantine_files=quarantine_files,
        warnings=tuple(warnings),
        normalised=normalised,
        not_recorded=not_recorded,
        dropped_columns=dropped,
        check_names={name: expanded_checks(name, schemas[name]) for name in TABLE_NAMES},
        absent_tables=tuple(name for name in TABLE_NAMES if name in OPTIONAL_TABLES and not files[name].exists()),
    )


def _validate_whole_table(
    name: str,
    data_dir: Path,
    schemas: dict,
    tokens: frozenset[str],
    codes: dict[str, tuple[str, ...]] | None,
    context: _Context,
    write_quarantine: bool,
) -> _TableResult:
    """Read, check and (optionally) quarantine one table held whole in memory; its accepted rows as pandas."""
    path = table_path(data_dir, name)
    table = read_table(name, path, schemas[name], tokens, codes)
    raw, typed = table.raw, table.typed
    reasons = _Reasons(typed.num_rows, name)
    for column, mask in table.unparseable.items():
        reasons.flag(f"unparseable:{column}", mask)
    CHECKS[name](typed, reasons, context)
    accepted_mask = reasons.ok()
    accepted = typed if accepted_mask.all() else typed.filter(pa.array(accepted_mask))
    # Counted independently: rows in the file, rows that survived the filter, rows given a reason.
    quarantined = reasons.count()
    reconcile_counts(name, read=raw.num_rows, accepted=accepted.num_rows, quarantined=quarantined)
    context.remember(name, typed, accepted)
    people = None
    if name in ("residents", "residency") and quarantined:
        people = _quarantined_people(name, typed, reasons)
    if name == "events":
        _refuse_infinite_sums(accepted, np.flatnonzero(accepted_mask), path)
    quarantine_file = None
    if write_quarantine and not (name in OPTIONAL_TABLES and not path.exists()):
        target = data_dir / QUARANTINE_DIR / f"{name}.parquet"
        try:
            if quarantined:
                written = write_quarantine_file(raw, reasons, target)
                reconcile_counts(name, read=raw.num_rows, accepted=accepted.num_rows, quarantined=written)
                quarantine_file = target
            elif target.exists():
                # A stale file from an earlier run would report problems this data no longer has.
                target.unlink()
        except OSError as error:
            raise ContractError(
                f"cannot write quarantine file {target}: {error}; "
                "fix the folder's permissions or validate without writing quarantine files"
            ) from None
    result = _TableResult(
        name=name,
        path=path,
        frame=None,
        counts=TableCounts(read=raw.num_rows, accepted=accepted.num_rows, quarantined=quarantined),
        checks=reasons.counts(),
        normalised=table.normalised,
        not_recorded=table.not_recorded,
        dropped=table.dropped,
        warnings=table.warnings,
        quarantine_file=quarantine_file,
        people=people,
    )
    # Let the file's Arrow buffers go before pandas copies: at 20M events that is gigabytes.
    del raw, typed, reasons, table
    result.frame = to_pandas(accepted)
    return result


def _quarantined_people(name: str, typed: pa.Table, reasons: _Reasons) -> pd.DataFrame:
    """Residents quarantined (with their own reason), or the residency spells of quarantined residents."""
    mask = ~reasons.ok()
    rows = typed.select(["resident_id"] + (["start_date", "end_date"] if name == "residency" else []))
    frame = rows.filter(pa.array(mask)).to_pandas()
    frame["reason"] = reasons.reason_array(mask).to_pandas()
    frame = frame[frame["resident_id"].notna()]
    if name == "residency":
        # Spells of quarantined residents take the resident's reason; any other quarantined spell keeps
        # its own (an overlapping or duplicate move), so its resident is not lost from the lists either.
        return frame.assign(spell_reason=frame["reason"].where(frame["reason"] != "quarantined_resident")).drop(
            columns="reason"
        )
    return frame.drop_duplicates("resident_id")


def _people_frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """One row per (quarantined resident, residency spell): resident_id, reason, start_date, end_date."""
    columns = ["resident_id", "reason", "start_date", "end_date"]
    empty = pd.DataFrame({c: pd.Series(dtype="str" if c in ("resident_id", "reason") else "datetime64[us]") for c in columns})
    residents = next((p for p in parts if "reason" in p.columns), None)
    all_spells = next((p for p in parts if "start_date" in p.columns), None)
    own = pd.DataFrame(columns=columns)
    if all_spells is not None:
        # Spells quarantined for their own reason, of residents whose record was accepted.
        own = all_spells[all_spells["spell_reason"].notna()].rename(columns={"spell_reason": "reason"})[columns]
        if residents is not None:
            own = own[~own["resident_id"].isin(residents["resident_id"])]
    if residents is None:
        if own.empty:
            return empty
        return own.sort_values(["resident_id", "start_date"], kind="stable").reset_index(drop=True)
    if all_spells is None:
        frame = residents.assign(start_date=pd.NaT, end_date=pd.NaT)
    else:
        spells = all_spells[all_spells["spell_reason"].isna()].drop(columns="spell_reason")
        frame = residents.merge(spells, on="resident_id", how="left")
    if not own.empty:
        frame = pd.concat([frame[columns], own], ignore_index=True)
    return frame[columns].sort_values(["resident_id", "start_date"], kind="stable").reset_index(drop=True)


def reconcile_counts(table: str, read: int, accepted: int, quarantined: int) -> None:
    """Raise if read != accepted + quarantined: no row may vanish or be counted twice."""
    if read != accepted + quarantined:
        raise RuntimeError(
            f"{table}: reconciliation failed: read {read} rows but accepted {accepted} + "
            f"quarantined {quarantined} = {accepted + quarantined}; this is a bug in earlysignal.contract"
        )


def _refuse_infinite_sums(accepted: pa.Table, file_rows: np.ndarray, path: Path) -> None:
    """ContractError when the accepted values of one (source, event_type) sum to +-infinity.

    Every feature sum is over a subset of one event type's rows (a window, a household), so a finite
    total of absolute values guarantees every sum, mean and trend is finite too.
    """
    if accepted.num_rows == 0:
        return
    frame = pd.DataFrame(
        {
            "source": accepted.column("source").to_pandas().astype(str),
            "event_type": accepted.column("event_type").to_pandas().astype(str),
            "magnitude": np.abs(accepted.column("value").to_numpy(zero_copy_only=False).astype(np.float64)),
        }
    )
    with np.errstate(over="ignore"):
        totals = frame.groupby(["source", "event_type"], sort=True)["magnitude"].sum()
    infinite = totals[~np.isfinite(totals.to_numpy())]
    if infinite.empty:
        return
    source, event_type = infinite.index[0]
    rows = frame.index[(frame["source"] == source) & (frame["event_type"] == event_type)]
    largest = frame.loc[rows, "magnitude"].sort_values(ascending=False, kind="stable").index[:5]
    raise _infinite_sum_error(path, source, event_type, [int(file_rows[i]) + 1 for i in sorted(largest)])


def _infinite_sum_error(path: Path, source: str, event_type: str, rows: list[int]) -> ContractError:
    """The error for values of one event type adding up to infinity; `rows` are 1-based data rows."""
    where = ", ".join(f"row {row}" for row in rows)
    return ContractError(
        f"{path.name}: column value: the values of {source}/{event_type} add up to infinity, so sums, means and "
        f"trends of them cannot be computed; the largest are in {where} (1-based data rows). Check the unit of "
        f"value for this event type (a value such as 1e308 is not a real measurement) and correct or remove them"
    )


def require_usable(report: ValidationReport, contract: ContractSection | None = None) -> None:
    """Raise UnusableDataError when a required table has no accepted rows or a table quarantines too much.

    The limit is `contract.max_quarantine_share` of a table's rows, counting rows quarantined for their own
    fault; rows quarantined only because their person or address was are reported separately.
    """
    limit = (contract or ContractSection()).max_quarantine_share
    problems: list[str] = []
    for name, counts in report.tables.items():
        own = report.own_fault_quarantined(name)
        cascade = report.cascade_quarantined(name)
        top = sorted(
            ((n, reason) for reason, n in report.checks.get(name, {}).items() if reason not in CASCADE_REASONS),
            reverse=True,
        )[:3]
        reasons = ", ".join(f"{reason} {n:,}" for n, reason in top) or "none of their own"
        extra = f"; a further {cascade:,} because their person or address was quarantined" if cascade else ""
        if name in REQUIRED_TABLES and counts.accepted == 0:
            problems.append(
                f"{name}: no row accepted out of {counts.read:,} (top reasons: {reasons}{extra})"
            )
        elif counts.read and own / counts.read > limit:
            problems.append(
                f"{name}: {own:,} of {counts.read:,} rows ({own / counts.read:.1%}) quarantined, above the limit of "
                f"{limit:.1%} (contract.max_quarantine_share) (top reasons: {reasons}{extra})"
            )
    if problems:
        raise UnusableDataError(
            f"the data in {report.data_dir} is not usable as it stands:\n  "
            + "\n  ".join(problems)
            + f"\nSee the quarantine files in {report.data_dir / QUARANTINE_DIR} and docs/data-contract.md; declare "
            "codes the data really uses in the data dictionary, or raise contract.max_quarantine_share deliberately."
        )


