"""Events validated batch by batch and handed out per partition: the same accepted rows, quarantine and
report as validating the whole folder at once, and the same feature matrix value for value."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from contract_fixtures import _d, _t, clean_tables, write_borough
from earlysignal.contract import load_linked_data
from earlysignal.contract.streaming import load_partitioned_data
from earlysignal.errors import ContractError
from earlysignal.features import build_feature_matrix
from earlysignal.features.partition import (
    PartitionIndex,
    assign_partitions,
    build_partitioned_feature_matrix_from_folder,
    household_components,
    read_partitioned_frame,
)
from features_borough import every_aggregate_config, random_borough, write_folder


def _bad_tables() -> dict[str, pd.DataFrame]:
    """The clean borough with bad events spread over the file: copies of an event far from the first,
    a conflicting copy, an unknown resident, a value recorded after the extract and a negative count."""
    tables = clean_tables()
    events = tables["events"]
    extra = pd.DataFrame(
        {
            "event_id": ["E03", "E05", "E90", "E91", "E92", "E93"],
            "resident_id": ["R1", "R2", "R9", "R4", "R1", "R3"],
            "address_id": ["A1", None, None, "A3", None, None],
            "source": ["police", "school", "police", "council_tax", "school", " AE "],
            "event_type": ["domestic_incident", "fixed_term_exclusion", "callout", "summons", "absence", "injury_attendance"],
            "event_time": [_t(x) for x in ["2022-05-06 23:10", "2023-01-10 11:00", "2022-01-01 10:00", "2026-03-01 10:00", "2024-01-01 09:00", "2024-04-04 10:00"]],
            "known_at": [_t(x) for x in ["2022-05-07 08:00", "2023-01-13 11:00", "2022-01-01 10:00", "2026-03-01 10:00", "2024-01-01 09:00", "2024-04-04 10:00"]],
            "value": [None, None, None, 50.0, -3.0, None],
        }
    )
    tables["events"] = pd.concat([events, extra], ignore_index=True)
    return tables


def _components(residents: pd.DataFrame, residency: pd.DataFrame) -> tuple[np.ndarray, int]:
    components = household_components(residents, residency)
    return assign_partitions(components, np.ones(components.size), 2), 2


@pytest.mark.parametrize(
    ("batch_rows", "duplicate_key"),
    # length(event_id): a key most event_ids share, as if every one's hash collided with others'.
    [(4, "hash(event_id)"), (1_000, "hash(event_id)"), (4, "length(event_id)")],
)
def test_events_checked_in_batches_give_the_whole_validation_s_report_rows_and_quarantine(
    tmp_path, monkeypatch, batch_rows, duplicate_key
):
    from earlysignal.contract import streaming

    monkeypatch.setattr(streaming, "DUPLICATE_KEY", duplicate_key)
    whole_dir = write_borough(tmp_path / "whole", _bad_tables())
    # value as text, one cell unreadable: in 4-row batches its batch holds no other value at all.
    events = pq.read_table(whole_dir / "events.parquet")
    text = [None if v is None else str(v) for v in events.column("value").to_pylist()]
    text[15] = "lots"
    pq.write_table(events.set_column(7, "value", pa.array(text, pa.string())), whole_dir / "events.parquet")
    streamed_dir = shutil.copytree(whole_dir, tmp_path / "streamed")
    whole = load_linked_data(whole_dir)
    work = tmp_path / "work"
    work.mkdir()
    streamed = load_partitioned_data(streamed_dir, None, work, _components, batch_rows=batch_rows)

    expected = whole.report.to_dict()
    got = streamed.report.to_dict()
    for report in (expected, got):
        report.pop("data_dir"), report.pop("files"), report.pop("quarantine_files")
    assert got == expected
    assert whole.report.checks["events"] == {
        "unparseable:value": 1, "negative_value": 1, "duplicate_row": 1, "duplicate_event_id": 2, "unknown_resident": 1,
    }
    assert whole.report.normalised["events"] == {"source": 1}
    pd.testing.assert_frame_equal(
        pd.read_parquet(streamed.report.quarantine_files["events"]), pd.read_parquet(whole.report.quarantine_files["events"])
    )
    for name in ("residents", "residency", "outcomes"):
        pd.testing.assert_frame_equal(getattr(streamed, name), getattr(whole, name))
    # Each partition gets the accepted events of its residents and of its addresses, in file order.
    index = PartitionIndex.of(whole, streamed.resident_partition)
    for partition in range(streamed.partitions):
        mine = (index.event_resident == partition) | (index.event_address == partition)
        pd.testing.assert_frame_equal(
            streamed.events_of(partition), whole.events[mine].reset_index(drop=True), check_index_type=False
        )


def test_a_column_unreadable_in_every_batch_is_refused_like_the_whole_file(tmp_path):
    folder = write_borough(tmp_path / "b")
    events = pq.read_table(folder / "events.parquet")
    pq.write_table(events.set_column(7, "value", pa.array(["lots"] * events.num_rows)), folder / "events.parquet")
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(ContractError, match="column value: none of its 12 values can be read as a number"):
        load_linked_data(folder, write_quarantine=False)
    with pytest.raises(ContractError, match="column value: none of its 12 values can be read as a number"):
        load_partitioned_data(folder, None, work, _components, write_quarantine=False, batch_rows=5)


@pytest.mark.parametrize("partitions", [3, 7])
def test_partitioned_build_reading_events_per_partition_equals_the_whole_build(tmp_path, partitions):
    borough = random_borough(seed=3, households=30, events_per_resident=30)
    config = every_aggregate_config()
    whole = build_feature_matrix(config, borough)
    folder = write_folder(borough, tmp_path / "borough")
    out = tmp_path / "matrix.parquet"
    metadata = build_partitioned_feature_matrix_from_folder(
        config, folder, out, partitions=partitions, batch_rows=500, write_quarantine=False
    )
    assert metadata["partitions"]["count"] == partitions
    assert metadata["rows_per_as_of"] == whole.metadata["rows_per_as_of"]
    pd.testing.assert_frame_equal(read_partitioned_frame(out), whole.frame)
    # The per-partition event files are temporary.
    assert not any(p.name.endswith(".events.tmp") for p in tmp_path.iterdir())


def _bad_people() -> dict[str, pd.DataFrame]:
    """The clean borough with bad residents and spells spread over both files: an exact copy of R2, a
    conflicting copy of R4 (so R4, their spells and events go), a birth after the extract, a null ID, an
    unknown resident's spell, two overlapping spells of R1, a repeated spell of R5 and one that ends
    before it starts; residents also carry a column the contract does not know (a name)."""
    tables = clean_tables()
    residents = tables["residents"]
    extra = pd.DataFrame(
        {
            "resident_id": ["R2", "R4", "R7", None],
            "birth_date": [_d(x) for x in ["2012-07-19", "1990-11-11", "2030-01-01", "2001-01-01"]],
            "death_date": [None, None, None, None],
            "sex": ["M", "F", "F", "M"],
            "ethnicity": ["Black", "Asian", "White", "White"],
            "disability": [None, False, False, False],
        }
    )
    residents = pd.concat([residents.iloc[:3], extra.iloc[:2], residents.iloc[3:], extra.iloc[2:]], ignore_index=True)
    residents["full_name"] = [f"Person {i}" for i in range(len(residents))]
    spells = pd.DataFrame(
        {
            "resident_id": ["R9", "R1", "R5", "R6"],
            "household_id": ["H9", "H5", "H3", "H4"],
            "address_id": ["A9", "A2", "A3", "A3"],
            "start_date": [_d(x) for x in ["2019-01-01", "2016-01-01", "2020-04-01", "2021-01-01"]],
            "end_date": [None, _d("2017-01-01"), None, _d("2020-01-01")],
            "tenure": ["council", "council", "housing_association", "council"],
        }
    )
    residency = tables["residency"]
    tables["residency"] = pd.concat([spells.iloc[:2], residency, spells.iloc[2:]], ignore_index=True)
    tables["residents"] = residents
    return tables


@pytest.mark.parametrize("batch_rows", [2, 1_000])
def test_residents_and_residency_checked_in_buckets_give_the_whole_validation_s_report_and_quarantine(tmp_path, batch_rows):
    whole_dir = write_borough(tmp_path / "whole", _bad_people())
    streamed_dir = shutil.copytree(whole_dir, tmp_path / "streamed")
    whole = load_linked_data(whole_dir)
    work = tmp_path / "work"
    work.mkdir()
    streamed = load_partitioned_data(streamed_dir, None, work, _components, batch_rows=batch_rows)

    assert whole.report.checks["residents"] == {
        "null_key:resident_id": 1, "after_extract_date": 1, "duplicate_row": 1, "duplicate_resident_id": 2,
    }
    assert whole.report.checks["residency"] == {
        "end_not_after_start": 1, "duplicate_row": 1, "overlapping_residency": 2, "quarantined_resident": 2,
        "unknown_resident": 1,
    }
    expected = whole.report.to_dict()
    got = streamed.report.to_dict()
    for report in (expected, got):
        report.pop("data_dir"), report.pop("files"), report.pop("quarantine_files")
    assert got == expected
    for name in ("residents", "residency", "events"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(streamed.report.quarantine_files[name]), pd.read_parquet(whole.report.quarantine_files[name])
        )
    pd.testing.assert_frame_equal(streamed.quarantined_residents, whole.quarantined_residents)
    for name in ("residents", "residency", "outcomes"):
        pd.testing.assert_frame_equal(getattr(streamed, name), getattr(whole, name))
    # Partitions hold whole residents: each accepted resident, spell and outcome in exactly one.
    for name in ("residents", "residency", "outcomes"):
        of = getattr(streamed, f"{name}_of")
        parts = pd.concat([of(p) for p in range(streamed.partitions)], ignore_index=True)
        assert sorted(parts["resident_id"]) == sorted(getattr(whole, name)["resident_id"])


def test_id_index_gives_each_id_its_code_and_the_absent_code_for_unknown_and_null_ids():
    from earlysignal.contract.streaming import _IdIndex

    assert _IdIndex(pa.array(["R3", "R1", "R20"]), code=None).codes_of(pa.array(["R20", "R3", "R9"])).tolist() == [2, 0, -1]
    index = _IdIndex(pa.array(["R3", "R1", "R20", "R2"]), code=-2)
    index.set_codes(pa.array(["R2", "R20"]), np.array([7, 0]))
    values = pa.chunked_array([["R2", "R9", None], ["R3", "", "R20", "r1"]])
    assert index.codes_of(values).tolist() == [7, -1, -1, -2, -1, 0, -1]
    assert index.codes_of(pd.Series(["R1", None, "R4"])).tolist() == [-2, -1, -1]
    assert _IdIndex(pa.array([], pa.string())).codes_of(pa.array(["R1"])).tolist() == [-1]
    with pytest.raises(ValueError, match="1 IDs are not in the index"):
        index.set_codes(pa.array(["R1", "R7"]), np.array([1, 2]))


def test_router_routes_accepted_ids_and_answers_the_reference_checks_as_the_whole_validation_does():
    from earlysignal.contract.checks import _reference_masks
    from earlysignal.contract.streaming import _Router

    seen_residents, accepted_residents = pa.array(["R1", "R2", "R3", "R4"]), pa.array(["R3", "R1", "R4"])
    seen_addresses, accepted_addresses = pa.array(["A1", "A2"]), pa.array(["A2"])
    router = _Router(
        seen_residents, accepted_residents, np.array([1, 0, 1]), seen_addresses, accepted_addresses, np.array([0])
    )
    residents = pa.chunked_array([["R1", "R2", None, "R9", "R4", "R3"]])
    addresses = pa.chunked_array([[None, "A1", "A2", "A9", None, "A2"]])
    assert router.of_residents(residents).tolist() == [0, -1, -1, -1, 1, 1]
    for values, accepted, seen, what in (
        (residents, accepted_residents, seen_residents, "resident"),
        (addresses, accepted_addresses, seen_addresses, "address"),
    ):
        quarantined, unknown = router.references(values, what)
        expected_quarantined, expected_unknown = _reference_masks(values, accepted, seen)
        assert quarantined.tolist() == expected_quarantined.tolist()
        assert unknown.tolist() == expected_unknown.tolist()
    # An event goes to its resident's partition, and to its address's when that is another one.
    table = pa.table({"resident_id": residents, "address_id": addresses})
    parts, rows = router.rows_by_partition(table)
    assert list(zip(parts.tolist(), rows.tolist())) == [(0, 0), (0, 2), (0, 5), (1, 4), (1, 5)]


def test_duplicate_pass_gets_what_the_memory_budget_leaves_after_what_the_process_holds():
    from earlysignal.contract.streaming import duplicate_pass_memory_limit

    mib = 1024**2
    # 1.5 GiB budget, 300 MiB held, 256 MiB kept for what DuckDB holds outside its limit.
    assert duplicate_pass_memory_limit(1.5, 300 * mib) == 1536 * mib - 300 * mib - 256 * mib
    assert duplicate_pass_memory_limit(0.25, 300 * mib) == 128 * mib  # never below the floor
    assert duplicate_pass_memory_limit(None, 300 * mib) == 1024 * mib  # no budget: 1 GiB


def test_id_index_is_exact_when_hashes_collide(monkeypatch):
    from earlysignal.contract import streaming

    # A deliberately weak hash (the text's length) makes collisions certain.
    def by_length(values):  # type: ignore[no-untyped-def]
        return pc.fill_null(pc.utf8_length(values), 0).to_numpy(zero_copy_only=False).astype(np.uint64)

    monkeypatch.setattr(streaming, "_hashes", by_length)
    # IDs of different lengths: a value that only shares an ID's hash ("R9" with "R1") is not that ID.
    distinct = streaming._IdIndex(pa.array(["R1", "R20", "R300"]), code=5)
    assert not distinct.exact_only
    assert distinct.codes_of(pa.array(["R9", "R1", "R21", "R300", "X"])).tolist() == [-1, 5, -1, 5, -1]
    # Two IDs sharing a hash: the binary search would be ambiguous, so the exact lookup answers.
    shared = streaming._IdIndex(pa.array(["R1", "R2", "R30"]))
    assert shared.exact_only
    shared.set_codes(pa.array(["R2", "R1", "R30"]), np.array([2, 1, 3]))
    assert shared.codes_of(pa.array(["R2", "R1", "R9", "R30", None])).tolist() == [2, 1, -1, 3, -1]


def test_each_partition_s_events_are_one_arrow_stream_appended_batch_by_batch(tmp_path):
    from earlysignal.contract.streaming import EVENTS_PART

    folder = write_borough(tmp_path / "b")
    work = tmp_path / "work"
    work.mkdir()
    streamed = load_partitioned_data(folder, None, work, _components, write_quarantine=False, batch_rows=3)

    whole = load_linked_data(folder, write_quarantine=False)
    index = PartitionIndex.of(whole, streamed.resident_partition)
    for partition in range(streamed.partitions):
        mine = (index.event_resident == partition) | (index.event_address == partition)
        # One file per partition, whatever the batch count: the 12 events came in 4 batches of 3 rows.
        with pa.OSFile(str(work / EVENTS_PART.format(partition))) as source:
            reader = pa.ipc.open_stream(source)
            batches = [batch.num_rows for batch in reader]
        assert sum(batches) == int(mine.sum())
        assert len(batches) > 1
    assert sorted(p.name for p in work.glob("events-*")) == [EVENTS_PART.format(p) for p in range(streamed.partitions)]


def test_a_parquet_file_read_in_batches_keeps_no_row_group_once_its_batch_is_dropped(tmp_path):
    from earlysignal.contract.streaming import open_in_batches

    rng = np.random.default_rng(0)
    path = tmp_path / "events.parquet"
    table = pa.table({"event_id": [f"E{i:08d}-{rng.integers(1 << 40)}" for i in range(200_000)]})
    pq.write_table(table, path, row_group_size=20_000, compression="none")
    del table
    before = pa.total_allocated_bytes()
    file = open_in_batches(path, ())
    for batch in file.iter_batches(batch_size=20_000):
        del batch
    # A pre-buffering reader would still hold the ten row groups it read (~6 MB of event IDs).
    assert pa.total_allocated_bytes() - before < 1_000_000


_MAPPED_AFTER_A_LARGE_FREE = """
import ctypes, sys
import numpy as np

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "fixed":
    from earlysignal.contract.heap import map_large_blocks

    assert map_large_blocks() is True
block = np.ones(8 << 20, dtype=np.uint8)
del block
mapped = libc.mallinfo2().hblkhd
kept = [np.ones(2 << 20, dtype=np.uint8) for _ in range(20)]
print(libc.mallinfo2().hblkhd - mapped)
"""


def test_after_map_large_blocks_megabyte_arrays_are_mapped_not_taken_from_the_heap():
    import platform
    import subprocess
    import sys

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt's threshold is glibc's")

    def mapped_bytes(mode: str) -> int:
        # A fresh process: a heap with free space left by earlier work would serve the arrays either way.
        run = subprocess.run(
            [sys.executable, "-c", _MAPPED_AFTER_A_LARGE_FREE, mode], capture_output=True, text=True, check=True
        )
        return int(run.stdout)

    # Freeing a mapped 8 MiB block raises glibc's own threshold to 8 MiB, so 2 MiB arrays come from the heap
    # (where their freed space stays); with the threshold fixed at 1 MiB they are mapped (and unmapped).
    assert mapped_bytes("default") == 0
    assert mapped_bytes("fixed") >= 20 * (2 << 20)
