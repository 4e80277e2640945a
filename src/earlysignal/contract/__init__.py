"""The data contract: read a borough folder, check every table, quarantine bad rows, reconcile counts.

Every later stage reads data only through `load_linked_data`, so what it returns is the
definition of "usable linked histories". Two kinds of problem are told apart:

* a file that cannot be used at all (missing, unreadable, empty, a required column missing or of a
  type that cannot be coerced, a bad manifest) stops with a `ContractError` naming the file, the
  column and what was expected;
* a bad row goes to `DIR/quarantine/<table>.parquet` with the contract's columns as read, its 1-based
  `row_number` in the input file and one `reason` code (the first failing check in the documented
  order), and `read == accepted + quarantined` is checked for every table.

What a borough's data holds (sources, event types, outcome types, person attributes and their codes)
comes from its data dictionary (earlysignal.dictionary), never from this package. Files by job:
schemas.py (tables, columns, check order), reading.py (files, manifest, typing, normalising codes),
checks.py (row checks), quarantine.py (quarantine files, the counts table), validate.py (entry points,
the usability limits). docs/data-contract.md is the user-facing description; keep the two in step.
"""

from earlysignal.contract.checks import _flag_duplicates, _overlapping_spells, _Reasons
from earlysignal.contract.quarantine import report_table
from earlysignal.contract.reading import read_manifest, table_path, value_shape
from earlysignal.contract.results import LinkedData, TableCounts, ValidationReport
from earlysignal.contract.schemas import (
    CASCADE_REASONS,
    CHECK_ORDER,
    MANIFEST_NAME,
    QUARANTINE_DIR,
    REASON_COLUMN,
    ROW_NUMBER_COLUMN,
    TABLE_NAMES,
    Column,
    table_schemas,
)
from earlysignal.contract.validate import (
    REQUIRED_TABLES,
    load_linked_data,
    reconcile_counts,
    require_usable,
    validate_directory,
)

__all__ = [
    "CASCADE_REASONS",
    "CHECK_ORDER",
    "Column",
    "LinkedData",
    "MANIFEST_NAME",
    "QUARANTINE_DIR",
    "REASON_COLUMN",
    "REQUIRED_TABLES",
    "ROW_NUMBER_COLUMN",
    "TABLE_NAMES",
    "TableCounts",
    "ValidationReport",
    "_Reasons",
    "_flag_duplicates",
    "_overlapping_spells",
    "load_linked_data",
    "read_manifest",
    "reconcile_counts",
    "report_table",
    "require_usable",
    "table_path",
    "table_schemas",
    "validate_directory",
    "value_shape",
]
