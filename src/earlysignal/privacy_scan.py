"""The privacy scan: look for the raw extracts' names, dates of birth, NHS numbers, UPNs, addresses,
postcodes, UPRNs and systems' own person IDs in files written after `link` (docs/ingest-and-link.md, "Privacy boundary").

`raw_identifiers` reads identifiers from the ingest output (the person records, address records and
gazetteer, exactly as the raw files gave them); `scan` reads every file (Parquet cell by cell,
SQLite stores such as MLflow's table by table, cell by cell, everything else as text) and returns one
finding per file and kind of identifier. `earlysignal privacy-scan` runs it on a borough's own outputs;
the tests run it on a tiny borough's.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from earlysignal.errors import EarlySignalError

# Words of the project's own vocabulary (ethnic groups, colours of the monitoring report, month names,
# wording) that are also surnames or forenames: a bare token equal to one of these is not evidence.
# Full names ("first last") are still looked for as phrases.
PACKAGE = Path(__file__).resolve().parent
_OWN_TEXT_GLOBS = ("**/*.yaml", "**/*.html", "**/*.py")
# Letters and digits of any script, so an accented name is one token, as it is in the raw files.
TOKEN = re.compile(r"[^\W_]+")
# The digits after a decimal point ("0.0065123", a model's leaf value) are part of a number, not an ID
# that happens to be all digits; the whole part stays, so a UPRN written as a float is still found.
FRACTION = re.compile(r"(?<=\d)\.\d+")


def _own_vocabulary(extra_files: Iterable[Path] = ()) -> set[str]:
    words: set[str] = set()
    # Not this module (its examples, "70 eden grove", are identifiers' shapes) nor the synthetic borough's
    # name lists: those are the names to look for, not the project's words.
    skip = {Path(__file__).resolve(), (PACKAGE / "synth" / "names.py").resolve()}
    own = [p for pattern in _OWN_TEXT_GLOBS for p in PACKAGE.glob(pattern) if p.resolve() not in skip]
    paths = own + list(extra_files)
    for path in paths:
        words |= set(TOKEN.findall(path.read_text(encoding="utf-8", errors="replace").lower()))
    return words


@dataclass
class Identifiers:
    """Identifier values by kind: `tokens` match a whole token, `phrases` a substring (lower case)."""

    tokens: dict[str, set[str]] = field(default_factory=dict)
    phrases: dict[str, set[str]] = field(default_factory=dict)

    def count(self) -> dict[str, int]:
        kinds = set(self.tokens) | set(self.phrases)
        return {k: len(self.tokens.get(k, set())) + len(self.phrases.get(k, set())) for k in sorted(kinds)}


def _values(frame: pd.DataFrame, column: str) -> set[str]:
    if column not in frame:
        return set()
    return {str(v).strip().lower() for v in frame[column].dropna() if str(v).strip()}


def raw_identifiers(ingested: Path, born_before: dt.date, vocabulary_files: Iterable[Path] = ()) -> Identifiers:
    """Identifiers of the raw files, by kind, from what `ingest` read out of them.

    Dates of birth are looked for (ISO, dd/mm/yyyy, dd-MON-yyyy) only for people born before
    `born_before`, so that they cannot be mistaken for the event dates every artefact holds.
    `vocabulary_files` (e.g. the project config, docs) add to the package's own words, which are not
    looked for as single names. Raises FileNotFoundError when an ingest output file is missing.
    """
    people = pd.read_parquet(ingested / "person_records.parquet")
    addresses = pd.read_parquet(ingested / "address_records.parquet")
    gazetteer = pd.read_parquet(ingested / "gazetteer.parquet")
    own = _own_vocabulary(vocabulary_files)
    found = Identifiers()
    firsts, lasts = _values(people, "first_name"), _values(people, "last_name")
    # Single names of four letters or more: shorter ones turn up by chance in binary files (a pickled
    # model); a short name is still found with its other half as a full name.
    found.tokens["name"] = {n for n in firsts | lasts if TOKEN.fullmatch(n) and len(n) >= 4 and n not in own}
    full = people[["first_name", "last_name"]].dropna()
    found.phrases["name"] = {f"{a} {b}".lower() for a, b in zip(full["first_name"], full["last_name"])}
    found.tokens["nhs_number"] = {re.sub(r"\D", "", v) for v in _values(people, "nhs_number")} - {""}
    found.tokens["upn"] = _values(people, "upn")
    # A system's own person ID (pupil ID, council-tax party, claim reference) identifies the person to that system.
    found.tokens["system_person_id"] = {v for v in _values(people, "source_person_id") if TOKEN.fullmatch(v) and len(v) >= 6}
    found.tokens["uprn"] = _values(people, "uprn") | _values(addresses, "uprn") | _values(gazetteer, "uprn")
    postcodes = _values(people, "postcode") | _values(addresses, "postcode") | _values(gazetteer, "postcode")
    found.phrases["postcode"] = {p for p in postcodes if " " in p}
    found.tokens["postcode"] = {p.replace(" ", "") for p in postcodes}
    # An address is its text up to the first comma ("70 eden grove"), which holds the house and street.
    texts = _values(people, "address_text") | _values(addresses, "address_text") | _values(gazetteer, "address_text")
    found.phrases["address"] = {t.split(",")[0].strip() for t in texts if len(t.split(",")[0].strip()) >= 8}
    births = pd.to_datetime(people["birth_date"], errors="coerce").dropna()
    births = births[births < pd.Timestamp(born_before)].drop_duplicates()
    found.phrases["date_of_birth"] = (
        {d.strftime("%Y-%m-%d") for d in births} | {d.strftime("%d/%m/%Y") for d in births}
        | {d.strftime("%d-%b-%Y").lower() for d in births}
    )
    return found


IMAGES = (".png", ".jpg", ".jpeg", ".gif")
# Embedded images (base64) are pixels, not text: their random letters are not looked at.
DATA_URI = re.compile(r"data:[a-z/+.-]+;base64,[a-z0-9+/=]+")


SQLITE_MAGIC = b"SQLite format 3\x00"


def _sqlite_cells(path: Path) -> list[str]:
    # Cells, not the file's bytes: free pages and b-tree bytes decode to chance letter runs ("lowa").
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        tables = [row[0] for row in connection.execute("select name from sqlite_master where type = 'table'")]
        cells: list[str] = []
        for table in tables:
            for row in connection.execute(f'select * from "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        value = value.decode("utf-8", errors="replace")
                    if value is not None:
                        cells.append(str(value).lower())
    return cells


def _texts(path: Path) -> list[str]:
    if path.suffix.lower() in IMAGES:
        return []
    with path.open("rb") as handle:
        if handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC:
            return _sqlite_cells(path)
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        cells = [str(v) for column in frame.columns for v in frame[column].dropna().astype(str).unique()]
        return [" | ".join(map(str, frame.columns)).lower(), *(c.lower() for c in cells)]
    return [DATA_URI.sub(" ", path.read_bytes().decode("utf-8", errors="replace").lower())]


@dataclass(frozen=True)
class Finding:
    """Identifiers of one kind found in one file (`values`: the identifiers, lower case, sorted)."""

    path: Path
    kind: str
    values: tuple[str, ...]


def scan_files(paths: list[Path], identifiers: Identifiers) -> list[str]:
    """One finding per (file, kind of identifier) holding any: 'path: kind (examples)'; empty when clean."""
    return [f"{f.path}: {f.kind} ({', '.join(f.values[:3])})" for f in scan(paths, identifiers)]


def scan(paths: list[Path], identifiers: Identifiers) -> list[Finding]:
    """One Finding per (file, kind of identifier) holding any, in file order; empty when clean.

    Phrases are matched as runs of whole tokens ("70 eden grove" in "at 70 Eden Grove, London"), so a
    date of birth 1987-02-13 is found as 1987-02-13 and not inside 11987-02-135.
    """
    phrases = {kind: {tuple(TOKEN.findall(v)): v for v in values} for kind, values in identifiers.phrases.items()}
    lengths = sorted({len(t) for by_kind in phrases.values() for t in by_kind if len(t) > 1})
    findings = []
    for path in paths:
        hits: dict[str, set[str]] = {}
        for text in _texts(path):
            tokens = TOKEN.findall(FRACTION.sub(" ", text))
            present = set(tokens)
            grams = {tuple(tokens[i:i + n]) for n in lengths for i in range(len(tokens) - n + 1)} | {(t,) for t in present}
            for kind, values in identifiers.tokens.items():
                hits.setdefault(kind, set()).update(present & values)
            for kind, by_tokens in phrases.items():
                hits.setdefault(kind, set()).update(by_tokens[g] for g in grams & by_tokens.keys())
        for kind, values in sorted(hits.items()):
            if values:
                findings.append(Finding(path, kind, tuple(sorted(values))))
    return findings


CONTRACT_TABLES = ("residents.parquet", "residency.parquet", "events.parquet", "outcomes.parquet")
# Link's per-record table carries the day each record joined its resident (ADR 0023): a record's date, as the
# contract tables' dates are, so it too is not searched for dates of birth (any date can equal one).
DATED_TABLES = (*CONTRACT_TABLES, "person_links.parquet")
INGEST_FILES = ("person_records.parquet", "address_records.parquet", "gazetteer.parquet")


class PrivacyScanError(EarlySignalError):
    """The scan cannot run: no ingest output to read identifiers from, or nothing to scan."""


@dataclass(frozen=True)
class OutputScan:
    """What `scan_outputs` looked at and found."""

    files: list[Path]
    findings: list[Finding]
    born_before: dt.date


def _earliest_data_start(ingested: Path) -> dt.date:
    manifest = ingested / "manifest.json"
    starts = json.loads(manifest.read_text()).get("data_start") or {} if manifest.exists() else {}
    dates = [dt.date.fromisoformat(str(v)[:10]) for v in starts.values() if v]
    if not dates:
        raise PrivacyScanError(
            f"{manifest}: no data_start to choose which dates of birth to look for; give --born-before YYYY-MM-DD"
        )
    return min(dates)


def scan_outputs(ingested: Path, paths: list[Path], born_before: dt.date | None = None,
                 vocabulary_files: Iterable[Path] = ()) -> OutputScan:
    """Scan every file under `paths` (folders recursively; anything inside `ingested` skipped) for the
    identifiers `ingested` holds.

    Dates of birth are looked for among people born before `born_before` (default: the earliest
    `data_start` in the ingest manifest, so no event date can pass for one), and not in the data
    contract's own tables (residents, residency, events, outcomes beside a manifest.json), which hold
    birth and event dates by design, nor in link's person_links beside them (the day each record joined
    its resident). Raises PrivacyScanError when an ingest file or a path is missing
    or no file is found.
    """
    missing = [name for name in INGEST_FILES if not (ingested / name).exists()]
    if missing:
        raise PrivacyScanError(
            f"{ingested}: {', '.join(missing)} missing; --ingested must be the folder `earlysignal ingest` wrote"
        )
    absent = [str(p) for p in paths if not p.exists()]
    if absent:
        raise PrivacyScanError(f"nothing to scan at {', '.join(absent)}")
    inside = ingested.resolve()
    files = sorted({f for p in paths for f in ([p] if p.is_file() else p.rglob("*"))
                    if f.is_file() and inside not in f.resolve().parents})
    if not files:
        raise PrivacyScanError(f"no file to scan in {', '.join(map(str, paths))} (files inside {ingested} are skipped)")
    cutoff = born_before or _earliest_data_start(ingested)
    identifiers = raw_identifiers(ingested, cutoff, vocabulary_files)
    without_birth = Identifiers(identifiers.tokens, {k: v for k, v in identifiers.phrases.items() if k != "date_of_birth"})
    contract = [f for f in files if f.name in DATED_TABLES and (f.parent / "manifest.json").exists()]
    rest = [f for f in files if f not in contract]
    findings = scan(rest, identifiers) + scan(contract, without_birth)
    return OutputScan(files=files, findings=sorted(findings, key=lambda f: (str(f.path), f.kind)), born_before=cutoff)
