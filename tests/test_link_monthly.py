"""A second monthly run from synthetic raw extracts keeps every resident's ID (docs/ingest-and-link.md)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from earlysignal.config import load_config, packaged_config_path
from earlysignal.dictionary import load_dictionary, packaged_dictionary_path
from earlysignal.ingest import ingest
from earlysignal.linkage.run import run_link

REPO = Path(__file__).resolve().parents[1]
DICTIONARY = load_dictionary(packaged_dictionary_path())


@pytest.fixture(scope="module")
def months(raw_borough_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Last month's extract (everything up to 2025-12-01) and this month's, each ingested and linked."""
    root = tmp_path_factory.mktemp("monthly")
    mappings = sorted((REPO / "conf" / "sources").glob("*.yaml"))
    truth = raw_borough_tiny / "ground_truth" / "raw_records.parquet"
    config = load_config(packaged_config_path())
    mp = pytest.MonkeyPatch()
    mp.setenv("EARLYSIGNAL_LINK_SECRET", "monthly-test-secret-" + "7" * 20)
    try:
        ingest(raw_borough_tiny / "raw", root / "in1", mappings, DICTIONARY.event_types_by_source(),
               tuple(DICTIONARY.outcomes), extract_date=dt.date(2025, 12, 1))
        run_link(root / "in1", root / "out1", config, ground_truth=truth)
        ingest(raw_borough_tiny / "raw", root / "in2", mappings, DICTIONARY.event_types_by_source(),
               tuple(DICTIONARY.outcomes))
        run_link(root / "in2", root / "out2", config, previous=root / "out1", ground_truth=truth)
    finally:
        mp.undo()
    return {"out1": root / "out1", "out2": root / "out2"}


def test_next_months_link_of_the_synthetic_borough_splits_no_dated_record_and_keeps_their_ids(
    months: dict[str, Path], raw_borough_tiny: Path
) -> None:
    quality = [json.loads((months[k] / "link_quality.json").read_text()) for k in ("out1", "out2")]
    for q in quality:
        assert q["ground_truth"]["precision"] >= 0.95 and q["ground_truth"]["recall"] >= 0.95
    changes = quality[1]["changes_since_previous"]
    assert changes["kept"] > 0
    table = pd.read_parquet(months["out2"] / "link_changes.parquet")
    assert set(table["change"]) <= {"kept", "merged", "split"}
    # Every record of last month keeps its resident ID, unless its resident merged into another, or it is one
    # of the few records without a birth date whose link sat at the threshold: EM is retrained each month, and
    # a council-tax holder seen at a second address by name alone (match probability 0.84-0.88 in month 1) can
    # fall just under 0.8 (measured: 4 records of 3 people out of 5,078 residents, 2026-12-01, once the synth
    # planted sex/NHS/UPN disagreements moved EM; none had a birth date, so none was in the contract).
    before = pd.read_parquet(months["out1"] / "person_links.parquet")
    after = pd.read_parquet(months["out2"] / "person_links.parquet")
    both = before.merge(after, on=["source", "record_id"], suffixes=("_1", "_2"), validate="one_to_one")
    assert len(both) == len(before)
    merged_into = dict(zip(table.loc[table["change"] == "merged", "previous_resident_id"],
                           table.loc[table["change"] == "merged", "resident_id"]))
    expected = both["resident_id_1"].map(lambda r: merged_into.get(r, r))
    moved = both[both["resident_id_2"] != expected]
    records = pd.read_parquet(months["out1"].parent / "in2" / "person_records.parquet",
                              columns=["source", "record_id", "birth_date"])
    assert moved.merge(records, on=["source", "record_id"])["birth_date"].isna().all()
    assert len(moved) <= 0.001 * len(before)
    assert changes.get("split", 0) <= 0.001 * before["resident_id"].nunique()
    assert len(merged_into) <= 0.01 * before["resident_id"].nunique()
