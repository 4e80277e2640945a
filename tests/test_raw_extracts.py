"""Raw departmental extracts of the synthetic borough (`synth --raw`): noise, confounders, ground truth."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pandas as pd
import pytest

from earlysignal.config import SynthSection
from earlysignal.synth import generate_borough
from earlysignal.synth import names as N
from earlysignal.synth.raw_extracts import write_raw_extracts

SETTINGS = SynthSection(residents=2500, years=4, seed=11)  # as the raw_borough_tiny fixture
CONTRACT_FILES = ("residents.parquet", "residency.parquet", "events.parquet", "outcomes.parquet", "manifest.json")


@pytest.fixture(scope="module")
def raw_borough(raw_borough_tiny: Path) -> Path:
    return raw_borough_tiny


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read(borough: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(borough / "raw" / name, dtype=str, keep_default_na=False)


def test_raw_extracts_are_byte_identical_for_the_same_seed_and_leave_contract_files_untouched(
    raw_borough: Path, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    generate_borough(plain, SETTINGS)
    assert not (plain / "raw").exists()
    for name in CONTRACT_FILES:
        assert _digest(plain / name) == _digest(raw_borough / name), name
    write_raw_extracts(plain, SETTINGS.seed)
    files = sorted(p.relative_to(raw_borough) for p in (raw_borough / "raw").rglob("*") if p.is_file())
    assert len(files) == 17  # 16 extracts + manifest.json
    for rel in files:
        assert _digest(plain / rel) == _digest(raw_borough / rel), rel


def test_ground_truth_maps_every_raw_record_to_its_person_or_address(raw_borough: Path) -> None:
    truth = pd.read_parquet(raw_borough / "ground_truth" / "raw_records.parquet")
    id_columns = {
        "school/attendance.csv": "AttendanceRecordID", "school/exclusions.csv": "ExclusionID",
        "police/notifications.csv": "PoliceRef", "social_care/contacts.csv": "contact_id",
        "social_care/episodes.csv": "episode_id", "early_help/contacts.csv": "ContactRef",
        "homelessness/approaches.csv": "CaseID", "homelessness/decisions.csv": "DecisionID",
        "council_tax/liable_parties.csv": "LIABLE_PARTY_ID", "council_tax/recovery.csv": "RECOVERY_ID",
        "benefits/claim_events.csv": "event_ref", "ae/ecds.csv": "AttendanceIdentifier",
        "fire/incidents.csv": "IncidentNumber", "asb/reports.csv": "CaseRef", "housing_repairs/jobs.csv": "job_ref",
    }
    residents = set(pd.read_parquet(raw_borough / "residents.parquet")["resident_id"])
    for file, column in id_columns.items():
        raw = _read(raw_borough, file)
        mine = truth[truth["file"] == file]
        assert len(raw) > 0, file
        assert sorted(raw[column]) == sorted(mine["record_id"]), file
        if file.split("/")[0] not in ("fire", "asb", "housing_repairs"):
            assert mine["resident_id"].isin(residents).all(), file
        else:
            assert mine["resident_id"].isna().all(), file
    # Every true event is behind exactly one raw record (cancelled duplicates carry no event).
    events = pd.read_parquet(raw_borough / "events.parquet")
    behind = truth["event_id"].dropna()
    assert not behind.duplicated().any()
    assert set(behind) == set(events["event_id"])


def test_raw_files_carry_no_true_resident_household_or_address_id(raw_borough: Path) -> None:
    pattern = re.compile(r"\b[RHA]\d{8}\b")
    for path in (raw_borough / "raw").rglob("*.csv"):
        assert not pattern.search(path.read_text(encoding="utf-8")), path


def test_names_and_dates_of_birth_carry_every_kind_of_noise(raw_borough: Path) -> None:
    truth = pd.read_parquet(raw_borough / "ground_truth" / "raw_records.parquet")
    who = pd.read_parquet(raw_borough / "ground_truth" / "identities.parquet").set_index("resident_id")
    police = _read(raw_borough, "police/notifications.csv").merge(
        truth[["record_id", "resident_id"]], left_on="PoliceRef", right_on="record_id")
    social = _read(raw_borough, "social_care/contacts.csv").merge(
        truth[["record_id", "resident_id"]], left_on="contact_id", right_on="record_id")
    benefits = _read(raw_borough, "benefits/claim_events.csv").merge(
        truth[["record_id", "resident_id"]], left_on="event_ref", right_on="record_id")
    rows = pd.concat([
        pd.DataFrame({"first": benefits["claimant_forename"], "last": benefits["claimant_surname"].str.upper(),
                      "dob": pd.to_datetime(benefits["claimant_dob"], format="%Y-%m-%d", errors="coerce"),
                      "resident_id": benefits["resident_id"]}),
        pd.DataFrame({"first": police["Forename"].str.title(), "last": police["Surname"].str.upper(),
                      "dob": pd.to_datetime(police["DOB"], format="%d/%m/%Y", errors="coerce"),
                      "resident_id": police["resident_id"]}),
        pd.DataFrame({"first": social["first_name"], "last": social["last_name"].str.upper(),
                      "dob": pd.to_datetime(social["date_of_birth"], format="%d/%m/%Y", errors="coerce"),
                      "resident_id": social["resident_id"]}),
    ], ignore_index=True)
    true = who.reindex(rows["resident_id"]).reset_index(drop=True)
    first, last = true["first_name"], true["last_name"].str.upper()
    kinds = {
        "nickname": [r in N.NICKNAMES.get(t, ()) for r, t in zip(rows["first"], first, strict=True)],
        "spelling": [r in N.SPELLINGS.get(t, ()) for r, t in zip(rows["first"], first, strict=True)],
        "swapped": (rows["first"].str.upper() == last) & (rows["last"] == first.str.upper()),
        "married_name": (true["maiden_name"].str.upper() == rows["last"]) & (true["maiden_name"] != ""),
        "typo": [_one_edit(r.upper(), t.upper()) for r, t in zip(rows["first"], first, strict=True)],
        "placeholder_dob": rows["dob"] == pd.Timestamp("1900-01-01"),
    }
    tdob = pd.to_datetime(true["birth_date"])
    kinds["day_month_swap"] = (rows["dob"].dt.day == tdob.dt.month) & (rows["dob"].dt.month == tdob.dt.day) & (
        tdob.dt.day != tdob.dt.month)
    kinds["dob_typo"] = rows["dob"].notna() & (rows["dob"] != tdob) & ~kinds["day_month_swap"] & ~kinds[
        "placeholder_dob"]
    for kind, hit in kinds.items():
        assert sum(bool(h) for h in hit) >= 1, f"no {kind} in police, social care and benefits records"
    exact = (rows["first"].str.upper() == first.str.upper()) & (rows["last"] == last) & (rows["dob"] == tdob)
    assert 0.5 < exact.mean() < 0.97


def _one_edit(a: str, b: str) -> bool:
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = sorted((a, b), key=len)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def test_addresses_vary_by_system_with_uprns_only_where_the_system_has_them(raw_borough: Path) -> None:
    police = _read(raw_borough, "police/notifications.csv")
    ctax = _read(raw_borough, "council_tax/liable_parties.csv")
    jobs = _read(raw_borough, "housing_repairs/jobs.csv")
    gazetteer = _read(raw_borough, "addressbase/addressbase.csv")
    assert "UPRN" not in police.columns and "uprn" not in police.columns
    assert (police["Postcode"] == "").mean() > 0.05
    assert set(ctax["UPRN"]) <= set(gazetteer["UPRN"])
    assert 0.05 < (jobs["uprn"] == "").mean() < 0.25
    # The same flat is written "Flat 3, X House" in one record and "3 X House" in another.
    school = _read(raw_borough, "school/attendance.csv")["AddressLine1"]
    blocks = "|".join(N.BLOCK_TYPES)
    assert school.str.match(rf"^Flat \d+, \w+ ({blocks}), ").any()
    assert school.str.match(rf"^\d+ \w+ ({blocks}), ").any()
    assert school.str.match(r"^Flat [ABC], \d+ ").any() and school.str.match(r"^\d+[ABC] ").any()
    assert jobs["address"].str.match(rf"^\d+,? \w+ ({blocks}), ").any()
    assert set(gazetteer["HOUSING_STOCK_TENURE"]) == {"COUNCIL", "HOUSING ASSOCIATION", ""}


def test_repairs_hold_the_confounders_a_council_has(raw_borough: Path) -> None:
    truth = pd.read_parquet(raw_borough / "ground_truth" / "raw_records.parquet")
    jobs = _read(raw_borough, "housing_repairs/jobs.csv").merge(
        truth[["record_id", "truth"]], left_on="job_ref", right_on="record_id")
    by = jobs.groupby("truth")
    assert {"sanctuary_works", "void", "planned", "communal_door_entry", "cancelled"} <= set(by.groups)
    assert set(jobs.loc[jobs["truth"] == "void", "priority"]) == {"V15", "V30"}
    assert set(jobs.loc[jobs["truth"] == "planned", "priority"]) == {"9"}
    assert set(jobs.loc[jobs["trade_code"] == "DE", "truth"]) == {"communal_door_entry"}
    assert set(jobs.loc[jobs["truth"] == "cancelled", "status"]) == {"CANCELLED"}
    # Sanctuary works follow a police domestic incident at the same home.
    sanctuary = truth[truth["truth"] == "sanctuary_works"]
    events = pd.read_parquet(raw_borough / "events.parquet")
    da = events[events["event_type"] == "domestic_incident"]
    assert sanctuary["address_id"].isin(set(da["address_id"])).all()
    # Free text varies in case and wording for the same true type.
    doors = jobs[jobs["truth"] == "housing_repairs/door_replacement"]["description"]
    assert doors.nunique() >= 5


def test_cli_synth_raw_writes_the_raw_extracts(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from earlysignal.cli import app

    result = CliRunner().invoke(app, ["synth", "--residents", "400", "--years", "2", "--out", str(tmp_path), "--raw"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "raw" / "housing_repairs" / "jobs.csv").exists()
    assert (tmp_path / "ground_truth" / "raw_records.parquet").exists()
    assert "Raw extracts in" in result.output
