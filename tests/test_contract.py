"""The data contract: unusable files stop with a clear error; bad rows are quarantined with a reason; counts reconcile."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from contract_fixtures import clean_tables, manifest_for, to_arrow, write_borough
from earlysignal.cli import app
from earlysignal.config import ContractSection, load_config
from earlysignal.contract import LinkedData, load_linked_data, reconcile_counts
from earlysignal.errors import ContractError

REPO_CONFIG = Path(__file__).resolve().parents[1] / "conf" / "borough.yaml"


def _load(folder: Path, tables: dict[str, pd.DataFrame] | None = None, **kwargs) -> LinkedData:
    write_borough(folder, tables, **kwargs)
    return load_linked_data(folder)


def _quarantine(linked: LinkedData, table: str) -> pd.DataFrame:
    return pd.read_parquet(linked.report.quarantine_files[table])


def _assert_reconciled(linked: LinkedData) -> None:
    for name, counts in linked.report.tables.items():
        assert counts.read == counts.accepted + counts.quarantined, name
        assert len(getattr(linked, name)) == counts.accepted, name
        assert sum(linked.report.checks[name].values()) == counts.quarantined, name


def _refused(folder: Path) -> str:
    with pytest.raises(ContractError) as caught:
        load_linked_data(folder)
    return str(caught.value)


def _event(**overrides) -> dict:
    row = {
        "event_id": "E99",
        "resident_id": "R1",
        "address_id": "A1",
        "source": "police",
        "event_type": "callout",
        "event_time": dt.datetime(2022, 1, 1, 12),
        "known_at": dt.datetime(2022, 1, 2, 12),
        "value": None,
    }
    row.update(overrides)
    return row


def _with_events(*rows: dict) -> dict[str, pd.DataFrame]:
    tables = clean_tables()
    tables["events"] = pd.concat([tables["events"], pd.DataFrame(list(rows))], ignore_index=True)
    return tables


# --- clean data ----------------------------------------------------------------------------


def test_clean_borough_is_accepted_whole_with_contract_dtypes(tmp_path):
    linked = _load(tmp_path)
    report = linked.report
    assert report.total_quarantined == 0
    assert {n: c.read for n, c in report.tables.items()} == {"residents": 6, "residency": 7, "events": 12, "outcomes": 3}
    assert report.quarantine_files == {}
    assert not (tmp_path / "quarantine").exists()
    assert linked.extract_date == dt.date(2026, 1, 1)
    assert linked.manifest["row_counts"]["events"] == 12
    assert linked.events["event_id"].dtype == "str"
    assert linked.events["event_time"].dtype == "datetime64[us]"
    assert linked.residents["birth_date"].dtype == "datetime64[us]"
    assert linked.residency["end_date"].dtype == "datetime64[us]"
    assert linked.events["value"].dtype == "float64"
    assert linked.residents["disability"].dtype == "boolean"
    assert report.to_dict()["tables"]["events"] == {"read": 12, "accepted": 12, "quarantined": 0}
    assert report.warnings == ()


def test_row_dated_on_extract_date_itself_is_accepted(tmp_path):
    # E12 is known at 2026-01-01 08:00, the extract date: an extract taken that day holds it.
    linked = _load(tmp_path)
    assert "E12" in set(linked.events["event_id"])


def test_csv_input_gives_the_same_accepted_rows_as_parquet(tmp_path):
    from_parquet = _load(tmp_path / "parquet")
    from_csv = _load(tmp_path / "csv", fmt="csv")
    assert from_csv.report.files["events"].name == "events.csv"
    assert from_csv.report.total_quarantined == 0
    for name in ("residents", "residency", "events", "outcomes"):
        pd.testing.assert_frame_equal(getattr(from_csv, name), getattr(from_parquet, name), check_dtype=True)


def test_formats_can_be_mixed_table_by_table(tmp_path):
    write_borough(tmp_path)
    (tmp_path / "residents.parquet").unlink()
    clean_tables()["residents"].to_csv(tmp_path / "residents.csv", index=False)
    linked = load_linked_data(tmp_path)
    assert linked.report.files["residents"].name == "residents.csv"
    assert linked.report.files["events"].name == "events.parquet"
    assert linked.report.total_quarantined == 0


def test_csv_with_utf8_byte_order_mark_is_accepted_and_the_mark_stripped(tmp_path):
    write_borough(tmp_path, fmt="csv")
    path = tmp_path / "residents.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    linked = load_linked_data(tmp_path)
    assert list(linked.residents.columns)[0] == "resident_id"
    assert linked.report.tables["residents"].accepted == 6


def test_integer_ids_in_parquet_are_read_as_strings(tmp_path):
    tables = clean_tables()
    tables["residents"]["resident_id"] = ["1", "2", "3", "4", "5", "6"]
    tables["residency"]["resident_id"] = ["1", "2", "3", "4", "4", "5", "6"]
    tables["events"]["resident_id"] = tables["events"]["resident_id"].str.replace("R", "")
    tables["outcomes"]["resident_id"] = ["2", "3", "5"]
    write_borough(tmp_path, tables)
    table = pq.read_table(tmp_path / "outcomes.parquet")
    table = table.set_column(0, "resident_id", pa.array([2, 3, 5], pa.int64()))
    pq.write_table(table, tmp_path / "outcomes.parquet")
    linked = load_linked_data(tmp_path)
    assert linked.report.total_quarantined == 0
    assert list(linked.outcomes["resident_id"]) == ["2", "3", "5"]


def test_absent_optional_column_is_all_null_with_a_warning(tmp_path):
    tables = clean_tables()
    tables["events"] = tables["events"].drop(columns=["value"])
    linked = _load(tmp_path, tables)
    assert linked.events["value"].isna().all()
    assert linked.events["value"].dtype == "float64"
    assert any("optional column value is absent" in w for w in linked.report.warnings)


def test_manifest_row_count_mismatch_is_warned(tmp_path):
    tables = clean_tables()
    manifest = manifest_for(tables)
    manifest["row_counts"]["events"] = 13
    write_borough(tmp_path, tables, manifest=manifest)
    linked = load_linked_data(tmp_path)
    assert any("events has 13 rows but 12 were read" in w for w in linked.report.warnings)


# --- files that cannot be used stop with a ContractError -----------------------------------


def test_missing_table_is_refused_naming_both_accepted_file_names(tmp_path):
    write_borough(tmp_path)
    (tmp_path / "events.parquet").unlink()
    message = _refused(tmp_path)
    assert "table events is missing" in message
    assert "events.parquet or events.csv" in message


def test_table_present_as_both_parquet_and_csv_is_refused(tmp_path):
    write_borough(tmp_path)
    clean_tables()["residency"].to_csv(tmp_path / "residency.csv", index=False)
    message = _refused(tmp_path)
    assert "both residency.parquet and residency.csv exist" in message


def test_missing_required_column_is_refused_naming_file_column_and_expectation(tmp_path):
    tables = clean_tables()
    tables["events"] = tables["events"].drop(columns=["known_at"])
    write_borough(tmp_path, tables)
    message = _refused(tmp_path)
    assert "events.parquet" in message
    assert "required column known_at is missing" in message
    assert "expected a timestamp" in message


def test_unreadable_parquet_is_refused_naming_the_file(tmp_path):
    write_borough(tmp_path)
    (tmp_path / "residency.parquet").write_bytes(b"this is not parquet at all")
    message = _refused(tmp_path)
    assert "residency.parquet cannot be read as Parquet" in message


def test_zero_byte_file_is_refused_as_empty(tmp_path):
    write_borough(tmp_path, fmt="csv")
    (tmp_path / "events.csv").write_bytes(b"")
    message = _refused(tmp_path)
    assert "events.csv is empty" in message


def test_header_only_events_file_is_refused_but_empty_outcomes_are_allowed(tmp_path):
    tables = clean_tables()
    tables["outcomes"] = tables["outcomes"].iloc[0:0]
    linked = _load(tmp_path / "no_outcomes", tables)
    assert linked.report.tables["outcomes"].read == 0
    assert any("outcomes.parquet has no rows" in w for w in linked.report.warnings)

    tables = clean_tables()
    tables["events"] = tables["events"].iloc[0:0]
    write_borough(tmp_path / "no_events", tables, fmt="csv")
    message = _refused(tmp_path / "no_events")
    assert "events.csv has a header but no rows" in message


def test_column_of_uncoercible_type_is_refused_naming_file_column_and_expectation(tmp_path):
    write_borough(tmp_path)
    table = pq.read_table(tmp_path / "events.parquet")
    table = table.set_column(5, "event_time", pa.array([True] * table.num_rows))
    pq.write_table(table, tmp_path / "events.parquet")
    message = _refused(tmp_path)
    assert "events.parquet: column event_time has type bool" in message
    assert "a timestamp" in message


def test_csv_column_where_no_value_parses_is_refused(tmp_path):
    tables = clean_tables()
    tables["residents"]["birth_date"] = ["02/03/1985"] * 6
    write_borough(tmp_path, tables, fmt="csv")
    message = _refused(tmp_path)
    assert "residents.csv: column birth_date: none of its 6 values can be read as a date" in message
    # The format is shown, not the value: error messages must not carry dates of birth.
    assert "the first has the shape '99/99/9999'" in message
    assert "1985" not in message


def test_semicolon_delimited_csv_is_refused_naming_file_and_delimiter(tmp_path):
    write_borough(tmp_path, fmt="csv")
    clean_tables()["residency"].to_csv(tmp_path / "residency.csv", index=False, sep=";")
    message = _refused(tmp_path)
    assert "residency.csv uses semicolon (';') as its delimiter" in message
    assert "expected comma-separated" in message


def test_csv_row_with_wrong_number_of_fields_is_refused_naming_the_file(tmp_path):
    write_borough(tmp_path, fmt="csv")
    with open(tmp_path / "outcomes.csv", "a", encoding="utf-8") as handle:
        handle.write("R2,csc_referral,2023-02-01 12:00:00\n")
    message = _refused(tmp_path)
    assert "outcomes.csv cannot be read as CSV" in message
    assert "line 5 has 3 fields, expected 5" in message  # header + 3 outcomes, then the short row
    assert "csc_referral" not in message  # where, not what: rows can hold personal data


def test_csv_with_non_utf8_text_is_refused_naming_the_column(tmp_path):
    write_borough(tmp_path, fmt="csv")
    with open(tmp_path / "events.csv", "ab") as handle:
        handle.write("E13,R1,A1,council_tax,summons,2021-02-01 09:00:00,2021-02-01 09:00:00,\n".encode())
    path = tmp_path / "events.csv"
    path.write_bytes(path.read_bytes().replace(b"summons,2021-02-01 09", "summons\u00a3,2021-02-01 09".encode("cp1252"), 1))
    message = _refused(tmp_path)
    assert "events.csv: column event_type holds text that is not UTF-8" in message


def test_utf16_csv_is_refused_with_advice(tmp_path):
    write_borough(tmp_path, fmt="csv")
    path = tmp_path / "outcomes.csv"
    path.write_bytes(path.read_text(encoding="utf-8").encode("utf-16"))
    assert "outcomes.csv is UTF-16 encoded; save it as UTF-8" in _refused(tmp_path)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (None, "manifest.json is missing"),
        ("{not json", "manifest.json is not valid JSON"),
        (json.dumps({"sources": []}), "key extract_date is missing"),
        (json.dumps({"extract_date": "01/01/2026"}), "key extract_date must be a date written YYYY-MM-DD, e.g. 2021-01-01; got '01/01/2026'"),
        (json.dumps({"extract_date": "2026-01-01", "sources": "police"}), "key sources must be a list"),
    ],
)
def test_missing_or_invalid_manifest_is_refused(tmp_path, body, fragment):
    write_borough(tmp_path)
    if body is None:
        (tmp_path / "manifest.json").unlink()
    else:
        (tmp_path / "manifest.json").write_text(body, encoding="utf-8")
    assert fragment in _refused(tmp_path)


# --- bad rows are quarantined with a reason ------------------------------------------------


def test_event_known_before_it_happened_is_quarantined_with_its_original_columns(tmp_path):
    bad = _event(event_id="E99", event_time=dt.datetime(2022, 1, 5), known_at=dt.datetime(2022, 1, 4))
    linked = _load(tmp_path, _with_events(bad))
    _assert_reconciled(linked)
    assert linked.report.tables["events"].quarantined == 1
    assert linked.report.checks["events"] == {"known_at_before_event_time": 1}
    quarantined = _quarantine(linked, "events")
    assert list(quarantined.columns) == [*clean_tables()["events"].columns, "row_number", "reason"]
    assert quarantined.loc[0, "event_id"] == "E99"
    assert quarantined.loc[0, "row_number"] == 13
    assert quarantined.loc[0, "reason"] == "known_at_before_event_time"
    assert "E99" not in set(linked.events["event_id"])


def test_event_of_unknown_resident_is_quarantined(tmp_path):
    linked = _load(tmp_path, _with_events(_event(event_id="E99", resident_id="R404")))
    _assert_reconciled(linked)
    assert linked.report.checks["events"] == {"unknown_resident": 1}
    assert _quarantine(linked, "events").loc[0, "resident_id"] == "R404"


def test_event_at_address_in_no_residency_spell_is_quarantined(tmp_path):
    linked = _load(tmp_path, _with_events(_event(event_id="E99", resident_id=None, address_id="A404", source="fire", event_type="fire_callout")))
    _assert_reconciled(linked)
    assert linked.report.checks["events"] == {"unknown_address": 1}


def test_duplicate_event_ids_conflicting_lose_every_copy_identical_keep_the_first(tmp_path):
    tables = clean_tables()
    conflicting = _event(event_id="E01", value=7.0)  # E01 already exists, differently
    identical = tables["events"].iloc[1].to_dict()  # an exact copy of E02
    linked = _load(tmp_path, _with_events(conflicting, identical))
    _assert_reconciled(linked)
    assert linked.report.checks["events"] == {"duplicate_row": 1, "duplicate_event_id": 2}
    quarantined = _quarantine(linked, "events").sort_values("row_number")
    assert list(quarantined["event_id"]) == ["E01", "E01", "E02"]
    assert list(quarantined["row_number"]) == [1, 13, 14]
    assert list(quarantined["reason"]) == ["duplicate_event_id", "duplicate_event_id", "duplicate_row"]
    assert (linked.events["event_id"] == "E02").sum() == 1
    assert "E01" not in set(linked.events["event_id"])


def test_null_key_is_quarantined_with_the_column_named(tmp_path):
    tables = clean_tables()
    tables["outcomes"].loc[1, "resident_id"] = None
    linked = _load(tmp_path, tables)
    _assert_reconciled(linked)
    assert linked.report.checks["outcomes"] == {"null_key:resident_id": 1}
    assert _quarantine(linked, "outcomes").loc[0, "reason"] == "null_key:resident_id"


def test_event_with_neither_resident_nor_address_is_quarantined(tmp_path):
    linked = _load(tmp_path, _with_events(_event(resident_id=None, address_id=None)))
    assert linked.report.checks["events"] == {"missing_resident_and_address": 1}


def test_rows_dated_after_the_extract_date_are_quarantined(tmp_path):
    tables = _with_events(_event(event_id="E99", event_time=dt.datetime(2026, 1, 2), known_at=dt.datetime(2026, 1, 2)))
    tables["outcomes"].loc[0, ["outcome_time", "known_at"]] = [dt.datetime(2026, 1, 5), dt.datetime(2026, 2, 1)]
    tables["residency"].loc[6, ["start_date", "end_date"]] = [dt.date(2026, 3, 1), None]
    linked = _load(tmp_path, tables)
    _assert_reconciled(linked)
    assert linked.report.checks["events"] == {"after_extract_date": 1}
    assert linked.report.checks["outcomes"] == {"after_extract_date": 1}
    assert linked.report.checks["residency"] == {"after_extract_date": 1}


def test_rows_that_happened_before_the_extract_date_but_are_known_after_it_are_kept_and_counted(tmp_path):
    # A rule-derived known_at (a term's attendance, known a term in arrears) may fall after the extract
    # date; the record is real, so it is kept with its known_at and counted, never quarantined.
    tables = _with_events(_event(event_id="E99", event_time=dt.datetime(2025, 11, 1), known_at=dt.datetime(2026, 4, 7)))
    tables["outcomes"].loc[0, "known_at"] = dt.datetime(2026, 2, 1)
    linked = _load(tmp_path, tables)
    _assert_reconciled(linked)
    assert linked.report.total_quarantined == 0
    late = linked.events.set_index("event_id").loc["E99", "known_at"]
    assert late == pd.Timestamp("2026-04-07")
    assert (linked.outcomes["known_at"] == pd.Timestamp("2026-02-01")).sum() == 1
    assert "events.parquet: 1 row(s) known after the extract date 2026-01-01 (kept; used only at as-of dates " \
           "after their known_at)" in linked.report.warnings
    assert "outcomes.parquet: 1 row(s) known after the extract date 2026-01-01 (kept; used only at as-of dates " \
           "after their known_at)" in linked.report.warnings


def test_overlapping_residency_spells_of_one_resident_are_both_quarantined(tmp_path):
    tables = clean_tables()
    # R1 lives at A1 from 2015 (open); a second spell at A2 from 2018 to 2019 overlaps it.
    extra = {"resident_id": "R1", "household_id": "H2", "address_id": "A2", "start_date": dt.date(2018, 1, 1), "end_date": dt.date(2019, 1, 1), "tenure": "private_rented"}
    tables["residency"] = pd.concat([tables["residency"], pd.DataFrame([extra])], ignore_index=True)
    linked = _load(tmp_path, tables)
    _assert_reconciled(linked)
    assert linked.report.checks["residency"] == {"overlapping_residency": 2}
    quarantined = _quarantine(linked, "residency")
    assert set(quarantined["resident_id"]) == {"R1"}
    assert sorted(quarantined["address_id"]) == ["A1", "A2"]
    # R4's back-to-back spells (one ends the day the next starts) are kept.
    assert (linked.residency["resident_id"] == "R4").sum() == 2


def test_outcome_type_not_in_config_is_quarantined(tmp_path):
    tables = clean_tables()
    tables["outcomes"].loc[0, "outcome_type"] = "care_order"
    linked = _load(tmp_path, tables)
    assert linked.report.checks["outcomes"] == {"unknown_outcome_type": 1}
    # The list comes from config.contract.outcome_types.
    config = load_config(REPO_CONFIG)
    narrowed = config.model_copy(update={"contract": ContractSection(outcome_types=("child_protection_plan", "csc_referral", "s47_enquiry", "care_order"))})
    linked = load_linked_data(tmp_path, config=narrowed)
    assert linked.report.total_quarantined == 0


def test_negative_and_non_finite_values_are_quarantined(tmp_path):
    tables = _with_events(
        _event(event_id="E97", source="council_tax", event_type="summons", value=-10.0),
        _event(event_id="E98", source="council_tax", event_type="summons"),
        _event(event_id="E99", source="council_tax", event_type="summons", value=math.inf),
    )
    write_borough(tmp_path, tables)
    # NaN is not null in Parquet: write it explicitly (pandas would turn it into a null).
    events = pq.read_table(tmp_path / "events.parquet")
    values = events.column("value").to_pylist()
    values[13] = math.nan
    pq.write_table(events.set_column(7, "value", pa.array(values, pa.float64(), from_pandas=False)), tmp_path / "events.parquet")
    linked = load_linked_data(tmp_path)
    _assert_reconciled(linked)
    assert linked.report.checks["events"] == {"negative_value": 1, "non_finite_value": 2}


def test_unparseable_csv_date_is_quarantined_not_fatal(tmp_path):
    write_borough(tmp_path, fmt="csv")
    lines = (tmp_path / "events.csv").read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].replace("2022-05-06 23:10:00", "sometime in May")
    (tmp_path / "events.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    linked = load_linked_data(tmp_path)
    _assert_reconciled(linked)
    assert linked.report.checks["events"] == {"unparseable:event_time": 1}
    quarantined = _quarantine(linked, "events")
    # The original text is kept, so the council can find and fix the row.
    assert quarantined.loc[0, "event_time"] == "sometime in May"
    assert quarantined.loc[0, "row_number"] == 3


def test_row_failing_several_checks_is_quarantined_once_for_the_first_check(tmp_path):
    # Unknown resident AND known before it happened AND a negative value: value checks come first.
    bad = _event(event_id="E99", resident_id="R404", event_time=dt.datetime(2022, 1, 5), known_at=dt.datetime(2022, 1, 4), value=-1.0)
    linked = _load(tmp_path, _with_events(bad))
    _assert_reconciled(linked)
    assert linked.report.tables["events"].quarantined == 1
    assert linked.report.checks["events"] == {"negative_value": 1}


def test_conflicting_duplicate_resident_is_quarantined_with_all_their_rows(tmp_path):
    tables = clean_tables()
    copy = tables["residents"].iloc[[1]].assign(birth_date=dt.date(2011, 1, 1))  # R2 twice, two birth dates
    tables["residents"] = pd.concat([tables["residents"], copy], ignore_index=True)
    linked = _load(tmp_path, tables)
    _assert_reconciled(linked)
    assert linked.report.checks["residents"] == {"duplicate_resident_id": 2}
    assert linked.report.checks["residency"] == {"quarantined_resident": 1}
    assert linked.report.checks["events"] == {"quarantined_resident": 2}
    assert linked.report.checks["outcomes"] == {"quarantined_resident": 1}
    for name in ("residents", "residency", "events", "outcomes"):
        assert "R2" not in set(getattr(linked, name)["resident_id"].dropna()), name


def test_invalid_category_values_are_quarantined_naming_the_column(tmp_path):
    tables = clean_tables()
    tables["residents"].loc[0, "sex"] = "female"
    tables["residents"].loc[1, "ethnicity"] = "Martian"
    tables["residency"].loc[6, "tenure"] = "freehold"
    linked = _load(tmp_path, tables)
    _assert_reconciled(linked)
    assert linked.report.checks["residents"] == {"invalid_value:sex": 1, "invalid_value:ethnicity": 1}
    # R1 and R2 are gone, so their rows elsewhere are quarantined as of a quarantined resident.
    assert linked.report.checks["residency"] == {"invalid_value:tenure": 1, "quarantined_resident": 2}


def test_event_type_outside_the_vocabulary_is_quarantined(tmp_path):
    linked = _load(tmp_path, _with_events(_event(event_id="E98", event_type="burglary"), _event(event_id="E99", source="library", event_type="callout")))
    assert linked.report.checks["events"] == {"unknown_event_type": 2}


def test_spell_ending_on_or_before_its_start_is_quarantined(tmp_path):
    tables = clean_tables()
    tables["residency"].loc[3, "end_date"] = dt.date(2016, 4, 1)  # R4 at A2: starts and ends the same day
    linked = _load(tmp_path, tables)
    assert linked.report.checks["residency"] == {"end_not_after_start": 1}


def test_exact_duplicate_residency_row_keeps_the_first_copy(tmp_path):
    tables = clean_tables()
    tables["residency"] = pd.concat([tables["residency"], tables["residency"].iloc[[0]]], ignore_index=True)
    linked = _load(tmp_path, tables)
    _assert_reconciled(linked)
    assert linked.report.checks["residency"] == {"duplicate_row": 1}
    assert (linked.residency["resident_id"] == "R1").sum() == 1


# --- reconciliation and quarantine files ---------------------------------------------------


def test_reconciliation_raises_when_rows_go_missing():
    reconcile_counts("events", read=10, accepted=7, quarantined=3)
    with pytest.raises(RuntimeError, match="events: reconciliation failed: read 10 rows but accepted 7"):
        reconcile_counts("events", read=10, accepted=7, quarantined=2)


def test_stale_quarantine_file_is_removed_when_data_becomes_clean(tmp_path):
    linked = _load(tmp_path, _with_events(_event(resident_id="R404")))
    assert linked.report.quarantine_files["events"].exists()
    linked = _load(tmp_path)
    assert linked.report.quarantine_files == {}
    assert not (tmp_path / "quarantine" / "events.parquet").exists()


def test_no_quarantine_file_is_written_when_asked_not_to(tmp_path):
    write_borough(tmp_path, _with_events(_event(resident_id="R404")))
    linked = load_linked_data(tmp_path, write_quarantine=False)
    assert linked.report.tables["events"].quarantined == 1
    assert linked.report.quarantine_files == {}
    assert not (tmp_path / "quarantine").exists()


def test_quarantine_that_cannot_be_written_is_refused_with_advice(tmp_path):
    write_borough(tmp_path, _with_events(_event(resident_id="R404")))
    (tmp_path / "quarantine").write_text("a file where the quarantine folder should be", encoding="utf-8")
    message = _refused(tmp_path)
    assert "cannot write quarantine file" in message
    assert "events.parquet" in message


def test_validation_is_deterministic(tmp_path):
    tables = _with_events(_event(resident_id="R404"), _event(event_id="E01"))
    first = _load(tmp_path, tables)
    first_bytes = first.report.quarantine_files["events"].read_bytes()
    second = load_linked_data(tmp_path)
    assert second.report.to_dict() == first.report.to_dict()
    assert second.report.quarantine_files["events"].read_bytes() == first_bytes
    pd.testing.assert_frame_equal(second.events, first.events)


def test_every_check_is_documented_with_its_reason_code():
    from earlysignal.contract import CHECK_ORDER

    docs = (Path(__file__).resolve().parents[1] / "docs" / "data-contract.md").read_text(encoding="utf-8")
    for table, codes in CHECK_ORDER.items():
        for code in codes:
            assert f"`{code}`" in docs, (table, code)
    assert "`unparseable:<column>`" in docs


# --- command line --------------------------------------------------------------------------


def _config_allowing(tmp_path: Path, share: float) -> Path:
    """The repository config with contract.max_quarantine_share raised (one bad row in 13 is 7.7%)."""
    import yaml

    raw = yaml.safe_load(REPO_CONFIG.read_text(encoding="utf-8"))
    raw["dictionary"] = str((REPO_CONFIG.parent / raw["dictionary"]).resolve())
    raw["contract"]["max_quarantine_share"] = share
    path = tmp_path.parent / f"{tmp_path.name}-config.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_cli_validate_prints_counts_table_and_exits_zero_for_good_data(tmp_path):
    write_borough(tmp_path, _with_events(_event(resident_id="R404")))
    result = CliRunner().invoke(app, ["validate", str(tmp_path), "--config", str(_config_allowing(tmp_path, 0.1))])
    assert result.exit_code == 0, result.output
    assert "read" in result.output and "accepted" in result.output and "quarantined" in result.output
    assert "unknown_resident" in result.output
    assert "1 rows quarantined" in result.output


def test_cli_validate_all_checks_lists_checks_no_row_failed(tmp_path):
    write_borough(tmp_path)
    result = CliRunner().invoke(app, ["validate", str(tmp_path), "--all-checks", "--config", str(REPO_CONFIG)])
    assert result.exit_code == 0, result.output
    assert "overlapping_residency" in result.output
    assert "known_at_before_event_time" in result.output
    plain = CliRunner().invoke(app, ["validate", str(tmp_path), "--config", str(REPO_CONFIG)])
    assert "overlapping_residency" not in plain.output
    assert "all 11 checks passed" in plain.output  # residency


def test_cli_validate_strict_exits_one_when_rows_are_quarantined(tmp_path):
    write_borough(tmp_path, _with_events(_event(resident_id="R404")))
    result = CliRunner().invoke(app, ["validate", str(tmp_path), "--strict", "--config", str(_config_allowing(tmp_path, 0.1))])
    assert result.exit_code == 1


def test_cli_validate_exits_two_when_a_table_quarantines_more_than_the_limit(tmp_path):
    write_borough(tmp_path, _with_events(_event(resident_id="R404")))
    result = CliRunner().invoke(app, ["validate", str(tmp_path), "--config", str(REPO_CONFIG)])
    assert result.exit_code == 2
    assert "events: 1 of 13 rows (7.7%) quarantined, above the limit of 1.0%" in " ".join(result.output.split())


def test_cli_validate_refused_file_exits_two_with_message_and_no_traceback(tmp_path):
    write_borough(tmp_path, fmt="csv")
    clean_tables()["events"].to_csv(tmp_path / "events.csv", index=False, sep=";")
    result = CliRunner().invoke(app, ["validate", str(tmp_path), "--config", str(REPO_CONFIG)])
    assert result.exit_code == 2
    assert "events.csv uses semicolon" in result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, ContractError)  # handled: shown as a message, not raised


# --- property: the vectorised overlap rule equals the pairwise definition -------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from earlysignal.contract import _overlapping_spells  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 40), st.one_of(st.none(), st.integers(1, 30))),
        min_size=0,
        max_size=14,
    ),
    st.lists(st.booleans(), min_size=14, max_size=14),
)
def test_overlap_detection_matches_the_pairwise_definition(raw_spells, eligible):
    # Spells as (resident, start day, end day or None = open); end is exclusive.
    spells = [(r, s, None if length is None else s + length) for r, s, length in raw_spells]
    base = np.datetime64("2020-01-01", "us")
    day = np.timedelta64(1, "D")
    table = pa.table(
        {
            "resident_id": pa.array([f"R{r}" for r, _, _ in spells], pa.string()),
            "start_date": pa.array([base + s * day for _, s, _ in spells], pa.timestamp("us")),
            "end_date": pa.array([None if e is None else base + e * day for _, _, e in spells], pa.timestamp("us")),
        }
    )
    candidates = np.array(eligible[: len(spells)], dtype=bool)
    found = set(np.flatnonzero(_overlapping_spells(table, candidates)))

    def overlaps(i: int, j: int) -> bool:
        (ri, si, ei), (rj, sj, ej) = spells[i], spells[j]
        end_i, end_j = (10**9 if ei is None else ei), (10**9 if ej is None else ej)
        return ri == rj and si < end_j and sj < end_i

    pool = [i for i in range(len(spells)) if candidates[i]]
    expected = {i for i in pool if any(overlaps(i, j) for j in pool if j != i)}
    assert found == expected


from earlysignal.contract import _flag_duplicates, _Reasons  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["E1", "E2", "E3", None]), st.sampled_from([1.0, 2.0, None])), max_size=12))
def test_duplicate_rule_keeps_first_of_identical_copies_and_drops_every_conflicting_copy(rows):
    table = pa.table({"event_id": pa.array([k for k, _ in rows], pa.string()), "value": pa.array([v for _, v in rows], pa.float64())})
    reasons = _Reasons(len(rows))
    _flag_duplicates(table, reasons, "event_id", ("event_id", "value"))
    labels = ["", *reasons.labels]
    got = [labels[code] for code in reasons.codes]

    expected = []
    for i, (key, value) in enumerate(rows):
        copies = [r for r in rows if r[0] == key] if key is not None else [(key, value)]
        if len(copies) == 1:
            expected.append("")
        elif len(set(copies)) > 1:
            expected.append("duplicate_event_id")
        else:
            expected.append("" if rows.index((key, value)) == i else "duplicate_row")
    assert got == expected
