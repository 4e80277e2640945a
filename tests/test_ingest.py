"""`earlysignal ingest`: mappings, code lists and rules, coverage, quarantine, reconciliation, bad input."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from earlysignal.config import packaged_config_path
from earlysignal.dictionary import load_dictionary, packaged_dictionary_path
from earlysignal.errors import ConfigError
from earlysignal.ingest import IngestError, ingest, load_mapping, mapping_hash, resolve_mapping_paths

REPO = Path(__file__).resolve().parents[1]
DICTIONARY = load_dictionary(packaged_dictionary_path())
EVENT_VOCABULARY = DICTIONARY.event_types_by_source()
OUTCOME_TYPES = tuple(DICTIONARY.outcomes)
MAPPINGS = sorted((REPO / "conf" / "sources").glob("*.yaml"))


@pytest.fixture(scope="module")
def ingested(raw_borough_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ingested")
    ingest(raw_borough_tiny / "raw", out, MAPPINGS, EVENT_VOCABULARY, OUTCOME_TYPES)
    return out


def _coverage(out: Path) -> dict:
    return json.loads((out / "coverage.json").read_text())


def _events_with_truth(ingested: Path, borough: Path) -> pd.DataFrame:
    events = pd.read_parquet(ingested / "events.parquet")
    events["record_id"] = events["person_record_id"].fillna(events["address_record_id"])
    truth = pd.read_parquet(borough / "ground_truth" / "raw_records.parquet")
    return events.merge(truth, on=["source", "record_id"], how="left", validate="one_to_one")


def test_every_source_reconciles_read_with_mapped_excluded_and_quarantined(ingested: Path, raw_borough_tiny: Path) -> None:
    coverage = _coverage(ingested)
    assert set(coverage) == {p.stem for p in MAPPINGS}
    raw_rows = json.loads((raw_borough_tiny / "raw" / "manifest.json").read_text())["files"]
    for source, c in coverage.items():
        assert c["read"] == c["mapped"] + c["excluded"] + c["quarantined"], source
        assert c["read"] == sum(n for f, n in raw_rows.items() if f.split("/")[0] == source), source
    outputs = {name: len(pd.read_parquet(ingested / f"{name}.parquet"))
               for name in ("person_records", "address_records", "events", "outcomes", "gazetteer")}
    assert outputs["events"] == sum(c["outputs"].get("events", 0) for c in coverage.values())
    assert outputs["gazetteer"] == coverage["addressbase"]["mapped"]


def test_voids_planned_cancelled_and_communal_door_entry_jobs_are_excluded_and_counted(
    ingested: Path, raw_borough_tiny: Path
) -> None:
    truth = pd.read_parquet(raw_borough_tiny / "ground_truth" / "raw_records.parquet")
    jobs = truth[truth["source"] == "housing_repairs"]["truth"].value_counts()
    excluded = _coverage(ingested)["housing_repairs"]["excluded_by"]
    assert excluded == {
        "void_works": jobs["void"], "planned_works": jobs["planned"], "cancelled": jobs["cancelled"],
        "communal_door_entry": jobs["communal_door_entry"],
    }
    events = _events_with_truth(ingested, raw_borough_tiny)
    assert not events["truth"].isin(["void", "planned", "cancelled", "communal_door_entry"]).any()


def test_sanctuary_works_are_coded_as_their_own_type_and_never_as_door_replacement(
    ingested: Path, raw_borough_tiny: Path
) -> None:
    events = _events_with_truth(ingested, raw_borough_tiny)
    sanctuary = events[events["truth"] == "sanctuary_works"]
    assert len(sanctuary) > 0
    assert set(sanctuary["event_type"]) == {"sanctuary_works"}
    assert set(sanctuary["coded_by"]) <= {"sor_sanctuary", "text_sanctuary"}
    assert set(events.loc[events["event_type"] == "sanctuary_works", "truth"]) == {"sanctuary_works"}


def test_coded_events_match_the_true_event_types(ingested: Path, raw_borough_tiny: Path) -> None:
    events = _events_with_truth(ingested, raw_borough_tiny)
    coded = events[events["truth"].str.contains("/")]
    agree = (coded["source"] + "/" + coded["event_type"]) == coded["truth"]
    assert agree.all(), coded[~agree][["record_id", "event_type", "truth", "coded_by"]].head()
    # The only true repairs not coded are those whose free text says nothing a rule can use.
    truth = pd.read_parquet(raw_borough_tiny / "ground_truth" / "raw_records.parquet")
    repairs = truth[truth["truth"].str.startswith("housing_repairs/")]
    missing = set(repairs["record_id"]) - set(events["record_id"])
    quarantine = pd.read_parquet(ingested / "quarantine" / "housing_repairs.parquet")
    assert missing == set(quarantine["job_ref"])
    assert set(quarantine["reason"]) == {"unmapped_code:sor_code"}
    top = _coverage(ingested)["housing_repairs"]["top_unmapped_phrases"]
    assert set(top) <= {f"description={t}" for t in ("attend and make safe", "as per inspection", "see notes",
                                                     "tenant to advise on arrival")}


def test_door_replacement_rate_ratio_under_abuse_survives_coding(ingested: Path, raw_borough_tiny: Path) -> None:
    events = _events_with_truth(ingested, raw_borough_tiny)
    doors = events[events["event_type"] == "door_replacement"]
    residency = pd.read_parquet(raw_borough_tiny / "residency.parquet")
    spans = residency.groupby("household_id").agg(address_id=("address_id", "first"), start=("start_date", "min"),
                                                  end=("end_date", lambda s: s.max() if s.notna().all() else None))
    social = residency.drop_duplicates("household_id").set_index("household_id")["tenure"].isin(
        ["council", "housing_association"])
    spans = spans[social.reindex(spans.index)]
    window_start = pd.Timestamp(json.loads((raw_borough_tiny / "manifest.json").read_text())["window_start"])
    extract = pd.Timestamp(json.loads((raw_borough_tiny / "manifest.json").read_text())["extract_date"])
    spans["start"] = pd.to_datetime(spans["start"]).clip(lower=window_start)
    spans["end"] = pd.to_datetime(spans["end"]).fillna(extract).clip(upper=extract)
    spans = spans[spans["end"] > spans["start"]]
    states = pd.read_parquet(raw_borough_tiny / "ground_truth" / "household_states.parquet")
    da = states[(states["state"] == "domestic_abuse") & states["household_id"].isin(spans.index)].copy()
    da["start"] = pd.to_datetime(da["start_date"]).clip(lower=window_start)
    da["end"] = pd.to_datetime(da["end_date"]).fillna(extract).clip(upper=extract)
    da = da.merge(spans[["address_id"]], left_on="household_id", right_index=True)
    da_days = float((da["end"] - da["start"]).dt.days.sum())
    all_days = float((spans["end"] - spans["start"]).dt.days.sum())
    t = doors["event_time"].to_numpy()
    under = np.zeros(len(doors), dtype=bool)
    for row in da.itertuples():
        under |= (doors["address_id"].to_numpy() == row.address_id) & (t >= row.start.to_datetime64()) & (
            t < row.end.to_datetime64())
    rate_under = under.sum() / da_days
    rate_else = (~under).sum() / (all_days - da_days)
    assert da_days > 0 and under.sum() >= 5
    print(f"door rate ratio under abuse {rate_under / rate_else:.1f} ({under.sum()} doors under abuse)")
    assert rate_under / rate_else > 3.0, (rate_under / rate_else, under.sum())


def test_every_event_keeps_the_name_of_the_entry_or_rule_that_coded_it(ingested: Path) -> None:
    events = pd.read_parquet(ingested / "events.parquet")
    outcomes = pd.read_parquet(ingested / "outcomes.parquet")
    names = set()
    for path in MAPPINGS:
        for extract in load_mapping(path).extracts:
            names |= {e.name for e in (extract.codes.entries if extract.codes else [])}
            names |= {r.name for r in extract.rules}
    assert events["coded_by"].notna().all() and set(events["coded_by"]) <= names
    assert set(outcomes["coded_by"]) <= names
    assert set(outcomes["outcome_type"]) <= set(OUTCOME_TYPES)
    for source, types in events.groupby("source")["event_type"]:
        allowed = set(EVENT_VOCABULARY[source]) | ({"sanctuary_works"} if source == "housing_repairs" else set())
        assert set(types) <= allowed, source
    assert (events["known_at"] >= events["event_time"]).all()
    assert events["person_record_id"].notna().ne(events["address_record_id"].notna()).all()


def test_person_records_follow_the_interface(ingested: Path) -> None:
    people = pd.read_parquet(ingested / "person_records.parquet")
    assert list(people.columns[:15]) == [
        "source", "record_id", "source_person_id", "first_name", "middle_name", "last_name", "birth_date", "sex",
        "postcode", "address_text", "uprn", "nhs_number", "upn", "seen_date", "seen_until"]
    assert "attr_ethnicity" in people.columns
    assert not people.duplicated(["source", "record_id"]).any()
    assert not (people["birth_date"] == dt.date(1900, 1, 1)).any()
    coverage = _coverage(ingested)
    assert coverage["police"]["placeholder_birth_dates"] > 0
    assert people.loc[people["source"] == "police", "uprn"].isna().all()
    assert people.loc[people["source"] == "council_tax", "uprn"].notna().all()
    events = pd.read_parquet(ingested / "events.parquet")
    person_events = events.dropna(subset=["person_record_id"])
    keys = set(zip(people["source"], people["record_id"], strict=True))
    assert all(k in keys for k in zip(person_events["source"], person_events["person_record_id"], strict=True))
    gazetteer = pd.read_parquet(ingested / "gazetteer.parquet")
    assert set(gazetteer["tenure"].dropna()) == {"council", "housing_association"}


def test_manifest_records_each_code_list_version_and_hash(ingested: Path, tmp_path: Path) -> None:
    manifest = json.loads((ingested / "manifest.json").read_text())
    assert manifest["extract_date"] == "2026-01-01"
    for path in MAPPINGS:
        entry = manifest["code_lists"][path.stem]
        assert entry["sha256"] == mapping_hash(path)
        assert entry["version"] == load_mapping(path).version
    changed = yaml.safe_load(MAPPINGS[0].read_text())
    changed["version"] = "changed"
    other = tmp_path / "m.yaml"
    other.write_text(yaml.safe_dump(changed))
    assert mapping_hash(other) != mapping_hash(MAPPINGS[0])


def test_packaged_source_mappings_are_identical_to_the_repository_copies() -> None:
    packaged = packaged_config_path().parent / "sources"
    assert [p.name for p in sorted(packaged.glob("*.yaml"))] == [p.name for p in MAPPINGS]
    for path in MAPPINGS:
        assert (packaged / path.name).read_bytes() == path.read_bytes()
    assert resolve_mapping_paths(["conf/sources/*.yaml"], packaged_config_path().parent)


# ----------------------------------------------------------------------------------------------------
# Bad input, on a tiny hand-made repairs extract
# ----------------------------------------------------------------------------------------------------

MAPPING = {
    "source": "housing_repairs", "version": "t1", "non_feature_event_types": ["sanctuary_works"],
    "extracts": [{
        "name": "jobs", "glob": "repairs/*.csv", "record_id": "job_ref",
        "address": {"address_text": ["address"], "postcode": "postcode"},
        "time": {"column": "raised", "format": "%d/%m/%Y"}, "known_at": {"rule": "lag", "days": 1},
        "exclude": [{"name": "void_works", "column": "priority", "in": ["V15"]}],
        "codes": {"column": "sor", "entries": [{"name": "sor_door", "codes": ["CP1"], "event_type": "door_replacement"}]},
        "rules": [{"name": "text_door", "column": "text", "pattern": "front door", "exclude": "communal",
                   "when": {"trade": ["CP"]}, "event_type": "door_replacement"}],
    }],
}
HEADER = "job_ref,address,postcode,raised,priority,sor,trade,text\n"


def _run(tmp_path: Path, rows: str, mapping: dict | None = None, chunk_rows: int = 500_000) -> Path:
    raw = tmp_path / "raw"
    (raw / "repairs").mkdir(parents=True, exist_ok=True)
    (raw / "repairs" / "jobs.csv").write_text(rows)
    path = tmp_path / "housing_repairs.yaml"
    path.write_text(yaml.safe_dump(mapping or MAPPING))
    out = tmp_path / "out"
    ingest(raw, out, [path], EVENT_VOCABULARY, OUTCOME_TYPES, extract_date=dt.date(2025, 1, 1),
           chunk_rows=chunk_rows)
    return out


@pytest.mark.parametrize("chunk_rows", [500_000, 2])  # whole file, or chunks splitting the duplicate pair
def test_each_bad_row_is_quarantined_with_its_reason(tmp_path: Path, chunk_rows: int) -> None:
    out = _run(tmp_path, HEADER + "\n".join([
        "J1,1 High St,N1 1AA,03/02/2024,5,CP1,CP,renew door",            # code list
        "J2,2 High St,N1 1AA,04/02/2024,5,MU9,CP,Renew FRONT DOOR",      # rule
        "J3,3 High St,N1 1AA,05/02/2024,5,MU9,CP,communal front door",   # rule's exclude pattern -> unmapped
        "J4,4 High St,N1 1AA,06/02/2024,5,MU9,EL,front door",            # rule's trade condition -> unmapped
        "J5,5 High St,N1 1AA,2024-02-07,5,CP1,CP,x",                     # bad date in a good column
        "J1,6 High St,N1 1AA,08/02/2024,5,CP1,CP,x",                     # duplicate record id
        ",7 High St,N1 1AA,08/02/2024,5,CP1,CP,x",                       # no record id
        "J8,8 High St,N1 1AA,09/02/2024,V15,CP1,CP,void front door",     # excluded
        "J9,9 High St,N1 1AA,09/02/2025,5,CP1,CP,x",                     # after the extract date
    ]) + "\n", chunk_rows=chunk_rows)
    q = pd.read_parquet(out / "quarantine" / "housing_repairs.parquet").set_index("job_ref")
    assert q["reason"].to_dict() == {
        "J3": "unmapped_code:sor", "J4": "unmapped_code:sor", "J5": "unparseable_date:raised: '2024-02-07' does not match %d/%m/%Y "
                                                         "(housing_repairs.yaml: extracts[jobs].time.format)",
        "J1": "duplicate_record_id:job_ref", "": "missing_record_id:job_ref", "J9": "event_after_extract_date",
    }
    assert q["row_number"].tolist() == [3, 4, 5, 6, 7, 9]
    events = pd.read_parquet(out / "events.parquet").set_index("address_record_id")
    assert events["coded_by"].to_dict() == {"J1": "sor_door", "J2": "text_door"}
    assert events.loc["J1", "known_at"] == pd.Timestamp("2024-02-04")
    c = json.loads((out / "coverage.json").read_text())["housing_repairs"]
    assert (c["read"], c["mapped"], c["excluded"], c["quarantined"]) == (9, 2, 1, 6)
    assert c["top_unmapped_codes"] == {"sor=MU9": 2}
    assert c["hits_per_rule"] == {"sor_door": 1, "text_door": 1}


def test_a_record_id_repeated_chunks_later_is_quarantined_once_per_repeat(tmp_path: Path) -> None:
    # Chunks of two rows: J1 comes back in the third and fourth chunks, J3 within the second chunk.
    rows = ["J1", "J2", "J3", "J3", "J4", "J1", "J5", "J1"]
    out = _run(tmp_path, HEADER + "\n".join(
        f"{rid},{i} High St,N1 1AA,0{i % 9 + 1}/02/2024,5,CP1,CP,x" for i, rid in enumerate(rows, start=1)) + "\n",
        chunk_rows=2)
    q = pd.read_parquet(out / "quarantine" / "housing_repairs.parquet")
    assert q["row_number"].tolist() == [4, 6, 8]
    assert set(q["reason"]) == {"duplicate_record_id:job_ref"}
    events = pd.read_parquet(out / "events.parquet")
    assert sorted(events["address_record_id"]) == ["J1", "J2", "J3", "J4", "J5"]


def test_a_missing_column_names_the_file_the_column_and_the_mapping_key(tmp_path: Path) -> None:
    rows = "job_ref,address,postcode,raised,priority,sor,text\nJ1,1 High St,N1,03/02/2024,5,CP1,x\n"
    with pytest.raises(IngestError) as error:
        _run(tmp_path, rows)
    message = str(error.value)
    assert "jobs.csv" in message and "'trade'" in message and "rules[text_door].when" in message


def test_a_date_format_that_matches_no_value_is_an_error_naming_column_and_format(tmp_path: Path) -> None:
    rows = HEADER + "J1,1 High St,N1,2024-02-03,5,CP1,CP,x\nJ2,1 High St,N1,2024-02-04,5,CP1,CP,x\n"
    with pytest.raises(IngestError, match=r"jobs.csv: column 'raised': no value matches date format '%d/%m/%Y'"):
        _run(tmp_path, rows)


def test_an_event_type_outside_the_dictionary_is_a_config_error_naming_the_rule(tmp_path: Path) -> None:
    mapping = json.loads(json.dumps(MAPPING))
    mapping["extracts"][0]["rules"][0]["event_type"] = "front_door"
    with pytest.raises(ConfigError, match=r"rule 'text_door': event_type 'front_door' is not an event type"):
        _run(tmp_path, HEADER + "J1,1 High St,N1,03/02/2024,5,CP1,CP,x\n", mapping)


@pytest.mark.parametrize("rows_before", [0, 5000])  # in the header's first block, or far into the file
def test_a_wrong_encoding_is_an_error_naming_the_file_and_the_fix(tmp_path: Path, rows_before: int) -> None:
    raw = tmp_path / "raw" / "repairs"
    raw.mkdir(parents=True)
    good = "".join(f"G{i},1 High St,N1,03/02/2024,5,CP1,CP,x\n" for i in range(rows_before))
    (raw / "jobs.csv").write_bytes((HEADER + good + "J1,1 Caf\u00e9 St,N1,03/02/2024,5,CP1,CP,x\n").encode("cp1252"))
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(MAPPING))
    with pytest.raises(IngestError, match=r"jobs.csv: cannot be read as utf-8.*encoding in"):
        ingest(tmp_path / "raw", tmp_path / "out", [path], EVENT_VOCABULARY, OUTCOME_TYPES, dt.date(2025, 1, 1))


def test_term_end_rule_makes_attendance_known_at_the_end_of_the_following_term(tmp_path: Path) -> None:
    mapping = yaml.safe_load((REPO / "conf" / "sources" / "school.yaml").read_text())
    mapping["extracts"] = mapping["extracts"][:1]
    raw = tmp_path / "raw" / "school"
    raw.mkdir(parents=True)
    header = "AttendanceRecordID,UPN,LegalForename,MiddleNames,LegalSurname,DOB,Gender,Ethnicity,AddressLine1," \
             "Postcode,Month,SessionsPossible,SessionsMissed\n"
    (raw / "attendance.csv").write_text(header + "\n".join([
        "A1,U1,Ann,,Lee,2012-05-01,F,WBRI,1 High St,N1,2023-10,40,3",
        "A2,U1,Ann,,Lee,1900-01-01,F,WBRI,1 High St,N1,2024-02,40,0",
        "A3,U1,Ann,,Lee,2012-05-01,F,WBRI,1 High St,N1,2024-06,40,1",
        "A4,U1,Ann,,Lee,2012-05-01,F,WBRI,1 High St,N1,2024-11,40,2",
    ]) + "\n")
    path = tmp_path / "school.yaml"
    path.write_text(yaml.safe_dump(mapping))
    out = tmp_path / "out"
    ingest(tmp_path / "raw", out, [path], EVENT_VOCABULARY, OUTCOME_TYPES, dt.date(2025, 1, 1))
    events = pd.read_parquet(out / "events.parquet").set_index("person_record_id")
    # One term in arrears: autumn's return is in at the end of spring, spring's at the end of summer,
    # summer's at the end of autumn (each + 7 days); the last autumn term is known after the extract.
    assert events["known_at"].to_dict() == {
        "A1": pd.Timestamp("2024-04-07"), "A2": pd.Timestamp("2024-07-29"), "A3": pd.Timestamp("2024-12-27"),
        "A4": pd.Timestamp("2025-04-07")}
    assert events["value"].to_dict() == {"A1": 3.0, "A2": 0.0, "A3": 1.0, "A4": 2.0}
    assert json.loads((out / "coverage.json").read_text())["school"]["known_after_extract_date"] == 1
    assert "Known after the extract date: 1 records" in (out / "coverage.md").read_text()
    own_term = {**mapping["extracts"][0]["known_at"], "terms_in_arrears": 0}
    path.write_text(yaml.safe_dump({**mapping, "extracts": [{**mapping["extracts"][0], "known_at": own_term}]}))
    ingest(tmp_path / "raw", out, [path], EVENT_VOCABULARY, OUTCOME_TYPES, dt.date(2025, 1, 1))
    events = pd.read_parquet(out / "events.parquet").set_index("person_record_id")
    assert events["known_at"].to_dict() == {
        "A1": pd.Timestamp("2023-12-27"), "A2": pd.Timestamp("2024-04-07"), "A3": pd.Timestamp("2024-07-29"),
        "A4": pd.Timestamp("2024-12-27")}
    people = pd.read_parquet(out / "person_records.parquet").set_index("record_id")
    assert people.loc["A2", "birth_date"] is None or pd.isna(people.loc["A2", "birth_date"])
    assert json.loads((out / "coverage.json").read_text())["school"]["placeholder_birth_dates"] == 1


def test_cli_ingest_prints_the_reconciliation_and_writes_outputs(raw_borough_tiny: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from earlysignal.cli import app

    monkeypatch.chdir(REPO)
    small = tmp_path / "raw"
    shutil.copytree(raw_borough_tiny / "raw", small)
    result = CliRunner().invoke(app, ["ingest", "--raw", str(small), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "MISMATCH" not in result.output
    assert all(source in result.output for source in ("housing_repairs", "police", "school", "addressbase"))
    assert (tmp_path / "out" / "coverage.md").read_text().startswith("# Ingest coverage (extract date 2026-01-01)")


def test_a_recorded_date_without_time_makes_the_record_known_at_the_end_of_that_day(tmp_path: Path) -> None:
    mapping = yaml.safe_load((REPO / "conf" / "sources" / "police.yaml").read_text())
    raw = tmp_path / "raw" / "police"
    raw.mkdir(parents=True)
    (raw / "notifications.csv").write_text(
        "PoliceRef,IncidentDateTime,NotifiedDate,IncidentCategory,DASHRisk,Forename,Surname,DOB,Sex,Address,Postcode\n"
        "P1,03/02/2024 13:42,03/02/2024,DA,HIGH,ANN,LEE,01/01/1990,Female,1 HIGH ST,N1 1AA\n"
        "P2,03/02/2024 13:42,02/02/2024,DA,HIGH,ANN,LEE,01/01/1990,Female,1 HIGH ST,N1 1AA\n")
    path = tmp_path / "police.yaml"
    path.write_text(yaml.safe_dump(mapping))
    out = tmp_path / "out"
    ingest(tmp_path / "raw", out, [path], EVENT_VOCABULARY, OUTCOME_TYPES, dt.date(2025, 1, 1))
    events = pd.read_parquet(out / "events.parquet")
    assert events["known_at"].tolist() == [pd.Timestamp("2024-02-04")]
    q = pd.read_parquet(out / "quarantine" / "police.parquet")
    assert q[["PoliceRef", "reason"]].values.tolist() == [["P2", "known_at_before_event_time"]]


def test_ingest_loses_no_true_event_or_outcome_except_vague_repairs_and_restricted_contacts(
    ingested: Path, raw_borough_tiny: Path
) -> None:
    true_events = pd.read_parquet(raw_borough_tiny / "events.parquet").groupby(["source", "event_type"]).size()
    got = pd.read_parquet(ingested / "events.parquet")
    got = got[got["event_type"] != "sanctuary_works"].groupby(["source", "event_type"]).size()
    truth = pd.read_parquet(raw_borough_tiny / "ground_truth" / "raw_records.parquet")
    vague = pd.read_parquet(ingested / "quarantine" / "housing_repairs.parquet")["job_ref"]
    lost = truth[truth["record_id"].isin(vague)]["truth"].str.split("/", expand=True)
    expected = true_events.sub(lost.groupby([0, 1]).size().rename_axis(["source", "event_type"]), fill_value=0)
    expected.loc[("social_care", "contact")] -= int((truth["truth"] == "restricted").sum())
    assert got.to_dict() == expected.astype(int).to_dict()
    true_outcomes = pd.read_parquet(raw_borough_tiny / "outcomes.parquet")["outcome_type"].value_counts()
    got_outcomes = pd.read_parquet(ingested / "outcomes.parquet")["outcome_type"].value_counts()
    assert got_outcomes.to_dict() == true_outcomes.to_dict()


def test_an_unknown_code_the_mapping_excludes_is_counted_as_excluded_unmapped(tmp_path: Path) -> None:
    mapping = json.loads(json.dumps(MAPPING))
    mapping["extracts"][0]["unmapped"] = "exclude"
    out = _run(tmp_path, HEADER + "J1,1 High St,N1 1AA,03/02/2024,5,CP1,CP,x\nJ2,2 High St,N1 1AA,04/02/2024,5,ZZ9,EL,x\n",
               mapping)
    c = json.loads((out / "coverage.json").read_text())["housing_repairs"]
    assert (c["read"], c["mapped"], c["excluded"], c["quarantined"]) == (2, 1, 1, 0)
    assert c["excluded_by"] == {"unmapped": 1} and c["top_unmapped_codes"] == {"sor=ZZ9": 1}


def test_a_quarantined_row_names_its_file_and_the_column_of_the_check_it_failed(tmp_path: Path) -> None:
    mapping = json.loads(json.dumps(MAPPING))
    mapping["extracts"][0]["value"] = "cost"
    out = _run(tmp_path, HEADER.replace("\n", ",cost\n") + "\n".join([
        "J1,1 High St,N1 1AA,03/02/2024,5,CP1,CP,x,12.50",
        "J2,2 High St,N1 1AA,04/02/2024,5,CP1,CP,x,twelve",        # not a number
        "J3,3 High St,N1 1AA,31/02/2024,5,CP1,CP,x,1",             # no such day
        "J4,4 High St,N1 1AA,05/02/2024,5,QQ1,CP,x,1",             # unknown code
    ]) + "\n", mapping)
    q = pd.read_parquet(out / "quarantine" / "housing_repairs.parquet").set_index("job_ref")
    assert q["reason"].to_dict() == {
        "J2": "unparseable_value:cost",
        "J3": "unparseable_date:raised: '31/02/2024' does not match %d/%m/%Y (housing_repairs.yaml: extracts[jobs].time.format)",
        "J4": "unmapped_code:sor"}
    assert q["file"].tolist() == ["jobs.csv"] * 3
    assert q["row_number"].tolist() == [2, 3, 4]
    c = json.loads((out / "coverage.json").read_text())["housing_repairs"]
    assert c["quarantined_by"] == {
        "unmapped_code:sor": 1,
        "unparseable_date:raised: does not match %d/%m/%Y (housing_repairs.yaml: extracts[jobs].time.format)": 1,
        "unparseable_value:cost": 1}
    assert c["read"] == c["mapped"] + c["excluded"] + c["quarantined"] == 4


def test_a_date_quarantine_reason_names_the_expected_format_and_the_mapping_key_to_fix(tmp_path: Path) -> None:
    mapping = json.loads(json.dumps(MAPPING))
    mapping["extracts"][0]["known_at"] = {"rule": "column", "column": "logged", "format": "%Y-%m-%d"}
    mapping["extracts"][0]["end_time"] = {"column": "closed"}  # no format: ISO 8601
    out = _run(tmp_path, HEADER.replace("\n", ",logged,closed\n") + "\n".join([
        "J1,1 High St,N1 1AA,03/02/2024,5,CP1,CP,x,2024-02-03,2024-03-01",
        "J2,2 High St,N1 1AA,31/13/2024,5,CP1,CP,x,2024-02-03,",             # no 13th month
        "J3,3 High St,N1 1AA,04/02/2024,5,CP1,CP,x,04/02/2024,",             # recorded date in the wrong format
        "J4,4 High St,N1 1AA,04/02/2024,5,CP1,CP,x,2024-02-04,1st March",    # end time not ISO 8601
        "J5,5 High St,N1 1AA,05/02/2024,5,CP1,CP,x,2024-02-05,31/13/2024",   # both: the first check names it
    ]) + "\n", mapping)
    q = pd.read_parquet(out / "quarantine" / "housing_repairs.parquet").set_index("job_ref")
    assert q["reason"].to_dict() == {
        "J2": "unparseable_date:raised: '31/13/2024' does not match %d/%m/%Y (housing_repairs.yaml: extracts[jobs].time.format)",
        "J3": "unparseable_date:logged: '04/02/2024' does not match %Y-%m-%d (housing_repairs.yaml: extracts[jobs].known_at.format)",
        "J4": "unparseable_date:closed: '1st March' does not match ISO 8601 (housing_repairs.yaml: extracts[jobs].end_time.format)",
        "J5": "unparseable_date:closed: '31/13/2024' does not match ISO 8601 (housing_repairs.yaml: extracts[jobs].end_time.format)",
    }
    c = json.loads((out / "coverage.json").read_text())["housing_repairs"]
    # Counts are per reason and format, not per bad value.
    assert c["quarantined_by"] == {
        "unparseable_date:closed: does not match ISO 8601 (housing_repairs.yaml: extracts[jobs].end_time.format)": 2,
        "unparseable_date:logged: does not match %Y-%m-%d (housing_repairs.yaml: extracts[jobs].known_at.format)": 1,
        "unparseable_date:raised: does not match %d/%m/%Y (housing_repairs.yaml: extracts[jobs].time.format)": 1,
    }
    assert (c["read"], c["mapped"], c["quarantined"]) == (5, 1, 4)


def test_an_extract_whose_glob_matches_no_file_is_an_error_naming_the_extract_and_glob(tmp_path: Path) -> None:
    mapping = json.loads(json.dumps(MAPPING))
    mapping["extracts"][0]["glob"] = "repairs/jobs_2025*.csv"
    with pytest.raises(IngestError, match=r"extract 'jobs': no file in .* matches glob 'repairs/jobs_2025\*\.csv'"):
        _run(tmp_path, HEADER + "J1,1 High St,N1 1AA,03/02/2024,5,CP1,CP,x\n", mapping)


def test_unreadable_and_placeholder_birth_dates_become_null_and_are_counted_without_losing_the_row(tmp_path: Path) -> None:
    mapping = {
        "source": "council_tax", "version": "t1",
        "extracts": [{
            "name": "parties", "glob": "ct/*.csv", "record_id": "id",
            "person": {"first_name": "forename", "last_name": "surname", "postcode": "postcode",
                       "birth_date": {"column": "dob", "format": "%d/%m/%Y"}},
        }],
    }
    raw = tmp_path / "raw" / "ct"
    raw.mkdir(parents=True)
    (raw / "parties.csv").write_text("id,forename,surname,postcode,dob\nP1,Ann,Lee,N1 1AA,03/02/1980\n"
                                     "P2,Bob,Lee,N1 1AA,1980-02-03\nP3,Cat,Lee,N1 1AA,01/01/1900\nP4,Dan,Lee,N1 1AA,\n")
    path = tmp_path / "council_tax.yaml"
    path.write_text(yaml.safe_dump(mapping))
    ingest(tmp_path / "raw", tmp_path / "out", [path], EVENT_VOCABULARY, OUTCOME_TYPES, extract_date=dt.date(2025, 1, 1))
    people = pd.read_parquet(tmp_path / "out" / "person_records.parquet").set_index("record_id")
    assert sorted(people.index) == ["P1", "P2", "P3", "P4"]
    assert people["birth_date"].notna().to_dict() == {"P1": True, "P2": False, "P3": False, "P4": False}
    c = json.loads((tmp_path / "out" / "coverage.json").read_text())["council_tax"]
    assert (c["unparseable_birth_dates"], c["placeholder_birth_dates"]) == (1, 1)
    assert (c["read"], c["mapped"], c["excluded"], c["quarantined"]) == (4, 4, 0, 0)
