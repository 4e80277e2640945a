"""Linkage known in time (docs/adr/0023-links-known-in-time.md): a record joins its resident only from the day a
chain of links known by then joins it to the resident's earliest-known record, so a record known later that
bridges two people's records cannot hand one of them the other's history (events, outcomes, residency) at
dates before it arrived."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from earlysignal.config import LinkageSection, config_from_dict, config_to_dict
from earlysignal.contract import load_linked_data
from earlysignal.features import build_feature_matrix
from earlysignal.linkage.link_times import UNDATED, linked_days
from earlysignal.linkage.run import run_link
from features_borough import every_aggregate_config
from link_fixtures import LINKAGE_CONFIG, write_ingested

SECRET = "link-in-time-test-secret-" + "5" * 16
BIRTH = dt.date(2012, 6, 15)
NHS, UPN = "9111111111", "UPN777777777"
A_SEEN, B_SEEN, C_SEEN = dt.date(2019, 3, 1), dt.date(2020, 5, 1), dt.date(2024, 6, 1)
BEFORE_BRIDGE, AFTER_BRIDGE = dt.date(2023, 1, 1), dt.date(2025, 1, 1)


def _person(source: str, record_id: str, seen: dt.date, **fields: object) -> dict[str, object]:
    row: dict[str, object] = {
        "source": source, "record_id": record_id, "source_person_id": None, "first_name": "Xbridgomo",
        "middle_name": None, "last_name": "Xquimbela", "birth_date": BIRTH, "sex": "F", "postcode": None,
        "address_text": None, "uprn": None, "nhs_number": None, "upn": None, "seen_date": seen, "seen_until": None,
        "attr_ethnicity": "W"}
    row.update(fields)
    return row


def _event(source: str, record_id: str, event_type: str, when: str, known: str, value: float | None = None) -> dict:
    return {"event_id": f"{source}:{record_id}:{when}", "source": source, "person_record_id": record_id,
            "address_record_id": None, "event_type": event_type, "event_time": pd.Timestamp(when),
            "known_at": pd.Timestamp(known), "value": value, "coded_by": "fixture"}


@pytest.fixture(scope="module")
def bridged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The tiny linkage world plus one girl seen as two people: A&E knows her by NHS number at one address
    (2019), school by UPN under another surname at another address (2020); a police record in 2024 carries
    both identifiers and bridges them."""
    root = tmp_path_factory.mktemp("link_in_time")
    ingested = root / "ingested"
    world = write_ingested(ingested)
    gazetteer = world["gazetteer"].set_index("uprn")
    home_a, home_b = gazetteer.loc["100065"], gazetteer.loc["100066"]  # no fixture household lives there
    records = pd.read_parquet(ingested / "person_records.parquet")
    extra = pd.DataFrame([
        _person("ae", "AE-BRIDGE-A", A_SEEN, sex="f", nhs_number=NHS, postcode=home_a["postcode"],
                address_text=home_a["address_text"]),
        _person("school", "S-BRIDGE-B", B_SEEN, last_name="Xtelvanoru", source_person_id="PUPIL-B", upn=UPN,
                sex="2", uprn="100066", postcode=home_b["postcode"], address_text=home_b["address_text"]),
        _person("police", "INC-BRIDGE-C", C_SEEN, nhs_number=NHS, upn=UPN),
    ])
    records = pd.concat([records, extra], ignore_index=True)
    for column in ("birth_date", "seen_date", "seen_until"):
        records[column] = pd.to_datetime(records[column]).dt.date
    records.to_parquet(ingested / "person_records.parquet", index=False)
    events = pd.read_parquet(ingested / "events.parquet")
    extra_events = pd.DataFrame([
        _event("ae", "AE-BRIDGE-A", "attendance", "2019-03-01", "2019-03-02"),
        _event("ae", "AE-BRIDGE-A", "attendance", "2021-02-01", "2021-02-02"),
        _event("school", "S-BRIDGE-B", "absence", "2020-05-01", "2020-06-01", 3.0),
        _event("school", "S-BRIDGE-B", "absence", "2021-05-01", "2021-06-01", 2.0),
        _event("police", "INC-BRIDGE-C", "domestic_incident", "2024-06-01", "2024-06-03"),
    ])
    pd.concat([events, extra_events], ignore_index=True).to_parquet(ingested / "events.parquet", index=False)
    config = every_aggregate_config()
    raw = config_to_dict(config)
    raw["linkage"] = {**raw["linkage"], **LINKAGE_CONFIG}
    raw["features"]["families"] = [
        {"name": name, "source": source, "event_types": [event_type], "scopes": ["resident"], "windows": ["all"],
         "aggregates": ["count", "sum"], "description": name}
        for name, source, event_type in (("ae", "ae", "attendance"), ("school", "school", "absence"),
                                         ("police", "police", "domestic_incident"))]
    config = config_from_dict(raw)
    mp = pytest.MonkeyPatch()
    mp.setenv("EARLYSIGNAL_LINK_SECRET", SECRET)
    try:
        run_link(ingested, root / "linked", config)
    finally:
        mp.undo()
    links = pd.read_parquet(root / "linked" / "person_links.parquet").set_index("record_id")
    return {"linked": root / "linked", "config": config, "links": links,
            "resident": links.loc["AE-BRIDGE-A", "resident_id"]}


