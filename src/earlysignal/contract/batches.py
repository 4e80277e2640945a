"""What checking a table batch by batch adds up to: one tally shared by the bucketed residents and residency
(contract/by_resident.py) and the events read in file batches (contract/streaming.py), so both give the
counts, reasons and refusals the whole-table validation gives."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from earlysignal.contract.checks import _Reasons
from earlysignal.contract.reading import TypedTable, value_shape
from earlysignal.contract.results import TableCounts
from earlysignal.contract.schemas import EXPECTED_TEXT, expanded_checks
from earlysignal.contract.validate import _TableResult, reconcile_counts
from earlysignal.errors import ContractError


@dataclasses.dataclass
class BatchTally:
    """Running counts of one table checked in batches: rows read, accepted and quarantined, quarantine
    reasons, normalised and not-recorded values per column, and per column the values that could and could
    not be parsed (a column none of whose values parse is refused, whichever batches they fell in)."""

    name: str
    read: int = 0
    accepted: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = dataclasses.field(default_factory=dict)
    normalised: dict[str, int] = dataclasses.field(default_factory=dict)
    not_recorded: dict[str, int] = dataclasses.field(default_factory=dict)
    unreadable: dict[str, int] = dataclasses.field(default_factory=dict)
    parsed: dict[str, int] = dataclasses.field(default_factory=dict)
    first_bad: dict[str, tuple[int, Any]] = dataclasses.field(default_factory=dict)

    def flag_unparseable(self, table: TypedTable, reasons: _Reasons, file_rows: np.ndarray) -> None:
        """Flag each batch row with an unparseable value in `reasons` and count every column's parsed and
        unparseable values; `file_rows[i]` is batch row i's row in the file (0-based)."""
        for column, mask in table.unparseable.items():
            reasons.flag(f"unparseable:{column}", mask)
            self.unreadable[column] = self.unreadable.get(column, 0) + int(mask.sum())
            if mask.any():
                at = int(np.flatnonzero(mask)[0])
                if column not in self.first_bad or file_rows[at] < self.first_bad[column][0]:
                    self.first_bad[column] = (int(file_rows[at]), table.raw.column(column)[at].as_py())
        typed = table.typed
        for column in typed.column_names:
            self.parsed[column] = self.parsed.get(column, 0) + typed.num_rows - typed.column(column).null_count

    def add(self, table: TypedTable, reasons: _Reasons, accepted: int) -> None:
        """Count one checked batch: `accepted` of its rows kept, the rest quarantined for `reasons`.
        Raises RuntimeError if the batch's rows do not reconcile (a bug, never bad data)."""
        quarantined = reasons.count()
        reconcile_counts(self.name, read=table.raw.num_rows, accepted=accepted, quarantined=quarantined)
        self.read += table.raw.num_rows
        self.accepted += accepted
        self.quarantined += quarantined
        for totals, batch in (
            (self.reasons, reasons.counts()), (self.normalised, table.normalised), (self.not_recorded, table.not_recorded)
        ):
            for key, n in batch.items():
                totals[key] = totals.get(key, 0) + n

    def result(
        self,
        path: Path,
        columns: tuple[Any, ...],
        dropped: tuple[str, ...],
        warnings: list[str],
        quarantine_file: Path | None,
        people: Any = None,
    ) -> _TableResult:
        """The table's result as the whole-table validation gives it (reasons in the contract's check order).
        Raises RuntimeError if the counts do not reconcile (a bug, never bad data)."""
        reconcile_counts(self.name, read=self.read, accepted=self.accepted, quarantined=self.quarantined)
        order = {check: i for i, check in enumerate(expanded_checks(self.name, columns))}
        checks = dict(sorted(self.reasons.items(), key=lambda item: (item[0] in order, order.get(item[0], 0))))
        return _TableResult(
            name=self.name,
            path=path,
            frame=None,
            counts=TableCounts(read=self.read, accepted=self.accepted, quarantined=self.quarantined),
            checks=checks,
            normalised=self.normalised,
            not_recorded=self.not_recorded,
            dropped=dropped,
            warnings=warnings,
            quarantine_file=quarantine_file,
            people=people,
        )

    def refuse_unreadable(self, path: Path, columns: tuple[Any, ...]) -> None:
        """Raise ContractError for a column none of whose values (over every batch) could be read, as
        the whole-table validation does."""
        for column, bad in self.unreadable.items():
            given = bad + self.parsed.get(column, 0)
            if bad and given == bad:
                kind = next(c.kind for c in columns if c.name == column)
                raise ContractError(
                    f"{path.name}: column {column}: none of its {given} values can be read as "
                    f"{EXPECTED_TEXT[kind]} (the first has the shape {value_shape(str(self.first_bad[column][1]))!r})"
                )
