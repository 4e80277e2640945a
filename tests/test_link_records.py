"""Person records collapsed into groups of repeats for linkage, with per-record outputs kept exact."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from earlysignal.errors import ContractError
from earlysignal.linkage import quality as qual
from earlysignal.linkage.records import RecordStore


def _records(path: Path, rows: list[dict]) -> Path:
    base = {"source": "school", "record_id": None, "source_person_id": "U1", "first_name": "Amy", "middle_name": None,
            "last_name": "Ray", "birth_date": dt.date(2012, 5, 1), "sex": "F", "postcode": "N1 1AA",
            "address_text": "1 High St", "uprn": None, "nhs_number": None, "upn": "U1", "seen_date": None,
            "seen_until": None, "attr_ethnicity": "WBRI"}
    frame = pd.DataFrame([{**base, **row} for row in rows])
    for column in ("birth_date", "seen_date", "seen_until"):
        frame[column] = pd.to_datetime(frame[column]).dt.date.astype("date32[pyarrow]")
    for column in frame.columns:
        if column not in ("birth_date", "seen_date", "seen_until"):
            frame[column] = frame[column].astype("string")
    frame.to_parquet(path, index=False)
    return path


@pytest.fixture
def store(tmp_path: Path):
    path = _records(tmp_path / "person_records.parquet", [
        {"record_id": "A3", "seen_date": dt.date(2024, 3, 1)},
        {"record_id": "A1", "seen_date": dt.date(2024, 1, 1)},
        {"record_id": "A2", "seen_date": dt.date(2024, 2, 1), "first_name": "Aimee"},  # a variant between repeats
        {"record_id": "A4", "seen_date": dt.date(2024, 4, 1)},
        {"record_id": "A5", "seen_date": dt.date(2024, 4, 1), "address_text": "9 Low Rd"},
        {"record_id": "B1", "source": "ae", "seen_date": dt.date(2024, 2, 9), "source_person_id": None},
    ])
    with RecordStore(path, "500MB") as opened:
        yield opened


def test_records_identical_in_every_person_field_become_one_row_kept_by_smallest_record_id(store) -> None:
    kept = store.kept.set_index("record_id")
    # A1, A3, A4 repeat each other (A2 differs in the first name, A5 in the address): one row, kept as A1.
    assert sorted(kept.index) == ["A1", "A2", "A5", "B1"]
    assert kept.loc["A1", "n_records"] == 3
    assert (kept.loc["A1", "first_seen"], kept.loc["A1", "last_seen"]) == (pd.Timestamp("2024-01-01"), pd.Timestamp("2024-04-01"))
    assert kept.loc[["A2", "A5", "B1"], "n_records"].tolist() == [1, 1, 1]
    # File order of each group's first record: A3 (group A1) came first.
    assert store.kept["record_id"].tolist() == ["A1", "A2", "A5", "B1"]
    assert store.records == 6


def test_every_record_keeps_its_own_dated_observation_for_residency(store) -> None:
    rows = len(store.kept)
    resident = np.zeros(rows, dtype=np.int64)  # one resident
    address = np.where(store.kept["record_id"].to_numpy() == "A5", 1, 0)
    daily = store.daily_observations(resident, address).sort_values(["seen_date", "address_id"]).reset_index(drop=True)
    assert daily["seen_date"].dt.strftime("%Y-%m-%d").tolist() == [
        "2024-01-01", "2024-02-01", "2024-02-09", "2024-03-01", "2024-04-01", "2024-04-01"]
    assert daily["address_id"].tolist() == [0, 0, 0, 0, 0, 1]
    assert daily["n"].tolist() == [1, 1, 1, 1, 1, 1]


def test_a_record_of_an_ongoing_source_without_an_end_is_evidence_up_to_the_extract_date(tmp_path: Path) -> None:
    path = _records(tmp_path / "person_records.parquet", [
        {"record_id": "C1", "source": "council_tax", "seen_date": dt.date(2019, 4, 1)},                  # liability open
        {"record_id": "C2", "source": "council_tax", "seen_date": dt.date(2018, 4, 1), "address_text": "2 Low Rd",
         "seen_until": dt.date(2019, 3, 31)},                                                             # liability ended
        {"record_id": "S1", "seen_date": dt.date(2020, 1, 1), "address_text": "3 Mid Rd"},                # a school record
    ])
    with RecordStore(path, "500MB") as store:
        codes = np.arange(len(store.kept), dtype=np.int64)
        daily = store.daily_observations(np.zeros(len(codes), dtype=np.int64), codes, ("council_tax",),
                                         dt.date(2026, 1, 1))
    until = dict(zip(store.kept["record_id"].to_numpy()[daily["address_id"]], daily["until"]))
    assert until["C1"] == pd.Timestamp("2026-01-01")
    assert until["C2"] == pd.Timestamp("2019-03-31")
    assert pd.isna(until["S1"])


def test_person_links_hold_one_row_per_record_in_file_order(store, tmp_path: Path) -> None:
    # Group A1 (A1, A3, A4) was joined to its resident on 15 Feb 2024; the others as soon as they were known.
    linked = np.array(["2024-02-15", "NaT", "NaT", "NaT"], dtype="datetime64[D]")
    per_kept = pd.DataFrame({"resident_id": ["R1", "R1", "R2", "R3"], "match_probability": [1.0, 0.9, np.nan, np.nan],
                             "cluster_change": ["new"] * 4, "linked": linked})
    assert store.write_person_links(per_kept, "run1", tmp_path / "person_links.parquet") == 6
    links = pd.read_parquet(tmp_path / "person_links.parquet")
    assert links["record_id"].tolist() == ["A3", "A1", "A2", "A4", "A5", "B1"]
    assert links["resident_id"].tolist() == ["R1", "R1", "R1", "R1", "R2", "R3"]
    assert links["link_run_id"].unique().tolist() == ["run1"]
    # Each record's linked_at: the later of its own known day (its seen date here) and its group's linked day.
    assert pd.to_datetime(links["linked_at"]).dt.strftime("%Y-%m-%d").tolist() == [
        "2024-03-01", "2024-02-15", "2024-02-01", "2024-04-01", "2024-04-01", "2024-02-09"]
    assert store.kept.set_index("record_id").loc["A1", "first_known"] == pd.Timestamp("2024-01-01")


def test_a_repeated_record_id_is_refused(tmp_path: Path) -> None:
    path = _records(tmp_path / "person_records.parquet", [{"record_id": "A1"}, {"record_id": "A1", "first_name": "X"}])
    with pytest.raises(ContractError, match="1 rows repeat a \\(source, record_id\\)"):
        RecordStore(path, "500MB")


def test_pairwise_accuracy_from_counts_equals_accuracy_over_the_records_they_stand_for() -> None:
    predicted = pd.Series([1, 1, 1, 2, 2, 3])
    truth = pd.Series(["a", "a", "b", "b", "b", "c"])
    counts = pd.DataFrame({"c": predicted, "t": truth, "n": 1}).groupby(["c", "t"], as_index=False)["n"].sum()
    assert qual.pairwise_accuracy_counted(counts) == qual.pairwise_accuracy(predicted, truth)


def test_unlinked_rates_count_each_row_as_the_records_it_stands_for() -> None:
    unlinked = pd.Series([True, False, False])
    groups = pd.Series(["F", "F", "M"])
    rows = {r["group"]: r for r in qual.suppressed_rates(unlinked, groups, min_cell=10, round_to=5,
                                                         weights=np.array([20, 30, 4]))}
    assert rows["F"] == {"group": "F", "records": 50, "unlinked": 20, "unlinked_rate": 0.4, "suppressed": False}
    assert rows["M"]["suppressed"] is True and rows["M"]["records"] is None


def test_the_spill_folder_holding_names_lives_in_the_ingested_folder_and_a_killed_runs_is_removed(tmp_path: Path) -> None:
    """DuckDB's spill holds names: it belongs beside the ingested records, not in a shared /tmp, and what a
    killed link left there is cleared by the next link."""
    from earlysignal.linkage.records import SPILL_PREFIX, remove_stale_spills

    path = _records(tmp_path / "person_records.parquet", [{"record_id": "A1", "seen_date": dt.date(2024, 1, 1)}])
    with RecordStore(path, "1GB") as opened:
        spills = [p for p in tmp_path.iterdir() if p.name.startswith(SPILL_PREFIX)]
        assert len(spills) == 1 and spills[0].is_dir()
        assert opened.con.execute("select current_setting('temp_directory')").fetchone()[0] == str(spills[0])
    assert [p for p in tmp_path.iterdir() if p.name.startswith(SPILL_PREFIX)] == []
    (tmp_path / f"{SPILL_PREFIX}killed" / "duckdb_temp_storage").mkdir(parents=True)
    (tmp_path / f"{SPILL_PREFIX}killed" / "duckdb_temp_storage" / "block.tmp").write_text("Amy Ray")
    assert remove_stale_spills(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["person_records.parquet"]
