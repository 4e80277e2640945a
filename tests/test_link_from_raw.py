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
    door = [c for c in linked_features.columns if "door_replacement" in c and c.endswith("count__12m")]
    assert len(door) == 1, door
    rows["doors"] = linked_features[door[0]].fillna(0).to_numpy()
    rows["true_resident_id"] = rows["resident_id"].map(true_of)
    rows["as_of"] = pd.to_datetime(rows["as_of"])
    # Was the true household under domestic abuse at any time in the 12 months before as_of (the window)?
    residency = pd.read_parquet(borough / "residency.parquet", columns=["resident_id", "household_id", "start_date", "end_date"])
    states = pd.read_parquet(borough / "ground_truth" / "household_states.parquet")
    abuse = states[states["state"] == "domestic_abuse"][["household_id", "start_date", "end_date"]]
    spells = residency.rename(columns={"resident_id": "true_resident_id"}).merge(abuse, on="household_id", suffixes=("", "_da"))
    joined = rows.reset_index().merge(spells, on="true_resident_id")
    far = pd.Timestamp("2100-01-01")
    lo = joined["as_of"] - pd.DateOffset(months=12)
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


def test_council_tax_holders_without_a_birth_date_enter_the_contract_through_a_linked_record(
    linked: dict[str, Path]
) -> None:
    """Council tax carries no birth date: its holders link on name + address (Splink gives a missing birth
    date the null level) and take birth date and sex from the other records of their cluster; the title
    gives their sex. Only records of residents with no birth date or sex from any source are left out,
    counted per source."""
    records = pd.read_parquet(linked["ingested"] / "person_records.parquet", columns=["source", "birth_date", "sex"])
    council_tax = records[records["source"] == "council_tax"]
    assert council_tax["birth_date"].isna().all() and council_tax["sex"].notna().mean() > 0.4
    quality = json.loads((linked["linked"] / "link_quality.json").read_text())
    row = quality["per_source"]["council_tax"]
    links = pd.read_parquet(linked["linked"] / "person_links.parquet", columns=["source", "resident_id"])
    residents = set(pd.read_parquet(linked["linked"] / "residents.parquet", columns=["resident_id"])["resident_id"])
    left_out = ~links.loc[links["source"] == "council_tax", "resident_id"].isin(residents)
    assert row["dropped_records"] == int(left_out.sum())
    # Measured on this borough: 34% left out with the title mapped to sex, 78% without it (the rest have
    # no other record that names them: the A&E extract carries no names).
    assert row["dropped_share"] < 0.5
    assert sum(s["dropped_records"] for s in quality["per_source"].values()) == quality["dropped"]["records_of_dropped_residents"]


def test_link_quality_gives_precision_and_recall_per_source_against_the_ground_truth(linked: dict[str, Path]) -> None:
    truth = json.loads((linked["linked"] / "link_quality.json").read_text())["ground_truth"]
    per_source = truth["per_source"]
    assert set(per_source) == set(json.loads((linked["linked"] / "link_quality.json").read_text())["per_source"])
    # Measured on this borough: council tax precision 0.976, recall 0.799 (pairs with at least one council tax record).
    assert per_source["council_tax"]["precision"] >= 0.95 and per_source["council_tax"]["recall"] >= 0.75
    assert sum(s["records"] for s in per_source.values()) == truth["records"]


def test_door_replacement_features_carry_importance_in_a_model_of_true_abuse_after_linking(
    linked: dict[str, Path], linked_features: pd.DataFrame
) -> None:
    """The importance half of the door signal surviving the trip (issue 10.5).

    A small LightGBM predicts, from every feature built on the linked-by-us data, whether the row's true
    household was under domestic abuse in the 12 months before as_of; the door-replacement family (its
    counts over every window and the days since the last) must carry clearly positive mean |SHAP| importance.
    Measured on this 2,500-resident borough with borough seeds 11 (this fixture), 12 and 13: family share
    1.6%, 1.9%, 0.9% of all importance; best member ranked 20, 24 and 37 of 233. The thresholds (share
    >= 0.5%, best rank <= 58, the top quarter) leave about half the lowest measured figure as margin; the
    control (the same door values shuffled across rows) must keep under a third of the real share.
    Not claimed: in the trained escalation model (CSC referral / child protection plan) at this size the
    door features are unused, police domestic incidents carrying the abuse signal first (docs/performance.md).
    """
    from door_signal import door_importance, under_abuse

    features = [c for c in linked_features.columns if "__" in c and not c.startswith("attr__")]
    target = under_abuse(linked_features, linked["linked"], linked["borough"])
    assert 300 <= int(target.sum()) <= len(target) // 2
    real = door_importance(linked_features, features, target)
    control = door_importance(linked_features, features, target, shuffle_door=True)
    print(real, control["family_share"])
    assert real["sanctuary_features"] == []
    assert real["family_share"] >= 0.005 and real["family_best_rank"] <= len(features) // 4
    assert control["family_share"] < real["family_share"] / 3


def test_person_records_carry_when_the_council_knew_them_never_before_they_were_seen(linked: dict[str, Path]) -> None:
    records = pd.read_parquet(linked["ingested"] / "person_records.parquet")
    assert records["known_at"].notna().equals(records["seen_date"].notna())
    assert (records["known_at"].dropna() >= records["seen_date"].dropna()).all()
    # A school census return arrives a term in arrears: its person record is known when its events are.
    events = pd.read_parquet(linked["ingested"] / "events.parquet")
    school = events[events["source"] == "school"].drop_duplicates("person_record_id")
    known = records[records["source"] == "school"].set_index("record_id")["known_at"]
    assert (pd.to_datetime(known.loc[school["person_record_id"]]).to_numpy()
            == school["known_at"].dt.normalize().to_numpy()).all()
    assert (pd.to_datetime(known) > pd.to_datetime(records.loc[records["source"] == "school", "seen_date"]).to_numpy()).all()


def test_no_linked_residency_starts_before_the_council_knew_of_any_of_the_residents_records(
    linked: dict[str, Path]
) -> None:
    # A cohort at an as_of is the residents with a spell covering it: a spell starting at a record's event time
    # would put a child in the cohort on the strength of a census return that arrived a term later.
    records = pd.read_parquet(linked["ingested"] / "person_records.parquet")
    links = pd.read_parquet(linked["linked"] / "person_links.parquet")
    known = links.merge(records[["source", "record_id", "known_at"]], on=["source", "record_id"], validate="one_to_one")
    first_known = pd.to_datetime(known.groupby("resident_id")["known_at"].min())
    residency = pd.read_parquet(linked["linked"] / "residency.parquet")
    first_start = pd.to_datetime(residency.groupby("resident_id")["start_date"].min())
    assert len(first_start) > 1000
    assert (first_start >= first_known.reindex(first_start.index)).all()
    # And nobody's residency rests on records known only after the extract date.
    assert (pd.to_datetime(residency["start_date"]) <= pd.Timestamp("2026-01-01")).all()
