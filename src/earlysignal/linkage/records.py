"""Per-record work of `earlysignal link` in DuckDB, so pandas only sees one row per group of repeats.

A borough's person records repeat: a pupil is one record per school month, a benefit claim one per
assessment. Records of one source identical in every person field (names, birth date, sex, address,
identifiers, attributes; only record ID and seen dates differ) form a *group*; linkage, address
matching and resident attributes need one row per group (the kept record, the group's smallest record
ID, with the group's size and first and last seen dates). Everything that is per record (each
record's kept record, residency observations, mapping events and outcomes to residents, the
person-link table, accuracy against ground truth) stays here, in a DuckDB connection that spills to
a private temporary folder (it holds names) removed on close. Outputs equal those computed record by
record: counts are weighted by group size and residency reads every record's own dates.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from earlysignal.atomic import atomic_path
from earlysignal.errors import ContractError

# Columns that describe the record rather than the person: they may differ within a group.
RECORD_COLUMNS = ("source", "record_id", "seen_date", "seen_until", "known_at")


def _linked_column(linked: np.ndarray | None, n: int) -> pd.Series:
    """Per kept record its linked day as a date column DuckDB reads (all null when not given)."""
    if linked is None:
        return pd.Series(pd.NaT, index=range(n), dtype="datetime64[s]")
    return pd.Series(np.asarray(linked).astype("datetime64[D]").astype("datetime64[s]"))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: Path | str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


SPILL_PREFIX = ".link-spill-"


def spill_folder(ingested: Path | None) -> tempfile.TemporaryDirectory:
    """A private folder for DuckDB to spill to while linking: it holds names, so it lives inside the ingested
    folder (which already holds them, under the same protection) rather than in a shared temporary folder,
    and is removed when linking ends. A link that was killed leaves it there; `remove_stale_spills` clears it."""
    parent = ingested if ingested is not None and os.access(ingested, os.W_OK) else None
    return tempfile.TemporaryDirectory(prefix=SPILL_PREFIX, dir=parent)


def remove_stale_spills(ingested: Path) -> int:
    """Remove spill folders an earlier, killed link left in `ingested`; returns how many were removed."""
    stale = [p for p in ingested.glob(f"{SPILL_PREFIX}*") if p.is_dir()]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)


class RecordStore:
    """The person records of one ingested folder, collapsed into groups, with per-record lookups in DuckDB.

    Use as a context manager. `kept` (pandas, one row per group, in file order of the group's first
    record) holds every person column plus `n_records` (group size), `first_seen` / `last_seen` (dates),
    `first_known` (the earliest day any record of the group was known: seen date, or known_at when later)
    and `kept_idx` (row position). Raises ContractError when a (source, record_id) repeats.
    """

    def __init__(self, person_records: Path, memory_limit: str) -> None:
        self.path = person_records
        self._spill = spill_folder(person_records.parent)
        self.con = duckdb.connect()
        self.con.execute("SET threads TO 2")
        self.con.execute(f"SET memory_limit = '{memory_limit}'")
        self.con.execute(f"SET temp_directory = '{self._spill.name}'")
        # Joins below do not need the input order; outputs sort explicitly by file row number.
        self.con.execute("SET preserve_insertion_order = false")
        self.kept = self._collapse()

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection and remove its spill folder."""
        self.con.close()
        self._spill.cleanup()

    # ----------------------------------------------------------------------------------------
    def _collapse(self) -> pd.DataFrame:
        src = f"read_parquet({_literal(self.path)}, file_row_number = true)"
        columns = [r[0] for r in self.con.sql(f"DESCRIBE SELECT * FROM read_parquet({_literal(self.path)})").fetchall()]
        identity = [c for c in columns if c not in RECORD_COLUMNS]
        # When the council knew of each record; person records ingested before it was written count from
        # when they were seen.
        known = "known_at" if "known_at" in columns else "seen_date"
        # Records of one source identical in every person field are one row for linkage; the window
        # gives each record its group's smallest record ID, size and first and last seen dates.
        group = "PARTITION BY " + ", ".join(_quote(c) for c in ["source", *identity])
        self.con.execute(f"""
            CREATE TEMP TABLE alias AS
            SELECT file_row_number AS row_no, source, record_id, seen_date, seen_until,
                   greatest(seen_date, coalesce({known}, seen_date)) AS known_from,
                   min(record_id) OVER w AS kept_record_id, count(*) OVER w AS n_records,
                   min(seen_date) OVER w AS first_seen, max(seen_date) OVER w AS last_seen,
                   min(greatest(seen_date, coalesce({known}, seen_date))) OVER w AS first_known,
                   min(file_row_number) OVER w AS first_row
            FROM {src} WINDOW w AS ({group})
        """)
        duplicates = self.con.execute(
            "SELECT count(*) - count(DISTINCT (source, record_id)) FROM alias").fetchall()[0][0]
        if duplicates:
            raise ContractError(
                f"{self.path}: {int(duplicates)} rows repeat a (source, record_id); record_id must be unique within its source"
            )
        self.con.execute("""
            CREATE TEMP TABLE groups AS
            SELECT source, kept_record_id, n_records, first_seen, last_seen, first_known, first_row
            FROM alias WHERE record_id = kept_record_id
        """)
        kept = self.con.sql(f"""
            SELECT p.* EXCLUDE (file_row_number), r.n_records, r.first_seen, r.last_seen, r.first_known
            FROM {src} p JOIN groups r ON p.source = r.source AND p.record_id = r.kept_record_id
            ORDER BY r.first_row
        """).df()
        # Text as the nullable string dtype ingest wrote (pandas reads it back so), whatever DuckDB returns.
        text = [r[0] for r in self.con.sql(f"DESCRIBE SELECT * FROM {src}").fetchall() if r[1] == "VARCHAR"]
        kept = kept.astype({c: "string" for c in text if c in kept.columns})
        kept.insert(len(kept.columns), "kept_idx", np.arange(len(kept), dtype=np.int64))
        self.con.register("kept_rows", kept[["source", "record_id", "kept_idx"]])
        # record_kept: every record -> its group's kept record (by position in `kept`).
        self.con.execute("""
            CREATE TEMP TABLE record_kept AS
            SELECT a.row_no, a.source, a.record_id, a.seen_date, a.seen_until, a.known_from, k.kept_idx
            FROM alias a JOIN kept_rows k ON k.source = a.source AND k.record_id = a.kept_record_id
        """)
        self.con.unregister("kept_rows")
        self.con.execute("DROP TABLE alias")
        self.con.execute("DROP TABLE groups")
        return kept

    @property
    def records(self) -> int:
        """Person records read (all of them, before collapsing)."""
        return int(self.con.execute("SELECT count(*) FROM record_kept").fetchall()[0][0])  # type: ignore[index]

    # ----------------------------------------------------------------------------------------
    def daily_observations(self, resident_code: np.ndarray, address_code: np.ndarray,
                           ongoing_sources: tuple[str, ...] = (), extract_date: dt.date | None = None,
                           linked: np.ndarray | None = None) -> pd.DataFrame:
        """Per (resident, day, address) the record count and latest seen_until (residency's input).

        `resident_code` / `address_code`: int codes per kept record (-1 = none). `linked` (datetime64[D]
        per kept record, NaT = none): the day its records joined their resident (link_times.py); a
        record is evidence from the later of that day and its own known day. A record of one of
        `ongoing_sources` without a seen_until is current (an open council-tax liability): its seen_until
        is taken as `extract_date`. Returns columns resident_id, seen_date, address_id (the int codes),
        n, until; seen_date is the day the council knew of the record (the later of its seen_date and
        known_at, and the linked day), so residency built from it never starts before its evidence arrived
        nor before the council could know whose it was.
        """
        self.con.register("kept_codes", pd.DataFrame({
            "kept_idx": np.arange(len(resident_code), dtype=np.int64),
            "res": resident_code.astype(np.int64), "addr": address_code.astype(np.int64),
            "linked": _linked_column(linked, len(resident_code))}))
        until = "r.seen_until"
        if ongoing_sources and extract_date is not None:
            listed = ", ".join(_literal(s) for s in ongoing_sources)
            until = (f"CASE WHEN r.seen_until IS NULL AND r.source IN ({listed}) "
                     f"THEN DATE {_literal(extract_date.isoformat())} ELSE r.seen_until END")
        # A record whose known_at rule puts it after the extract date is not evidence at any date the data
        # covers (ADR 0018 keeps such events unusable until then; residency follows the same rule).
        not_yet_known = (f"AND greatest(r.known_from, CAST(k.linked AS DATE)) <= DATE {_literal(extract_date.isoformat())}"
                         if extract_date is not None else "")
        daily = self.con.sql(f"""
            SELECT k.res AS resident_id, CAST(greatest(r.known_from, CAST(k.linked AS DATE)) AS TIMESTAMP) AS seen_date,
                   k.addr AS address_id, count(*) AS n, CAST(max({until}) AS TIMESTAMP) AS until
            FROM record_kept r JOIN kept_codes k USING (kept_idx)
            WHERE k.res >= 0 AND k.addr >= 0 AND r.known_from IS NOT NULL {not_yet_known}
            GROUP BY ALL
        """).df()
        self.con.unregister("kept_codes")
        return daily

    def counts_by_kept(self, table: Path | pd.DataFrame, value: str) -> pd.DataFrame:
        """Records per (kept record, `value`) for a per-record table with source and record_id columns.

        `table` is a Parquet path or a DataFrame; rows naming no known record are left out, and a record
        listed twice counts once (with the smaller value).
        Returns kept_idx, value, n.
        """
        relation = f"read_parquet({_literal(table)})" if isinstance(table, Path) else "given"
        if not isinstance(table, Path):
            self.con.register("given", table)
        out = self.con.sql(f"""
            SELECT r.kept_idx, CAST(g.{_quote(value)} AS VARCHAR) AS value, count(*) AS n
            FROM (SELECT source, record_id, min({_quote(value)}) AS {_quote(value)} FROM {relation}
                  WHERE {_quote(value)} IS NOT NULL GROUP BY ALL) g
            JOIN record_kept r ON r.source = CAST(g.source AS VARCHAR) AND r.record_id = CAST(g.record_id AS VARCHAR)
            GROUP BY ALL
        """).df()
        if not isinstance(table, Path):
            self.con.unregister("given")
        return out

    def distinct_values(self, table: Path, column: str) -> set[str]:
        """The distinct non-null values of one column of a Parquet file."""
        rows = self.con.sql(f"SELECT DISTINCT CAST({_quote(column)} AS VARCHAR) FROM read_parquet({_literal(table)}) "
                            f"WHERE {_quote(column)} IS NOT NULL").fetchall()
        return {r[0] for r in rows}

    def write_person_links(self, per_kept: pd.DataFrame, run_id: str, target: Path) -> int:
        """Write person_links (one row per record, in file order) from per-kept-record values.

        `per_kept`: resident_id, match_probability, cluster_change, linked (datetime64[D], NaT = none),
        one row per kept record in order. A record's `linked_at` is the later of its own known day and
        its kept record's linked day (link_times.py). Returns the rows written.
        """
        kept_links = per_kept.assign(kept_idx=np.arange(len(per_kept), dtype=np.int64),
                                     linked=_linked_column(per_kept["linked"].to_numpy(), len(per_kept)))
        self.con.register("kept_links", kept_links)
        with atomic_path(target) as tmp:
            self.con.execute(f"""
                COPY (SELECT r.source, r.record_id, k.resident_id, CAST(k.match_probability AS DOUBLE) AS match_probability,
                             {_literal(run_id)} AS link_run_id, k.cluster_change,
                             greatest(r.known_from, CAST(k.linked AS DATE)) AS linked_at
                      FROM record_kept r JOIN kept_links k USING (kept_idx) ORDER BY r.row_no)
                TO {_literal(tmp)} (FORMAT parquet, COMPRESSION zstd)
            """)
        self.con.unregister("kept_links")
        return self.records

    def linked_later(self, resident_code: np.ndarray, linked: np.ndarray) -> dict[str, int]:
        """Records (of contract residents, `resident_code` >= 0 per kept record) joined to their resident
        after they were known (`linked` later than their own known day), and the residents holding any."""
        self.con.register("kept_later", pd.DataFrame({
            "kept_idx": np.arange(len(resident_code), dtype=np.int64), "res": resident_code.astype(np.int64),
            "linked": _linked_column(linked, len(resident_code))}))
        row = self.con.execute("""
            SELECT count(*), count(DISTINCT k.res) FROM record_kept r JOIN kept_later k USING (kept_idx)
            WHERE k.res >= 0 AND CAST(k.linked AS DATE) > coalesce(r.known_from, DATE '0001-01-01')
        """).fetchall()[0]
        self.con.unregister("kept_later")
        return {"records": int(row[0]), "residents": int(row[1])}

    def link_events(self, events: Path, kept_codes: pd.DataFrame, address_codes: pd.DataFrame,
                    resident_ids: list[str], address_ids: list[str], lived_in: np.ndarray,
                    address_event_sources: tuple[str, ...], target: Path) -> dict[str, Any]:
        """Map ingested events to residents and addresses and write the contract's events table.

        `kept_codes` (res, addr int codes per kept record, -1 = none; res is -1 for dropped residents;
        optional `linked`, datetime64[D] per kept record: a person event with a resident is known from
        the later of its own known_at and that day, link_times.py),
        `address_codes` (source, record_id, addr per address record), `resident_ids` / `address_ids`
        (code -> ID), `lived_in` (per address code: some linked resident has a spell there). A person
        event keeps its resident; its address comes from its address record, else (for
        `address_event_sources`) the person record's address. An address where no linked resident lived
        is dropped from a person event and drops an address-only event. Returns counts and sources.
        """
        con = self.con
        linked = kept_codes["linked"].to_numpy() if "linked" in kept_codes else None
        con.register("kept_codes", kept_codes.assign(kept_idx=np.arange(len(kept_codes), dtype=np.int64),
                                                     linked=_linked_column(linked, len(kept_codes))))
        con.register("address_codes", address_codes)
        con.register("resident_names", pd.DataFrame({"res": np.arange(len(resident_ids), dtype=np.int64),
                                                     "resident_id": pd.Series(resident_ids, dtype="object")}))
        con.register("address_names", pd.DataFrame({"addr": np.arange(len(address_ids), dtype=np.int64),
                                                    "address_id": pd.Series(address_ids, dtype="object"),
                                                    "lived": lived_in.astype(bool)}))
        con.register("address_event_sources", pd.DataFrame({"source": list(address_event_sources)}, dtype="object"))
        columns = [r[0] for r in con.sql(f"DESCRIBE SELECT * FROM read_parquet({_literal(events)})").fetchall()]
        value = "CAST(e.value AS DOUBLE)" if "value" in columns else "CAST(NULL AS DOUBLE)"
        # The code-list entry or rule behind each event travels with it, so a reason or a journey can
        # say why a job counted as a door replacement (docs/ingest-and-link.md).
        coded_by = "CAST(e.coded_by AS VARCHAR)" if "coded_by" in columns else "CAST(NULL AS VARCHAR)"
        con.execute(f"""
            CREATE TEMP TABLE mapped_events AS
            WITH base AS (
                SELECT e.file_row_number AS row_no, CAST(e.event_id AS VARCHAR) AS event_id,
                       CAST(e.source AS VARCHAR) AS source, CAST(e.event_type AS VARCHAR) AS event_type,
                       CAST(e.event_time AS TIMESTAMP) AS event_time,
                       CASE WHEN e.person_record_id IS NOT NULL AND kc.res >= 0
                            THEN greatest(CAST(e.known_at AS TIMESTAMP), CAST(kc.linked AS TIMESTAMP))
                            ELSE CAST(e.known_at AS TIMESTAMP) END AS known_at,
                       CAST(e.known_at AS TIMESTAMP) AS own_known_at,
                       {value} AS value, {coded_by} AS coded_by,
                       CASE WHEN e.person_record_id IS NOT NULL AND kc.res >= 0 THEN kc.res END AS res,
                       coalesce(
                           CASE WHEN e.address_record_id IS NOT NULL AND ac.addr >= 0 THEN ac.addr END,
                           CASE WHEN e.person_record_id IS NOT NULL AND kc.addr >= 0
                                     AND e.source IN (SELECT source FROM address_event_sources) THEN kc.addr END
                       ) AS addr
                FROM read_parquet({_literal(events)}, file_row_number = true) e
                LEFT JOIN record_kept r ON e.person_record_id IS NOT NULL AND r.source = e.source
                                       AND r.record_id = e.person_record_id
                LEFT JOIN kept_codes kc ON kc.kept_idx = r.kept_idx
                LEFT JOIN address_codes ac ON e.address_record_id IS NOT NULL AND ac.source = e.source
                                          AND ac.record_id = e.address_record_id
            )
            SELECT b.*, b.addr IS NOT NULL AND NOT coalesce(n.lived, false) AS unplaced
            FROM base b LEFT JOIN address_names n ON n.addr = b.addr
        """)
        counts = con.execute("""
            SELECT count(*) FILTER (WHERE res IS NULL AND (addr IS NULL OR unplaced)) AS orphan,
                   count(*) FILTER (WHERE res IS NULL AND unplaced) AS unplaced_address_events,
                   count(*) FILTER (WHERE res IS NOT NULL AND known_at > own_known_at) AS known_later_by_linkage
            FROM mapped_events
        """).fetchall()[0]
        with atomic_path(target) as tmp:
            con.execute(f"""
                COPY (SELECT m.event_id, rn.resident_id, an.address_id, m.source, m.event_type, m.event_time,
                             m.known_at, m.value, m.coded_by
                      FROM mapped_events m
                      LEFT JOIN resident_names rn ON rn.res = m.res
                      LEFT JOIN address_names an ON an.addr = CASE WHEN m.unplaced THEN NULL ELSE m.addr END
                      WHERE NOT (m.res IS NULL AND (m.addr IS NULL OR m.unplaced))
                      ORDER BY m.row_no)
                TO {_literal(tmp)} (FORMAT parquet, COMPRESSION zstd)
            """)
        written = con.execute(f"SELECT count(*) FROM read_parquet({_literal(target)})").fetchall()[0][0]  # type: ignore[index]
        sources = {r[0] for r in con.sql(
            "SELECT DISTINCT source FROM mapped_events WHERE NOT (res IS NULL AND (addr IS NULL OR unplaced))").fetchall()}
        con.execute("DROP TABLE mapped_events")
        for name in ("kept_codes", "address_codes", "resident_names", "address_names", "address_event_sources"):
            con.unregister(name)
        assert counts is not None
        return {"rows": int(written), "orphan": int(counts[0]), "unplaced_address_events": int(counts[1]),
                "known_later_by_linkage": int(counts[2]), "sources": sources}

    def map_outcomes(self, outcomes: Path) -> pd.DataFrame:
        """Ingested outcomes with the kept record of their person record (kept_idx, -1 when unknown)."""
        out = self.con.sql(f"""
            SELECT o.* EXCLUDE (file_row_number), coalesce(r.kept_idx, -1) AS kept_idx
            FROM read_parquet({_literal(outcomes)}, file_row_number = true) o
            LEFT JOIN record_kept r ON r.source = o.source AND r.record_id = o.person_record_id
            ORDER BY o.file_row_number
        """).df()
        return out

    def kept_of(self, keys: pd.DataFrame) -> np.ndarray:
        """kept_idx (-1 when unknown) for rows of (source, record_id), in the given order."""
        self.con.register("wanted", keys[["source", "record_id"]].astype(str).assign(i=np.arange(len(keys))))
        out = self.con.sql("""
            SELECT w.i, coalesce(r.kept_idx, -1) AS kept_idx FROM wanted w
            LEFT JOIN record_kept r ON r.source = w.source AND r.record_id = w.record_id ORDER BY w.i
        """).df()
        self.con.unregister("wanted")
        return out["kept_idx"].to_numpy(dtype=np.int64)
