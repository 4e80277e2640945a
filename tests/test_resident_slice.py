"""One resident's slice of the borough (contract/slice.py): the journey and the explanation read only the
resident's, household's and home's rows, and see exactly what the whole-borough validation accepts."""

from __future__ import annotations

import pandas as pd
import pytest
from contract_fixtures import write_borough
from journey_world import AS_OF, OTHERS, RESIDENT, world

from earlysignal import contract
from earlysignal.contract.slice import load_resident_slice
from earlysignal.journey import build_journey

STRANGERS = 40  # people elsewhere in the borough, none of whom a journey of res-child may read


def _event(event_id: str, resident: str | None, address: str | None, source: str, kind: str, time: str,
           known: str, value: float | None = None) -> dict:
    return {"event_id": event_id, "resident_id": resident, "address_id": address, "source": source,
            "event_type": kind, "event_time": pd.Timestamp(time), "known_at": pd.Timestamp(known), "value": value}


def _borough() -> dict[str, pd.DataFrame]:
    """The journey world, strangers around it, and rows the contract quarantines inside the slice."""
    tables = world()
    strangers = [f"res-s{i:02d}" for i in range(STRANGERS)]
    residents = pd.concat([tables.residents, pd.DataFrame({
        "resident_id": strangers, "birth_date": pd.Timestamp("1980-01-01"), "death_date": pd.NaT, "sex": "F",
        "ethnicity": "White", "disability": pd.array([False] * STRANGERS, dtype="boolean")})], ignore_index=True)
    residency = pd.concat([tables.residency, pd.DataFrame({
        "resident_id": strangers, "household_id": [f"HS{i}" for i in range(STRANGERS)],
        "address_id": [f"AS{i}" for i in range(STRANGERS)], "start_date": pd.Timestamp("2010-01-01"),
        "end_date": pd.NaT, "tenure": "owner_occupied"})], ignore_index=True)
    rows = [_event(f"S{i:03d}", rid, f"AS{i}", "police", "domestic_incident", "2024-05-01", "2024-05-02")
            for i, rid in enumerate(strangers)]
    rows += [
        # Recorded before it happened: quarantined (known_at_before_event_time).
        _event("Q01", "res-mum", "A1", "police", "domestic_incident", "2024-11-01 22:00", "2024-10-01 08:00"),
        # A stranger's event under the ID of the mother's: conflicting copies, both quarantined.
        _event("E14", "res-s03", "AS3", "police", "callout", "2024-02-01 21:00", "2024-02-01 23:00"),
        # Someone the residents table does not know, at the home: quarantined (unknown resident).
        _event("Q02", "res-ghost", "A1", "police", "callout", "2024-04-01 21:00", "2024-04-01 23:00"),
    ]
    events = pd.concat([tables.events, pd.DataFrame(rows).astype(tables.events.dtypes.to_dict())], ignore_index=True)
    # An exact copy of a household member's record: the first is kept.
    events = pd.concat([events, events[events["event_id"] == "E13"]], ignore_index=True)
    return {"residents": residents, "residency": residency, "events": events, "outcomes": tables.outcomes}


@pytest.fixture(scope="module")
def borough(tmp_path_factory: pytest.TempPathFactory):
    folder = write_borough(tmp_path_factory.mktemp("slice") / "data", _borough())
    return folder, contract.load_linked_data(folder, None, write_quarantine=False)


@pytest.mark.parametrize("resident", [RESIDENT, *OTHERS, "res-s03"])
def test_journey_from_the_slice_equals_the_journey_from_the_whole_borough(borough, resident) -> None:
    folder, full = borough
    part = load_resident_slice(folder, None, resident, AS_OF)
    assert build_journey(part, resident, AS_OF) == build_journey(full, resident, AS_OF)


def test_slice_reads_only_the_households_and_homes_rows(borough) -> None:
    folder, full = borough
    part = load_resident_slice(folder, None, RESIDENT, AS_OF)
    # The household (mum, child, little), the previous tenant of A1; res-s03 only through the copied event ID.
    assert sorted(part.residents["resident_id"]) == ["res-before", "res-child", "res-little", "res-mum", "res-s03"]
    assert sorted(part.residency["address_id"].unique()) == ["A1", "AS3"]
    # 15 of the world's 16 events (not res-next's at A2) + Q01, Q02, the stranger's E14 and the E13 copy.
    assert part.report.tables["events"].read == 19
    assert full.report.tables["events"].read == 16 + STRANGERS + 4
    assert not part.events["resident_id"].isin(["res-next"]).any()


def test_rows_the_whole_borough_quarantines_are_quarantined_in_the_slice(borough) -> None:
    folder, full = borough
    part = load_resident_slice(folder, None, RESIDENT, AS_OF)
    for data in (full, part):
        ids = data.events["event_id"].tolist()
        assert "Q01" not in ids and "Q02" not in ids and "E14" not in ids
        assert ids.count("E13") == 1
    assert part.report.checks["events"] == {k: v for k, v in full.report.checks["events"].items() if v} | {
        k: 0 for k, v in full.report.checks["events"].items() if not v}
    assert part.report.tables["events"].quarantined == 5  # Q01, Q02, two copies of E14, the E13 copy


def test_slice_of_an_unknown_resident_holds_no_one(borough) -> None:
    folder, _ = borough
    part = load_resident_slice(folder, None, "res-nobody", AS_OF)
    assert part.residents.empty and part.events.empty
    with pytest.raises(Exception, match="'res-nobody' is not in the residents table"):
        build_journey(part, "res-nobody", AS_OF)


def test_csv_boroughs_are_loaded_whole_with_the_same_result(tmp_path) -> None:
    folder = write_borough(tmp_path / "csv", _borough(), fmt="csv")
    full = contract.load_linked_data(folder, None, write_quarantine=False)
    part = load_resident_slice(folder, None, RESIDENT, AS_OF)
    assert part.report.tables["events"].read == full.report.tables["events"].read
    assert build_journey(part, RESIDENT, AS_OF) == build_journey(full, RESIDENT, AS_OF)
