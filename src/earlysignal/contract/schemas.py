"""Contract tables, their columns and the order of row checks.

The key, time and link columns are the contract's own; the person attributes of `residents` and
`residency` (and the allowed source / event_type / outcome_type codes) come from the data
dictionary, so `table_schemas(dictionary)` builds the columns for one borough.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from earlysignal.dictionary import AttributeSpec, DataDictionary

TABLE_NAMES: tuple[str, ...] = ("residents", "residency", "events", "outcomes")
MANIFEST_NAME = "manifest.json"
QUARANTINE_DIR = "quarantine"
REASON_COLUMN = "reason"
ROW_NUMBER_COLUMN = "row_number"

Kind = Literal["id", "category", "date", "timestamp", "float", "bool"]

EXPECTED_TEXT: dict[str, str] = {
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
    normalise: bool = False  # codes: surrounding spaces and letter case are normalised (and counted)
    warn_if_absent: bool = True
    not_recorded: bool = False  # a person attribute: the dictionary's "not recorded" values read as null


_RESIDENT_KEYS = (Column("resident_id", "id"),)
_RESIDENCY_KEYS = (
    Column("resident_id", "id"),
    Column("household_id", "id"),
    Column("address_id", "id"),
    Column("start_date", "date"),
    Column("end_date", "date", nullable=True),
)
_EVENTS = (
    Column("event_id", "id"),
    Column("resident_id", "id", nullable=True),
    Column("address_id", "id", nullable=True),
    Column("source", "category", few_values=True, normalise=True),
    Column("event_type", "category", few_values=True, normalise=True),
    Column("event_time", "timestamp"),
    Column("known_at", "timestamp"),
    Column("value", "float", nullable=True, optional=True),
    # Which code-list entry or rule coded the event (written by `earlysignal ingest`).
    Column("coded_by", "category", nullable=True, optional=True, few_values=True, warn_if_absent=False),
)
_OUTCOMES = (
    Column("resident_id", "id"),
    Column("outcome_type", "category", normalise=True),
    Column("outcome_time", "timestamp"),
    Column("known_at", "timestamp"),
    Column("end_time", "timestamp", nullable=True, optional=True),
)

_ATTRIBUTE_KINDS: dict[str, Kind] = {"category": "category", "number": "float", "date": "date", "boolean": "bool"}


def attribute_column(name: str, spec: AttributeSpec) -> Column:
    """The contract column of a declared attribute: optional, nullable (null = not recorded)."""
    return Column(
        name,
        _ATTRIBUTE_KINDS[spec.kind],
        nullable=True,
        optional=True,
        allowed=spec.values,
        normalise=spec.kind == "category",
        not_recorded=True,
    )


def table_schemas(dictionary: DataDictionary) -> dict[str, tuple[Column, ...]]:
    """Every table's columns for this dictionary: contract keys first, then declared attributes."""
    return {
        "residents": _RESIDENT_KEYS + tuple(attribute_column(n, s) for n, s in dictionary.residents.items()),
        "residency": _RESIDENCY_KEYS + tuple(attribute_column(n, s) for n, s in dictionary.residency.items()),
        "events": _EVENTS,
        "outcomes": _OUTCOMES,
    }


# Every row-level check per table, in the order they run (a row gets the first reason it fails).
# `unparseable:<column>` comes before all of them, for text that cannot be read as its column's type;
# `<column>` and `<attribute>` stand for the column (a declared attribute) the check names.
CHECK_ORDER: dict[str, tuple[str, ...]] = {
    "residents": (
        "null_key:resident_id",
        "invalid_value:<attribute>",
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
        "invalid_value:<attribute>",
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

# Reasons given to a row only because a row it depends on (its person, its address) was quarantined:
# reported apart from the row's own faults, and not counted towards the quarantine limit.
CASCADE_REASONS: frozenset[str] = frozenset({"quarantined_resident", "quarantined_address"})

# Tables allowed to have no rows: a short extract can hold no recorded outcomes; residency is optional.
EMPTY_ALLOWED: frozenset[str] = frozenset({"outcomes", "residency"})
# Tables that may be absent altogether (household and address scopes then cannot be used).
OPTIONAL_TABLES: frozenset[str] = frozenset({"residency"})

TIMESTAMP = pa.timestamp("us")
DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}


def declared_check(table: str, reason: str) -> bool:
    """Whether `reason` is one of the table's documented checks (placeholders match any column)."""
    for declared in CHECK_ORDER.get(table, ()):
        if declared == reason:
            return True
        if declared.endswith(">") and reason.startswith(declared.split("<", 1)[0]):
            return True
    return False


def expanded_checks(table: str, columns: tuple[Column, ...]) -> tuple[str, ...]:
    """The table's checks in order, with `invalid_value:<attribute>` expanded to each column that has allowed values."""
    out: list[str] = []
    for check in CHECK_ORDER[table]:
        if check == "invalid_value:<attribute>":
            out.extend(f"invalid_value:{c.name}" for c in columns if c.allowed)
        else:
            out.append(check)
    return tuple(out)
