"""`earlysignal link`: Splink linkage into the data contract, stable keyed IDs, privacy, link quality."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from earlysignal.config import config_from_dict
from earlysignal.contract import validate_directory
from earlysignal.errors import ContractError
from earlysignal.linkage import addresses as addr
from earlysignal.linkage import histories as hist
from earlysignal.linkage import quality as qual
from earlysignal.linkage.run import run_link
from earlysignal.linkage.secret import SecretError, keyed_id, load_secret
from link_fixtures import LINKAGE_CONFIG, write_ingested

SECRET = "test-secret-" + "0123456789abcdef" * 2
TEMPORAL = {"first_as_of": "2019-01-01", "last_as_of": "2025-10-01"}


def _config(**linkage: object):
    return config_from_dict({"temporal": TEMPORAL, "linkage": {**LINKAGE_CONFIG, **linkage}})


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Month 1 linked from scratch, month 2 (month 1's records plus new ones) linked against month 1."""
    root = tmp_path_factory.mktemp("link")
    mp = pytest.MonkeyPatch()
    mp.setenv("EARLYSIGNAL_LINK_SECRET", SECRET)
    try:
        write_ingested(root / "in1", month=1)
        write_ingested(root / "in2", month=2)
        run_link(root / "in1", root / "out1", _config())
        run_link(root / "in2", root / "out2", _config(), previous=root / "out1")
    finally:
        mp.undo()
    return {"in1": root / "in1", "in2": root / "in2", "out1": root / "out1", "out2": root / "out2"}


def test_link_output_passes_the_data_contract_without_quarantine(two_runs: dict[str, Path]) -> None:
    linked = validate_directory(two_runs["out1"], config=_config(), write_quarantine=False)
    for name, counts in linked.report.tables.items():
        assert counts.quarantined == 0, name
    assert linked.report.tables["residents"].accepted == len(pd.read_parquet(two_runs["out1"] / "residents.parquet"))


def test_linkage_precision_and_recall_against_ground_truth_are_at_least_095(two_runs: dict[str, Path]) -> None:
    quality = json.loads((two_runs["out1"] / "link_quality.json").read_text())
    truth = quality["ground_truth"]
    assert truth["precision"] >= 0.95 and truth["recall"] >= 0.95
    assert truth["records"] == len(pd.read_parquet(two_runs["in1"] / "person_records.parquet"))


