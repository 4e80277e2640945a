"""Atomic writes never leave a half-written file; hashes are stable and sensitive."""

from __future__ import annotations

import pandas as pd
import pytest

from earlysignal.atomic import atomic_path, write_json, write_parquet
from earlysignal.fingerprint import directory_sha256, stable_hash


def test_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "scores.csv"
    target.write_text("old\n", encoding="utf-8")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half", encoding="utf-8")
            raise RuntimeError("crash mid-write")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]


def test_parquet_round_trips_through_atomic_write(tmp_path):
    frame = pd.DataFrame({"resident_id": ["r1", "r2"], "score": [0.1, 0.9]})
    path = write_parquet(frame, tmp_path / "sub" / "out.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame, check_dtype=False)


def test_json_is_written_with_sorted_keys(tmp_path):
    path = write_json({"b": 1, "a": 2}, tmp_path / "x.json")
    assert path.read_text(encoding="utf-8").index('"a"') < path.read_text(encoding="utf-8").index('"b"')


def test_stable_hash_ignores_key_order_but_not_values():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


def test_directory_hash_changes_with_content_and_honours_exclusions(tmp_path):
    (tmp_path / "events.parquet").write_bytes(b"abc")
    (tmp_path / "quarantine").mkdir()
    (tmp_path / "quarantine" / "events.parquet").write_bytes(b"q")
    before = directory_sha256(tmp_path, exclude=("quarantine",))
    (tmp_path / "quarantine" / "events.parquet").write_bytes(b"changed")
    assert directory_sha256(tmp_path, exclude=("quarantine",)) == before
    (tmp_path / "events.parquet").write_bytes(b"abd")
    assert directory_sha256(tmp_path, exclude=("quarantine",)) != before


def test_atomic_output_gets_the_usual_permissions_not_owner_only(tmp_path):
    import os
    import stat

    mask = os.umask(0o022)
    try:
        path = write_json({"a": 1}, tmp_path / "report.json")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
