"""Records are never "known" before they really were: every source's known_at rule against the synthetic
world's true known times, and the same school history usable at the extract date as at earlier as-of dates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from earlysignal.dictionary import load_dictionary, packaged_dictionary_path
from earlysignal.features.labels import label_at
from earlysignal.ingest import ingest, load_mapping

REPO = Path(__file__).resolve().parents[1]
DICTIONARY = load_dictionary(packaged_dictionary_path())
MAPPINGS = sorted((REPO / "conf" / "sources").glob("*.yaml"))


@pytest.fixture(scope="module")
def ingested(raw_borough_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ingested_known_at")
    ingest(raw_borough_tiny / "raw", out, MAPPINGS, DICTIONARY.event_types_by_source(), tuple(DICTIONARY.outcomes))
    return out


def _with_true_known_at(table: pd.DataFrame, borough: Path) -> pd.DataFrame:
    truth = pd.read_parquet(borough / "ground_truth" / "raw_records.parquet")
    truth = truth.rename(columns={"known_at": "true_known_at"})[["source", "record_id", "truth", "true_known_at"]]
    return table.merge(truth, on=["source", "record_id"], how="left", validate="one_to_one")


def test_no_ingested_event_or_outcome_is_known_before_the_synthetic_world_knew_it(
    ingested: Path, raw_borough_tiny: Path
) -> None:
    events = pd.read_parquet(ingested / "events.parquet")
    events["record_id"] = events["person_record_id"].fillna(events["address_record_id"])
    outcomes = pd.read_parquet(ingested / "outcomes.parquet").rename(columns={"person_record_id": "record_id"})
    for table in (_with_true_known_at(events, raw_borough_tiny), _with_true_known_at(outcomes, raw_borough_tiny)):
        # Every record that maps to a true event or outcome carries when the world knew it.
        true_records = table[~table["truth"].isin(["sanctuary_works"])]
        assert true_records["true_known_at"].notna().all()
        early = true_records[true_records["known_at"] < true_records["true_known_at"]]
        assert early.groupby("source").size().to_dict() == {}
    # Every source that codes events is covered, so a new source cannot slip past this check.
    coding_sources = {load_mapping(p).source for p in MAPPINGS if any(e.known_at for e in load_mapping(p).extracts)}
    assert set(events["source"]) | set(outcomes["source"]) == coding_sources


def _school_months_usable(events: pd.DataFrame, as_of: pd.Timestamp) -> list[int]:
    """Calendar months of the year before `as_of` whose attendance a feature can use at `as_of`: at least
    half as many records known before `as_of` as the fullest month (a thin month is a partly-arrived term)."""
    absence = events[(events["source"] == "school") & (events["event_type"] == "absence")]
    window = absence[(absence["event_time"] >= as_of - pd.DateOffset(years=1)) & (absence["event_time"] < as_of)]
    usable = window[window["known_at"] < as_of].groupby(window["event_time"].dt.month).size()
    return sorted(int(m) for m, n in usable.items() if n >= 0.5 * usable.max())


def test_school_attendance_usable_at_the_extract_date_matches_the_same_date_in_earlier_years(
    ingested: Path, raw_borough_tiny: Path
) -> None:
    # Training rows (earlier as-of dates) must see the school history that scoring (the extract date)
    # sees. With attendance known at the end of its own term, training saw last autumn's term that at
    # the extract date had mostly not arrived (11 months against 7).
    events = pd.read_parquet(ingested / "events.parquet")
    extract = pd.Timestamp("2026-01-01")
    at_scoring = _school_months_usable(events, extract)
    assert at_scoring == [1, 2, 3, 4, 5, 6, 7]  # spring and summer terms; autumn's return is not in yet
    for years in (1, 2):
        assert _school_months_usable(events, extract - pd.DateOffset(years=years)) == at_scoring


def test_records_known_after_the_extract_date_are_kept_with_their_known_at_and_counted(ingested: Path) -> None:
    import json

    events = pd.read_parquet(ingested / "events.parquet")
    late = events[events["known_at"] >= pd.Timestamp("2026-01-02")]
    coverage = json.loads((ingested / "coverage.json").read_text())
    assert {s: c["known_after_extract_date"] for s, c in coverage.items() if c["known_after_extract_date"]} == \
        late.groupby("source").size().to_dict()
    # Last autumn's attendance: in the extract, usable from the end of the spring term + 7 days.
    assert set(late["source"]) == {"school"}
    assert set(late["known_at"]) == {pd.Timestamp("2026-04-07")}
    assert (late["event_time"] < pd.Timestamp("2026-01-01")).all()


def test_an_outcome_known_after_the_extract_date_is_not_a_positive_label_at_the_extract_date() -> None:
    window_end = np.array(["2025-06-01", "2025-06-01"], dtype="datetime64[D]")
    known = np.array(["2025-12-31T10:00", "2026-01-03T00:00"], dtype="datetime64[us]")
    labels = label_at(window_end, known, np.zeros(2, dtype=bool), cut=None, extract_date=dt.date(2026, 1, 1))
    assert labels.tolist() == [1, 0]


def test_terms_in_arrears_is_refused_outside_the_term_end_rule(tmp_path: Path) -> None:
    from earlysignal.errors import ConfigError

    path = tmp_path / "asb.yaml"
    path.write_text((REPO / "conf" / "sources" / "asb.yaml").read_text().replace(
        "known_at: {rule: lag, days: 1}", "known_at: {rule: lag, days: 1, terms_in_arrears: 1}"))
    with pytest.raises(ConfigError, match="terms_in_arrears needs known_at.rule 'term_end'"):
        load_mapping(path)
