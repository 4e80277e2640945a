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


@pytest.fixture(scope="module")
def linked_features(linked: dict[str, Path]) -> pd.DataFrame:
    """The feature matrix built from the linked-by-us histories (not the synthetic truth), quarterly over 2 years."""
    import datetime as dt

    from earlysignal.features import build_or_reuse_feature_matrix

    config = load_config(packaged_config_path())
    config = config.model_copy(update={"temporal": config.temporal.model_copy(
        update={"first_as_of": dt.date(2023, 1, 1), "last_as_of": dt.date(2024, 10, 1)})})
    out = linked["linked"].parent / "features" / "matrix.parquet"
    matrix, _ = build_or_reuse_feature_matrix(config, data_dir=linked["linked"], out=out)
    return matrix.frame


def test_feature_sidecar_records_the_link_run_and_code_list_hash(linked: dict[str, Path], linked_features: pd.DataFrame) -> None:
    from earlysignal.features.matrix import read_feature_metadata

    sidecar = read_feature_metadata(linked["linked"].parent / "features" / "matrix.parquet")
    ingest_manifest = json.loads((linked["ingested"] / "manifest.json").read_text())
    link_manifest = json.loads((linked["linked"] / "manifest.json").read_text())
    assert sidecar["linkage"]["link_run_id"] == link_manifest["link_run_id"]
    assert sidecar["linkage"]["code_lists_sha256"] == ingest_manifest["code_lists_sha256"]
    assert len(ingest_manifest["code_lists_sha256"]) == 64
    assert sidecar["linkage"]["quality"]["threshold"] == 0.8


def test_sanctuary_works_reach_the_linked_events_but_never_a_feature(
    linked: dict[str, Path], linked_features: pd.DataFrame
) -> None:
    events = pd.read_parquet(linked["linked"] / "events.parquet", columns=["event_type"])
    assert (events["event_type"] == "sanctuary_works").sum() > 0
    assert [c for c in linked_features.columns if "sanctuary" in c] == []
    assert any("door_replacement" in c for c in linked_features.columns)


def test_door_replacement_feature_is_raised_under_true_domestic_abuse_after_linking(
    linked: dict[str, Path], linked_features: pd.DataFrame
) -> None:
    borough = linked["borough"]
    # Each linked resident stands for the true person behind most of its records.
    links = pd.read_parquet(linked["linked"] / "person_links.parquet", columns=["source", "record_id", "resident_id"])
    truth = pd.read_parquet(borough / "ground_truth" / "raw_records.parquet", columns=["source", "record_id", "resident_id"])
    truth = truth.rename(columns={"resident_id": "true_resident_id"}).dropna()
    pairs = links.merge(truth, on=["source", "record_id"])
    true_of = pairs.groupby("resident_id")["true_resident_id"].agg(lambda s: s.mode().iloc[0])
    rows = linked_features[["resident_id", "as_of"]].copy()
    door = [c for c in linked_features.columns if "door_replacement" in c and c.endswith("count__365d")]
    assert len(door) == 1, door
    rows["doors"] = linked_features[door[0]].fillna(0).to_numpy()
    rows["true_resident_id"] = rows["resident_id"].map(true_of)
    rows["as_of"] = pd.to_datetime(rows["as_of"])
    # Was the true household under domestic abuse at any time in the 365 days before as_of?
    residency = pd.read_parquet(borough / "residency.parquet", columns=["resident_id", "household_id", "start_date", "end_date"])
    states = pd.read_parquet(borough / "ground_truth" / "household_states.parquet")
    abuse = states[states["state"] == "domestic_abuse"][["household_id", "start_date", "end_date"]]
    spells = residency.rename(columns={"resident_id": "true_resident_id"}).merge(abuse, on="household_id", suffixes=("", "_da"))
    joined = rows.reset_index().merge(spells, on="true_resident_id")
    far = pd.Timestamp("2100-01-01")
    lo = joined["as_of"] - pd.Timedelta(days=365)
    live = (pd.to_datetime(joined["start_date"]) < joined["as_of"]) & (pd.to_datetime(joined["end_date"]).fillna(far) > lo)
    abused = (pd.to_datetime(joined["start_date_da"]) < joined["as_of"]) & (pd.to_datetime(joined["end_date_da"]).fillna(far) > lo)
    under = set(joined.loc[live & abused, "index"])
    rows["under_abuse"] = rows.index.isin(under)
    share_under = (rows.loc[rows["under_abuse"], "doors"] > 0).mean()
    share_else = (rows.loc[~rows["under_abuse"], "doors"] > 0).mean()
    assert rows["under_abuse"].sum() >= 50 and share_else > 0
    print(f"door feature > 0: {share_under:.3f} under abuse vs {share_else:.4f} otherwise "
          f"(ratio {share_under / share_else:.1f}, {rows['under_abuse'].sum()} rows under abuse)")
    assert share_under / share_else > 3.0, (share_under, share_else)
