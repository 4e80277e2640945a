"""`earlysignal link` finds the ground truth of a synthetic world by itself, and says which it used."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from earlysignal.cli import app
from earlysignal.errors import ContractError
from earlysignal.linkage.truth import find_ground_truth
from link_fixtures import LINKAGE_CONFIG, write_ingested

SECRET = "test-secret-" + "0123456789abcdef" * 2
TEMPORAL = {"first_as_of": "2019-01-01", "last_as_of": "2025-10-01"}
TRUTH = Path("ground_truth/raw_records.parquet")


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_a_configured_ground_truth_is_looked_for_in_the_ingested_folder_then_data_dir_then_beside_it(tmp_path: Path) -> None:
    ingested, synth = tmp_path / "work" / "ingested", tmp_path / "synth"
    ingested.mkdir(parents=True)
    nowhere = find_ground_truth(ingested, TRUTH, synth, None)
    assert nowhere.path is None
    assert nowhere.looked_in == (ingested.absolute() / TRUTH, synth.absolute() / TRUTH, (tmp_path / "work").absolute() / TRUTH)
    assert nowhere.describe() == f"no ground truth found (linkage.ground_truth looked for at {', '.join(map(str, nowhere.looked_in))})"
    beside = _touch(tmp_path / "work" / TRUTH)
    assert find_ground_truth(ingested, TRUTH, synth, None).path == beside.absolute()
    in_data_dir = _touch(synth / TRUTH)
    chosen = find_ground_truth(ingested, TRUTH, synth, None)
    assert (chosen.path, chosen.origin) == (in_data_dir.absolute(), "linkage.ground_truth")
    assert chosen.describe() == f"ground truth {in_data_dir.absolute()} (from linkage.ground_truth)"
    own = _touch(ingested / TRUTH)
    assert find_ground_truth(ingested, TRUTH, synth, None).path == own.absolute()
    # --ground-truth wins over the config; the config key unset means nothing is looked for.
    assert find_ground_truth(ingested, TRUTH, synth, beside).origin == "--ground-truth"
    unset = find_ground_truth(ingested, None, synth, None)
    assert (unset.path, unset.looked_in) == (None, ())
    with pytest.raises(ContractError, match="--ground-truth .*missing.parquet does not exist"):
        find_ground_truth(ingested, TRUTH, synth, tmp_path / "missing.parquet")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic borough's layout: DATA/ground_truth beside DATA/ingested (the fixture writes it inside)."""
    root = tmp_path_factory.mktemp("truth")
    write_ingested(root / "ingested", n_households=30)
    (root / "ingested" / "ground_truth").rename(root / "ground_truth")
    return root


def _link(world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_dir: Path, *extra: str) -> tuple[int, str, Path]:
    monkeypatch.setenv("EARLYSIGNAL_LINK_SECRET", SECRET)
    config = tmp_path / "borough.yaml"
    config.write_text(yaml.safe_dump({"temporal": TEMPORAL, "data": {"dir": str(data_dir)}, "linkage": LINKAGE_CONFIG}))
    out = tmp_path / "linked"
    result = CliRunner().invoke(app, ["link", "--ingested", str(world / "ingested"), "--out", str(out),
                                      "--config", str(config), *extra])
    return result.exit_code, " ".join(result.output.split()), out


def test_link_without_ground_truth_option_uses_the_synthetic_worlds_own_and_says_which(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output, out = _link(world, tmp_path, monkeypatch, tmp_path / "no-such-folder")
    assert code == 0, output
    quality = json.loads((out / "link_quality.json").read_text())
    truth = quality["ground_truth"]
    used = f"ground truth {(world / TRUTH).absolute()} (from linkage.ground_truth)"
    assert quality["ground_truth_used"] == used
    assert truth["records_covered"] == 1.0 and truth["precision"] >= 0.95 and truth["recall"] >= 0.95
    assert f"Against ground truth: precision {truth['precision']}, recall {truth['recall']}, F1 {truth['f1']} ({used})." in output


def test_another_worlds_ground_truth_in_data_dir_is_not_used_and_the_output_says_why(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # data.dir holds a stale world whose truth names a third of these records: found first, never used.
    stale = tmp_path / "stale"
    truth = pd.read_parquet(world / TRUTH)
    (stale / "ground_truth").mkdir(parents=True)
    truth.iloc[: len(truth) // 3].to_parquet(stale / TRUTH, index=False)
    covered = len(truth) // 3 / len(truth)
    code, output, out = _link(world, tmp_path, monkeypatch, stale)
    assert code == 0, output
    quality = json.loads((out / "link_quality.json").read_text())
    assert "ground_truth" not in quality
    why = (f"not used: {(stale / TRUTH).absolute()} (from linkage.ground_truth) names only {covered:.1%} of these "
           "person records, so it describes another world's extracts")
    assert quality["ground_truth_used"] == why
    assert f"Linkage precision and recall not measured: {why} and no clerically reviewed pairs" in output
    # Named on the command line, the same file is an error: the person meant it.
    code, output, _ = _link(world, tmp_path, monkeypatch, stale, "--ground-truth", str(stale / TRUTH))
    assert code == 2
    assert f"names only {covered:.1%} of the {len(truth):,} person records" in output
