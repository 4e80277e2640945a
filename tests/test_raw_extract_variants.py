"""What a real council's extracts do differently from the synthetic ones: accented names, rule names
carried to the linked events, encodings (docs/ingest-and-link.md)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from link_fixtures import LINKAGE_CONFIG, write_ingested

from earlysignal.config import config_from_dict
from earlysignal.windows import WindowLength
from earlysignal.contract import validate_directory
from earlysignal.dictionary import load_dictionary, packaged_dictionary_path
from earlysignal.errors import ConfigError
from earlysignal.ingest import IngestError, ingest
from earlysignal.linkage.people import standardise
from earlysignal.linkage.run import run_link


def _records(first: list[str], last: list[str]) -> pd.DataFrame:
    n = len(first)
    return pd.DataFrame({
        "source": ["police"] * n, "record_id": [str(i) for i in range(n)], "source_person_id": [None] * n,
        "first_name": first, "middle_name": [None] * n, "last_name": last, "birth_date": ["2001-02-03"] * n,
        "sex": ["F"] * n, "postcode": ["N19 5DJ"] * n, "uprn": [None] * n,
    })


def test_accented_names_standardise_to_the_same_letters_as_their_unaccented_spelling() -> None:
    records = _records(["Zoë", "José", "Chloé", "Łukasz", "Søren"], ["Brontë", "Núñez", "O'Brien", "Straße", "Œuvray"])
    out = standardise(records, {"F": "F"})
    assert out["first_name"].tolist() == ["zoe", "jose", "chloe", "lukasz", "soren"]
    assert out["last_name"].tolist() == ["bronte", "nunez", "obrien", "strasse", "oeuvray"]
    assert out["full_name"].tolist()[0] == "zoe bronte"


def test_linked_events_keep_the_rule_or_code_list_entry_that_coded_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EARLYSIGNAL_LINK_SECRET", "test-secret-" + "0123456789abcdef" * 2)
    write_ingested(tmp_path / "in", n_households=30)
    events = pd.read_parquet(tmp_path / "in" / "events.parquet")
    # One rule name per source, as ingest writes them (e.g. text_front_door_forced for a repair).
    events["coded_by"] = "rule_for_" + events["source"]
    events.to_parquet(tmp_path / "in" / "events.parquet", index=False)
    config = config_from_dict({"temporal": {"first_as_of": "2019-01-01", "last_as_of": "2025-10-01"},
                               "linkage": LINKAGE_CONFIG})
    run_link(tmp_path / "in", tmp_path / "out", config)
    linked = pd.read_parquet(tmp_path / "out" / "events.parquet")
    assert len(linked) > 0 and linked["coded_by"].notna().all()
    expected = events.set_index("event_id")["coded_by"]
    assert linked.set_index("event_id")["coded_by"].to_dict() == expected.loc[linked["event_id"]].to_dict()
    accepted = validate_directory(tmp_path / "out", config, write_quarantine=False)
    assert accepted.report.tables["events"].quarantined == 0
    assert sorted(accepted.events["coded_by"].astype(str).unique()) == sorted(linked["coded_by"].unique())


PARTIES = {
    "source": "council_tax", "version": "t1",
    "extracts": [{
        "name": "parties", "glob": "ct/*.csv", "record_id": "party", "encoding": "utf-8",
        "person": {"first_name": "forename", "last_name": "surname", "postcode": "postcode",
                   "seen_date": {"column": "from", "format": "%d/%m/%Y"}},
    }],
}


def _ingest_parties(tmp_path: Path, content: bytes, mapping: dict = PARTIES) -> Path:
    (tmp_path / "raw" / "ct").mkdir(parents=True)
    (tmp_path / "raw" / "ct" / "parties.csv").write_bytes(content)
    path = tmp_path / "council_tax.yaml"
    path.write_text(yaml.safe_dump(mapping), encoding="utf-8")
    dictionary = load_dictionary(packaged_dictionary_path())
    ingest(tmp_path / "raw", tmp_path / "out", [path], dictionary.event_types_by_source(),
           tuple(dictionary.outcomes), extract_date=dt.date(2025, 1, 1))
    return tmp_path / "out"


def test_person_only_extract_is_counted_as_mapped_without_coding_not_as_a_nameless_rule(tmp_path: Path) -> None:
    out = _ingest_parties(tmp_path, b"party,forename,surname,postcode,from\nP1,Ann,Lee,N1 1AA,01/02/2020\n"
                                    b"P2,Bo,Kay,N1 1AB,02/02/2020\nP3,Cy,Lo,N1 1AC,03/02/2020\n")
    coverage = json.loads((out / "coverage.json").read_text())["council_tax"]
    assert (coverage["read"], coverage["mapped"], coverage["mapped_not_coded"]) == (3, 3, 3)
    assert coverage["hits_per_rule"] == {}
    markdown = (out / "coverage.md").read_text()
    assert "``" not in markdown
    assert "**Mapped without coding** (person or address records only; the extract has no code list or rules): 3" in markdown


def test_a_file_in_another_encoding_names_the_line_a_person_can_open(tmp_path: Path) -> None:
    rows = [f"P{i},Ann,Lee,N1 1AA,01/02/2020\n" for i in range(5000)]
    rows[3210] = "P3210,Zoë,Brontë,N1 1AA,01/02/2020\n"
    content = ("party,forename,surname,postcode,from\n" + "".join(rows)).encode("cp1252")
    with pytest.raises(IngestError) as error:
        _ingest_parties(tmp_path, content)
    message = str(error.value)
    assert "parties.csv: cannot be read as utf-8" in message
    assert "on line 3,212 of the file: byte 0xEB at byte 9 of the line" in message and "Zo" not in message
    assert "council_tax.yaml (extract 'parties'), e.g. cp1252" in message
    cp1252 = {**PARTIES, "extracts": [{**PARTIES["extracts"][0], "encoding": "cp1252"}]}
    out = _ingest_parties(tmp_path / "again", content, cp1252)
    people = pd.read_parquet(out / "person_records.parquet").set_index("record_id")
    assert (people.loc["P3210", "first_name"], people.loc["P3210", "last_name"]) == ("Zoë", "Brontë")


def test_an_unknown_encoding_in_a_mapping_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    misspelt = {**PARTIES, "extracts": [{**PARTIES["extracts"][0], "encoding": "cp-1252"}]}
    with pytest.raises(ConfigError) as error:
        _ingest_parties(tmp_path, b"party,forename,surname,postcode,from\n", misspelt)
    message = str(error.value)
    assert "council_tax.yaml" in message and "extracts.0.encoding" in message
    assert "unknown encoding 'cp-1252'; use a Python codec name such as utf-8, utf-8-sig, cp1252 or latin-1" in message


def test_birth_dates_in_another_format_stop_ingest_naming_the_column_and_key_without_the_date(tmp_path: Path) -> None:
    dated = {**PARTIES, "extracts": [{**PARTIES["extracts"][0], "person": {
        **PARTIES["extracts"][0]["person"], "birth_date": {"column": "dob", "format": "%d/%m/%Y"}}}]}
    iso = (b"party,forename,surname,postcode,from,dob\nP1,Ann,Lee,N1 1AA,01/02/2020,1977-07-16\n"
           b"P2,Bo,Kay,N1 1AB,02/02/2020,\n")
    with pytest.raises(IngestError) as error:
        _ingest_parties(tmp_path, iso, dated)
    message = str(error.value)
    assert "parties.csv: column 'dob': no birth date matches date format '%d/%m/%Y' (values look like '9999-99-99')" in message
    assert "fix person.birth_date.format in" in message and "1977" not in message
    # Some unreadable birth dates among readable ones are the data's fault: nulled and counted, not an error.
    mixed = iso.replace(b"02/02/2020,\n", b"02/02/2020,16/07/1977\n")
    out = _ingest_parties(tmp_path / "mixed", mixed, dated)
    assert json.loads((out / "coverage.json").read_text())["council_tax"]["unparseable_birth_dates"] == 1


def test_the_journey_says_which_rule_coded_a_record_behind_a_reason() -> None:
    from journey_world import AS_OF, RESIDENT, world

    from earlysignal.journey import Reason, ReasonFeature, build_journey
    from earlysignal.report.journey import render_journey

    data = world()
    data.events["coded_by"] = pd.Series(pd.NA, index=data.events.index, dtype="string")
    data.events.loc[data.events["event_id"] == "E04", "coded_by"] = "text_front_door_forced"
    door = ReasonFeature(name="address__housing_repairs__door__count__365d", source="housing_repairs",
                         event_types=("door_replacement",), scope="address", window_length=WindowLength("d", 365),
                         aggregate="count")
    journey = build_journey(data, RESIDENT, AS_OF, [Reason(1, "2 door replacements at home in the last 12 months", door)])
    coded = {e["event_id"]: e["coded_by"] for e in journey["events"] if e["event_id"] in ("E01", "E04")}
    assert coded == {"E01": None, "E04": "text_front_door_forced"}
    context = {"score": None, "scored": 0, "unscored_reason": None, "model": "m version 1", "approval_checked": True,
               "access": {"viewer": "v", "time": "t", "seq": 1, "hash": "h"}, "access_log": "log", "scores_dir": "s",
               "generated": "2025-01-01T00:00:00"}
    page = render_journey(journey, context)
    assert page.count("coded by text_front_door_forced") == 1 and page.count('class="muted coded-by"') == 1


def test_cli_link_says_when_linkage_accuracy_was_not_measured_and_shows_a_clerical_review(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from earlysignal.cli import app

    monkeypatch.setenv("EARLYSIGNAL_LINK_SECRET", "test-secret-" + "0123456789abcdef" * 2)
    write_ingested(tmp_path / "in", n_households=30)
    temporal = {"first_as_of": "2019-01-01", "last_as_of": "2025-10-01"}
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump({"temporal": temporal, "linkage": {**LINKAGE_CONFIG, "ground_truth": None}}))
    result = CliRunner().invoke(app, ["link", "--ingested", str(tmp_path / "in"), "--out", str(tmp_path / "out1"),
                                      "--config", str(plain)])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert ("Linkage precision and recall not measured: no ground truth (--ground-truth, synthetic worlds) and no "
            "clerically reviewed pairs (linkage.clerical_review).") in output
    # A reviewer looked at two pairs of police and school records: one the same person, one not.
    truth = pd.read_parquet(tmp_path / "in" / "ground_truth" / "person_records.parquet")
    person = truth.columns[truth.columns.str.contains("person")][0]
    police, school = truth[truth["source"] == "police"], truth[truth["source"] == "school"]
    same = school[school[person] == police[person].iloc[0]].iloc[0]
    other = school[school[person] != police[person].iloc[0]].iloc[0]
    reviewed = pd.DataFrame({"source_l": ["police", "police"], "record_id_l": [police["record_id"].iloc[0]] * 2,
                             "source_r": ["school", "school"], "record_id_r": [same["record_id"], other["record_id"]],
                             "is_match": [True, False]})
    reviewed.to_csv(tmp_path / "reviewed.csv", index=False)
    clerical = tmp_path / "clerical.yaml"
    clerical.write_text(yaml.safe_dump({"temporal": temporal, "linkage": {
        **LINKAGE_CONFIG, "ground_truth": None, "clerical_review": str(tmp_path / "reviewed.csv")}}))
    result = CliRunner().invoke(app, ["link", "--ingested", str(tmp_path / "in"), "--out", str(tmp_path / "out2"),
                                      "--config", str(clerical)])
    assert result.exit_code == 0, result.output
    quality = json.loads((tmp_path / "out2" / "link_quality.json").read_text())["clerical_review"]
    output = " ".join(result.output.split())
    assert (f"Against 2 clerically reviewed pairs: precision {quality['precision']}, recall {quality['recall']}, "
            f"F1 {quality['f1']}.") in output
    assert "not measured" not in output
