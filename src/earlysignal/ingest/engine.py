"""`earlysignal ingest`: raw departmental extracts -> person records, address records, gazetteer, coded
events and outcomes, with a coverage report, quarantine and reconciled counts per source.

Every row read ends up in exactly one of: mapped (it became a person record, an address record, an
event or an outcome), excluded (a named exclusion, e.g. void or planned works, restricted records) or
quarantined (with a reason naming the column or rule), and `read = mapped + excluded + quarantined` is
checked for every source. Coding is layered and explainable: exact code lists first, then ordered,
named regular-expression rules; each event keeps the name of the entry or rule that coded it. The output
is the ingest side of the interface in docs/ingest-and-link.md.
"""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import contextlib
import csv
import json
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from earlysignal.atomic import atomic_path, write_json, write_parquet, write_text
from earlysignal.errors import EarlySignalError
from earlysignal.ingest.mapping import DateColumn, Extract, SourceMapping, Term, load_mapping, mapping_hash

PLACEHOLDER_BIRTH_DATE = dt.date(1900, 1, 1)
QUARANTINE_DIR = "quarantine"
TOP_UNMAPPED = 10


class IngestError(EarlySignalError):
    """An extract cannot be ingested; the message names the file, the column and the mapping key or rule."""


@dataclass
class SourceReport:
    """What happened to one source's rows (all counts are rows of raw files)."""

    source: str
    files: list[str] = field(default_factory=list)
    read: int = 0
    mapped: int = 0
    excluded: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    not_coded: int = 0
    unmapped_codes: dict[str, int] = field(default_factory=dict)
    unmapped_phrases: dict[str, int] = field(default_factory=dict)
    placeholder_birth_dates: int = 0
    unparseable_birth_dates: int = 0
    # Mapped rows whose rule-derived known_at is after the extract date: kept with that known_at, so
    # they are used only at as-of dates after it (a term's attendance before the next term's return).
    known_after_extract: int = 0
    outputs: dict[str, int] = field(default_factory=dict)

    @property
    def excluded_total(self) -> int:
        return sum(self.excluded.values())

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    def check(self) -> None:
        """Raise IngestError unless read = mapped + excluded + quarantined."""
        if self.read != self.mapped + self.excluded_total + self.quarantined_total:
            raise IngestError(
                f"source {self.source}: counts do not reconcile: read {self.read} != mapped {self.mapped} + "
                f"excluded {self.excluded_total} + quarantined {self.quarantined_total}"
            )

    def to_json(self) -> dict[str, Any]:
        usable = self.read - self.excluded_total
        return {
            "files": self.files, "read": self.read, "mapped": self.mapped,
            "excluded": self.excluded_total, "excluded_by": dict(sorted(self.excluded.items())),
            "quarantined": self.quarantined_total, "quarantined_by": dict(sorted(self.quarantined.items())),
            "share_mapped": round(self.mapped / self.read, 4) if self.read else None,
            "share_mapped_of_not_excluded": round(self.mapped / usable, 4) if usable else None,
            "hits_per_rule": dict(sorted(self.hits.items())),
            "mapped_not_coded": self.not_coded,
            "top_unmapped_codes": _top(self.unmapped_codes), "top_unmapped_phrases": _top(self.unmapped_phrases),
            "placeholder_birth_dates": self.placeholder_birth_dates,
            "unparseable_birth_dates": self.unparseable_birth_dates,
            "known_after_extract_date": self.known_after_extract, "outputs": self.outputs,
        }


def _top(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_UNMAPPED])


@dataclass
class IngestSummary:
    """What `ingest` wrote: per-source reports and output row counts."""

    out_dir: Path
    reports: dict[str, SourceReport]
    row_counts: dict[str, int]
    extract_date: dt.date


ProgressCallback = Callable[[str, str, int], None]  # (source, message, rows so far)


