"""A disagreement on sex, NHS number or UPN must not rule a match out (docs/adr/0022-disagreement-penalty-floor.md).

Records added to the tiny raw borough's ingested records: the same person recorded with the other sex (and,
separately, with a mistyped NHS number) but the same name, birth date and address, and a stranger who shares
only a surname, an address and sex with someone. EM on this borough trains a mild sex penalty (about -2.6
bits), so the runs that show the floor at work force it to -42 bits first, as issue 10 measured EM giving
when it never saw a disagreement.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import splink.comparison_library as cl

from earlysignal.config import config_from_dict, load_config, packaged_config_path
from earlysignal.dictionary import load_dictionary, packaged_dictionary_path
from earlysignal.ingest import ingest
from earlysignal.linkage import people
from earlysignal.linkage.people import LinkageError, floor_disagreement_weights
from earlysignal.linkage.run import run_link

from link_fixtures import LINKAGE_CONFIG, write_ingested

REPO = Path(__file__).resolve().parents[1]
DICTIONARY = load_dictionary(packaged_dictionary_path())
SECRET = "test-secret-" + "fedcba9876543210" * 2
TEMPORAL = {"first_as_of": "2019-01-01", "last_as_of": "2025-10-01"}


def _config(**linkage: object):
    return config_from_dict({"temporal": TEMPORAL, "linkage": {**LINKAGE_CONFIG, **linkage}})


def _mistype(number: str) -> str:
    # The last digit changed: the number a keying error leaves.
    return number[:-1] + str((int(number[-1]) + 3) % 10)


def _overconfident(floor, bits: dict[str, float]):  # type: ignore[no-untyped-def]
    """The floor, after setting the named comparisons' disagreement weights to `bits` (EM that never saw one)."""

    def wrapper(comparisons, columns, max_penalty):  # type: ignore[no-untyped-def]
        for comparison in comparisons:
            for level in comparison.comparison_levels:
                if (comparison.output_column_name in bits and not level.is_null_level
                        and level.sql_condition.strip().upper() == "ELSE"):
                    level.m_probability = level.u_probability * 2.0 ** bits[comparison.output_column_name]
        return floor(comparisons, columns, max_penalty)

    return wrapper