def test_ground_truth_given_on_the_command_line_is_read_relative_to_the_current_folder(
    two_runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "synth" / "ground_truth").mkdir(parents=True)
    truth = pd.read_parquet(two_runs["in1"] / "ground_truth" / "raw_records.parquet")
    truth.to_parquet(tmp_path / "synth" / "ground_truth" / "raw_records.parquet", index=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EARLYSIGNAL_LINK_SECRET", SECRET)
    run_link(two_runs["in1"], tmp_path / "out", _config(ground_truth=None),
             ground_truth="synth/ground_truth/raw_records.parquet")
    got = json.loads((tmp_path / "out" / "link_quality.json").read_text())["ground_truth"]
    expected = json.loads((two_runs["out1"] / "link_quality.json").read_text())["ground_truth"]
    assert got == expected


def test_a_missing_ground_truth_file_stops_link_before_anything_is_linked(
    two_runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EARLYSIGNAL_LINK_SECRET", SECRET)
    with pytest.raises(ContractError, match=r"--ground-truth .*synth/ground_truth/raw_records\.parquet does not exist"):
        run_link(two_runs["in1"], tmp_path / "out", _config(), ground_truth="synth/ground_truth/raw_records.parquet")
    assert not (tmp_path / "out").exists()


def test_person_links_hold_only_record_keys_resident_ids_and_probabilities(two_runs: dict[str, Path]) -> None:
    links = pd.read_parquet(two_runs["out1"] / "person_links.parquet")
    records = pd.read_parquet(two_runs["in1"] / "person_records.parquet")
    assert list(links.columns) == ["source", "record_id", "resident_id", "match_probability", "link_run_id",
                                   "cluster_change", "linked_at"]
    assert len(links) == len(records) and links["link_run_id"].nunique() == 1
    # A record is joined to its resident no earlier than it was known (seen).
    seen = links.merge(records[["source", "record_id", "seen_date"]], on=["source", "record_id"])
    assert (pd.to_datetime(seen["linked_at"]) >= pd.to_datetime(seen["seen_date"])).all()
    residents = pd.read_parquet(two_runs["out1"] / "residents.parquet")
    assert set(links["resident_id"]) == set(residents["resident_id"])
    linked = links["match_probability"].dropna()
    assert ((linked >= _config().linkage.threshold) & (linked <= 1)).all()


def test_second_monthly_run_keeps_every_existing_resident_id_unless_it_merged(two_runs: dict[str, Path]) -> None:
    first = pd.read_parquet(two_runs["out1"] / "person_links.parquet")
    second = pd.read_parquet(two_runs["out2"] / "person_links.parquet")
    changes = pd.read_parquet(two_runs["out2"] / "link_changes.parquet")
    merged = changes.loc[changes["change"] == "merged"]
    gone = set(first["resident_id"]) - set(second["resident_id"])
    assert gone == set(merged["previous_resident_id"])
    assert set(changes.loc[changes["change"] == "kept", "previous_resident_id"]) == set(first["resident_id"]) - gone
    both = first.merge(second, on=["source", "record_id"], suffixes=("_1", "_2"))
    assert len(both) == len(first)
    moved = both[both["resident_id_1"] != both["resident_id_2"]]
    redirect = dict(zip(merged["previous_resident_id"], merged["resident_id"]))
    assert (moved["resident_id_1"].map(redirect) == moved["resident_id_2"]).all()
    newcomers = second[second["record_id"].str.startswith("INC-NEW")]
    assert len(newcomers) == 2 and not set(newcomers["resident_id"]) & set(first["resident_id"])


def test_changes_since_previous_count_the_new_clusters_as_well_as_kept_and_merged_ids(two_runs: dict[str, Path]) -> None:
    changes = json.loads((two_runs["out2"] / "link_quality.json").read_text())["changes_since_previous"]
    links = pd.read_parquet(two_runs["out2"] / "person_links.parquet")
    table = pd.read_parquet(two_runs["out2"] / "link_changes.parquet")
    # Month 2 adds one newcomer household seen only by police: new clusters, which link_changes cannot list.
    new = links.loc[links["cluster_change"] == "new", "resident_id"].nunique()
    assert changes["new"] == new and new >= 1
    assert not set(links.loc[links["cluster_change"] == "new", "resident_id"]) & set(table["resident_id"])
    assert {k: v for k, v in changes.items() if k != "new"} == table["change"].value_counts().to_dict()
    previous = pd.read_parquet(two_runs["out1"] / "person_links.parquet")["resident_id"].nunique()
    assert changes.get("kept", 0) + changes.get("merged", 0) == previous


def test_resident_id_is_the_keyed_hash_of_the_clusters_first_record(two_runs: dict[str, Path]) -> None:
    links = pd.read_parquet(two_runs["out1"] / "person_links.parquet")
    links["key"] = links["source"] + "|" + links["record_id"]
    anchors = links.groupby("resident_id")["key"].min()
    assert all(keyed_id(SECRET.encode(), "R", "record:" + key) == rid for rid, key in anchors.items())
    assert links["resident_id"].str.fullmatch(r"R[0-9a-f]{20}").all()


def test_another_secret_gives_the_same_clusters_under_unrelated_ids(
    two_runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EARLYSIGNAL_LINK_SECRET", SECRET.replace("test", "other"))
    run_link(two_runs["in1"], tmp_path / "other", _config())
    first = pd.read_parquet(two_runs["out1"] / "person_links.parquet")
    other = pd.read_parquet(tmp_path / "other" / "person_links.parquet")
    assert not set(first["resident_id"]) & set(other["resident_id"])
    pairing = pd.crosstab(first["resident_id"], other["resident_id"]).astype(bool)
    assert (pairing.sum(axis=0) == 1).all() and (pairing.sum(axis=1) == 1).all()  # same partition
    assert first["match_probability"].round(9).equals(other["match_probability"].round(9))


def test_missing_secret_is_a_clear_error_that_says_how_to_make_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EARLYSIGNAL_LINK_SECRET", raising=False)
    with pytest.raises(SecretError, match="secrets.token_hex"):
        load_secret(_config().linkage)
    monkeypatch.setenv("EARLYSIGNAL_LINK_SECRET", "short")
    with pytest.raises(SecretError, match="at least 32"):
        load_secret(_config().linkage)


def test_secret_file_is_read_when_the_env_var_is_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EARLYSIGNAL_LINK_SECRET", raising=False)
    (tmp_path / "secret").write_text(SECRET + "\n")
    assert load_secret(_config(secret_file=str(tmp_path / "secret")).linkage) == SECRET.encode()


def _identifiers(ingested: Path) -> set[str]:
    records = pd.read_parquet(ingested / "person_records.parquet")
    gazetteer = pd.read_parquet(ingested / "gazetteer.parquet")
    values: set[str] = set()
    for column in ("first_name", "last_name", "nhs_number", "upn", "postcode", "uprn", "source_person_id"):
        values |= {str(v).lower() for v in records[column].dropna()}
    values |= {str(v).lower() for v in gazetteer["uprn"]} | {str(v).lower() for v in gazetteer["postcode"]}
    values |= {str(v).lower() for v in records["address_text"].dropna()}
    return values


def _cells(path: Path) -> list[str]:
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        return [str(v).lower() for column in frame.columns for v in frame[column].dropna()] + [c.lower() for c in frame.columns]
    return [path.read_text(encoding="utf-8", errors="replace").lower()]


def test_privacy_scan_finds_no_name_address_or_identifier_in_anything_link_writes(two_runs: dict[str, Path]) -> None:
    identifiers = _identifiers(two_runs["in2"])
    single = {i for i in identifiers if " " not in i and "/" not in i and "," not in i}
    phrases = identifiers - single
    assert len(single) > 300  # names, NHS numbers, UPNs, UPRNs, postcodes without spaces are checked
    scanned = 0
    for out in (two_runs["out1"], two_runs["out2"]):
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            scanned += 1
            for cell in _cells(path):
                tokens = set(re.split(r"[^a-z0-9]+", cell))
                assert not tokens & single, (path.name, sorted(tokens & single)[:5])
                assert not any(phrase in cell for phrase in phrases), path.name
    assert scanned >= 14


def test_repairs_are_attached_to_the_household_address(two_runs: dict[str, Path]) -> None:
    events = pd.read_parquet(two_runs["out1"] / "events.parquet")
    residency = pd.read_parquet(two_runs["out1"] / "residency.parquet")
    repairs = events[events["source"] == "housing_repairs"]
    assert len(repairs) == 30 and repairs["resident_id"].isna().all()
    assert repairs["address_id"].isin(set(residency["address_id"])).all()
    police = events[events["source"] == "police"]
    assert police["resident_id"].notna().all() and police["address_id"].notna().all()  # address_events_sources
    ae = events[events["source"] == "ae"]
    assert ae["address_id"].isna().all()


def test_flat_numbering_variants_and_abbreviations_match_the_same_uprn() -> None:
    gazetteer = pd.DataFrame({"uprn": ["1", "2", "3"], "postcode": ["E1 6AN", "E1 6AN", "E1 6AN"],
                              "address_text": ["Flat 3, 12 High Street", "Flat 4, 12 High Street", "12C High Street"]})
    records = pd.DataFrame({"uprn": [None, None, None, None, "2"], "postcode": ["e16an", None, "E1 6AN", None, None],
                            "address_text": ["3/12 High St", "12 HIGH STREET FLAT 3", "12c high st", "12 High St", "x"]})
    matched = addr.match_addresses(records, gazetteer)
    assert matched["matched_uprn"].tolist()[:3] == ["1", "1", "3"]
    assert matched["match_rule"].tolist() == ["bag_pc", "bag", "bag_pc", "unmatched", "uprn"]


def test_address_accents_fold_the_way_names_do_so_plain_and_accented_spellings_match_one_uprn() -> None:
    gazetteer = pd.DataFrame({"uprn": ["1", "2"], "postcode": ["E1 6AN", "N1 1AA"],
                              "address_text": ["4 Rue de l'Église", "Flat 2, 7 Łódź Court"]})
    records = pd.DataFrame({"uprn": [None] * 5, "postcode": ["E1 6AN", None, None, None, "N1 1AA"],
                            "address_text": ["4 RUE DE L'EGLISE", "4 rue de l’église", "7 Lodz Ct Flat 2",
                                             "2/7 ŁÓDŹ CT", "Flat 2, 7 Lodz Court"]})
    matched = addr.match_addresses(records, gazetteer)
    assert matched["matched_uprn"].tolist() == ["1", "1", "2", "2", "2"]
    assert matched["match_rule"].tolist() == ["bag_pc", "bag", "bag", "bag", "bag_pc"]
    assert addr.address_tokens("4 Rue de l'Église") == addr.address_tokens("4 rue de l'eglise") == (
        "4", "DE", "EGLISE", "L", "RUE")
    assert addr.address_tokens("Łódź Straße") == ("LODZ", "STRASSE")


def test_residency_spell_ends_when_the_next_address_is_first_seen() -> None:
    obs = pd.DataFrame({
        "resident_id": ["r"] * 4 + ["s"],
        "address_id": ["a", "a", "b", "a", "a"],
        "seen_date": pd.to_datetime(["2020-01-01", "2020-06-01", "2021-01-01", "2022-01-01", "2020-01-01"]),
        "seen_until": pd.to_datetime([None, None, None, None, "2020-03-01"]),
    })
    spells = hist.residency_spells(obs)
    r = spells[spells["resident_id"] == "r"]
    assert r["address_id"].tolist() == ["a", "b", "a"]
    assert r["start_date"].dt.strftime("%Y-%m-%d").tolist() == ["2020-01-01", "2021-01-01", "2022-01-01"]
    assert r["end_date"].dt.strftime("%Y-%m-%d").fillna("open").tolist() == ["2021-01-01", "2022-01-01", "open"]
    s = spells[spells["resident_id"] == "s"].iloc[0]
    assert s["end_date"] == pd.Timestamp("2020-03-01")


def test_residency_spell_lapses_a_year_after_the_last_record_and_a_later_record_starts_a_new_one() -> None:
    obs = pd.DataFrame({
        "resident_id": ["r", "r", "r", "s", "s", "t", "u"],
        "address_id": ["a", "a", "a", "a", "b", "a", "a"],
        "seen_date": pd.to_datetime(["2018-01-01", "2018-06-01", "2021-01-01", "2020-01-01", "2020-09-01",
                                     "2019-01-01", "2025-06-01"]),
        # t's liability (an explicit end) says when t moved out; nobody else's record has an end.
        "seen_until": pd.to_datetime([None, None, None, None, None, "2019-05-01", None]),
    })
    spells = hist.residency_spells(obs, lapse_days=365, extract_date=pd.Timestamp("2026-01-01"))
    got = {(r.resident_id, r.start_date.strftime("%Y-%m-%d")): None if pd.isna(r.end_date) else r.end_date.strftime("%Y-%m-%d")
           for r in spells.itertuples()}
    assert got == {
        ("r", "2018-01-01"): "2019-06-01",   # last seen 2018-06-01: gone a year later, seen again in 2021
        ("r", "2021-01-01"): "2022-01-01",
        ("s", "2020-01-01"): "2020-09-01",   # a new address within the year ends the spell as before
        ("s", "2020-09-01"): "2021-09-01",
        ("t", "2019-01-01"): "2019-05-01",   # the recorded move-out, not the lapse
        ("u", "2025-06-01"): None,           # a lapse reaching past the extract date leaves the spell open
    }
    # Without a lapse the old rule holds: open until another address is seen.
    assert hist.residency_spells(obs)["end_date"].isna().sum() == 3


def test_a_lapse_ending_on_the_extract_date_ends_the_spell_as_next_months_run_ends_it() -> None:
    # r's last record is a year before the extract date; s's open liability is evidence up to it.
    obs = pd.DataFrame({
        "resident_id": ["r", "r", "s"],
        "address_id": ["a", "a", "b"],
        "seen_date": pd.to_datetime(["2024-06-01", "2025-01-01", "2024-01-01"]),
        "seen_until": pd.to_datetime([None, None, "2026-01-01"]),
    })

    def ends(extract: str) -> dict[str, str | None]:
        spells = hist.residency_spells(obs, lapse_days=365, extract_date=pd.Timestamp(extract))
        return {r.resident_id: None if pd.isna(r.end_date) else r.end_date.strftime("%Y-%m-%d")
                for r in spells.itertuples()}

    assert ends("2026-01-01") == {"r": "2026-01-01", "s": None}
    assert ends("2026-02-01")["r"] == "2026-01-01"   # next month's run: the same end
    assert ends("2026-01-02") == {"r": "2026-01-01", "s": "2026-01-01"}


def test_a_record_dated_after_the_extract_date_starts_no_residency_spell() -> None:
    # r's council-tax liability at b starts after the extract date; s is known only by such a record.
    obs = pd.DataFrame({
        "resident_id": ["r", "r", "s"],
        "address_id": ["a", "b", "c"],
        "seen_date": pd.to_datetime(["2025-06-01", "2026-01-12", "2026-01-20"]),
        "seen_until": pd.to_datetime([None, None, None]),
    })
    spells = hist.residency_spells(obs, lapse_days=365, extract_date=pd.Timestamp("2026-01-01"))
    assert spells["resident_id"].tolist() == ["r"]
    assert spells["address_id"].tolist() == ["a"] and spells["end_date"].isna().all()
    later = hist.residency_spells(obs, lapse_days=365, extract_date=pd.Timestamp("2026-02-01"))
    assert later["address_id"].tolist() == ["a", "b", "c"]


def test_household_is_people_sharing_an_address_over_overlapping_spells() -> None:
    spells = pd.DataFrame({
        "address_id": ["a", "a", "a", "b"],
        "start_date": pd.to_datetime(["2020-01-01", "2020-06-01", "2023-01-01", "2020-01-01"]),
        "end_date": pd.to_datetime(["2021-01-01", None, None, None]),
    })
    spells.loc[1, "end_date"] = pd.Timestamp("2022-01-01")
    ids = hist.household_ids(spells, b"k" * 32)
    assert ids.iloc[0] == ids.iloc[1]
    assert len({ids.iloc[0], ids.iloc[2], ids.iloc[3]}) == 3


def test_attributes_take_the_most_frequent_value_and_the_latest_on_ties() -> None:
    frame = pd.DataFrame({"id": ["x", "x", "x", "y", "y"], "v": ["A", "B", "B", "A", "B"],
                          "seen": pd.to_datetime(["2020-01-01", "2019-01-01", "2019-02-01", "2021-01-01", "2020-01-01"])})
    result = hist.most_frequent_latest(frame, "id", "v", "seen")
    assert result.to_dict() == {"x": "B", "y": "A"}


def test_pairwise_accuracy_counts_pairs_within_clusters() -> None:
    predicted = pd.Series(["c1", "c1", "c1", "c2"])
    truth = pd.Series(["p1", "p1", "p2", "p2"])
    result = qual.pairwise_accuracy(predicted, truth)
    assert (result["true_pairs"], result["predicted_pairs"], result["true_positive_pairs"]) == (2, 3, 1)
    assert (result["precision"], result["recall"]) == (0.3333, 0.5)


def test_ground_truth_counts_people_split_over_clusters_and_clusters_mixing_people() -> None:
    # p1's 20 records are one cluster, p2 is in two pieces (c2, c3), c3 also holds p3's record.
    predicted = pd.Series(["c1"] * 20 + ["c2", "c3", "c3"])
    truth = pd.Series(["p1"] * 20 + ["p2", "p2", "p3"])
    result = qual.pairwise_accuracy(predicted, truth)
    assert (result["persons"], result["persons_split"], result["clusters_mixed"]) == (3, 1, 1)
    assert result["recall"] == round(190 / 191, 4)   # pairs barely notice p2's split
    counts = pd.DataFrame({"c": predicted, "t": truth, "n": 1}).groupby(["c", "t"], as_index=False)["n"].sum()
    assert qual.pairwise_accuracy_counted(counts) == result


def test_unlinked_rate_by_group_suppresses_small_counts_and_rounds_to_five() -> None:
    unlinked = pd.Series([True] * 12 + [False] * 31 + [True] * 3)
    groups = pd.Series(["a"] * 43 + ["b"] * 3)
    rows = {r["group"]: r for r in qual.suppressed_rates(unlinked, groups, min_cell=10, round_to=5)}
    assert rows["a"] == {"group": "a", "records": 45, "unlinked": 10, "unlinked_rate": 0.222, "suppressed": False}
    assert rows["b"]["suppressed"] and rows["b"]["records"] is None


def test_link_quality_reports_weights_pairs_times_and_groups(two_runs: dict[str, Path]) -> None:
    quality = json.loads((two_runs["out1"] / "link_quality.json").read_text())
    assert quality["threshold"] == _config().linkage.threshold and quality["pairs_compared"] > 0
    assert set(quality["per_source"]) == {"ae", "police", "school"}
    assert sum(int(k) * v for k, v in quality["cluster_sizes"].items()) == quality["records"]
    levels = [w for w in quality["match_weights"] if w["comparison"] == "birth_date"]
    assert levels and all(0 <= w["u_probability"] <= 1 for w in levels if w["u_probability"] is not None)
    assert set(quality["unlinked_by_group"]) == {"sex", "ethnicity", "age_band", "tenure"}
    assert {"splink_train", "splink_predict", "addresses"} <= set(quality["seconds"])
    assert quality["addresses"]["person_records"]["match_rate"] >= 0.95


def test_missing_input_column_names_the_file_and_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_ingested(tmp_path / "in", n_households=5)
    path = tmp_path / "in" / "person_records.parquet"
    pd.read_parquet(path).drop(columns=["birth_date"]).to_parquet(path)
    monkeypatch.setenv("EARLYSIGNAL_LINK_SECRET", SECRET)
    with pytest.raises(ContractError, match=r"person_records.parquet: missing column\(s\) \['birth_date'\]"):
        run_link(tmp_path / "in", tmp_path / "out", _config())


def test_keyed_id_is_hmac_sha256() -> None:
    import hashlib
    import hmac

    expected = "A" + hmac.new(b"k" * 32, b"uprn:1", hashlib.sha256).hexdigest()[:20]
    assert keyed_id(b"k" * 32, "A", "uprn:1") == expected


def test_cli_link_without_a_secret_exits_2_with_how_to_create_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from earlysignal.cli import app

    write_ingested(tmp_path / "in", n_households=3)
    monkeypatch.delenv("EARLYSIGNAL_LINK_SECRET", raising=False)
    result = CliRunner().invoke(app, ["link", "--ingested", str(tmp_path / "in"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "EARLYSIGNAL_LINK_SECRET" in result.output and not (tmp_path / "out").exists()


def test_cli_link_warns_when_previous_ids_have_no_record_in_this_months_extracts(
    two_runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from earlysignal.cli import app

    # Month 1's extracts linked against month 2's output: month 2's newcomers have no record here.
    monkeypatch.setenv("EARLYSIGNAL_LINK_SECRET", SECRET)
    result = CliRunner().invoke(app, ["link", "--ingested", str(two_runs["in1"]), "--out", str(tmp_path / "out"),
                                      "--previous", str(two_runs["out2"])])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(tmp_path / "out" / "link_changes.parquet")
    gone = table[table["change"] == "gone"]
    newcomers = pd.read_parquet(two_runs["out2"] / "person_links.parquet").query("record_id.str.startswith('INC-NEW')")
    assert set(gone["previous_resident_id"]) == set(newcomers["resident_id"]) and gone["resident_id"].isna().all()
    output = " ".join(result.output.split())
    assert f"{len(gone)} previous resident ID(s) have no record in these extracts and are gone" in output


def test_privacy_scan_finds_no_identifier_in_the_feature_matrix_built_from_linked_data(
    two_runs: dict[str, Path], tmp_path: Path
) -> None:
    from earlysignal.config import packaged_config_path, load_config
    from earlysignal.engines import get_engine
    from earlysignal.features import build_or_reuse_feature_matrix

    identifiers = _identifiers(two_runs["in2"])
    single = {i for i in identifiers if " " not in i and "/" not in i and "," not in i}
    with get_engine("duckdb") as runner:
        matrix, _ = build_or_reuse_feature_matrix(
            load_config(packaged_config_path()), data_dir=two_runs["out2"], out=tmp_path / "m.parquet", engine=runner
        )
    assert len(matrix.frame) > 0
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert [p.name for p in written] == ["m.parquet", "m.parquet.json"]
    for path in written:
        for cell in _cells(path):
            assert not set(re.split(r"[^a-z0-9]+", cell)) & single, path.name


def test_previous_ids_stay_with_most_of_their_records_and_merges_and_splits_are_recorded() -> None:
    from earlysignal.linkage.run import _stable_ids

    previous = pd.DataFrame({"source": ["s"] * 6, "record_id": ["1", "2", "3", "4", "5", "6"],
                             "resident_id": ["P1", "P1", "P2", "P3", "P3", "P3"]})
    keys = pd.Series([f"s|{i}" for i in range(1, 8)])
    clusters = np.array([0, 0, 0, 1, 1, 2, 3])  # P1+P2 merged; P3 split 2/1; record 7 is new
    ids, labels, table = _stable_ids(keys, clusters, previous, b"k" * 32, "run")
    assert ids.tolist()[:5] == ["P1", "P1", "P1", "P3", "P3"]
    assert ids[5] not in {"P1", "P2", "P3"} and ids[6] not in {"P1", "P2", "P3", ids[5]}
    assert labels.tolist() == ["merged"] * 3 + ["split", "split", "split", "new"]
    rows = set(map(tuple, table.to_numpy()))
    assert rows == {("P1", "P1", "kept"), ("P3", "P3", "kept"), ("P2", "P1", "merged"), ("P3", ids[5], "split")}


def test_a_previous_id_whose_records_are_all_missing_from_this_run_is_recorded_as_gone() -> None:
    from earlysignal.linkage.run import _stable_ids

    # P2's only record was renumbered by its system (record 3 is now 9): its ID cannot carry on.
    previous = pd.DataFrame({"source": ["s"] * 3, "record_id": ["1", "2", "3"], "resident_id": ["P1", "P1", "P2"]})
    keys = pd.Series(["s|1", "s|2", "s|9"])
    ids, labels, table = _stable_ids(keys, np.array([0, 0, 1]), previous, b"k" * 32, "run")
    assert ids.tolist()[:2] == ["P1", "P1"] and ids[2] not in {"P1", "P2"}
    assert labels.tolist() == ["kept", "kept", "new"]
    assert [tuple(r) for r in table.to_numpy()] == [("P2", None, "gone"), ("P1", "P1", "kept")]


def test_pairwise_accuracy_by_source_counts_the_pairs_touching_each_source() -> None:
    # Records: a1 a2 (person P, linked), b1 (person P, not linked to them), b2 (person Q, linked to a1 a2).
    predicted = pd.Series(["c1", "c1", "c2", "c1"])
    truth = pd.Series(["P", "P", "P", "Q"])
    source = pd.Series(["a", "a", "b", "b"])
    out = qual.pairwise_accuracy_by_source(predicted, truth, source)
    # a: predicted pairs touching a: (a1,a2) (a1,b2) (a2,b2) = 3, true (a1,a2) (a1,b1) (a2,b1) = 3, tp 1.
    assert (out["a"]["predicted_pairs"], out["a"]["true_pairs"], out["a"]["true_positive_pairs"]) == (3, 3, 1)
    # b: predicted (a1,b2) (a2,b2) = 2, true (a1,b1) (a2,b1) = 2, tp 0.
    assert (out["b"]["predicted_pairs"], out["b"]["true_pairs"], out["b"]["true_positive_pairs"]) == (2, 2, 0)
    assert out["a"]["precision"] == round(1 / 3, 4) and out["b"]["recall"] == 0.0 and out["a"]["records"] == 2
