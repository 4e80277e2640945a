"""Partitioned builds: households and addresses stay whole, and the rows equal the whole build's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from earlysignal.errors import ConfigError
from earlysignal.features import build_feature_matrix
from earlysignal.features.matrix import read_feature_matrix
from earlysignal.features.partition import (
    assign_partitions,
    build_partitioned_feature_matrix,
    household_components,
    partition_count,
    read_partitioned_frame,
)
from features_borough import every_aggregate_config, random_borough


@pytest.fixture(scope="module")
def borough():
    return random_borough(seed=3, households=30, events_per_resident=30)


@pytest.fixture(scope="module")
def whole(borough):
    return build_feature_matrix(every_aggregate_config(), borough)


def test_residents_sharing_a_household_or_an_address_share_a_component():
    residents = pd.DataFrame({"resident_id": pd.Series(["R1", "R2", "R3", "R4", "R5"], dtype="str")})
    residency = pd.DataFrame({
        "resident_id": pd.Series(["R1", "R2", "R3", "R3", "R4"], dtype="str"),
        "household_id": pd.Series(["H1", "H1", "H2", "H3", "H4"], dtype="str"),
        "address_id": pd.Series(["A1", "A1", "A2", "A3", "A3"], dtype="str"),
    })
    # R1-R2 share H1; R3 moved from A2 to A3, where R4 lives in another household; R5 has no spell.
    assert household_components(residents, residency).tolist() == [0, 0, 1, 1, 2]
    # The same keys coded as integers (residents 0..R-1 in order, as contract/streaming.py hands them over;
    # household and address codes with gaps), and a spell of a resident outside the table: same components.
    codes = pd.DataFrame({
        "resident_id": np.array([0, 1, 2, 2, 3, 7]),
        "household_id": np.array([0, 0, 5, 9, 2, 0]),
        "address_id": np.array([4, 4, 1, 0, 0, 4]),
    })
    assert household_components(pd.DataFrame({"resident_id": np.arange(5)}), codes).tolist() == [0, 0, 1, 1, 2]


def test_components_are_packed_whole_and_balanced():
    components = np.array([0, 0, 0, 1, 1, 2, 3, 4])
    partition = assign_partitions(components, np.ones(components.size), 2)
    for component in np.unique(components):
        assert np.unique(partition[components == component]).size == 1
    assert np.bincount(partition).tolist() == [4, 4]


def test_a_memory_budget_below_what_any_build_needs_is_refused_with_a_config_error():
    from earlysignal.config import MIN_MEMORY_BUDGET_GB, config_from_dict, config_to_dict

    raw = config_to_dict(every_aggregate_config())
    raw["build"] = {"memory_budget_gb": 0.01}
    with pytest.raises(ConfigError, match=r"build\.memory_budget_gb: .*0\.01 GB is below what any build needs"):
        config_from_dict(raw)
    raw["build"] = {"memory_budget_gb": MIN_MEMORY_BUDGET_GB}
    assert config_from_dict(raw).build.memory_budget_gb == MIN_MEMORY_BUDGET_GB
    raw["build"] = {"partitions": 200}  # a fixed count is the way to ask for many partitions
    assert config_from_dict(raw).build.partitions == 200


def test_the_partition_count_is_said_before_the_events_are_read_and_anything_is_built(borough, tmp_path, monkeypatch):
    from earlysignal.config import config_from_dict, config_to_dict
    from earlysignal.console import console
    from earlysignal.features.partition import build_partitioned_feature_matrix_from_folder
    from features_borough import write_folder

    folder = write_folder(random_borough(seed=3, households=8, events_per_resident=15), tmp_path / "borough")
    raw = config_to_dict(every_aggregate_config(temporal__first_as_of="2023-01-01"))
    raw["build"] = {"partitions": 3}
    said: list[str] = []
    monkeypatch.setattr(console, "print", lambda text="", *a, **k: said.append(str(text)))
    build_partitioned_feature_matrix_from_folder(
        config_from_dict(raw), folder, tmp_path / "m.parquet", progress=True, on_loaded=lambda data: said.append("loaded")
    )
    assert said[: said.index("loaded")] == ["Building in 3 partitions (build.partitions: 3)"]


def test_partition_count_follows_the_memory_budget():
    assert partition_count(250_000, 20, 230, None) == 1
    # 250k x 20 rows x (230 x 8 + 200) bytes + 250k x 20 x 32 bytes = 10.36e9 bytes: 10 GB -> 1 GB parts.
    assert partition_count(250_000, 20, 230, 1.0) == 10
    assert partition_count(250_000, 20, 230, 4.0) == 3
    with pytest.raises(ConfigError, match="memory_budget_gb"):
        partition_count(10, 2, 5, 0.0)


@pytest.mark.parametrize("partitions", [2, 5, 17])
def test_partitioned_build_equals_the_whole_build_value_for_value(borough, whole, tmp_path, partitions):
    out = tmp_path / "matrix.parquet"
    metadata = build_partitioned_feature_matrix(every_aggregate_config(), borough, out, partitions=partitions)
    assert metadata["partitions"]["count"] == partitions
    assert sum(metadata["partitions"]["rows_per_part"]) == len(whole.frame)
    assert metadata["rows_per_as_of"] == whole.metadata["rows_per_as_of"]
    assert metadata["label_prevalence_per_as_of"] == pytest.approx(whole.metadata["label_prevalence_per_as_of"])
    assert metadata["feature_columns"] == whole.feature_columns
    frame = read_partitioned_frame(out)
    pd.testing.assert_frame_equal(frame, whole.frame)
    pd.testing.assert_frame_equal(read_feature_matrix(out).frame, whole.frame)


def test_every_part_holds_whole_households(borough, tmp_path):
    out = tmp_path / "matrix.parquet"
    build_partitioned_feature_matrix(every_aggregate_config(), borough, out, partitions=4)
    part_of = {}
    for number, part in enumerate(sorted(out.glob("part-*.parquet"))):
        for resident in pd.read_parquet(part, columns=["resident_id"])["resident_id"].unique():
            part_of[resident] = number
    residency = borough.residency.assign(part=borough.residency["resident_id"].map(part_of))
    in_matrix = residency.dropna(subset=["part"])
    assert in_matrix.groupby("household_id")["part"].nunique().max() == 1
    assert len(set(part_of.values())) == 4


def test_a_memory_budget_in_config_writes_part_files_that_are_reused_like_a_single_file(tmp_path):
    from earlysignal.config import config_from_dict, config_to_dict
    from earlysignal.features import build_or_reuse_feature_matrix
    from features_borough import write_folder

    folder = write_folder(random_borough(seed=3, households=8, events_per_resident=15), tmp_path / "borough")
    raw = config_to_dict(every_aggregate_config(temporal__first_as_of="2023-01-01"))
    raw["data"] = {"dir": str(folder)}
    whole, status = build_or_reuse_feature_matrix(config_from_dict(raw), out=tmp_path / "whole.parquet")
    assert status == "built: no matrix"
    raw["build"] = {"partitions": 3}
    out = tmp_path / "parts.parquet"
    parted, status = build_or_reuse_feature_matrix(config_from_dict(raw), out=out)
    assert status == "built: no matrix" and out.is_dir()
    assert parted.metadata["partitions"]["count"] == 3
    # Partitions with no cohort row write no part file.
    assert len(list(out.glob("part-*.parquet"))) == parted.metadata["partitions"]["parts"] >= 1
    pd.testing.assert_frame_equal(parted.frame, whole.frame)
    assert parted.metadata["data_fingerprint"] == whole.metadata["data_fingerprint"]
    again, status = build_or_reuse_feature_matrix(config_from_dict(raw), out=out)
    assert status == "reused"
    pd.testing.assert_frame_equal(again.frame, whole.frame)


@pytest.mark.spark
def test_partitions_built_in_spark_tasks_through_apply_in_pandas_equal_the_whole_build(tmp_path):
    pytest.importorskip("pyspark", reason="the Spark engine needs the spark extra: pip install -e '.[spark]'")
    from earlysignal.engines.spark_engine import local_session
    from earlysignal.features.spark_partitions import build_partitioned_feature_matrix_on_spark

    borough = random_borough(seed=3, households=12, events_per_resident=15)
    config = every_aggregate_config()
    whole = build_feature_matrix(config, borough)
    out = tmp_path / "matrix.parquet"
    metadata = build_partitioned_feature_matrix_on_spark(config, borough, out, local_session(), partitions=3)
    assert metadata["partitions"]["count"] == 3
    assert metadata["rows_per_as_of"] == whole.metadata["rows_per_as_of"]
    assert metadata["feature_columns"] == whole.feature_columns
    pd.testing.assert_frame_equal(read_partitioned_frame(out), whole.frame)


@pytest.mark.spark
def test_spark_tasks_reading_their_own_partition_s_events_file_equal_the_whole_build(tmp_path):
    pytest.importorskip("pyspark", reason="the Spark engine needs the spark extra: pip install -e '.[spark]'")
    from earlysignal.contract.streaming import load_partitioned_data
    from earlysignal.engines.spark_engine import local_session
    from earlysignal.features.spark_partitions import build_partitioned_feature_matrix_on_spark
    from features_borough import write_folder

    borough = random_borough(seed=3, households=12, events_per_resident=15)
    config = every_aggregate_config()
    whole = build_feature_matrix(config, borough)
    folder = write_folder(borough, tmp_path / "borough")
    work = tmp_path / "events"
    work.mkdir()

    def three(residents, residency):
        components = household_components(residents, residency)
        return assign_partitions(components, np.ones(components.size), 3), 3

    data = load_partitioned_data(folder, config, work, three, write_quarantine=False, batch_rows=100)
    out = tmp_path / "matrix.parquet"
    metadata = build_partitioned_feature_matrix_on_spark(config, data, out, local_session())
    assert metadata["partitions"]["count"] == 3
    pd.testing.assert_frame_equal(read_partitioned_frame(out), whole.frame)


def test_spark_tasks_need_partitions_and_the_spark_engine(tmp_path):
    from earlysignal.config import config_from_dict, config_to_dict
    from earlysignal.errors import ConfigError
    from earlysignal.features import build_or_reuse_feature_matrix
    from features_borough import write_folder

    folder = write_folder(random_borough(seed=3, households=4, events_per_resident=5), tmp_path / "borough")
    raw = config_to_dict(every_aggregate_config(temporal__first_as_of="2023-01-01"))
    raw["data"] = {"dir": str(folder)}
    raw["build"] = {"spark_tasks": True}
    with pytest.raises(ConfigError, match="build.spark_tasks needs the population split into partitions"):
        build_or_reuse_feature_matrix(config_from_dict(raw), out=tmp_path / "m.parquet")
    raw["build"] = {"spark_tasks": True, "partitions": 2}
    with pytest.raises(ConfigError, match="needs the Spark engine: set build.engine: spark or pass --engine spark"):
        build_or_reuse_feature_matrix(config_from_dict(raw), out=tmp_path / "m.parquet")


@pytest.mark.spark
def test_features_command_on_spark_runs_each_partition_in_a_spark_task_and_equals_the_whole_build(tmp_path):
    pytest.importorskip("pyspark", reason="the Spark engine needs the spark extra: pip install -e '.[spark]'")
    import yaml
    from typer.testing import CliRunner

    from earlysignal.cli import app
    from earlysignal.config import config_from_dict, config_to_dict
    from earlysignal.features import build_or_reuse_feature_matrix, read_feature_matrix
    from features_borough import write_folder

    folder = write_folder(random_borough(seed=3, households=12, events_per_resident=15), tmp_path / "borough")
    raw = config_to_dict(every_aggregate_config())
    raw["data"] = {"dir": str(folder)}
    whole, _ = build_or_reuse_feature_matrix(config_from_dict(raw), out=tmp_path / "whole.parquet")
    raw["build"] = {"partitions": 3, "spark_tasks": True}
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "spark.parquet"
    command = ["features", "--engine", "spark", "--config", str(config_path), "--out", str(out), "--show-sql"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    built = read_feature_matrix(out)
    assert built.metadata["spark_tasks"] is True and built.metadata["partitions"]["count"] == 3
    # The driver's engine ran no SQL (--show-sql prints none): every query ran inside the tasks.
    assert "GROUP BY" not in result.output and "Built the feature matrix" in " ".join(result.output.split())
    pd.testing.assert_frame_equal(built.frame, whole.frame)
    assert not any(p.name.endswith(".events.tmp") for p in tmp_path.iterdir())


def test_a_partitioned_build_records_the_link_run_and_its_quality_like_the_whole_build(tmp_path):
    import json

    from earlysignal.config import config_from_dict, config_to_dict
    from earlysignal.features import build_or_reuse_feature_matrix
    from features_borough import write_folder

    folder = write_folder(random_borough(seed=3, households=8, events_per_resident=15), tmp_path / "borough")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["link_run_id"] = "L20261201T0200"
    manifest["ingest"] = {"code_lists_sha256": "cd" * 32, "code_lists": {"police": {"version": "3", "sha256": "ef" * 32}}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "link_quality.json").write_text(json.dumps({"threshold": 0.8, "precision": 0.99}))
    raw = config_to_dict(every_aggregate_config(temporal__first_as_of="2023-01-01"))
    raw["data"] = {"dir": str(folder)}
    whole, _ = build_or_reuse_feature_matrix(config_from_dict(raw), out=tmp_path / "whole.parquet")
    raw["build"] = {"partitions": 2}
    parted, _ = build_or_reuse_feature_matrix(config_from_dict(raw), out=tmp_path / "parts.parquet")
    # The audit, the release bundle and the MLflow tags read the link run from here.
    assert whole.metadata["linkage"]["link_run_id"] == "L20261201T0200"
    assert parted.metadata["linkage"] == whole.metadata["linkage"]
    assert parted.metadata["linkage"]["quality"] == {"threshold": 0.8, "precision": 0.99}


def test_features_command_says_how_many_partitions_it_built_and_what_chose_the_count(tmp_path, monkeypatch):
    import yaml
    from typer.testing import CliRunner

    from earlysignal.cli import app
    from earlysignal.config import config_from_dict, config_to_dict
    from earlysignal.features import partition
    from earlysignal.features import read_feature_matrix
    from earlysignal.features.partition import partition_count
    from earlysignal.features.spec import feature_definitions
    from features_borough import write_folder

    folder = write_folder(random_borough(seed=3, households=8, events_per_resident=15), tmp_path / "borough")
    raw = config_to_dict(every_aggregate_config(temporal__first_as_of="2023-01-01"))
    raw["data"] = {"dir": str(folder)}
    raw["build"] = {"memory_budget_gb": 0.25}
    config = config_from_dict(raw)
    residents = len(pd.read_parquet(folder / "residents.parquet"))
    # A tiny borough needs one partition under any budget the config accepts: make each row weigh what a
    # borough's would, so the estimate needs about three.
    monkeypatch.setattr(partition, "BYTES_PER_ROW", int(0.6 * 1024**3 / (residents * len(config.as_of_dates()))))
    expected = partition_count(residents, len(config.as_of_dates()), len(feature_definitions(config)), 0.25)
    assert expected >= 2
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "m.parquet"
    for run in range(2):  # built, then reused: both say how the matrix is split
        result = CliRunner().invoke(app, ["features", "--config", str(config_path), "--out", str(out)])
        assert result.exit_code == 0, result.output
        said = " ".join(result.output.split())
        assert f"In {expected} partitions (from build.memory_budget_gb: 0.25" in said
        # The build says the count and why before it starts (a reused matrix builds nothing).
        before = (f"Building in {expected} partitions: the whole build is estimated at "
                  f"{partition.estimated_build_bytes(residents, len(config.as_of_dates()), len(feature_definitions(config))) / 1024**3:,.2f} GB "
                  f"({residents:,} residents ever x {len(config.as_of_dates())} as_of dates x "
                  f"{len(feature_definitions(config))} features, docs/config.md), build.memory_budget_gb is 0.25")
        assert (before in said) == (run == 0)
        if run == 0:
            assert said.index(before) < said.index("Built the feature matrix")
    parts = read_feature_matrix(out).metadata["partitions"]
    assert parts["count"] == expected
    assert f"{parts['parts']} part file(s) of {min(parts['rows_per_part']):,} to {max(parts['rows_per_part']):,} rows" in said


def test_partitioned_builds_null_windows_before_the_data_start_and_count_over_every_partition(tmp_path):
    """manifest.json's data_start nulls windows that reach back before the records begin (features/history.py);
    a partitioned build, from memory or from the folder as `earlysignal features` reads it, must do the same,
    and its sidecar must count censored labels and nulled cells over the whole borough."""
    import json

    from earlysignal.config import config_from_dict, config_to_dict
    from earlysignal.features import build_or_reuse_feature_matrix
    from earlysignal.features.partition import build_partitioned_feature_matrix_from_folder
    from features_borough import write_folder

    folder = write_folder(random_borough(seed=3, households=12, events_per_resident=15), tmp_path / "borough")
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "data_start": "2018-01-01"}))
    raw = config_to_dict(every_aggregate_config())
    raw["data"] = {"dir": str(folder)}
    config = config_from_dict(raw)
    whole, _ = build_or_reuse_feature_matrix(config, out=tmp_path / "whole.parquet")
    nulled = whole.metadata["windows_before_data_start"]
    assert nulled and all(cells > 0 for cells in nulled.values())  # the 3y windows and trends of 2019-2020
    assert whole.metadata["label"]["censored_rows"] > 0

    out = tmp_path / "from_folder.parquet"
    metadata = build_partitioned_feature_matrix_from_folder(config, folder, out, partitions=3, write_quarantine=False)
    pd.testing.assert_frame_equal(read_partitioned_frame(out), whole.frame)
    assert metadata["windows_before_data_start"] == nulled
    assert metadata["label"]["censored_rows"] == whole.metadata["label"]["censored_rows"]

    from earlysignal.contract import load_linked_data

    in_memory = tmp_path / "in_memory.parquet"
    data = load_linked_data(folder, config, write_quarantine=False)
    metadata = build_partitioned_feature_matrix(config, data, in_memory, partitions=3)
    pd.testing.assert_frame_equal(read_partitioned_frame(in_memory), whole.frame)
    assert metadata["windows_before_data_start"] == nulled
    assert metadata["label"]["censored_rows"] == whole.metadata["label"]["censored_rows"]


def test_features_command_never_reads_a_partitioned_matrix_back_whole(tmp_path, monkeypatch):
    """Reading the part files back into one frame would undo build.memory_budget_gb: the command prints
    the row count from the sidecar, whether it built the matrix or reused it."""
    import yaml
    from typer.testing import CliRunner

    import earlysignal.features.matrix as matrix_module
    from earlysignal.cli import app
    from earlysignal.config import config_from_dict, config_to_dict
    from earlysignal.features import read_feature_matrix
    from features_borough import write_folder

    folder = write_folder(random_borough(seed=3, households=8, events_per_resident=15), tmp_path / "borough")
    raw = config_to_dict(every_aggregate_config(temporal__first_as_of="2023-01-01"))
    raw["data"] = {"dir": str(folder)}
    raw["build"] = {"partitions": 3}
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "m.parquet"

    def refuse(path):  # noqa: ANN001
        raise AssertionError(f"the features command read {path} back whole")

    with monkeypatch.context() as patched:
        patched.setattr(matrix_module, "read_feature_matrix", refuse)
        for status in ("Built", "Reused"):
            result = CliRunner().invoke(app, ["features", "--config", str(config_path), "--out", str(out)])
            assert result.exit_code == 0, result.output
            said = " ".join(result.output.split())
            # A build first says its partition count and why; a reuse builds nothing.
            assert said.startswith(("Building in 3 partitions (build.partitions: 3) " if status == "Built" else "") + status)
            rows = sum(len(pd.read_parquet(part)) for part in sorted(out.glob("part-*.parquet")))
            assert f": {rows:,} rows x " in said
    # Callers that need the frame still get it (training, the demo).
    matrix, status = matrix_module.build_or_reuse_feature_matrix(config_from_dict(raw), out=out)
    assert status == "reused" and len(matrix.frame) == rows
    pd.testing.assert_frame_equal(matrix.frame, read_feature_matrix(out).frame)
