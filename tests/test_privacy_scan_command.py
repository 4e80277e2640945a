"""`earlysignal privacy-scan`: a borough's own check that nothing after `link` holds a raw identifier
(docs/ingest-and-link.md, "Privacy boundary")."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from earlysignal.cli import app
from earlysignal.privacy_scan import scan_outputs


@pytest.fixture
def ingested(tmp_path: Path) -> Path:
    """An ingest output with two people (one with an accented forename) and one address."""
    out = tmp_path / "ingested"
    out.mkdir()
    pd.DataFrame({
        "source": ["police", "school"], "record_id": ["P1", "S1"], "source_person_id": [None, "PUPIL778812"],
        "first_name": ["Chloé", "Oswaldo"], "middle_name": [None, None], "last_name": ["Quennevais", "Brightwater"],
        "birth_date": [dt.date(1981, 4, 23), dt.date(2012, 9, 2)], "postcode": ["N19 5DJ", "N19 5DJ"],
        "address_text": ["22 Highgate Court, Woodland Crescent", None], "uprn": [None, "5000032756"],
        "nhs_number": ["9434765919", None], "upn": [None, "A123456789012"],
    }).to_parquet(out / "person_records.parquet")
    pd.DataFrame({"source": ["housing_repairs"], "record_id": ["J1"], "address_text": ["22 Highgate Court"],
                  "postcode": ["N19 5DJ"], "uprn": ["5000032756"], "property_ref": ["PR1"]}).to_parquet(
        out / "address_records.parquet")
    pd.DataFrame({"uprn": ["5000032756"], "parent_uprn": [None], "address_text": ["22 Highgate Court, Woodland Crescent"],
                  "postcode": ["N19 5DJ"], "classification": ["RD06"], "tenure": ["council"]}).to_parquet(
        out / "gazetteer.parquet")
    (out / "manifest.json").write_text(json.dumps({"data_start": {"police": "2016-01-04", "school": "2017-09-01"}}))
    return out


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    """Clean outputs: a contract table holding a birth date by design, a report, a log."""
    out = tmp_path / "after"
    (out / "linked").mkdir(parents=True)
    (out / "linked" / "manifest.json").write_text("{}")
    pd.DataFrame({"resident_id": ["R1"], "birth_date": [pd.Timestamp("1981-04-23")]}).to_parquet(
        out / "linked" / "residents.parquet")
    (out / "report.html").write_text("<p>Resident R1: 2 door replacements at home since 2024-01-02</p>", encoding="utf-8")
    (out / "train.log").write_text("registered version 1\n")
    return out


def test_clean_outputs_pass_and_the_contract_tables_may_hold_birth_dates(ingested: Path, outputs: Path) -> None:
    result = CliRunner().invoke(app, ["privacy-scan", "--ingested", str(ingested), str(outputs)])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "Scanned 4 file(s)" in output and "(dates of birth before 2016-01-04): no identifier found." in output


@pytest.mark.parametrize(("planted", "kind", "values"), [
    ("Chloé", "name", 1), ("oswaldo brightwater", "name", 3),  # two single names and the full name
    ("born 23/04/1981", "date_of_birth", 1), ("9434765919", "nhs_number", 1), ("A123456789012", "upn", 1),
    ("at 22 Highgate Court", "address", 1), ("N19 5DJ", "postcode", 1), ("PUPIL778812", "system_person_id", 1),
])
def test_a_planted_identifier_fails_the_scan_naming_file_and_kind_but_not_the_value(
    ingested: Path, outputs: Path, planted: str, kind: str, values: int
) -> None:
    report = outputs / "report.html"
    report.write_text(report.read_text(encoding="utf-8") + f"<p>{planted}</p>", encoding="utf-8")
    result = CliRunner().invoke(app, ["privacy-scan", "--ingested", str(ingested), str(outputs)])
    assert result.exit_code == 1, result.output
    assert f"report.html: {values} {kind} value(s)" in " ".join(result.output.split())
    assert planted.lower() not in result.output.lower().replace("scanned", "")
    assert "identifiers found." in result.output


def test_a_birth_date_outside_the_contract_tables_is_found_and_files_inside_ingested_are_skipped(
    ingested: Path, outputs: Path
) -> None:
    pd.DataFrame({"note": ["1981-04-23"]}).to_parquet(outputs / "features.parquet")
    (ingested / "copy.csv").write_text("Chloé,Quennevais,23/04/1981\n", encoding="utf-8")
    scan = scan_outputs(ingested, [outputs, ingested])
    assert [(f.path.name, f.kind, f.values) for f in scan.findings] == [("features.parquet", "date_of_birth", ("1981-04-23",))]
    assert scan.born_before == dt.date(2016, 1, 4) and len(scan.files) == 5


def test_without_the_ingest_output_the_scan_says_which_folder_it_needs(tmp_path: Path, outputs: Path) -> None:
    result = CliRunner().invoke(app, ["privacy-scan", "--ingested", str(tmp_path / "nowhere"), str(outputs)])
    assert result.exit_code == 2
    assert "person_records.parquet, address_records.parquet, gazetteer.parquet missing; --ingested must be the folder" in " ".join(result.output.split())
