"""The matrix on disk: Parquet + sidecar, reuse when spec and data match, rebuild when either changes."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from earlysignal.cli import app
from earlysignal.config import config_to_dict, config_from_dict
from earlysignal.contract import load_linked_data
from earlysignal.features import (
    build_feature_matrix,
    build_or_reuse_feature_matrix,
    config_with_spec,
    read_feature_matrix,
    sidecar_path,
    spec_hash,
)
from features_borough import every_aggregate_config, random_borough, write_folder

SIDECAR_KEYS = {
    "features", "feature_columns", "protected_columns", "label", "spec", "spec_hash", "code_fingerprint", "data_fingerprint",
    "extract_date", "as_of_dates", "rows_per_as_of", "label_prevalence_per_as_of", "engine", "timings",
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_folder(random_borough(seed=3, households=8, events_per_resident=15), tmp_path_factory.mktemp("borough"))


def _config(folder, **features):
    raw = config_to_dict(every_aggregate_config(temporal__first_as_of="2023-01-01"))
    raw["data"] = {"dir": str(folder)}
    raw["features"].update(features)
    return config_from_dict(raw)


def test_generated_test_borough_passes_the_data_contract(folder):
    data = load_linked_data(folder, write_quarantine=False)
    assert data.report.total_quarantined == 0


def test_matrix_is_reused_when_unchanged_and_rebuilt_on_spec_or_data_change(folder, tmp_path):
    out = tmp_path / "m.parquet"
    config = _config(folder)
    first, status = build_or_reuse_feature_matrix(config, out=out)
    assert status == "built: no matrix" and out.exists() and sidecar_path(out).exists()
    again, status = build_or_reuse_feature_matrix(config, out=out)
    assert status == "reused"
    pd.testing.assert_frame_equal(first.frame, again.frame)

    changed_spec = _config(folder, protected_as_features=["sex"])
    rebuilt, status = build_or_reuse_feature_matrix(changed_spec, out=out)
    assert status == "built: spec changed" and "protected__sex" in rebuilt.feature_columns

    events = pq.read_table(folder / "events.parquet")
    pq.write_table(events.slice(0, events.num_rows - 1), folder / "events.parquet")
    _, status = build_or_reuse_feature_matrix(changed_spec, out=out)
    assert status == "built: data changed: events.parquet"
    pq.write_table(events, folder / "events.parquet")


def test_a_second_matrix_written_into_the_data_folder_is_not_a_data_change(tmp_path):
    folder = write_folder(random_borough(seed=3, households=8, events_per_resident=15), tmp_path / "borough")
    config = _config(folder)
    first, second = folder / "first.parquet", folder / "second.parquet"
    assert build_or_reuse_feature_matrix(config, out=first)[1] == "built: no matrix"
    assert build_or_reuse_feature_matrix(config, out=second)[1] == "built: no matrix"
    (folder / "raw").mkdir()
    (folder / "raw" / "extract.csv").write_text("an ingested source's raw extract\n", encoding="utf-8")
    # The data folder now holds both matrices, their sidecars and a raw extract: none is an input.
    assert build_or_reuse_feature_matrix(config, out=first)[1] == "reused"
    assert build_or_reuse_feature_matrix(config, out=second)[1] == "reused"
    # An input table that appears is named as the change.
    pd.DataFrame({"resident_id": ["x"]}).to_csv(folder / "outcomes.csv", index=False)
    try:
        from earlysignal.features.matrix import changed_data_files, data_files

        recorded = json.loads(sidecar_path(first).read_text(encoding="utf-8"))
        assert changed_data_files(recorded, data_files(folder)) == "outcomes.csv added"
    finally:
        (folder / "outcomes.csv").unlink()
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    (folder / "manifest.json").write_text(json.dumps({**manifest, "note": "re-extracted"}), encoding="utf-8")
    assert build_or_reuse_feature_matrix(config, out=first)[1] == "built: data changed: manifest.json"


def test_a_matrix_that_does_not_record_its_input_files_says_so_when_the_data_changed():
    from earlysignal.features.matrix import changed_data_files

    now = {"manifest.json": "a" * 64, "events.parquet": "b" * 64}
    assert changed_data_files({}, now) == "the matrix does not record its input files (built by an earlier version)"
    assert changed_data_files({"data_files": {**now, "residency.parquet": "c" * 64}}, now) == "residency.parquet removed"


def test_matrix_built_by_other_code_is_rebuilt_not_reused_for_the_same_config(folder, tmp_path, monkeypatch):
    from earlysignal.features import spec as spec_module

    out = tmp_path / "m.parquet"
    config = _config(folder)
    _, status = build_or_reuse_feature_matrix(config, out=out)
    assert status == "built: no matrix"
    recorded = json.loads(sidecar_path(out).read_text(encoding="utf-8"))["code_fingerprint"]
    assert recorded == spec_module.code_fingerprint() and set(recorded) == {"earlysignal", "sources_sha256"}
    # The same config and data after a code upgrade: the feature code's source hash differs.
    upgraded = {**recorded, "sources_sha256": "0" * 64}
    monkeypatch.setattr(spec_module, "code_fingerprint", lambda: upgraded)
    _, status = build_or_reuse_feature_matrix(config, out=out)
    assert status == "built: code changed"
    assert json.loads(sidecar_path(out).read_text(encoding="utf-8"))["code_fingerprint"] == upgraded
    _, status = build_or_reuse_feature_matrix(config, out=out)
    assert status == "reused"
    # A new package version alone is a code change too; the spec hash shown in reports is untouched by either.
    monkeypatch.setattr(spec_module, "code_fingerprint", lambda: {**upgraded, "earlysignal": "99.0"})
    rebuilt, status = build_or_reuse_feature_matrix(config, out=out)
    assert status == "built: code changed" and rebuilt.metadata["spec_hash"] == spec_hash(config)


def test_matrix_from_before_code_fingerprints_is_rebuilt(folder, tmp_path):
    out = tmp_path / "m.parquet"
    config = _config(folder)
    build_or_reuse_feature_matrix(config, out=out)
    # As an older release wrote it: no code fingerprint in the sidecar nor in the Parquet's embedded copy.
    from earlysignal.features.matrix import EMBEDDED_METADATA_KEY

    meta = json.loads(sidecar_path(out).read_text(encoding="utf-8"))
    del meta["code_fingerprint"]
    table = pq.read_table(out)
    pq.write_table(table.replace_schema_metadata(
        {**table.schema.metadata, EMBEDDED_METADATA_KEY: json.dumps(meta).encode("utf-8")}), out)
    sidecar_path(out).write_text(json.dumps(meta), encoding="utf-8")
    _, status = build_or_reuse_feature_matrix(config, out=out)
    assert status == "built: code changed"


def test_source_hash_moves_with_source_and_ignores_bytecode(tmp_path):
    from earlysignal.fingerprint import python_sources_sha256

    (tmp_path / "features").mkdir()
    (tmp_path / "features" / "builder.py").write_text("WINDOW = 365\n", encoding="utf-8")
    (tmp_path / "windows.py").write_text("MONTHS = 12\n", encoding="utf-8")
    (tmp_path / "other.py").write_text("x = 1\n", encoding="utf-8")
    parts = ("features", "windows.py")
    before = python_sources_sha256(tmp_path, parts)
    (tmp_path / "features" / "__pycache__").mkdir()
    (tmp_path / "features" / "__pycache__" / "builder.cpython-311.pyc").write_bytes(b"\x00bytecode")
    (tmp_path / "other.py").write_text("x = 2\n", encoding="utf-8")  # not a listed part
    assert python_sources_sha256(tmp_path, parts) == before
    (tmp_path / "features" / "builder.py").write_text("WINDOW = 12\n", encoding="utf-8")
    assert python_sources_sha256(tmp_path, parts) != before


def test_matrix_and_sidecar_round_trip_with_documented_types(folder, tmp_path):
    out = tmp_path / "m.parquet"
    built, _ = build_or_reuse_feature_matrix(_config(folder), out=out)
    read = read_feature_matrix(out)
    pd.testing.assert_frame_equal(built.frame, read.frame)
    meta = json.loads(sidecar_path(out).read_text())
    assert SIDECAR_KEYS <= set(meta)
    assert meta["spec_hash"] == spec_hash(_config(folder))
    frame = read.frame
    assert list(frame.columns[:3]) == ["resident_id", "as_of", "label"]
    assert str(frame["label"].dtype) == "Int8"
    assert all(frame[c].dtype == np.float32 for c in read.feature_columns)
    assert frame["as_of"].dtype.kind == "M"
    keys = list(zip(frame["as_of"], frame["resident_id"]))
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert sum(meta["rows_per_as_of"].values()) == len(frame)
    records = {f["name"]: f for f in meta["features"]}
    assert [f["name"] for f in meta["features"]] == read.feature_columns
    flags = [n for n, f in records.items() if f["is_imputed_flag"]]
    assert flags and all(n.endswith("_imputed") for n in flags)
    assert set(frame[flags].stack().unique()) <= {0.0, 1.0}


def test_scoring_uses_the_recorded_spec_for_one_date_without_labels(folder):
    trained = _config(folder)
    recorded = json.loads(json.dumps(build_feature_matrix(trained, load_linked_data(folder, write_quarantine=False),
                                                          as_of_dates=[dt.date(2024, 4, 1)]).metadata["spec"]))
    other = _config(folder, static=["age"])
    restored = config_with_spec(other, recorded)
    assert spec_hash(restored) == spec_hash(trained)
    scored = build_feature_matrix(restored, load_linked_data(folder, write_quarantine=False),
                                  as_of_dates=[dt.date(2025, 12, 1)], with_labels=False)
    assert scored.frame["label"].isna().all()
    assert scored.feature_columns == build_feature_matrix(trained, load_linked_data(folder, write_quarantine=False),
                                                          as_of_dates=[dt.date(2024, 4, 1)]).feature_columns


def test_features_command_builds_then_reuses_and_shows_sql(folder, tmp_path):
    config_path = tmp_path / "c.yaml"
    import yaml

    config_path.write_text(yaml.safe_dump(config_to_dict(_config(folder))))
    out = tmp_path / "cli.parquet"
    runner = CliRunner()
    first = runner.invoke(app, ["features", "--config", str(config_path), "--out", str(out), "--show-sql"])
    assert first.exit_code == 0, first.output
    lines = " ".join(first.output.split())  # the console wraps long lines
    built = len(pd.read_parquet(out))
    # What was built, never "built: no matrix": rows, columns and the file.
    assert f"Built the feature matrix (first build: none existed yet): {built:,} rows x " in lines
    assert f"-> {out} (+ cli.parquet.json)" in lines
    assert "no matrix" not in first.output and "GROUP BY entity, type_idx, first_j, tb" in first.output
    second = runner.invoke(app, ["features", "--config", str(config_path), "--out", str(out)])
    assert second.exit_code == 0
    assert f"Reused the feature matrix (spec, code and data unchanged): {built:,} rows x " in " ".join(second.output.split())


def test_features_command_names_a_missing_data_folder(tmp_path):
    config_path = tmp_path / "c.yaml"
    import yaml

    raw = config_to_dict(every_aggregate_config())
    raw["data"] = {"dir": str(tmp_path / "nowhere")}
    config_path.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["features", "--config", str(config_path)])
    assert result.exit_code == 2 and "nowhere" in result.output and "Traceback" not in result.output
