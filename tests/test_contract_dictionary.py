"""The contract against a council's own data dictionary: codes as the data has them, nothing lost, nothing leaked."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from contract_fixtures import clean_tables, write_borough
from earlysignal.cli import app
from earlysignal.config import load_config
from earlysignal.contract import load_linked_data, require_usable
from earlysignal.errors import ContractError, UnusableDataError

REPO_CONFIG = Path(__file__).resolve().parents[1] / "conf" / "borough.yaml"

# The 2-person borough of issue 8 ("Inputs that fail today"), written as CSV the way a council exports it.
TWO_PEOPLE = {
    "residents.csv": "resident_id,birth_date,sex,ethnicity,full_name,postcode\n"
    "P1,1990-01-01,male,Hispanic,Ann Example,ZZ1 1ZZ\n"
    "P2,,female,White,Bob Example,ZZ9 9ZZ\n",
    "residency.csv": "resident_id,household_id,address_id,start_date,end_date,tenure\n"
    "P1,H1,A1,2015-01-01,,unknown\n"
    "P2,H2,A2,2016-01-01,,\n",
    "events.csv": "event_id,resident_id,address_id,source,event_type,event_time,known_at,value\n"
    "E1,P1,,county_jail,admission,2020-01-01,2020-01-02,-1\n"
    "E2,P2,,county_jail,admission,2021-01-01,2021-01-02,3\n",
    "outcomes.csv": "resident_id,outcome_type,outcome_time,known_at,end_time\n"
    "P1,rearrest,2022-01-01,2022-01-02,\n",
}

COUNCIL_DICTIONARY = {
    "name": "two-people",
    "residents": {
        "birth_date": {"kind": "date"},
        "sex": {"kind": "category", "values": ["Male", "Female"]},
        "ethnicity": {"kind": "category", "values": ["White", "Hispanic"], "groups": {"Hispanic": "Hispanic or Latino"}},
    },
    "residency": {"tenure": {"kind": "category", "values": ["owned", "rented"]}},
    "sources": {
        "county_jail": {
            "label": "county jail",
            "event_types": {
                "admission": {"label": "jail admission", "value": {"meaning": "measure", "unit": "points", "negative": True}}
            },
        }
    },
    "outcomes": {"rearrest": {"label": "a re-arrest"}},
}


def _write_two_people(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in TWO_PEOPLE.items():
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "manifest.json").write_text(json.dumps({"extract_date": "2025-01-01"}), encoding="utf-8")
    return folder


def _council_config(tmp_path: Path) -> Path:
    (tmp_path / "dictionary.yaml").write_text(yaml.safe_dump(COUNCIL_DICTIONARY, sort_keys=False), encoding="utf-8")
    raw = yaml.safe_load(REPO_CONFIG.read_text(encoding="utf-8"))
    raw["dictionary"] = "dictionary.yaml"
    raw["contract"] = {"outcome_types": ["rearrest"]}
    raw["cohort"] = {"exclude_open_outcomes": []}
    raw["label"] = {"name": "rearrest", "outcome_types": ["rearrest"], "horizon_months": 6}
    raw["features"] = {"static": ["age"], "families": []}
    raw["audit"] = {"protected": ["sex", "ethnicity"], "intersections": []}
    path = tmp_path / "council.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _loose_repo_config(tmp_path: Path, share: float) -> Path:
    raw = yaml.safe_load(REPO_CONFIG.read_text(encoding="utf-8"))
    raw["dictionary"] = str((REPO_CONFIG.parent / raw["dictionary"]).resolve())
    raw["contract"]["max_quarantine_share"] = share
    path = tmp_path / "loose.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_two_person_borough_is_accepted_whole_when_its_dictionary_declares_its_codes(tmp_path):
    data = _write_two_people(tmp_path / "data")
    config = load_config(_council_config(tmp_path))
    linked = load_linked_data(data, config)
    report = linked.report
    assert {name: (c.read, c.accepted, c.quarantined) for name, c in report.tables.items()} == {
        "residents": (2, 2, 0), "residency": (2, 2, 0), "events": (2, 2, 0), "outcomes": (1, 1, 0),
    }
    assert report.normalised == {"residents": {"sex": 2}, "residency": {}, "events": {}, "outcomes": {}}
    assert report.not_recorded["residency"] == {"tenure": 2}  # "unknown" and the empty cell: both not recorded
    assert list(linked.residents["sex"]) == ["Male", "Female"]
    assert list(linked.residents["ethnicity"]) == ["Hispanic", "White"]
    assert linked.residents["birth_date"].isna().tolist() == [False, True]
    assert linked.residency["tenure"].isna().all()
    assert list(linked.events["value"]) == [-1.0, 3.0]
    assert report.dropped_columns["residents"] == ("full_name", "postcode")
    assert "residents.csv: dropped column(s) the contract does not know: full_name, postcode" in report.warnings[0]
    assert list(linked.residents.columns) == ["resident_id", "birth_date", "sex", "ethnicity"]
    require_usable(report, config.contract)  # nothing to stop for


def test_two_person_borough_without_its_dictionary_is_quarantined_with_reasons_and_stops(tmp_path):
    data = _write_two_people(tmp_path / "data")
    config = load_config(REPO_CONFIG)  # the synthetic borough's dictionary: F/M, five groups, its own sources
    linked = load_linked_data(data, config)
    assert linked.report.checks == {
        "residents": {"invalid_value:sex": 2},
        "residency": {"quarantined_resident": 2},
        "events": {"unknown_event_type": 2},
        "outcomes": {"unknown_outcome_type": 1},
    }
    assert linked.report.cascade_quarantined("residency") == 2
    assert linked.report.own_fault_quarantined("residency") == 0
    quarantined = pd.read_parquet(linked.report.quarantine_files["residents"])
    # Only the contract's columns, the row number and the reason: no name or postcode is copied.
    assert list(quarantined.columns) == [
        "resident_id", "birth_date", "sex", "ethnicity", "row_number", "reason",
    ]
    with pytest.raises(UnusableDataError) as caught:
        require_usable(linked.report, config.contract)
    message = str(caught.value)
    assert "residents: no row accepted out of 2 (top reasons: invalid_value:sex 2)" in message
    assert "events: no row accepted out of 2 (top reasons: unknown_event_type 2)" in message

    result = CliRunner().invoke(app, ["validate", str(data), "--config", str(REPO_CONFIG)])
    assert result.exit_code == 2, result.output
    assert "residents: no row accepted out of 2" in " ".join(result.output.split())


def test_cli_validate_accepts_the_two_person_borough_with_its_dictionary(tmp_path):
    data = _write_two_people(tmp_path / "data")
    result = CliRunner().invoke(app, ["validate", str(data), "--config", str(_council_config(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "0 rows quarantined; 7 accepted." in result.output


def test_quarantine_share_above_the_limit_stops_and_cascades_are_counted_apart(tmp_path):
    tables = clean_tables()
    tables["residents"].loc[0, "sex"] = "X"  # R1 quarantined; their residency and events follow
    write_borough(tmp_path / "data", tables)
    linked = load_linked_data(tmp_path / "data")
    with pytest.raises(UnusableDataError) as caught:
        require_usable(linked.report, load_config(REPO_CONFIG).contract)
    message = str(caught.value)
    assert "residents: 1 of 6 rows (16.7%) quarantined, above the limit of 1.0%" in message
    assert "events" not in message.split("residents:")[0]
    # R1's spell and events are cascades only: they do not count towards their tables' limits.
    assert linked.report.checks["residency"] == {"quarantined_resident": 1}
    assert "residency:" not in message and "events:" not in message
    loose = load_config(_loose_repo_config(tmp_path, 0.2))
    require_usable(linked.report, loose.contract)


def test_whitespace_and_letter_case_in_codes_are_normalised_and_counted(tmp_path):
    tables = clean_tables()
    tables["events"].loc[0, "source"] = " Council_Tax"
    tables["events"].loc[1, "event_type"] = "DOOR_REPLACEMENT "
    tables["residents"].loc[0, "sex"] = " f"
    tables["residency"].loc[0, "tenure"] = "Council"
    tables["outcomes"].loc[0, "outcome_type"] = "CSC_referral"
    tables["residents"].loc[1, "ethnicity"] = " not stated "
    write_borough(tmp_path, tables)
    linked = load_linked_data(tmp_path)
    assert linked.report.total_quarantined == 0
    assert linked.report.normalised == {
        "residents": {"sex": 1}, "residency": {"tenure": 1}, "events": {"source": 1, "event_type": 1},
        "outcomes": {"outcome_type": 1},
    }
    # " not stated " and R3's null ethnicity; R2's null disability.
    assert linked.report.not_recorded["residents"] == {"ethnicity": 2, "disability": 1}
    assert linked.events.loc[0, "source"] == "council_tax" and linked.events.loc[1, "event_type"] == "door_replacement"
    assert linked.residents.loc[0, "sex"] == "F" and pd.isna(linked.residents.loc[1, "ethnicity"])
    assert linked.outcomes.loc[0, "outcome_type"] == "csc_referral"
    assert "events.parquet: 1 source code(s) normalised (surrounding spaces or letter case)" in linked.report.warnings


def test_unknown_columns_are_dropped_with_a_warning_and_an_input_reason_column_is_named(tmp_path):
    tables = clean_tables()
    tables["residents"]["full_name"] = ["A", "B", "C", "D", "E", "F"]
    tables["events"]["reason"] = "typed by hand"
    tables["events"].loc[0, "known_at"] = dt.datetime(2021, 1, 1)  # known before it happened: quarantined
    write_borough(tmp_path, tables)
    linked = load_linked_data(tmp_path)
    assert "full_name" not in linked.residents.columns and "reason" not in linked.events.columns
    assert linked.report.dropped_columns == {"residents": ("full_name",), "residency": (), "events": ("reason",), "outcomes": ()}
    assert any("events.parquet: dropped column(s) the contract does not know: reason" in w for w in linked.report.warnings)
    quarantined = pd.read_parquet(linked.report.quarantine_files["events"])
    assert quarantined["reason"].tolist() == ["known_at_before_event_time"]
    assert "typed by hand" not in quarantined.to_string()


def test_values_that_sum_to_infinity_are_a_validation_error_naming_column_and_rows(tmp_path):
    tables = clean_tables()
    tables["events"].loc[0, "value"] = 1e308  # council_tax/arrears_reminder, data row 1
    extra = tables["events"].iloc[[0]].assign(event_id="E50", value=1e308)
    tables["events"] = pd.concat([tables["events"], extra], ignore_index=True)  # data row 13
    write_borough(tmp_path, tables)
    with pytest.raises(ContractError) as caught:
        load_linked_data(tmp_path)
    assert str(caught.value).startswith(
        "events.parquet: column value: the values of council_tax/arrears_reminder add up to infinity"
    )
    assert "row 1, row 13" in str(caught.value)


def test_one_huge_but_finite_value_alone_is_accepted(tmp_path):
    tables = clean_tables()
    tables["events"].loc[0, "value"] = 1e308
    write_borough(tmp_path, tables)
    assert load_linked_data(tmp_path).report.total_quarantined == 0


def test_negative_values_pass_only_where_the_dictionary_allows_them(tmp_path):
    data = _write_two_people(tmp_path / "data")
    council = yaml.safe_load(yaml.safe_dump(COUNCIL_DICTIONARY, sort_keys=False))
    council["sources"]["county_jail"]["event_types"]["admission"]["value"]["negative"] = False
    (tmp_path / "dictionary.yaml").write_text(yaml.safe_dump(council, sort_keys=False), encoding="utf-8")
    config_path = _council_config(tmp_path)
    (tmp_path / "dictionary.yaml").write_text(yaml.safe_dump(council, sort_keys=False), encoding="utf-8")
    linked = load_linked_data(data, load_config(config_path))
    assert linked.report.checks["events"] == {"negative_value": 1}


def test_residency_table_may_be_absent(tmp_path):
    data = _write_two_people(tmp_path / "data")
    (data / "residency.csv").unlink()
    linked = load_linked_data(data, load_config(_council_config(tmp_path)))
    assert len(linked.residency) == 0 and linked.report.tables["residency"].read == 0
    assert any("table residency is absent" in w for w in linked.report.warnings)


def test_a_quarantined_resident_living_here_is_listed_as_unscored_with_the_contract_reason(tmp_path):
    from earlysignal.scoring import unscored_residents

    tables = clean_tables()
    tables["residents"].loc[0, "sex"] = "X"  # R1, living at A1 since 2015
    tables["residents"].loc[5, "ethnicity"] = "Purple"  # R6, whose only spell ended in June 2019
    write_borough(tmp_path, tables)
    linked = load_linked_data(tmp_path)
    config = load_config(REPO_CONFIG)
    unscored = unscored_residents(linked, {"R2", "R3", "R5"}, dt.date(2024, 1, 1), config)
    quarantined = unscored[unscored["reason"].str.startswith("quarantined by the data contract")]
    assert quarantined[["resident_id", "reason"]].values.tolist() == [
        ["R1", "quarantined by the data contract: invalid_value:sex"],
    ]
    assert "R6" not in set(unscored["resident_id"])  # not living here at as_of
    assert sorted(linked.quarantined_residents["resident_id"].unique()) == ["R1", "R6"]


def test_a_resident_whose_residency_spell_was_quarantined_is_listed_as_unscored_once(tmp_path):
    from earlysignal.scoring import unscored_residents

    tables = clean_tables()
    extra = tables["residency"].iloc[[1, 2]].copy()
    extra.iloc[0, extra.columns.get_loc("start_date")] = dt.date(2018, 1, 1)  # R2 also at A1 from 2018: overlaps
    extra.iloc[0, extra.columns.get_loc("address_id")] = "A2"
    tables["residency"] = pd.concat([tables["residency"], extra], ignore_index=True)  # R3's spell twice
    write_borough(tmp_path, tables)
    linked = load_linked_data(tmp_path)
    assert linked.report.checks["residency"] == {"duplicate_row": 1, "overlapping_residency": 2}
    config = load_config(REPO_CONFIG)
    unscored = unscored_residents(linked, {"R3", "R5"}, dt.date(2024, 1, 1), config)
    quarantined = unscored[unscored["reason"].str.startswith("quarantined by the data contract")]
    assert quarantined[["resident_id", "reason"]].values.tolist() == [
        ["R2", "quarantined by the data contract: overlapping_residency"],
    ]
    assert unscored["resident_id"].is_unique and "R3" not in set(unscored["resident_id"])


def _council_project(tmp_path: Path, **sections) -> object:
    path = _council_config(tmp_path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw.update(sections)
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_config(path)


def test_asking_for_age_without_birth_dates_stops_before_any_work(tmp_path):
    from earlysignal.errors import ConfigError
    from earlysignal.features import build_feature_matrix

    data = _write_two_people(tmp_path / "data")
    (data / "residents.csv").write_text("resident_id,sex\nP1,male\nP2,female\n", encoding="utf-8")
    config = _council_project(tmp_path, features={"static": ["age"], "families": []})
    linked = load_linked_data(data, config)
    with pytest.raises(ConfigError, match=r"need residents.birth_date, which is empty \(no resident has one\)"):
        build_feature_matrix(config, linked)


def test_household_scope_without_a_residency_table_is_a_config_error(tmp_path):
    from earlysignal.errors import ConfigError
    from earlysignal.features import build_feature_matrix

    data = _write_two_people(tmp_path / "data")
    (data / "residency.csv").unlink()
    family = {"name": "jail", "source": "county_jail", "scopes": ["household"], "windows": ["all"],
              "aggregates": ["count", "last"]}
    config = _council_project(tmp_path, features={"static": [], "families": [family]},
                              cohort={"exclude_open_outcomes": [], "require_residency": False})
    linked = load_linked_data(data, config)
    with pytest.raises(ConfigError, match=r"no residency table.*features.families\[jail\].scopes: household"):
        build_feature_matrix(config, linked)


def test_council_features_use_declared_attributes_and_negative_last_values(tmp_path):
    from earlysignal.features import build_feature_matrix

    data = _write_two_people(tmp_path / "data")
    (data / "residents.csv").write_text(
        "resident_id,birth_date,sex,ethnicity,score,score_date\n"
        "P1,1990-01-01,male,Hispanic,7,2021-06-01\n"
        "P2,,female,White,2,2015-01-01\n",
        encoding="utf-8",
    )
    council = yaml.safe_load(yaml.safe_dump(COUNCIL_DICTIONARY, sort_keys=False))
    council["residents"]["score"] = {"kind": "number", "label": "risk score", "known_from": "score_date"}
    council["residents"]["score_date"] = {"kind": "date"}
    family = {"name": "jail", "source": "county_jail", "scopes": ["resident"], "windows": ["all"],
              "aggregates": ["count", "last"]}
    config = _council_project(
        tmp_path,
        temporal={"first_as_of": "2021-01-01", "last_as_of": "2023-01-01", "frequency_months": 12},
        cohort={"min_age": 0, "max_age": 120, "exclude_open_outcomes": []},
        features={"static": ["score", "tenure"], "families": [family]},
    )
    (tmp_path / "dictionary.yaml").write_text(yaml.safe_dump(council, sort_keys=False), encoding="utf-8")
    linked = load_linked_data(data, config)
    built = build_feature_matrix(config, linked)
    frame = built.frame
    # P2 has no birth date, so an age-ranged cohort cannot hold them; P1 is in it at all three dates.
    assert frame["resident_id"].tolist() == ["P1", "P1", "P1"]
    assert frame["static__score"].isna().tolist() == [True, False, False]  # known only from 2021-06-01
    assert frame["static__score"].tolist()[1:] == [7.0, 7.0]
    assert frame[["static__tenure__owned", "static__tenure__rented"]].to_numpy().sum() == 0  # tenure not recorded
    assert frame["resident__jail__admission__last__all"].tolist() == [-1.0, -1.0, -1.0]
    assert frame["attr__ethnicity"].tolist() == ["Hispanic or Latino"] * 3
    assert built.metadata["dictionary"]["name"] == "two-people"
    descriptions = {f["name"]: f["description"] for f in built.metadata["features"]}
    assert descriptions["resident__jail__admission__last__all"].format(value=-1) == (
        "jail admission last value -1 points on record"
    )


def test_features_refuses_to_write_a_matrix_with_no_rows(tmp_path):
    write_borough(tmp_path / "data")
    raw = yaml.safe_load(REPO_CONFIG.read_text(encoding="utf-8"))
    raw["dictionary"] = str((REPO_CONFIG.parent / raw["dictionary"]).resolve())
    raw["temporal"] = {"first_as_of": "2001-01-01", "last_as_of": "2001-07-01", "frequency_months": 3}
    raw["contract"]["max_quarantine_share"] = 0.5
    config = tmp_path / "empty.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    out = tmp_path / "matrix.parquet"
    result = CliRunner().invoke(
        app, ["features", "--data", str(tmp_path / "data"), "--out", str(out), "--config", str(config)]
    )
    assert result.exit_code == 2, result.output
    assert "the feature matrix has no rows" in " ".join(result.output.split())
    assert not out.exists()


def test_min_and_max_of_a_negative_balance_read_as_lowest_and_highest_record():
    from earlysignal.config import FeatureFamily
    from earlysignal.dictionary import dictionary_from_dict
    from earlysignal.features.spec import family_definitions

    dictionary = dictionary_from_dict({
        "name": "arrears",
        "sources": {"rent": {"label": "rent account", "event_types": {"statement": {
            "label": "rent statement",
            "value": {"meaning": "money", "unit": "GBP", "negative": True, "phrase": "rent balance £{value}"},
        }}}},
    })
    family = FeatureFamily(name="rent", source="rent", windows=["3m"], aggregates=["min", "last"], per_event_type=True)
    from earlysignal.explain import reason_sentence

    records = {d.name: d.public_record() for d in family_definitions(family, dictionary)}
    assert reason_sentence(records["resident__rent__statement__min__3m"], -50) == (
        "rent balance -£50.00 at the lowest rent statement in the last 3 months"
    )
    assert reason_sentence(records["resident__rent__statement__last__3m"], 120) == (
        "rent balance £120.00 at the last rent statement in the last 3 months"
    )


def test_a_count_of_one_reads_in_the_singular_in_reasons():
    from earlysignal.config import FeatureFamily
    from earlysignal.dictionary import dictionary_from_dict
    from earlysignal.explain import describe, description_templates
    from earlysignal.features.spec import family_definitions

    dictionary = dictionary_from_dict({
        "name": "care",
        "sources": {"asc": {"label": "adult social care", "event_types": {
            "assessment": {"label": "care needs assessment"}}}},
    })
    family = FeatureFamily(name="asc", source="asc", windows=["3m", "all"], aggregates=["count"])
    templates = description_templates({"features": [d.public_record() for d in family_definitions(family, dictionary)]})
    name = "resident__asc__assessment__count__3m"
    assert describe(name, 1.0, templates) == "1 care needs assessment in the last 3 months"
    assert describe(name, 2.0, templates) == "2 care needs assessments in the last 3 months"
    assert describe(name, 0.0, templates) == "0 care needs assessments in the last 3 months"
    assert describe("resident__asc__assessment__count__all", 1.0, templates) == "1 care needs assessment on record"