def _features(bridged: dict[str, object], as_of: dt.date) -> pd.Series:
    data = load_linked_data(bridged["linked"], config=bridged["config"], write_quarantine=False)
    matrix = build_feature_matrix(bridged["config"], data, as_of_dates=[as_of], with_labels=False)
    rows = matrix.frame.set_index("resident_id")
    assert bridged["resident"] in rows.index, "the bridged girl is in the cohort (resident, aged 0-17)"
    return rows.loc[bridged["resident"], [c for c in matrix.feature_columns if c.endswith("__all")]]


def test_a_later_record_bridges_the_two_records_into_one_resident_joined_on_its_day(bridged: dict[str, object]) -> None:
    links = bridged["links"]
    # The premise: one resident in the end, and the school record joined only through the police record.
    assert links.loc[["AE-BRIDGE-A", "S-BRIDGE-B", "INC-BRIDGE-C"], "resident_id"].nunique() == 1
    assert pd.Timestamp(links.loc["AE-BRIDGE-A", "linked_at"]) == pd.Timestamp(A_SEEN)
    assert pd.Timestamp(links.loc["S-BRIDGE-B", "linked_at"]) == pd.Timestamp(C_SEEN)
    assert pd.Timestamp(links.loc["INC-BRIDGE-C", "linked_at"]) == pd.Timestamp(C_SEEN)
    quality = json.loads((bridged["linked"] / "link_quality.json").read_text())["linked_in_time"]
    assert quality["records_linked_after_known"] >= 1 and quality["events_known_later_by_linkage"] >= 2


def test_features_before_the_bridge_hold_only_the_anchor_records_events(bridged: dict[str, object]) -> None:
    before = _features(bridged, BEFORE_BRIDGE)
    # A's two attendances; none of the school record's absences (another girl, as far as anyone knew in 2023).
    assert before.filter(like="ae__").filter(like="count").tolist() == [2]
    assert before.filter(like="school__").filter(like="count").fillna(0).tolist() == [0]
    assert before.filter(like="school__").filter(like="sum").fillna(0).tolist() == [0]
    assert before.filter(like="police__").filter(like="count").fillna(0).tolist() == [0]


def test_features_after_the_bridge_hold_every_record_of_the_resident(bridged: dict[str, object]) -> None:
    after = _features(bridged, AFTER_BRIDGE)
    assert after.filter(like="ae__").filter(like="count").tolist() == [2]
    assert after.filter(like="school__").filter(like="count").tolist() == [2]
    assert after.filter(like="school__").filter(like="sum").tolist() == [5.0]
    assert after.filter(like="police__").filter(like="count").tolist() == [1]


def test_the_bridged_records_address_is_no_residency_before_the_bridge(bridged: dict[str, object]) -> None:
    residency = pd.read_parquet(bridged["linked"] / "residency.parquet")
    spells = residency[residency["resident_id"] == bridged["resident"]].sort_values("start_date")
    # Two addresses in the end (A's, then B's school address); B's is evidence only from the bridge's day.
    assert len(spells) == 2
    assert pd.Timestamp(spells["start_date"].iloc[0]) == pd.Timestamp(A_SEEN)
    assert pd.Timestamp(spells["start_date"].iloc[1]) == pd.Timestamp(C_SEEN)


def test_linked_days_follow_the_earliest_chain_of_known_links_to_the_anchor() -> None:
    # Nodes 0..4 of one cluster: 0 (day 1) anchors; 1 (day 2) joins it directly; 2 (day 3) only through 3
    # (day 9); 4 (day 5) through 1 on day 5 and through 3 on day 9: the earlier chain counts.
    known = np.array([1, 2, 3, 9, 5])
    left, right = np.array([0, 2, 3, 1]), np.array([1, 3, 0, 4])
    assert linked_days(known, np.arange(5), np.zeros(5, dtype=int), left, right).tolist() == [1, 2, 9, 9, 5]
    # Ties on the known day go to the smaller rank; an undated node counts as known from the start.
    assert linked_days(np.array([4, 4]), np.array([1, 0]), np.zeros(2), np.array([0]), np.array([1])).tolist() == [4, 4]
    assert linked_days(np.array([UNDATED, 7]), np.arange(2), np.zeros(2), np.array([0]), np.array([1])).tolist() == [
        UNDATED, 7]
    with pytest.raises(ValueError, match="joins two clusters"):
        linked_days(np.array([1, 2]), np.arange(2), np.array([0, 1]), np.array([0]), np.array([1]))


def test_a_trained_model_must_fit_the_configured_comparisons(tmp_path: Path, bridged: dict[str, object]) -> None:
    from earlysignal.linkage.people import LinkageError, read_model_parameters

    model = read_model_parameters(bridged["linked"] / "link_model.json")
    assert {c["comparison"] for c in model["comparisons"]} >= {"nhs_number", "upn"}
    with pytest.raises(LinkageError, match="does not exist"):
        read_model_parameters(tmp_path / "missing.json")
    assert LinkageSection(trained_model=tmp_path / "x.json").trained_model == tmp_path / "x.json"
