"""The one date parser for command-line options, config keys and manifest.json, and the date-range checks.

Accepted: a calendar date written YYYY-MM-DD (ISO 8601 extended form, e.g. 2021-01-01), or a date
object (YAML's own `2021-01-01`). Everything else is refused everywhere with the same message:
2021/01/01, 01/02/2021 (day or month first?), 20210101, 2021-W01-1, 2021-01-01T00:00, whole numbers.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import BeforeValidator

from earlysignal.errors import EarlySignalError

DATE_FORMAT_HELP = "a date written YYYY-MM-DD, e.g. 2021-01-01"
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_date(value: Any, where: str) -> dt.date:
    """A dt.date from a YYYY-MM-DD string or a date object; EarlySignalError naming `where` otherwise."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _ISO_DATE.match(value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            raise EarlySignalError(f"{where}: {value!r} is not a real calendar date ({DATE_FORMAT_HELP})") from None
    raise EarlySignalError(f"{where} must be {DATE_FORMAT_HELP}; got {value!r}")


def _config_date(value: Any) -> dt.date:
    try:
        return parse_date(value, "the value")
    except EarlySignalError as error:
        # pydantic turns a ValueError into "key: message (got value)".
        raise ValueError(str(error).replace("the value must be ", "must be ").split("; got ")[0]) from None


ConfigDate = Annotated[dt.date, BeforeValidator(_config_date)]
"""A config field holding a date: same rules as the command line."""


def check_extract_date(extract_date: dt.date, where: str, today: dt.date | None = None) -> dt.date:
    """Refuse an extract date after today (UTC): data cannot have been extracted in the future."""
    today = today or dt.datetime.now(dt.UTC).date()
    if extract_date > today:
        raise EarlySignalError(
            f"{where}: extract_date {extract_date} is in the future (today is {today}); "
            "fix the manifest to the date the data was actually extracted"
        )
    return extract_date


def check_as_of_in_range(as_of: dt.date, data_start: dt.date | None, extract_date: dt.date, data_dir: Any) -> None:
    """Refuse an as_of before the data's records start or after its extract date (nothing is known there)."""
    if as_of > extract_date:
        raise EarlySignalError(
            f"--as-of {as_of} is after the extract date of {data_dir} ({extract_date}): records after the extract "
            "are not in the data, so everyone would look quiet. Score at or before the extract date, or use a newer extract"
        )
    if data_start is not None and as_of < data_start:
        raise EarlySignalError(
            f"--as-of {as_of} is before the records in {data_dir} start ({data_start}): there is no history to "
            "build features from. Score at a date within the data"
        )
