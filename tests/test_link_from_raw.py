"""Synthetic raw extracts -> `ingest` -> `link` -> the data contract, on a tiny borough with ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from earlysignal.config import load_config, packaged_config_path
from earlysignal.contract import validate_directory
from earlysignal.dictionary import load_dictionary, packaged_dictionary_path
from earlysignal.ingest import ingest
from earlysignal.linkage.run import run_link

REPO = Path(__file__).resolve().parents[1]
SECRET = "raw-borough-test-secret-" + "9" * 16
DICTIONARY = load_dictionary(packaged_dictionary_path())
EVENT_VOCABULARY = DICTIONARY.event_types_by_source()
OUTCOME_TYPES = tuple(DICTIONARY.outcomes)


@pytest.fixture(scope="module")
def linked(raw_borough_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("link_from_raw")
    ingest(raw_borough_tiny / "raw", root / "ingested", sorted((REPO / "conf" / "sources").glob("*.yaml")),
           EVENT_VOCABULARY, OUTCOME_TYPES)
    mp = pytest.MonkeyPatch()
    mp.setenv("EARLYSIGNAL_LINK_SECRET", SECRET)
    try:
        run_link(root / "ingested", root / "linked", load_config(packaged_config_path()),
                 ground_truth=raw_borough_tiny / "ground_truth" / "raw_records.parquet")
    finally:
        mp.undo()
    return {"ingested": root / "ingested", "linked": root / "linked", "borough": raw_borough_tiny}


def test_linkage_of_the_synthetic_borough_has_precision_and_recall_of_at_least_095(linked: dict[str, Path]) -> None:
    truth = json.loads((linked["linked"] / "link_quality.json").read_text())["ground_truth"]
    assert truth["precision"] >= 0.95 and truth["recall"] >= 0.95
    assert truth["records"] == len(pd.read_parquet(linked["ingested"] / "person_records.parquet"))


def test_linked_synthetic_borough_passes_the_contract_except_types_outside_the_vocabulary(linked: dict[str, Path]) -> None:
    result = validate_directory(linked["linked"], config=load_config(packaged_config_path()), write_quarantine=False)
    for name in ("residents", "residency", "outcomes"):
        assert result.report.tables[name].quarantined == 0, name
    events = pd.read_parquet(linked["linked"] / "events.parquet")
    known = [t in EVENT_VOCABULARY.get(s, ()) for s, t in zip(events["source"], events["event_type"])]
    outside = len(known) - sum(known)
    assert result.report.tables["events"].quarantined == outside


def test_addresses_of_the_synthetic_borough_mostly_get_a_uprn(linked: dict[str, Path]) -> None:
    addresses = json.loads((linked["linked"] / "link_quality.json").read_text())["addresses"]
    assert addresses["address_records"]["match_rate"] >= 0.95
    # A&E records carry a postcode only, so they cannot be placed at an address.
    records = pd.read_parquet(linked["ingested"] / "person_records.parquet")
    with_text = int(records["address_text"].notna().sum() + records["uprn"].notna().sum()
                    - (records["address_text"].notna() & records["uprn"].notna()).sum())
    assert addresses["person_records"]["matched"] >= 0.95 * with_text
