"""Quarantine files and the counts table printed by `earlysignal validate`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from earlysignal.atomic import atomic_path
from earlysignal.contract.checks import _Reasons
from earlysignal.contract.reading import decoded
from earlysignal.contract.results import ValidationReport
from earlysignal.contract.schemas import CASCADE_REASONS, CHECK_ORDER, REASON_COLUMN, ROW_NUMBER_COLUMN

if TYPE_CHECKING:
    from rich.table import Table


def write_quarantine(raw: pa.Table, reasons: _Reasons, target: Path) -> int:
    """Write the quarantined rows (contract columns as read, row_number, reason); return how many were written.

    `raw` holds only the contract's columns: columns the contract does not know were dropped on
    reading, so a name or address column never reaches a quarantine file.
    """
    mask = ~reasons.ok()
    rows = np.flatnonzero(mask)
    quarantined = decoded(raw.take(pa.array(rows)))
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
        if name in report.absent_tables:
            # No file, so no rows and no checks: say so rather than "0 read, all checks passed".
            table.add_row(f"[bold]{name}[/bold] (not provided)", "–", "–", "–", style="dim")
            continue
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
            because = " (their person or address was quarantined)" if reason in CASCADE_REASONS else ""
            table.add_row(f"  {reason}{because}", "", "", f"{n:,}")
        for column, n in report.normalised.get(name, {}).items():
            table.add_row(f"  normalised {column} (spaces / letter case)", "", f"{n:,}", "", style="cyan")
        for column, n in report.not_recorded.get(name, {}).items():
            table.add_row(f"  {column} read as not recorded", "", f"{n:,}", "", style="cyan")
        if report.dropped_columns.get(name):
            table.add_row(f"  dropped unknown columns: {', '.join(report.dropped_columns[name])}", "", "", "", style="cyan")
        declared = report.check_names.get(name) or tuple(r for r in CHECK_ORDER[name] if "<" not in r)
        passed = [reason for reason in declared if reason not in failing]
        if all_checks:
            for reason in passed:
                table.add_row(f"  {reason}", "", "", "0", style="dim")
        elif passed:
            label = f"{len(passed)} other checks passed" if failing else f"all {len(passed)} checks passed"
            table.add_row(f"  {label}", "", "", "0", style="dim")
    return table

