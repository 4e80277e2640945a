"""`earlysignal release --shipped` with a memory budget: the transfer evaluation builds and scores the receiving
borough one partition at a time and gives the whole borough's evaluation rows and release, figure for figure,
on a borough with events stored in two partitions (a call-out at an address where its resident never lived)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from audit_world import tracking_at
from federation_world import FederationWorld, federation_world
from planted_visits import plant_visits

from earlysignal import contract
from earlysignal.config import ProjectConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> FederationWorld:
    return federation_world(tmp_path_factory.getbasetemp())


def _receiving(world: FederationWorld, data_dir: Path, **build: int | float | None) -> ProjectConfig:
    config = world.configs["Riverside"]
    update = {"data": config.data.model_copy(update={"dir": str(data_dir)})}
    if build:
        update["build"] = config.build.model_copy(update=build)
    return config.model_copy(update=update)


@pytest.fixture(scope="module")
def visited(world: FederationWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Riverside's data with up to 300 police records planted at addresses where their resident never lived."""
    folder = shutil.copytree(world.configs["Riverside"].data.dir, tmp_path_factory.mktemp("visited") / "riverside")
    # At addresses where someone lives at the first test date, shortly before it: their address features see them.
    # Police records: the model's police features are at household and address scope.
    assert plant_visits(Path(folder), 300, seed=4, living_at=pd.Timestamp("2024-10-01"), source="police") >= 100
    return Path(folder)


@pytest.fixture(scope="module")
def whole(world: FederationWorld, visited: Path, tmp_path_factory: pytest.TempPathFactory):
    from earlysignal.federation.release import run_release

    with tracking_at(world.tracking_uri):
        return run_release(_receiving(world, visited), world.model_uri, shipped=True,
                           out_dir=tmp_path_factory.mktemp("whole-bundle"))


def _without_time(release: dict) -> dict:
    return {key: value for key, value in release.items() if key != "generated_at"}


@pytest.mark.parametrize("partitions", [2, 5])
def test_a_shipped_model_evaluated_per_partition_gives_the_whole_boroughs_rows_and_release(
    world: FederationWorld, visited: Path, whole, partitions: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from earlysignal.federation.evaluate import transfer_evaluation
    from earlysignal.federation.release import run_release

    from earlysignal import features
    from earlysignal.features import builder

    config = _receiving(world, visited, partitions=partitions)
    built: dict[str, list[pd.DataFrame]] = {"whole": [], "parts": []}

    def capturing(into: str, build):
        def wrapped(*args, **kwargs):
            matrix = build(*args, **kwargs)
            built[into].append(matrix.frame)
            return matrix
        return wrapped

    monkeypatch.setattr(features, "build_feature_matrix", capturing("whole", features.build_feature_matrix))
    monkeypatch.setattr(builder, "build_feature_matrix", capturing("parts", builder.build_feature_matrix))
    with tracking_at(world.tracking_uri):
        expected = transfer_evaluation(world.model_uri, _receiving(world, visited)).frame

        def refuse(*args, **kwargs):
            raise AssertionError("the transfer evaluation loaded the whole borough although build.partitions is set")

        monkeypatch.setattr(contract, "load_linked_data", refuse)
        evaluation = transfer_evaluation(world.model_uri, config)
        part_frames = list(built["parts"])
        folder, release = run_release(config, world.model_uri, shipped=True, out_dir=tmp_path / "bundle")
    # The features the model read: the whole borough's, cell for cell (the planted records among them).
    assert len(built["whole"]) == 1 and len(part_frames) == partitions
    parts = pd.concat(part_frames, ignore_index=True)
    order = np.lexsort((parts["resident_id"].to_numpy(dtype=object).astype(str), parts["as_of"].to_numpy()))
    pd.testing.assert_frame_equal(parts.iloc[order].reset_index(drop=True), built["whole"][0], check_exact=True)
    # Every labelled test row once, in the whole build's order, with the same features' scores to the last bit.
    pd.testing.assert_frame_equal(evaluation.frame, expected, check_exact=True)
    assert len(expected) > 1000 and expected["label"].sum() > 0
    assert evaluation.feature_metadata["partitions"]["count"] == partitions
    assert sum(evaluation.feature_metadata["rows_per_as_of"].values()) >= len(expected)
    _, whole_release = whole
    assert _without_time(release) == _without_time(whole_release)
    assert _without_time(json.loads((folder / "release.json").read_text())) == _without_time(whole_release)


def test_the_planted_records_move_the_receiving_boroughs_features(world: FederationWorld, visited: Path) -> None:
    """The equality above can fail: the planted records change address features of the residents living where
    they were recorded, which only the address's partition sees, so a partition that lost its copy of one (or
    read one twice) would build other features than the whole borough."""
    from earlysignal import features

    dates = [pd.Timestamp("2024-10-01").date()]
    planted = features.build_feature_matrix(_receiving(world, visited), contract.load_linked_data(
        visited, world.configs["Riverside"], write_quarantine=False), as_of_dates=dates).frame
    original_dir = Path(world.configs["Riverside"].data.dir)
    original = features.build_feature_matrix(world.configs["Riverside"], contract.load_linked_data(
        original_dir, world.configs["Riverside"], write_quarantine=False), as_of_dates=dates).frame
    address = [c for c in original.columns if c.startswith("address__")]
    assert address
    changed = (planted[address].fillna(-1) != original[address].fillna(-1)).any(axis=1)
    assert len(planted) == len(original) and changed.sum() >= 20
