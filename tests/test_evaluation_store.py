"""The local evaluation store: resident-level evaluation data with hashes, retention and purge."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from earlysignal.evaluation_store import (
    EvaluationStoreError,
    purge_expired,
    read_evaluation,
    store_root,
    write_evaluation,
)

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"resident_id": ["R1", "R2"], "label": [0, 1], "score": [0.1, 0.7]})


def test_store_sits_beside_a_local_sqlite_tracking_store_unless_configured(tmp_path):
    assert store_root(None, f"sqlite:///{tmp_path}/mlflow.db") == tmp_path / "evaluation"
    assert store_root("elsewhere", f"sqlite:///{tmp_path}/mlflow.db").as_posix() == "elsewhere"
    assert store_root(None, "http://mlflow.example:5000").as_posix() == "evaluation"


def test_data_reads_back_only_while_unchanged_and_within_retention(tmp_path):
    manifest = write_evaluation(tmp_path, "run1", {"test_predictions": _frame()}, retention_days=30, now=NOW)
    assert manifest["expires_at"] == "2026-01-31T00:00:00Z"
    pd.testing.assert_frame_equal(read_evaluation(manifest, now=NOW)["test_predictions"], _frame())
    with pytest.raises(EvaluationStoreError, match="expired on 2026-01-31T00:00:00Z"):
        read_evaluation(manifest, now=NOW + dt.timedelta(days=30))
    edited = _frame().assign(score=[0.1, 0.9])
    edited.to_parquet(tmp_path / "run1" / "test_predictions.parquet")
    with pytest.raises(EvaluationStoreError, match="does not match the SHA-256 its training run recorded"):
        read_evaluation(manifest, now=NOW)
    (tmp_path / "run1" / "test_predictions.parquet").unlink()
    with pytest.raises(EvaluationStoreError, match="is not in the evaluation store"):
        read_evaluation(manifest, now=NOW)


def test_purge_deletes_exactly_the_runs_past_their_retention(tmp_path):
    write_evaluation(tmp_path, "old", {"test_predictions": _frame()}, retention_days=10, now=NOW)
    write_evaluation(tmp_path, "new", {"test_predictions": _frame()}, retention_days=10, now=NOW + dt.timedelta(days=5))
    (tmp_path / "no-manifest").mkdir()
    later = NOW + dt.timedelta(days=12)
    assert purge_expired(tmp_path, now=later, dry_run=True).purged == ["no-manifest", "old"]
    assert (tmp_path / "old").exists()
    result = purge_expired(tmp_path, now=later)
    assert result.purged == ["no-manifest", "old"] and result.kept == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]
