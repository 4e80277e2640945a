"""Planted disagreements on sex, NHS number and UPN in the raw extracts (synth/identity_noise.py).

They come from a random stream of their own: with every rate at zero the raw extracts are exactly those
written before they existed, and with the default rates only the flagged records' sex, title, NHS-number
and UPN cells differ. Ground truth flags each changed record and keeps the true values.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from earlysignal.config import SynthSection
from earlysignal.synth import generate_borough
from earlysignal.synth.identity_noise import DisagreementRates
from earlysignal.synth.raw_extracts import write_raw_extracts

SETTINGS = SynthSection(residents=1500, years=3, seed=5)
CONTRACT_FILES = ("residents.parquet", "residency.parquet", "events.parquet", "outcomes.parquet", "manifest.json")
# Raw file -> (record ID column, {column: the field it records}).
TOUCHED = {
    "school/attendance.csv": ("AttendanceRecordID", {"Gender": "sex", "UPN": "upn"}),
    "school/exclusions.csv": ("ExclusionID", {"Gender": "sex", "UPN": "upn"}),
    "police/notifications.csv": ("PoliceRef", {"Sex": "sex"}),
    "social_care/contacts.csv": ("contact_id", {"gender": "sex", "nhs_number": "nhs_number", "upn": "upn"}),
    "social_care/episodes.csv": ("episode_id", {"gender": "sex", "nhs_number": "nhs_number"}),
    "council_tax/liable_parties.csv": ("LIABLE_PARTY_ID", {"TITLE": "sex"}),
    "ae/ecds.csv": ("AttendanceIdentifier", {"PersonStatedGenderCode": "sex", "NHSNumber": "nhs_number"}),
}
SEX_CODES = {"Female": "F", "Male": "M", "1": "M", "2": "F", "MR": "M", "MS": "F", "MRS": "F", "MISS": "F"}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _csv(borough: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(borough / "raw" / name, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small borough, its raw extracts written without and with planted disagreements."""
    root = tmp_path_factory.mktemp("identity_noise")
    out = {}
    for name, rates in (("none", DisagreementRates.none()), ("planted", None)):
        generate_borough(root / name, SETTINGS)
        write_raw_extracts(root / name, SETTINGS.seed, rates)
        out[name] = root / name
    return out


def test_planting_leaves_the_borough_tables_and_every_untouched_raw_file_byte_identical(pair: dict[str, Path]) -> None:
    for name in CONTRACT_FILES:
        assert _digest(pair["none"] / name) == _digest(pair["planted"] / name), name
    files = sorted(p.relative_to(pair["none"]) for p in (pair["none"] / "raw").rglob("*.csv"))
    for rel in files:
        if str(rel.relative_to("raw")) not in TOUCHED:
            assert _digest(pair["none"] / rel) == _digest(pair["planted"] / rel), rel


def test_planting_changes_only_the_flagged_records_fields_and_ground_truth_flags_each(pair: dict[str, Path]) -> None:
    truth = pd.read_parquet(pair["planted"] / "ground_truth" / "raw_records.parquet")
    plain_truth = pd.read_parquet(pair["none"] / "ground_truth" / "raw_records.parquet")
    # Ground truth is the same record -> person mapping; only the flag column is filled.
    pd.testing.assert_frame_equal(truth.drop(columns="planted_disagreement"),
                                  plain_truth.drop(columns="planted_disagreement"))
    assert plain_truth["planted_disagreement"].isna().all()
    flagged = truth.dropna(subset=["planted_disagreement"]).set_index(["file", "record_id"])["planted_disagreement"]
    seen = set()
    for name, (id_column, columns) in TOUCHED.items():
        before, after = _csv(pair["none"], name), _csv(pair["planted"], name)
        assert list(before.columns) == list(after.columns) and len(before) == len(after)
        untouched = [c for c in before.columns if c not in columns]
        pd.testing.assert_frame_equal(before[untouched], after[untouched])
        fields_of = after[id_column].map(lambda r, name=name: flagged.get((name, r), ""))
        for column, field in columns.items():
            differs = (before[column] != after[column]).to_numpy()
            planted = fields_of.str.split(";").map(lambda f, field=field: field in f).to_numpy()
            if field == "sex" and column == "TITLE":
                # The title follows the recorded sex: it differs in sex exactly where sex was planted.
                differs = (before[column].map(SEX_CODES) != after[column].map(SEX_CODES)).to_numpy()
            assert (differs == planted).all(), (name, column)
            seen |= {field} if planted.any() else set()
    assert seen == {"sex", "nhs_number", "upn"}


def test_flagged_values_differ_from_the_true_identity_and_others_equal_it(raw_borough_tiny: Path) -> None:
    truth = pd.read_parquet(raw_borough_tiny / "ground_truth" / "raw_records.parquet")
    who = pd.read_parquet(raw_borough_tiny / "ground_truth" / "identities.parquet").set_index("resident_id")
    ae = _csv(raw_borough_tiny, "ae/ecds.csv").merge(
        truth[truth["file"] == "ae/ecds.csv"], left_on="AttendanceIdentifier", right_on="record_id")
    keyed = ae[ae["NHSNumber"] != ""]
    true_number = who.loc[keyed["resident_id"], "nhs_number"].to_numpy()
    wrong = keyed["planted_disagreement"].fillna("").str.contains("nhs_number").to_numpy()
    assert wrong.sum() > 0
    assert ((keyed["NHSNumber"].to_numpy() != true_number) == wrong).all()
    school = _csv(raw_borough_tiny, "school/attendance.csv").merge(
        truth[truth["file"] == "school/attendance.csv"], left_on="AttendanceRecordID", right_on="record_id")
    temporary = school["planted_disagreement"].fillna("").str.contains("upn").to_numpy()
    assert temporary.sum() > 0
    assert ((school["UPN"].to_numpy() != who.loc[school["resident_id"], "upn"].to_numpy()) == temporary).all()
    # A temporary UPN is the national format with a letter at the end (DfE).
    assert school.loc[temporary, "UPN"].str.fullmatch(r"[A-Z]\d{11}[A-Z]").all()
