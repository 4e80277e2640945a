"""Training on a partitioned matrix (build.memory_budget_gb) reads it lean, a feature column at a time from
the part files, and learns exactly what it learns from the same rows in one file."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from synthetic_matrix import make_matrix
from test_training import small_config

from earlysignal.features import write_feature_matrix
from earlysignal.features.matrix import sidecar_path
from earlysignal.modeling.train import _read_lean_matrix, train_model
from earlysignal.atomic import write_json


def _as_parts(matrix, folder, parts: int):
    """The matrix as a partitioned build writes it: residents spread over part files, each sorted by
    (as_of, resident_id), and the sidecar beside the folder."""
    folder.mkdir()
    frame = matrix.frame
    ids = sorted(frame["resident_id"].unique())
    part_of = {resident: i % parts for i, resident in enumerate(ids)}
    for number in range(parts):
        rows = frame[frame["resident_id"].map(part_of) == number].sort_values(["as_of", "resident_id"])
        pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), folder / f"part-{number:05d}.parquet")
    write_json(matrix.metadata, sidecar_path(folder))
    return folder


def test_a_partitioned_matrix_is_read_lean_in_the_whole_build_s_row_order(tmp_path):
    matrix = make_matrix(residents=300, n_as_of=6, seed=2)
    folder = _as_parts(matrix, tmp_path / "parts.parquet", 3)
    lean = _read_lean_matrix(folder)
    expected = matrix.frame.sort_values(["as_of", "resident_id"]).reset_index(drop=True)
    assert lean.frame["resident_id"].tolist() == expected["resident_id"].tolist()
    for column in matrix.feature_columns[:5]:
        pd.testing.assert_series_equal(
            pd.Series(lean.feature_values(column)), expected[column].astype("float32").reset_index(drop=True),
            check_names=False,
        )


def test_training_from_part_files_gives_exactly_what_the_single_file_gives(tmp_path):
    matrix = make_matrix(residents=1500, n_as_of=12, seed=5)
    matrix.frame = matrix.frame.sort_values(["as_of", "resident_id"]).reset_index(drop=True)
    config = small_config(training={"negative_sample_fraction": 0.5, "n_jobs": 1})
    single = train_model(config, matrix=write_feature_matrix(matrix, tmp_path / "one.parquet"), log_to_mlflow=False)
    parted = train_model(config, matrix=_as_parts(matrix, tmp_path / "parts.parquet", 4), log_to_mlflow=False)
    assert parted.model.booster.model_to_string() == single.model.booster.model_to_string()
    pd.testing.assert_frame_equal(parted.test_predictions, single.test_predictions)
    assert parted.metrics["summary"] == single.metrics["summary"]
