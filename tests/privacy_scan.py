"""The privacy scan for the tests: earlysignal.privacy_scan, with the repository's docs as own vocabulary."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from earlysignal.privacy_scan import Finding, Identifiers, scan, scan_files
from earlysignal.privacy_scan import raw_identifiers as _raw_identifiers

REPO = Path(__file__).resolve().parents[1]

__all__ = ["Finding", "Identifiers", "raw_identifiers", "scan", "scan_files"]


def raw_identifiers(ingested: Path, born_before: dt.date) -> Identifiers:
    """earlysignal.privacy_scan.raw_identifiers, not looking for the docs' words as single names."""
    return _raw_identifiers(ingested, born_before, sorted(REPO.glob("docs/*.md")))
