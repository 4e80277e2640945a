"""What validation returns: counts per table, the report, and the accepted linked data."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from earlysignal.contract.schemas import CASCADE_REASONS


@dataclass(frozen=True)
class TableCounts:
    """Rows read from one table's file, and how many were accepted and quarantined."""

    read: int
    accepted: int
    quarantined: int


@dataclass(frozen=True)
class ValidationReport:
    """What validation found: counts per table and per check, quarantine files, warnings.

    `normalised` counts, per table and column, codes rewritten to their declared spelling (surrounding
    spaces or letter case); `not_recorded` counts values such as 'Unknown' read as not recorded;
    `dropped_columns` names input columns the contract does not know (dropped, never quarantined).
    """

    data_dir: Path
    extract_date: dt.date
    files: dict[str, Path]
    tables: dict[str, TableCounts]
    checks: dict[str, dict[str, int]]  # table -> reason code -> rows quarantined for it
    quarantine_files: dict[str, Path]
    warnings: tuple[str, ...] = ()
    normalised: dict[str, dict[str, int]] = field(default_factory=dict)
    not_recorded: dict[str, dict[str, int]] = field(default_factory=dict)
    dropped_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    check_names: dict[str, tuple[str, ...]] = field(default_factory=dict)  # every check run, per table, in order
    absent_tables: tuple[str, ...] = ()  # optional tables with no file in the folder (e.g. residency)

    @property
    def total_quarantined(self) -> int:
        """Rows quarantined over all tables."""
        return sum(counts.quarantined for counts in self.tables.values())

    def own_fault_quarantined(self, table: str) -> int:
        """Rows of `table` quarantined for their own fault (not only because their person or address was)."""
        return sum(n for reason, n in self.checks.get(table, {}).items() if reason not in CASCADE_REASONS)

    def cascade_quarantined(self, table: str) -> int:
        """Rows of `table` quarantined only because the person or address they belong to was."""
        return sum(n for reason, n in self.checks.get(table, {}).items() if reason in CASCADE_REASONS)

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
            "normalised": {name: dict(columns) for name, columns in self.normalised.items() if columns},
            "not_recorded": {name: dict(columns) for name, columns in self.not_recorded.items() if columns},
            "dropped_columns": {name: list(columns) for name, columns in self.dropped_columns.items() if columns},
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class LinkedData:
    """Accepted rows of every table, with contract dtypes, plus the manifest and the validation report.

    Dtypes: identifiers and other text are pandas' string dtype (`str`); every date and timestamp
    column is `datetime64[us]` (date columns hold midnight); `value` and number attributes are
    float64; boolean attributes are pandas' nullable `boolean`. Attribute columns are those the data
    dictionary declares (values meaning 'not recorded' are null).
    """

    residents: pd.DataFrame
    residency: pd.DataFrame
    events: pd.DataFrame
    outcomes: pd.DataFrame
    manifest: dict[str, Any]
    extract_date: dt.date
    data_dir: Path
    report: ValidationReport
    # Residents the contract quarantined, with their reason and their residency spells (which were
    # quarantined with them), so `score` can list them as unscored rather than lose them.
    quarantined_residents: pd.DataFrame | None = None