@pytest.fixture(scope="module")
def world(raw_borough_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The tiny raw borough ingested, plus three records; linked with the default floor, a one-bit floor, and
    with EM's sex weight forced to -42 bits, floored and not."""
    root = tmp_path_factory.mktemp("disagree")
    ingest(raw_borough_tiny / "raw", root / "in", sorted((REPO / "conf" / "sources").glob("*.yaml")),
           DICTIONARY.event_types_by_source(), tuple(DICTIONARY.outcomes))
    records = pd.read_parquet(root / "in" / "person_records.parquet")
    truth = pd.read_parquet(raw_borough_tiny / "ground_truth" / "raw_records.parquet")
    identities = pd.read_parquet(raw_borough_tiny / "ground_truth" / "identities.parquet").set_index("resident_id")
    # Social care contacts of two adults recorded with their true names, birth date, sex and NHS number.
    care = records[(records["source"] == "social_care") & records["nhs_number"].notna()].merge(
        truth[["source", "record_id", "resident_id"]], on=["source", "record_id"])
    who = identities.reindex(care["resident_id"])
    true = ((care["first_name"].str.lower().to_numpy() == who["first_name"].str.lower().to_numpy())
            & (care["last_name"].str.lower().to_numpy() == who["last_name"].str.lower().to_numpy())
            & (care["nhs_number"].to_numpy() == who["nhs_number"].to_numpy())
            & (care["sex"].to_numpy() == who["sex"].to_numpy())
            & care["postcode"].notna().to_numpy()
            & (pd.to_datetime(care["birth_date"]).to_numpy() == pd.to_datetime(who["birth_date"]).to_numpy())
            & (pd.to_datetime(who["birth_date"]).dt.year < 1990).to_numpy())
    # The first has a sex on every record, so no record without one can join the other-sex record to them.
    everyone = records.merge(truth[["source", "record_id", "resident_id"]], on=["source", "record_id"])
    sexed = everyone.groupby("resident_id")["sex"].apply(lambda v: bool(v.notna().all()))
    candidates = care[true].drop_duplicates("resident_id")
    sex_row = candidates[candidates["resident_id"].map(sexed)].iloc[0]
    nhs_row = candidates[candidates["resident_id"] != sex_row["resident_id"]].iloc[0]
    sex_row, nhs_row = sex_row.drop("resident_id"), nhs_row.drop("resident_id")
    other_sex = {"F": "M", "M": "F"}[sex_row["sex"]]
    blank = {"source_person_id": None, "upn": None}
    added = pd.DataFrame([
        # The same person in a housing register that records the other sex.
        {**sex_row.to_dict(), **blank, "source": "housing_register", "record_id": "HR-SEX", "nhs_number": None,
         "sex": other_sex},
        # The same person in a community health record, NHS number keyed with one digit wrong.
        {**nhs_row.to_dict(), **blank, "source": "community_health", "record_id": "CH-TYPO",
         "nhs_number": _mistype(nhs_row["nhs_number"])},
        # A stranger: the second person's surname, address and sex, another first name, birth date and NHS number.
        {**nhs_row.to_dict(), **blank, "source": "community_health", "record_id": "CH-STRANGER",
         "first_name": "Xquillabet", "birth_date": pd.Timestamp("1931-07-19").date(), "nhs_number": "9999999999"},
    ])
    pd.concat([records, added.astype({c: records[c].dtype for c in added.columns if c in records})],
              ignore_index=True).to_parquet(root / "in" / "person_records.parquet", index=False)
    mp = pytest.MonkeyPatch()
    mp.setenv("EARLYSIGNAL_LINK_SECRET", SECRET)
    config = load_config(packaged_config_path())
    # A floor of one bit binds on every disagreement level EM trains here (about -2 to -3 bits on this world).
    one_bit = config.model_copy(update={"linkage": config.linkage.model_copy(update={"max_disagreement_penalty": 1.0})})
    # EM as overconfident as issue 10 measured it (sex -42 bits), with and without the floor.
    unfloored = config.model_copy(update={"linkage": config.linkage.model_copy(
        update={"max_disagreement_penalty": 10_000.0})})
    truth_path = raw_borough_tiny / "ground_truth" / "raw_records.parquet"
    try:
        run_link(root / "in", root / "floored", config, ground_truth=truth_path)
        run_link(root / "in", root / "one_bit", one_bit, ground_truth=truth_path)
        mp.setattr(people, "floor_disagreement_weights", _overconfident(people.floor_disagreement_weights, {"sex": -42.0}))
        run_link(root / "in", root / "overconfident_floored", config, ground_truth=truth_path)
        run_link(root / "in", root / "overconfident", unfloored, ground_truth=truth_path)
    finally:
        mp.undo()
    return {"root": root, "sex_row": sex_row, "nhs_row": nhs_row}


def _resident(out: Path, source: str, record_id: str) -> str:
    links = pd.read_parquet(out / "person_links.parquet")
    return links.loc[(links["source"] == source) & (links["record_id"] == record_id), "resident_id"].iloc[0]


def test_same_person_recorded_with_the_other_sex_is_linked_under_the_penalty_floor(world: dict) -> None:
    root = world["root"]
    assert _resident(root / "floored", "housing_register", "HR-SEX") == \
        _resident(root / "floored", "social_care", world["sex_row"]["record_id"])


def test_when_em_rules_a_sex_disagreement_out_the_floor_links_the_same_person_again(world: dict) -> None:
    root = world["root"]
    person = world["sex_row"]["record_id"]
    # Unfloored, -42 bits outweigh the agreeing name, birth date and address: the person is split.
    assert _resident(root / "overconfident", "housing_register", "HR-SEX") != \
        _resident(root / "overconfident", "social_care", person)
    assert _resident(root / "overconfident_floored", "housing_register", "HR-SEX") == \
        _resident(root / "overconfident_floored", "social_care", person)


def test_same_person_with_a_mistyped_nhs_number_is_linked(world: dict) -> None:
    root = world["root"]
    assert _resident(root / "floored", "community_health", "CH-TYPO") == \
        _resident(root / "floored", "social_care", world["nhs_row"]["record_id"])


def test_a_stranger_sharing_only_surname_address_and_sex_is_not_linked_even_under_a_one_bit_floor(world: dict) -> None:
    for run in ("floored", "one_bit"):
        links = pd.read_parquet(world["root"] / run / "person_links.parquet")
        stranger = _resident(world["root"] / run, "community_health", "CH-STRANGER")
        assert (links["resident_id"] == stranger).sum() == 1


def test_link_quality_lists_each_floored_weight_with_its_trained_value(world: dict) -> None:
    import json

    quality = json.loads((world["root"] / "one_bit" / "link_quality.json").read_text())
    assert quality["max_disagreement_penalty"] == 1.0
    floored = {f["comparison"]: f for f in quality["disagreement_weights_floored"]}
    assert sorted(floored) == ["nhs_number", "sex", "upn"]
    for item in floored.values():
        assert item["match_weight_used"] == -1.0 and item["match_weight_trained"] < -1.0
        assert item["m_probability_used"] > item["m_probability_trained"]
    sex = [w for w in quality["match_weights"] if w["comparison"] == "sex"]
    assert sum(w["m_probability"] for w in sex) == pytest.approx(1.0)
    assert [w["m_probability"] for w in sex if "m_probability_trained" in w] == [floored["sex"]["m_probability_used"]]


def _sex_comparison(m_else: float, u_else: float):
    comparison = cl.ExactMatch("sex").get_comparison("duckdb")
    exact, other = [lv for lv in comparison.comparison_levels if not lv.is_null_level]
    exact.m_probability, exact.u_probability = 1.0 - m_else, 1.0 - u_else
    other.m_probability, other.u_probability = m_else, u_else
    return comparison, exact, other


def test_floor_raises_a_disagreement_weight_to_the_penalty_and_keeps_m_a_distribution() -> None:
    comparison, exact, other = _sex_comparison(1e-15, 0.5)
    changed = floor_disagreement_weights([comparison], ["sex"], 8.0)
    assert other.m_probability == pytest.approx(0.5 / 256)
    assert exact.m_probability + other.m_probability == pytest.approx(1.0)
    assert changed == [{"comparison": "sex", "level": other.label_for_charts, "m_probability_trained": 1e-15,
                        "m_probability_used": pytest.approx(0.5 / 256), "match_weight_trained": -48.83,
                        "match_weight_used": -8.0}]


def test_floor_leaves_a_weight_already_above_it_and_columns_not_listed() -> None:
    comparison, exact, other = _sex_comparison(0.01, 0.5)  # -5.64 bits
    assert floor_disagreement_weights([comparison], ["sex"], 8.0) == []
    assert other.m_probability == 0.01 and exact.m_probability == 0.99
    comparison, _, other = _sex_comparison(1e-15, 0.5)
    assert floor_disagreement_weights([comparison], ["nhs_number"], 8.0) == []
    assert other.m_probability == 1e-15


def test_penalty_columns_without_a_comparison_are_a_clear_error(tmp_path: Path) -> None:
    write_ingested(tmp_path / "in")
    config = _config(disagreement_penalty_columns=["sex", "passport_number"])
    mp = pytest.MonkeyPatch()
    mp.setenv("EARLYSIGNAL_LINK_SECRET", SECRET)
    try:
        with pytest.raises(LinkageError, match=r"linkage.disagreement_penalty_columns names \['passport_number'\]"):
            run_link(tmp_path / "in", tmp_path / "out", config)
    finally:
        mp.undo()


def _planted_world() -> tuple[pd.DataFrame, pd.DataFrame]:
    # Person A: 8 records in cluster 1, 2 planted (sex) in cluster 2. Person B: 6 in cluster 3 (2 planted upn),
    # 1 planted (nhs_number;upn) in cluster 5. Person C: 6 records, nothing planted, one cluster.
    true_counts = pd.DataFrame({"k": [0, 1, 2, 3, 4, 5, 6], "c": [1, 1, 2, 3, 5, 4, 3],
                                "t": ["A", "A", "A", "B", "B", "C", "B"], "n": [5, 3, 2, 4, 1, 6, 2]})
    planted = pd.DataFrame({"k": [2, 4, 6], "value": ["sex", "nhs_number;upn", "upn"], "n": [2, 1, 2]})
    return true_counts, planted


def test_planted_records_outside_their_persons_main_cluster_count_as_separated() -> None:
    from earlysignal.linkage.quality import planted_disagreements

    out = planted_disagreements(*_planted_world(), min_cell=1, round_to=1)
    assert out["by_field"] == [
        {"group": "nhs_number", "records": 1, "separated": 1, "separated_rate": 1.0, "suppressed": False},
        {"group": "none", "records": 18, "separated": None, "separated_rate": None, "suppressed": True},
        {"group": "sex", "records": 2, "separated": 2, "separated_rate": 1.0, "suppressed": False},
        {"group": "upn", "records": 3, "separated": 1, "separated_rate": 0.333, "suppressed": False},
    ]
    assert out["pairwise"] == {"true_pairs": 32, "precision": 1.0, "recall": 0.3125}
    assert (out["persons"], out["persons_split"]) == (2, 2)


def test_planted_disagreement_counts_are_suppressed_and_rounded_like_the_other_group_tables() -> None:
    from earlysignal.linkage.quality import planted_disagreements

    out = planted_disagreements(*_planted_world(), min_cell=10, round_to=5)
    rows = {r["group"]: r for r in out["by_field"]}
    assert rows["sex"] == {"group": "sex", "records": None, "separated": None, "separated_rate": None, "suppressed": True}
    assert rows["none"]["records"] == 20 and rows["none"]["separated"] is None
    assert out["pairwise"]["true_pairs"] == 30
    assert out["persons"] is None and out["persons_split"] is None


def test_link_quality_of_the_raw_borough_reports_records_planted_to_disagree(world: dict) -> None:
    import json

    planted = json.loads((world["root"] / "floored" / "link_quality.json").read_text())["ground_truth"][
        "planted_disagreements"]
    groups = [r["group"] for r in planted["by_field"]]
    assert groups == sorted(groups) and {"none", "upn"} <= set(groups)
    for row in planted["by_field"]:
        for key in ("records", "separated"):
            assert row[key] is None or (row[key] >= 10 and row[key] % 5 == 0)
    assert 0.9 <= planted["pairwise"]["recall"] <= 1.0