def ingest(
    raw_dir: Path,
    out_dir: Path,
    mapping_paths: list[Path],
    vocabulary: Mapping[str, tuple[str, ...]],
    outcome_types: tuple[str, ...] | list[str],
    extract_date: dt.date | None = None,
    on_progress: ProgressCallback | None = None,
    chunk_rows: int = 500_000,
) -> IngestSummary:
    """Ingest every source mapped by `mapping_paths` from `raw_dir` into `out_dir`.

    `vocabulary` maps each source to its event types (the data dictionary); a mapping may add types it
    declares `non_feature_event_types`. `extract_date` defaults to `raw_dir/manifest.json`'s. Raises
    Files are read `chunk_rows` rows at a time and outputs streamed to Parquet, so memory stays bounded
    by the chunk and the per-source record-ID hashes. Raises
    IngestError for a file that cannot be used (missing file or column, unreadable encoding, a date format
    that matches no value) and ConfigError for a bad mapping; bad rows are quarantined, not raised.
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    if not raw_dir.is_dir():
        raise IngestError(f"--raw {raw_dir} is not a folder of extracts")
    extract_date = extract_date or _extract_date_from(raw_dir)
    progress = on_progress or (lambda source, message, rows: None)
    mappings = [(path, load_mapping(path)) for path in mapping_paths]
    _check_targets(mappings, vocabulary, outcome_types)
    cap = pd.Timestamp(extract_date)

    attributes = sorted({f"attr_{name}" for _, m in mappings for e in m.extracts if e.person
                         for name in e.person.attributes})
    reports: dict[str, SourceReport] = {}
    quarantine: dict[str, list[pd.DataFrame]] = {}
    data_start: dict[str, str] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "manifest.json").unlink(missing_ok=True)
    with contextlib.ExitStack() as stack:
        # Outputs are streamed chunk by chunk into Parquet files renamed into place only on success.
        sinks = {name: _Sink(stack.enter_context(atomic_path(out_dir / f"{name}.parquet")), name, attributes)
                 for name in _SCHEMAS}
        for path, mapping in mappings:
            report = reports.setdefault(mapping.source, SourceReport(mapping.source))
            seen_ids = np.array([], dtype=np.uint64)
            for extract in mapping.extracts:
                files = sorted(p for p in raw_dir.glob(extract.glob) if p.is_file())
                if not files:
                    raise IngestError(
                        f"{path}: extract {extract.name!r}: no file in {raw_dir} matches glob {extract.glob!r}"
                    )
                for file in files:
                    report.files.append(str(file.relative_to(raw_dir)))
                    for frame in _read(file, extract, path, chunk_rows):
                        progress(mapping.source, f"{extract.name}: {file.name}", report.read)
                        result, seen_ids = _process(frame, file, extract, mapping, path, report, seen_ids, cap)
                        del frame
                        for key, value in result.items():
                            if key == "quarantine":
                                quarantine.setdefault(mapping.source, []).append(value)
                            else:
                                sinks[key].write(value)
                        times = [result[k][c] for k, c in (("events", "event_time"), ("outcomes", "outcome_time"))
                                 if k in result and len(result[k])]
                        if times:
                            first = min(t.min() for t in times).date().isoformat()
                            data_start[mapping.source] = min(data_start.get(mapping.source, first), first)
            report.check()
            progress(mapping.source, "done", report.read)
        for sink in sinks.values():
            sink.close()
    counts = {name: sink.rows for name, sink in sinks.items()}
    qdir = out_dir / QUARANTINE_DIR
    for source in reports:
        frames = quarantine.get(source, [])
        q = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            {"file": pd.Series(dtype="string"), "row_number": pd.Series(dtype="int64"),
             "reason": pd.Series(dtype="string")})
        write_parquet(q.astype({c: "string" for c in q.columns if c != "row_number"}), qdir / f"{source}.parquet")
    coverage = {source: r.to_json() for source, r in sorted(reports.items())}
    write_json(coverage, out_dir / "coverage.json")
    write_text(coverage_markdown(coverage, extract_date), out_dir / "coverage.md")
    code_lists = {m.source: {"version": m.version, "sha256": mapping_hash(p), "file": str(p)} for p, m in mappings}
    combined = hashlib.sha256(json.dumps({k: v["sha256"] for k, v in sorted(code_lists.items())},
                                         sort_keys=True).encode()).hexdigest()
    manifest = {
        "extract_date": extract_date.isoformat(),
        "data_start": dict(sorted(data_start.items())),
        "code_lists": code_lists,
        "code_lists_sha256": combined,
        "row_counts": counts,
        "sources": sorted(reports),
    }
    write_json(manifest, out_dir / "manifest.json")
    return IngestSummary(out_dir=out_dir, reports=reports, row_counts=counts, extract_date=extract_date)


def _extract_date_from(raw_dir: Path) -> dt.date:
    path = raw_dir / "manifest.json"
    from earlysignal.dates import parse_date
    from earlysignal.errors import EarlySignalError

    try:
        return parse_date(json.loads(path.read_text(encoding="utf-8"))["extract_date"], f"{path}: extract_date")
    except (OSError, KeyError, ValueError, TypeError, EarlySignalError):
        raise IngestError(
            f"no extract date: pass --extract-date YYYY-MM-DD or put {{\"extract_date\": ...}} in {path}"
        ) from None


def _check_targets(
    mappings: list[tuple[Path, SourceMapping]], vocabulary: Mapping[str, tuple[str, ...]],
    outcome_types: tuple[str, ...] | list[str],
) -> None:
    """Every code entry and rule must name an event type of its source, or a known outcome type."""
    from earlysignal.errors import ConfigError

    for path, mapping in mappings:
        allowed = set(vocabulary.get(mapping.source, ())) | set(mapping.non_feature_event_types)
        for extract in mapping.extracts:
            entries = list(extract.codes.entries) if extract.codes else []
            for item in [*entries, *extract.rules]:
                if item.event_type is not None and item.event_type not in allowed:
                    raise ConfigError(
                        f"{path}: extract {extract.name!r}, entry/rule {item.name!r}: event_type "
                        f"{item.event_type!r} is not an event type of source {mapping.source!r} "
                        f"(known: {sorted(allowed)})"
                    )
                if item.outcome_type is not None and item.outcome_type not in outcome_types:
                    raise ConfigError(
                        f"{path}: extract {extract.name!r}, entry/rule {item.name!r}: outcome_type "
                        f"{item.outcome_type!r} is not in contract.outcome_types {list(outcome_types)}"
                    )


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _read(file: Path, extract: Extract, mapping_path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Chunks of all columns as text ('' for empty), plus the 1-based data row number `__row`."""
    try:
        if extract.format == "parquet":
            chunks: Iterable[pd.DataFrame] = (
                b.to_pandas().astype("string").fillna("")
                for b in pq.ParquetFile(file).iter_batches(batch_size=chunk_rows))
        else:
            chunks = _csv_chunks(file, extract, chunk_rows)
        offset = 0
        for frame in chunks:
            if offset == 0:
                _check_columns(frame, file, extract, mapping_path)
            frame["__row"] = np.arange(offset + 1, offset + len(frame) + 1)
            offset += len(frame)
            yield frame
    except UnicodeDecodeError as error:
        raise IngestError(
            f"{file}: cannot be read as {extract.encoding} ({error.reason}{_undecodable_at(file, extract.encoding)}); "
            f"set encoding in {mapping_path} (extract {extract.name!r}), e.g. cp1252"
        ) from None
    except pa.ArrowInvalid as error:
        if "invalid UTF8" in str(error):
            # pyarrow's reader meets the bad byte far into a file; name the line a person can open.
            raise IngestError(
                f"{file}: cannot be read as {extract.encoding} (invalid UTF-8 data"
                f"{_undecodable_at(file, extract.encoding)}); set encoding in {mapping_path} "
                f"(extract {extract.name!r}), e.g. cp1252"
            ) from None
        raise IngestError(f"{file}: cannot be read as {extract.format}: {error}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as error:
        raise IngestError(f"{file}: cannot be read as {extract.format}: {error}") from None


def _csv_chunks(file: Path, extract: Extract, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """A CSV file as chunks of `chunk_rows` rows, every column text ('' for empty), read by pyarrow's
    streaming reader (multi-threaded C++, no Python objects per cell: at 250k residents pandas' parser
    and its conversion to strings took half of ingest)."""
    import pyarrow.csv as pacsv

    encoding = extract.encoding
    with open(file, encoding="utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding,
              newline="") as handle:
        header = next(csv.reader(handle, delimiter=extract.delimiter), None)
    if not header:
        raise pd.errors.EmptyDataError("No columns to parse from file")
    reader = pacsv.open_csv(
        file,
        read_options=pacsv.ReadOptions(encoding=encoding, block_size=1 << 24),
        parse_options=pacsv.ParseOptions(delimiter=extract.delimiter, newlines_in_values=True),
        # Every column as text, empty cells as '' (never null): codes such as '01' keep their zeros.
        convert_options=pacsv.ConvertOptions(column_types={name: pa.string() for name in header},
                                             strings_can_be_null=False, quoted_strings_can_be_null=False),
    )
    text = pd.StringDtype("pyarrow", na_value=np.nan)
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in reader:
        pending.append(batch)
        rows += batch.num_rows
        while rows >= chunk_rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, chunk_rows).to_pandas(types_mapper={pa.string(): text}.get)
            rest = table.slice(chunk_rows)
            pending, rows = rest.to_batches(), rest.num_rows
    if rows or not pending:
        table = pa.Table.from_batches(pending, schema=reader.schema)
        yield table.to_pandas(types_mapper={pa.string(): text}.get)


def _undecodable_at(file: Path, encoding: str) -> str:
    """' on line N of the file: byte 0xEB at byte M of the line' for the first line of `file` that `encoding` cannot decode, else ''.

    The CSV reader decodes in buffers, so its error's byte offset is not a place in the file; this
    finds the line a person can open. Reads the file once, only after a decoding error.
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    with file.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                decoder.decode(line)
            except UnicodeDecodeError as error:
                # The byte and its place, not the text around it: the line may hold a name.
                return f" on line {number:,} of the file: byte 0x{line[error.start]:02X} at byte {error.start + 1} of the line"
    return ""


def _check_columns(frame: pd.DataFrame, file: Path, extract: Extract, mapping_path: Path) -> None:
    needed = _columns_used(extract)
    missing = [(col, key) for col, key in needed if col not in frame.columns]
    if missing:
        listed = "; ".join(f"column {col!r} (mapping key {key})" for col, key in missing)
        raise IngestError(
            f"{file}: {listed} missing; the file has columns {list(frame.columns)}. "
            f"Fix the extract or {mapping_path} (extract {extract.name!r})"
        )


def _columns_used(extract: Extract) -> list[tuple[str, str]]:
    cols: list[tuple[str, str]] = []

    def add(col: str | None, key: str) -> None:
        if col:
            cols.append((col, key))

    add(extract.record_id, "record_id")
    for section_name in ("person", "address", "gazetteer"):
        section = getattr(extract, section_name)
        if section is None:
            continue
        for name, value in section:
            if isinstance(value, DateColumn):
                add(value.column, f"{section_name}.{name}.column")
            elif isinstance(value, list):
                for col in value:
                    add(col, f"{section_name}.{name}")
            elif isinstance(value, dict) and name == "attributes":
                for attr, col in value.items():
                    add(col, f"{section_name}.attributes.{attr}")
            elif isinstance(value, str) and name != "tenure_values":
                add(value, f"{section_name}.{name}")
    if extract.time:
        add(extract.time.column, "time.column")
    if extract.known_at and extract.known_at.column:
        add(extract.known_at.column, "known_at.column")
    add(extract.value, "value")
    if extract.end_time:
        add(extract.end_time.column, "end_time.column")
    for ex in extract.exclude:
        add(ex.column, f"exclude[{ex.name}].column")
    if extract.codes:
        add(extract.codes.column, "codes.column")
    for rule in extract.rules:
        add(rule.column, f"rules[{rule.name}].column")
        for col in rule.when:
            add(col, f"rules[{rule.name}].when")
    return cols


def _parse_dates(values: pd.Series, spec: DateColumn, file: Path, key: str, mapping_path: Path) -> pd.Series:
    """Timestamps (NaT for empty or unparseable); IngestError if no non-empty value parses."""
    fmt = spec.format or "ISO8601"
    parsed = pd.to_datetime(values.where(values != ""), format=fmt, errors="coerce")
    filled = values != ""
    if filled.any() and parsed[filled].isna().all():
        example = values[filled].iloc[0]
        raise IngestError(
            f"{file}: column {spec.column!r}: no value matches date format {fmt!r} (e.g. {example!r}); fix "
            f"{key}.format in {mapping_path}"
        )
    return parsed.astype("datetime64[us]")


def _in_sorted(values: np.ndarray, sorted_seen: np.ndarray) -> np.ndarray:
    """Per value, whether it is in `sorted_seen` (sorted, distinct). The values are searched in sorted
    order (searching in random order is cache-bound and ~20x slower at millions of IDs)."""
    if len(sorted_seen) == 0 or len(values) == 0:
        return np.zeros(len(values), dtype=bool)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    at = np.minimum(np.searchsorted(sorted_seen, ordered), len(sorted_seen) - 1)
    found = np.empty(len(values), dtype=bool)
    found[order] = sorted_seen[at] == ordered
    return found


def _merge_sorted(sorted_seen: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`sorted_seen` with `values` added, sorted and distinct. The stable sort (timsort for 64-bit
    integers) merges the two sorted runs in linear time, so a chunk costs O(seen + chunk log chunk)."""
    fresh = np.sort(values)
    if len(fresh):
        fresh = fresh[np.concatenate([[True], fresh[1:] != fresh[:-1]])]
    fresh = fresh[~_in_sorted(fresh, sorted_seen)]
    merged = np.concatenate([sorted_seen, fresh])
    merged.sort(kind="stable")
    return merged


# --------------------------------------------------------------------------------------------
# One file
# --------------------------------------------------------------------------------------------


def _process(
    frame: pd.DataFrame, file: Path, extract: Extract, mapping: SourceMapping, mapping_path: Path,
    report: SourceReport, seen_ids: np.ndarray, cap: pd.Timestamp,
) -> tuple[dict[str, pd.DataFrame], np.ndarray]:
    source = mapping.source
    n = len(frame)
    report.read += n
    reason = pd.Series([""] * n, index=frame.index, dtype=object)
    # Which rows are quarantined / excluded / coded so far, as boolean arrays beside the text columns
    # (comparing object columns with "" again and again cost seconds per million rows).
    failed = np.zeros(n, dtype=bool)
    is_excluded = np.zeros(n, dtype=bool)
    is_coded = np.zeros(n, dtype=bool)

    def fail(mask: pd.Series | np.ndarray, why: str) -> None:
        mask = np.asarray(mask, dtype=bool) & ~failed
        reason[mask] = why
        failed[mask] = True

    if extract.gazetteer is not None:
        return _gazetteer(frame, extract, report, reason), seen_ids

    rid = frame[extract.record_id]
    fail(rid == "", f"missing_record_id:{extract.record_id}")
    # Record IDs seen earlier in the source are kept as 64-bit hashes: millions of IDs in little memory.
    hashes = pd.util.hash_pandas_object(rid, index=False).to_numpy()
    dup = rid.duplicated().to_numpy() | _in_sorted(hashes, seen_ids)
    fail(dup & (rid != "").to_numpy(), f"duplicate_record_id:{extract.record_id}")
    seen_ids = _merge_sorted(seen_ids, hashes[(rid != "").to_numpy()])

    time = None
    if extract.time is not None:
        time = _parse_dates(frame[extract.time.column], extract.time, file, "time", mapping_path)
        fail(time.isna(), f"unparseable_date:{extract.time.column}")

    excluded = pd.Series([""] * n, index=frame.index, dtype=object)
    for ex in extract.exclude:
        hit = frame[ex.column].isin(ex.in_).to_numpy(dtype=bool) & ~is_excluded & ~failed
        excluded[hit] = ex.name
        is_excluded[hit] = True

    target_kind = pd.Series([""] * n, index=frame.index, dtype=object)  # "event" / "outcome"
    target = pd.Series([""] * n, index=frame.index, dtype=object)
    coded_by = pd.Series([""] * n, index=frame.index, dtype=object)
    coding = extract.codes is not None or bool(extract.rules)
    open_rows = ~failed & ~is_excluded
    if coding:
        if extract.codes is not None:
            code = frame[extract.codes.column].str.strip()
            for entry in extract.codes.entries:
                hit = open_rows & ~is_coded & code.isin(entry.codes).to_numpy(dtype=bool)
                _assign(hit, entry, target_kind, target, coded_by)
                is_coded[hit] = True
        for rule in extract.rules:
            text = frame[rule.column]
            hit = open_rows & ~is_coded & _contains(text, rule.pattern).to_numpy(dtype=bool)
            if rule.exclude:
                hit &= ~_contains(text, rule.exclude).to_numpy(dtype=bool)
            for col, allowed in rule.when.items():
                hit &= frame[col].isin(allowed).to_numpy(dtype=bool)
            _assign(hit, rule, target_kind, target, coded_by)
            is_coded[hit] = True
        unmapped = open_rows & ~is_coded
        if unmapped.any():
            _count_unmapped(frame[unmapped], extract, report)
            if extract.unmapped == "quarantine":
                col = extract.codes.column if extract.codes is not None else extract.rules[0].column
                fail(unmapped, f"unmapped_code:{col}")
            else:
                newly = unmapped & ~is_excluded
                excluded[newly] = "unmapped"
                is_excluded[newly] = True

    known = None
    if coding and extract.known_at is not None and time is not None:
        known = _known_at(frame, time, extract, file, mapping_path)
        live = ~failed & ~is_excluded
        col = extract.known_at.column or extract.time.column  # type: ignore[union-attr]
        fail(live & known.isna().to_numpy(), f"unparseable_date:{col}")
        fail(live & (known < time).to_numpy(), "known_at_before_event_time")
        fail(~failed & ~is_excluded & (time > cap).to_numpy(), "event_after_extract_date")
    value = None
    if extract.value:
        raw_value = frame[extract.value]
        value = pd.to_numeric(raw_value.where(raw_value != ""), errors="coerce")
        fail((raw_value != "").to_numpy(dtype=bool) & value.isna().to_numpy() & ~is_excluded,
             f"unparseable_value:{extract.value}")
    end = None
    if extract.end_time is not None:
        end = _parse_dates(frame[extract.end_time.column], extract.end_time, file, "end_time", mapping_path)
        fail((frame[extract.end_time.column] != "").to_numpy(dtype=bool) & end.isna().to_numpy() & ~is_excluded,
             f"unparseable_date:{extract.end_time.column}")

    # Tally: excluded rows are those not quarantined first.
    q = failed
    ex = (~q) & is_excluded
    ok = (~q) & (~ex)
    for why, count in reason[q].value_counts().items():
        report.quarantined[str(why)] = report.quarantined.get(str(why), 0) + int(count)
    for name, count in excluded[ex].value_counts().items():
        report.excluded[str(name)] = report.excluded.get(str(name), 0) + int(count)
    report.mapped += int(ok.sum())
    if known is not None:
        # A rule's known_at may fall after the extract date (e.g. a term's return arrives with the next
        # term's): the record is real and kept as it is, never moved earlier to the extract date.
        report.known_after_extract += int((ok & (known >= cap + pd.Timedelta(days=1))).sum())
    for name, count in coded_by[ok].value_counts().items():
        if name == "":
            # An extract without codes or rules (e.g. council-tax liable parties) maps rows to person
            # records only: no entry or rule coded them, so they are not a rule's hits.
            report.not_coded += int(count)
        else:
            report.hits[str(name)] = report.hits.get(str(name), 0) + int(count)

    out: dict[str, pd.DataFrame] = {}
    if q.any():
        qf = frame[q].drop(columns="__row").copy()
        qf.insert(0, "file", str(file.name))
        qf.insert(1, "row_number", frame.loc[q, "__row"].astype("int64"))
        qf["reason"] = reason[q]
        out["quarantine"] = qf.reset_index(drop=True)
    rows = frame[ok]
    record_id = rows[extract.record_id]
    if extract.person is not None:
        out["person_records"] = _person_records(rows, extract, source, time[ok] if time is not None else None,
                                                file, mapping_path, report)
        # When the council knew of the record (its known_at rule; else when it was seen): residency evidence
        # counts from then, so a cohort at an as_of never rests on a record that arrived later (ADR 0021).
        seen = pd.to_datetime(out["person_records"]["seen_date"])
        known_rows = pd.to_datetime(known[ok]) if known is not None else seen
        out["person_records"]["known_at"] = known_rows.where(known_rows > seen, seen).dt.date.to_numpy()
    if extract.address is not None:
        out["address_records"] = _address_records(rows, extract, source)
    if coding:
        is_event = target_kind[ok] == "event"
        is_outcome = target_kind[ok] == "outcome"
        person = extract.person is not None
        ev_ids = record_id[is_event]
        out["events"] = pd.DataFrame({
            "event_id": source + ":" + ev_ids,
            "source": source,
            "person_record_id": ev_ids if person else None,
            "address_record_id": None if person else ev_ids,
            "event_type": target[ok][is_event],
            "event_time": time[ok][is_event],  # type: ignore[index]
            "known_at": known[ok][is_event],  # type: ignore[index]
            "value": value[ok][is_event] if value is not None else np.nan,
            "coded_by": coded_by[ok][is_event],
        })
        if is_outcome.any() and not person:
            raise IngestError(f"{mapping_path}: extract {extract.name!r} codes outcomes but has no person columns")
        out["outcomes"] = pd.DataFrame({
            "source": source,
            "person_record_id": record_id[is_outcome],
            "outcome_type": target[ok][is_outcome],
            "outcome_time": time[ok][is_outcome],  # type: ignore[index]
            "known_at": known[ok][is_outcome],  # type: ignore[index]
            "end_time": end[ok][is_outcome] if end is not None else pd.NaT,
            "coded_by": coded_by[ok][is_outcome],
        })
    for key, table in out.items():
        if key != "quarantine":
            report.outputs[key] = report.outputs.get(key, 0) + len(table)
    return out, seen_ids


def _contains(text: pd.Series, pattern: str) -> pd.Series:
    """Case-insensitive regex search; groups in a rule's pattern are for readability, not extraction."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="This pattern is interpreted as a regular expression")
        return text.str.contains(pattern, case=False, regex=True)


def _assign(hit: pd.Series, item: Any, kind: pd.Series, target: pd.Series, coded_by: pd.Series) -> None:
    if item.event_type is not None:
        kind[hit], target[hit] = "event", item.event_type
    else:
        kind[hit], target[hit] = "outcome", item.outcome_type
    coded_by[hit] = item.name


def _count_unmapped(rows: pd.DataFrame, extract: Extract, report: SourceReport) -> None:
    if extract.codes is not None:
        for code, count in rows[extract.codes.column].value_counts().items():
            key = f"{extract.codes.column}={code}"
            report.unmapped_codes[key] = report.unmapped_codes.get(key, 0) + int(count)
    text_cols = list(dict.fromkeys(r.column for r in extract.rules))
    for col in text_cols:
        phrases = rows[col].str.lower().str.strip().value_counts()
        for phrase, count in phrases.items():
            key = f"{col}={phrase}"
            report.unmapped_phrases[key] = report.unmapped_phrases.get(key, 0) + int(count)


def _known_at(frame: pd.DataFrame, time: pd.Series, extract: Extract, file: Path, mapping_path: Path) -> pd.Series:
    rule = extract.known_at
    assert rule is not None
    lag = pd.to_timedelta(rule.days, unit="D")
    if rule.rule == "lag":
        return time + lag
    if rule.rule == "column":
        spec = DateColumn(column=rule.column or "", format=rule.format)
        recorded = _parse_dates(frame[spec.column], spec, file, "known_at", mapping_path)
        # A recorded *date* (no time of day) says the record existed by the end of that day: taking the
        # day's end never uses a record before it was known, and a same-day record is not "before" its event.
        if (recorded.dropna() == recorded.dropna().dt.normalize()).all():
            recorded = recorded + pd.Timedelta(days=1)
        return recorded + lag
    # term_end: the end of the school term holding the event's month (a term may end in the next year).
    end_month = np.zeros(13, dtype=np.int64)
    end_day = np.zeros(13, dtype=np.int64)
    for term in rule.terms:
        mm, dd = (int(x) for x in term.ends.split("-"))
        for m in term.months:
            end_month[m], end_day[m] = mm, dd
    month = time.dt.month.fillna(1).astype(int).to_numpy()
    year = time.dt.year.fillna(1970).astype(int).to_numpy()
    em, ed = end_month[month], end_day[month]
    ey = np.where(em >= month, year, year + 1)
    known = pd.to_datetime(pd.DataFrame({"year": ey, "month": np.maximum(em, 1), "day": np.maximum(ed, 1)}),
                           errors="coerce")
    known = pd.Series(known.to_numpy(), index=time.index).where(em > 0).astype("datetime64[us]")
    if rule.terms_in_arrears:
        known = known.map(_later_term_ends(known.dropna().unique(), rule.terms, rule.terms_in_arrears))
    return known.astype("datetime64[us]").where(time.notna()) + lag


def _later_term_ends(ends: Iterable[pd.Timestamp], terms: list[Term], k: int) -> dict[pd.Timestamp, pd.Timestamp]:
    """For each term end date, the k-th term end after it (terms in arrears: a return for one term
    arrives with the next term's)."""
    days = sorted({tuple(int(x) for x in term.ends.split("-")) for term in terms})
    out = {}
    for end in ends:
        end = pd.Timestamp(end)
        later = end
        for _ in range(k):
            later = min(pd.Timestamp(year=y, month=m, day=d) for y in (later.year, later.year + 1)
                        for m, d in days if pd.Timestamp(year=y, month=m, day=d) > later)
        out[end] = later
    return out


def _text(rows: pd.DataFrame, columns: list[str]) -> pd.Series:
    if not columns:
        return pd.Series([None] * len(rows), index=rows.index, dtype="string")
    parts = [rows[c].str.strip() for c in columns]
    joined = parts[0]
    for p in parts[1:]:
        joined = joined.where(p == "", joined.where(joined == "", joined + ", ") + p)
    return joined.replace("", None).astype("string")


def _col(rows: pd.DataFrame, column: str | None) -> pd.Series:
    if not column:
        return pd.Series([None] * len(rows), index=rows.index, dtype="string")
    return rows[column].str.strip().replace("", None).astype("string")


def _person_records(rows: pd.DataFrame, extract: Extract, source: str, time: pd.Series | None, file: Path,
                    mapping_path: Path, report: SourceReport) -> pd.DataFrame:
    p = extract.person
    assert p is not None
    birth = pd.Series(pd.NaT, index=rows.index, dtype="datetime64[us]")
    if p.birth_date is not None:
        raw = rows[p.birth_date.column]
        fmt = p.birth_date.format or "ISO8601"
        birth = pd.to_datetime(raw.where(raw != ""), format=fmt, errors="coerce").astype("datetime64[us]")
        filled = raw != ""
        if filled.any() and birth[filled].isna().all():
            # A wrong format, not bad rows: every birth date would silently become null and linkage would
            # lose them. The example shows the value's shape only (digits as 9): it is a date of birth.
            shape = re.sub(r"[0-9]", "9", str(raw[filled].iloc[0]))
            raise IngestError(
                f"{file}: column {p.birth_date.column!r}: no birth date matches date format {fmt!r} (values look "
                f"like {shape!r}); fix person.birth_date.format in {mapping_path} (extract {extract.name!r})"
            )
        report.unparseable_birth_dates += int((filled & birth.isna()).sum())
        placeholder = birth == pd.Timestamp(PLACEHOLDER_BIRTH_DATE)
        report.placeholder_birth_dates += int(placeholder.sum())
        birth = birth.where(~placeholder)
    seen = time if time is not None else pd.Series(pd.NaT, index=rows.index, dtype="datetime64[us]")
    if p.seen_date is not None:
        seen = _parse_dates(rows[p.seen_date.column], p.seen_date, file, "person.seen_date", mapping_path)
    until = pd.Series(pd.NaT, index=rows.index, dtype="datetime64[us]")
    if p.seen_until is not None:
        until = _parse_dates(rows[p.seen_until.column], p.seen_until, file, "person.seen_until", mapping_path)
    out = pd.DataFrame({
        "source": source,
        "record_id": rows[extract.record_id],
        "source_person_id": _col(rows, p.source_person_id),
        "first_name": _col(rows, p.first_name),
        "middle_name": _col(rows, p.middle_name),
        "last_name": _col(rows, p.last_name),
        "birth_date": birth.dt.date,
        "sex": _col(rows, p.sex),
        "postcode": _col(rows, p.postcode),
        "address_text": _text(rows, p.address_text),
        "uprn": _col(rows, p.uprn),
        "nhs_number": _col(rows, p.nhs_number),
        "upn": _col(rows, p.upn),
        "seen_date": seen.dt.date,
        "seen_until": until.dt.date,
    })
    for attr, column in p.attributes.items():
        out[f"attr_{attr}"] = _col(rows, column)
    return out


def _address_records(rows: pd.DataFrame, extract: Extract, source: str) -> pd.DataFrame:
    a = extract.address
    assert a is not None
    return pd.DataFrame({
        "source": source,
        "record_id": rows[extract.record_id],
        "address_text": _text(rows, a.address_text),
        "postcode": _col(rows, a.postcode),
        "uprn": _col(rows, a.uprn),
        "property_ref": _col(rows, a.property_ref),
    })


def _gazetteer(frame: pd.DataFrame, extract: Extract, report: SourceReport, reason: pd.Series
               ) -> dict[str, pd.DataFrame]:
    g = extract.gazetteer
    assert g is not None
    uprn = frame[g.uprn].str.strip()
    reason[uprn == ""] = f"missing_uprn:{g.uprn}"
    reason[(reason == "") & uprn.duplicated()] = f"duplicate_uprn:{g.uprn}"
    ok = reason == ""
    rows = frame[ok]
    tenure = _col(rows, g.tenure)
    if g.tenure_values:
        tenure = tenure.map(g.tenure_values).astype("string")
    out = {"gazetteer": pd.DataFrame({
        "uprn": rows[g.uprn].str.strip(),
        "parent_uprn": _col(rows, g.parent_uprn),
        "address_text": _text(rows, g.address_text),
        "postcode": _col(rows, g.postcode),
        "classification": _col(rows, g.classification),
        "tenure": tenure,
    })}
    report.mapped += int(ok.sum())
    report.outputs["gazetteer"] = report.outputs.get("gazetteer", 0) + int(ok.sum())
    for why, count in reason[~ok].value_counts().items():
        report.quarantined[str(why)] = report.quarantined.get(str(why), 0) + int(count)
    if (~ok).any():
        qf = frame[~ok].drop(columns="__row").copy()
        qf.insert(0, "file", "")
        qf.insert(1, "row_number", frame.loc[~ok, "__row"].astype("int64"))
        qf["reason"] = reason[~ok]
        out["quarantine"] = qf.reset_index(drop=True)
    return out


_SCHEMAS: dict[str, dict[str, str]] = {
    "person_records": {"source": "string", "record_id": "string", "source_person_id": "string",
                       "first_name": "string", "middle_name": "string", "last_name": "string",
                       "birth_date": "date", "sex": "string", "postcode": "string", "address_text": "string",
                       "uprn": "string", "nhs_number": "string", "upn": "string", "seen_date": "date",
                       "seen_until": "date", "known_at": "date"},
    "address_records": {"source": "string", "record_id": "string", "address_text": "string",
                        "postcode": "string", "uprn": "string", "property_ref": "string"},
    "gazetteer": {"uprn": "string", "parent_uprn": "string", "address_text": "string", "postcode": "string",
                  "classification": "string", "tenure": "string"},
    "events": {"event_id": "string", "source": "string", "person_record_id": "string",
               "address_record_id": "string", "event_type": "string", "event_time": "datetime64[us]",
               "known_at": "datetime64[us]", "value": "float64", "coded_by": "string"},
    "outcomes": {"source": "string", "person_record_id": "string", "outcome_type": "string",
                 "outcome_time": "datetime64[us]", "known_at": "datetime64[us]", "end_time": "datetime64[us]",
                 "coded_by": "string"},
}


def _finish(name: str, frames: list[pd.DataFrame], attributes: list[str] | None = None) -> pd.DataFrame:
    """Concatenate one output's parts with its fixed column types (dates as Parquet date32)."""
    schema = _SCHEMAS[name]
    frames = [f for f in frames if len(f)]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({c: [] for c in schema})
    extra = sorted(set(attributes or []) | {c for c in table.columns if c not in schema})  # attr_* columns
    table = table.reindex(columns=[*schema, *extra])
    for col, kind in schema.items():
        if kind == "date":
            table[col] = pd.to_datetime(table[col]).dt.date.astype("date32[pyarrow]") if len(table) else \
                pd.Series([], dtype="date32[pyarrow]")
        else:
            table[col] = table[col].astype(kind)
    for col in extra:
        table[col] = table[col].astype("string")
    return table


class _Sink:
    """One output Parquet file written chunk by chunk with a fixed schema (an empty file if no rows)."""

    def __init__(self, path: Path, name: str, attributes: list[str]) -> None:
        self.path, self.name = path, name
        self.attributes = attributes if name == "person_records" else []
        self.rows = 0
        empty = _finish(name, [], self.attributes)
        self.schema = pa.Schema.from_pandas(empty, preserve_index=False)
        self.writer = pq.ParquetWriter(path, self.schema, compression="zstd")

    def write(self, frame: pd.DataFrame) -> None:
        if len(frame) == 0:
            return
        table = pa.Table.from_pandas(_finish(self.name, [frame], self.attributes), schema=self.schema,
                                     preserve_index=False)
        self.writer.write_table(table)
        self.rows += len(frame)

    def close(self) -> None:
        self.writer.close()


def coverage_markdown(coverage: dict[str, dict[str, Any]], extract_date: dt.date) -> str:
    """A readable coverage report: per source counts, share mapped, hits per rule, top unmapped."""
    lines = [f"# Ingest coverage (extract date {extract_date.isoformat()})", "",
             "| source | read | mapped | excluded | quarantined | share mapped |", "|---|---:|---:|---:|---:|---:|"]
    for source, c in coverage.items():
        share = "" if c["share_mapped"] is None else f"{c['share_mapped']:.1%}"
        lines.append(f"| {source} | {c['read']:,} | {c['mapped']:,} | {c['excluded']:,} | {c['quarantined']:,} "
                     f"| {share} |")
    for source, c in coverage.items():
        lines += ["", f"## {source}", "", f"Files: {', '.join(c['files'])}", ""]
        for title, key in (("Hits per code-list entry or rule", "hits_per_rule"), ("Excluded", "excluded_by"),
                           ("Quarantined", "quarantined_by"), ("Top unmapped codes", "top_unmapped_codes"),
                           ("Top unmapped phrases", "top_unmapped_phrases")):
            if c[key]:
                lines.append(f"**{title}**: " + "; ".join(f"`{k}` {v:,}" for k, v in c[key].items()))
                lines.append("")
        if c["known_after_extract_date"]:
            lines.append(f"Known after the extract date: {c['known_after_extract_date']:,} records, kept and usable "
                         "from their known_at (the mapping's known_at rule).")
            lines.append("")
        if c.get("mapped_not_coded"):
            lines.append(f"**Mapped without coding** (person or address records only; the extract has no code "
                         f"list or rules): {c['mapped_not_coded']:,}")
            lines.append("")
        if c["placeholder_birth_dates"] or c["unparseable_birth_dates"]:
            lines.append(f"Birth dates set to null: {c['placeholder_birth_dates']:,} placeholder (1900-01-01), "
                         f"{c['unparseable_birth_dates']:,} unparseable.")
    return "\n".join(lines) + "\n"
